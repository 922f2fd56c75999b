"""The three dataset converters: annotations + features → a converted dataset directory.

`convert_thumos14`, `convert_activitynet` and `convert_ucf101` take plain arguments and return the
manifest; tools/convert_*.py are thin command-line wrappers around them (`run_tool` gives every
tool the same error handling), and `tfwsar.data.synthetic` calls them for the embedded dataset.

What each one reads:
- THUMOS14: the original per-class txt files anywhere under `annotations` (or a W-TALC annotation
  folder, or a BSN/G-TAD CSV file); features as per-video npy folders, an HDF5 file or W-TALC's
  joint .npy (whose video names come from the W-TALC annotation folder found in `annotations` or
  beside the .npy).
- ActivityNet1.3: the official JSON or BSN's anet_anno_action.json (+ video_info_new.csv);
  features as above. Feature ids `v_<id>` and annotation ids `<id>` are matched with each other.
- UCF101: the official split lists; with `classes_of`, only the UCF101 classes that are classes of
  that converted (untrimmed) dataset are kept, under that dataset's class list, so class index c
  means the same action in both — what knowledge transfer between the two domains needs.
"""

import argparse
import pathlib
import re
import sys

from tfwsar.data import annotations as annotation_io
from tfwsar.data import features as feature_sources
from tfwsar.data import records
from tfwsar.errors import DataError


def _open_features(features, *, wtalc_annotations=None, rgb_dim=None, hdf5_single="duplicate"):
    return feature_sources.open_features(features, wtalc_annotations=wtalc_annotations,
                                         rgb_dim=rgb_dim, single_dataset=hdf5_single)


def _read_thumos14_annotations(annotations, video_info):
    """Original txt files under a folder, a W-TALC folder, or a BSN/G-TAD CSV file."""
    path = pathlib.Path(annotations)
    if not path.exists():
        raise DataError(f"annotations {path} do not exist")
    if path.is_file():
        if path.suffix.lower() == ".csv":
            return annotation_io.read_thumos14_csv(path, video_info=video_info)
        raise DataError(f"annotations {path}: expected a folder of <Class>_val.txt / "
                        f"<Class>_test.txt files (or a W-TALC folder, or a THUMOS14 CSV)")
    has_txt = any(re.fullmatch(r"[A-Za-z0-9]+_(val|test)\.txt", candidate.name)
                  and not candidate.name.startswith(annotation_io.AMBIGUOUS_LABEL)
                  for candidate in path.rglob("*_*.txt"))
    if not has_txt:
        wtalc = sorted(candidate.parent for candidate in path.rglob("videoname.npy"))
        if wtalc:
            return annotation_io.read_wtalc(wtalc[0])
    return annotation_io.read_thumos14_txt(path, video_info=video_info)


def convert_thumos14(annotations, features, out, *, video_info=None, fps=25.0, stride=16,
                     skip_missing=False, rgb_dim=None, hdf5_single="duplicate",
                     show_progress=None):
    """Converts THUMOS14 (validation + test) into `out`.

    Args:
      annotations: folder searched recursively for `<Class>_val.txt`, `<Class>_test.txt`,
        `Ambiguous_*.txt` (else a W-TALC annotation folder under it is used); or a
        `val_Annotation.csv`-style file.
      features: per-video npy folder (rgb/, flow/), an .h5 file, or a W-TALC joint .npy.
      out: output dataset directory.
      video_info: optional CSV/JSON of durations (`video,duration`, AFSD's `count,fps`, ...);
        without it durations are T / (fps / stride).
      fps, stride: the feature rate is fps / stride segments per second.
      skip_missing: leave out (and count) videos that lack features or annotations instead of
        raising DataError.
      rgb_dim: W-TALC joint features: width of the RGB part (default half).
      hdf5_single: HDF5 with one dataset per video: "duplicate" (flow = rgb) or "split" (halves).
      show_progress: None = progress bar on a terminal.

    Returns:
      the manifest dict.
    """
    thumos = _read_thumos14_annotations(annotations, video_info)
    source = _open_features(features, wtalc_annotations=annotations, rgb_dim=rgb_dim,
                            hdf5_single=hdf5_single)
    return records.write_converted_dataset(
        out, name="thumos14", annotations=thumos, features=source, feature_fps=fps,
        feature_stride=stride, on_missing="skip" if skip_missing else "error",
        show_progress=show_progress)


def match_feature_ids(source, annotated):
    """Renames feature ids to annotation ids where they differ only by a `v_` prefix.

    ActivityNet's C3D HDF5 and BSN files say `v_<youtube id>`; the official annotation JSON (and
    `read_activitynet_json`) say `<youtube id>`. Ids that match as they are stay as they are.
    Returns `source` unchanged when nothing needs renaming.
    """
    annotated = set(annotated)
    videos = source.videos()
    names = {video: video for video in videos}  # exact matches (and unmatched ids) first
    renamed = False
    for video in videos:
        if video in annotated:
            continue
        if video.startswith("v_") and video[2:] in annotated:
            new = video[2:]
        elif f"v_{video}" in annotated:
            new = f"v_{video}"
        else:
            continue
        if new not in names:  # an exact match wins over a prefixed twin
            names.pop(video)
            names[new] = video
            renamed = True
    if not renamed:
        return source
    return feature_sources.RenamedFeatures(source, names)


def convert_activitynet(annotations, features, out, *, video_info=None, fps=25.0, stride=16,
                        skip_missing=False, rgb_dim=None, hdf5_single="duplicate",
                        show_progress=None):
    """Converts ActivityNet1.3 into `out` (training, validation and test subsets).

    Args:
      annotations: the official JSON (`activity_net.v1-3.min.json`) or BSN's
        `anet_anno_action.json` (then `video_info` = BSN's `video_info_new.csv` is required).
      features: an .h5 file (group per video, e.g. `v_<id>/c3d_features`), a per-video npy folder,
        or a W-TALC joint .npy (its annotation folder beside it).
      out, video_info, fps, stride, skip_missing, rgb_dim, hdf5_single, show_progress:
        as in `convert_thumos14`.

    Returns:
      the manifest dict.
    """
    path = pathlib.Path(annotations)
    if not path.is_file():
        raise DataError(f"annotations {path} do not exist or are not a file (expected a JSON file)")
    activitynet = annotation_io.read_activitynet_json(path, video_info=video_info)
    source = _open_features(features, rgb_dim=rgb_dim, hdf5_single=hdf5_single)
    source = match_feature_ids(source, activitynet.videos["video"])
    return records.write_converted_dataset(
        out, name="activitynet", annotations=activitynet, features=source, feature_fps=fps,
        feature_stride=stride, on_missing="skip" if skip_missing else "error",
        show_progress=show_progress)


def restrict_to_classes(ucf101, target_classes, target_description):
    """UCF101 annotations restricted to the classes of another dataset, in that dataset's order.

    Names match as `annotations.ucf101_classes_overlapping` says (case and punctuation ignored,
    so ActivityNet's "Long jump" is UCF101's "LongJump"). The result
    has `classes = target_classes` (all of them, so that indices align, even those without UCF101
    clips), only the clips of matched classes, their labels renamed to the target's spelling.

    Returns:
      (annotations, {target class: UCF101 class} for the classes kept).
    """
    matched = annotation_io.ucf101_classes_overlapping(target_classes, ucf101.classes)
    if not matched:
        raise DataError(f"no UCF101 class is a class of {target_description} "
                        f"({len(target_classes)} classes, e.g. {list(target_classes)[:3]})")
    to_target = {ucf_name: target for target, ucf_name in matched.items()}
    videos = ucf101.videos
    keep = videos["labels"].map(lambda labels: all(label in to_target for label in labels))
    videos = videos[keep].reset_index(drop=True)
    videos = videos.assign(labels=[tuple(sorted(to_target[label] for label in labels))
                                   for labels in videos["labels"]])

    def renamed(frame):
        frame = frame[frame["label"].isin(list(to_target))].reset_index(drop=True)
        return frame.assign(label=frame["label"].map(to_target))

    restricted = annotation_io.Annotations(
        classes=list(target_classes), videos=videos, instances=renamed(ucf101.instances),
        ambiguous=ucf101.ambiguous.iloc[:0], source=ucf101.source)
    return restricted, matched


def convert_ucf101(splits, features, out, *, classes_of=None, split=1, fps=25.0, stride=16,
                   skip_missing=False, rgb_dim=None, hdf5_single="duplicate",
                   show_progress=None):
    """Converts UCF101 clips (the trimmed domain) into `out`.

    Args:
      splits: folder with `classInd.txt`, `trainlist0N.txt`, `testlist0N.txt`; clip ids are the
        file stems (`v_ApplyEyeMakeup_g08_c01`).
      features: per-clip npy folder (rgb/<clip>.npy, flow/<clip>.npy), or an .h5 file.
      out: output dataset directory.
      classes_of: optional converted dataset directory (e.g. THUMOS14's). Only the UCF101 classes
        among its manifest classes are kept and the output's classes are exactly its classes, so
        label indices align (see `restrict_to_classes`). Clips of other classes need no features.
      split: 1, 2 or 3 (trainlist → "training", testlist → "test").
      fps, stride, skip_missing, rgb_dim, hdf5_single, show_progress: as in
        `convert_thumos14`.

    Returns:
      the manifest dict; with `classes_of` it also holds "classes_of" (the directory) and
      "class_mapping" ({class: UCF101 class} for the classes with clips).
    """
    splits = pathlib.Path(splits)
    if not splits.is_dir():
        raise DataError(f"UCF101 split lists folder {splits} does not exist")
    ucf101 = annotation_io.read_ucf101_splits(splits, split=split)
    extra = {"split": int(split)}
    if classes_of is not None:
        target = records.read_manifest(classes_of)
        ucf101, matched = restrict_to_classes(ucf101, target["classes"],
                                              f"{classes_of} ({target.get('dataset')})")
        extra.update({"classes_of": str(classes_of), "class_mapping": matched})
    source = _open_features(features, rgb_dim=rgb_dim, hdf5_single=hdf5_single)
    return records.write_converted_dataset(
        out, name="ucf101", annotations=ucf101, features=source, feature_fps=fps,
        feature_stride=stride, on_missing="skip" if skip_missing else "error",
        show_progress=show_progress, extra_manifest=extra)


def add_common_flags(parser):
    """The flags every converter has besides its inputs: rate, missing videos, layouts."""
    parser.add_argument("--fps", type=float, default=25.0,
                        help="frames per second the features were extracted at (default 25)")
    parser.add_argument("--stride", type=int, default=16,
                        help="frames per feature segment (default 16); rate = fps / stride")
    parser.add_argument("--skip-missing", action="store_true",
                        help="leave out videos lacking features or annotations (counted in the "
                             "manifest) instead of failing")
    parser.add_argument("--rgb-dim", type=int, default=None,
                        help="W-TALC joint .npy features: width of the RGB part (default half)")
    parser.add_argument("--hdf5-single", choices=("duplicate", "split"), default="duplicate",
                        help="HDF5 with one dataset per video: flow = rgb (duplicate, default) or "
                             "first/second half of the columns (split)")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="force the progress bar on or off (default: on a terminal)")


def summary(manifest, out):
    """One line per subset: what a converter wrote."""
    lines = [f"wrote {out}: {manifest['dataset']}, {len(manifest['classes'])} classes, features "
             f"rgb {manifest['feature_dims']['rgb']} / flow {manifest['feature_dims']['flow']} at "
             f"{manifest['feature_rate']:g} segments/s"]
    for subset, entry in manifest["subsets"].items():
        lines.append(f"  {subset}: {entry['videos']} videos, {entry['instances']} instances, "
                     f"{entry['segments']} segments in {entry['directory']}/")
    skipped = manifest["skipped_videos"]
    lines.append(f"  instances clipped to the video end: {manifest['clipped_segments']}, starting "
                 f"past it (kept): {manifest['segments_past_end']}; skipped videos: "
                 f"{len(skipped['missing_features'])} without features, "
                 f"{len(skipped['missing_annotations'])} without annotations")
    return "\n".join(lines)


def run_tool(convert, out, **arguments):
    """Runs a converter for a command-line tool: prints a summary, or `error: ...` and returns 1."""
    try:
        manifest = convert(out=out, **arguments)
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(summary(manifest, out))
    return 0

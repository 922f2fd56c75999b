"""Temporal action annotations from THUMOS14, ActivityNet1.3, W-TALC and UCF101 into one schema.

Every reader returns an `Annotations` with the same three tables:

- `videos`    one row per video: `video` (str id), `subset` ("training" | "validation" | "test"),
              `duration` (float seconds, NaN when unknown), `labels` (tuple of class names, sorted,
              unique) — the video-level labels that weak supervision trains on;
- `instances` one row per action instance: `video`, `subset`, `label`, `t_start`, `t_end` (seconds);
- `ambiguous` the THUMOS14 "Ambiguous" regions (same columns, label "Ambiguous"): hard to call action
              or background, excluded from evaluation; never a class and never in `instances`.

Sources and their quirks (all measured on the real files, see tests/test_annotations.py):

- THUMOS14 original txt (`read_thumos14_txt`): one `<Class>_val.txt` / `<Class>_test.txt` per class,
  lines `video start end`. Validation: 200 videos, 3,007 instances, 89 ambiguous regions; test: 212
  videos, 3,358 instances, 99 ambiguous regions. `video_test_0001292` has only Ambiguous regions, so
  it is not a video of the labelled set (its regions stay in `ambiguous`, it has no `videos` row).
  Every CliffDiving instance is also annotated as Diving (360 of them); kept as given, as are the
  known-wrong test videos 0000270 and 0001496 (G-TAD's thumos_gt.json leaves those two out).
- THUMOS14 BSN/G-TAD CSVs (`read_thumos14_csv`): the same instances as the txt files, row for row.
  In `thumos14_test_groundtruth.csv` the `label-idx` column is NOT the UCF101 index: it is the
  0-based position in the 20-class detection list (0 = BaseballPitch … 19 = VolleyballSpiking,
  -1 = Ambiguous); read that way the file matches `test_Annotation.csv` exactly.
- Segments past the video end: with the AFSD frame counts as durations, 30 THUMOS14 instances
  (22 in video_test_0000270, 3 in 0000814, 1 in 0001081, 2 in video_validation_0000364, 2 in
  0000856) lie entirely after the end of the video. `clip_to_duration` drops and counts them.
- ActivityNet1.3 (`read_activitynet_json`): the official JSON layout, or BSN's
  `anet_anno_action.json` (keys `v_<id>`, no subset) plus `video_info_new.csv`. 19,228 videos
  (9,649 training, 4,728 validation, 4,851 test without annotations), 200 classes, 22,152 instances.
- W-TALC `.npy` folders (`read_wtalc`): video-level labels come from `labels_all.npy` as W-TALC
  trains on them. In Thumos14reduced they disagree with the temporal annotations for 28 of the 412
  videos (e.g. video_validation_0000316 is labelled ThrowDiscus but has no ThrowDiscus instance;
  video_test_0000270, known-wrong, has no labels at all); kept as given. Videos keep the order of `videoname.npy`, to which W-TALC's feature array is aligned.
- UCF101 split lists (`read_ucf101_splits`): trimmed clips, so `instances` is empty — a whole clip
  is one instance of its class. Clip ids are file stems, which keep the file names' spelling
  (`v_HandStandPushups_g08_c01` for class HandstandPushups).

Ordering is deterministic: `videos` sorted by id (W-TALC and UCF101 keep their file order),
`instances` by (video, t_start, t_end, label) within that order.

Bad input raises `tfwsar.errors.DataError` naming the file and the 1-based line (or the video):
a malformed line (wrong number of fields, a time that is not a number), a segment ending before it
starts, or an unknown class.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import importlib.resources
import json
import math
import os
import pathlib
import re
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from tfwsar import files
from tfwsar.errors import DataError

VIDEO_COLUMNS = ("video", "subset", "duration", "labels")
INSTANCE_COLUMNS = ("video", "subset", "label", "t_start", "t_end")
SUBSETS = ("training", "validation", "test")
AMBIGUOUS_LABEL = "Ambiguous"
GROUND_TRUTH_VERSION = "tfwsar-1.0"
THUMOS14_CLASS_INDEX_NAME = "Class Index_Detection.txt"

# Subset spellings found in the sources → the three names used everywhere in tfwsar.
_SUBSET_NAMES = {
    "training": "training",
    "train": "training",
    "validation": "validation",
    "val": "validation",
    "testing": "test",
    "test": "test",
}
_THUMOS14_TXT_NAME = re.compile(r"^(?P<label>[A-Za-z0-9]+)_(?P<split>val|test)\.txt$")
_THUMOS14_VIDEO_PREFIXES = {"video_validation_": "validation", "video_test_": "test"}


@dataclasses.dataclass
class Annotations:
    """Labels of one dataset in the tfwsar schema (see the module docstring for the columns).

    Attributes:
      classes: class names in the order that defines class indices.
      videos: DataFrame `video, subset, duration, labels`, one row per video.
      instances: DataFrame `video, subset, label, t_start, t_end`, one row per action instance.
      ambiguous: DataFrame with the instance columns, label "Ambiguous" (empty outside THUMOS14).
      source: which reader built it ("thumos14_txt", "thumos14_csv", "activitynet_json", "wtalc",
        "ucf101", "ground_truth").
    """

    classes: list[str]
    videos: pd.DataFrame
    instances: pd.DataFrame
    ambiguous: pd.DataFrame
    source: str

    def select(self, subsets: str | Iterable[str]) -> "Annotations":
        """The same annotations restricted to `subsets` (e.g. "test" or ["validation", "test"])."""
        wanted = [subsets] if isinstance(subsets, str) else list(subsets)
        unknown = sorted(set(wanted) - set(SUBSETS))
        if unknown:
            raise ValueError(f"unknown subsets {unknown}; expected some of {list(SUBSETS)}")

        def keep(frame):
            return frame[frame["subset"].isin(wanted)].reset_index(drop=True)

        return Annotations(list(self.classes), keep(self.videos), keep(self.instances),
                           keep(self.ambiguous), self.source)

    def __repr__(self):
        return (f"Annotations(source={self.source!r}, classes={len(self.classes)}, "
                f"videos={len(self.videos)}, instances={len(self.instances)}, "
                f"ambiguous={len(self.ambiguous)})")


# ----------------------------------------------------------------------------------------------
# Packaged files


def packaged_thumos14_directory() -> pathlib.Path:
    """The original THUMOS14 txt annotations shipped in the package (val + test + class index)."""
    return _packaged("thumos14")


def packaged_ucf101_directory() -> pathlib.Path:
    """The UCF101 split-1 lists shipped in the package (classInd, trainlist01, testlist01)."""
    return _packaged("ucf101")


def _packaged(name):
    return pathlib.Path(str(importlib.resources.files("tfwsar") / "resources" / name))


# ----------------------------------------------------------------------------------------------
# THUMOS14


def read_thumos14_class_index(path) -> dict[str, int]:
    """Reads `Class Index_Detection.txt` (lines `UCF101_index ClassName`) → {name: index}, file order."""
    return _read_class_index(path)


def read_thumos14_txt(directory, video_info=None) -> Annotations:
    """Reads the original THUMOS14 temporal annotations found anywhere under `directory`.

    `directory` is searched recursively for `<Class>_val.txt`, `<Class>_test.txt` and
    `Ambiguous_val.txt` / `Ambiguous_test.txt` (lines `video_name start end`, seconds). `_val`
    files give subset "validation", `_test` files "test". Copies of the same file name in several
    folders are fine when byte-identical (W-TALC ships another Ambiguous_test.txt); differing
    copies raise DataError.

    Classes are the sorted class names, or the order of a `Class Index_Detection.txt` found in the
    tree (then a class file not listed there is an unknown class → DataError). A video is in
    `videos` only if it has at least one class instance (video_test_0001292, which only has
    Ambiguous regions, is not).

    Args:
      directory: root of the search.
      video_info: optional CSV (`video,duration`, or AFSD `video,fps,sample_fps,count,sample_count`
        with duration = count / fps) or JSON `{video: {"duration": s}}`, or a list of such files.
        Videos it does not list, and all videos without it, get a NaN duration.
    """
    root = pathlib.Path(directory)
    if not root.is_dir():
        raise DataError(f"{root}: not a directory (expected THUMOS14 <Class>_val.txt / _test.txt files)")
    files = collections.defaultdict(list)
    for path in sorted(root.rglob("*.txt")):
        match = _THUMOS14_TXT_NAME.match(path.name)
        if match:
            files[(match["label"], match["split"])].append(path)
    if not files:
        raise DataError(f"{root}: no THUMOS14 <Class>_val.txt or <Class>_test.txt file found")
    class_index_path = _find_unique(root, THUMOS14_CLASS_INDEX_NAME, required=False)

    parts, ambiguous_parts = [], []
    for (label, split), paths in sorted(files.items()):
        path = _same_content(paths)
        table = _read_segment_txt(path)
        table["subset"] = "validation" if split == "val" else "test"
        table["label"] = label
        (ambiguous_parts if label == AMBIGUOUS_LABEL else parts).append(table)
    class_files = {label: paths[0] for (label, _), paths in files.items() if label != AMBIGUOUS_LABEL}
    if class_index_path is not None:
        classes = list(read_thumos14_class_index(class_index_path))
        for label, path in sorted(class_files.items()):
            if label not in classes:
                raise DataError(f"{path}: unknown class {label!r}, not in {class_index_path}")
    else:
        classes = sorted(class_files)

    instances = _instances_frame(_concat(parts))
    durations = _read_video_info(video_info)["duration"] if video_info is not None else None
    return Annotations(classes, _videos_from_instances(instances, durations), instances,
                       _instances_frame(_concat(ambiguous_parts)), "thumos14_txt")


def read_thumos14_csv(path, class_index=None, video_info=None) -> Annotations:
    """Reads a BSN/G-TAD THUMOS14 CSV.

    Two layouts, told apart by their header:
      - `val_Annotation.csv` / `test_Annotation.csv`: `video,type,type_idx,start,end,startFrame,
        endFrame`; `type_idx` is the UCF101 index of `type` (checked against the class index),
        0 for Ambiguous rows. No durations.
      - `thumos14_test_groundtruth.csv`: `video-name,t-init,t-end,f-init,f-end,video-duration,
        frame-rate,video-frames,label-idx`; `label-idx` is the 0-based position of the class in the
        class index (not its UCF101 index: that is what the real file holds), -1 for Ambiguous.
        Durations from `video-duration`.
    The subset comes from the video name (`video_validation_*` → validation, `video_test_*` → test).

    Args:
      path: the CSV file.
      class_index: `Class Index_Detection.txt`; defaults to the copy shipped in the package. Its
        order is the class order.
      video_info: optional durations as in `read_thumos14_txt`; when given they replace the file's.
    """
    path = pathlib.Path(path)
    index_path = (pathlib.Path(class_index) if class_index is not None
                  else packaged_thumos14_directory() / THUMOS14_CLASS_INDEX_NAME)
    class_index = read_thumos14_class_index(index_path)
    classes = list(class_index)
    table = _read_csv_table(path)
    columns = set(table.columns)
    durations = None
    if {"video", "type", "type_idx", "start", "end"} <= columns:
        type_index = _integers(table, "type_idx", path)
        labels = table["type"].str.strip().to_numpy(dtype=object)
        ambiguous = labels == AMBIGUOUS_LABEL
        known = np.array([label in class_index for label in labels]) | ambiguous
        _raise_at_first(path, table, ~known, lambda i: (
            f"unknown class {labels[i]!r} (not in {index_path})"))
        expected = np.array([0 if a else class_index[label] for label, a in zip(labels, ambiguous)])
        _raise_at_first(path, table, type_index != expected, lambda i: (
            f"type_idx {type_index[i]} does not match class {labels[i]!r} "
            f"(UCF101 index {expected[i]} in {index_path})"))
        frame = pd.DataFrame({"video": table["video"], "label": labels,
                              "t_start": _numbers(table, "start", path),
                              "t_end": _numbers(table, "end", path)})
    elif {"video-name", "t-init", "t-end", "label-idx"} <= columns:
        label_index = _integers(table, "label-idx", path)
        _raise_at_first(path, table, (label_index < -1) | (label_index >= len(classes)), lambda i: (
            f"unknown class: label-idx {label_index[i]} is neither -1 (Ambiguous) nor a position "
            f"0..{len(classes) - 1} in {index_path}"))
        ambiguous = label_index == -1
        names = np.array(classes + [AMBIGUOUS_LABEL], dtype=object)
        frame = pd.DataFrame({"video": table["video-name"], "label": names[label_index],
                              "t_start": _numbers(table, "t-init", path),
                              "t_end": _numbers(table, "t-end", path)})
        if "video-duration" in columns:
            frame["duration"] = _numbers(table, "video-duration", path)
            per_video = frame.groupby("video")["duration"].nunique()
            if (per_video > 1).any():
                raise DataError(f"{path}: video {per_video.index[per_video > 1][0]} has more than "
                                f"one video-duration")
            durations = frame.groupby("video")["duration"].first()
    else:
        raise DataError(f"{path}, line 1: not a THUMOS14 annotation CSV: header {list(table.columns)} "
                        f"has neither video,type,type_idx,start,end nor video-name,t-init,t-end,label-idx")
    _check_segment_order(path, frame["t_start"].to_numpy(), frame["t_end"].to_numpy(),
                         lambda i: f"line {table['line'].iloc[i]}")
    frame["subset"] = _thumos14_subsets(frame["video"], path, table)
    if video_info is not None:
        durations = _read_video_info(video_info)["duration"]
    instances = _instances_frame(frame[~ambiguous])
    return Annotations(classes, _videos_from_instances(instances, durations), instances,
                       _instances_frame(frame[ambiguous]), "thumos14_csv")


def _thumos14_subsets(videos, path, table):
    subsets = pd.Series(np.nan, index=videos.index, dtype=object)
    for prefix, subset in _THUMOS14_VIDEO_PREFIXES.items():
        subsets[videos.str.startswith(prefix)] = subset
    _raise_at_first(path, table, subsets.isna().to_numpy(), lambda i: (
        f"video {videos.iloc[i]!r} is neither video_validation_* nor video_test_*"))
    return subsets


# ----------------------------------------------------------------------------------------------
# ActivityNet


def read_activitynet_json(path, video_info=None) -> Annotations:
    """Reads ActivityNet1.3 annotations: the official JSON layout or BSN's `anet_anno_action.json`.

    Official layout: `{"version", "taxonomy", "database": {id: {"subset", "duration",
    "annotations": [{"segment": [s, e], "label"}]}}}`; subsets training / validation / testing
    become training / validation / test. Videos without annotations (the test set) are kept with
    empty labels. An extra per-video `"ambiguous": [[s, e], ...]` (tfwsar ground truth) is read
    into `ambiguous`.

    BSN layout: `{"v_<id>": {"duration_second", "annotations", ...}}` without subsets; pass BSN's
    `video_info_new.csv` (`video,numFrame,seconds,fps,rfps,subset,featureFrame`) as `video_info`.
    The `v_` prefix is stripped from the ids.

    Classes are the sorted set of annotation labels (the taxonomy is not used), so the official
    and the BSN file give the same class order.

    Args:
      path: the JSON file.
      video_info: BSN layout: required, gives the subsets. Official layout: optional, fills
        missing durations.
    """
    path = pathlib.Path(path)
    data = _load_json(path)
    info = _read_video_info(video_info, strip_v_prefix=True) if video_info is not None else None
    if isinstance(data, dict) and "database" in data:
        database = data["database"]
        if not isinstance(database, dict):
            raise DataError(f"{path}: \"database\" is not an object of videos")
        annotations = _from_database(path, database, classes=None, source="activitynet_json")
        if info is not None:
            missing = annotations.videos["duration"].isna()
            annotations.videos.loc[missing, "duration"] = (
                annotations.videos.loc[missing, "video"].map(info["duration"]))
        return annotations
    if not (isinstance(data, dict) and data and
            all(isinstance(record, dict) and "duration_second" in record for record in data.values())):
        raise DataError(f"{path}: neither the official ActivityNet layout (a \"database\" key) nor "
                        f"BSN's anet_anno_action.json layout (v_<id>: {{duration_second, annotations}})")
    if info is None or "subset" not in info:
        raise DataError(f"{path}: BSN's anet_anno_action.json has no subsets; pass video_info="
                        f"video_info_new.csv (with a subset column)")
    subset_of, duration_of = info["subset"].to_dict(), info["duration"].to_dict()
    database = {}
    for key, record in data.items():
        video = key[2:] if key.startswith("v_") else key
        if video not in subset_of:
            raise DataError(f"{path}: video {key} is not in {video_info}, so its subset is unknown")
        database[video] = {"subset": subset_of[video], "duration": record["duration_second"],
                           "annotations": record.get("annotations") or []}
    for video in subset_of.keys() - database.keys():
        database[video] = {"subset": subset_of[video], "duration": duration_of[video],
                           "annotations": []}
    return _from_database(path, database, classes=None, source="activitynet_json")


def _from_database(path, database, classes, source):
    """Official-layout `database` dict → Annotations. `classes=None`: the sorted labels."""
    video_ids, subsets, durations, video_labels = [], [], [], []
    rows = {"video": [], "label": [], "t_start": [], "t_end": []}
    ambiguous = {"video": [], "t_start": [], "t_end": []}
    for video, record in database.items():
        where = f"{path}: video {video}"
        if not isinstance(record, dict):
            raise DataError(f"{where}: expected an object with subset, duration, annotations")
        subset = record.get("subset")
        subset = _SUBSET_NAMES.get(subset) if isinstance(subset, str) else None
        if subset is None:
            raise DataError(f"{where}: unknown subset {record.get('subset')!r}; expected one of "
                            f"{sorted(_SUBSET_NAMES)}")
        duration = record.get("duration")
        labels = set()
        for annotation in record.get("annotations") or []:
            label = annotation.get("label") if isinstance(annotation, dict) else None
            if not isinstance(label, str) or not label:
                raise DataError(f"{where}: annotation {annotation!r} has no label")
            start, end = _segment(annotation.get("segment"), where)
            rows["video"].append(video)
            rows["label"].append(label)
            rows["t_start"].append(start)
            rows["t_end"].append(end)
            labels.add(label)
        for segment in record.get("ambiguous") or []:
            start, end = _segment(segment, where)
            ambiguous["video"].append(video)
            ambiguous["t_start"].append(start)
            ambiguous["t_end"].append(end)
        video_ids.append(video)
        subsets.append(subset)
        durations.append(_duration(duration, where))
        video_labels.append(tuple(sorted(labels)))

    for frame in (rows, ambiguous):
        starts, ends = np.asarray(frame["t_start"], float), np.asarray(frame["t_end"], float)
        _check_segment_order(path, starts, ends, lambda i, f=frame: f"video {f['video'][i]}")
    if classes is None:
        classes = sorted({label for labels in video_labels for label in labels})
    else:
        known = set(classes)
        for video, labels in zip(video_ids, video_labels):
            unknown = sorted(set(labels) - known)
            if unknown:
                raise DataError(f"{path}: video {video}: unknown class {unknown[0]!r} (not in the taxonomy)")
    videos = pd.DataFrame({"video": video_ids, "subset": subsets,
                           "duration": np.asarray(durations, float), "labels": video_labels})
    videos = videos.sort_values("video", kind="stable").reset_index(drop=True)
    subset_of = dict(zip(video_ids, subsets))
    instances = pd.DataFrame(rows)
    instances["subset"] = instances["video"].map(subset_of)
    ambiguous = pd.DataFrame(ambiguous)
    ambiguous["subset"] = ambiguous["video"].map(subset_of)
    ambiguous["label"] = AMBIGUOUS_LABEL
    return Annotations(list(classes), videos, _instances_frame(instances),
                       _instances_frame(ambiguous), source)


def _segment(segment, where):
    try:
        start, end = (float(value) for value in segment)
    except (TypeError, ValueError):
        raise DataError(f"{where}: segment {segment!r} is not two numbers [start, end]") from None
    if not (math.isfinite(start) and math.isfinite(end)):
        raise DataError(f"{where}: segment {segment!r} is not two finite numbers")
    return start, end


def _duration(value, where):
    if value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        raise DataError(f"{where}: duration {value!r} is not a number") from None


# ----------------------------------------------------------------------------------------------
# W-TALC


def read_wtalc(directory) -> Annotations:
    """Reads a W-TALC annotation folder of aligned `.npy` arrays (plus optional Ambiguous_test.txt).

    Files: `videoname.npy`, `subset.npy`, `duration.npy` (N or N×1 seconds), `labels.npy` (per
    video, the class of each instance), `segments.npy` (per video, a list of [start, end]),
    `labels_all.npy` (per video, its video-level classes), `classlist.npy` (class order). Strings
    may be bytes or unicode. `labels` of a video is `labels_all`, as W-TALC trains on; videos keep
    the order of `videoname.npy`. A non-empty `Ambiguous_test.txt` fills `ambiguous`.
    """
    root = pathlib.Path(directory)
    arrays = {name: _load_npy(root / f"{name}.npy") for name in
              ("videoname", "subset", "duration", "labels", "segments", "labels_all", "classlist")}
    classes = _decode_all(arrays["classlist"])
    video_ids = _decode_all(arrays["videoname"])
    count = len(video_ids)
    for name, array in arrays.items():
        if name != "classlist" and len(array) != count:
            raise DataError(f"{root / (name + '.npy')}: {len(array)} entries, but videoname.npy has {count}")
    raw_subsets = _decode_all(arrays["subset"])
    subsets = [_SUBSET_NAMES.get(subset) for subset in raw_subsets]
    for video, raw, subset in zip(video_ids, raw_subsets, subsets):
        if subset is None:
            raise DataError(f"{root / 'subset.npy'}: video {video}: unknown subset {raw!r}")
    durations = np.asarray(arrays["duration"], dtype=float).reshape(count, -1)[:, 0]

    known = set(classes)
    video_labels = []
    for video, labels in zip(video_ids, arrays["labels_all"]):
        labels = _decode_all(labels)
        unknown = sorted(set(labels) - known)
        if unknown:
            raise DataError(f"{root / 'labels_all.npy'}: video {video}: unknown class {unknown[0]!r} "
                            f"(not in classlist.npy)")
        video_labels.append(tuple(sorted(set(labels))))

    lengths = []
    for video, labels, segments in zip(video_ids, arrays["labels"], arrays["segments"]):
        if len(labels) != len(segments):
            raise DataError(f"{root / 'segments.npy'}: video {video}: {len(segments)} segments but "
                            f"{len(labels)} labels in labels.npy")
        lengths.append(len(labels))
    instance_labels = [label for labels in arrays["labels"] for label in _decode_all(labels)]
    flat_segments = [segment for segments in arrays["segments"] for segment in segments]
    instance_videos = np.repeat(np.asarray(video_ids, dtype=object), lengths)
    try:
        bounds = np.asarray(flat_segments, dtype=float).reshape(-1, 2)
        if len(bounds) != len(flat_segments):
            raise ValueError
    except (TypeError, ValueError):
        raise DataError(f"{root / 'segments.npy'}: segments are not lists of [start, end] numbers") from None
    _check_segment_order(root / "segments.npy", bounds[:, 0], bounds[:, 1],
                         lambda i: f"video {instance_videos[i]}")
    for i in np.flatnonzero([label not in known for label in instance_labels])[:1]:
        raise DataError(f"{root / 'labels.npy'}: video {instance_videos[i]}: unknown class "
                        f"{instance_labels[i]!r} (not in classlist.npy)")

    videos = pd.DataFrame({"video": video_ids, "subset": subsets, "duration": durations,
                           "labels": video_labels})
    duplicated = videos["video"].duplicated()
    if duplicated.any():
        raise DataError(f"{root / 'videoname.npy'}: video {videos['video'][duplicated].iloc[0]} appears twice")
    instances = pd.DataFrame({"video": instance_videos, "label": instance_labels,
                              "t_start": bounds[:, 0], "t_end": bounds[:, 1]})
    instances["subset"] = np.repeat(np.asarray(subsets, dtype=object), lengths)
    ambiguous = pd.DataFrame(columns=INSTANCE_COLUMNS)
    ambiguous_path = root / "Ambiguous_test.txt"
    if ambiguous_path.is_file():
        ambiguous = _read_segment_txt(ambiguous_path)
        ambiguous["subset"] = ambiguous["video"].map(dict(zip(video_ids, subsets))).fillna("test")
        ambiguous["label"] = AMBIGUOUS_LABEL
    order = {video: position for position, video in enumerate(video_ids)}
    return Annotations(classes, videos, _instances_frame(instances, order),
                       _instances_frame(ambiguous, order), "wtalc")


def _load_npy(path):
    try:
        return np.load(path, allow_pickle=True)
    except (OSError, ValueError) as error:
        raise DataError(f"{path}: cannot read W-TALC array: {error}") from error


def _decode_all(values):
    return [value.decode("utf-8") if isinstance(value, bytes) else str(value) for value in values]


# ----------------------------------------------------------------------------------------------
# UCF101


def read_ucf101_splits(directory, split=1) -> Annotations:
    """Reads the official UCF101 split lists: `classInd.txt`, `trainlist0N.txt`, `testlist0N.txt`.

    `classInd.txt` lines are `index ClassName` (1-based); train lines `Class/v_Class_gXX_cYY.avi
    index`, test lines `Class/v_Class_gXX_cYY.avi` (class from the folder). Clips are trimmed: each
    is one instance of its class from start to end, so `instances` is empty and the clip's class is
    its `labels`. Video ids are the file stems; subsets "training" and "test"; durations NaN.

    Args:
      directory: the folder holding the lists (searched recursively if they are deeper).
      split: 1, 2 or 3.
    """
    if split not in (1, 2, 3):
        raise ValueError(f"UCF101 split must be 1, 2 or 3, got {split!r}")
    root = pathlib.Path(directory)
    class_index_path = _find_unique(root, "classInd.txt")
    class_index = _read_class_index(class_index_path)
    parts = []
    for list_name, subset, columns in ((f"trainlist0{split}.txt", "training", ("clip", "index")),
                                       (f"testlist0{split}.txt", "test", ("clip",))):
        path = _find_unique(root, list_name)
        table = _read_text_table(path, columns)
        folders = table["clip"].str.rpartition("/")[0].str.rpartition("/")[2]
        _raise_at_first(path, table, ~folders.isin(list(class_index)).to_numpy(), lambda i: (
            f"unknown class {folders.iloc[i]!r} (the clip's folder is not in {class_index_path})"))
        if "index" in table:
            indices = _integers(table, "index", path)
            expected = folders.map(class_index).to_numpy()
            _raise_at_first(path, table, indices != expected, lambda i: (
                f"label {indices[i]} does not match class {folders.iloc[i]!r} "
                f"(index {expected[i]} in {class_index_path})"))
        stems = table["clip"].str.rpartition("/")[2].str.replace(r"\.[^.]*$", "", regex=True)
        duplicated = stems.duplicated().to_numpy()
        _raise_at_first(path, table, duplicated, lambda i: f"clip {stems.iloc[i]} is listed twice")
        parts.append(pd.DataFrame({"video": stems, "subset": subset, "duration": math.nan,
                                   "labels": [(folder,) for folder in folders]}))
    videos = pd.concat(parts, ignore_index=True)
    if videos["video"].duplicated().any():
        raise DataError(f"{root}: clip {videos['video'][videos['video'].duplicated()].iloc[0]} is in "
                        f"both the train and the test list of split {split}")
    empty = _instances_frame(None)
    return Annotations(list(class_index), videos, empty, empty.copy(), "ucf101")


def _class_key(name):
    """Class names compared across datasets: lower case, letters and digits only."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def ucf101_classes_overlapping(target_classes: Sequence[str], ucf_classes: Iterable[str]) -> dict[str, str]:
    """Maps each target class that is also a UCF101 class to its UCF101 name.

    Names match after lower-casing and dropping everything but letters and digits (ActivityNet's
    "Long jump" is UCF101's "LongJump"; THUMOS14's 20 detection classes are UCF101 names already);
    each UCF101 class serves one target class at most.

    Returns {target name: UCF101 name} in target order; classes without a UCF101 twin are left out.
    """
    ucf_by_key = {_class_key(name): name for name in ucf_classes}
    matched = {}
    for target in target_classes:
        ucf_name = ucf_by_key.get(_class_key(target))
        if ucf_name is not None and ucf_name not in matched.values():
            matched[target] = ucf_name
    return matched


# ----------------------------------------------------------------------------------------------
# Ground truth JSON (ActivityNet layout)


def write_ground_truth(path, annotations: Annotations, subsets=None) -> None:
    """Writes `annotations` as an ActivityNet-layout ground-truth JSON, atomically.

    Layout: `{"version": "tfwsar-1.0", "taxonomy": [{"nodeName": class}, ...] (in class order, so
    the class indices survive a round trip), "database": {video: {"subset", "duration" (null when
    unknown), "annotations": [{"segment": [s, e], "label"}]}}}`. When the annotations have
    ambiguous regions (THUMOS14), every video also gets `"ambiguous": [[s, e], ...]`; regions of
    videos outside `videos` (video_test_0001292) are not written.

    Args:
      path: output file; written to a temporary name in the same folder, then renamed.
      annotations: what to write.
      subsets: None for all, or the subsets to keep (e.g. ["test"]).
    """
    if subsets is not None:
        annotations = annotations.select(subsets)
    with_ambiguous = not annotations.ambiguous.empty

    def segments_by_video(frame):
        grouped = collections.defaultdict(list)
        for video, label, start, end in zip(frame["video"], frame["label"], frame["t_start"], frame["t_end"]):
            grouped[video].append((label, float(start), float(end)))
        return grouped

    instances = segments_by_video(annotations.instances)
    ambiguous = segments_by_video(annotations.ambiguous)
    database = {}
    for video, subset, duration in zip(annotations.videos["video"], annotations.videos["subset"],
                                       annotations.videos["duration"]):
        record = {"subset": subset,
                  "duration": None if pd.isna(duration) else float(duration),
                  "annotations": [{"segment": [start, end], "label": label}
                                  for label, start, end in instances.get(video, [])]}
        if with_ambiguous:
            record["ambiguous"] = [[start, end] for _, start, end in ambiguous.get(video, [])]
        database[video] = record
    document = {"version": GROUND_TRUTH_VERSION,
                "taxonomy": [{"nodeName": name} for name in annotations.classes],
                "database": database}
    _write_json_atomically(path, document)


def read_ground_truth(path) -> Annotations:
    """Reads a ground-truth JSON written by `write_ground_truth` (or any official-layout file).

    Classes are the taxonomy's leaves (nodes that are no other node's `parentName`; all nodes of
    the flat tfwsar taxonomy) in file order, so class indices survive the round trip; a label
    outside them raises DataError. Without a taxonomy, the sorted labels. The per-video
    `"ambiguous"` lists fill `ambiguous`.
    """
    path = pathlib.Path(path)
    data = _load_json(path)
    if not (isinstance(data, dict) and isinstance(data.get("database"), dict)):
        raise DataError(f"{path}: not an ActivityNet-layout ground truth (no \"database\" object)")
    taxonomy = data.get("taxonomy") or []
    classes = None
    if taxonomy:
        try:
            names = [node["nodeName"] for node in taxonomy]
            parents = {node.get("parentName") for node in taxonomy}
        except (TypeError, KeyError, AttributeError):
            raise DataError(f"{path}: taxonomy entries must be objects with a \"nodeName\"") from None
        classes = [name for name in names if name not in parents]
    return _from_database(path, data["database"], classes=classes, source="ground_truth")


def _write_json_atomically(path, document):
    files.write_json_atomically(path, document, indent=None)


def clip_to_duration(annotations: Annotations, *, return_dropped: bool = False):
    """Clips instance ends past the video duration; drops instances that start at or after it.

    An instance with `t_start < duration < t_end` gets `t_end = duration` (clipped); one with
    `t_start >= duration` lies outside the video and is removed (dropped, counted separately). A
    video loses a label when every instance of that label was dropped. Videos of unknown (NaN)
    duration and the ambiguous regions are left alone.

    Returns:
      `(annotations, number_clipped)`, or `(annotations, number_clipped, number_dropped)` with
      `return_dropped=True`. On THUMOS14 with the AFSD frame counts: 0 clipped, 30 dropped.
    """
    instances = annotations.instances
    duration = instances["video"].map(annotations.videos.set_index("video")["duration"]).to_numpy(float)
    with np.errstate(invalid="ignore"):
        dropped = instances["t_start"].to_numpy() >= duration
        clipped = ~dropped & (instances["t_end"].to_numpy() > duration)
    kept = instances[~dropped].copy()
    kept.loc[clipped[~dropped], "t_end"] = duration[~dropped][clipped[~dropped]]

    videos = annotations.videos
    lost = (set(zip(instances["video"][dropped], instances["label"][dropped]))
            - set(zip(kept["video"], kept["label"])))
    if lost:
        videos = videos.copy()
        lost_by_video = collections.defaultdict(set)
        for video, label in lost:
            lost_by_video[video].add(label)
        videos["labels"] = [tuple(label for label in labels if label not in lost_by_video.get(video, ()))
                            for video, labels in zip(videos["video"], videos["labels"])]
    result = Annotations(list(annotations.classes), videos, kept.reset_index(drop=True),
                         annotations.ambiguous, annotations.source)
    if return_dropped:
        return result, int(clipped.sum()), int(dropped.sum())
    return result, int(clipped.sum())


# ----------------------------------------------------------------------------------------------
# Shared parsing and validation helpers


def _read_text_table(path, columns) -> pd.DataFrame:
    """Whitespace-separated text file → DataFrame of strings with `columns` plus `line` (1-based).

    Blank lines are skipped; CRLF and a UTF-8 BOM are tolerated; any other line must have exactly
    `len(columns)` fields.
    """
    path = pathlib.Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot read: {error}") from error
    rows, numbers = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != len(columns):
            raise DataError(f"{path}, line {number}: expected {len(columns)} whitespace-separated "
                            f"fields ({' '.join(columns)}), found {len(fields)}: {line.strip()!r}")
        rows.append(fields)
        numbers.append(number)
    table = pd.DataFrame(rows, columns=list(columns), dtype=object)
    table["line"] = np.asarray(numbers, dtype=np.int64)
    return table


def _read_segment_txt(path) -> pd.DataFrame:
    """A THUMOS14 `video start end` file → DataFrame `video, t_start, t_end` (checked)."""
    table = _read_text_table(path, ("video", "start", "end"))
    frame = pd.DataFrame({"video": table["video"], "t_start": _numbers(table, "start", path),
                          "t_end": _numbers(table, "end", path)})
    _check_segment_order(path, frame["t_start"].to_numpy(), frame["t_end"].to_numpy(),
                         lambda i: f"line {table['line'].iloc[i]}")
    return frame


def _read_class_index(path) -> dict[str, int]:
    """`index ClassName` lines (UCF101 classInd.txt, THUMOS14 Class Index_Detection.txt) → {name: index}."""
    table = _read_text_table(path, ("index", "name"))
    indices = _integers(table, "index", path)
    _raise_at_first(path, table, table["name"].duplicated().to_numpy(),
                    lambda i: f"class {table['name'].iloc[i]!r} is listed twice")
    _raise_at_first(path, table, pd.Series(indices).duplicated().to_numpy(),
                    lambda i: f"index {indices[i]} is listed twice")
    if table.empty:
        raise DataError(f"{path}: no classes")
    return dict(zip(table["name"], (int(index) for index in indices)))


def _read_csv_table(path) -> pd.DataFrame:
    """CSV with a header → DataFrame of strings plus `line` (1-based line of each row)."""
    path = pathlib.Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = [name.strip() for name in next(reader, [])]
            if not header:
                raise DataError(f"{path}, line 1: empty file, expected a CSV header")
            rows, numbers = [], []
            for row in reader:
                if not any(field.strip() for field in row):
                    continue
                if len(row) != len(header):
                    raise DataError(f"{path}, line {reader.line_num}: expected {len(header)} "
                                    f"comma-separated fields ({','.join(header)}), found {len(row)}")
                rows.append(row)
                numbers.append(reader.line_num)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"{path}: cannot read CSV: {error}") from error
    table = pd.DataFrame(rows, columns=header, dtype=object)
    table["line"] = np.asarray(numbers, dtype=np.int64)
    return table


def _numbers(table, column, path) -> np.ndarray:
    """A column of a parsed table as finite floats; DataError naming the line of the first bad one."""
    values = pd.to_numeric(table[column].str.strip(), errors="coerce").to_numpy(dtype=float)
    _raise_at_first(path, table, ~np.isfinite(values),
                    lambda i: f"{column} {table[column].iloc[i]!r} is not a number")
    return values


def _integers(table, column, path) -> np.ndarray:
    values = _numbers(table, column, path)
    _raise_at_first(path, table, values != np.round(values),
                    lambda i: f"{column} {table[column].iloc[i]!r} is not an integer")
    return values.astype(np.int64)


def _raise_at_first(path, table, bad: np.ndarray, message: Callable[[int], str]) -> None:
    """Raises DataError `<path>, line <n>: <message(i)>` for the first row i where `bad` holds."""
    positions = np.flatnonzero(bad)
    if positions.size:
        i = int(positions[0])
        raise DataError(f"{path}, line {table['line'].iloc[i]}: {message(i)}")


def _check_segment_order(path, t_start, t_end, where: Callable[[int], str]) -> None:
    """DataError naming the file and `where(i)` (a line or a video) of the first end < start."""
    positions = np.flatnonzero(np.asarray(t_end) < np.asarray(t_start))
    if positions.size:
        i = int(positions[0])
        raise DataError(f"{path}, {where(i)}: segment end {t_end[i]} is before its start {t_start[i]}")


def _read_video_info(path, strip_v_prefix=False) -> pd.DataFrame:
    """Per-video durations (and subsets if present) → DataFrame indexed by video.

    CSV: `video` plus `duration`, or `seconds` (BSN), or `count` and `fps` (AFSD; duration =
    count / fps); an optional `subset` column. JSON: `{video: {"duration": s, "subset": ...}}`.
    With `strip_v_prefix`, a `v_` prefix carried by every id (BSN's ActivityNet ids) is removed.
    `path` may also be a list of such files (AFSD's val_video_info.csv + test_video_info.csv).
    """
    if not isinstance(path, (str, os.PathLike)):
        infos = [_read_video_info(one, strip_v_prefix) for one in path]
        info = pd.concat(infos) if infos else pd.DataFrame({"duration": []}, index=pd.Index([], name="video"))
        duplicated = info.index.duplicated()
        if duplicated.any():
            raise DataError(f"video {info.index[duplicated][0]} is in more than one of {list(path)}")
        return info
    path = pathlib.Path(path)
    if path.suffix.lower() == ".json":
        data = _load_json(path)
        if not isinstance(data, dict) or not all(isinstance(value, dict) for value in data.values()):
            raise DataError(f"{path}: expected {{video: {{\"duration\": seconds, ...}}}}")
        info = pd.DataFrame({
            "video": list(data),
            "duration": [_duration(record.get("duration"), f"{path}: video {video}")
                         for video, record in data.items()]})
        if all("subset" in record for record in data.values()):
            info["subset"] = [record["subset"] for record in data.values()]
        lines = None
    else:
        table = _read_csv_table(path)
        if "video" not in table:
            raise DataError(f"{path}, line 1: video info needs a `video` column, header is "
                            f"{[c for c in table.columns if c != 'line']}")
        if "duration" in table:
            duration = _numbers(table, "duration", path)
        elif "seconds" in table:
            duration = _numbers(table, "seconds", path)
        elif {"count", "fps"} <= set(table.columns):
            duration = _numbers(table, "count", path) / _numbers(table, "fps", path)
        else:
            raise DataError(f"{path}, line 1: video info needs a `duration` column, `seconds`, or "
                            f"`count` and `fps`")
        info = pd.DataFrame({"video": table["video"].str.strip(), "duration": duration})
        if "subset" in table:
            info["subset"] = table["subset"].str.strip()
        lines = table
    if strip_v_prefix and len(info) and info["video"].str.startswith("v_").all():
        info["video"] = info["video"].str.slice(2)
    if "subset" in info:
        normalised = info["subset"].map(_SUBSET_NAMES)
        bad = normalised.isna().to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            where = f"line {lines['line'].iloc[i]}" if lines is not None else f"video {info['video'].iloc[i]}"
            raise DataError(f"{path}, {where}: unknown subset {info['subset'].iloc[i]!r}")
        info["subset"] = normalised
    duplicated = info["video"].duplicated().to_numpy()
    if duplicated.any():
        raise DataError(f"{path}: video {info['video'][duplicated].iloc[0]} is listed twice")
    return info.set_index("video")


def _find_unique(root, name, required=True):
    """The file `name` directly in `root`, else the only one (by content) anywhere below it."""
    root = pathlib.Path(root)
    direct = root / name
    if direct.is_file():
        return direct
    found = sorted(path for path in root.rglob(name) if path.is_file()) if root.is_dir() else []
    if not found:
        if required:
            raise DataError(f"{root}: no {name} found")
        return None
    return _same_content(found)


def _same_content(paths):
    """The first of `paths` if all are byte-identical copies, else DataError."""
    first = paths[0]
    content = first.read_bytes() if len(paths) > 1 else None
    for other in paths[1:]:
        if other.read_bytes() != content:
            raise DataError(f"two different files named {first.name}: {first} and {other}")
    return first


def _load_json(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except OSError as error:
        raise DataError(f"{path}: cannot read: {error}") from error
    except json.JSONDecodeError as error:
        raise DataError(f"{path}, line {error.lineno}: invalid JSON: {error.msg}") from error


def _concat(frames):
    frames = [frame for frame in frames if len(frame)]
    return pd.concat(frames, ignore_index=True) if frames else None


def _instances_frame(frame, video_order: Mapping[str, int] | None = None) -> pd.DataFrame:
    """`frame` (or None) → the instance columns with their dtypes, in the canonical order.

    Sorted by (video, t_start, t_end, label); `video_order` ({video: position}) replaces the
    alphabetical video order (W-TALC keeps its file order).
    """
    if frame is None or len(frame) == 0:
        return pd.DataFrame({"video": pd.Series(dtype=object), "subset": pd.Series(dtype=object),
                             "label": pd.Series(dtype=object), "t_start": pd.Series(dtype=float),
                             "t_end": pd.Series(dtype=float)})
    frame = pd.DataFrame({"video": frame["video"].astype(str).to_numpy(dtype=object),
                          "subset": frame["subset"].to_numpy(dtype=object),
                          "label": frame["label"].to_numpy(dtype=object),
                          "t_start": frame["t_start"].to_numpy(dtype=float),
                          "t_end": frame["t_end"].to_numpy(dtype=float)})
    keys = ["video", "t_start", "t_end", "label"]
    if video_order is not None:
        frame["_position"] = frame["video"].map(video_order).fillna(len(video_order))
        keys = ["_position"] + keys
    frame = frame.sort_values(keys, kind="stable").reset_index(drop=True)
    return frame.drop(columns=["_position"], errors="ignore")


def _videos_from_instances(instances, durations: pd.Series | None) -> pd.DataFrame:
    """One row per video of `instances`: its subset, duration (from `durations`, else NaN), labels."""
    subsets = instances[["video", "subset"]].drop_duplicates()
    twice = subsets["video"].duplicated()
    if twice.any():
        video = subsets["video"][twice].iloc[0]
        raise DataError(f"video {video} is annotated in more than one subset "
                        f"({sorted(subsets['subset'][subsets['video'] == video])})")
    pairs = instances[["video", "label"]].drop_duplicates().sort_values(["video", "label"])
    labels = pairs.groupby("video", sort=True)["label"].agg(tuple)
    videos = pd.DataFrame({"video": labels.index.to_numpy(dtype=object)})
    videos["subset"] = videos["video"].map(subsets.set_index("video")["subset"])
    videos["duration"] = (videos["video"].map(durations).astype(float) if durations is not None
                          else math.nan)
    videos["labels"] = labels.to_numpy()
    return videos

"""The converted dataset format: one TFRecord file per video + manifest.json + ground_truth.json.

A converted dataset directory holds

  manifest.json        {"format": "tfwsar-v3", "dataset", "classes", "feature_fps", "feature_stride",
                        "feature_rate" (= fps / stride, segments per second),
                        "feature_dims": {"rgb": D_rgb, "flow": D_flow},
                        "subsets": {subset: {"videos", "instances", "segments", "directory"}},
                        "clipped_segments", "segments_past_end", "skipped_videos", "source"}
  ground_truth.json    ActivityNet layout (`annotations.write_ground_truth`), durations filled in,
                       instance ends clipped to the video end (instances that start after the end
                       are kept as annotated: the official evaluations count them)
  <subset>/index.tsv   one row per video, in file order: file, video, num_segments, duration,
                       labels (class indices separated by spaces; empty for none)
  <subset>/000000.tfrecord, 000001.tfrecord, …
                       one file per video holding one `tf.train.Example`:
                         video (bytes), subset (bytes), duration (float, seconds),
                         num_segments (int64, T), rgb (bytes: T·D_rgb float32 little-endian,
                         row-major [T, D_rgb]), flow (bytes, same), labels (int64 list: indices
                         into the manifest's classes).

Why one file per video: training reads videos in a seeded random order by index
(`tfwsar.data.pipeline`), so no shuffle buffer holds the dataset in memory or in checkpoints, and a
run's input position is one number (the step). A file per video is the random access that plain
`tf.data` ops give (ActivityNet1.3: ~19,000 files). Earlier formats ("tfwsar-v1": size-based
shards; "tfwsar-v2": an index without labels) are not read any more: convert again.

`write_converted_dataset` writes one from annotations (`tfwsar.data.annotations`) and a feature
source (`tfwsar.data.features`); `parse_example` turns a serialized example back into tensors
inside a `tf.data` pipeline.

Timing: segment t covers [t / F, (t + 1) / F) seconds, F = feature_rate = feature_fps /
feature_stride (25 / 16 = 1.5625 for I3D on THUMOS14). A video whose duration the annotations do
not give gets T / F.
"""

import dataclasses
import json
import os
import pathlib
import shutil
import tempfile

import numpy as np
import pandas as pd
import tensorflow as tf

from tfwsar.data import annotations as annotation_io
from tfwsar.errors import DataError
from tfwsar.progress import progress

FORMAT = "tfwsar-v3"
INDEX_NAME = "index.tsv"
INDEX_COLUMNS = ("file", "video", "num_segments", "duration", "labels")
MANIFEST_NAME = "manifest.json"
GROUND_TRUTH_NAME = "ground_truth.json"
SUBSET_ORDER = ("training", "validation", "test")
_LISTED_IN_ERRORS = 10


# ----------------------------------------------------------------------------------------------
# One example


def serialize_video(video, subset, duration, rgb, flow, label_indices):
    """One video as a serialized `tf.train.Example`.

    Args:
      video: video id.
      subset: "training" | "validation" | "test".
      duration: seconds.
      rgb: [T, D_rgb] float32.
      flow: [T, D_flow] float32, same T.
      label_indices: class indices of the video-level labels (may be empty).

    Returns:
      bytes.
    """
    rgb = np.ascontiguousarray(rgb, dtype="<f4")
    flow = np.ascontiguousarray(flow, dtype="<f4")
    if rgb.ndim != 2 or flow.ndim != 2 or rgb.shape[0] != flow.shape[0]:
        raise ValueError(f"video {video}: rgb {rgb.shape} and flow {flow.shape} must be [T, D] "
                         f"with the same T")

    def bytes_feature(value):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    feature = {
        "video": bytes_feature(video.encode("utf-8")),
        "subset": bytes_feature(subset.encode("utf-8")),
        "duration": tf.train.Feature(float_list=tf.train.FloatList(value=[float(duration)])),
        "num_segments": tf.train.Feature(int64_list=tf.train.Int64List(value=[rgb.shape[0]])),
        "rgb": bytes_feature(rgb.tobytes()),
        "flow": bytes_feature(flow.tobytes()),
        "labels": tf.train.Feature(int64_list=tf.train.Int64List(
            value=[int(index) for index in label_indices])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


_FEATURE_SPEC = {
    "video": tf.io.FixedLenFeature([], tf.string),
    "subset": tf.io.FixedLenFeature([], tf.string),
    "duration": tf.io.FixedLenFeature([], tf.float32),
    "num_segments": tf.io.FixedLenFeature([], tf.int64),
    "rgb": tf.io.FixedLenFeature([], tf.string),
    "flow": tf.io.FixedLenFeature([], tf.string),
    "labels": tf.io.VarLenFeature(tf.int64),
}


def parse_example(serialized, num_classes, rgb_dim, flow_dim):
    """Parses one serialized example (graph-compatible: use it in `dataset.map`).

    Args:
      serialized: scalar string tensor.
      num_classes: C, the length of the manifest's classes.
      rgb_dim, flow_dim: D_rgb, D_flow from the manifest's feature_dims.

    Returns:
      dict: `rgb` [T, D_rgb] float32, `flow` [T, D_flow] float32, `labels` [C] float32 multi-hot,
      `video` string, `subset` string, `duration` float32, `num_segments` int32.
    """
    parsed = tf.io.parse_single_example(serialized, _FEATURE_SPEC)
    rgb = tf.reshape(tf.io.decode_raw(parsed["rgb"], tf.float32, little_endian=True), [-1, rgb_dim])
    flow = tf.reshape(tf.io.decode_raw(parsed["flow"], tf.float32, little_endian=True),
                      [-1, flow_dim])
    label_indices = tf.sparse.to_dense(parsed["labels"])
    # Sum of one-hot rows, capped at 1: an empty label list gives zeros [C].
    labels = tf.minimum(tf.reduce_sum(tf.one_hot(label_indices, num_classes, dtype=tf.float32),
                                      axis=0), 1.0)
    return {
        "rgb": rgb,
        "flow": flow,
        "labels": labels,
        "video": parsed["video"],
        "subset": parsed["subset"],
        "duration": parsed["duration"],
        "num_segments": tf.cast(parsed["num_segments"], tf.int32),
    }


# ----------------------------------------------------------------------------------------------
# A converted directory


def read_manifest(directory):
    """The manifest.json of a converted dataset directory, as a dict.

    Raises:
      DataError: no manifest.json, invalid JSON, or not the current format (FORMAT).
    """
    path = pathlib.Path(directory) / MANIFEST_NAME
    try:
        with open(path, encoding="utf-8") as handle:
            manifest = json.load(handle)
    except FileNotFoundError:
        raise DataError(f"{directory} is not a converted dataset: {path} does not exist "
                        f"(make one with tools/convert_*.py)") from None
    except (OSError, json.JSONDecodeError) as error:
        raise DataError(f"{path}: cannot read: {error}") from error
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        hint = (" (written by an earlier tfwsar: convert the dataset again with "
                "tools/convert_*.py)" if found in ("tfwsar-v1", "tfwsar-v2") else "")
        raise DataError(f"{path}: format {found!r} is not {FORMAT!r}{hint}")
    return manifest


def read_index(directory, subset):
    """The videos of `subset` in file order: a DataFrame with columns `INDEX_COLUMNS`, `file` an
    absolute path. Empty if the dataset has no such subset.

    Raises:
      DataError: the index file is missing or malformed.
    """
    entry = read_manifest(directory)["subsets"].get(subset)
    if entry is None:
        return pd.DataFrame(columns=list(INDEX_COLUMNS))
    subset_dir = pathlib.Path(directory) / entry["directory"]
    path = subset_dir / INDEX_NAME
    try:
        index = pd.read_csv(path, sep="\t", dtype={"file": str, "video": str, "labels": str},
                            keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise DataError(f"{path}: cannot read the video index: {error}") from error
    if tuple(index.columns) != INDEX_COLUMNS or len(index) != entry["videos"]:
        raise DataError(f"{path}: expected columns {list(INDEX_COLUMNS)} and {entry['videos']} "
                        f"rows (manifest), found {list(index.columns)} and {len(index)} rows")
    return index.assign(file=[str(subset_dir / name) for name in index["file"]])


def record_paths(directory, subset):
    """Full paths of the per-video TFRecord files of `subset`, in order ([] if it is absent)."""
    return read_index(directory, subset)["file"].tolist()


def _describe(videos):
    videos = sorted(videos)
    listed = ", ".join(videos[:_LISTED_IN_ERRORS])
    more = len(videos) - _LISTED_IN_ERRORS
    return f"{len(videos)} video(s): {listed}" + (f", … and {more} more" if more > 0 else "")


def _check_out_dir(out_dir):
    """An existing out_dir is replaced only if it is an earlier conversion (or empty)."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise DataError(f"output {out_dir} exists and is not a directory")
    if not (out_dir / MANIFEST_NAME).is_file() and any(out_dir.iterdir()):
        raise DataError(f"output {out_dir} exists, is not empty and is not a converted dataset "
                        f"(no {MANIFEST_NAME}); refusing to replace it")


def _replace_directory(staged, out_dir):
    """Moves `staged` onto `out_dir`; an existing out_dir is moved aside first, then deleted."""
    if out_dir.exists():
        aside = pathlib.Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
        os.replace(out_dir, aside / "old")
        try:
            os.replace(staged, out_dir)
        except BaseException:
            os.replace(aside / "old", out_dir)
            raise
        shutil.rmtree(aside, ignore_errors=True)
    else:
        os.replace(staged, out_dir)


def _default_mode(mode):
    """`mode` under the process umask: what mkdir/open would give (mkdtemp gives 0700)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return mode & ~umask


def _clip_instances(annotations):
    """Clips instance ends to the video duration; leaves instances starting past the end alone.

    `annotations.clip_to_duration` clips `t_end` of an instance with t_start < duration < t_end.
    It would also drop instances that start at or after the end; those are kept here, unchanged,
    because the official evaluations count them (THUMOS14 has 30 with the usual durations, 22 of
    them in video_test_0000270's known-wrong annotations): dropping them would raise every
    method's mAP above the numbers papers report. No prediction can reach them.

    Returns:
      (annotations, number clipped, number starting past the end).
    """
    instances = annotations.instances
    duration = instances["video"].map(annotations.videos.set_index("video")["duration"])
    past_end = (instances["t_start"] >= duration).to_numpy()
    inside = dataclasses.replace(annotations, instances=instances[~past_end].reset_index(drop=True))
    inside, clipped = annotation_io.clip_to_duration(inside)
    if len(inside.instances) != int((~past_end).sum()):
        raise AssertionError("clip_to_duration dropped an instance that starts inside its video")
    instances = instances.copy()
    instances.loc[~past_end, "t_end"] = inside.instances["t_end"].to_numpy()
    # Video-level labels stay as annotated (clip_to_duration drops none here).
    return dataclasses.replace(annotations, instances=instances), clipped, int(past_end.sum())


class _SubsetWriter:
    """Writes one subset's videos, one TFRecord file each, into `<subset>/`, and its index.tsv."""

    def __init__(self, directory, subset):
        self.directory = directory / subset
        self.directory.mkdir()
        self.rows = []

    def write(self, serialized, video, num_segments, duration, label_indices):
        name = f"{len(self.rows):06d}.tfrecord"
        with tf.io.TFRecordWriter(str(self.directory / name)) as writer:
            writer.write(serialized)
        self.rows.append((name, video, int(num_segments), float(duration),
                          " ".join(str(index) for index in label_indices)))

    def close(self):
        """Writes index.tsv; returns the number of videos."""
        pd.DataFrame(self.rows, columns=list(INDEX_COLUMNS)).to_csv(
            self.directory / INDEX_NAME, sep="\t", index=False)
        return len(self.rows)


def _ordered_subsets(subsets):
    known = [subset for subset in SUBSET_ORDER if subset in subsets]
    return known + sorted(set(subsets) - set(known))


def write_converted_dataset(out_dir, *, name, annotations, features, feature_fps=25.0,
                            feature_stride=16, on_missing="error", show_progress=None,
                            extra_manifest=None):
    """Converts annotations + features into a dataset directory (see the module docstring).

    Every video of `annotations.videos` must have features in `features` and vice versa. A video
    missing on one side raises DataError listing the videos and the side that lacks them, unless
    `on_missing="skip"`: then they are left out and listed in the manifest's "skipped_videos"
    (`{"missing_features": [...], "missing_annotations": [...]}`).

    A video's duration is the annotated one when known, else T / feature_rate. Instances ending
    past their video's end are clipped to it ("clipped_segments"); instances starting at or after
    the end are kept unchanged and counted ("segments_past_end"), see `_clip_instances`.

    The directory appears atomically: everything is written into a temporary sibling that is
    renamed onto `out_dir` at the end. If anything fails, the temporary directory is removed and
    `out_dir` is left as it was (absent, or the previous conversion). An existing `out_dir` is
    replaced only if it holds a manifest.json (a previous conversion) or is empty.

    Args:
      out_dir: the dataset directory to create.
      name: dataset name recorded in the manifest ("thumos14", ...).
      annotations: `tfwsar.data.annotations.Annotations`.
      features: a feature source (`tfwsar.data.features`): `.videos()`, `.read(video)`.
      feature_fps: frames per second the features were extracted at.
      feature_stride: frames per segment.
      on_missing: "error" or "skip".
      show_progress: True/False forces the progress bar; None shows it on a terminal.
      extra_manifest: optional dict merged into the manifest (converter-specific facts).

    Returns:
      the manifest dict (also written to out_dir/manifest.json).
    """
    if on_missing not in ("error", "skip"):
        raise ValueError(f"on_missing must be 'error' or 'skip', not {on_missing!r}")
    out_dir = pathlib.Path(out_dir)
    _check_out_dir(out_dir)
    feature_rate = float(feature_fps) / float(feature_stride)
    if not feature_rate > 0:
        raise DataError(f"feature rate fps / stride = {feature_fps} / {feature_stride} must be > 0")

    videos_table = annotations.videos
    duplicated = videos_table["video"].duplicated()
    if duplicated.any():
        raise DataError(f"annotations list video {videos_table['video'][duplicated].iloc[0]} twice")
    annotated = set(videos_table["video"])
    featured = set(features.videos())
    missing_features = sorted(annotated - featured)
    missing_annotations = sorted(featured - annotated)
    if (missing_features or missing_annotations) and on_missing == "error":
        problems = []
        if missing_features:
            problems.append(f"no features for {_describe(missing_features)}")
        if missing_annotations:
            problems.append(f"no annotations for {_describe(missing_annotations)}")
        raise DataError("; ".join(problems) + " (skip them with on_missing='skip' / --skip-missing)")
    kept = videos_table[videos_table["video"].isin(featured)]
    if kept.empty:
        raise DataError(f"no video has both annotations and features ({len(annotated)} annotated, "
                        f"{len(featured)} with features; do the video ids match? annotations e.g. "
                        f"{sorted(annotated)[:3]}, features e.g. {sorted(featured)[:3]})")

    class_index = {label: index for index, label in enumerate(annotations.classes)}
    subsets = _ordered_subsets(set(kept["subset"]))
    order = {subset: position for position, subset in enumerate(subsets)}
    kept = kept.assign(_order=kept["subset"].map(order)).sort_values(
        ["_order", "video"], kind="stable")

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staged = pathlib.Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        os.chmod(staged, _default_mode(0o777))
        dims = None
        durations = {}
        segments = {subset: 0 for subset in subsets}
        writers = {subset: _SubsetWriter(staged, subset) for subset in subsets}
        rows = zip(kept["video"], kept["subset"], kept["duration"], kept["labels"])
        for video, subset, duration, labels in progress(rows, total=len(kept),
                                                        desc=f"converting {name}",
                                                        enabled=show_progress):
            rgb, flow = features.read(video)
            if dims is None:
                dims = (rgb.shape[1], flow.shape[1])
                first_video = video
            elif (rgb.shape[1], flow.shape[1]) != dims:
                raise DataError(f"video {video}: features have D_rgb={rgb.shape[1]}, "
                                f"D_flow={flow.shape[1]} but video {first_video} has "
                                f"D_rgb={dims[0]}, D_flow={dims[1]}")
            unknown = [label for label in labels if label not in class_index]
            if unknown:
                raise DataError(f"video {video}: label {unknown[0]!r} is not one of the classes")
            num_segments = rgb.shape[0]
            if pd.isna(duration) or not duration > 0:
                duration = num_segments / feature_rate
            durations[video] = float(duration)
            segments[subset] += num_segments
            label_indices = [class_index[label] for label in labels]
            writers[subset].write(serialize_video(video, subset, duration, rgb, flow, label_indices),
                                  video, num_segments, duration, label_indices)
        for subset in subsets:
            writers[subset].close()

        converted = kept["video"].tolist()
        kept_annotations, clipped, past_end = _clip_instances(annotation_io.Annotations(
            classes=list(annotations.classes),
            videos=videos_table[videos_table["video"].isin(converted)].assign(
                duration=lambda frame: frame["video"].map(durations)).reset_index(drop=True),
            instances=_rows_of(annotations.instances, converted),
            ambiguous=_rows_of(annotations.ambiguous, converted),
            source=annotations.source))
        ground_truth_path = staged / GROUND_TRUTH_NAME
        annotation_io.write_ground_truth(ground_truth_path, kept_annotations)

        instance_counts = kept_annotations.instances["subset"].value_counts()
        video_counts = kept["subset"].value_counts()
        manifest = {
            "format": FORMAT,
            "dataset": name,
            "classes": list(annotations.classes),
            "feature_fps": float(feature_fps),
            "feature_stride": int(feature_stride),
            "feature_rate": feature_rate,
            "feature_dims": {"rgb": int(dims[0]), "flow": int(dims[1])},
            "subsets": {subset: {"videos": int(video_counts.get(subset, 0)),
                                 "instances": int(instance_counts.get(subset, 0)),
                                 "segments": int(segments[subset]),
                                 "directory": subset}
                        for subset in subsets},
            "clipped_segments": int(clipped),
            "segments_past_end": int(past_end),
            # Empty unless on_missing="skip" (otherwise a missing video raised above).
            "skipped_videos": {"missing_features": missing_features,
                               "missing_annotations": missing_annotations},
            "source": annotations.source,
        }
        manifest.update(extra_manifest or {})
        with open(staged / MANIFEST_NAME, "w", encoding="utf-8") as handle:
            json.dump(manifest, handle, indent=2)
            handle.write("\n")
        _replace_directory(staged, out_dir)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    return manifest


def _rows_of(frame, videos):
    return frame[frame["video"].isin(videos)].reset_index(drop=True)

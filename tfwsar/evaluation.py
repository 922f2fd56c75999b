"""Evaluation: temporal IoU, detection mAP at tIoU thresholds, video classification metrics.

Nothing here imports TensorFlow; the module is usable on its own (`tools/evaluate.py` is its CLI).

Detection, protocol "anet" (the default)
----------------------------------------
Reproduces the official ActivityNet toolkit (activitynet/ActivityNet, `Evaluation/eval_detection.py`,
`ANETdetection` + `compute_average_precision_detection`, and `Evaluation/utils.py`,
`interpolated_prec_rec` / `segment_iou`), vectorised:

- classes are the labels of the ground truth of the evaluated subset (after `exclude_videos`), in
  order of first appearance; a prediction whose label is not one of them is an error;
- per class, the predictions of all videos are ranked by score; each prediction, in rank order, takes
  the not-yet-matched ground-truth instance of its own video and class with the highest tIoU when that
  tIoU >= threshold, otherwise it is a false positive. A prediction on a video without ground truth of
  its class -- including a video outside the evaluated subset, as in the toolkit, which does not filter
  predictions by subset -- is a false positive;
- AP is the all-point interpolated AP (precision made non-increasing from the right, summed over the
  recall steps) with the number of ground-truth instances as denominator; a class without predictions
  scores 0; mAP is the mean over classes, "average" the mean of mAP over thresholds.
  The arithmetic is the toolkit's, operation for operation, so the numbers are bit-identical.

Tie-breaking (`tie_break`):
- "official" (default): the toolkit's own calls on the toolkit's own arrays. The ranking of a class is
  `np.argsort(scores)[::-1]` over that class's predictions in input order (file order of the results:
  videos as listed, entries as listed); the candidate order of a prediction's ground truths is
  `np.argsort(tiou)[::-1]` over the instances of its video and class in ground-truth file order.
  Equal values therefore come out in whatever order numpy's default (unstable) sort leaves them:
  later-listed first when that sort happens to keep ties in input order (it always did for <= 16
  elements before numpy 1.25), implementation-defined otherwise -- numpy >= 1.25 on AVX-512 machines
  sorts with x86-simd-sort and permutes ties even in 4-element arrays. The toolkit's numbers on data
  with tied scores (the ActivityNet sample submission has every score = 1.0) thus depend on the numpy
  build; "official" gives exactly the toolkit's numbers on the same numpy build.
- "stable": platform-independent: among equal scores the prediction listed later ranks first, among
  ground truths with equal tIoU the one listed later is tried first (= `np.argsort(kind="stable")[::-1]`,
  the order the toolkit gets whenever numpy's sort keeps ties in input order).

Zero-length segments: the toolkit divides 0 by 0 when a zero-length prediction meets a zero-length
ground truth, gets NaN, and -- `NaN < threshold` being False -- matches them at every threshold, even
at different positions. Here the tIoU of two zero-length segments is 1 when they coincide and 0
otherwise; the two agree on coinciding segments, the only case in the ActivityNet sample.

THUMOS14 Ambiguous segments (protocol "anet"): the rule of the official THUMOS'14 kit
(`TH14eventdetpr.m`: "overlapping detections will be removed from the FP list"): after matching at a
threshold, a false positive whose intersection with an Ambiguous segment of its video is longer than
zero is removed from the ranking (neither TP nor FP) at that threshold; true positives stay. The THUMOS
kit's other choices (strict `>` threshold, per-ground-truth matching, 11-point AP) are not used: the
THUMOS14 protocol here is the ActivityNet definition with THUMOS14 thresholds and this exclusion.
`THUMOS14_BAD_TEST_VIDEOS` lists the test videos with known-wrong annotations (0000270, 0001496) for
`exclude_videos`; video_test_0001292 has only Ambiguous segments, so its predictions are false
positives unless they fall in those segments.

Detection, protocol "wtalc"
---------------------------
The AP of W-TALC's `detectionMAP.py` (sujoyp/wtalc-pytorch, `getLocMAP`), which many weakly
supervised papers report:
- predictions whose intersection with an Ambiguous segment of their video is longer than zero are
  removed before ranking (whether or not they would match);
- predictions on videos without any ground-truth instance are ignored (W-TALC evaluates only the
  videos with temporal annotations);
- per class, the ranking is `np.argsort(-scores)` ("official"; "stable" = earlier-listed first);
- each prediction takes the FIRST not-yet-matched instance of its video and class, in ground-truth file
  order, whose IoU >= threshold (not the best one);
- AP is not interpolated: sum of the precision at each true positive / number of instances, 0 when
  nothing matches; classes are the ground-truth labels sorted by name; mAP is their mean.
W-TALC measures IoU on its feature grid (ground truth `round(t * rate)`, predictions as integer
segment indices). Pass `feature_rate` (segments per second) to do the same (both sides rounded,
which recovers the index of a time written as index / rate); without it the IoU is in seconds.
W-TALC returns 0 for the whole mAP when any class has no predictions; here only that class scores 0.

Classification
--------------
`classification_accuracy`: top-1 accuracy as the TSRNet tables report it (a video counts as correct
when its top class is one of its labels). `classification_map`: ActivityNet classification mAP
(`eval_classification.py`). `hit_at_k`: the toolkit's hit@k.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import os
from typing import Mapping, Optional

import numpy as np
import pandas as pd

from tfwsar.errors import DataError

THUMOS14_TIOUS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
"""THUMOS14 thresholds of the TSRNet tables (mAP@0.1 ... 0.9)."""

THUMOS14_AVERAGE_TIOUS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
"""The thresholds recent THUMOS14 papers average over ("average mAP 0.1:0.7")."""

ACTIVITYNET_TIOUS = tuple(float(t) for t in np.linspace(0.5, 0.95, 10))
"""ActivityNet1.3 thresholds 0.5:0.05:0.95, the toolkit's exact float values (np.linspace)."""

THUMOS14_BAD_TEST_VIDEOS = ("video_test_0000270", "video_test_0001496")
"""THUMOS14 test videos with known-wrong annotations, for `exclude_videos`."""

PROTOCOLS = ("anet", "wtalc")
TIE_BREAKS = ("official", "stable")
AMBIGUOUS_LABEL = "Ambiguous"
PREDICTION_COLUMNS = ("video", "label", "t_start", "t_end", "score")
INSTANCE_COLUMNS = ("video", "label", "t_start", "t_end")

_MAX_PAIRS_PER_CHUNK = 4_000_000


def tiou_key(threshold):
    """The string key of a threshold in results: 0.1 -> "0.1", 0.55 -> "0.55", 0.6000000000000001 -> "0.6"."""
    return f"{float(threshold):.6f}".rstrip("0").rstrip(".")


# ----------------------------------------------------------------------------------------------
# Ground truth and predictions
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class GroundTruth:
    """Ground truth of one subset.

    Attributes:
      instances: DataFrame `video, label, t_start, t_end` (seconds), in file order.
      ambiguous: DataFrame `video, t_start, t_end` of THUMOS14 Ambiguous segments (maybe empty).
      videos: every video of the subset, including those without instances.
      subset: the subset name, or None for in-memory ground truth without one.
      source: file name (or "<memory>") for messages.
      dataset_classes: every class of the dataset (the file's taxonomy, else the labels of all its
        subsets); empty = only the subset's own classes are known.
    """

    instances: pd.DataFrame
    ambiguous: pd.DataFrame
    videos: tuple
    subset: Optional[str] = None
    source: str = "<memory>"
    dataset_classes: tuple = ()

    @property
    def classes(self):
        """Labels of the instances in order of first appearance (the toolkit's class order).

        These are the classes evaluated: AP is averaged over the classes with ground truth in the
        subset, as in the ActivityNet definition.
        """
        return list(pd.unique(self.instances["label"]))

    @property
    def known_classes(self):
        """The labels a prediction may carry: the dataset's classes, else the subset's."""
        return list(self.dataset_classes) or self.classes

    @classmethod
    def from_frames(cls, instances, ambiguous=None, videos=None, subset=None, source="<memory>",
                    dataset_classes=()):
        """Builds ground truth from DataFrames (e.g. `tfwsar.data.annotations` output).

        Args:
          instances: columns `video, label, t_start, t_end` (+ optional `subset`). Rows labelled
            "Ambiguous" are taken as Ambiguous segments.
          ambiguous: optional DataFrame `video, t_start, t_end` (+ optional `label`, `subset`).
          videos: optional iterable of the subset's video ids, or a DataFrame with a `video` column
            (+ optional `subset`); videos without instances count for nothing but the report.
          subset: keep only rows whose `subset` column equals this. Without it, a `subset` column
            holding more than one value is an error.
          dataset_classes: the dataset's whole class list (see the class docstring).
        """
        instances = _select_subset(_require_columns(instances, INSTANCE_COLUMNS, "ground truth"),
                                   subset, "ground truth")
        is_ambiguous = instances["label"].astype(str) == AMBIGUOUS_LABEL
        ambiguous_frames = [instances.loc[is_ambiguous, ["video", "t_start", "t_end"]]]
        instances = instances.loc[~is_ambiguous]
        if ambiguous is not None:
            ambiguous = _select_subset(_require_columns(ambiguous, ("video", "t_start", "t_end"),
                                                        "ambiguous segments"), subset, "ambiguous segments")
            ambiguous_frames.append(ambiguous[["video", "t_start", "t_end"]])
        ambiguous = pd.concat(ambiguous_frames, ignore_index=True)
        instances = _clean_segments(instances[list(INSTANCE_COLUMNS)], "ground truth", source)
        ambiguous = _clean_segments(ambiguous, "ambiguous segments", source)
        video_list = list(pd.unique(pd.concat([instances["video"], ambiguous["video"]])))
        if videos is not None:
            if isinstance(videos, pd.DataFrame):
                videos = _select_subset(_require_columns(videos, ("video",), "videos"), subset, "videos")["video"]
            known = set(video_list)
            video_list += [str(video) for video in videos if str(video) not in known]
        return cls(instances.reset_index(drop=True), ambiguous.reset_index(drop=True),
                   tuple(video_list), subset, source, tuple(dataset_classes))

    def without_videos(self, videos):
        """The same ground truth with `videos` removed (as the toolkit removes blocked videos)."""
        drop = set(videos)
        if not drop:
            return self
        return GroundTruth(self.instances.loc[~self.instances["video"].isin(drop)].reset_index(drop=True),
                           self.ambiguous.loc[~self.ambiguous["video"].isin(drop)].reset_index(drop=True),
                           tuple(video for video in self.videos if video not in drop),
                           self.subset, self.source, self.dataset_classes)


def load_ground_truth(path, subset):
    """Reads ground truth in the ActivityNet layout for one subset.

    Layout: `{"database": {video: {"subset", "annotations": [{"segment": [s, e], "label"}],
    optional "ambiguous": [[s, e], ...], ...}}, ...}` as written by
    `tfwsar.data.annotations.write_ground_truth`, the official ActivityNet JSON and G-TAD's
    `thumos_gt.json` (segments as strings, no "version"/"taxonomy"; its validation subset is "train").

    Args:
      path: the JSON file.
      subset: the value of "subset" to keep, e.g. "validation", "test".
    Returns:
      `GroundTruth`.
    Raises:
      DataError: the file is not in this layout, a segment is malformed or ends before it starts, or
        no video has this subset (the message lists the subsets present).
    """
    path = os.fspath(path)
    data = _read_json(path, "ground truth")
    database = data.get("database") if isinstance(data, dict) else None
    if not isinstance(database, dict):
        raise DataError(f"{path}: not a ground-truth file: expected a JSON object with a \"database\" "
                        "object mapping video ids to {\"subset\", \"annotations\"}")
    rows, ambiguous_rows, videos, subsets_present = [], [], [], set()
    all_labels = {}
    for video, entry in database.items():
        if not isinstance(entry, dict) or "subset" not in entry:
            raise DataError(f"{path}: database[{video!r}]: expected an object with a \"subset\" key")
        for annotation in entry.get("annotations") or []:
            if isinstance(annotation, dict) and isinstance(annotation.get("label"), str):
                all_labels.setdefault(annotation["label"], None)
        if entry["subset"] != subset:
            subsets_present.add(str(entry["subset"]))
            continue
        where = f"{path}: database[{video!r}]"
        videos.append(video)
        annotations = entry.get("annotations")
        if not isinstance(annotations, list):
            raise DataError(f"{where}: \"annotations\" must be a list")
        for index, annotation in enumerate(annotations):
            at = f"{where}[\"annotations\"][{index}]"
            if not isinstance(annotation, dict):
                raise DataError(f"{at}: expected an object with \"segment\" and \"label\"")
            label = annotation.get("label")
            if not isinstance(label, str) or not label:
                raise DataError(f"{at}: \"label\" must be a non-empty string, got {label!r}")
            start, end = _parse_segment(annotation.get("segment"), at)
            rows.append((video, label, start, end))
        ambiguous = entry.get("ambiguous", [])
        if not isinstance(ambiguous, list):
            raise DataError(f"{where}: \"ambiguous\" must be a list of [start, end]")
        for index, segment in enumerate(ambiguous):
            start, end = _parse_segment(segment, f"{where}[\"ambiguous\"][{index}]")
            ambiguous_rows.append((video, start, end))
    if not videos:
        raise DataError(f"{path}: no video has subset {subset!r} "
                        f"(subsets present: {', '.join(sorted(subsets_present)) or 'none'})")
    instances = pd.DataFrame(rows, columns=list(INSTANCE_COLUMNS))
    instances = instances.astype({"t_start": np.float64, "t_end": np.float64})
    ambiguous = pd.DataFrame(ambiguous_rows, columns=["video", "t_start", "t_end"])
    ambiguous = ambiguous.astype({"t_start": np.float64, "t_end": np.float64})
    dataset_classes = _taxonomy_leaves(data.get("taxonomy"), path) or list(all_labels)
    return GroundTruth(instances, ambiguous, tuple(videos), subset, path, tuple(dataset_classes))


def _taxonomy_leaves(taxonomy, path):
    """Class names of an ActivityNet taxonomy: nodes that are no other node's parent ([] if none)."""
    if not taxonomy:
        return []
    if not isinstance(taxonomy, list) or not all(
            isinstance(node, dict) and isinstance(node.get("nodeName"), str) for node in taxonomy):
        raise DataError(f"{path}: \"taxonomy\" must be a list of objects with a \"nodeName\"")
    parents = {node.get("parentName") for node in taxonomy}
    return [node["nodeName"] for node in taxonomy if node["nodeName"] not in parents]


def load_predictions(path, ground_truth=None):
    """Reads predictions in the ActivityNet result format.

    Format: `{"results": {video: [{"label", "score", "segment": [s, e]}]}, "version", "external_data"}`
    ("version" and "external_data" are not required). Segment bounds may be numbers or numeric strings;
    the score must be a number.

    Args:
      path: the JSON file.
      ground_truth: optional `GroundTruth`; when given, every label must be one of the dataset's
        classes (`GroundTruth.known_classes`).
    Returns:
      DataFrame `video, label, t_start, t_end, score` in file order.
    Raises:
      DataError naming the file and the entry (`results["video"][i]`): not in the result format, a
        segment that ends before it starts or is not finite, a NaN score, an unknown label.
    """
    path = os.fspath(path)
    frame, locate = _parse_results(_read_json(path, "predictions"), path)
    if ground_truth is not None:
        _check_labels(frame, ground_truth, locate)
    return frame


def _read_json(path, what):
    try:
        with open(path, encoding="utf-8") as stream:
            return json.load(stream)
    except FileNotFoundError:
        raise DataError(f"{path}: {what} file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: not a JSON {what} file: {error}") from None


def _parse_number(value, where, what):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, str)):
        raise DataError(f"{where}: {what} must be a number, got {value!r}")
    try:
        return float(value)
    except ValueError:
        raise DataError(f"{where}: {what} must be a number, got {value!r}") from None


def _parse_segment(segment, where):
    if not isinstance(segment, (list, tuple)) or len(segment) != 2:
        raise DataError(f"{where}: \"segment\" must be [start, end], got {segment!r}")
    start = _parse_number(segment[0], where, "segment start")
    end = _parse_number(segment[1], where, "segment end")
    if not (math.isfinite(start) and math.isfinite(end)):
        raise DataError(f"{where}: segment {segment!r} is not finite")
    if end < start:
        raise DataError(f"{where}: segment {segment!r} ends before it starts")
    return start, end


def _parse_results(data, source):
    """Result-format dict -> (predictions DataFrame, row -> location string)."""
    results = data.get("results") if isinstance(data, dict) else None
    if not isinstance(results, dict):
        raise DataError(f"{source}: not in the ActivityNet result format: expected a JSON object with "
                        "a \"results\" object mapping video ids to lists of {\"label\", \"score\", \"segment\"}")
    videos, labels, starts, ends, scores, where = [], [], [], [], [], []
    for video, entries in results.items():
        if not isinstance(entries, list):
            raise DataError(f"{source}: results[{video!r}] must be a list of predictions")
        for index, entry in enumerate(entries):
            if not isinstance(entry, dict):
                raise DataError(f"{source}: results[{video!r}][{index}] must be an object with "
                                "\"label\", \"score\", \"segment\"")
            at = (video, index)
            label = entry.get("label")
            if not isinstance(label, str):
                raise DataError(f"{source}: results[{video!r}][{index}]: \"label\" must be a string, got {label!r}")
            score = entry.get("score")
            if isinstance(score, (bool, np.bool_)) or not isinstance(score, numbers.Real):
                raise DataError(f"{source}: results[{video!r}][{index}]: \"score\" must be a number, got {score!r}")
            segment = entry.get("segment")
            if not isinstance(segment, (list, tuple)) or len(segment) != 2:
                raise DataError(f"{source}: results[{video!r}][{index}]: \"segment\" must be [start, end], "
                                f"got {segment!r}")
            where_text = f"{source}: results[{video!r}][{index}]"
            videos.append(video)
            labels.append(label)
            starts.append(_parse_number(segment[0], where_text, "segment start"))
            ends.append(_parse_number(segment[1], where_text, "segment end"))
            scores.append(float(score))
            where.append(at)
    frame = pd.DataFrame({"video": pd.Series(videos, dtype=object), "label": pd.Series(labels, dtype=object),
                          "t_start": np.asarray(starts, np.float64), "t_end": np.asarray(ends, np.float64),
                          "score": np.asarray(scores, np.float64)})

    def locate(row):
        video, index = where[row]
        return f"{source}: results[{video!r}][{index}]"

    _check_values(frame, locate)
    return frame, locate


def _check_values(frame, locate):
    starts, ends, scores = (frame[column].to_numpy() for column in ("t_start", "t_end", "score"))
    bad = np.flatnonzero(~(np.isfinite(starts) & np.isfinite(ends)))
    if bad.size:
        row = bad[0]
        raise DataError(f"{locate(row)}: segment [{starts[row]}, {ends[row]}] is not finite")
    bad = np.flatnonzero(ends < starts)
    if bad.size:
        row = bad[0]
        raise DataError(f"{locate(row)}: segment [{starts[row]}, {ends[row]}] ends before it starts")
    bad = np.flatnonzero(np.isnan(scores))
    if bad.size:
        raise DataError(f"{locate(bad[0])}: score is NaN")


def _check_labels(frame, ground_truth, locate):
    """Raises DataError for a label that is no class of the dataset (`known_classes`)."""
    classes = ground_truth.known_classes
    bad = np.flatnonzero(~frame["label"].isin(classes).to_numpy())
    if bad.size:
        row = bad[0]
        what = ("the dataset" if ground_truth.dataset_classes else
                "the ground truth" + (f" (subset {ground_truth.subset!r})"
                                      if ground_truth.subset is not None else ""))
        raise DataError(f"{locate(row)}: label {frame['label'].iloc[row]!r} is not a class of "
                        f"{what}; {bad.size} prediction(s) have labels outside its {len(classes)} "
                        f"classes")


def _require_columns(frame, columns, what):
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"{what}: expected a pandas DataFrame with columns {', '.join(columns)}, "
                        f"got {type(frame).__name__}")
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise DataError(f"{what}: DataFrame lacks column(s) {', '.join(missing)} "
                        f"(has {', '.join(map(str, frame.columns))})")
    return frame


def _select_subset(frame, subset, what):
    if "subset" not in frame.columns:
        return frame
    if subset is not None:
        return frame.loc[frame["subset"] == subset]
    subsets = sorted(map(str, pd.unique(frame["subset"])))
    if len(subsets) > 1:
        raise DataError(f"{what}: rows of several subsets ({', '.join(subsets)}); choose one with subset=")
    return frame


def _clean_segments(frame, what, source):
    """Copies `frame` with float64 t_start/t_end and str video (and label), checking the segments."""
    frame = frame.copy()
    frame["video"] = frame["video"].astype(str)
    if "label" in frame.columns:
        frame["label"] = frame["label"].astype(str)
    for column in ("t_start", "t_end"):
        try:
            frame[column] = pd.to_numeric(frame[column]).astype(np.float64)
        except (TypeError, ValueError) as error:
            raise DataError(f"{source}: {what}: column {column} is not numeric: {error}") from None
    starts, ends = frame["t_start"].to_numpy(), frame["t_end"].to_numpy()
    bad = np.flatnonzero(~(np.isfinite(starts) & np.isfinite(ends)) | (ends < starts))
    if bad.size:
        row = bad[0]
        raise DataError(f"{source}: {what} row {frame.index[row]!r} (video {frame['video'].iloc[row]!r}): "
                        f"segment [{starts[row]}, {ends[row]}] is not finite or ends before it starts")
    return frame


def _as_ground_truth(ground_truth, subset):
    if isinstance(ground_truth, GroundTruth):
        return ground_truth
    if isinstance(ground_truth, pd.DataFrame):
        return GroundTruth.from_frames(ground_truth, subset=subset)
    if isinstance(ground_truth, (str, os.PathLike)):
        if subset is None:
            raise DataError(f"{os.fspath(ground_truth)}: give subset= to read ground truth from a file")
        return load_ground_truth(ground_truth, subset)
    raise DataError("ground truth: expected a GroundTruth, a DataFrame or a JSON path, "
                    f"got {type(ground_truth).__name__}")


def _as_predictions(predictions):
    """-> (DataFrame, locate) without the label check (which needs the final class list)."""
    if isinstance(predictions, (str, os.PathLike)):
        path = os.fspath(predictions)
        return _parse_results(_read_json(path, "predictions"), path)
    if isinstance(predictions, Mapping):
        return _parse_results(predictions, "<predictions>")
    frame = _require_columns(predictions, PREDICTION_COLUMNS, "predictions")
    index = frame.index
    videos = frame["video"].astype(str).to_numpy()

    def locate(row):
        return f"predictions row {index[row]!r} (video {videos[row]!r})"

    columns = {"video": pd.Series(videos, dtype=object), "label": pd.Series(frame["label"].astype(str).to_numpy(),
                                                                              dtype=object)}
    for column in ("t_start", "t_end", "score"):
        try:
            columns[column] = pd.to_numeric(frame[column]).to_numpy(np.float64)
        except (TypeError, ValueError) as error:
            raise DataError(f"predictions: column {column} is not numeric: {error}") from None
    clean = pd.DataFrame(columns)
    _check_values(clean, locate)
    return clean, locate


# ----------------------------------------------------------------------------------------------
# Temporal IoU
# ----------------------------------------------------------------------------------------------


def _paired_iou(start_a, end_a, start_b, end_b):
    """Elementwise tIoU, the toolkit's arithmetic (`segment_iou`); 0/0 -> 1 if identical else 0."""
    intersection = (np.minimum(end_a, end_b) - np.maximum(start_a, start_b)).clip(0)
    union = (end_b - start_b) + (end_a - start_a) - intersection
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = intersection / union
    degenerate = union == 0
    if np.any(degenerate):
        identical = (start_a == start_b) & (end_a == end_b)
        iou = np.where(degenerate, np.where(identical, 1.0, 0.0), iou)
    return iou


def temporal_iou(segments_a, segments_b):
    """Temporal intersection over union of every pair of segments.

    tIoU(a, b) = |a ∩ b| / |a ∪ b| = max(0, min(e_a, e_b) − max(s_a, s_b)) / (|a| + |b| − |a ∩ b|),
    with the ActivityNet toolkit's floating-point arithmetic; two zero-length segments have tIoU 1 if
    they coincide, else 0.

    Args:
      segments_a: [N, 2] (start, end).
      segments_b: [M, 2] (start, end).
    Returns:
      [N, M] float64.
    """
    segments_a = np.asarray(segments_a, np.float64).reshape(-1, 2)
    segments_b = np.asarray(segments_b, np.float64).reshape(-1, 2)
    return _paired_iou(segments_a[:, :1], segments_a[:, 1:], segments_b[None, :, 0], segments_b[None, :, 1])


def _official_iou_row(start, end, gt_starts, gt_ends):
    """The toolkit's `segment_iou` literally (0/0 gives NaN): only used to reproduce its sort order."""
    intersection = (np.minimum(end, gt_ends) - np.maximum(start, gt_starts)).clip(0)
    union = (gt_ends - gt_starts) + (end - start) - intersection
    with np.errstate(divide="ignore", invalid="ignore"):
        return intersection.astype(float) / union


# ----------------------------------------------------------------------------------------------
# Detection
# ----------------------------------------------------------------------------------------------


def _pairs_by_key(left_keys, right_keys, left_indices=None):
    """All (i, j) with left_keys[i] == right_keys[j]: i ascending, j in right input order per i.

    `left_indices` restricts i to those indices (ascending)."""
    if left_indices is None:
        left_indices = np.arange(len(left_keys))
    right_order = np.argsort(right_keys, kind="stable")
    sorted_keys = right_keys[right_order]
    keys = left_keys[left_indices]
    low = np.searchsorted(sorted_keys, keys, "left")
    counts = np.searchsorted(sorted_keys, keys, "right") - low
    left = np.repeat(left_indices, counts)
    offsets = np.arange(left.size) - np.repeat(np.cumsum(counts) - counts, counts)
    right = right_order[np.repeat(low, counts) + offsets]
    return left, right


def _chunked_pairs(left_keys, right_keys, keep_pair):
    """`_pairs_by_key` in chunks of predictions, keeping pairs where keep_pair(left, right) is True."""
    right_sorted = np.sort(right_keys, kind="stable")
    counts = (np.searchsorted(right_sorted, left_keys, "right")
              - np.searchsorted(right_sorted, left_keys, "left"))
    bounds = np.searchsorted(np.cumsum(counts), np.arange(0, counts.sum(), _MAX_PAIRS_PER_CHUNK), "right")
    bounds = np.unique(np.concatenate([[0], bounds, [len(left_keys)]]))
    lefts, rights, values = [], [], []
    for low, high in zip(bounds[:-1], bounds[1:]):
        left, right = _pairs_by_key(left_keys, right_keys, np.arange(low, high))
        keep, value = keep_pair(left, right)
        lefts.append(left[keep])
        rights.append(right[keep])
        values.append(value[keep])
    if not lefts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    return np.concatenate(lefts), np.concatenate(rights), np.concatenate(values)


def _rank_classes(labels, scores, num_classes, order_of):
    """Per class: the indices of its predictions, ranked by `order_of(scores of the class in input order)`."""
    by_class = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[by_class], np.arange(num_classes + 1))
    ranked = []
    for label in range(num_classes):
        members = by_class[bounds[label]:bounds[label + 1]]
        ranked.append(members[order_of(scores[members])])
    return ranked


def _greedy_match(pair_pred, pair_gt, pair_iou, pred_rank, pred_group, thresholds, num_preds, num_gt):
    """Greedy matching of every prediction, in rank order, to its first free candidate with IoU >= t.

    Pairs (prediction, candidate ground truth) must be contiguous per prediction and listed in the
    prediction's candidate preference order. Matching in different (class, video) groups is
    independent, so step k handles the k-th ranked prediction of every group at once; within a step no
    two predictions share a ground truth.
    Returns:
      [T, num_preds] bool true positives.
    """
    true_positive = np.zeros((len(thresholds), num_preds), bool)
    if pair_pred.size == 0:
        return true_positive
    active = np.unique(pair_pred)
    order = np.lexsort((pred_rank[active], pred_group[active]))
    active, groups = active[order], pred_group[active[order]]
    group_start = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    step = np.arange(active.size) - np.repeat(group_start, np.diff(np.r_[group_start, active.size]))
    pred_step = np.zeros(num_preds, np.int64)
    pred_step[active] = step
    order = np.argsort(pred_step[pair_pred], kind="stable")
    pair_pred, pair_gt, pair_iou = pair_pred[order], pair_gt[order], pair_iou[order]
    pair_step = pred_step[pair_pred]
    step_bounds = np.searchsorted(pair_step, np.arange(pair_step[-1] + 2))
    is_first = np.r_[True, pair_pred[1:] != pair_pred[:-1]]
    thresholds = np.asarray(thresholds, np.float64)[:, None]
    locked = np.zeros((len(thresholds), num_gt), bool)
    for low, high in zip(step_bounds[:-1], step_bounds[1:]):
        gts, size = pair_gt[low:high], high - low
        starts = np.flatnonzero(is_first[low:high])
        valid = (pair_iou[low:high] >= thresholds) & ~locked[:, gts]
        first = np.minimum.reduceat(np.where(valid, np.arange(size), size), starts, axis=1)
        threshold_index, pred_index = np.nonzero(first < size)
        true_positive[threshold_index, pair_pred[low + starts[pred_index]]] = True
        locked[threshold_index, gts[first[threshold_index, pred_index]]] = True
    return true_positive


def _overlaps_ambiguous(pred_video, pred_start, pred_end, ambiguous_video, ambiguous_start, ambiguous_end):
    """[N] bool: the prediction's intersection with some Ambiguous segment of its video is > 0."""
    overlaps = np.zeros(pred_video.size, bool)
    if ambiguous_video.size == 0 or pred_video.size == 0:
        return overlaps
    left, right = _pairs_by_key(pred_video, ambiguous_video)
    intersection = (np.minimum(pred_end[left], ambiguous_end[right])
                    - np.maximum(pred_start[left], ambiguous_start[right]))
    overlaps[left[intersection > 0]] = True
    return overlaps


def _interpolated_average_precision(precision, recall):
    """All-point interpolated AP, the toolkit's `interpolated_prec_rec` (VOC 2011) step for step:
    same padded arrays, same products, same `np.sum`, hence the same bits."""
    size = len(precision)
    padded_precision = np.zeros(size + 2)
    padded_precision[1:-1] = precision
    padded_recall = np.zeros(size + 2)
    padded_recall[1:-1] = recall
    padded_recall[-1] = 1.0
    padded_precision = np.maximum.accumulate(padded_precision[::-1])[::-1]
    steps = np.flatnonzero(padded_recall[1:] != padded_recall[:-1]) + 1
    return float(np.sum((padded_recall[steps] - padded_recall[steps - 1]) * padded_precision[steps]))


def _anet_average_precision(true_positive, num_positives, keep=None):
    """AP per threshold of one class's ranked predictions ([T, n] bool), as the toolkit computes it.

    keep: optional [T, n] bool, the predictions counted at each threshold (THUMOS14 Ambiguous rule)."""
    average_precision = np.zeros(true_positive.shape[0])
    if true_positive.shape[1] == 0:
        return average_precision
    if keep is None:
        tp = true_positive.astype(float)
        tp_cumsum = np.cumsum(tp, axis=1).astype(float)
        fp_cumsum = np.cumsum(1.0 - tp, axis=1).astype(float)
        recall = tp_cumsum / float(num_positives)
        precision = tp_cumsum / (tp_cumsum + fp_cumsum)
        for index in range(true_positive.shape[0]):
            average_precision[index] = _interpolated_average_precision(precision[index], recall[index])
        return average_precision
    for index in range(true_positive.shape[0]):
        tp = true_positive[index, keep[index]].astype(float)
        if tp.size == 0:
            continue
        tp_cumsum = np.cumsum(tp)
        fp_cumsum = np.cumsum(1.0 - tp)
        average_precision[index] = _interpolated_average_precision(
            tp_cumsum / (tp_cumsum + fp_cumsum), tp_cumsum / float(num_positives))
    return average_precision


def _wtalc_average_precision(true_positive, num_positives):
    """W-TALC's non-interpolated AP: sum of precision at the true positives / #instances ([T, n] bool)."""
    average_precision = np.zeros(true_positive.shape[0])
    for index in range(true_positive.shape[0]):
        tp = true_positive[index].astype(float)
        if tp.sum() == 0:
            continue
        tp_cumsum, fp_cumsum = np.cumsum(tp), np.cumsum(1.0 - tp)
        average_precision[index] = np.sum((tp_cumsum / (fp_cumsum + tp_cumsum)) * tp) / num_positives
    return average_precision


def _thresholds(tiou_thresholds):
    thresholds = [float(threshold) for threshold in np.atleast_1d(np.asarray(tiou_thresholds, np.float64))]
    if not thresholds:
        raise DataError("tiou_thresholds: give at least one threshold")
    for threshold in thresholds:
        if not 0.0 < threshold <= 1.0:
            raise DataError(f"tiou_thresholds: {threshold} is outside (0, 1]")
    keys = [tiou_key(threshold) for threshold in thresholds]
    if len(set(keys)) != len(keys):
        raise DataError(f"tiou_thresholds: repeated threshold in {keys}")
    return thresholds, keys


def detection_map(ground_truth, predictions, tiou_thresholds=ACTIVITYNET_TIOUS, protocol="anet", *,
                  average_tious=None, subset=None, exclude_videos=(), use_ambiguous=True,
                  tie_break="official", feature_rate=None):
    """Detection mAP at each tIoU threshold (see the module docstring for the exact definitions).

    Args:
      ground_truth: `GroundTruth`, a DataFrame `video, label, t_start, t_end` (rows labelled
        "Ambiguous" are Ambiguous segments), or a JSON path (then `subset` is required).
      predictions: DataFrame `video, label, t_start, t_end, score`, a result-format dict
        `{"results": {...}}`, or a JSON path.
      tiou_thresholds: e.g. `THUMOS14_TIOUS`, `ACTIVITYNET_TIOUS`.
      protocol: "anet" (ActivityNet toolkit) or "wtalc" (W-TALC's detectionMAP.py).
      average_tious: thresholds "average" is taken over (a subset of tiou_thresholds; default all),
        e.g. `THUMOS14_AVERAGE_TIOUS`.
      subset: subset to read when ground_truth is a path or a DataFrame with a `subset` column.
      exclude_videos: video ids removed from ground truth and predictions before anything else, e.g.
        `THUMOS14_BAD_TEST_VIDEOS`.
      use_ambiguous: apply the Ambiguous-segment rule when the ground truth has such segments.
      tie_break: "official" or "stable" (module docstring).
      feature_rate: protocol "wtalc" only: segments per second of W-TALC's feature grid.
    Returns:
      {"protocol", "mAP": {"0.1": float, ...}, "average": float, "average_tious": [keys],
       "per_class": {class: {"0.1": AP, ...}}, "num_ground_truth", "num_predictions",
       "num_predictions_outside_subset", "num_predictions_ignored"} -- values are fractions in [0, 1].
    Raises:
      DataError: malformed input, a prediction label that is no class of the dataset, ...

    A prediction of a dataset class that has no ground truth in the subset (a partial dataset, a
    subset that lacks a class) is no error: AP is averaged over the classes that have ground truth
    in the subset, as in the ActivityNet definition, and such predictions are left out and counted
    ("num_predictions_without_ground_truth_class", "classes_without_ground_truth").
    """
    if protocol not in PROTOCOLS:
        raise DataError(f"protocol {protocol!r}: choose one of {', '.join(PROTOCOLS)}")
    if tie_break not in TIE_BREAKS:
        raise DataError(f"tie_break {tie_break!r}: choose one of {', '.join(TIE_BREAKS)}")
    if feature_rate is not None and (protocol != "wtalc" or not feature_rate > 0):
        raise DataError("feature_rate applies to protocol 'wtalc' only and must be > 0")
    thresholds, keys = _thresholds(tiou_thresholds)
    if average_tious is None:
        average_keys = keys
    else:
        average_keys = [tiou_key(threshold) for threshold in np.atleast_1d(average_tious)]
        missing = [key for key in average_keys if key not in keys]
        if missing or not average_keys:
            raise DataError(f"average_tious {average_keys} must be among the evaluated thresholds {keys}")
    excluded = set(str(video) for video in exclude_videos)
    truth = _as_ground_truth(ground_truth, subset).without_videos(excluded)
    classes = truth.classes
    if not classes:
        raise DataError(f"{truth.source}: the ground truth has no action instances to evaluate against")
    frame, locate = _as_predictions(predictions)
    if excluded:
        kept = np.flatnonzero(~frame["video"].isin(excluded).to_numpy())
        frame, locate = frame.iloc[kept].reset_index(drop=True), (lambda row, _l=locate, _k=kept: _l(_k[row]))
    _check_labels(frame, truth, locate)
    without_truth = ~frame["label"].isin(classes).to_numpy()
    classes_without_truth = sorted(set(frame["label"][without_truth]))
    if without_truth.any():
        kept = np.flatnonzero(~without_truth)
        frame, locate = frame.iloc[kept].reset_index(drop=True), (lambda row, _l=locate, _k=kept: _l(_k[row]))

    instances, ambiguous = truth.instances, truth.ambiguous
    if not use_ambiguous:
        ambiguous = ambiguous.iloc[:0]
    video_codes, _ = pd.factorize(pd.concat([instances["video"], frame["video"], ambiguous["video"]],
                                            ignore_index=True))
    gt_video = video_codes[:len(instances)]
    pred_video = video_codes[len(instances):len(instances) + len(frame)]
    ambiguous_video = video_codes[len(instances) + len(frame):]
    num_videos = int(video_codes.max()) + 1 if video_codes.size else 1
    class_names = sorted(classes) if protocol == "wtalc" else classes
    class_index = {name: index for index, name in enumerate(class_names)}
    gt_label = instances["label"].map(class_index).to_numpy(np.int64)
    pred_label = frame["label"].map(class_index).to_numpy(np.int64)
    gt_start, gt_end = instances["t_start"].to_numpy(np.float64), instances["t_end"].to_numpy(np.float64)
    pred_start, pred_end = frame["t_start"].to_numpy(np.float64), frame["t_end"].to_numpy(np.float64)
    ambiguous_start = ambiguous["t_start"].to_numpy(np.float64)
    ambiguous_end = ambiguous["t_end"].to_numpy(np.float64)
    scores = frame["score"].to_numpy(np.float64)
    subset_videos = set(truth.videos)
    outside = int((~frame["video"].isin(subset_videos)).sum())

    if protocol == "wtalc" and feature_rate is not None:
        gt_start, gt_end, pred_start, pred_end, ambiguous_start, ambiguous_end = (
            np.round(values * float(feature_rate)) for values in
            (gt_start, gt_end, pred_start, pred_end, ambiguous_start, ambiguous_end))
    in_ambiguous = _overlaps_ambiguous(pred_video, pred_start, pred_end, ambiguous_video,
                                       ambiguous_start, ambiguous_end)
    ignored = 0
    if protocol == "wtalc":
        keep = np.isin(pred_video, gt_video) & ~in_ambiguous
        ignored = int((~keep).sum())
        kept = np.flatnonzero(keep)
        pred_video, pred_label, pred_start, pred_end, scores, in_ambiguous = (
            values[kept] for values in (pred_video, pred_label, pred_start, pred_end, scores, in_ambiguous))

    gt_key = gt_label * num_videos + gt_video
    pred_key = pred_label * num_videos + pred_video
    num_preds, num_gt = pred_key.size, gt_key.size
    min_threshold = min(thresholds)

    def candidate_pairs(left, right):
        iou = _paired_iou(pred_start[left], pred_end[left], gt_start[right], gt_end[right])
        return iou >= min_threshold, iou

    pair_pred, pair_gt, pair_iou = _chunked_pairs(pred_key, gt_key, candidate_pairs)

    if protocol == "anet":
        if tie_break == "official":
            ranked = _rank_classes(pred_label, scores, len(class_names), lambda values: values.argsort()[::-1])
        else:
            ranked = _rank_classes(pred_label, scores, len(class_names),
                                   lambda values: values.argsort(kind="stable")[::-1])
        # Candidates by tIoU descending, ties: later-listed ground truth first.
        order = np.lexsort((-pair_gt, -pair_iou, pair_pred))
        pair_pred, pair_gt, pair_iou = pair_pred[order], pair_gt[order], pair_iou[order]
        if tie_break == "official":
            pair_gt, pair_iou = _official_candidate_order(pair_pred, pair_gt, pair_iou, gt_key, pred_key,
                                                          pred_start, pred_end, gt_start, gt_end)
    else:
        if tie_break == "official":
            ranked = _rank_classes(pred_label, scores, len(class_names), lambda values: np.argsort(-values))
        else:
            ranked = _rank_classes(pred_label, scores, len(class_names),
                                   lambda values: np.argsort(-values, kind="stable"))
        # Candidates in ground-truth file order (pairs already are).
    pred_rank = np.zeros(num_preds, np.int64)
    for members in ranked:
        pred_rank[members] = np.arange(members.size)
    true_positive = _greedy_match(pair_pred, pair_gt, pair_iou, pred_rank, pred_key, thresholds,
                                  num_preds, num_gt)

    num_positives = np.bincount(gt_label, minlength=len(class_names))
    average_precision = np.zeros((len(thresholds), len(class_names)))
    for label, members in enumerate(ranked):
        if protocol == "wtalc":
            average_precision[:, label] = _wtalc_average_precision(true_positive[:, members],
                                                                   num_positives[label])
        elif ambiguous_video.size:
            keep = true_positive[:, members] | ~in_ambiguous[members][None, :]
            average_precision[:, label] = _anet_average_precision(true_positive[:, members],
                                                                  num_positives[label], keep)
        else:
            average_precision[:, label] = _anet_average_precision(true_positive[:, members],
                                                                  num_positives[label])
    mean_ap = average_precision.mean(axis=1)
    by_key = dict(zip(keys, (float(value) for value in mean_ap)))
    if average_keys == keys:
        average = float(mean_ap.mean())
    else:
        average = float(np.mean([by_key[key] for key in average_keys]))
    return {
        "protocol": protocol,
        "mAP": by_key,
        "average": average,
        "average_tious": list(average_keys),
        "per_class": {name: dict(zip(keys, (float(value) for value in average_precision[:, label])))
                      for label, name in enumerate(class_names)},
        "num_ground_truth": int(num_gt),
        "num_predictions": int(len(frame)),
        "num_predictions_outside_subset": outside,
        "num_predictions_ignored": ignored,
        "num_predictions_without_ground_truth_class": int(without_truth.sum()),
        "classes_without_ground_truth": classes_without_truth,
    }


def notes(result, subset=None):
    """Sentences a reader of a `detection_map` result should see (predictions left out, ...)."""
    lines = []
    where = f" {subset!r}" if subset else ""
    if result.get("num_predictions_without_ground_truth_class"):
        missing = result["classes_without_ground_truth"]
        listed = ", ".join(missing[:5]) + (f", … ({len(missing)} classes)" if len(missing) > 5 else "")
        lines.append(
            f"note: {result['num_predictions_without_ground_truth_class']} prediction(s) of classes "
            f"with no ground truth in subset{where} ({listed}) were left out; mAP is averaged over "
            f"the {len(result['per_class'])} classes that have ground truth there")
    if result.get("num_predictions_outside_subset"):
        lines.append(f"note: {result['num_predictions_outside_subset']} prediction(s) are on videos "
                     f"outside subset{where}"
                     + (" and count as false positives" if result["protocol"] == "anet" else ""))
    return lines


def _official_candidate_order(pair_pred, pair_gt, pair_iou, gt_key, pred_key, pred_start, pred_end,
                              gt_start, gt_end):
    """Re-orders the candidates of predictions with tied tIoUs as the toolkit's `argsort()[::-1]` does."""
    tied = (pair_iou[1:] == pair_iou[:-1]) & (pair_pred[1:] == pair_pred[:-1])
    if not tied.any():
        return pair_gt, pair_iou
    pair_gt, pair_iou = pair_gt.copy(), pair_iou.copy()
    tied_preds = np.unique(pair_pred[1:][tied])
    pair_bounds = np.searchsorted(pair_pred, np.stack([tied_preds, tied_preds + 1]))
    gt_order = np.argsort(gt_key, kind="stable")
    sorted_keys = gt_key[gt_order]
    for pred, low, high in zip(tied_preds, pair_bounds[0], pair_bounds[1]):
        group = gt_order[np.searchsorted(sorted_keys, pred_key[pred], "left"):
                         np.searchsorted(sorted_keys, pred_key[pred], "right")]
        row = _official_iou_row(pred_start[pred], pred_end[pred], gt_start[group], gt_end[group])
        candidates = dict(zip(pair_gt[low:high].tolist(), pair_iou[low:high].tolist()))
        ordered = [gt for gt in group[row.argsort()[::-1]].tolist() if gt in candidates]
        pair_gt[low:high] = ordered
        pair_iou[low:high] = [candidates[gt] for gt in ordered]
    return pair_gt, pair_iou


# ----------------------------------------------------------------------------------------------
# Classification
# ----------------------------------------------------------------------------------------------


def _classification_inputs(probabilities, label_sets):
    probabilities = np.asarray(probabilities, np.float64)
    if probabilities.ndim != 2:
        raise DataError(f"probabilities: expected [videos, classes], got shape {probabilities.shape}")
    num_videos, num_classes = probabilities.shape
    if np.isnan(probabilities).any():
        row = int(np.flatnonzero(np.isnan(probabilities).any(axis=1))[0])
        raise DataError(f"probabilities: row {row} contains NaN")
    if isinstance(label_sets, np.ndarray) and label_sets.ndim == 2:
        if label_sets.shape != probabilities.shape:
            raise DataError(f"labels: multi-hot shape {label_sets.shape} != probabilities {probabilities.shape}")
        labels = label_sets != 0
    else:
        label_sets = list(label_sets)
        if len(label_sets) != num_videos:
            raise DataError(f"labels: {len(label_sets)} label sets for {num_videos} videos")
        labels = np.zeros((num_videos, num_classes), bool)
        for row, label_set in enumerate(label_sets):
            members = [label_set] if np.isscalar(label_set) else list(label_set)
            for label in members:
                if isinstance(label, (bool, np.bool_)) or not isinstance(label, (int, np.integer)) \
                        or not 0 <= label < num_classes:
                    raise DataError(f"labels: video {row}: {label!r} is not a class index in [0, {num_classes})")
                labels[row, label] = True
    empty = np.flatnonzero(~labels.any(axis=1))
    if empty.size:
        raise DataError(f"labels: video {int(empty[0])} has no label ({empty.size} such videos); "
                        "classification metrics are defined on labelled videos")
    return probabilities, labels


def classification_accuracy(probabilities, label_sets):
    """Top-1 accuracy as the TSRNet tables report it: a video is correct when its top class is one of
    its labels (ties in the top score: the lowest class index, `np.argmax`).

    Args:
      probabilities: [N, C] class scores.
      label_sets: N iterables of class indices (or one int each), or an [N, C] multi-hot array.
    Returns:
      fraction in [0, 1].
    """
    probabilities, labels = _classification_inputs(probabilities, label_sets)
    top = probabilities.argmax(axis=1)
    return float(labels[np.arange(labels.shape[0]), top].mean())


def classification_map(probabilities, label_sets, tie_break="official"):
    """ActivityNet untrimmed-video classification mAP (`eval_classification.py`).

    Per class with at least one labelled video: videos ranked by that class's score
    (`np.argsort(scores)[::-1]`, or stable with later rows first for tie_break="stable"), a video
    having the class is a true positive, AP all-point interpolated as in detection; mAP = mean over
    those classes.

    Args:
      probabilities: [N, C]; label_sets: as for `classification_accuracy`.
    Returns:
      mAP in [0, 1].
    """
    if tie_break not in TIE_BREAKS:
        raise DataError(f"tie_break {tie_break!r}: choose one of {', '.join(TIE_BREAKS)}")
    probabilities, labels = _classification_inputs(probabilities, label_sets)
    kind = None if tie_break == "official" else "stable"
    average_precision = []
    for label in np.flatnonzero(labels.any(axis=0)):
        ranked = probabilities[:, label].argsort(kind=kind)[::-1]
        tp = labels[ranked, label].astype(float)
        tp_cumsum, fp_cumsum = np.cumsum(tp), np.cumsum(1.0 - tp)
        average_precision.append(_interpolated_average_precision(
            tp_cumsum / (tp_cumsum + fp_cumsum), tp_cumsum / float(labels[:, label].sum())))
    return float(np.mean(average_precision))


def hit_at_k(probabilities, label_sets, k=3, average=False, tie_break="official"):
    """ActivityNet hit@k (`compute_video_hit_at_k`): per video, the fraction of its labels among its k
    top-scoring classes (`average=True`), or 1 if any is (`average=False`, the toolkit's default);
    mean over videos.

    Args:
      probabilities: [N, C]; label_sets: as for `classification_accuracy`; k: number of top classes.
    Returns:
      fraction in [0, 1].
    """
    if tie_break not in TIE_BREAKS:
        raise DataError(f"tie_break {tie_break!r}: choose one of {', '.join(TIE_BREAKS)}")
    if int(k) < 1:
        raise DataError(f"hit_at_k: k must be >= 1, got {k}")
    probabilities, labels = _classification_inputs(probabilities, label_sets)
    kind = None if tie_break == "official" else "stable"
    hits = np.zeros(labels.shape[0])
    for row in range(labels.shape[0]):
        top = probabilities[row].argsort(kind=kind)[::-1][:int(k)]
        fraction = labels[row, top].sum() / labels[row].sum()
        hits[row] = fraction if average else np.ceil(fraction)
    return float(hits.mean())


def format_table(result):
    """An aligned text table of a `detection_map` result (mAP in %)."""
    rows = [("tIoU", "mAP (%)")]
    rows += [(key, f"{100.0 * value:.2f}") for key, value in result["mAP"].items()]
    tious = result.get("average_tious") or list(result["mAP"])
    span = tious[0] if len(tious) == 1 else f"{tious[0]}:{tious[-1]}"
    rows.append((f"average {span}", f"{100.0 * result['average']:.2f}"))
    width = max(len(row[0]) for row in rows)
    value_width = max(len(row[1]) for row in rows)
    return "\n".join(f"{name:<{width}}  {value:>{value_width}}" for name, value in rows)


__all__ = [
    "ACTIVITYNET_TIOUS", "GroundTruth", "PROTOCOLS", "THUMOS14_AVERAGE_TIOUS", "THUMOS14_BAD_TEST_VIDEOS",
    "THUMOS14_TIOUS", "TIE_BREAKS", "classification_accuracy", "classification_map", "detection_map",
    "format_table", "hit_at_k", "load_ground_truth", "load_predictions", "notes", "temporal_iou",
    "tiou_key",
]

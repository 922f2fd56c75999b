"""From per-segment scores to temporal detections, and detections to ActivityNet-format results.

TSRNet's detection rule (Zhang et al., AAAI 2019): for segment i and class c of one stream

    w_i^c = â_i · s_c

with â the video's attention and s its softmax class scores; the streams are fused as
w̄ = θ · w_rgb + (1 − θ) · w_flow, and every maximal run of consecutive segments with
w̄_i^c ≥ threshold becomes a detection of class c. Segment i covers [i / F, (i + 1) / F] seconds,
F the feature rate (segments per second), so a run i…j is the interval [i / F, (j + 1) / F].

Choices the paper leaves open, made here:
- Attention normalisation. Σ_t a_t = 1, so raw a_i scale with 1/T and no fixed threshold fits
  videos of different lengths. Each stream's attention is divided by its maximum over the video
  (â = a / max a, in [0, 1]) before weighting, so a threshold is a fraction of the class score.
- Classes localised: the classes whose fused score s̄_c = θ·s_rgb + (1−θ)·s_flow reaches
  `class_threshold`, optionally only the `top_k` best; the best class is always kept
  (`keep_top_class`), since every evaluated video contains some action.
- Detection score: `scoring="mean"` (default) is the mean of w̄^c over the run — the class score
  times the run's mean normalised attention, comparable across videos; `scoring="contrast"` is the
  outer-inner contrast mean(w̄ inside) − mean(w̄ in the ¼-length margins outside the run), which
  prefers tight runs over long plateaus.
- Several thresholds may be given: their runs are pooled, exact duplicates merged, and
  `nms_tiou` (temporal non-maximum suppression per class) removes overlapping ones.

No Keras here: everything is numpy on one video's arrays.
"""


import numpy as np

from tfwsar import evaluation, files
from tfwsar.errors import DataError

SCORINGS = ("mean", "contrast")
ACTIVITYNET_RESULT_VERSION = "VERSION 1.3"


def max_normalize(attention):
    """â = a / max_t a_t for one video's attention `[T]` (all zeros stay zeros)."""
    attention = np.asarray(attention, dtype=np.float64)
    peak = attention.max() if attention.size else 0.0
    if peak <= 0:
        return np.zeros_like(attention)
    return attention / peak


def segment_class_weights(attention, class_scores, *, normalize=True):
    """w_i^c = â_i · s_c for one stream.

    Args:
        attention: `[T]` attention of one video's valid segments.
        class_scores: `[C]` softmax class scores s.
        normalize: divide the attention by its maximum first (see the module docstring).

    Returns:
        `[T, C]` weights.
    """
    attention = max_normalize(attention) if normalize else np.asarray(attention, np.float64)
    return np.outer(attention, np.asarray(class_scores, dtype=np.float64))


def contiguous_runs(active):
    """Maximal runs of True in a boolean `[T]`, as `(first, last)` inclusive index pairs."""
    active = np.asarray(active, dtype=bool)
    padded = np.concatenate([[False], active, [False]])
    changes = np.flatnonzero(padded[1:] != padded[:-1])
    return [(int(start), int(stop) - 1) for start, stop in zip(changes[0::2], changes[1::2])]


def temporal_nms(detections, tiou_threshold):
    """Greedy per-class NMS: keep the best-scoring detection, drop those with tIoU > threshold."""
    kept = []
    for detection in sorted(detections, key=lambda d: d["score"], reverse=True):
        rivals = [[other["t_start"], other["t_end"]] for other in kept
                  if other["label_index"] == detection["label_index"]]
        if rivals and evaluation.temporal_iou(
                [[detection["t_start"], detection["t_end"]]], rivals).max() > tiou_threshold:
            continue
        kept.append(detection)
    return kept


def _run_score(values, first, last, scoring):
    inside = values[first : last + 1].mean()
    if scoring == "mean":
        return inside
    margin = max(1, int(np.ceil(0.25 * (last - first + 1))))
    outside = np.concatenate(
        [values[max(0, first - margin) : first], values[last + 1 : last + 1 + margin]]
    )
    return inside - (outside.mean() if outside.size else 0.0)


def select_classes(class_scores, *, class_threshold=0.1, top_k=None, keep_top_class=True):
    """Indices of the classes to localise, best first.

    Args:
        class_scores: `[C]` video-level scores.
        class_threshold: keep classes scoring ≥ this (None: no threshold).
        top_k: consider only the k best classes (None: all).
        keep_top_class: always keep the best class, whatever its score.
    """
    class_scores = np.asarray(class_scores, dtype=np.float64)
    order = np.argsort(-class_scores, kind="stable")
    if top_k is not None:
        order = order[:top_k]
    selected = [
        int(c) for c in order if class_threshold is None or class_scores[c] >= class_threshold
    ]
    if keep_top_class and not selected and order.size:
        selected = [int(order[0])]
    return selected


def localize_from_weights(
    weights,
    class_scores,
    *,
    feature_rate,
    threshold,
    class_threshold=0.1,
    top_k=None,
    keep_top_class=True,
    scoring="mean",
    nms_tiou=None,
    duration=None,
):
    """Detections from per-segment class weights of one video.

    Args:
        weights: `[T, C]` per-segment class weights (w̄ for TSRNet; any per-segment score works).
        class_scores: `[C]` video-level class scores, used to choose the classes.
        feature_rate: F, segments per second (segment i covers [i/F, (i+1)/F]).
        threshold: a float or a sequence of floats; a segment is in a run when w ≥ threshold.
        class_threshold, top_k, keep_top_class: class selection (see `select_classes`).
        scoring: "mean" or "contrast" (see the module docstring).
        nms_tiou: per-class temporal NMS tIoU threshold, or None for none.
        duration: video length in seconds; interval ends are clipped to it when given.

    Returns:
        list of `{"label_index", "t_start", "t_end", "score"}`, best score first.
    """
    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim != 2:
        raise ValueError(f"weights must be [T, C], got shape {weights.shape}")
    if scoring not in SCORINGS:
        raise ValueError(f"unknown scoring {scoring!r}; expected one of {SCORINGS}")
    if feature_rate <= 0:
        raise ValueError(f"feature_rate must be positive, got {feature_rate}")
    thresholds = np.atleast_1d(np.asarray(threshold, dtype=np.float64))

    best = {}  # (label, first, last) -> detection, merging duplicates from several thresholds
    for label in select_classes(
        class_scores, class_threshold=class_threshold, top_k=top_k, keep_top_class=keep_top_class
    ):
        values = weights[:, label]
        for level in thresholds:
            for first, last in contiguous_runs(values >= level):
                key = (label, first, last)
                if key in best:
                    continue
                t_start = first / feature_rate
                t_end = (last + 1) / feature_rate
                if duration is not None:
                    t_end = min(t_end, float(duration))
                best[key] = {
                    "label_index": label,
                    "t_start": float(t_start),
                    "t_end": float(t_end),
                    "score": float(_run_score(values, first, last, scoring)),
                }
    detections = sorted(best.values(), key=lambda d: d["score"], reverse=True)
    if nms_tiou is not None:
        detections = temporal_nms(detections, nms_tiou)
    return detections


def localize_video(
    attention_rgb,
    attention_flow,
    class_scores_rgb,
    class_scores_flow,
    *,
    feature_rate,
    theta,
    threshold,
    normalize_attention=True,
    class_threshold=0.1,
    top_k=None,
    keep_top_class=True,
    scoring="mean",
    nms_tiou=None,
    duration=None,
):
    """TSRNet detections for one video from both streams' attention and class scores.

        w̄_i^c = θ · â_i^rgb · s_c^rgb + (1 − θ) · â_i^flow · s_c^flow

    Args:
        attention_rgb: `[T]` RGB attention over the video's valid segments.
        attention_flow: `[T]` flow attention.
        class_scores_rgb: `[C]` RGB softmax class scores.
        class_scores_flow: `[C]` flow softmax class scores.
        feature_rate: F, segments per second.
        theta: θ, weight of the RGB stream.
        threshold: float or sequence of floats on w̄.
        normalize_attention: divide each stream's attention by its maximum (default; see module).
        class_threshold, top_k, keep_top_class: class selection on the fused scores.
        scoring, nms_tiou, duration: see `localize_from_weights`.

    Returns:
        list of `{"label_index", "t_start", "t_end", "score"}`, best score first.
    """
    if np.shape(attention_rgb) != np.shape(attention_flow):
        raise ValueError(
            f"attention shapes differ: rgb {np.shape(attention_rgb)}, "
            f"flow {np.shape(attention_flow)}"
        )
    weights_rgb = segment_class_weights(
        attention_rgb, class_scores_rgb, normalize=normalize_attention
    )
    weights_flow = segment_class_weights(
        attention_flow, class_scores_flow, normalize=normalize_attention
    )
    fused_weights = theta * weights_rgb + (1.0 - theta) * weights_flow  # w̄
    fused_scores = theta * np.asarray(class_scores_rgb, np.float64) + (1.0 - theta) * np.asarray(
        class_scores_flow, np.float64
    )  # s̄
    return localize_from_weights(
        fused_weights,
        fused_scores,
        feature_rate=feature_rate,
        threshold=threshold,
        class_threshold=class_threshold,
        top_k=top_k,
        keep_top_class=keep_top_class,
        scoring=scoring,
        nms_tiou=nms_tiou,
        duration=duration,
    )


def predictions_to_activitynet(
    video_to_detections,
    classes,
    *,
    external_data_used=False,
    external_data_details="Segment features from networks pretrained elsewhere; see the recipe.",
):
    """Detections of many videos in the ActivityNet result format.

    Args:
        video_to_detections: `{video: [{"label_index", "t_start", "t_end", "score"}, ...]}`.
        classes: class names indexed by `label_index`.
        external_data_used, external_data_details: the `external_data` entry.

    Returns:
        `{"version", "external_data": {"used", "details"}, "results": {video: [{"label",
        "score", "segment": [t_start, t_end]}]}}`.

    Raises:
        DataError: a detection's `label_index` is not an index into `classes`.
    """
    results = {}
    for video, detections in video_to_detections.items():
        entries = []
        for detection in detections:
            label_index = int(detection["label_index"])
            if not 0 <= label_index < len(classes):
                raise DataError(
                    f"video {video}: label_index {label_index} outside the {len(classes)} classes"
                )
            entries.append(
                {
                    "label": classes[label_index],
                    "score": float(detection["score"]),
                    "segment": [float(detection["t_start"]), float(detection["t_end"])],
                }
            )
        results[str(video)] = entries
    return {
        "version": ACTIVITYNET_RESULT_VERSION,
        "external_data": {"used": bool(external_data_used), "details": external_data_details},
        "results": results,
    }


def write_predictions(path, predictions):
    """Writes `predictions` (ActivityNet result dict) as JSON atomically (see tfwsar.files);
    a NaN score is refused and leaves any previous file untouched."""
    files.write_json_atomically(path, predictions, indent=None)

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

Rules for long actions (`localize_rule`, every method's outputs)
------------------------------------------------------------------
One video gives, per stream, attention a `[T]` (optional), video class scores s `[C]` and a class
activation sequence p `[T, C]` (per-segment class probabilities, "CAS"). A rule turns them into
detections; `RULES` names them all:

- "tsrnet": the paper's rule above (fixed thresholds on w̄ = â·s).
- "whole_video": the baseline — each selected class over the whole video, scored s̄_c.
- "attention", "cas", "attention_cas": the long-action pipeline on a per-class sequence v `[T]`:
  "attention": ā = θ â^rgb + (1−θ) â^flow, the class-agnostic attention (where something
  happens; the classes and scores come from s̄, what happens) — unlike w̄ it does not let a
  stream's class confidence decide whose attention draws the boundaries;
  "cas": p̄ = θ p^rgb + (1−θ) p^flow, the class activation sequence;
  "attention_cas": θ â^rgb p^rgb + (1−θ) â^flow p^flow (attention × CAS, STPN's T-CAM).
  For each selected class c:
    1. smoothing: v is averaged over a centred window of `smoothing` segments (1 = none);
    2. relative thresholds: u = (v − min v) / (max v − min v) ∈ [0, 1], so a threshold τ is a
       fraction of this video's own score range, and scaling all scores changes nothing;
    3. for every τ in `relative_thresholds` the runs of u ≥ τ, after gap filling: a gap of at
       most `max_gap` segments between two runs is filled, so one action whose score dips
       briefly stays one proposal (τ = 0 gives the whole video as a proposal);
    4. each proposal i…j is scored by its outer-inner contrast on u:
           OIC = mean(u_i…j) − mean(u over ⌈margin·(j−i+1)⌉ segments on each side)
       (nothing outside the video counts as 0, the video's minimum). A fragment inside an action
       has action around it and a low contrast; the whole action has background around it and a
       high one, so the whole action outranks its fragments;
    5. detection score s̄_c · OIC (s̄ the fused video scores: comparable across videos, and a
       class the video hardly shows ranks low);
    6. proposals of all thresholds are pooled, and per-class NMS (tIoU > `nms_tiou`) keeps the
       best of overlapping ones.

The baselines' own published rules (`PUBLISHED_RULES`), on the method-specific arrays their
method modules add to a video's outputs (`extra`): "wtalc" (Paul et al., ECCV 2018:
`localize_wtalc`) and "stpn" (Nguyen et al., CVPR 2018: `localize_stpn`). BaS-Net's published rule
(Lee et al., AAAI 2020: several thresholds on its CAS, outer-inner contrast, NMS) is the shared
"cas" rule above.

No Keras here: everything is numpy on one video's arrays.
"""


import numpy as np

from tfwsar import evaluation, files
from tfwsar.errors import DataError

SCORINGS = ("mean", "contrast")
SEQUENCE_RULES = ("attention", "cas", "attention_cas")
PUBLISHED_RULES = ("wtalc", "stpn")  # the baselines' own rules (`localize_wtalc`, `localize_stpn`)
RULES = ("tsrnet", "whole_video") + SEQUENCE_RULES + PUBLISHED_RULES
DEFAULT_RELATIVE_THRESHOLDS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
ACTIVITYNET_DETECTION = {"rule": "attention", "smoothing": 5, "max_gap": 8, "nms_tiou": 0.6}
"""The recipes' detection settings for ActivityNet (`--preset activitynet`): the best rule and
settings on the held-out training videos of the embedded ActivityNet default, for TSRNet (SRNet,
TSRNet) and convex clustering alike (recipes/activitynet13/README.md)."""
THUMOS14_DETECTION = {"rule": "cas", "smoothing": 3}
"""The recipes' detection settings on the embedded THUMOS14 default (their "default" preset): the
best rule on its held-out training videos, for both methods (recipes/activitynet13/README.md);
TSRNet's "paper" preset keeps "tsrnet"."""
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


NMS_TOLERANCE = 1e-9
"""Temporal NMS drops a detection when its tIoU exceeds the threshold by more than this. Runs on
the segment grid often overlap by exactly the threshold (3 of 5 segments at 0.6), and the
rounding of their times in seconds would otherwise decide — differently in NumPy and in the
SavedModel's graph. Such ties are kept."""


def temporal_nms(detections, tiou_threshold):
    """Greedy per-class NMS: keep the best-scoring detection, drop those with tIoU > threshold
    (by more than `NMS_TOLERANCE`: ties at the threshold are kept)."""
    kept = []
    for detection in sorted(detections, key=lambda d: d["score"], reverse=True):
        rivals = [[other["t_start"], other["t_end"]] for other in kept
                  if other["label_index"] == detection["label_index"]]
        if rivals and evaluation.temporal_iou(
                [[detection["t_start"], detection["t_end"]]], rivals).max() > (
                    tiou_threshold + NMS_TOLERANCE):
            continue
        kept.append(detection)
    return kept


def outer_inner_contrast(values, first, last, margin=0.25):
    """mean(values[first…last]) − mean(values in ⌈margin · length⌉ segments on each side).

    Segments outside the video are not counted; when the run covers the whole video, the outside
    is taken as 0.
    """
    inside = values[first : last + 1].mean()
    width = max(1, int(np.ceil(margin * (last - first + 1))))
    outside = np.concatenate(
        [values[max(0, first - width) : first], values[last + 1 : last + 1 + width]]
    )
    return inside - (outside.mean() if outside.size else 0.0)


def _run_score(values, first, last, scoring):
    if scoring == "mean":
        return values[first : last + 1].mean()
    return outer_inner_contrast(values, first, last)


def _class_sequence(values, name, feature_rate):
    """`values` as a float64 `[T, C]` array; a ValueError for another shape or a rate ≤ 0."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"{name} must be [T, C], got shape {values.shape}")
    if feature_rate <= 0:
        raise ValueError(f"feature_rate must be positive, got {feature_rate}")
    return values


def _best_first(detections, nms_tiou):
    """Detections sorted by score, then per-class temporal NMS at `nms_tiou` (None: none)."""
    detections = sorted(detections, key=lambda d: d["score"], reverse=True)
    return detections if nms_tiou is None else temporal_nms(detections, nms_tiou)


def _detection(label, first, last, score, feature_rate, duration):
    """Segments first…last (inclusive) of class `label` as a detection in seconds."""
    t_end = (last + 1) / feature_rate
    if duration is not None:
        t_end = min(t_end, float(duration))
    return {"label_index": int(label), "t_start": float(first / feature_rate),
            "t_end": float(t_end), "score": float(score)}


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
    weights = _class_sequence(weights, "weights", feature_rate)
    if scoring not in SCORINGS:
        raise ValueError(f"unknown scoring {scoring!r}; expected one of {SCORINGS}")
    thresholds = np.atleast_1d(np.asarray(threshold, dtype=np.float64))

    best = {}  # (label, first, last) -> detection, merging duplicates from several thresholds
    for label in select_classes(
        class_scores, class_threshold=class_threshold, top_k=top_k, keep_top_class=keep_top_class
    ):
        values = weights[:, label]
        for level in thresholds:
            for first, last in contiguous_runs(values >= level):
                key = (label, first, last)
                if key not in best:
                    best[key] = _detection(label, first, last, _run_score(
                        values, first, last, scoring), feature_rate, duration)
    return _best_first(list(best.values()), nms_tiou)


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


def smooth(values, window):
    """Centred moving average of `values` `[T]` or `[T, C]` along T over `window` segments (1 = as
    is); near the ends the average is over the segments that exist."""
    values = np.asarray(values, dtype=np.float64)
    window = int(window)
    if window < 1:
        raise ValueError(f"smoothing window must be ≥ 1 segment, got {window}")
    if window == 1 or values.shape[0] == 0:
        return values
    before = (window - 1) // 2
    after = window - 1 - before
    shape = (values.shape[0] + 1,) + values.shape[1:]
    cumulative = np.zeros(shape)
    np.cumsum(values, axis=0, out=cumulative[1:])
    index = np.arange(values.shape[0])
    low = np.maximum(0, index - before)
    high = np.minimum(values.shape[0], index + after + 1)
    counts = (high - low).reshape((-1,) + (1,) * (values.ndim - 1))
    return (cumulative[high] - cumulative[low]) / counts


def fill_gaps(active, max_gap):
    """`active` `[T]` bool with every run of False of at most `max_gap` segments that lies between
    two True segments set to True (the video's ends are not gaps)."""
    active = np.asarray(active, dtype=bool).copy()
    if max_gap <= 0:
        return active
    for first, last in contiguous_runs(~active):
        if first > 0 and last < active.size - 1 and last - first + 1 <= max_gap:
            active[first : last + 1] = True
    return active


CONSTANT_RANGE = 1e-5
"""A sequence whose range is at most this fraction of its largest magnitude counts as constant
(`relative_scale`): float32 rounding, which differs between two runs of the same network (Keras
vs. the SavedModel graph), is not stretched into proposals."""


def relative_scale(values):
    """(v − min v) / (max v − min v): a video's sequence on its own range, in [0, 1]; zeros when
    the sequence is constant, i.e. its range is ≤ `CONSTANT_RANGE` · max |v|."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return values
    low, high = values.min(), values.max()
    if not high - low > CONSTANT_RANGE * max(abs(low), abs(high)):
        return np.zeros_like(values)
    return (values - low) / (high - low)


def relative_proposals(values, relative_thresholds, *, max_gap=0):
    """Runs (first, last) of u ≥ τ for every τ, u = relative_scale(values), gaps ≤ `max_gap` filled;
    each distinct run once, in order of first appearance."""
    scaled = relative_scale(values)
    proposals = {}
    for level in np.atleast_1d(np.asarray(relative_thresholds, dtype=np.float64)):
        for run in contiguous_runs(fill_gaps(scaled >= level, max_gap)):
            proposals.setdefault(run, None)
    return list(proposals)


def localize_sequence(
    sequence,
    class_scores,
    *,
    feature_rate,
    relative_thresholds=DEFAULT_RELATIVE_THRESHOLDS,
    smoothing=1,
    max_gap=0,
    margin=0.25,
    class_threshold=0.1,
    top_k=None,
    keep_top_class=True,
    nms_tiou=None,
    duration=None,
):
    """The long-action pipeline (module docstring, steps 1–6) on one video's `[T, C]` sequence.

    Args:
        sequence: `[T, C]` per-segment class scores (w̄, the CAS, attention × CAS, ...).
        class_scores: `[C]` fused video-level scores s̄: choose the classes, weight the scores.
        feature_rate: F, segments per second.
        relative_thresholds: fractions τ of the video's score range.
        smoothing: moving-average window in segments (1 = none).
        max_gap: gaps of at most this many segments between runs are filled.
        margin: outer-inner contrast margin, a fraction of the proposal's length on each side.
        class_threshold, top_k, keep_top_class, nms_tiou, duration: as `localize_from_weights`.

    Returns:
        list of `{"label_index", "t_start", "t_end", "score"}`, best score first.
    """
    sequence = _class_sequence(sequence, "sequence", feature_rate)
    class_scores = np.asarray(class_scores, dtype=np.float64)
    detections = []
    for label in select_classes(
        class_scores, class_threshold=class_threshold, top_k=top_k, keep_top_class=keep_top_class
    ):
        values = smooth(sequence[:, label], smoothing)
        scaled = relative_scale(values)
        for first, last in relative_proposals(values, relative_thresholds, max_gap=max_gap):
            contrast = outer_inner_contrast(scaled, first, last, margin)
            detections.append(_detection(label, first, last, class_scores[label] * contrast,
                                         feature_rate, duration))
    return _best_first(detections, nms_tiou)


def localize_whole_video(class_scores, *, duration, class_threshold=0.1, top_k=None,
                         keep_top_class=True):
    """The baseline: each selected class over [0, duration], scored by its video score."""
    class_scores = np.asarray(class_scores, dtype=np.float64)
    return [{"label_index": label, "t_start": 0.0, "t_end": float(duration),
             "score": float(class_scores[label])}
            for label in select_classes(class_scores, class_threshold=class_threshold,
                                        top_k=top_k, keep_top_class=keep_top_class)]


def _per_stream(values):
    """{"rgb": x, "flow": x} for one array x (a single-stream method); a dict as it is."""
    return values if values is None or isinstance(values, dict) else {"rgb": values, "flow": values}


def fuse_streams(values, theta):
    """θ · values["rgb"] + (1 − θ) · values["flow"] (float64; one array: itself)."""
    values = _per_stream(values)
    return (theta * np.asarray(values["rgb"], np.float64)
            + (1.0 - theta) * np.asarray(values["flow"], np.float64))


def rule_sequence(rule, attention, class_scores, cas, *, theta):
    """The `[T, C]` sequence a sequence rule localises (module docstring).

    Args:
        rule: "attention" (θ â^rgb + (1−θ) â^flow, the same for every class), "cas"
            (θ p^rgb + (1−θ) p^flow) or "attention_cas" (θ â^rgb p^rgb + (1−θ) â^flow p^flow).
        attention: {"rgb": [T], "flow": [T]} (or one [T] array); max-normalised here.
        class_scores: {"rgb": [C], "flow": [C]} (or one [C] array).
        cas: {"rgb": [T, C], "flow": [T, C]} (or one [T, C] array).
        theta: θ, weight of the RGB stream.
    """
    attention, class_scores, cas = (_per_stream(v) for v in (attention, class_scores, cas))
    streams = ("rgb", "flow")
    if rule == "attention":
        actionness = fuse_streams({s: max_normalize(attention[s]) for s in streams}, theta)
        num_classes = len(np.atleast_1d(class_scores["rgb"]))
        return np.broadcast_to(actionness[:, None], (actionness.size, num_classes))
    if rule == "cas":
        return fuse_streams(cas, theta)
    if rule == "attention_cas":
        return fuse_streams({s: max_normalize(attention[s])[:, None] * np.asarray(cas[s], np.float64)
                             for s in streams}, theta)
    raise ValueError(f"rule {rule!r} has no sequence; sequence rules are {SEQUENCE_RULES}")


def localize_rule(
    rule,
    attention,
    class_scores,
    cas,
    *,
    theta,
    feature_rate,
    duration=None,
    thresholds=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7),
    scoring="mean",
    relative_thresholds=DEFAULT_RELATIVE_THRESHOLDS,
    smoothing=1,
    max_gap=0,
    margin=0.25,
    class_threshold=0.1,
    top_k=None,
    keep_top_class=True,
    nms_tiou=None,
    extra=None,
):
    """Detections for one video by the rule named `rule` (one of `RULES`, module docstring).

    Args:
        rule: "tsrnet", "whole_video", "attention", "cas" or "attention_cas".
        attention: {"rgb": [T], "flow": [T]} per-stream attention (None for "cas"/"whole_video").
        class_scores: {"rgb": [C], "flow": [C]} per-stream video class scores (or fused [C]).
        cas: {"rgb": [T, C], "flow": [T, C]} per-segment class probabilities (None unless needed).
        theta: θ, weight of the RGB stream in every fusion.
        feature_rate: F, segments per second.
        duration: video length in seconds ("whole_video" needs it or a sequence to count T).
        thresholds, scoring: "tsrnet" only (absolute thresholds on w̄; "mean" | "contrast").
        relative_thresholds, smoothing, max_gap, margin: the sequence rules (`localize_sequence`).
        class_threshold, top_k, keep_top_class, nms_tiou: every rule (nms_tiou not "whole_video").
            The published rules ("wtalc", "stpn") use their papers' own class choice and NMS.
        extra: a method's own per-video arrays, which the published rules read.

    Returns:
        list of `{"label_index", "t_start", "t_end", "score"}`, best score first.
    """
    if rule not in RULES:
        raise ValueError(f"unknown detection rule {rule!r}; expected one of {RULES}")
    if rule == "wtalc":
        return localize_wtalc(cas if not isinstance(cas, dict) else cas["rgb"],
                              extra["segment_logits"], extra["topk_logits"],
                              feature_rate=feature_rate, duration=duration)
    if rule == "stpn":
        return localize_stpn(extra, feature_rate=feature_rate, duration=duration)
    selection = dict(class_threshold=class_threshold, top_k=top_k, keep_top_class=keep_top_class)
    fused_scores = fuse_streams(class_scores, theta)
    if rule == "tsrnet":
        attention, class_scores = _per_stream(attention), _per_stream(class_scores)
        return localize_video(
            attention["rgb"], attention["flow"], class_scores["rgb"], class_scores["flow"],
            feature_rate=feature_rate, theta=theta, threshold=thresholds, scoring=scoring,
            nms_tiou=nms_tiou, duration=duration, **selection)
    if rule == "whole_video":
        if duration is None:
            duration = len(_per_stream(cas if cas is not None else attention)["rgb"]) / feature_rate
        return localize_whole_video(fused_scores, duration=duration, **selection)
    return localize_sequence(
        rule_sequence(rule, attention, class_scores, cas, theta=theta), fused_scores,
        feature_rate=feature_rate, relative_thresholds=relative_thresholds, smoothing=smoothing,
        max_gap=max_gap, margin=margin, nms_tiou=nms_tiou, duration=duration, **selection)


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


# ---------------------------------------------------------------------------------------------
# The baselines' published rules


def localize_wtalc(cas, segment_logits, topk_logits, *, feature_rate, duration=None,
                   min_length=2, score_weight=0.7):
    """W-TALC's detection rule (Paul et al., ECCV 2018, as its official test code), one video.

    For every class c with c_s > 0 (c_s = `topk_logits`, the mean of the class's top-k segment
    logits z): each run of segments with cas_c > 0.5 (cas = per-class min-max of z, so this is
    z above half its range) of at least `min_length` segments is a detection scored
    max_{t ∈ run} z_t,c + 0.7 · c_s. No NMS.

    Args:
        cas: `[T, C]` min-max normalised segment logits; segment_logits: `[T, C]` raw z;
        topk_logits: `[C]` c_s.
    """
    cas, logits = np.asarray(cas, np.float64), np.asarray(segment_logits, np.float64)
    detections = []
    for label in np.flatnonzero(np.asarray(topk_logits) > 0):
        for first, last in contiguous_runs(cas[:, label] > 0.5):
            if last - first + 1 >= min_length:
                score = logits[first:last + 1, label].max() + score_weight * topk_logits[label]
                detections.append(_detection(label, first, last, score, feature_rate, duration))
    return sorted(detections, key=lambda detection: -detection["score"])


def localize_stpn(extra, *, feature_rate, duration=None, class_threshold=0.1,
                  activation_threshold=0.05, upsample=24, nms_tiou=0.5):
    """STPN's detection rule (Nguyen et al., CVPR 2018; numbers of the public reimplementation).

    Per stream s and class c with σ(z_c^s) > `class_threshold`: the weighted T-CAM ψ^s_c = λ^s ·
    σ(a^s_c) upsampled `upsample`× by linear interpolation; each run of values ≥
    `activation_threshold` is a proposal, scored by the mean over it of λ^s · (½ a^s_c + ½ a^s'_c)
    (a the raw T-CAM of both streams, weighted by this stream's attention). Both streams'
    proposals of a class are pooled; NMS at `nms_tiou` keeps the best.

    Args:
        extra: the STPN module's per-stream arrays `<s>_class_scores` [C], `<s>_cas` [T, C],
          `<s>_attention` [T], `<s>_segment_logits` [T, C] for s = rgb, flow.
    """
    streams = ("rgb", "flow")
    length = len(extra["rgb_attention"])
    fine = np.arange(length * upsample) / upsample - 0.5 + 0.5 / upsample
    coarse = np.arange(length)

    def up(values):
        return np.interp(fine, coarse, np.asarray(values, np.float64))

    detections = []
    for stream, other in (streams, streams[::-1]):
        attention = up(extra[f"{stream}_attention"])
        for label in np.flatnonzero(np.asarray(extra[f"{stream}_class_scores"]) > class_threshold):
            weighted = up(extra[f"{stream}_cas"][:, label])
            raw = attention * 0.5 * (up(extra[f"{stream}_segment_logits"][:, label])
                                     + up(extra[f"{other}_segment_logits"][:, label]))
            for first, last in contiguous_runs(weighted >= activation_threshold):
                detections.append(_detection(label, first, last, raw[first:last + 1].mean(),
                                             feature_rate * upsample, duration))
    return temporal_nms(detections, nms_tiou)

"""SavedModel export of a trained model, loadable without tfwsar.

`export_method` exports any method module (`tfwsar.experiment`): `serving_default` only (its
outputs below). The rest of this docstring is TSRNet's two-stream export.

`export_two_stream(models, path, ...)` writes a SavedModel with three signatures, all taking ONE
video's features as `rgb` [T, D_rgb] and `flow` [T, D_flow] float32 (any T ≥ 1):

- `serving_default` → `probabilities` [C] (fused s̄ = θ·s_rgb + (1−θ)·s_flow), `probabilities_rgb`,
  `probabilities_flow` [C], `attention_rgb`, `attention_flow` [T], `segment_scores` [T, C]
  (the fused detection weights w̄_i^c = θ·â_i^rgb·s_c^rgb + (1−θ)·â_i^flow·s_c^flow, â the attention
  divided by its maximum, as tfwsar.localize), `segment_probabilities_rgb`,
  `segment_probabilities_flow` [T, C] (each stream's per-segment class probabilities p, the softmax
  of its segment logits: the class activation sequence, "CAS") and `segment_probabilities` [T, C]
  (their fusion p̄ = θ·p_rgb + (1−θ)·p_flow);
- `detect` → padded detections: `num_detections` [] int32, `labels` [K] int32, `t_start`,
  `t_end`, `scores` [K] float32 (K = max_detections, best first, zero padding), plus `classes`
  [C] string and `feature_rate` [] so that a user needs nothing but the SavedModel, `rule` []
  string (the detection rule it implements) and `detection_settings` [] string (JSON of the
  exported `inference.DetectionSettings`);
- `detect_with_duration` → the same, with a third input `duration` [] float32 (seconds): interval
  ends are clipped to it and "whole_video" detections end there, as a run's predictions.json
  (`inference.detect_videos` passes each video's duration). `detect` takes the duration as
  T / feature_rate, which clips nothing.

`detect` is the exported settings' rule (`settings.rule`, tfwsar.localize's module docstring)
written in TensorFlow ops, in float64 from the networks' float32 outputs like tfwsar.localize:

- "tsrnet": runs of w̄ ≥ each of `thresholds` for each selected class, scored by their mean w̄
  (`scoring="mean"`) or its outer-inner contrast (`"contrast"`, margin ¼);
- "whole_video": each selected class over [0, duration], scored s̄_c, no NMS;
- "attention" (θ·â_rgb + (1−θ)·â_flow for every class), "cas" (p̄) and "attention_cas"
  (θ·â_rgb·p_rgb + (1−θ)·â_flow·p_flow): per selected class the sequence is smoothed by a centred
  moving average of `smoothing` segments (fewer at the ends), scaled to [0, 1] on its own range
  (zeros when constant), thresholded at every `relative_thresholds` τ with gaps of ≤ `max_gap`
  segments filled, and each distinct run scored s̄_c · its outer-inner contrast over `margin`.

Classes are chosen as `localize.select_classes` (fused score ≥ `class_threshold` among the
`top_k` best; the best one when none is); detections of all classes are sorted by score (ties in
the order tfwsar.localize creates them) and greedy per-class NMS keeps those whose tIoU with every
better kept one is ≤ `nms_tiou` + `localize.NMS_TOLERANCE` (float64, `evaluation.temporal_iou`), stopping
at K detections (tfwsar.localize keeps them all: the SavedModel returns its first K). The
baselines' published rules ("wtalc", "stpn") are not exported: `export_two_stream` raises a
ValueError naming the rule. Tests check that `detect` returns the same detections, in the same
order, as `inference.detect_videos` / `localize.localize_rule` on the same networks' outputs.
"""

import dataclasses
import json

import numpy as np
import tensorflow as tf

from tfwsar import localize

EXPORTABLE_RULES = ("tsrnet", "whole_video") + localize.SEQUENCE_RULES
"""The detection rules `export_two_stream`'s `detect` signature implements."""

_F64 = tf.float64

MAX_DETECTIONS = 2000
"""K of `detect`: a run's predictions.json keeps every detection of a video, and the recipes'
default runs find up to ~1,000 in one THUMOS14 test video (959 for convex clustering on the
embedded default), so K leaves the SavedModel's detections those of the run."""


def _max_normalized(attention):
    """â = a / max a (float64), zeros when max a ≤ 0 (`localize.max_normalize`)."""
    peak = tf.reduce_max(attention)
    return tf.where(peak > 0, attention / peak, tf.zeros_like(attention))


def _fuse(theta, rgb, flow):
    """θ·rgb + (1 − θ)·flow, the operation order of `localize.fuse_streams`."""
    return theta * rgb + (1.0 - theta) * flow


def _runs(active, max_gap=0):
    """Maximal runs of True in each row of `active` [N, T] as (row, first, last) int64 vectors,
    row-major; gaps of at most `max_gap` False segments between two runs of a row are filled
    (`localize.fill_gaps` then `contiguous_runs`)."""
    padded = tf.pad(active, [[0, 0], [1, 1]])
    starts = tf.where(padded[:, 1:-1] & ~padded[:, :-2])  # [N, 2] (row, first)
    ends = tf.where(padded[:, 1:-1] & ~padded[:, 2:])  # [N, 2] (row, last), same order
    row, first, last = starts[:, 0], starts[:, 1], ends[:, 1]
    if max_gap > 0:
        # A run starts a filled run unless the previous run of its row ends ≤ max_gap before it.
        previous_row = tf.concat([tf.constant([-1], tf.int64), row[:-1]], 0)
        previous_last = tf.concat([tf.constant([-1], tf.int64), last[:-1]], 0)
        opens = (row != previous_row) | (first - previous_last - 1 > max_gap)
        closes = tf.concat([opens[1:], tf.ones_like(opens[:1])], 0)
        row, first = tf.boolean_mask(row, opens), tf.boolean_mask(first, opens)
        last = tf.boolean_mask(last, closes)
    return row, first, last


def _distinct(row_class, first, last, length):
    """Indices of the first occurrence of every distinct (class, first, last), in order."""
    span = tf.cast(length, tf.int64) + 1
    key = (tf.cast(row_class, tf.int64) * span + first) * span + last
    unique, index = tf.unique(key)
    return tf.math.unsorted_segment_min(tf.range(tf.size(key)), index, tf.size(unique))


def _gather_cumulative(cumulative, row, index):
    return tf.gather_nd(cumulative, tf.stack([row, index], 1))


def _cumulative(values):
    """[N, T + 1] running sums of [N, T] rows, a leading 0 (sums over i…j as differences)."""
    return tf.pad(tf.cumsum(values, axis=1), [[0, 0], [1, 0]])


def _run_mean(cumulative, row, first, last):
    total = _gather_cumulative(cumulative, row, last + 1) - _gather_cumulative(cumulative, row, first)
    return total / tf.cast(last - first + 1, _F64)


def _outer_inner_contrast(cumulative, length, row, first, last, margin):
    """`localize.outer_inner_contrast` of runs (row, first, last) on the rows summed in
    `cumulative`: the mean inside minus the mean over ⌈margin · run length⌉ segments (at least
    one) on each side, only those inside the video; 0 outside when there are none."""
    length = tf.cast(length, tf.int64)
    run_length = last - first + 1
    inside = _run_mean(cumulative, row, first, last)
    width = tf.maximum(tf.constant(1, tf.int64), tf.cast(
        tf.math.ceil(margin * tf.cast(run_length, _F64)), tf.int64))
    low = tf.maximum(tf.constant(0, tf.int64), first - width)
    high = tf.minimum(length, last + 1 + width)
    at = lambda index: _gather_cumulative(cumulative, row, index)  # noqa: E731
    outside_total = (at(first) - at(low)) + (at(high) - at(last + 1))
    outside_count = (first - low) + (high - last - 1)
    outside = tf.where(outside_count > 0, outside_total / tf.cast(
        tf.maximum(outside_count, 1), _F64), tf.zeros_like(outside_total))
    return inside - outside


def _smooth(rows, window):
    """`localize.smooth` along T of [N, T] rows: centred moving average over `window` segments,
    over the segments that exist near the ends."""
    if window == 1:
        return rows
    before = (window - 1) // 2
    after = window - 1 - before
    length = tf.shape(rows)[1]
    cumulative = _cumulative(rows)
    index = tf.range(length)
    low = tf.maximum(0, index - before)
    high = tf.minimum(length, index + after + 1)
    return (tf.gather(cumulative, high, axis=1) - tf.gather(cumulative, low, axis=1)) / tf.cast(
        high - low, _F64)


def _relative_scale(rows):
    """`localize.relative_scale` of each row: (v − min v) / (max v − min v), zeros if constant
    (range ≤ `localize.CONSTANT_RANGE` · max |v|)."""
    low = tf.reduce_min(rows, axis=1, keepdims=True)
    high = tf.reduce_max(rows, axis=1, keepdims=True)
    varies = high - low > localize.CONSTANT_RANGE * tf.maximum(tf.abs(low), tf.abs(high))
    return tf.where(varies, (rows - low) / (high - low), tf.zeros_like(rows))


def _temporal_nms(labels, t_start, t_end, tiou_threshold, max_output):
    """Greedy per-class NMS of detections sorted best first (`localize.temporal_nms`): indices
    of the kept ones, at most `max_output`. A candidate is dropped when its tIoU with a kept
    detection of its class exceeds the threshold by more than `localize.NMS_TOLERANCE`
    (`evaluation.temporal_iou`'s arithmetic)."""
    count = tf.size(labels)

    def suppress(alive, kept, number):
        best = tf.argmax(tf.cast(alive, tf.int32), output_type=tf.int32)  # first alive one
        intersection = tf.maximum(tf.minimum(t_end, t_end[best]) - tf.maximum(
            t_start, t_start[best]), 0.0)
        union = (t_end[best] - t_start[best]) + (t_end - t_start) - intersection
        identical = (t_start == t_start[best]) & (t_end == t_end[best])
        iou = tf.where(union == 0, tf.where(identical, tf.ones_like(union), tf.zeros_like(union)),
                       intersection / tf.where(union == 0, tf.ones_like(union), union))
        overlapping = (labels == labels[best]) & (iou > tiou_threshold + localize.NMS_TOLERANCE)
        alive = alive & ~overlapping & (tf.range(count) != best)
        return alive, kept.write(number, best), number + 1

    _, kept, _ = tf.while_loop(
        lambda alive, kept, number: tf.reduce_any(alive) & (number < max_output), suppress,
        (tf.ones([count], tf.bool), tf.TensorArray(tf.int32, size=0, dynamic_size=True,
                                                   element_shape=[]), tf.constant(0)))
    return kept.stack()


class TwoStreamServing(tf.Module):
    """The exported module: two Keras stream models plus the fusion and detection settings."""

    def __init__(self, models, *, feature_dims, classes, feature_rate, settings,
                 max_detections=MAX_DETECTIONS):
        super().__init__(name="tfwsar_two_stream")
        if settings.rule not in EXPORTABLE_RULES:
            raise ValueError(
                f"detection rule {settings.rule!r} cannot be exported: the SavedModel's detect "
                f"signature implements {EXPORTABLE_RULES} (a method module's rule is exported "
                "with export_method, whose SavedModel has no detect signature)")
        if settings.scoring not in localize.SCORINGS:
            raise ValueError(f"scoring {settings.scoring!r}: expected one of {localize.SCORINGS}")
        if int(settings.smoothing) < 1:
            raise ValueError(f"smoothing window must be ≥ 1 segment, got {settings.smoothing}")
        if float(feature_rate) <= 0:
            raise ValueError(f"feature_rate must be positive, got {feature_rate}")
        self.rgb_model = models["rgb"]
        self.flow_model = models["flow"]
        self.rule = settings.rule
        self.theta = float(settings.theta)
        self.thresholds = tuple(float(t) for t in np.atleast_1d(settings.thresholds))
        self.scoring = settings.scoring
        self.relative_thresholds = tuple(
            float(t) for t in np.atleast_1d(settings.relative_thresholds))
        self.smoothing = int(settings.smoothing)
        self.max_gap = int(settings.max_gap)
        self.margin = float(settings.margin)
        self.class_threshold = (None if settings.class_threshold is None
                                else float(settings.class_threshold))
        self.top_k = None if settings.top_k is None else int(settings.top_k)
        self.nms_tiou = None if settings.nms_tiou is None else float(settings.nms_tiou)
        self.max_detections = int(max_detections)
        self.rate = float(feature_rate)  # float64 times, as tfwsar.localize
        self.classes = tf.constant(list(classes), tf.string)
        self.feature_rate = tf.constant(self.rate, tf.float32)
        self.rule_name = tf.constant(self.rule, tf.string)
        self.settings_json = tf.constant(json.dumps(
            dataclasses.asdict(settings) if dataclasses.is_dataclass(settings)
            else vars(settings), sort_keys=True), tf.string)
        signature = [tf.TensorSpec([None, feature_dims["rgb"]], tf.float32, name="rgb"),
                     tf.TensorSpec([None, feature_dims["flow"]], tf.float32, name="flow")]
        self.serve = tf.function(self._serve, input_signature=signature)
        self.detect = tf.function(self._detect, input_signature=signature)
        self.detect_with_duration = tf.function(
            self._detect_with_duration,
            input_signature=signature + [tf.TensorSpec([], tf.float32, name="duration")])

    def _stream(self, model, features):
        mask = tf.ones(tf.shape(features)[:1], tf.float32)[None]
        outputs = model({"features": features[None], "mask": mask}, training=False)
        logits = outputs["segment_logits"][0]
        # softmax as inference.predict_videos computes it (max-shifted, in float32)
        exponentials = tf.exp(logits - tf.reduce_max(logits, axis=-1, keepdims=True))
        segment_probabilities = exponentials / tf.reduce_sum(exponentials, axis=-1, keepdims=True)
        return outputs["probabilities"][0], outputs["attention"][0], segment_probabilities

    def _streams(self, rgb, flow):
        """{"probabilities", "attention", "segment_probabilities"} → {"rgb": ..., "flow": ...}."""
        outputs = {"rgb": self._stream(self.rgb_model, rgb),
                   "flow": self._stream(self.flow_model, flow)}
        return {key: {stream: outputs[stream][index] for stream in outputs} for index, key in
                enumerate(("probabilities", "attention", "segment_probabilities"))}

    def _serve(self, rgb, flow):
        streams = self._streams(rgb, flow)
        probabilities, attention = streams["probabilities"], streams["attention"]
        segment_probabilities = streams["segment_probabilities"]

        def normalized(values):
            return tf.math.divide_no_nan(values, tf.reduce_max(values))

        theta = self.theta
        segment_scores = (theta * normalized(attention["rgb"])[:, None] * probabilities["rgb"][None]
                          + (1 - theta) * normalized(attention["flow"])[:, None]
                          * probabilities["flow"][None])
        return {
            "probabilities": theta * probabilities["rgb"] + (1 - theta) * probabilities["flow"],
            "probabilities_rgb": probabilities["rgb"],
            "probabilities_flow": probabilities["flow"],
            "attention_rgb": attention["rgb"],
            "attention_flow": attention["flow"],
            "segment_scores": segment_scores,
            "segment_probabilities_rgb": segment_probabilities["rgb"],
            "segment_probabilities_flow": segment_probabilities["flow"],
            "segment_probabilities": _fuse(theta, segment_probabilities["rgb"],
                                           segment_probabilities["flow"]),
        }

    def _selected_classes(self, class_scores):
        """`localize.select_classes`: the classes scoring ≥ class_threshold among the top_k, best
        first (ties: lower index first); the best one when none is."""
        num_classes = tf.shape(class_scores)[0]
        top_k = num_classes if self.top_k is None else tf.minimum(self.top_k, num_classes)
        top_scores, top_classes = tf.math.top_k(class_scores, k=top_k)
        if self.class_threshold is None:
            keep = tf.ones_like(top_scores, tf.bool)
        else:
            keep = top_scores >= self.class_threshold
        keep = keep | ((tf.range(top_k) == 0) & ~tf.reduce_any(keep))
        return tf.boolean_mask(top_classes, keep)

    def _proposals(self, values, levels, max_gap):
        """Runs of values ≥ each level for every row of `values` [K, T]: distinct (row, first,
        last) in the order tfwsar.localize creates them (row, then level, then time)."""
        count = len(levels)
        active = tf.repeat(values, count, axis=0) >= tf.tile(
            tf.constant(levels, _F64), tf.shape(values)[:1])[:, None]
        row, first, last = _runs(active, max_gap)
        row = row // count
        keep = _distinct(row, first, last, tf.shape(values)[1])
        return tf.gather(row, keep), tf.gather(first, keep), tf.gather(last, keep)

    def _detect(self, rgb, flow):
        return self._detections(rgb, flow, None)

    def _detect_with_duration(self, rgb, flow, duration):
        return self._detections(rgb, flow, tf.cast(duration, _F64))

    def _detections(self, rgb, flow, duration):
        streams = self._streams(rgb, flow)
        as64 = lambda values: {s: tf.cast(v, _F64) for s, v in values.items()}  # noqa: E731
        probabilities, attention = as64(streams["probabilities"]), as64(streams["attention"])
        segment_probabilities = as64(streams["segment_probabilities"])
        theta = self.theta
        length = tf.shape(rgb)[0]
        fused_scores = _fuse(theta, probabilities["rgb"], probabilities["flow"])  # s̄
        classes = self._selected_classes(fused_scores)
        normalized = {s: _max_normalized(attention[s]) for s in attention}

        if self.rule == "whole_video":
            end = tf.cast(length, _F64) / self.rate if duration is None else duration
            labels = classes
            t_start = tf.zeros(tf.shape(classes), _F64)
            t_end = tf.fill(tf.shape(classes), end)
            scores = tf.gather(fused_scores, classes)
            return self._padded(labels, t_start, t_end, scores)

        if self.rule == "tsrnet":
            weights = _fuse(theta, normalized["rgb"][:, None] * probabilities["rgb"][None],
                            normalized["flow"][:, None] * probabilities["flow"][None])  # w̄
            values = tf.transpose(tf.gather(weights, classes, axis=1))  # [K, T]
            row, first, last = self._proposals(values, self.thresholds, 0)
            cumulative = _cumulative(values)
            if self.scoring == "mean":
                scores = _run_mean(cumulative, row, first, last)
            else:
                scores = _outer_inner_contrast(cumulative, length, row, first, last, 0.25)
        else:
            if self.rule == "attention":
                actionness = _fuse(theta, normalized["rgb"], normalized["flow"])  # ā [T]
                sequence = tf.tile(actionness[None], [tf.size(classes), 1])
            else:
                if self.rule == "cas":
                    fused = _fuse(theta, segment_probabilities["rgb"],
                                  segment_probabilities["flow"])  # p̄
                else:  # attention_cas
                    fused = _fuse(theta, normalized["rgb"][:, None] * segment_probabilities["rgb"],
                                  normalized["flow"][:, None] * segment_probabilities["flow"])
                sequence = tf.transpose(tf.gather(fused, classes, axis=1))  # [K, T]
            scaled = _relative_scale(_smooth(sequence, self.smoothing))
            row, first, last = self._proposals(scaled, self.relative_thresholds, self.max_gap)
            contrast = _outer_inner_contrast(_cumulative(scaled), length, row, first, last,
                                             self.margin)
            scores = tf.gather(fused_scores, tf.gather(classes, row)) * contrast
        labels = tf.gather(classes, row)
        t_start = tf.cast(first, _F64) / self.rate
        t_end = tf.cast(last + 1, _F64) / self.rate
        if duration is not None:
            t_end = tf.minimum(t_end, duration)
        order = tf.argsort(scores, direction="DESCENDING", stable=True)
        labels, t_start, t_end, scores = (tf.gather(v, order)
                                          for v in (labels, t_start, t_end, scores))
        if self.nms_tiou is None:
            keep = tf.range(tf.minimum(tf.size(scores), self.max_detections))
        else:
            keep = _temporal_nms(labels, t_start, t_end, self.nms_tiou, self.max_detections)
        return self._padded(*(tf.gather(v, keep) for v in (labels, t_start, t_end, scores)))

    def _padded(self, labels, t_start, t_end, scores):
        """The `detect` outputs: the first max_detections detections, zero padded."""
        count = tf.minimum(tf.size(labels), self.max_detections)
        padding = [[0, self.max_detections - count]]

        def pad(values, dtype):
            return tf.pad(tf.cast(values[:count], dtype), padding)

        return {
            "num_detections": count,
            "labels": pad(labels, tf.int32),
            "t_start": pad(t_start, tf.float32),
            "t_end": pad(t_end, tf.float32),
            "scores": pad(scores, tf.float32),
            "classes": self.classes,
            "feature_rate": self.feature_rate,
            "rule": self.rule_name,
            "detection_settings": self.settings_json,
        }


def export_two_stream(models, path, *, feature_dims, classes, feature_rate, settings,
                      max_detections=MAX_DETECTIONS):
    """Writes the SavedModel (signatures `serving_default`, `detect`, `detect_with_duration`).

    Args:
      models: {"rgb": stream model, "flow": stream model} (tfwsar.models.tsrnet networks).
      path: output directory.
      feature_dims: {"rgb": D_rgb, "flow": D_flow}.
      classes: class names, index order of the models' outputs.
      feature_rate: segments per second of the features the models were trained on.
      settings: tfwsar.inference.DetectionSettings; `detect` implements `settings.rule`.
      max_detections: K, the padded length of `detect`'s outputs.

    Raises:
      ValueError: `settings.rule` is not one of `EXPORTABLE_RULES` (the published "wtalc" and
        "stpn" rules), or a setting the rule cannot use (smoothing < 1, unknown scoring).
    """
    module = TwoStreamServing(models, feature_dims=feature_dims, classes=classes,
                              feature_rate=feature_rate, settings=settings,
                              max_detections=max_detections)
    tf.saved_model.save(module, str(path), signatures={
        "serving_default": module.serve, "detect": module.detect,
        "detect_with_duration": module.detect_with_duration})
    return path


class MethodServing(tf.Module):
    """The exported module of any method module (`tfwsar.experiment`): its networks and outputs."""

    def __init__(self, method, networks, *, feature_dims, classes, feature_rate):
        super().__init__(name="tfwsar_method")
        self.networks = dict(networks)
        self._video_outputs = method.video_outputs
        self.classes = tf.constant(list(classes), tf.string)
        self.feature_rate = tf.constant(float(feature_rate), tf.float32)
        signature = [tf.TensorSpec([None, feature_dims["rgb"]], tf.float32, name="rgb"),
                     tf.TensorSpec([None, feature_dims["flow"]], tf.float32, name="flow")]
        self.serve = tf.function(self._serve, input_signature=signature)

    def _serve(self, rgb, flow):
        batch = {"rgb": rgb[None], "flow": flow[None],
                 "mask": tf.ones(tf.shape(rgb)[:1], tf.float32)[None]}
        outputs = self._video_outputs(self.networks, batch)
        attention = outputs.get("attention")
        if attention is None:
            attention = tf.ones(tf.shape(rgb)[:1], tf.float32)[None]
        return {"probabilities": outputs["class_scores"][0], "attention": attention[0],
                "segment_scores": outputs["cas"][0], "classes": self.classes,
                "feature_rate": self.feature_rate}


def export_method(method, networks, path, *, feature_dims, classes, feature_rate):
    """Writes a method module's SavedModel: `serving_default` takes one video's `rgb` [T, D_rgb]
    and `flow` [T, D_flow] (any T) and returns `probabilities` [C], `attention` [T] (ones for a
    method without attention), `segment_scores` [T, C] (its class activation sequence),
    `classes` [C] and `feature_rate` []."""
    module = MethodServing(method, networks, feature_dims=feature_dims, classes=classes,
                           feature_rate=feature_rate)
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path


def detections_from_signature(outputs):
    """Padded `detect` outputs → [{"label_index", "t_start", "t_end", "score"}], best first."""
    count = int(np.asarray(outputs["num_detections"]))
    return [{"label_index": int(outputs["labels"][i]), "t_start": float(outputs["t_start"][i]),
             "t_end": float(outputs["t_end"][i]), "score": float(outputs["scores"][i])}
            for i in range(count)]

"""SavedModel export of a trained model, loadable without tfwsar.

`export_method` exports any method module (`tfwsar.experiment`): `serving_default` only (its
outputs below). The rest of this docstring is TSRNet's two-stream export.

`export_two_stream(models, path, ...)` writes a SavedModel with two signatures, both taking ONE
video's features as `rgb` [T, D_rgb] and `flow` [T, D_flow] float32 (any T):

- `serving_default` → `probabilities` [C] (fused θ·s_rgb + (1−θ)·s_flow), `probabilities_rgb`,
  `probabilities_flow` [C], `attention_rgb`, `attention_flow` [T], `segment_scores` [T, C]
  (the fused detection weights w̄_i^c = θ·â_i^rgb·s_c^rgb + (1−θ)·â_i^flow·s_c^flow, â the attention
  divided by its maximum, as tfwsar.localize);
- `detect` → padded detections: `num_detections` [] int32, `labels` [K] int32, `t_start`,
  `t_end`, `scores` [K] float32 (K = max_detections, best first, zero padding), plus `classes`
  [C] string and `feature_rate` [] so that a user needs nothing but the SavedModel.

`detect` is tfwsar.localize's rule written in TensorFlow ops (runs of w̄ ≥ threshold for each
threshold and selected class, scored by their mean w̄, temporal NMS); tests check that it returns
the same detections as `localize.localize_video` on the same outputs.
"""

import numpy as np
import tensorflow as tf


class TwoStreamServing(tf.Module):
    """The exported module: two Keras stream models plus the fusion and detection settings."""

    def __init__(self, models, *, feature_dims, classes, feature_rate, settings,
                 max_detections=100):
        super().__init__(name="tfwsar_two_stream")
        self.rgb_model = models["rgb"]
        self.flow_model = models["flow"]
        self.theta = float(settings.theta)
        self.thresholds = tf.constant(settings.thresholds, tf.float32)
        self.class_threshold = float(settings.class_threshold)
        self.top_k = settings.top_k
        self.nms_tiou = 1.0 if settings.nms_tiou is None else float(settings.nms_tiou)
        if settings.scoring != "mean":
            raise ValueError("the exported detector implements scoring='mean' only")
        self.max_detections = int(max_detections)
        self.classes = tf.constant(list(classes), tf.string)
        self.feature_rate = tf.constant(float(feature_rate), tf.float32)
        signature = [tf.TensorSpec([None, feature_dims["rgb"]], tf.float32, name="rgb"),
                     tf.TensorSpec([None, feature_dims["flow"]], tf.float32, name="flow")]
        self.serve = tf.function(self._serve, input_signature=signature)
        self.detect = tf.function(self._detect, input_signature=signature)

    def _stream(self, model, features):
        mask = tf.ones(tf.shape(features)[:1], tf.float32)[None]
        outputs = model({"features": features[None], "mask": mask}, training=False)
        return outputs["probabilities"][0], outputs["attention"][0]

    def _serve(self, rgb, flow):
        probabilities_rgb, attention_rgb = self._stream(self.rgb_model, rgb)
        probabilities_flow, attention_flow = self._stream(self.flow_model, flow)

        def normalized(attention):
            return tf.math.divide_no_nan(attention, tf.reduce_max(attention))

        theta = self.theta
        segment_scores = (theta * normalized(attention_rgb)[:, None] * probabilities_rgb[None]
                          + (1 - theta) * normalized(attention_flow)[:, None] * probabilities_flow[None])
        return {
            "probabilities": theta * probabilities_rgb + (1 - theta) * probabilities_flow,
            "probabilities_rgb": probabilities_rgb,
            "probabilities_flow": probabilities_flow,
            "attention_rgb": attention_rgb,
            "attention_flow": attention_flow,
            "segment_scores": segment_scores,
        }

    def _selected_classes(self, class_scores):
        """Classes with fused score ≥ class_threshold among the top_k; the best one always."""
        num_classes = tf.shape(class_scores)[0]
        top_k = num_classes if self.top_k is None else tf.minimum(self.top_k, num_classes)
        top_scores, top_classes = tf.math.top_k(class_scores, k=top_k)
        keep = (top_scores >= self.class_threshold) | (tf.range(top_k) == 0)
        return tf.boolean_mask(top_classes, keep)

    def _detect(self, rgb, flow):
        served = self._serve(rgb, flow)
        weights = served["segment_scores"]  # w̄ [T, C]
        classes = self._selected_classes(served["probabilities"])
        class_weights = tf.transpose(tf.gather(weights, classes, axis=1))  # [K_c, T]
        # One row per (class, threshold): active segments w̄ ≥ threshold.
        rows = tf.repeat(class_weights, tf.size(self.thresholds), axis=0)
        row_class = tf.repeat(classes, tf.size(self.thresholds))
        levels = tf.tile(self.thresholds, tf.shape(classes))
        active = rows >= levels[:, None]
        padded = tf.pad(active, [[0, 0], [1, 1]])
        starts = tf.where(padded[:, 1:-1] & ~padded[:, :-2])  # [N, 2] (row, first)
        ends = tf.where(padded[:, 1:-1] & ~padded[:, 2:])  # [N, 2] (row, last), same order
        run_row, first, last = starts[:, 0], starts[:, 1], ends[:, 1]
        cumulative = tf.pad(tf.cumsum(rows, axis=1), [[0, 0], [1, 0]])
        total = tf.gather_nd(cumulative, tf.stack([run_row, last + 1], 1)) - tf.gather_nd(
            cumulative, tf.stack([run_row, first], 1))
        scores = total / tf.cast(last - first + 1, tf.float32)  # mean w̄ over the run
        labels = tf.gather(row_class, run_row)
        t_start = tf.cast(first, tf.float32) / self.feature_rate
        t_end = tf.cast(last + 1, tf.float32) / self.feature_rate
        # Temporal NMS per class as box NMS: class c lives on x ∈ [2c, 2c + 1], so boxes of two
        # classes never overlap, and the IoU of [t_start, t_end] × [2c, 2c+1] boxes is the tIoU.
        x_start = 2.0 * tf.cast(labels, tf.float32)
        boxes = tf.stack([t_start, x_start, t_end, x_start + 1.0], axis=1)
        keep = tf.image.non_max_suppression(
            boxes, scores, max_output_size=self.max_detections,
            iou_threshold=min(self.nms_tiou, 1.0 - 1e-6))
        count = tf.size(keep)
        padding = [[0, self.max_detections - count]]
        return {
            "num_detections": count,
            "labels": tf.pad(tf.gather(labels, keep), padding),
            "t_start": tf.pad(tf.gather(t_start, keep), padding),
            "t_end": tf.pad(tf.gather(t_end, keep), padding),
            "scores": tf.pad(tf.gather(scores, keep), padding),
            "classes": self.classes,
            "feature_rate": self.feature_rate,
        }


def export_two_stream(models, path, *, feature_dims, classes, feature_rate, settings,
                      max_detections=100):
    """Writes the SavedModel (signatures `serving_default` and `detect`) to `path`.

    Args:
      models: {"rgb": stream model, "flow": stream model} (tfwsar.models.tsrnet networks).
      path: output directory.
      feature_dims: {"rgb": D_rgb, "flow": D_flow}.
      classes: class names, index order of the models' outputs.
      feature_rate: segments per second of the features the models were trained on.
      settings: tfwsar.inference.DetectionSettings.
      max_detections: K, the padded length of `detect`'s outputs.
    """
    module = TwoStreamServing(models, feature_dims=feature_dims, classes=classes,
                              feature_rate=feature_rate, settings=settings,
                              max_detections=max_detections)
    tf.saved_model.save(module, str(path), signatures={
        "serving_default": module.serve, "detect": module.detect})
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

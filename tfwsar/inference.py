"""Running trained two-stream models over whole videos, and choosing checkpoints honestly.

Shared by every recipe: the per-video forward pass (`predict_videos`), classification metrics of
the streams and their fusion (`classification_metrics`), detection of all videos by a named
rule of tfwsar.localize (`detect_videos`), and model selection on a validation part carved from the TRAINING videos
(`split_training_videos`, `BestWeights`): the test split is never looked at before the end.
"""

import dataclasses
import json
import os
import weakref

import numpy as np
import tensorflow as tf

from tfwsar import evaluation, files, localize
from tfwsar.data import pipeline
from tfwsar.errors import DataError

STREAMS = ("rgb", "flow")


@dataclasses.dataclass
class VideoOutputs:
    """One video's outputs from both streams (valid segments only).

    Attributes:
      video: id. duration: seconds. labels: class indices of its video-level labels.
      probabilities: {"rgb": [C], "flow": [C]} softmax class scores s.
      attention: {"rgb": [T], "flow": [T]} attention a over the valid segments.
      features: {"rgb": [T, H], "flow": [T, H]} the FC2 embedding φ(s) (used by convex
        clustering), or {} when not asked for (`predict_videos(keep_features=False)`).
      segment_probabilities: {"rgb": [T, C], "flow": [T, C]} softmax of the per-segment logits.
      extra: a method module's own arrays (valid segments only), e.g. for its published rule.
    """

    video: str
    duration: float
    labels: tuple
    probabilities: dict
    attention: dict
    features: dict
    segment_probabilities: dict
    extra: dict = dataclasses.field(default_factory=dict)


_FORWARD_PASSES = weakref.WeakKeyDictionary()  # rgb model → its compiled two-stream pass


def make_forward(models):
    """A compiled inference pass of both streams; T may change between calls without retracing.

    One function per pair of models, reused by every later call (each periodic evaluation would
    otherwise trace anew).
    """
    if models["rgb"] in _FORWARD_PASSES:
        return _FORWARD_PASSES[models["rgb"]]

    @tf.function(reduce_retracing=True)
    def forward(batch):
        return {stream: models[stream]({"features": batch[stream], "mask": batch["mask"]},
                                       training=False) for stream in STREAMS}

    _FORWARD_PASSES[models["rgb"]] = forward
    return forward


def predict_videos(models, data_dir, subset, *, videos=None, batch_size=1, keep_features=False):
    """Runs both streams over every video of `subset` (at full length); returns [VideoOutputs].

    `keep_features`: also keep every segment's FC2 embedding φ (convex clustering reads it). Off
    by default: on ActivityNet1.3's 4,728 validation videos at 512-d those are ~3.5 GB, the
    largest part of an evaluation's memory (benchmarks/BENCHMARKS.md).
    """
    forward = make_forward(models)
    results = []
    for batch in pipeline.evaluation_dataset(data_dir, subset, batch_size=batch_size, videos=videos):
        outputs = forward(batch)
        outputs = {stream: {key: value.numpy() for key, value in stream_outputs.items()}
                   for stream, stream_outputs in outputs.items()}
        for row, video in enumerate(batch["video"].numpy()):
            length = int(batch["num_segments"][row])
            per_stream = {stream: outputs[stream] for stream in STREAMS}
            results.append(VideoOutputs(
                video=video.decode(),
                duration=float(batch["duration"][row]),
                labels=tuple(np.flatnonzero(batch["labels"][row].numpy()).tolist()),
                probabilities={s: per_stream[s]["probabilities"][row] for s in STREAMS},
                attention={s: per_stream[s]["attention"][row, :length] for s in STREAMS},
                # views of the batch's array: with batch_size 1 (the recipes') each holds one video
                features=({s: per_stream[s]["fc2"][row, :length] for s in STREAMS}
                          if keep_features else {}),
                segment_probabilities={
                    s: _softmax(per_stream[s]["segment_logits"][row, :length]) for s in STREAMS},
            ))
    return results


def method_forward(method, networks):
    """A compiled `method.video_outputs(networks, batch)`; T may change without retracing."""
    key = next(iter(networks.values()))
    if key not in _FORWARD_PASSES:
        _FORWARD_PASSES[key] = tf.function(
            lambda batch: method.video_outputs(networks, batch), reduce_retracing=True)
    return _FORWARD_PASSES[key]


def predict_method_videos(method, networks, data_dir, subset, *, videos=None, batch_size=1):
    """Runs a method module's `video_outputs` over every video of `subset`; returns [VideoOutputs].

    A method's outputs are one class-score vector, one CAS and (maybe) one attention per video,
    whatever its streams: they fill both stream entries of VideoOutputs ("rgb" and "flow" hold the
    same arrays, so every θ-fusion of them is the method's own output). A method without
    attention gets ones (every segment equally attended). `features` stays empty.
    """
    forward = method_forward(method, networks)
    results = []
    for batch in pipeline.evaluation_dataset(data_dir, subset, batch_size=batch_size, videos=videos):
        outputs = {key: value.numpy() for key, value in forward(batch).items()}
        for row, video in enumerate(batch["video"].numpy()):
            length = int(batch["num_segments"][row])
            cas = outputs["cas"][row, :length].astype(np.float64)
            attention = (outputs["attention"][row, :length].astype(np.float64)
                         if "attention" in outputs else np.ones(length))
            scores = outputs["class_scores"][row].astype(np.float64)
            padded_length = outputs["cas"].shape[1]
            extra = {key: (value[row, :length] if value.ndim > 1 and value.shape[1] == padded_length
                           else value[row]) for key, value in outputs.items()
                     if key not in ("class_scores", "cas", "attention")}
            results.append(VideoOutputs(
                video=video.decode(), duration=float(batch["duration"][row]),
                labels=tuple(np.flatnonzero(batch["labels"][row].numpy()).tolist()),
                probabilities={s: scores for s in STREAMS}, attention={s: attention for s in STREAMS},
                features={}, segment_probabilities={s: cas for s in STREAMS}, extra=extra))
    return results


def _softmax(logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exponentials = np.exp(shifted)
    return exponentials / exponentials.sum(axis=-1, keepdims=True)


def fused_probabilities(outputs, theta):
    """[N, C] θ·s_rgb + (1−θ)·s_flow for a list of VideoOutputs."""
    return np.stack([theta * o.probabilities["rgb"] + (1 - theta) * o.probabilities["flow"]
                     for o in outputs])


def classification_metrics(outputs, theta):
    """Top-1 accuracy of RGB, flow and the θ-fusion (TSRNet's Table 1), plus fused mAP and hit@3.

    Videos without video-level labels are left out (they have no right answer).
    """
    labelled = [o for o in outputs if o.labels]
    if not labelled:
        raise ValueError("no labelled video to compute classification metrics on")
    label_sets = [o.labels for o in labelled]
    fused = fused_probabilities(labelled, theta)
    metrics = {stream: evaluation.classification_accuracy(
        np.stack([o.probabilities[stream] for o in labelled]), label_sets) for stream in STREAMS}
    metrics["fusion"] = evaluation.classification_accuracy(fused, label_sets)
    metrics["fusion_map"] = evaluation.classification_map(fused, label_sets)
    metrics["fusion_hit_at_3"] = evaluation.hit_at_k(fused, label_sets, k=3)
    return metrics


@dataclasses.dataclass(frozen=True)
class DetectionSettings:
    """Detection rule and its settings (tfwsar.localize: `localize_rule` and the module docstring).

    `rule` is one of `localize.RULES`: "tsrnet" (the paper's rule: `thresholds` absolute on
    w̄ = â·s, runs scored by `scoring`), "whole_video" (the baseline), or a long-action rule
    "attention" | "cas" | "attention_cas" (`relative_thresholds` fractions of each video's score
    range, `smoothing`, `max_gap`, outer-inner contrast over `margin`). Every rule chooses the
    classes by `class_threshold`/`top_k` and (but "whole_video") applies per-class NMS at `nms_tiou`.
    """

    theta: float = 0.5
    thresholds: tuple = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
    class_threshold: float = 0.1
    top_k: int = 2
    scoring: str = "mean"
    nms_tiou: float = 0.6
    rule: str = "tsrnet"
    relative_thresholds: tuple = localize.DEFAULT_RELATIVE_THRESHOLDS
    smoothing: int = 1
    max_gap: int = 0
    margin: float = 0.25

    def __post_init__(self):
        if self.rule not in localize.RULES:
            raise ValueError(f"detection rule {self.rule!r}: expected one of {localize.RULES}")


def detect_videos(outputs, settings, feature_rate):
    """Detections of every video by `settings.rule` from its VideoOutputs (attention, class
    scores, CAS): {video: [{"label_index", "t_start", "t_end", "score"}]}."""
    return {
        o.video: localize.localize_rule(
            settings.rule, o.attention, o.probabilities, o.segment_probabilities,
            theta=settings.theta, feature_rate=feature_rate, duration=o.duration,
            thresholds=settings.thresholds, scoring=settings.scoring,
            relative_thresholds=settings.relative_thresholds, smoothing=settings.smoothing,
            max_gap=settings.max_gap, margin=settings.margin,
            class_threshold=settings.class_threshold, top_k=settings.top_k,
            nms_tiou=settings.nms_tiou, extra=o.extra)
        for o in outputs}


def split_training_videos(data_dir, subset, validation_fraction, seed):
    """Splits the training subset's videos into (train, validation) id lists, reproducibly.

    The validation part is used only for model selection; it holds `validation_fraction` of the
    videos (at least one when the fraction is positive).
    """
    videos = sorted(pipeline.video_ids(data_dir, subset))
    if validation_fraction <= 0:
        return videos, []
    order = np.random.default_rng(seed).permutation(len(videos))
    count = max(1, int(round(validation_fraction * len(videos))))
    held_out = sorted(videos[i] for i in order[:count])
    kept = sorted(videos[i] for i in order[count:])
    return kept, held_out


class BestWeights:
    """Keeps the models' weights with the best selection score seen so far, on disk.

    `workdir/selection/` holds a checkpoint of the best weights and `best.json`
    (`{"step", "score", "metric"}`), so a resumed run keeps what it had chosen before it stopped.
    """

    def __init__(self, workdir, models, metric):
        self.directory = os.path.join(workdir, "selection")
        self.metric = metric
        self._checkpoint = tf.train.Checkpoint(**models)
        self._record_path = os.path.join(self.directory, "best.json")
        self.record = None
        if os.path.exists(self._record_path):
            with open(self._record_path, encoding="utf-8") as file:
                self.record = json.load(file)

    def offer(self, step, score):
        """Saves the current weights when `score` beats the best so far (ties keep the earlier)."""
        if self.record is not None and score <= self.record["score"]:
            return False
        os.makedirs(self.directory, exist_ok=True)
        self._checkpoint.write(os.path.join(self.directory, "best"))
        self.record = {"step": int(step), "score": float(score), "metric": self.metric}
        files.write_json_atomically(self._record_path, self.record)
        return True

    def restore(self):
        """Loads the best weights into the models (no-op when nothing was ever offered)."""
        if self.record is not None:
            self._checkpoint.read(os.path.join(self.directory, "best")).assert_existing_objects_matched()
        return self.record


def detect_videos_from_weights(outputs, weights, class_scores, settings, feature_rate):
    """Detections of every video from any method's per-segment class weights.

    Under `settings.rule == "tsrnet"` the TSRNet rule runs on the caller's weights (runs of
    weights ≥ each threshold, scored by `settings.scoring`, temporal NMS) with the caller's class
    scores choosing the classes, e.g. convex clustering's fused segment scores and its re-scored
    video classes. Every other rule builds its own sequence from `outputs` (`detect_videos`), whose
    probabilities must then be the method's final class scores (the caller's `class_scores` are
    their θ-fusion).

    Args:
      outputs: [VideoOutputs] (their ids and durations; for rules other than "tsrnet", all).
      weights: one `[T, C]` array per video, in the order of `outputs`.
      class_scores: one `[C]` array per video: the classes to localise (`localize.select_classes`).
      settings: DetectionSettings (`theta` is not used by "tsrnet": the weights are fused).
      feature_rate: segments per second.

    Returns:
      {video: [{"label_index", "t_start", "t_end", "score"}]}.
    """
    if not len(outputs) == len(weights) == len(class_scores):
        raise ValueError(f"{len(outputs)} videos, {len(weights)} weight arrays and "
                         f"{len(class_scores)} class score vectors: one of each per video")
    if settings.rule != "tsrnet":
        return detect_videos(outputs, settings, feature_rate)
    return {
        o.video: localize.localize_from_weights(
            video_weights, video_scores, feature_rate=feature_rate, threshold=settings.thresholds,
            class_threshold=settings.class_threshold, top_k=settings.top_k,
            scoring=settings.scoring, nms_tiou=settings.nms_tiou, duration=o.duration)
        for o, video_weights, video_scores in zip(outputs, weights, class_scores)}


def selection_evaluator(models, selection, data_dir, subset, videos, theta, predict=None):
    """The `eval_fn` of `Trainer.train` for model selection: classifies the held-out training
    `videos` (video-level labels only), offers the weights to `selection` (a BestWeights) with the
    fused classification mAP, and returns the metrics for the logs.

    `predict(subset, videos=...) -> [VideoOutputs]` runs the method (default: the two stream
    networks `models`, `predict_videos`)."""

    def evaluate(step):
        if predict is None:
            held_out = predict_videos(models, data_dir, subset, videos=videos)
        else:
            held_out = predict(subset, videos=videos)
        metrics = classification_metrics(held_out, theta)
        selection.offer(step, metrics["fusion_map"])
        return {f"selection/{key}": value for key, value in metrics.items()}

    return evaluate


def score_test_split(outputs, predictions, ground_truth, *, theta, protocol="thumos14",
                     exclude_videos=(), extra=None):
    """Classification and detection metrics of the test videos, once, at the end of a run.

    Args:
      outputs: [VideoOutputs] whose probabilities are the method's final class scores.
      predictions: ActivityNet-format predictions (`localize.predictions_to_activitynet`).
      ground_truth: `evaluation.GroundTruth` of the test subset.
      theta: stream fusion weight.
      protocol: "thumos14" (tIoU 0.1…0.9, plus the 0.1:0.7 average of recent papers) or
        "activitynet" (0.5:0.05:0.95).
      exclude_videos: test videos left out of detection evaluation.
      extra: more keys for the metrics document.

    Returns:
      the metrics.json document. Predictions of dataset classes without ground truth in the test
      subset are left out of the mAP and counted ("notes", see `evaluation.notes`).
    """
    from tfwsar import reporting  # pylint: disable=import-outside-toplevel

    if protocol not in ("thumos14", "activitynet"):
        raise ValueError(f"protocol {protocol!r}: expected 'thumos14' or 'activitynet'")
    classification = classification_metrics(outputs, theta)
    thumos = protocol == "thumos14"
    detection = evaluation.detection_map(
        ground_truth, predictions,
        evaluation.THUMOS14_TIOUS if thumos else evaluation.ACTIVITYNET_TIOUS,
        exclude_videos=exclude_videos)
    document = {"protocol": protocol, "test_videos": len(outputs),
                "classification_fusion_map": classification["fusion_map"],
                "detection_classes": len(detection["per_class"]),
                "notes": evaluation.notes(detection, ground_truth.subset)}
    if thumos:
        document["average_0.1_0.7"] = float(np.mean(
            [detection["mAP"][evaluation.tiou_key(t)] for t in evaluation.THUMOS14_AVERAGE_TIOUS]))
    document.update(extra or {})
    return reporting.metrics_document(classification, detection, extra=document)


def detection_by_rule(outputs, ground_truth, settings, rules, *, feature_rate, classes,
                      protocol="thumos14", exclude_videos=()):
    """The same outputs scored by other detection rules: {rule: {"0.1": mAP, …, "average"}}.

    Every rule keeps `settings` but its name (tfwsar.localize.RULES); nothing is retrained.
    """
    tious = evaluation.THUMOS14_TIOUS if protocol == "thumos14" else evaluation.ACTIVITYNET_TIOUS
    scored = {}
    for rule in rules:
        predictions = localize.predictions_to_activitynet(
            detect_videos(outputs, dataclasses.replace(settings, rule=rule), feature_rate), classes)
        detection = evaluation.detection_map(ground_truth, predictions, tious,
                                             exclude_videos=exclude_videos)
        scored[rule] = {**detection["mAP"], "average": detection["average"]}
    return scored


def evaluate_written_run(evaluate, *, workdir, data_dir, subset, protocol):
    """Runs `evaluate()` (the test-split metrics) after predictions.json and saved_model/ exist.

    Whatever goes wrong in evaluation, the trained model is not lost: the error says where the
    predictions are and the command that evaluates them by hand.

    Raises:
      EvaluationError (a DataError): evaluation failed; chained to the original error.
    """
    try:
        return evaluate()
    except Exception as error:  # pylint: disable=broad-except
        command = (f"python tools/evaluate.py --ground-truth {os.path.join(data_dir, 'ground_truth.json')} "
                   f"--predictions {os.path.join(workdir, 'predictions.json')} --subset {subset} "
                   f"--tiou {'thumos14' if protocol == 'thumos14' else 'activitynet'}")
        raise EvaluationError(
            f"evaluation on subset {subset!r} failed: {type(error).__name__}: {error}\n"
            f"  the run's predictions.json and saved_model/ are in {workdir}; evaluate them with\n"
            f"  {command}") from error


class EvaluationError(DataError):
    """The test-split evaluation failed after a run's predictions and SavedModel were written."""


def attention_timelines(models, data_dir, subset, videos, feature_rate):
    """{video: RGB image} of attention against ground truth (reporting.attention_timeline)."""
    from tfwsar import reporting  # pylint: disable=import-outside-toplevel

    truth = evaluation.load_ground_truth(os.path.join(data_dir, "ground_truth.json"), subset)
    images = {}
    for output in predict_videos(models, data_dir, subset, videos=videos):
        instances = truth.instances[truth.instances["video"] == output.video]
        images[output.video] = reporting.attention_timeline(
            output.attention["rgb"], output.attention["flow"],
            zip(instances["t_start"], instances["t_end"]), feature_rate)
    return images

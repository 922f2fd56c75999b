r"""Convex clustering (Peng et al.): the alternation, test-time selection and export, top to bottom.

    python -m tfwsar.recipes.convex_clustering              # the embedded default, a few minutes
    python -m tfwsar.recipes.convex_clustering --data DIR --workdir DIR --steps 5000 \
        --rounds 3 --round_steps 2000                       # a converted THUMOS14 (see recipes/)

The method, per stream (RGB, flow), on top of the same network as TSRNet's SRNet ablation
(`tfwsar.models.tsrnet.build_stream_network`: FC1 → FC2 → self-attention pooling → classifier; no
knowledge transfer). The segment score is

    s_i^c = θ · p_i^{rgb,c} · â_i^rgb + (1 − θ) · p_i^{flow,c} · â_i^flow        (θ = ½: Peng et al.)

with p_i the softmax of the classifier applied to segment i and â_i = a_i / max_t a_t its attention.
The schedule is one visible loop in `run`:

    round 0     (1) train without L_cc                        → the baseline (evaluated on test)
    round r ≥ 1 (2) collect the exemplar database D           (network fixed, host)
                (3) fit the representativeness Q              (network fixed, host)
                (4) train with L_cc, D and Q fixed
                (5) next round

    L_cc(x) = −Σ_{s∈x} p(s|x) · log Σ_{s'∈D_c} q_{s'} · exp(−α d(φ(s), φ(s')))   (`tfwsar.losses`)

The global step, `trainer.round` and `trainer.phase` (1–4 as numbered above), D and Q are all in
the Trainer's checkpoint: a run killed in any phase resumes in that phase (phase 2 or 3 redo their
host pass, which is deterministic; phase 4 continues from its last checkpoint with D and Q
restored). Each workdir ends with metrics.json (`classification`, `detection`, plus `baseline` =
the same numbers for the round-0 network, `final_without_selection`, `rounds`), predictions.json,
saved_model/, exemplars.npz, TensorBoard events (train/, eval/), checkpoints/, rounds/ (per-round
records and model selection) and config.json. `--seeds N` repeats the run with N seeds (seed k > 0
in `workdir/seed_k`) and writes metrics_seeds.json.

Decisions (the paper leaves these open):

* φ(s) is the stream's own FC2 embedding (`fc2`, H2 = 128 by default), not the concatenation of
  both streams'. Each stream keeps its own optimizer and learning rate, as in TSRNet, so each
  stream gets its own L_cc on its own φ and attention, added to its own loss; a concatenated φ
  would tie two separately optimised networks together through one kernel whose scale depends on
  both embeddings.
* D is built on both streams at the same segments: per class c, the n segments with the highest
  fused score s_i^c among the training videos labelled c (one `clustering.ExemplarCollector` over
  the concatenated [φ_rgb, φ_flow], split afterwards into D_rgb and D_flow, each [C, n, H2]).
  The attention in s_i is max-normalised (â) as in `tfwsar.localize`: raw attention sums to 1 per
  video, so raw a_i scale with 1/T and the top n would come from the shortest videos only.
* Q is fitted per stream (`clustering.fit_representativeness`, log space, multiplicative update
  until the gap < ε or `max_iterations`), on the segment sets of the training videos weighted by
  that stream's attention p(s|x)/|Y_x| (`clustering.SegmentSetCollector`), so the fit maximises
  exactly −Σ_x L_cc(x) of the collected videos.
* Defaults: n = 32 exemplars per class, α = 0.5 on the Euclidean d (FC2 distances on the
  default data are ~10 between segments and exemplars and differ by a few units between attended
  and background segments, so α·d spans a few nats: the kernel neither collapses onto the nearest
  exemplar nor goes flat), λ = 0.1, ε = 1e-3 nats with a cap of 300 updates (ε = 1e-4 took 2–4×
  the updates and changed the mean L_cc by < 1e-3), test-time k = ⌈T/8⌉ per class (W-TALC's k
  for top-k pooling; `clustering.test_k` fixes it instead).
* The loss: per stream, L = L_class + smoothness + sparsity (`losses.stream_loss`, variant
  "srnet"; the attention regularisers are off by default, Peng et al. use none) + λ·L_cc. L_cc is
  a per-video term, reduced with `tf.nn.compute_average_loss(·, global_batch_size)` like L_class,
  so that the replicas' summed gradients are the gradient of the global-batch mean. L_cc is
  evaluated on a second forward pass with training=False (no dropout): φ and p are then the same
  functions that filled D, fitted Q and select segments at test time, and dropout noise does not
  inflate every distance to the exemplars. The classification pass keeps dropout.
* L_cc trains φ, not p: p(s|x) enters it through `tf.stop_gradient` (`clustering.
  attention_gradient=False`). L_cc is linear in p, so its gradient with respect to the attention
  drives all of a video's mass onto its single lowest-cost segment. Measured on the default run,
  letting it through sharpened the attention (mean max a 0.13 vs 0.08, normalised entropy 0.65 vs
  0.72 on training videos) and cost detection mAP (see recipes/convex_clustering/README.md). With
  the stop, L_cc pulls the attended segments' embeddings towards their class's representative
  exemplars — the clustering the method is after — while the attention is learnt by L_class,
  exactly as in Q's fit, where p is fixed too.
* D, Q and the exemplar validity are non-trainable `tf.Variable`s created in `strategy.scope()`
  (`exemplars_rgb`/`_flow` [C, n, H2], `log_q_rgb`/`_flow` [C, n] log q with −inf at padded
  exemplars, `exemplar_valid` [C, n]) and handed to the Trainer as trackables: they are
  checkpointed with the models, read (not captured) by the compiled L_cc step, and `assign`ed on
  the host between phases without retracing (the L_cc step is traced once for all rounds). D is
  built and Q fitted on the host in numpy; the variables are their checkpointed copies, mirrored
  onto each replica's device for the step (C·n·H2 floats: 330 KB by default, 1.3 MB at H2 = 512).
* The collection passes run inference over the training videos (not the held-out ones) with
  training=False (`inference.predict_videos`, full-length videos). Under several replicas, the
  videos are dealt round-robin to one collector per replica and the partial databases are
  combined with `clustering.merge`; segment keys video_index·T_max + t make the merge equal to a
  single collector's result whatever the split. On one host this is one pass of the evaluation
  dataset. Multi-worker story, honestly: every worker runs the whole pass itself on its own copy
  of the (identical) weights, so every worker ends with the same D and Q (the computation is
  deterministic) — correct, but not parallelised; splitting the pass over workers would only need
  the [C, n, m] partial databases (and the segment sets) exchanged before `merge`.
* Model selection: within each training phase (1) and (4), the weights with the best fused
  classification mAP on held-out TRAINING videos (video labels only) are kept
  (`inference.BestWeights`, in `rounds/round_<r>/selection/`) and restored at the phase's end;
  the next round collects D from them. The test split is read only for the two evaluations.
* Test time, per video: per-segment costs −log Σ_{s'} q_{s'} exp(−α d) against every D_c, per
  stream (`losses.segment_convex_clustering_cost`), fused θ·cost_rgb + (1 − θ)·cost_flow; per
  candidate class the k segments of least cost (`clustering.select_segments`); their union U is
  re-scored by each stream's classifier and attention: class scores softmax_c(Σ_{i∈U} ã_i z_i^c)
  with ã the attention restricted to U and renormalised and z_i the segment logits — the
  classifier applied to the attention-pooled FC2 of U (the classifier is affine), which equals the
  network's own output when U is the whole video. (z_i is recovered as log p_i, which differs
  from it by a per-segment constant that the softmax removes.)
  The candidate classes are the network's 2 best (fused scores; `clustering.test_classes`, the
  same number the detection rule localises), not all C: each class's k least-cost segments are
  largely its own, so over all 20 classes U covered 83% of a video at k = T/8 (28% even at
  k = T/64) — absent classes contribute arbitrary segments and the re-scoring is noise. Measured on
  the 40 held-out TRAINING videos (never the test split): fused top-1 accuracy 0.675 (every
  segment) → 0.675 (all classes) → 0.775 (top 2), U = 24% of a video.
  Classification uses the re-scored per-stream scores and their θ-fusion. Detection weights are
  `detection.segment_scores="video"`: θ·â_i^rgb·s_c^rgb + (1 − θ)·â_i^flow·s_c^flow with s the
  re-scored class scores — Peng et al.'s s_i with s the video's class score, TSRNet's w̄ — and
  the re-scored fused scores choose the classes (`inference.detect_videos_from_weights` →
  `localize.localize_from_weights`). "segment" (s_i with the per-segment softmax p_i, the score
  D is collected with) is available; on the held-out training videos' annotations it gave average
  mAP 0.107 against 0.130 for "video". The baseline is the round-0 network under the same rule
  with U = every segment (no D exists yet).
* Measured on the embedded default (3 seeds, recipes/convex_clustering/README.md): fused top-1
  accuracy 81.8 (round 0) → 85.4 (round 2 + selection), detection average mAP 10.2 → 10.4; most
  of the accuracy gain comes from the test-time selection (83.8 without L_cc).
* Export: `export.export_two_stream` (the serving contract: inputs `rgb`, `flow` [T, D]; class
  probabilities, attention, per-segment class scores) with the final networks. It serves the
  networks' own outputs (TSRNet's fusion rule), not the test-time selection, which needs D and Q:
  those are written next to it in `exemplars.npz` (D, log Q, validity, α, k) for users who want
  the full rule.
"""

import dataclasses
import json
import math
import os
import sys
import time

import numpy as np
from absl import flags

from tfwsar import clustering, localize  # numpy only; TensorFlow is imported where it is used
from tfwsar import experiment

PHASE_TRAIN = 1  # (1) train without L_cc (round 0 only)
PHASE_COLLECT = 2  # (2) collect the exemplar database D
PHASE_FIT = 3  # (3) fit the representativeness Q
PHASE_TRAIN_CC = 4  # (4) train with L_cc, D and Q fixed
PHASE_NAMES = {PHASE_TRAIN: "train", PHASE_COLLECT: "collect D", PHASE_FIT: "fit Q",
               PHASE_TRAIN_CC: "train with L_cc"}


# The data settings every recipe shares: the dataset, subsets, held-out part, T, batch lengths.
DataConfig = experiment.DataConfig


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    fc1_units: int = 128
    fc2_units: int = 128  # H2 = the dimension of φ
    attention_units: int = 64
    dropout_rate: float = 0.2
    smoothness_weight: float = 0.0  # TSRNet's α·Σ(a_i − a_{i+1})², off: Peng et al. have none
    sparsity_weight: float = 0.0  # TSRNet's β·sparsity, off
    sparsity_kind: str = "entropy"


@dataclasses.dataclass(frozen=True)
class ClusteringConfig:
    rounds: int = 2  # rounds of (2)–(4) after the baseline
    round_steps: int = 400  # training steps of each phase (4)
    num_exemplars: int = 32  # n per class
    alpha: float = 0.5  # α of the kernel exp(−α d)
    squared_distance: bool = False  # False: d Euclidean (paper); True: ‖·‖²
    loss_weight: float = 0.1  # λ of L_cc
    attention_gradient: bool = False  # let L_cc's gradient reach p(s|x) (see the docstring)
    epsilon: float = 1e-3  # ε of Q's stopping rule (bounds f(q*) − f(q), in nats)
    max_iterations: int = 300  # cap on Q updates
    test_k: int = 0  # segments kept per class at test time; 0 = ⌈test_k_fraction · T⌉
    test_k_fraction: float = 0.125
    test_classes: int = 2  # classes whose k segments form the union: the network's top ones; 0 = all


@dataclasses.dataclass(frozen=True)
class TrainConfig(experiment.LoopConfig):
    steps: int = 800  # phase (1), the baseline's training
    batch_size: int = 16
    learning_rate_rgb: float = 0.01
    learning_rate_flow: float = 0.01
    decay_every: int = 800
    decay_factor: float = 0.1
    momentum: float = 0.9
    log_every: int = 200
    eval_every: int = 200


@dataclasses.dataclass(frozen=True)
class DetectionConfig:
    theta: float = 0.5  # θ of the stream fusion (½ in Peng et al.'s s_i)
    segment_scores: str = "video"  # detection weights: "video" â_i·s_c, "segment" p_i·â_i (docstring)
    thresholds: tuple = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
    class_threshold: float = 0.1
    top_k: int = 2
    nms_tiou: float = 0.6
    drop_bad_test_videos: bool = False  # THUMOS14 test 0000270 / 0001496 (known-wrong labels)
    protocol: str = "thumos14"  # thumos14: tIoU 0.1…0.9 | activitynet: 0.5:0.05:0.95
    # tsrnet (Peng et al.'s s_i as above, on `thresholds`) | whole_video | attention | cas |
    # attention_cas (long-action rules on the re-scored outputs): see tfwsar.localize
    rule: str = "tsrnet"
    relative_thresholds: tuple = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    smoothing: int = 1  # segments of the moving average
    max_gap: int = 0  # segments


@dataclasses.dataclass(frozen=True)
class Config:
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    clustering: ClusteringConfig = ClusteringConfig()
    train: TrainConfig = TrainConfig()
    detection: DetectionConfig = DetectionConfig()


def get_config(preset="default", data_dir=""):
    """"default": sized for the embedded dataset, a few minutes on 2 CPU cores, with the detection
    rule found best there (`localize.THUMOS14_DETECTION`; Peng et al.'s: detection.rule=tsrnet).

    "activitynet": ActivityNet1.3 — train on "training", test on "validation", tIoU
    0.5:0.05:0.95, the detection rule for long actions (`localize.ACTIVITYNET_DETECTION`); without
    a `data_dir`, on the embedded ActivityNet default with T = 128, else T = 200.
    """
    config = Config()
    if preset == "default":
        return dataclasses.replace(config, detection=dataclasses.replace(
            config.detection, **localize.THUMOS14_DETECTION))
    if preset == "activitynet":
        return experiment.activitynet_preset(config, data_dir)
    raise ValueError(f"unknown preset {preset!r}; expected 'default' or 'activitynet'")


FLAGS = flags.FLAGS


def define_flags():
    """The command-line flags (`experiment.define_flags` and the alternation's), only when run as
    a program."""
    experiment.define_flags("convex_clustering", presets="default | activitynet",
                            steps_help="training steps of phase (1), the baseline")
    flags.DEFINE_integer("rounds", None, "rounds of (2) collect D, (3) fit Q, (4) train with L_cc")
    flags.DEFINE_integer("round_steps", None, "training steps of each phase (4)")


# ------------------------------------------------------------------------------------------------
# The method's host-side steps (numpy, network fixed): D, Q, test-time selection and re-scoring.
# ------------------------------------------------------------------------------------------------


def _label_vector(output, num_classes):
    labels = np.zeros(num_classes, np.float32)
    labels[list(output.labels)] = 1.0
    return labels


def segment_scores(output, theta, kind="segment"):
    """`[T, C]` per-segment class scores of one video (`inference.VideoOutputs`).

    "segment": s_i^c = θ·p_i^{rgb,c}·â_i^rgb + (1−θ)·p_i^{flow,c}·â_i^flow (Peng et al., θ = ½);
    "video": θ·â_i^rgb·s_c^rgb + (1−θ)·â_i^flow·s_c^flow (TSRNet's w̄, s the video's class scores).
    """
    if kind not in ("segment", "video"):
        raise ValueError(f"segment scores {kind!r}: expected 'segment' or 'video'")
    weights = {}
    for stream in ("rgb", "flow"):
        attention = localize.max_normalize(output.attention[stream])[:, None]
        scores = (output.segment_probabilities[stream] if kind == "segment"
                  else output.probabilities[stream][None, :])
        weights[stream] = attention * np.asarray(scores, np.float64)
    return theta * weights["rgb"] + (1.0 - theta) * weights["flow"]


def collect_exemplar_database(outputs, num_classes, num_exemplars, theta, num_shards=1):
    """Phase (2): D per stream from the training videos' outputs (network fixed).

    Per class c, the n segments with the highest fused score s_i^c among the videos labelled c;
    both streams' φ are taken at the same segments. Videos are dealt round-robin to `num_shards`
    collectors (one per replica) and merged with `clustering.merge`; the keys
    video_index·T_max + t make the result independent of the split.

    Returns:
      ({"rgb": [C, n, H_rgb], "flow": [C, n, H_flow]} float32, valid [C, n] bool,
       summary dict for the round record).
    """
    dims = {stream: outputs[0].features[stream].shape[1] for stream in ("rgb", "flow")}
    max_length = max(len(output.attention["rgb"]) for output in outputs)
    collectors = [clustering.ExemplarCollector(num_classes, num_exemplars, dims["rgb"] + dims["flow"])
                  for _ in range(max(1, int(num_shards)))]
    for index, output in enumerate(outputs):
        length = len(output.attention["rgb"])
        features = np.concatenate([output.features["rgb"], output.features["flow"]], axis=1)
        keys = index * max_length + np.arange(length, dtype=np.int64)
        collectors[index % len(collectors)].update(
            segment_scores(output, theta, "segment")[None], features[None], None,
            _label_vector(output, num_classes)[None], segment_keys=keys[None])
    database = clustering.merge(collectors)
    features = {"rgb": database.features[..., :dims["rgb"]],
                "flow": database.features[..., dims["rgb"]:]}
    summary = {"exemplars_per_class": database.counts.tolist(),
               "candidates_per_class": database.candidates.tolist(),
               "lowest_exemplar_score": float(np.min(np.where(database.valid, database.scores,
                                                              np.inf), initial=np.inf))}
    return features, database.valid, summary


def fit_stream_representativeness(outputs, stream, exemplars, valid, num_classes, settings):
    """Phase (3) for one stream: log Q [C, n] fitted on the training videos (network fixed).

    Args:
      outputs: the training videos' `inference.VideoOutputs`.
      stream: "rgb" or "flow".
      exemplars: D of this stream, [C, n, H].
      valid: [C, n] exemplar validity.
      num_classes: C.
      settings: ClusteringConfig (alpha, epsilon, max_iterations, squared_distance).

    Returns:
      (log_q [C, n] float64 with −inf at padding, summary dict for the round record).
    """
    sets = clustering.SegmentSetCollector(num_classes)
    for output in outputs:
        sets.update(output.features[stream], output.attention[stream], None,
                    _label_vector(output, num_classes))
    _, info = clustering.fit_representativeness(
        sets.result(), None, exemplars, valid, settings.alpha, epsilon=settings.epsilon,
        max_iterations=settings.max_iterations, squared_distance=settings.squared_distance)
    fitted = info["fitted"]
    q = np.exp(info["log_q"])
    # Mean L_cc of the collected videos at the fitted Q: −Σ_c w_c f_c / (number of videos).
    mean_cost = float(-np.sum(np.where(fitted, info["total_weight"] * info["objective"], 0.0))
                      / max(1, len(outputs)))
    summary = {
        "iterations_max": int(info["iterations"].max()),
        "iterations_mean": float(info["iterations"].mean()),
        "converged_classes": int(info["converged"].sum()),
        "fitted_classes": int(fitted.sum()),
        "gap_max": float(np.nanmax(np.where(fitted, info["gap"], np.nan))) if fitted.any() else None,
        "mean_l_cc": mean_cost,
        # Exemplars carrying 99% of each class's mass: how sparse the representatives are.
        "effective_exemplars_mean": float(np.mean([
            np.searchsorted(np.cumsum(np.sort(row)[::-1]), 0.99) + 1 for row in q[fitted]]))
        if fitted.any() else None,
    }
    return info["log_q"], summary


def segments_per_class(num_segments, settings):
    """k, the segments kept per class at test time, for a video of `num_segments` segments."""
    if settings.test_k > 0:
        return int(settings.test_k)
    return max(1, int(math.ceil(settings.test_k_fraction * num_segments)))


def select_union(output, exemplars, log_q, settings, theta, cost_fn=None):
    """Test time: the union over candidate classes of each class's k least-cost segments, `[T]` bool.

    Per stream the cost −log Σ_{s'∈D_c} q_{s'} exp(−α d(φ(s), φ(s'))) `[T, C]`, fused
    θ·cost_rgb + (1 − θ)·cost_flow. The candidate classes are the `settings.test_classes` best
    by the network's fused class scores (every class when 0); classes without exemplars take no
    part. `cost_fn` is `losses.segment_convex_clustering_cost` or a `tf.function` of it.
    """
    from tfwsar import losses  # pylint: disable=import-outside-toplevel

    cost_fn = cost_fn or losses.segment_convex_clustering_cost
    costs = {stream: np.asarray(cost_fn(
        output.features[stream], exemplars[stream], log_q[stream], settings.alpha,
        squared_distance=settings.squared_distance), np.float64) for stream in ("rgb", "flow")}
    candidates = np.isfinite(log_q["rgb"]).any(axis=1) & np.isfinite(log_q["flow"]).any(axis=1)
    if settings.test_classes > 0:
        fused = (theta * np.asarray(output.probabilities["rgb"], np.float64)
                 + (1.0 - theta) * np.asarray(output.probabilities["flow"], np.float64))
        top = np.zeros_like(candidates)
        top[np.argsort(-fused, kind="stable")[:settings.test_classes]] = True
        candidates &= top
    cost = theta * costs["rgb"] + (1.0 - theta) * costs["flow"]
    selected = clustering.select_segments(cost, segments_per_class(cost.shape[0], settings))
    union = (selected & candidates[None, :]).any(axis=1)
    return union if union.any() else np.ones_like(union)


def rescore(output, union):
    """`output` with each stream's class scores re-computed from the segments in `union` only.

    softmax_c(Σ_{i∈U} ã_i log p_i^c), ã = a restricted to U and renormalised: log p_i = z_i −
    logsumexp(z_i), and the per-segment constant cancels in the softmax, so this is
    softmax(classifier(Σ_{i∈U} ã_i FC2_i)) — the network's own scores when U is every segment.
    """
    probabilities = {}
    for stream in ("rgb", "flow"):
        weights = np.where(union, np.asarray(output.attention[stream], np.float64), 0.0)
        total = weights.sum()
        if not total > 0:  # attention vanished on U: fall back to uniform weights on U
            weights, total = union.astype(np.float64), max(1.0, float(union.sum()))
        segment_probabilities = np.asarray(output.segment_probabilities[stream], np.float64)
        log_p = np.log(np.maximum(segment_probabilities, np.finfo(np.float32).tiny))
        logits = (weights / total) @ log_p
        exponentials = np.exp(logits - logits.max())
        probabilities[stream] = (exponentials / exponentials.sum()).astype(np.float32)
    return dataclasses.replace(output, probabilities=probabilities)


def detect_outputs(outputs, unions, *, config, feature_rate, classes):
    """Detections of test videos; `unions` None = every segment (baseline).

    Returns:
      (re-scored outputs, ActivityNet predictions dict, test-time summary).
    """
    from tfwsar import inference, localize  # pylint: disable=import-outside-toplevel

    theta = config.detection.theta
    scored = outputs if unions is None else [rescore(o, u) for o, u in zip(outputs, unions)]
    detections = inference.detect_videos_from_weights(
        scored, [segment_scores(o, theta, config.detection.segment_scores) for o in scored],
        list(inference.fused_probabilities(scored, theta)), experiment.detection_settings(config.detection),
        feature_rate)
    test_time = {"selection": "every segment" if unions is None else "convex clustering"}
    if unions is not None:
        test_time["union_fraction_mean"] = float(np.mean([u.mean() for u in unions]))
    return scored, localize.predictions_to_activitynet(detections, classes), test_time


def score_predictions(scored, predictions, test_time, *, config, ground_truth):
    """The metrics document (contract keys) of `detect_outputs`' result."""
    from tfwsar import evaluation, inference  # pylint: disable=import-outside-toplevel

    return inference.score_test_split(
        scored, predictions, ground_truth, theta=config.detection.theta,
        protocol=config.detection.protocol,
        exclude_videos=(evaluation.THUMOS14_BAD_TEST_VIDEOS
                        if config.detection.drop_bad_test_videos else ()),
        extra={"test_time": test_time})


def evaluate_outputs(outputs, unions, *, config, feature_rate, classes, ground_truth):
    """`detect_outputs` then `score_predictions`: (metrics document, ActivityNet predictions)."""
    scored, predictions, test_time = detect_outputs(outputs, unions, config=config,
                                                    feature_rate=feature_rate, classes=classes)
    return score_predictions(scored, predictions, test_time, config=config,
                             ground_truth=ground_truth), predictions


def make_step_fns(config, models, optimizers, exemplars, log_q, exemplar_valid, num_replicas):
    """(plain_step, clustering_step) for `train_lib.Trainer`: phases (1) and (4), one step each.

    Per stream, on this replica's share of the global batch: L = L_class (+ attention
    regularisers) (`losses.stream_loss`, variant "srnet", over the global `config.train.batch_size`;
    `num_replicas` scales its batch-level terms, of which "srnet" has none), plus in phase (4)
    λ·L_cc against D (`exemplars`) and Q (`log_q`), a per-video term reduced over the global batch
    too. D and Q are read from their variables, so assigning them does not retrace the step.
    """
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    from tfwsar import losses  # pylint: disable=import-outside-toplevel

    clustering_config = config.clustering

    def step_fn(batch, with_clustering):
        results = {}
        for stream, model in models.items():
            inputs = {"features": batch[stream], "mask": batch["mask"]}
            with tf.GradientTape() as tape:
                outputs = model(inputs, training=True)
                terms = losses.stream_loss(
                    outputs, batch, variant="srnet", alpha=config.model.smoothness_weight,
                    beta=config.model.sparsity_weight, sparsity_kind=config.model.sparsity_kind,
                    global_batch_size=config.train.batch_size, num_replicas=num_replicas)
                total = terms["total"]
                if with_clustering:
                    # φ and p without dropout: the same functions that built D and fitted Q.
                    embedding = model(inputs, training=False)
                    attention = embedding["attention"]
                    if not clustering_config.attention_gradient:
                        attention = tf.stop_gradient(attention)
                    per_video = losses.convex_clustering_loss(
                        embedding["fc2"], attention, batch["mask"], batch["labels"],
                        exemplars[stream], log_q[stream], clustering_config.alpha,
                        squared_distance=clustering_config.squared_distance,
                        valid=exemplar_valid)
                    terms["convex_clustering"] = clustering_config.loss_weight * (
                        tf.nn.compute_average_loss(
                            per_video, global_batch_size=config.train.batch_size))
                    total = total + terms["convex_clustering"]
            variables = model.trainable_variables
            gradients = tape.gradient(total, variables)
            optimizers[stream].apply_gradients(zip(gradients, variables))
            terms["total"] = total
            results.update({f"{stream}/{name}": value for name, value in terms.items()
                            if name in ("total", "classification", "smoothness", "sparsity",
                                        "convex_clustering")})
        return results

    def plain_step(batch):  # phase (1)
        return step_fn(batch, with_clustering=False)

    def clustering_step(batch):  # phase (4)
        return step_fn(batch, with_clustering=True)

    return plain_step, clustering_step


def _read_json(path, default):
    if not os.path.exists(path):
        return default
    with open(path, encoding="utf-8") as file:
        return json.load(file)


# ------------------------------------------------------------------------------------------------
# The run
# ------------------------------------------------------------------------------------------------


def run(config, workdir, *, on_progress=None):
    """Trains, alternates, evaluates and exports one seed into `workdir`; returns its metrics.

    Args:
      config: `Config`.
      workdir: run directory; an existing one is resumed where its checkpoint left off.
      on_progress: optional `on_progress(round_index, phase, step, state)` called at the start of
        every phase, in phase (3) after its host pass and before Q is saved, and at every logged
        training step; `state` is {name: tf.Variable} of D, Q and the exemplar validity. Tests
        raise from it to simulate a kill.
    """
    # Heavy imports here, not at module import (no import-time work).
    import tensorflow as tf

    from tfwsar import export, inference, losses, reporting
    from tfwsar.methods import tsrnet

    # ---- Data: the converted dataset (or the embedded default), a held-out part for selection.
    data = experiment.open_data(config.data)  # before the workdir: bad data leaves nothing
    classes, feature_rate = data.classes, data.feature_rate
    context = experiment.start_run(config, workdir, data, label="convex_clustering")
    strategy, workdir = context.strategy, context.workdir
    data_dir = data.directory
    train_videos, selection_videos = context.train_videos, context.selection_videos
    clustering_config = config.clustering
    num_classes = len(classes)
    ground_truth = data.test_ground_truth

    # ---- Model: one attention network and one optimizer per stream; D and Q as variables.
    streams = inference.STREAMS
    embedding_dim = config.model.fc2_units
    num_exemplars = clustering_config.num_exemplars
    with strategy.scope():
        models = tsrnet.build_networks(data.feature_dims, num_classes, config.model,
                                       pooling="attention")
        optimizers = tsrnet.build_optimizers(config.train)
        exemplars = {stream: tf.Variable(
            tf.zeros([num_classes, num_exemplars, embedding_dim]), trainable=False,
            name=f"exemplars_{stream}") for stream in streams}
        log_q = {stream: tf.Variable(
            tf.fill([num_classes, num_exemplars], -float("inf")), trainable=False,
            name=f"log_q_{stream}") for stream in streams}
        exemplar_valid = tf.Variable(tf.zeros([num_classes, num_exemplars], tf.bool),
                                     trainable=False, name="exemplar_valid")
    state = {**{f"exemplars_{s}": exemplars[s] for s in streams},
             **{f"log_q_{s}": log_q[s] for s in streams}, "exemplar_valid": exemplar_valid}
    trainer, resumed = experiment.make_trainer(
        config, context, experiment.training_batches(config, data, context), models, optimizers,
        state=state)

    plain_step, clustering_step = make_step_fns(config, models, optimizers, exemplars, log_q,
                                                exemplar_valid, strategy.num_replicas_in_sync)

    def progress(round_index, phase, announce=True):
        if announce:
            print(f"[convex_clustering] round {round_index}, phase ({phase}) {PHASE_NAMES[phase]}, "
                  f"step {int(trainer.step.numpy())}", file=sys.stderr, flush=True)
        if on_progress is not None:
            on_progress(round_index, phase, int(trainer.step.numpy()), state)

    def round_directory(round_index):
        return os.path.join(workdir, "rounds", f"round_{round_index}")

    def update_record(round_index, **entries):
        path = os.path.join(round_directory(round_index), "round.json")
        record = _read_json(path, {"round": round_index})
        record.update(entries)
        reporting.write_json(path, record)
        return record

    def train_phase(train_step, end_step, round_index, phase):
        """Training up to `end_step` with selection on held-out videos; restores the best."""

        def on_log(step, _):
            if on_progress is not None:
                on_progress(round_index, phase, int(step), state)

        return experiment.train_with_selection(
            config, data, context, trainer, train_step, models, end_step=end_step,
            selection_dir=round_directory(round_index), on_log=on_log)

    def training_outputs():
        """The host pass of phases (2) and (3): inference over the training videos, no dropout."""
        return inference.predict_videos(models, data_dir, config.data.train_subset,
                                        videos=train_videos, keep_features=True)

    def round_end_step(round_index):
        return config.train.steps + round_index * clustering_config.round_steps

    # ---- The alternation: round 0 is phase (1), the baseline; rounds 1..R are (2) → (3) → (4).
    if int(trainer.round.numpy()) == 0 and int(trainer.phase.numpy()) == 0:
        trainer.phase.assign(PHASE_TRAIN)
    while int(trainer.round.numpy()) <= clustering_config.rounds:
        round_index, phase = int(trainer.round.numpy()), int(trainer.phase.numpy())
        if round_index == 0:
            # (1) Train without L_cc; evaluate this baseline on the test split once.
            progress(0, PHASE_TRAIN)
            chosen = train_phase(plain_step, config.train.steps, 0, PHASE_TRAIN)
            test_outputs = inference.predict_videos(models, data_dir, config.data.test_subset)
            baseline, _ = evaluate_outputs(test_outputs, None, config=config,
                                           feature_rate=feature_rate, classes=classes,
                                           ground_truth=ground_truth)
            update_record(0, steps=[0, config.train.steps], selection=chosen, test=baseline)
            trainer.round.assign(1)
            trainer.phase.assign(PHASE_COLLECT)
            trainer.save()
            continue

        if phase == PHASE_COLLECT:
            # (2) Collect D: per class, the n best-scoring segments of its training videos.
            progress(round_index, PHASE_COLLECT)
            database, valid, summary = collect_exemplar_database(
                training_outputs(), num_classes, num_exemplars, config.detection.theta,
                num_shards=strategy.num_replicas_in_sync)
            for stream in streams:
                exemplars[stream].assign(database[stream])
                log_q[stream].assign(tf.fill([num_classes, num_exemplars], -float("inf")))
            exemplar_valid.assign(valid)
            update_record(round_index, database=summary)
            trainer.phase.assign(PHASE_FIT)
            trainer.save()

        if int(trainer.phase.numpy()) == PHASE_FIT:
            # (3) Fit Q with the network fixed (log space, until the gap < ε or the cap).
            progress(round_index, PHASE_FIT)
            outputs = training_outputs()
            valid = exemplar_valid.numpy()
            fitted = {stream: fit_stream_representativeness(
                outputs, stream, exemplars[stream].numpy(), valid, num_classes, clustering_config)
                for stream in streams}
            progress(round_index, PHASE_FIT, announce=False)  # a kill here redoes phase (3)
            for stream in streams:
                log_q[stream].assign(fitted[stream][0].astype(np.float32))
            update_record(round_index, representativeness={s: fitted[s][1] for s in streams})
            trainer.phase.assign(PHASE_TRAIN_CC)
            trainer.save()

        # (4) Train with L_cc, D and Q fixed.
        progress(round_index, PHASE_TRAIN_CC)
        chosen = train_phase(clustering_step, round_end_step(round_index), round_index,
                             PHASE_TRAIN_CC)
        update_record(round_index, steps=[round_end_step(round_index - 1),
                                          round_end_step(round_index)], selection=chosen)
        # (5) Next round.
        trainer.round.assign_add(1)
        trainer.phase.assign(PHASE_COLLECT)
        trainer.save()

    # ---- Evaluation on the test split with the final networks, D and Q.
    rounds = [_read_json(os.path.join(round_directory(r), "round.json"), {"round": r})
              for r in range(clustering_config.rounds + 1)]
    baseline = rounds[0].pop("test")
    test_outputs = inference.predict_videos(models, data_dir, config.data.test_subset,
                                            keep_features=clustering_config.rounds > 0)
    unions = None
    if clustering_config.rounds > 0:
        cost_fn = tf.function(losses.segment_convex_clustering_cost, reduce_retracing=True)
        unions = [select_union(o, {s: exemplars[s].numpy() for s in streams},
                               {s: log_q[s].numpy() for s in streams}, clustering_config,
                               config.detection.theta, cost_fn) for o in test_outputs]
    scored, predictions, test_time = detect_outputs(test_outputs, unions, config=config,
                                                    feature_rate=feature_rate, classes=classes)

    # ---- Predictions, D/Q and the SavedModel first: a failed evaluation loses no trained model.
    localize.write_predictions(os.path.join(workdir, "predictions.json"), predictions)
    _write_exemplars(os.path.join(workdir, "exemplars.npz"), exemplars, log_q, exemplar_valid,
                     classes, clustering_config)
    export.export_two_stream(models, os.path.join(workdir, "saved_model"),
                             feature_dims=data.feature_dims, classes=classes,
                             feature_rate=feature_rate, settings=experiment.detection_settings(config.detection))

    def evaluate():
        final_plain, _ = evaluate_outputs(test_outputs, None, config=config,
                                          feature_rate=feature_rate, classes=classes,
                                          ground_truth=ground_truth)
        final = score_predictions(scored, predictions, test_time, config=config,
                                  ground_truth=ground_truth)
        return final_plain, final

    final_plain, final = inference.evaluate_written_run(
        evaluate, workdir=workdir, data_dir=data_dir, subset=config.data.test_subset,
        protocol=config.detection.protocol)
    metrics = dict(final)
    metrics.update({
        "method": "convex_clustering", "seed": config.train.seed,
        "baseline": baseline, "final_without_selection": final_plain, "rounds": rounds,
        "resumed": bool(resumed)})

    # ---- metrics.json, attention vs ground truth of a few held-out videos, the run report.
    timelines = (inference.attention_timelines(models, data_dir, config.data.train_subset,
                                               selection_videos[:4], feature_rate)
                 if selection_videos else {})
    experiment.write_results(workdir, trainer, metrics,
                             (test_outputs, predictions, ground_truth, classes, feature_rate),
                             timelines)
    print(f"[convex_clustering] seed {config.train.seed}: done in "
          f"{time.time() - context.started:.0f} s → {workdir}", file=sys.stderr)
    return metrics


def _write_exemplars(path, exemplars, log_q, valid, classes, settings):
    """D, log Q and the validity per stream, with α and k, for the full test-time rule."""
    temporary = f"{path}.tmp-{os.getpid()}.npz"
    np.savez(temporary, classes=np.asarray(classes), exemplar_valid=valid.numpy(),
             alpha=settings.alpha, squared_distance=settings.squared_distance,
             test_k=settings.test_k, test_k_fraction=settings.test_k_fraction,
             **{f"exemplars_{s}": v.numpy() for s, v in exemplars.items()},
             **{f"log_q_{s}": v.numpy() for s, v in log_q.items()})
    os.replace(temporary, path)


def main(argv):
    del argv
    base = experiment.config_from_flags(
        get_config, (("rounds", "clustering.rounds"), ("round_steps", "clustering.round_steps")))
    root = FLAGS.workdir or os.path.join("workdir", "convex_clustering")
    metrics = experiment.run_seeds(run, base, root)[0]
    final_name = f"round {base.clustering.rounds} (L_cc + selection)"
    rows = [("baseline (round 0)", metrics["baseline"]),
            (f"round {base.clustering.rounds}, no selection", metrics["final_without_selection"]),
            (final_name, metrics)]
    experiment.print_summary(
        base, root, rows,
        "metrics.json, predictions.json, saved_model/, exemplars.npz, checkpoints/, rounds/, "
        "train/ + eval/ (TensorBoard), config.json, report.html")


if __name__ == "__main__":
    from tfwsar import console  # pylint: disable=import-outside-toplevel
    define_flags()
    console.run(main)  # absl.app.run with a quiet terminal

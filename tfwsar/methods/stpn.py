"""STPN: sparse temporal pooling network.

Nguyen, Liu, Prasad and Han, CVPR 2018. Two independent streams s ∈ {rgb, flow}, each on its own
segment features x_t `[B, T, D_s]`:

    λ_t  = σ(w2 · ReLU(W1 x_t + b1) + b2)           attention, [B, T]      `SigmoidAttention`
    x̄    = Σ_t λ_t x_t / N                          pooled feature, [B, D]  `build_stream_network`
    z    = W_cls x̄ + b                              video logits, [B, C]    ("classifier")
    L    = L_class + β · L_sparsity                                           `make_step_fn`
    L_class    = (1/C) Σ_c BCE(σ(z_c), y_c)                                   `losses.sigmoid_classification_loss`
    L_sparsity = ‖λ‖₁ = Σ_t λ_t,   β = 1e-4                                    `losses.segment_l1_loss`
    T-CAM   a_t,c = w_c · x_t (the classifier's weights on each segment, no bias)  ("segment_logits")
    weighted T-CAM ψ_t,c = λ_t · σ(a_t,c)                                     `video_outputs` ("cas")

The paper writes x̄ = Σ_t λ_t x_t (N = 1); the TF reimplementation averages over its T = 400
segments (N = T). `ModelConfig.pooling_normalizer` chooses N: "segments" (default: N = n, the number
of valid segments, the reimplementation's mean and the paper's sum up to the constant T of
training), "attention" (N = Σ λ, a weighted average) or "sum" (N = 1, the paper as printed).
Why not "attention" by default: x̄ is then unchanged when every λ is scaled by the same factor, so
the L1 term can shrink all of λ at no classification cost and stops selecting segments — the
sparsity that gives STPN its name needs the pooled feature to lose mass when λ does.

The streams are trained independently (the reimplementation trains one after the other; here both
take a step on the same batch, each with its own optimizer). Inference (`video_outputs`) fuses them
by the mean: class_scores = ½ Σ_s σ(z^s), cas = ½ Σ_s ψ^s, attention = ½ Σ_s λ^s; per stream the
same and the raw T-CAM are kept as `rgb_*` / `flow_*` for the detection rule.

Detection rule of the reimplementation (for `tfwsar.localize`; not implemented here), per video:
    1. per stream, the classes with σ(z_c) > 0.1;
    2. per stream s and such class, ψ^s upsampled ×24 by linear interpolation, values < 0.05 set to
       0, each run of positive values a proposal;
    3. a proposal's score: the mean over its span of λ^s_t · (½ a^s_t,c + ½ a^s'_t,c), the raw T-CAM
       of both streams weighted by this stream's attention;
    4. the proposals of both streams for a class are pooled and NMS at tIoU 0.5 keeps the best.
The paper describes the same steps (thresholded weighted T-CAM per stream, score from the fused
T-CAM, NMS) without the exact numbers.

Settings. The authors did not release code. STPN's paper gives β = 1e-4, T = 400 sampled segments,
Adam with learning rate 1e-4; the public TensorFlow reimplementation that reproduces the paper's
THUMOS14 numbers (the "reimplementation" above) adds: batch 6, attention hidden width 256, 24,000
iterations per stream (its train.sh; its README reports the best checkpoints at 22k–25k), no weight
decay, one random segment from each of T equal slices (the pipeline's `sampling="uniform"`).
"""

import dataclasses
import functools

import keras
import tensorflow as tf
from keras import ops

from tfwsar import losses
from tfwsar.layers.sigmoid_attention import SigmoidAttention
from tfwsar.methods import shared

PAPER = (
    'Phuc Nguyen, Ting Liu, Gautam Prasad and Bohyung Han, "Weakly Supervised Action Localization '
    'by Sparse Temporal Pooling Network", CVPR 2018'
)

STREAMS = ("rgb", "flow")
POOLING_NORMALIZERS = ("segments", "attention", "sum")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """STPN's model and loss settings (per stream); defaults are the paper's or, where the paper
    gives none, its reimplementation's."""

    attention_units: int = 256  # reimplementation model.py (the paper: FC–ReLU–FC–sigmoid)
    sparsity_weight: float = 1e-4  # paper β; reimplementation utils.py
    sparsity_reduction: str = "sum"  # paper ‖λ‖₁ = Σ_t λ_t (reimplementation too); or "mean"
    pooling_normalizer: str = "segments"  # reimplementation: mean over T (see module docstring)

    def __post_init__(self):
        shared.check_choice("pooling_normalizer", self.pooling_normalizer, POOLING_NORMALIZERS)
        shared.check_choice("sparsity_reduction", self.sparsity_reduction, losses.L1_REDUCTIONS)


PAPER_TRAINING = {
    "optimizer": "adam",  # paper; reimplementation model.py
    "learning_rate": 1e-4,  # paper; reimplementation utils.py
    "weight_decay": 0.0,  # none in the paper or the reimplementation
    "batch_size": 6,  # reimplementation utils.py
    "num_segments": 400,  # paper T; reimplementation NUM_SEGMENTS
    "steps": 24_000,  # reimplementation train.sh (per stream)
}


def build_stream_network(feature_dim, num_classes, config=ModelConfig(), name="stream"):
    """One STPN stream as a functional Keras model.

    Inputs (a dict): `features` `[B, T, D]`, `mask` `[B, T]` (1 = valid segment).
    Outputs (a dict): `attention` λ `[B, T]` (0 at padding), `video_logits` z `[B, C]`,
    `segment_logits` the T-CAM a `[B, T, C]` (w_c · x_t, 0 at padding).
    """
    features = keras.Input(shape=(None, feature_dim), name="features")
    mask = keras.Input(shape=(None,), name="mask")
    segment_mask = ops.expand_dims(mask, -1)
    features_valid = features * segment_mask

    attention = SigmoidAttention(config.attention_units, name="attention")(
        features_valid, mask=mask
    )  # λ
    weighted_sum = ops.sum(ops.expand_dims(attention, -1) * features_valid, axis=1)  # Σ λ_t x_t
    if config.pooling_normalizer == "segments":
        normalizer = ops.sum(mask, axis=1, keepdims=True)  # n
    elif config.pooling_normalizer == "attention":
        normalizer = ops.sum(attention, axis=1, keepdims=True)  # Σ λ
    else:
        normalizer = ops.ones_like(ops.sum(mask, axis=1, keepdims=True))
    pooled = weighted_sum / ops.maximum(normalizer, 1e-6)  # x̄

    classifier = keras.layers.Dense(num_classes, name="classifier")
    video_logits = classifier(pooled)  # z = W_cls x̄ + b
    # T-CAM a_t = W_cls x_t without the bias (the bias is the classifier's output at 0).
    segment_logits = classifier(features_valid) - classifier(ops.zeros_like(features_valid))
    outputs = {
        "attention": attention,
        "video_logits": video_logits,
        "segment_logits": segment_logits * segment_mask,
    }
    return keras.Model(inputs={"features": features, "mask": mask}, outputs=outputs, name=name)


def build_networks(feature_dims, num_classes, config=ModelConfig()):
    """{"rgb": stream network, "flow": stream network} (`build_stream_network`)."""
    return {
        stream: build_stream_network(feature_dims[stream], num_classes, config, name=stream)
        for stream in STREAMS
    }


def build_optimizers(config, learning_rate, weight_decay):
    """{"rgb": Adam, "flow": Adam} (PyTorch-style coupled weight decay if any)."""
    return shared.adam_optimizers(STREAMS, learning_rate, weight_decay)


def _stream_outputs(networks, batch, training_mode):
    return {
        stream: networks[stream](
            {"features": batch[stream], "mask": batch["mask"]}, training=training_mode
        )
        for stream in STREAMS
    }


def make_step_fn(networks, optimizers, config, *, global_batch_size, num_replicas):
    """A `train_lib` step: per stream L = L_class + β L_sparsity, one Adam update per stream.

    Returns `step_fn(batch) -> {"rgb_classification", "rgb_sparsity", "flow_classification",
    "flow_sparsity", "total"}`, each per video averaged over the global batch (STPN has no
    batch-level term, so `num_replicas` is not needed).
    """
    del num_replicas
    average = functools.partial(tf.nn.compute_average_loss, global_batch_size=global_batch_size)

    def step_fn(batch):
        labels, mask = batch["labels"], batch["mask"]
        terms = {}
        with tf.GradientTape() as tape:
            for stream, outputs in _stream_outputs(networks, batch, True).items():
                terms[f"{stream}_classification"] = average(
                    losses.sigmoid_classification_loss(labels, outputs["video_logits"])
                )  # L_class
                terms[f"{stream}_sparsity"] = average(
                    config.sparsity_weight
                    * losses.segment_l1_loss(outputs["attention"], mask, config.sparsity_reduction)
                )  # β ‖λ‖₁
            total = tf.add_n(list(terms.values()))
        shared.apply_gradients(tape, total, networks, optimizers)
        return {"total": total, **terms}

    return step_fn


def video_outputs(networks, batch):
    """Inference on a batch: the two streams' mean `class_scores` [B, C], `cas` (weighted T-CAM)
    [B, T, C] and `attention` [B, T], all in [0, 1]; per stream s ∈ {rgb, flow} also
    `s_class_scores`, `s_cas`, `s_attention` and `s_segment_logits` (the raw T-CAM a)."""
    results = {}
    for stream, outputs in _stream_outputs(networks, batch, False).items():
        attention = outputs["attention"]
        results[f"{stream}_class_scores"] = tf.sigmoid(outputs["video_logits"])
        # ψ = λ · σ(a)
        results[f"{stream}_cas"] = attention[:, :, None] * tf.sigmoid(outputs["segment_logits"])
        results[f"{stream}_attention"] = attention
        results[f"{stream}_segment_logits"] = outputs["segment_logits"]
    for name in ("class_scores", "cas", "attention"):
        results[name] = 0.5 * (results[f"rgb_{name}"] + results[f"flow_{name}"])
    return results

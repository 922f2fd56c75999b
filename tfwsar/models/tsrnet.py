"""TSRNet's per-stream network (Zhang et al., AAAI 2019) and the fusion of its two streams.

One stream (RGB or optical flow) maps segment features X `[B, T, D]` to

    FC1 = Dropout(ReLU(X W_fc1 + b))                 [B, T, H1]
    FC2 = Dropout(ReLU(FC1 W_fc2 + b))               [B, T, H2]
    a   = softmax_T(w2 · tanh(W1 FC2ᵀ))              [B, T]   (valid segments only)
    m   = Σ_t a_t FC2_t                              [B, H2]
    z   = m W_cls + b_cls                            [B, C]   video-level logits
    z_t = FC2_t W_cls + b_cls                        [B, T, C] the same classifier per segment

The Two-Stream ablation replaces the attention by a masked mean. The two streams are trained
separately and fused at test time with `fuse_streams`.
"""

import dataclasses

import keras
from keras import ops

from tfwsar.layers.attention_pooling import SelfAttentionPooling
from tfwsar.layers.mean_pooling import MeanPooling
from tfwsar.losses import VARIANTS

POOLING_BY_VARIANT = {
    "two_stream": "mean",
    "srnet": "attention",
    "tsrnet": "attention",
    "tsrnet_no_fc2": "attention",
}


@dataclasses.dataclass(frozen=True)
class TSRNetHyperparameters:
    """TSRNet's settings. Paper values are marked; the rest are ours (the paper gives none).

    Paper (Zhang et al. 2019, implementation details): batch 16, SGD with momentum 0.9, dropout
    0.8, learning rate 1e-4 for RGB and 5e-4 for flow, divided by 10 every 5,000 iterations.

    Dropout: the paper's "dropout 0.8" most likely is a keep probability — the TF1 API of its
    time, `tf.nn.dropout(x, keep_prob)`, took the fraction KEPT — whereas Keras' `Dropout(rate)`
    takes the fraction DROPPED. We therefore use `dropout_rate = 1 − 0.8 = 0.2`; the paper does
    not say which it meant, so `dropout_rate=0.8` reproduces the other reading.
    """

    batch_size: int = 16  # paper
    momentum: float = 0.9  # paper
    learning_rate_rgb: float = 1e-4  # paper
    learning_rate_flow: float = 5e-4  # paper
    learning_rate_decay_factor: float = 0.1  # paper: ÷10
    learning_rate_decay_steps: int = 5000  # paper: every 5,000 iterations
    dropout_rate: float = 0.2  # paper "dropout 0.8" = keep probability (see above)
    fc1_units: int = 512  # ours
    fc2_units: int = 512  # ours
    attention_units: int = 256  # ours (Lin et al.'s d_a)
    alpha: float = 1.0  # ours: smoothness weight α
    beta: float = 0.01  # ours: sparsity weight β (entropy reading)
    fusion_theta: float = 0.5  # ours: θ in θ·rgb + (1−θ)·flow


PAPER_HYPERPARAMETERS = TSRNetHyperparameters()


def pooling_for_variant(variant):
    """"mean" for the Two-Stream ablation, "attention" for the others."""
    if variant not in POOLING_BY_VARIANT:
        raise ValueError(f"unknown variant {variant!r}; expected one of {VARIANTS}")
    return POOLING_BY_VARIANT[variant]


def build_stream_network(
    feature_dim,
    num_classes,
    *,
    fc1_units=PAPER_HYPERPARAMETERS.fc1_units,
    fc2_units=PAPER_HYPERPARAMETERS.fc2_units,
    attention_units=PAPER_HYPERPARAMETERS.attention_units,
    dropout_rate=PAPER_HYPERPARAMETERS.dropout_rate,
    pooling="attention",
    name="stream",
):
    """One TSRNet stream as a functional Keras model.

    Inputs (a dict): `features` `[B, T, feature_dim]` float32 and `mask` `[B, T]` float32
    (1 = valid segment, 0 = padding); T may differ between calls.

    Outputs (a dict):
        `logits` `[B, C]` video-level class logits;
        `probabilities` `[B, C]` their softmax (s in the detection rule);
        `attention` `[B, T]` a (0 at padding, sums to 1 over valid segments);
        `attention_logits` `[B, T]` pre-softmax e (0 at padding; all 0 for mean pooling);
        `segment_logits` `[B, T, C]` the classifier applied to each segment's FC2 feature;
        `fc1` `[B, T, H1]`, `fc2` `[B, T, H2]` (after dropout, as the next layer sees them).
    Per-segment outputs are set to 0 at padding, so padding never changes a valid position.

    Args:
        feature_dim: D of the input segment features.
        num_classes: C.
        fc1_units: H1.
        fc2_units: H2.
        attention_units: d_a of the attention (unused for mean pooling).
        dropout_rate: Keras drop fraction after FC1 and FC2 (0.2 = the paper's keep-prob 0.8).
        pooling: "attention" (SRNet/TSRNet) or "mean" (Two-Stream ablation).
        name: model name (e.g. "rgb", "flow").
    """
    if pooling not in ("attention", "mean"):
        raise ValueError(f"unknown pooling {pooling!r}; expected 'attention' or 'mean'")
    features = keras.Input(shape=(None, feature_dim), name="features")
    mask = keras.Input(shape=(None,), name="mask")
    segment_mask = ops.expand_dims(mask, -1)  # [B, T, 1]

    fc1 = keras.layers.Dense(fc1_units, activation="relu", name="fc1")(features)
    fc1 = keras.layers.Dropout(dropout_rate, name="fc1_dropout")(fc1) * segment_mask
    fc2 = keras.layers.Dense(fc2_units, activation="relu", name="fc2")(fc1)
    fc2 = keras.layers.Dropout(dropout_rate, name="fc2_dropout")(fc2) * segment_mask

    if pooling == "attention":
        pooling_layer = SelfAttentionPooling(
            attention_units, return_logits=True, name="attention_pooling"
        )
    else:
        pooling_layer = MeanPooling(return_logits=True, name="mean_pooling")
    pooled, attention, attention_logits = pooling_layer(fc2, mask=mask)

    classifier = keras.layers.Dense(num_classes, name="classifier")
    logits = classifier(pooled)
    segment_logits = classifier(fc2) * segment_mask
    probabilities = keras.layers.Softmax(name="probabilities")(logits)

    outputs = {
        "logits": logits,
        "probabilities": probabilities,
        "attention": attention,
        "attention_logits": attention_logits,
        "segment_logits": segment_logits,
        "fc1": fc1,
        "fc2": fc2,
    }
    return keras.Model(inputs={"features": features, "mask": mask}, outputs=outputs, name=name)


def fuse_streams(rgb_values, flow_values, theta):
    """Late fusion of the two streams: θ · rgb + (1 − θ) · flow (tensors or arrays)."""
    return theta * rgb_values + (1.0 - theta) * flow_values

"""W-TALC: weakly supervised temporal activity localization and classification.

Paul, Roy and Roy-Chowdhury, ECCV 2018. One network on joint features x_t = [x_t^rgb | x_t^flow]:

    h_t   = Dropout(ReLU(W x_t + b))                   [B, T, H]   `build_networks` ("fc")
    z_t   = W_cls h_t + b_cls                           [B, T, C]   segment logits ("classifier")
    s_c   = mean of the top k = ⌈n/8⌉ of z_t,c          [B, C]      `TopKTemporalPooling`
    L_MILL = − Σ_c (y_c / Σ_k y_k) log softmax(s)_c                 `losses.topk_mil_loss`
    L_CASL: pairs of videos sharing a class; per class c, attention A_c = softmax_t(z_·,c),
            high/low-attention features Hf = Σ A h, Lf = Σ (1 − A) h / (n − 1), cosine distances,
            hinge ½[d(Hf,Hf') − d(Hf,Lf') + ξ]₊ + ½[d(Hf,Hf') − d(Lf,Hf') + ξ]₊, ξ = 0.5
                                                                    `losses.co_activity_similarity_loss`
    L = λ L_MILL + (1 − λ) L_CASL,   λ = 0.5                        `make_step_fn`

n is the number of valid segments of the video; padding never counts.

Pairs. The official sampler puts `similar_pairs` (3) pairs of videos that share a class at the start
of each batch of 10 and fills the rest at random; CASL is taken over those pairs. Here CASL is taken
over the consecutive pairs (0, 1), (2, 3), … of each replica's share, and a pair counts for every
class both videos have (a random consecutive pair that happens to share a class counts too: it is
a pair of the kind the loss is defined on). The batch sampler should therefore lay similar pairs
out at even rows; with an even per-replica share no pair straddles two replicas. `similar_pairs`
is the sampler's setting, kept here with the other paper values. L_CASL is a batch-level term (a
mean over the (pair, shared class) units of the replica's share) and is divided by the number of
replicas; L_MILL is per video.

Inference (`video_outputs`), as the official test code:
    class_scores = softmax_c(s)          (top-k mean with k = ⌈n/8⌉, then softmax over classes)
    cas          = (z − min_t z) / (max_t z − min_t z) per class, over the valid segments
    segment_logits, topk_logits          z and s, raw, for the score of the detection rule below.

Detection rule of the official code (for `tfwsar.localize`; not implemented here), per video:
    1. c_s = mean of the top ⌊T/8⌋ raw logits of class c (the code rounds down here, unlike the
       ⌈T/8⌉ of training and classification; `topk_logits` rounds up, a difference of one segment
       in T/8); classes with c_s ≤ 0 are dropped (their sequence is zeroed, so nothing exceeds
       the threshold);
    2. threshold per class at half the range of its logits: z_t > max − ½(max − min), i.e.
       `cas` > 0.5 (strictly);
    3. each run of consecutive segments above the threshold that is ≥ 2 segments long is a
       detection, scored max_{t in run} z_t + 0.7 · c_s;
    4. no NMS; segment index t ↔ time t · 16/25 s (I3D at 25 fps, stride 16).

Paper settings (official code: options.py, main.py, model.py, train.py, utils.py):
Adam, lr 1e-4, weight decay 5e-4 (PyTorch's coupled L2, see `tfwsar.methods.shared`), batch 10
with 3 similar pairs, at most 750 segments per training video (a random contiguous window of a
longer video, zero padding of a shorter one: the pipeline's `sampling="crop"`), 100,000
iterations, FC width = feature width (2048 for I3D), dropout 0.7 (PyTorch: fraction dropped),
Xavier-uniform weights and zero biases (Keras' defaults).
"""

import dataclasses
import functools
from typing import Optional

import keras
import tensorflow as tf

from tfwsar import losses
from tfwsar.layers.minmax_normalization import temporal_minmax
from tfwsar.layers.topk_pooling import TopKTemporalPooling
from tfwsar.methods import shared

PAPER = (
    'Sujoy Paul, Sourya Roy and Amit K. Roy-Chowdhury, "W-TALC: Weakly-supervised Temporal '
    'Activity Localization and Classification", ECCV 2018'
)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """W-TALC's model and loss settings; every default is the paper's / official code's."""

    # official model.py: Linear(n_feature, n_feature); None = the joint width D_rgb + D_flow
    fc_units: Optional[int] = None
    dropout_rate: float = 0.7  # official model.py: nn.Dropout(0.7), fraction dropped
    topk_divisor: int = 8  # paper and official train.py: k = ⌈n/8⌉
    mil_weight: float = 0.5  # paper λ: L = λ·L_MILL + (1 − λ)·L_CASL (official options.py: Lambda)
    margin: float = 0.5  # paper ξ of the CASL hinge (official train.py)
    similar_pairs: int = 3  # official options.py: num_similar, pairs at the start of a batch


PAPER_TRAINING = {
    "optimizer": "adam",  # official main.py
    "learning_rate": 1e-4,  # paper; official options.py
    "weight_decay": 5e-4,  # paper; official main.py (PyTorch coupled L2)
    "batch_size": 10,  # official options.py
    "num_segments": 750,  # official options.py: max_seqlen (random contiguous window)
    "steps": 100_000,  # official options.py: max_iter
    "similar_pairs": 3,  # official options.py: num_similar (the batch sampler's setting)
}


def build_networks(feature_dims, num_classes, config=ModelConfig()):
    """{"model": the W-TALC network}, a functional Keras model.

    Inputs (a dict): `rgb` `[B, T, D_rgb]`, `flow` `[B, T, D_flow]`, `mask` `[B, T]` (1 = valid).
    Outputs (a dict), 0 at padding: `features` h `[B, T, H]` (after dropout, what L_CASL reads),
    `segment_logits` z `[B, T, C]`, `video_logits` s `[B, C]` (top-k mean, k = ⌈n/8⌉).
    """
    inputs, mask, segment_mask, features = shared.joint_feature_inputs(feature_dims)

    units = config.fc_units or feature_dims["rgb"] + feature_dims["flow"]
    hidden = keras.layers.Dense(units, activation="relu", name="fc")(features)
    hidden = keras.layers.Dropout(config.dropout_rate, name="dropout")(hidden) * segment_mask
    segment_logits = keras.layers.Dense(num_classes, name="classifier")(hidden) * segment_mask
    video_logits = TopKTemporalPooling(config.topk_divisor, "ceil", name="topk_pooling")(
        segment_logits, mask=mask
    )
    model = keras.Model(
        inputs=inputs,
        outputs={
            "features": hidden,
            "segment_logits": segment_logits,
            "video_logits": video_logits,
        },
        name="wtalc",
    )
    return {"model": model}


def build_optimizers(config, learning_rate, weight_decay):
    """{"model": Adam with PyTorch-style (coupled) weight decay}."""
    return shared.adam_optimizers(("model",), learning_rate, weight_decay)


def make_step_fn(networks, optimizers, config, *, global_batch_size, num_replicas):
    """A `train_lib` step: L = λ L_MILL + (1 − λ) L_CASL, one Adam update.

    Returns `step_fn(batch) -> {"mil", "casl", "total"}`, each as it enters the total: "mil" per
    video averaged over the global batch, "casl" batch-level divided by `num_replicas`.
    """
    model = networks["model"]
    average = functools.partial(tf.nn.compute_average_loss, global_batch_size=global_batch_size)
    balance = config.mil_weight  # λ

    def step_fn(batch):
        labels, mask = batch["labels"], batch["mask"]
        with tf.GradientTape() as tape:
            outputs = model(shared.joint_model_inputs(batch), training=True)
            mil = losses.topk_mil_loss(
                labels, outputs["segment_logits"], mask, divisor=config.topk_divisor
            )  # L_MILL, [B]
            casl = losses.co_activity_similarity_loss(
                outputs["features"], outputs["segment_logits"], labels, mask, margin=config.margin
            )  # L_CASL, scalar for this replica's pairs
            terms = {
                "mil": average(balance * mil),
                "casl": (1.0 - balance) * casl / num_replicas,
            }
            total = terms["mil"] + terms["casl"]
        shared.apply_gradients(tape, total, networks, optimizers)
        return {"total": total, **terms}

    return step_fn


def video_outputs(networks, batch):
    """Inference on a batch: `class_scores` [B, C], `cas` [B, T, C] (both in [0, 1]), and the raw
    `segment_logits` [B, T, C] and `topk_logits` [B, C] that the official detection score uses."""
    outputs = networks["model"](shared.joint_model_inputs(batch), training=False)
    mask = batch["mask"]
    return {
        "class_scores": tf.nn.softmax(outputs["video_logits"], axis=-1),
        "cas": temporal_minmax(outputs["segment_logits"], mask),
        "segment_logits": outputs["segment_logits"],
        "topk_logits": outputs["video_logits"],
    }

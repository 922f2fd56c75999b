"""BaS-Net: background suppression network.

Lee, Uh and Byun, AAAI 2020. One network on joint features x_t = [x_t^rgb | x_t^flow], with C + 1
classes (the last is background):

    w_t      = σ(conv₁(LeakyReLU(conv₁(x_t))))          foreground weights, [B, T]
                                                         filtering module, `SigmoidAttention`
    CAS(X)   = conv₁(Dropout(φ(conv₃(φ(conv₃(X))))))     [B, T, C+1], φ = LeakyReLU  `_cas_module`
    base branch:         A^base = CAS(X)                 (weights shared by the two branches)
    suppression branch:  A^supp = CAS(X ⊙ w)
    p^branch = softmax_{C+1}(mean of the top k = ⌊n/8⌋ of A^branch)        `TopKTemporalPooling`
    y^base = [y, 1] / Σ,   y^supp = [y, 0] / Σ                               `losses.background_class_labels`
    L = L_base + L_supp + α L_norm,   L_norm = ‖w‖₁ = Σ_t w_t,   α = 1e-4    `make_step_fn`

conv₁ / conv₃ are temporal convolutions of kernel 1 / 3; n is the number of valid segments. Padded
segments are zeroed after every layer, so a kernel-3 convolution at the last valid segment sees
zeros beyond it, as for an unpadded video, and padding changes nothing.

L_base and L_supp: the paper writes the cross-entropy −Σ_c y_c log p_c; the official code
(train.py) applies PyTorch's `BCELoss` to the softmax scores, i.e. the mean over the C + 1 classes
of −[y log p + (1 − y) log(1 − p)], and its α = 1e-4 and the summed ‖w‖₁ are balanced against that.
`ModelConfig.classification_loss` chooses: "binary" (default, the code that produced the paper's
numbers, `losses.softmax_binary_cross_entropy`) or "categorical" (the paper's formula,
`losses.multilabel_classification_loss`).

Inference (`video_outputs`), as the official test code:
    class_scores = softmax_{C+1}(top-k mean of A^supp) without the background entry (not
                   renormalised);
    cas          = A^supp of the C action classes, min-max normalised per class over the valid
                   segments with BaS-Net's rectified range (`temporal_minmax(rectify=True)`);
    attention    = w;
    segment_probabilities = softmax_{C+1}(A^supp_t) without background, the per-segment
                   probabilities the paper's figures show (the official rule does not use them).

Detection rule of the official code (for `tfwsar.localize`; not implemented here), per video:
    1. the classes with class_scores ≥ 0.25;
    2. `cas` of those classes upsampled ×24 by linear interpolation;
    3. for each threshold 0, 0.025, …, 0.225: values below it set to 0, each run of positive
       values a proposal, scored by its outer-inner contrast
       mean(cas in the run) − mean(cas over ⌊¼ · length⌋ segments each side) + 0.2 · class score;
    4. the proposals of all thresholds pooled per class, NMS at tIoU 0.7.

Paper settings (official code: options.py, config.py, main.py, model.py): Adam, lr 1e-4, weight
decay 5e-4 (PyTorch's coupled L2), batch 16, T = 750 segments (one random segment from each of T
equal slices — the pipeline's `sampling="uniform"`; shorter videos are upsampled by repetition
rather than padded), 1,500 iterations (its learning-rate list), α = 1e-4, filtering width 512,
CAS width 2048 with two kernel-3 layers, dropout 0.7, LeakyReLU slope 0.01, a classifier without
bias. The official code evaluates on the test set after every iteration and keeps the best; select
on held-out training videos instead.
"""

import dataclasses
import functools

import keras
import tensorflow as tf
from keras import ops

from tfwsar import losses
from tfwsar.layers.minmax_normalization import temporal_minmax
from tfwsar.layers.sigmoid_attention import SigmoidAttention
from tfwsar.layers.topk_pooling import TopKTemporalPooling
from tfwsar.methods import shared

PAPER = (
    'Pilhyeon Lee, Youngjung Uh and Hyeran Byun, "Background Suppression Network for '
    'Weakly-supervised Temporal Action Localization", AAAI 2020'
)

CLASSIFICATION_LOSSES = ("binary", "categorical")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """BaS-Net's model and loss settings; every default is the paper's / official code's."""

    filter_units: int = 512  # official model.py: Filter_Module conv_1
    cas_units: int = 2048  # official model.py: CAS_Module conv_1, conv_2
    cas_layers: int = 2  # official model.py: two kernel-3 layers before the classifier
    kernel_size: int = 3  # official model.py
    dropout_rate: float = 0.7  # official model.py: nn.Dropout(p=0.7), fraction dropped
    negative_slope: float = 0.01  # official model.py: nn.LeakyReLU() default slope
    topk_divisor: int = 8  # paper r = 8; official model.py: k = num_segments // 8
    topk_rounding: str = "floor"  # official model.py rounds down
    filter_l1_weight: float = 1e-4  # paper α; official options.py: alpha
    filter_l1_reduction: str = "sum"  # official train.py: norm over T; or "mean"
    classification_loss: str = "binary"  # official train.py: BCELoss; "categorical" = paper formula

    def __post_init__(self):
        shared.check_choice("topk_rounding", self.topk_rounding, losses.TOPK_ROUNDINGS)
        shared.check_choice("filter_l1_reduction", self.filter_l1_reduction, losses.L1_REDUCTIONS)
        shared.check_choice("classification_loss", self.classification_loss, CLASSIFICATION_LOSSES)


PAPER_TRAINING = {
    "optimizer": "adam",  # paper; official main.py
    "learning_rate": 1e-4,  # paper; official options.py
    "weight_decay": 5e-4,  # paper; official main.py (PyTorch coupled L2)
    "batch_size": 16,  # paper; official options.py
    "num_segments": 750,  # paper T; official config.py
    "steps": 1_500,  # official options.py: lr list '[0.0001]*1500'
}


def _cas_module(num_classes, config, segment_mask):
    """The class activation module shared by both branches, as a function X → A `[B, T, C+1]`."""
    convolutions = [
        keras.layers.Conv1D(
            config.cas_units, config.kernel_size, padding="same", name=f"cas_conv{index + 1}"
        )
        for index in range(config.cas_layers)
    ]
    activation = keras.layers.LeakyReLU(negative_slope=config.negative_slope, name="cas_activation")
    dropout = keras.layers.Dropout(config.dropout_rate, name="cas_dropout")
    classifier = keras.layers.Conv1D(num_classes + 1, 1, use_bias=False, name="cas_classifier")

    def cas(inputs):
        hidden = inputs
        for convolution in convolutions:
            hidden = activation(convolution(hidden)) * segment_mask
        return classifier(dropout(hidden)) * segment_mask

    return cas


def build_networks(feature_dims, num_classes, config=ModelConfig()):
    """{"model": the BaS-Net network}, a functional Keras model.

    Inputs (a dict): `rgb` `[B, T, D_rgb]`, `flow` `[B, T, D_flow]`, `mask` `[B, T]` (1 = valid).
    Outputs (a dict), 0 at padding: `foreground_weights` w `[B, T]`, `base_logits` A^base and
    `suppressed_logits` A^supp `[B, T, C+1]`, `base_video_logits` and `suppressed_video_logits`
    `[B, C+1]` (top-k means, before the softmax).
    """
    inputs, mask, segment_mask, features = shared.joint_feature_inputs(feature_dims)

    weights = SigmoidAttention(
        config.filter_units, negative_slope=config.negative_slope, name="filtering_module"
    )(features, mask=mask)  # w
    cas = _cas_module(num_classes, config, segment_mask)
    base_logits = cas(features)  # A^base
    suppressed_logits = cas(features * ops.expand_dims(weights, -1))  # A^supp
    pooling = TopKTemporalPooling(config.topk_divisor, config.topk_rounding, name="topk_pooling")
    outputs = {
        "foreground_weights": weights,
        "base_logits": base_logits,
        "suppressed_logits": suppressed_logits,
        "base_video_logits": pooling(base_logits, mask=mask),
        "suppressed_video_logits": pooling(suppressed_logits, mask=mask),
    }
    model = keras.Model(inputs=inputs, outputs=outputs, name="basnet")
    return {"model": model}


def build_optimizers(config, learning_rate, weight_decay):
    """{"model": Adam with PyTorch-style (coupled) weight decay}."""
    return shared.adam_optimizers(("model",), learning_rate, weight_decay)


def make_step_fn(networks, optimizers, config, *, global_batch_size, num_replicas):
    """A `train_lib` step: L = L_base + L_supp + α L_norm, one Adam update.

    Returns `step_fn(batch) -> {"base", "suppressed", "filter_l1", "total"}`, each per video
    averaged over the global batch (no batch-level term, so `num_replicas` is not needed).
    """
    del num_replicas
    model = networks["model"]
    average = functools.partial(tf.nn.compute_average_loss, global_batch_size=global_batch_size)
    if config.classification_loss == "binary":
        classification = losses.softmax_binary_cross_entropy
    else:
        classification = losses.multilabel_classification_loss

    def step_fn(batch):
        base_labels, suppressed_labels = losses.background_class_labels(batch["labels"])
        with tf.GradientTape() as tape:
            outputs = model(shared.joint_model_inputs(batch), training=True)
            terms = {
                "base": average(classification(base_labels, outputs["base_video_logits"])),
                "suppressed": average(
                    classification(suppressed_labels, outputs["suppressed_video_logits"])
                ),
                "filter_l1": average(
                    config.filter_l1_weight
                    * losses.segment_l1_loss(
                        outputs["foreground_weights"], batch["mask"], config.filter_l1_reduction
                    )
                ),  # α ‖w‖₁
            }
            total = tf.add_n(list(terms.values()))
        shared.apply_gradients(tape, total, networks, optimizers)
        return {"total": total, **terms}

    return step_fn


def video_outputs(networks, batch):
    """Inference on a batch: `class_scores` [B, C], `cas` [B, T, C], `attention` [B, T] (the
    foreground weights) and `segment_probabilities` [B, T, C], all in [0, 1]."""
    outputs = networks["model"](shared.joint_model_inputs(batch), training=False)
    action_logits = outputs["suppressed_logits"][:, :, :-1]
    return {
        "class_scores": tf.nn.softmax(outputs["suppressed_video_logits"], axis=-1)[:, :-1],
        "cas": temporal_minmax(action_logits, batch["mask"], rectify=True),
        "attention": outputs["foreground_weights"],
        "segment_probabilities": tf.nn.softmax(outputs["suppressed_logits"], axis=-1)[:, :, :-1]
        * batch["mask"][:, :, None],
    }

"""TSRNet as a method: two stream networks, their SGD, one training step, their outputs per video.

Zhang, Shi, Li, Zheng, Zhu and Duan, "Learning Transferable Self-attentive Representations for Action
Recognition in Untrimmed Videos with Weak Supervision", AAAI 2019 (TSRNet). Per stream (RGB, flow), the
network of `tfwsar.models.tsrnet` (FC1 → FC2 → self-attentive pooling → classifier) and

    L = L_SA + L_KT                                              `make_step_fn`
    L_SA = cross-entropy(y, s) + α Σ_i (a_i − a_{i+1})² + β sparsity(a)      `losses.stream_loss`
    L_KT = MMD²(FC untrimmed, FC trimmed)   (variants "tsrnet", "tsrnet_no_fc2")

each stream's gradients applied by its own SGD with momentum and step decay (`build_optimizers`).
Convex clustering (Peng et al.) trains the same stream networks with attention pooling and the same
optimizers; `tfwsar.recipes.convex_clustering` adds its exemplar database and Q to this module's
networks.

What it produces for a video: `tfwsar.inference.predict_videos` — per stream the class scores
s `[C]`, the attention a `[T]`, the per-segment class scores `[T, C]` (its CAS) and, on request,
the FC2 embedding φ `[T, H2]`.
"""

import tensorflow as tf

from tfwsar import losses, train_lib
from tfwsar.inference import STREAMS
from tfwsar.models import tsrnet

PAPER = (
    'Xiao-Yu Zhang, Haichao Shi, Changsheng Li, Kai Zheng, Xiaobin Zhu and Lixin Duan, "Learning '
    'Transferable Self-attentive Representations for Action Recognition in Untrimmed Videos with '
    'Weak Supervision", AAAI 2019'
)
VARIANTS = losses.VARIANTS  # two_stream | srnet | tsrnet | tsrnet_no_fc2


def build_networks(feature_dims, num_classes, model_config, pooling="attention"):
    """{"rgb": network, "flow": network} (`models.tsrnet.build_stream_network`), built.

    `model_config` has fc1_units, fc2_units, attention_units and dropout_rate; `pooling` is
    "attention" (self-attentive pooling) or "mean" (`models.tsrnet.pooling_for_variant`).
    Call inside `strategy.scope()`.
    """
    return {stream: tsrnet.build_stream_network(
        feature_dims[stream], num_classes, fc1_units=model_config.fc1_units,
        fc2_units=model_config.fc2_units, attention_units=model_config.attention_units,
        dropout_rate=model_config.dropout_rate, pooling=pooling, name=stream)
        for stream in STREAMS}


def build_optimizers(train_config):
    """{"rgb": SGD, "flow": SGD}: momentum, each stream's own learning rate, ÷`decay_factor`
    every `decay_every` steps (`train_lib.sgd_with_step_decay`). Call inside `strategy.scope()`."""
    learning_rates = {"rgb": train_config.learning_rate_rgb, "flow": train_config.learning_rate_flow}
    return {stream: train_lib.sgd_with_step_decay(
        learning_rates[stream], train_config.decay_every, train_config.decay_factor,
        train_config.momentum, name=f"{stream}_optimizer") for stream in STREAMS}


def make_step_fn(config, models, optimizers, num_replicas):
    """`step_fn(element) -> {"<stream>/<term>": scalar}` for `train_lib.Trainer`: one TSRNet step.

    On this replica's share of the global batch: L = L_SA + L_KT per stream (`losses.stream_loss`,
    per-example terms over the global `config.train.batch_size`, the MMD² divided by
    `num_replicas`), each stream's gradients applied by its own optimizer. `element` is the
    untrimmed batch, or (untrimmed batch, trimmed batch) for the knowledge-transfer variants.
    `config` is the TSRNet recipe's (variant, model, train).
    """
    transfer = config.variant in losses.KNOWLEDGE_TRANSFER_VARIANTS

    def step_fn(element):
        batch, trimmed_batch = element if transfer else (element, None)
        results = {}
        for stream, model in models.items():
            with tf.GradientTape() as tape:
                outputs = model({"features": batch[stream], "mask": batch["mask"]}, training=True)
                trimmed_outputs = None
                if transfer:
                    trimmed_outputs = model(
                        {"features": trimmed_batch[stream], "mask": trimmed_batch["mask"]},
                        training=True)
                terms = losses.stream_loss(
                    outputs, batch, variant=config.variant, alpha=config.model.alpha,
                    beta=config.model.beta, sparsity_kind=config.model.sparsity_kind,
                    global_batch_size=config.train.batch_size, num_replicas=num_replicas,
                    trimmed_outputs=trimmed_outputs, trimmed_batch=trimmed_batch,
                    mmd_segments_per_video=config.model.mmd_segments_per_video)
            variables = model.trainable_variables
            gradients = tape.gradient(terms["total"], variables)
            optimizers[stream].apply_gradients(zip(gradients, variables))
            results.update({f"{stream}/{name}": value for name, value in terms.items()})
        return results

    return step_fn

"""Masked mean pooling: the Two-Stream baseline of TSRNet's ablation (no attention)."""

import keras
from keras import ops

from tfwsar.layers.attention_pooling import valid_segments


@keras.saving.register_keras_serializable(package="tfwsar")
class MeanPooling(keras.layers.Layer):
    """Mean of the valid segment features, with the same outputs as `SelfAttentionPooling`.

        a_t = 1 / n  for the n valid segments, 0 at padding
        m = Σ_t a_t x_t

    Call with `layer(features, mask=mask)` (`[B, T]`, 1 or True = valid); a Keras mask on
    `features` is used when no `mask` is passed. A row with no valid segment pools to 0.

    Args:
        return_logits: bool, also return attention logits (all 0: uniform attention has no
            parameters), so the two pooling layers are interchangeable.
        **kwargs: base `keras.layers.Layer` arguments.

    Returns:
        `(pooled [B, D], attention [B, T])`, plus `attention_logits [B, T]` when `return_logits`.
    """

    def __init__(self, return_logits=False, **kwargs):
        super().__init__(**kwargs)
        self.return_logits = bool(return_logits)

    def call(self, inputs, mask=None):
        valid = valid_segments(inputs, mask)
        weights = ops.cast(valid, inputs.dtype)
        count = ops.sum(weights, axis=-1, keepdims=True)
        attention = weights / ops.maximum(count, ops.ones_like(count))
        features = ops.where(ops.expand_dims(valid, -1), inputs, ops.zeros_like(inputs))
        pooled = ops.einsum("bt,btd->bd", attention, features)
        if self.return_logits:
            return pooled, attention, ops.zeros_like(attention)
        return pooled, attention

    def compute_mask(self, inputs, mask=None):
        return None

    def get_config(self):
        config = super().get_config()
        config.update({"return_logits": self.return_logits})
        return config

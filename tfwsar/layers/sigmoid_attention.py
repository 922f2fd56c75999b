"""Per-segment sigmoid attention: STPN's attention module and BaS-Net's filtering module.

STPN (Nguyen et al., CVPR 2018) weighs each segment by λ_t = σ(FC(ReLU(FC(x_t)))), unnormalised,
so several segments can all be fully on (unlike a softmax). BaS-Net (Lee et al., AAAI 2020) computes
its foreground weights the same way with two 1×1 temporal convolutions (= per-segment dense layers)
and a LeakyReLU between them. One layer serves both: `negative_slope` 0 gives the ReLU.
"""

import keras
from keras import ops

from tfwsar.layers.attention_pooling import valid_segments


@keras.saving.register_keras_serializable(package="tfwsar")
class SigmoidAttention(keras.layers.Layer):
    """λ_t = σ(w2 · φ(W1 x_t + b1) + b2) for every segment, 0 at padding.

    φ is a ReLU (`negative_slope=0`, STPN) or a LeakyReLU (BaS-Net: slope 0.01, PyTorch's
    default). Call with `layer(features, mask=mask)`, features `[B, T, D]` and mask `[B, T]` (1 or
    True = valid); a Keras mask on `features` is used when no `mask` is passed.

    Args:
        hidden_units: rows of W1 (STPN's reimplementation: 256; BaS-Net: 512).
        negative_slope: slope of φ below 0 (0 = ReLU).
        return_logits: bool, also return the pre-sigmoid scores (0 at padding).
        kernel_initializer: initializer of W1 and w2.
        **kwargs: base `keras.layers.Layer` arguments.

    Returns:
        `weights [B, T]` in (0, 1) at valid segments, 0 at padding; plus `logits [B, T]` when
        `return_logits`.
    """

    def __init__(
        self,
        hidden_units,
        negative_slope=0.0,
        return_logits=False,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.hidden_units = int(hidden_units)
        self.negative_slope = float(negative_slope)
        self.return_logits = bool(return_logits)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.hidden = keras.layers.Dense(
            self.hidden_units, kernel_initializer=self._initializer_copy(), name="hidden"
        )
        self.score = keras.layers.Dense(
            1, kernel_initializer=self._initializer_copy(), name="score"
        )

    def _initializer_copy(self):
        return keras.initializers.deserialize(keras.initializers.serialize(self.kernel_initializer))

    def build(self, input_shape):
        self.hidden.build(input_shape)
        self.score.build(tuple(input_shape[:-1]) + (self.hidden_units,))

    def call(self, inputs, mask=None):
        valid = valid_segments(inputs, mask)
        features = ops.where(ops.expand_dims(valid, -1), inputs, ops.zeros_like(inputs))
        hidden = ops.leaky_relu(self.hidden(features), negative_slope=self.negative_slope)
        logits = ops.squeeze(self.score(hidden), axis=-1)  # w2 · φ(W1 x_t + b1) + b2
        logits = ops.where(valid, logits, ops.zeros_like(logits))
        weights = ops.where(valid, ops.sigmoid(logits), ops.zeros_like(logits))  # λ_t
        if self.return_logits:
            return weights, logits
        return weights

    def compute_mask(self, inputs, mask=None):
        return None

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "hidden_units": self.hidden_units,
                "negative_slope": self.negative_slope,
                "return_logits": self.return_logits,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config

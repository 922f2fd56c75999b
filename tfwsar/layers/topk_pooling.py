"""Masked top-k temporal pooling: the video-level score of W-TALC and BaS-Net.

Both methods score a class in a video by the mean of its k highest segment scores, k = n / 8 for a
video of n segments (W-TALC rounds up, BaS-Net's code rounds down). The value is computed by
`tfwsar.losses.topk_temporal_mean`, the same function the losses call (one implementation).
"""

import keras

from tfwsar import losses


@keras.saving.register_keras_serializable(package="tfwsar")
class TopKTemporalPooling(keras.layers.Layer):
    """Mean of the k largest values of each channel over the valid segments.

        k = ⌈n / r⌉ ("ceil") or ⌊n / r⌋ ("floor"), clipped to [1, n]
        s_c = (1/k) Σ_{t ∈ top-k(c)} v_{t,c}

    with n the number of valid segments and r = `divisor`. Call with `layer(values, mask=mask)`,
    values `[B, T, C]` and mask `[B, T]` (1 or True = valid); a Keras mask on `values` is used when
    no `mask` is passed. Padded segments never enter the top k; a row without any valid segment
    pools to 0.

    Args:
        divisor: r (8 in W-TALC and BaS-Net).
        rounding: "ceil" (W-TALC) or "floor" (BaS-Net's official code).
        **kwargs: base `keras.layers.Layer` arguments.

    Returns:
        `[B, C]`.
    """

    def __init__(self, divisor=8, rounding="ceil", **kwargs):
        super().__init__(**kwargs)
        if rounding not in losses.TOPK_ROUNDINGS:
            raise ValueError(
                f"unknown rounding {rounding!r}; expected one of {losses.TOPK_ROUNDINGS}"
            )
        self.divisor = int(divisor)
        self.rounding = rounding

    def call(self, inputs, mask=None):
        return losses.topk_temporal_mean(
            inputs, mask, divisor=self.divisor, rounding=self.rounding
        )

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])

    def compute_mask(self, inputs, mask=None):
        return None

    def get_config(self):
        config = super().get_config()
        config.update({"divisor": self.divisor, "rounding": self.rounding})
        return config

"""Per-video, per-class min-max normalisation of a class activation sequence over valid segments.

W-TALC's detection threshold, max − ½ (max − min), is 0.5 on (v − min) / (max − min); BaS-Net's
official test code thresholds (v − max(min, 0)) / (max(max, 0) − max(min, 0)). Both are this
normalisation (`rectify` False / True), so each method's own rule is a threshold on its "cas".
"""

import keras
from keras import ops

from tfwsar.layers.attention_pooling import valid_segments


def temporal_minmax(values, mask=None, rectify=False):
    """`values` `[B, T, C]` rescaled per (video, class) by its range over the valid segments.

        rectify=False:  u = (v − lo) / (hi − lo),      lo, hi = min, max of v   (W-TALC)
        rectify=True:   u = (v − lo⁺) / (hi⁺ − lo⁺),   lo⁺ = max(lo, 0), hi⁺ = max(hi, 0),
                        clipped below at 0                                        (BaS-Net)

    A class with no range (hi = lo, or hi⁺ = lo⁺) gives u = 0 (W-TALC) or u = max(v, 0) (BaS-Net's
    code divides by 1 then). u lies in [0, 1] and is 0 at padding. BaS-Net's code leaves u < 0 where
    v < 0; clipping at 0 changes none of its detections (its thresholds are ≥ 0 and values below
    a threshold are zeroed before scoring).

    Args:
        values: `[B, T, C]`.
        mask: `[B, T]` 1 or True = valid segment (None: all valid).
        rectify: False (W-TALC) or True (BaS-Net).

    Returns:
        `[B, T, C]`.
    """
    values = ops.convert_to_tensor(values)
    valid = ops.expand_dims(valid_segments(values, mask), -1)  # [B, T, 1]
    largest = ops.convert_to_tensor(3e38, dtype=values.dtype)
    low = ops.min(ops.where(valid, values, largest), axis=1, keepdims=True)
    high = ops.max(ops.where(valid, values, -largest), axis=1, keepdims=True)
    if rectify:
        low, high = ops.relu(low), ops.relu(high)
        spread = high - low
        spread = ops.where(spread > 0, spread, ops.ones_like(spread))
        scaled = ops.relu((values - low) / spread)
    else:
        spread = high - low
        has_range = spread > 0
        scaled = ops.where(
            has_range, (values - low) / ops.where(has_range, spread, ops.ones_like(spread)), 0.0
        )
    return ops.where(valid, scaled, ops.zeros_like(scaled))


@keras.saving.register_keras_serializable(package="tfwsar")
class TemporalMinMaxNormalization(keras.layers.Layer):
    """`temporal_minmax` as a layer: `layer(values, mask=mask)`, `[B, T, C]` → `[B, T, C]`.

    Args:
        rectify: False: (v − min) / (max − min) (W-TALC); True: BaS-Net's rectified range.
        **kwargs: base `keras.layers.Layer` arguments.
    """

    def __init__(self, rectify=False, **kwargs):
        super().__init__(**kwargs)
        self.rectify = bool(rectify)

    def call(self, inputs, mask=None):
        return temporal_minmax(inputs, mask, rectify=self.rectify)

    def compute_mask(self, inputs, mask=None):
        return None

    def get_config(self):
        config = super().get_config()
        config.update({"rectify": self.rectify})
        return config

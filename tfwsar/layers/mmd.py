"""Maximum mean discrepancy as a Keras layer: TSRNet's knowledge-transfer term in a model.

The value is computed by `tfwsar.losses.mmd_squared`, the same function the training loop calls
(one implementation, two doors); this layer adds `weight · MMD²` to the model's losses.
"""

import keras
from keras import ops

from tfwsar import losses


def _rows(values, mask):
    """`[..., D]` → rows `[R, D]` and weights `[R]` (or None)."""
    feature_dim = ops.shape(values)[-1]
    rows = ops.reshape(values, (-1, feature_dim))
    weights = None if mask is None else ops.reshape(ops.cast(mask, rows.dtype), (-1,))
    return rows, weights


@keras.saving.register_keras_serializable(package="tfwsar")
class MaximumMeanDiscrepancy(keras.layers.Layer):
    """Adds `weight · MMD²(x, y)` to the model's losses and returns MMD².

        MMD² = Σ_ij p_i p_j k(x_i, x_j) + Σ_ij q_i q_j k(y_i, y_j) − 2 Σ_ij p_i q_j k(x_i, y_j)

    with a sum of Gaussian kernels (see `tfwsar.losses.mmd_squared` for the bandwidths). In TSRNet,
    L_KT = MMD²(FC1(T), FC1(U)) + MMD²(FC2(T), FC2(U)): x are trimmed-clip features, y untrimmed.

    Call with `layer([x, y])` or `layer([x, y], mask=[x_mask, y_mask])`. `x` and `y` are rows
    `[N, D]` or segment sequences `[B, T, D]` (flattened to rows); each mask has the leading shape
    of its input (1 = valid, 0 = padding, which then contributes nothing). Keras masks attached to
    `x` and `y` are used when no `mask` is passed.

    Args:
        weight: float, multiplier of the value added with `add_loss`.
        bandwidths: multipliers of the base bandwidth, one Gaussian kernel each.
        base_bandwidth: fixed base bandwidth γ, or None for the data-driven one.
        **kwargs: base `keras.layers.Layer` arguments.

    Returns:
        Scalar MMD² (unweighted).
    """

    def __init__(
        self,
        weight=1.0,
        bandwidths=losses.DEFAULT_MMD_BANDWIDTHS,
        base_bandwidth=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.weight = float(weight)
        self.bandwidths = tuple(float(scale) for scale in bandwidths)
        self.base_bandwidth = None if base_bandwidth is None else float(base_bandwidth)

    def call(self, inputs, mask=None):
        x, y = inputs
        x_mask, y_mask = (None, None) if mask is None else mask
        x_rows, x_weights = _rows(x, x_mask)
        y_rows, y_weights = _rows(y, y_mask)
        value = losses.mmd_squared(
            x_rows,
            y_rows,
            bandwidths=self.bandwidths,
            x_weights=x_weights,
            y_weights=y_weights,
            base_bandwidth=self.base_bandwidth,
        )
        self.add_loss(self.weight * value)
        return value

    def compute_mask(self, inputs, mask=None):
        return None

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "weight": self.weight,
                "bandwidths": list(self.bandwidths),
                "base_bandwidth": self.base_bandwidth,
            }
        )
        return config

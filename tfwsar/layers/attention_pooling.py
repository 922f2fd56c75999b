"""Self-attentive pooling over the valid segments of a video (TSRNet's temporal attention).

Zhang et al. (AAAI 2019) pool a video's segment features with the structured self-attention of
Lin et al. (2017) restricted to one attention hop:

    a = softmax_T(w2 · tanh(W1 Xᵀ)),    m = Σ_t a_t x_t

X ∈ R^{T×D} are the segment features, W1 ∈ R^{d_a×D}, w2 ∈ R^{d_a}. The softmax runs over the valid
segments only: padded segments get attention exactly 0 and change nothing.
"""

import keras
from keras import ops


def valid_segments(inputs, mask):
    """Boolean `[B, T]`: True where a segment is real. `mask` is None, boolean or 0/1 numbers."""
    if mask is None:
        return ops.ones(ops.shape(inputs)[:2], dtype="bool")
    return ops.greater(ops.cast(mask, inputs.dtype), 0)


def masked_softmax(logits, valid):
    """Softmax over the last axis restricted to `valid` entries; exactly 0 elsewhere.

    Args:
        logits: `[B, T]` float.
        valid: `[B, T]` bool.

    Returns:
        `[B, T]`: each row sums to 1 over its valid entries; a row with no valid entry is all 0
        (no NaN in the value or its gradient).
    """
    lowest = ops.convert_to_tensor(-1e9, dtype=logits.dtype)
    row_max = ops.max(ops.where(valid, logits, lowest), axis=-1, keepdims=True)
    row_max = ops.stop_gradient(row_max)
    # Invalid entries are replaced by 0 *before* exp, so no inf is ever formed (its gradient
    # would turn into NaN through `where`).
    shifted = ops.where(valid, logits - row_max, ops.zeros_like(logits))
    exponentials = ops.where(valid, ops.exp(shifted), ops.zeros_like(logits))
    total = ops.sum(exponentials, axis=-1, keepdims=True)
    safe_total = ops.where(total > 0, total, ops.ones_like(total))
    return exponentials / safe_total


@keras.saving.register_keras_serializable(package="tfwsar")
class SelfAttentionPooling(keras.layers.Layer):
    """Structured self-attention pooling over valid segments (Lin et al. 2017, one hop).

        e = w2 · tanh(W1 Xᵀ (+ b1))          attention logits, [B, T]
        a = softmax_T(e)  over valid t       attention, [B, T], 0 at padding
        m = Σ_t a_t x_t                      pooled feature, [B, D]

    Call with `layer(features, mask=mask)`; the mask is `[B, T]` (1 or True = valid segment). A
    Keras mask attached to `features` is used when no `mask` is passed; with neither, every segment
    is valid. Rows whose segments are all padding give attention 0 and a pooled vector 0.

    Args:
        attention_units: int, rows of W1 (Lin et al.'s d_a).
        use_bias: bool, add a bias b1 inside the tanh (Lin et al. have none).
        return_logits: bool, also return the pre-softmax logits e (0 at padding), which the
            STPN-style sparsity term `losses.sparsity_loss(kind="sigmoid_l1")` needs.
        kernel_initializer: initializer for W1 and w2.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Returns:
        `(pooled [B, D], attention [B, T])`, plus `attention_logits [B, T]` when `return_logits`.
    """

    def __init__(
        self,
        attention_units,
        use_bias=False,
        return_logits=False,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.attention_units = int(attention_units)
        self.use_bias = bool(use_bias)
        self.return_logits = bool(return_logits)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape):
        feature_dim = input_shape[-1]
        # W1ᵀ: [D, d_a]
        self.hidden_kernel = self.add_weight(
            name="hidden_kernel",
            shape=(feature_dim, self.attention_units),
            initializer=self.kernel_initializer,
        )
        self.hidden_bias = None
        if self.use_bias:
            self.hidden_bias = self.add_weight(
                name="hidden_bias", shape=(self.attention_units,), initializer="zeros"
            )
        # w2: [d_a, 1]
        self.score_kernel = self.add_weight(
            name="score_kernel",
            shape=(self.attention_units, 1),
            initializer=self.kernel_initializer,
        )

    def call(self, inputs, mask=None):
        valid = valid_segments(inputs, mask)
        # Padded features are zeroed first so that whatever they hold cannot reach a gradient.
        features = ops.where(ops.expand_dims(valid, -1), inputs, ops.zeros_like(inputs))
        hidden = ops.matmul(features, self.hidden_kernel)  # W1 Xᵀ, [B, T, d_a]
        if self.hidden_bias is not None:
            hidden = hidden + self.hidden_bias
        attention_logits = ops.squeeze(
            ops.matmul(ops.tanh(hidden), self.score_kernel), axis=-1
        )  # e = w2 · tanh(W1 Xᵀ), [B, T]
        attention_logits = ops.where(valid, attention_logits, ops.zeros_like(attention_logits))
        attention = masked_softmax(attention_logits, valid)  # a
        pooled = ops.einsum("bt,btd->bd", attention, features)  # m = Σ_t a_t x_t
        if self.return_logits:
            return pooled, attention, attention_logits
        return pooled, attention

    def compute_mask(self, inputs, mask=None):
        # Pooling removes the time axis, so no mask goes downstream.
        return None

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "attention_units": self.attention_units,
                "use_bias": self.use_bias,
                "return_logits": self.return_logits,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config

"""The Keras layers: self-attention pooling, mean pooling, MMD, top-k pooling, sigmoid attention,
min-max normalisation."""

import numpy as np
import pytest
import tensorflow as tf
import keras

from tfwsar import losses
from tfwsar.layers import (
    MaximumMeanDiscrepancy,
    MeanPooling,
    SelfAttentionPooling,
    SigmoidAttention,
    TemporalMinMaxNormalization,
    TopKTemporalPooling,
)
from tfwsar.layers.minmax_normalization import temporal_minmax

BATCH, SEGMENTS, FEATURES = 3, 6, 5


@pytest.fixture
def features_and_mask():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(BATCH, SEGMENTS, FEATURES)).astype("float32")
    mask = np.ones((BATCH, SEGMENTS), "float32")
    mask[1, 4:] = 0  # 4 valid segments
    mask[2, 1:] = 0  # 1 valid segment
    features[mask == 0] = 100.0  # padding holds junk that must not matter
    return features, mask


def reference_attention(layer, features, mask):
    """a = softmax over valid t of w2 · tanh(W1 xᵀ), computed in numpy from the layer's weights."""
    hidden = features @ layer.hidden_kernel.numpy()
    if layer.use_bias:
        hidden = hidden + layer.hidden_bias.numpy()
    logits = np.tanh(hidden) @ layer.score_kernel.numpy()[:, 0]
    logits = np.where(mask > 0, logits, -np.inf)
    exponentials = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return exponentials / exponentials.sum(axis=-1, keepdims=True)


def test_attention_follows_the_equation_over_valid_segments_only(features_and_mask):
    features, mask = features_and_mask
    layer = SelfAttentionPooling(attention_units=4)
    pooled, attention = layer(features, mask=mask)
    expected = reference_attention(layer, features, mask)
    np.testing.assert_allclose(attention.numpy(), expected, rtol=1e-5, atol=1e-7)
    assert np.all(attention.numpy()[mask == 0] == 0.0)
    np.testing.assert_allclose(attention.numpy().sum(axis=-1), 1.0, rtol=1e-6)
    clean = np.where(mask[..., None] > 0, features, 0.0)
    np.testing.assert_allclose(
        pooled.numpy(), np.einsum("bt,btd->bd", expected, clean), rtol=1e-5, atol=1e-6
    )


def test_the_only_valid_segment_gets_all_the_attention(features_and_mask):
    features, mask = features_and_mask
    pooled, attention = SelfAttentionPooling(attention_units=4)(features, mask=mask)
    np.testing.assert_allclose(attention.numpy()[2], [1, 0, 0, 0, 0, 0])
    np.testing.assert_allclose(pooled.numpy()[2], features[2, 0], rtol=1e-6)


def test_return_logits_gives_the_pre_softmax_scores_zero_at_padding(features_and_mask):
    features, mask = features_and_mask
    layer = SelfAttentionPooling(attention_units=4, return_logits=True)
    _, attention, logits = layer(features, mask=mask)
    assert np.all(logits.numpy()[mask == 0] == 0.0)
    row = logits.numpy()[1, :4]
    np.testing.assert_allclose(
        attention.numpy()[1, :4], np.exp(row) / np.exp(row).sum(), rtol=1e-5
    )


def test_use_bias_adds_a_trainable_bias_inside_the_tanh(features_and_mask):
    features, mask = features_and_mask
    layer = SelfAttentionPooling(attention_units=4, use_bias=True)
    layer(features, mask=mask)
    assert [weight.name for weight in layer.trainable_weights] == [
        "hidden_kernel",
        "hidden_bias",
        "score_kernel",
    ]
    layer.hidden_bias.assign(np.linspace(-2.0, 2.0, 4).astype("float32"))
    _, attention = layer(features, mask=mask)
    np.testing.assert_allclose(
        attention.numpy(), reference_attention(layer, features, mask), rtol=1e-5, atol=1e-7
    )


def test_a_keras_mask_from_upstream_is_used_like_an_explicit_mask(features_and_mask):
    features, mask = features_and_mask
    features = np.where(mask[..., None] > 0, features, 0.0).astype("float32")
    inputs = keras.Input(shape=(None, FEATURES))
    layer = SelfAttentionPooling(attention_units=4)
    pooled, attention = layer(keras.layers.Masking(mask_value=0.0)(inputs))
    model = keras.Model(inputs, [pooled, attention])
    implicit_pooled, implicit_attention = model(features)
    explicit_pooled, explicit_attention = layer(features, mask=mask)
    np.testing.assert_allclose(implicit_attention.numpy(), explicit_attention.numpy(), rtol=1e-6)
    np.testing.assert_allclose(implicit_pooled.numpy(), explicit_pooled.numpy(), rtol=1e-6)
    assert np.all(implicit_attention.numpy()[mask == 0] == 0.0)


def test_without_any_mask_every_segment_is_valid(features_and_mask):
    features, _ = features_and_mask
    layer = SelfAttentionPooling(attention_units=4)
    _, attention = layer(features)
    assert np.all(attention.numpy() > 0)
    np.testing.assert_allclose(
        attention.numpy(),
        reference_attention(layer, features, np.ones((BATCH, SEGMENTS))),
        rtol=1e-5,
    )


def test_rows_of_only_padding_give_zeros_and_finite_gradients(features_and_mask):
    features, mask = features_and_mask
    mask[0] = 0.0
    layer = SelfAttentionPooling(attention_units=4)
    features = tf.constant(features)
    with tf.GradientTape() as tape:
        tape.watch(features)
        pooled, attention = layer(features, mask=mask)
        total = tf.reduce_sum(pooled) + tf.reduce_sum(tf.square(attention))
    gradients = tape.gradient(total, [features] + layer.trainable_weights)
    assert np.all(attention.numpy()[0] == 0.0) and np.all(pooled.numpy()[0] == 0.0)
    assert all(np.all(np.isfinite(g.numpy())) for g in gradients)
    assert np.all(gradients[0].numpy()[mask == 0] == 0.0)  # padding gets no gradient


def test_symbolic_and_eager_calls_agree(features_and_mask):
    features, mask = features_and_mask
    layer = SelfAttentionPooling(attention_units=4)
    feature_input = keras.Input(shape=(None, FEATURES))
    mask_input = keras.Input(shape=(None,))
    pooled, attention = layer(feature_input, mask=mask_input)
    assert tuple(pooled.shape) == (None, FEATURES) and tuple(attention.shape) == (None, None)
    model = keras.Model([feature_input, mask_input], [pooled, attention])
    symbolic = model([features, mask])
    eager = layer(features, mask=mask)
    for from_model, from_layer in zip(symbolic, eager):
        np.testing.assert_array_equal(from_model.numpy(), from_layer.numpy())


@pytest.mark.parametrize(
    "make_layer",
    [
        lambda: SelfAttentionPooling(attention_units=4, use_bias=True, return_logits=True),
        lambda: MeanPooling(return_logits=True),
        lambda: TopKTemporalPooling(divisor=3, rounding="floor"),
        lambda: SigmoidAttention(hidden_units=3, negative_slope=0.2, return_logits=True),
        lambda: TemporalMinMaxNormalization(rectify=True),
    ],
    ids=["attention", "mean", "topk", "sigmoid_attention", "minmax"],
)
def test_keras_file_round_trip_gives_exactly_equal_outputs(make_layer, features_and_mask, tmp_path):
    features, mask = features_and_mask
    feature_input = keras.Input(shape=(None, FEATURES))
    mask_input = keras.Input(shape=(None,))
    model = keras.Model([feature_input, mask_input], make_layer()(feature_input, mask=mask_input))
    path = tmp_path / "pooling.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    before = keras.tree.flatten(model([features, mask]))
    after = keras.tree.flatten(restored([features, mask]))
    assert len(before) == len(after)
    for one, other in zip(before, after):
        np.testing.assert_array_equal(one.numpy(), other.numpy())


def test_config_keeps_every_constructor_argument():
    layer = SelfAttentionPooling(attention_units=7, use_bias=True, return_logits=True, name="pool")
    clone = SelfAttentionPooling.from_config(layer.get_config())
    assert (clone.attention_units, clone.use_bias, clone.return_logits, clone.name) == (
        7,
        True,
        True,
        "pool",
    )
    assert MeanPooling.from_config(MeanPooling(return_logits=True).get_config()).return_logits


def test_mean_pooling_is_uniform_over_valid_segments(features_and_mask):
    features, mask = features_and_mask
    pooled, attention, logits = MeanPooling(return_logits=True)(features, mask=mask)
    np.testing.assert_allclose(attention.numpy()[1], [0.25] * 4 + [0, 0])
    np.testing.assert_allclose(pooled.numpy()[1], features[1, :4].mean(axis=0), rtol=1e-6)
    assert np.all(logits.numpy() == 0.0)
    empty = MeanPooling()(features, mask=np.zeros_like(mask))
    assert np.all(empty[0].numpy() == 0.0) and np.all(empty[1].numpy() == 0.0)


def test_mmd_layer_returns_the_function_value_and_adds_weighted_loss(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 4, 3)).astype("float32")
    y = (rng.normal(size=(2, 5, 3)) + 1.0).astype("float32")
    x_mask = np.array([[1, 1, 1, 0], [1, 1, 0, 0]], "float32")
    y_mask = np.ones((2, 5), "float32")
    inputs = [keras.Input((None, 3)), keras.Input((None, 3))]
    inputs += [keras.Input((None,)), keras.Input((None,))]
    value = MaximumMeanDiscrepancy(weight=0.5, name="mmd")(inputs[:2], mask=inputs[2:])
    model = keras.Model(inputs, value)

    output = model([x, y, x_mask, y_mask])
    expected = losses.mmd_squared(
        x.reshape(-1, 3),
        y.reshape(-1, 3),
        x_weights=x_mask.reshape(-1),
        y_weights=y_mask.reshape(-1),
    )
    assert float(expected) > 0.01
    np.testing.assert_allclose(output.numpy(), expected.numpy(), rtol=1e-6)
    assert len(model.losses) == 1
    np.testing.assert_allclose(model.losses[0].numpy(), 0.5 * expected.numpy(), rtol=1e-6)

    path = tmp_path / "mmd.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_array_equal(restored([x, y, x_mask, y_mask]).numpy(), output.numpy())
    assert restored.get_layer("mmd").weight == 0.5


def test_mmd_layer_ignores_masked_rows():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4, 3)).astype("float32")
    y = rng.normal(size=(5, 3)).astype("float32")
    layer = MaximumMeanDiscrepancy(base_bandwidth=2.0)
    padded_x = np.concatenate([x, np.full((3, 3), 50.0, "float32")])
    with_padding = layer([padded_x, y], mask=[np.array([1, 1, 1, 1, 0, 0, 0], "float32"), None])
    without_padding = layer([x, y])
    np.testing.assert_allclose(with_padding.numpy(), without_padding.numpy(), rtol=1e-6)
    config = MaximumMeanDiscrepancy.from_config(layer.get_config()).get_config()
    assert config["base_bandwidth"] == 2.0
    assert tuple(config["bandwidths"]) == losses.DEFAULT_MMD_BANDWIDTHS


# --- Layers of the baselines: top-k pooling, sigmoid attention, min-max normalisation ---


def test_topk_pooling_layer_is_the_loss_function_and_ignores_padding(features_and_mask):
    features, mask = features_and_mask  # padding holds 100
    pooled = TopKTemporalPooling(divisor=2, rounding="ceil")(features, mask=mask).numpy()
    np.testing.assert_array_equal(
        pooled, losses.topk_temporal_mean(features, mask, divisor=2, rounding="ceil").numpy()
    )
    top_two = -np.sort(-features[1, :4], axis=0)[:2].mean(axis=0)  # 4 valid: k = 2
    np.testing.assert_allclose(pooled[1], top_two, rtol=1e-6)
    np.testing.assert_allclose(pooled[2], features[2, 0], rtol=1e-6)  # 1 valid: k = 1
    with pytest.raises(ValueError, match="rounding"):
        TopKTemporalPooling(rounding="round")


def test_sigmoid_attention_follows_the_equation_and_is_zero_at_padding(features_and_mask):
    features, mask = features_and_mask
    layer = SigmoidAttention(hidden_units=4, negative_slope=0.01, return_logits=True)
    weights, logits = layer(features, mask=mask)
    hidden = features @ layer.hidden.kernel.numpy() + layer.hidden.bias.numpy()
    hidden = np.where(hidden > 0, hidden, 0.01 * hidden)  # LeakyReLU
    expected_logits = (hidden @ layer.score.kernel.numpy())[..., 0] + layer.score.bias.numpy()[0]
    expected = 1.0 / (1.0 + np.exp(-expected_logits))
    np.testing.assert_allclose(weights.numpy()[mask > 0], expected[mask > 0], rtol=1e-5)
    assert np.all(weights.numpy()[mask == 0] == 0.0) and np.all(logits.numpy()[mask == 0] == 0.0)
    junk = features.copy()
    junk[mask == 0] = -7.0
    np.testing.assert_array_equal(layer(junk, mask=mask)[0].numpy(), weights.numpy())


def test_minmax_normalisation_by_hand():
    values = np.array([[[2.0, -3.0], [4.0, -1.0], [3.0, -2.0], [50.0, 50.0]]], "float32")
    mask = np.array([[1, 1, 1, 0]], "float32")
    # W-TALC: (v − min) / (max − min) per class over valid segments.
    plain = temporal_minmax(values, mask).numpy()
    np.testing.assert_allclose(plain[0, :, 0], [0.0, 1.0, 0.5, 0.0])
    np.testing.assert_allclose(plain[0, :, 1], [0.0, 1.0, 0.5, 0.0])
    # BaS-Net: lo⁺ = max(min, 0), hi⁺ = max(max, 0); class 0: (v − 2) / 2; class 1: no positive
    # range → max(v, 0) = 0.
    rectified = TemporalMinMaxNormalization(rectify=True)(values, mask=mask).numpy()
    np.testing.assert_allclose(rectified[0, :, 0], [0.0, 1.0, 0.5, 0.0])
    np.testing.assert_allclose(rectified[0, :, 1], [0.0, 0.0, 0.0, 0.0])
    mixed = np.array([[[-1.0], [3.0], [1.0]]], "float32")  # lo⁺ = 0, hi⁺ = 3; −1 clips to 0
    mixed_scaled = temporal_minmax(mixed, rectify=True).numpy()[0, :, 0]
    np.testing.assert_allclose(mixed_scaled, [0.0, 1.0, 1 / 3], rtol=1e-6)
    constant = temporal_minmax(np.ones((1, 3, 1), "float32")).numpy()
    assert np.all(constant == 0.0)


def test_baseline_layer_configs_keep_every_constructor_argument():
    topk = TopKTemporalPooling.from_config(TopKTemporalPooling(5, "floor", name="k").get_config())
    assert (topk.divisor, topk.rounding, topk.name) == (5, "floor", "k")
    attention = SigmoidAttention.from_config(
        SigmoidAttention(7, negative_slope=0.01, return_logits=True).get_config()
    )
    settings = (attention.hidden_units, attention.negative_slope, attention.return_logits)
    assert settings == (7, 0.01, True)
    assert TemporalMinMaxNormalization.from_config(
        TemporalMinMaxNormalization(rectify=True).get_config()
    ).rectify

"""TSRNet's loss terms against hand-computed numbers, and the composed per-stream loss."""

import math

import numpy as np
import pytest
import tensorflow as tf

from tfwsar import losses
from tfwsar.layers.attention_pooling import masked_softmax


def test_classification_loss_is_cross_entropy_to_normalised_labels_by_hand():
    labels = [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]
    logits = [[1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [5.0, 1.0, 0.0]]
    log_normaliser = math.log(math.exp(1) + math.exp(2) + math.exp(3))
    expected_two_labels = -0.5 * ((1 - log_normaliser) + (3 - log_normaliser))
    loss = losses.multilabel_classification_loss(labels, logits).numpy()
    np.testing.assert_allclose(loss, [expected_two_labels, math.log(3), 0.0], rtol=1e-6)


def test_classification_loss_is_smallest_when_probability_splits_over_the_labels():
    labels = [[1.0, 1.0, 0.0]] * 2
    split = losses.multilabel_classification_loss(labels, [[4.0, 4.0, -4.0], [8.0, 0.0, -4.0]])
    assert split.numpy()[0] < split.numpy()[1]


def test_smoothness_of_three_segments_by_hand():
    attention = [[0.2, 0.5, 0.3]]
    # (0.2 − 0.5)² + (0.5 − 0.3)² = 0.09 + 0.04
    np.testing.assert_allclose(losses.smoothness_loss(attention).numpy(), [0.13], rtol=1e-6)


def test_smoothness_skips_pairs_that_touch_padding():
    attention = [[0.2, 0.5, 0.3, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 1.0]]
    mask = [[1, 1, 1, 0, 0], [0, 0, 0, 0, 1]]
    loss = losses.smoothness_loss(attention, mask).numpy()
    np.testing.assert_allclose(loss, [0.13, 0.0], rtol=1e-6)
    np.testing.assert_allclose(losses.smoothness_loss(attention).numpy(), [0.22, 1.0], rtol=1e-6)


def test_entropy_sparsity_by_hand():
    attention = [[0.25, 0.25, 0.25, 0.25, 0.0], [1.0, 0.0, 0.0, 0.0, 0.0]]
    mask = [[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]]
    loss = losses.sparsity_loss(attention, mask, kind="entropy").numpy()
    np.testing.assert_allclose(loss, [math.log(4), 0.0], atol=1e-6)


def test_sigmoid_l1_sparsity_is_mean_sigmoid_of_logits_over_valid_segments():
    logits = [[0.0, math.log(3.0), 50.0]]  # σ = 0.5, 0.75, (padding)
    loss = losses.sparsity_loss([[0.4, 0.6, 0.0]], [[1, 1, 0]], kind="sigmoid_l1", logits=logits)
    np.testing.assert_allclose(loss.numpy(), [0.625], rtol=1e-6)
    with pytest.raises(ValueError, match="logits"):
        losses.sparsity_loss([[0.4, 0.6]], kind="sigmoid_l1")
    with pytest.raises(ValueError, match="unknown sparsity kind"):
        losses.sparsity_loss([[0.4, 0.6]], kind="l2")


def _attention_gradient(kind, logits, mask):
    logits = tf.Variable(logits)
    with tf.GradientTape() as tape:
        attention = masked_softmax(logits, tf.constant(mask) > 0)
        loss = tf.reduce_sum(losses.sparsity_loss(attention, mask, kind=kind, logits=logits))
    return tape.gradient(loss, logits).numpy()


def test_literal_l1_of_softmax_attention_is_constant_with_zero_gradient():
    logits = np.array([[0.3, -1.0, 2.0, 0.5]], "float32")
    mask = np.ones_like(logits)
    attention = masked_softmax(tf.constant(logits), tf.constant(mask) > 0)
    literal = losses.sparsity_loss(attention, mask, kind="literal")
    np.testing.assert_allclose(literal, [1.0], rtol=1e-6)
    np.testing.assert_allclose(_attention_gradient("literal", logits, mask), 0.0, atol=1e-7)


@pytest.mark.parametrize("kind", ["entropy", "sigmoid_l1"])
def test_shipped_sparsity_terms_have_a_gradient_on_the_attention_logits(kind):
    logits = np.array([[0.3, -1.0, 2.0, 0.5, 0.0]], "float32")
    mask = np.array([[1, 1, 1, 1, 0]], "float32")
    gradient = _attention_gradient(kind, logits, mask)
    assert np.abs(gradient[0, :4]).max() > 1e-3
    assert gradient[0, 4] == 0.0  # padding is untouched


def test_default_sparsity_makes_attention_sharper_under_gradient_descent():
    logits = tf.Variable([[0.3, -1.0, 0.8, 0.5, 0.0, 0.0]])
    mask = tf.constant([[1.0, 1.0, 1.0, 1.0, 1.0, 0.0]])

    def attention():
        return masked_softmax(logits, mask > 0)

    before = attention().numpy()
    for _ in range(20):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(losses.sparsity_loss(attention(), mask))  # default kind
        logits.assign_sub(0.5 * tape.gradient(loss, logits))
    after = attention().numpy()
    np.testing.assert_array_equal(
        losses.sparsity_loss(after, mask), losses.sparsity_loss(after, mask, kind="entropy")
    )
    assert after.max() > before.max() + 0.1
    assert after.argmax() == before.argmax()  # the leading segment wins
    entropy = lambda a: -np.sum(a[a > 0] * np.log(a[a > 0]))  # noqa: E731
    assert entropy(after) < entropy(before) - 0.2
    assert after[0, 5] == 0.0


def test_mmd_of_a_sample_with_itself_is_zero():
    x = np.random.default_rng(0).normal(size=(6, 4)).astype("float32")
    assert float(losses.mmd_squared(x, x)) == 0.0
    assert float(losses.mmd_squared(x, x, base_bandwidth=1.0)) == 0.0


def test_mmd_by_hand_with_a_fixed_bandwidth():
    x = [[0.0], [1.0]]
    y = [[2.0]]
    # k(u, v) = exp(−(u − v)²); Kxx term (2 + 2e⁻¹)/4, Kyy term 1, Kxy term (e⁻⁴ + e⁻¹)/2
    expected = 0.5 + 0.5 * math.exp(-1) + 1.0 - (math.exp(-4) + math.exp(-1))
    value = losses.mmd_squared(x, y, bandwidths=(1.0,), base_bandwidth=1.0)
    np.testing.assert_allclose(float(value), expected, rtol=1e-6)
    # Two kernels add up: s = 1 and s = 2 (exp(−d/2)).
    second = 0.5 + 0.5 * math.exp(-0.5) + 1.0 - (math.exp(-2) + math.exp(-0.5))
    value = losses.mmd_squared(x, y, bandwidths=(1.0, 2.0), base_bandwidth=1.0)
    np.testing.assert_allclose(float(value), expected + second, rtol=1e-6)


def test_mmd_base_bandwidth_is_the_mean_squared_distance_of_distinct_pooled_rows():
    x = [[0.0], [1.0]]
    y = [[2.0]]
    # pooled pairs: (0,1) → 1, (0,2) → 4, (1,2) → 1; mean 2
    adaptive = losses.mmd_squared(x, y, bandwidths=(0.5, 1.0))
    fixed = losses.mmd_squared(x, y, bandwidths=(0.5, 1.0), base_bandwidth=2.0)
    np.testing.assert_allclose(float(adaptive), float(fixed), rtol=1e-6)


def test_mmd_grows_with_a_shift_between_the_samples():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(20, 3)).astype("float32")
    y = rng.normal(size=(20, 3)).astype("float32")
    values = [float(losses.mmd_squared(x, y + shift)) for shift in (0.0, 0.5, 1.0, 2.0, 4.0)]
    assert all(later > earlier for earlier, later in zip(values, values[1:])), values


def test_mmd_padding_rows_with_zero_weight_change_nothing():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(5, 3)).astype("float32")
    y = rng.normal(size=(4, 3)).astype("float32") + 1.0
    padded_x = np.concatenate([x, rng.normal(size=(3, 3)).astype("float32") * 30])
    padded_y = np.concatenate([np.zeros((2, 3), "float32"), y])
    plain = float(losses.mmd_squared(x, y))
    masked = float(
        losses.mmd_squared(
            padded_x, padded_y, x_weights=[1] * 5 + [0] * 3, y_weights=[0, 0] + [1] * 4
        )
    )
    np.testing.assert_allclose(masked, plain, rtol=1e-5)


def test_mmd_with_an_empty_side_is_zero_and_gradients_are_finite():
    x = tf.Variable(np.random.default_rng(5).normal(size=(4, 3)).astype("float32"))
    y = tf.constant(np.ones((3, 3), "float32"))
    assert float(losses.mmd_squared(x, y, y_weights=[0.0, 0.0, 0.0])) == 0.0
    with tf.GradientTape() as tape:
        value = losses.mmd_squared(x, y)
    gradient = tape.gradient(value, x).numpy()
    assert np.all(np.isfinite(gradient)) and np.abs(gradient).max() > 0
    assert float(losses.mmd_squared(x, y)) == float(value)  # deterministic
    with pytest.raises(ValueError, match="base_bandwidth"):
        losses.mmd_squared(x, y, base_bandwidth=0.0)


def test_segment_rows_keep_all_segments_with_mask_weights():
    features = np.arange(2 * 3 * 2, dtype="float32").reshape(2, 3, 2)
    rows, weights = losses.segment_rows(features, [[1, 1, 0], [1, 0, 0]])
    np.testing.assert_array_equal(rows.numpy(), features.reshape(6, 2))
    np.testing.assert_array_equal(weights.numpy(), [1, 1, 0, 1, 0, 0])


def test_segment_rows_pick_evenly_spaced_valid_segments():
    features = np.arange(3 * 6, dtype="float32").reshape(3, 6, 1)  # value = 6·video + segment
    mask = [[1, 1, 1, 1, 0, 0], [1, 0, 1, 1, 0, 1], [0, 0, 0, 0, 0, 0]]
    rows, weights = losses.segment_rows(features, mask, segments_per_video=2)
    # 4 valid segments, k = 2: ranks ⌊0.25·4⌋ = 1 and ⌊0.75·4⌋ = 3
    np.testing.assert_array_equal(rows.numpy()[:4, 0], [1, 3, 6 + 2, 6 + 5])
    np.testing.assert_array_equal(weights.numpy(), [1, 1, 1, 1, 0, 0])


@pytest.fixture
def step_inputs():
    rng = np.random.default_rng(6)

    def outputs(batch_size, segments):
        attention_logits = rng.normal(size=(batch_size, segments)).astype("float32")
        return {
            "logits": rng.normal(size=(batch_size, 3)).astype("float32"),
            "attention": tf.nn.softmax(attention_logits).numpy(),
            "attention_logits": attention_logits,
            "fc1": rng.normal(size=(batch_size, segments, 4)).astype("float32"),
            "fc2": rng.normal(size=(batch_size, segments, 2)).astype("float32") + 1.0,
        }

    labels = np.eye(3, dtype="float32")
    untrimmed_batch = {"labels": labels[[0, 2]], "mask": np.ones((2, 5), "float32")}
    trimmed_batch = {"labels": labels[[1, 1]], "mask": np.ones((2, 3), "float32")}
    return outputs(2, 5), untrimmed_batch, outputs(2, 3), trimmed_batch


def _stream_loss(step_inputs, variant, **overrides):
    outputs, batch, trimmed_outputs, trimmed_batch = step_inputs
    arguments = dict(
        variant=variant,
        alpha=2.0,
        beta=0.5,
        global_batch_size=2,
        num_replicas=1,
        trimmed_outputs=trimmed_outputs,
        trimmed_batch=trimmed_batch,
    )
    arguments.update(overrides)
    terms = losses.stream_loss(outputs, batch, **arguments)
    return {name: float(value) for name, value in terms.items()}


def test_stream_loss_terms_follow_the_variant(step_inputs):
    outputs, batch, trimmed_outputs, trimmed_batch = step_inputs
    two_stream = _stream_loss(step_inputs, "two_stream")
    srnet = _stream_loss(step_inputs, "srnet")
    tsrnet = _stream_loss(step_inputs, "tsrnet")
    no_fc2 = _stream_loss(step_inputs, "tsrnet_no_fc2")

    classification = losses.multilabel_classification_loss(batch["labels"], outputs["logits"])
    assert two_stream["classification"] == pytest.approx(float(tf.reduce_mean(classification)))
    assert two_stream["total"] == pytest.approx(two_stream["classification"])
    for name in ("smoothness", "sparsity", "trimmed_classification", "mmd_fc1", "mmd_fc2"):
        assert two_stream[name] == 0.0

    smoothness = losses.smoothness_loss(outputs["attention"], batch["mask"])
    assert srnet["smoothness"] == pytest.approx(2.0 * float(tf.reduce_mean(smoothness)))
    assert srnet["sparsity"] > 0 and srnet["mmd_fc1"] == 0.0

    expected_fc2 = losses.mmd_squared(
        tf.reshape(trimmed_outputs["fc2"], [-1, 2]), tf.reshape(outputs["fc2"], [-1, 2])
    )
    assert tsrnet["mmd_fc2"] == pytest.approx(float(expected_fc2), rel=1e-5)
    assert tsrnet["mmd_fc1"] > 0 and tsrnet["trimmed_classification"] > 0
    assert no_fc2["mmd_fc2"] == 0.0 and no_fc2["mmd_fc1"] == pytest.approx(tsrnet["mmd_fc1"])
    for terms in (two_stream, srnet, tsrnet, no_fc2):
        parts = sum(value for name, value in terms.items() if name != "total")
        assert terms["total"] == pytest.approx(parts, rel=1e-6)


def test_stream_loss_scales_by_global_batch_and_replicas(step_inputs):
    one = _stream_loss(step_inputs, "tsrnet")
    shared = _stream_loss(step_inputs, "tsrnet", global_batch_size=4, num_replicas=2)
    for name in ("classification", "smoothness", "sparsity", "trimmed_classification"):
        assert shared[name] == pytest.approx(one[name] / 2)  # per-example: sum / global batch
    for name in ("mmd_fc1", "mmd_fc2"):
        assert shared[name] == pytest.approx(one[name] / 2)  # batch-level: / replicas


def test_stream_loss_sparsity_kind_reaches_the_sparsity_term(step_inputs):
    literal = _stream_loss(step_inputs, "srnet", sparsity_kind="literal")
    sigmoid = _stream_loss(step_inputs, "srnet", sparsity_kind="sigmoid_l1")
    assert literal["sparsity"] == pytest.approx(0.5)  # β · 1 per video, averaged
    assert sigmoid["sparsity"] != pytest.approx(literal["sparsity"])


def test_stream_loss_rejects_bad_variants_and_missing_trimmed_inputs(step_inputs):
    with pytest.raises(ValueError, match="unknown variant"):
        _stream_loss(step_inputs, "tsrnet_plus")
    with pytest.raises(ValueError, match="trimmed"):
        _stream_loss(step_inputs, "tsrnet", trimmed_outputs=None)
    assert _stream_loss(step_inputs, "srnet", trimmed_outputs=None)["total"] > 0


def test_stream_loss_is_differentiable_inside_a_tf_function(step_inputs):
    outputs, batch, trimmed_outputs, trimmed_batch = step_inputs
    fc1 = tf.Variable(outputs["fc1"])

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            terms = losses.stream_loss(
                {**outputs, "fc1": fc1},
                batch,
                variant="tsrnet_no_fc2",  # one MMD term and kernel keep the trace short
                alpha=1.0,
                beta=0.1,
                global_batch_size=2,
                trimmed_outputs=trimmed_outputs,
                trimmed_batch=trimmed_batch,
                mmd_bandwidths=(1.0,),
                mmd_segments_per_video=2,
            )
        return terms["total"], tape.gradient(terms["total"], fc1)

    total, gradient = step()
    assert np.isfinite(float(total))
    assert np.abs(gradient.numpy()).max() > 0


# --- Baselines: top-k MIL (W-TALC, BaS-Net), CASL (W-TALC), STPN's and BaS-Net's terms ---


def test_topk_mean_rounds_k_up_or_down_over_valid_segments_only():
    # 9 valid segments: k = ⌈9/8⌉ = 2 (W-TALC), ⌊9/8⌋ = 1 (BaS-Net); the padding's 100 never counts.
    values = np.array([5, 1, 4, 0, 2, 3, 0, 1, 0.5, 100], "float32").reshape(1, 10, 1)
    mask = np.array([[1] * 9 + [0]], "float32")
    ceil = losses.topk_temporal_mean(values, mask, divisor=8, rounding="ceil")
    floor = losses.topk_temporal_mean(values, mask, divisor=8, rounding="floor")
    np.testing.assert_allclose(ceil.numpy(), [[(5.0 + 4.0) / 2]])
    np.testing.assert_allclose(floor.numpy(), [[5.0]])
    # Counting the padding would give k = ⌈10/8⌉ = 2 and (100 + 5) / 2.
    assert float(losses.topk_temporal_mean(values, divisor=8)) == pytest.approx(52.5)


def test_topk_mean_keeps_at_least_one_segment_and_gives_zero_without_any():
    values = np.array([[[3.0, -1.0], [1.0, -2.0], [2.0, 7.0]]] * 2, "float32")
    mask = np.array([[1, 1, 1], [0, 0, 0]], "float32")
    pooled = losses.topk_temporal_mean(values, mask, divisor=8, rounding="floor").numpy()
    np.testing.assert_allclose(pooled, [[3.0, 7.0], [0.0, 0.0]])
    with pytest.raises(ValueError, match="rounding"):
        losses.topk_temporal_mean(values, mask, rounding="nearest")


def test_topk_mil_loss_by_hand_and_padding_gets_no_gradient():
    logits = np.zeros((1, 10, 2), "float32")
    logits[0, :9, 0] = [4, 2, 0, 0, 0, 0, 0, 0, 0]  # top-2 mean 3
    logits[0, :9, 1] = [1, 1, 1, 1, 1, 1, 1, 1, 1]  # top-2 mean 1
    logits[0, 9] = [-50.0, 80.0]  # padding: would swap the classes if counted
    mask = np.array([[1] * 9 + [0]], "float32")
    labels = np.array([[1.0, 0.0]], "float32")
    expected = -math.log(math.exp(3) / (math.exp(3) + math.exp(1)))
    variable = tf.Variable(logits)
    with tf.GradientTape() as tape:
        loss = losses.topk_mil_loss(labels, variable, mask)
    np.testing.assert_allclose(loss.numpy(), [expected], rtol=1e-6)
    gradient = tape.gradient(loss, variable).numpy()
    assert np.all(gradient[0, 9] == 0.0)
    assert np.count_nonzero(gradient[0, :, 0]) == 2  # only the top-2 segments of each class


def _casl_video(first_logit, features):
    """A 2-segment, 1-class video: logits [first_logit, 0], features [2, D]."""
    return np.array([[first_logit], [0.0]], "float32"), np.array(features, "float32")


def test_casl_of_two_videos_by_hand():
    # Attention softmax([log 3, 0]) = [¾, ¼]; with x1 = e1, x2 = e2: Hf = [¾, ¼], Lf = [¼, ¾]
    # (Lf divides by n − 1 = 1; the cosine ignores scale anyway).
    logits_a, features_a = _casl_video(math.log(3.0), [[1, 0], [0, 1]])
    # Reversed roles: Hf' = [¼, ¾], Lf' = [¾, ¼].
    logits_b, features_b = _casl_video(math.log(3.0), [[0, 1], [1, 0]])
    labels = np.ones((2, 1), "float32")
    # d[Hf, Hf'] = 1 − 0.375/0.625 = 0.4, d[Hf, Lf'] = d[Lf, Hf'] = 0: ½(0.9 + 0.9) = 0.9.
    different = losses.co_activity_similarity_loss(
        np.stack([features_a, features_b]), np.stack([logits_a, logits_b]), labels
    )
    np.testing.assert_allclose(float(different), 0.9, rtol=1e-5)
    # Two identical videos: d[Hf, Hf'] = 0, d[Hf, Lf'] = 0.4: ½(0.1 + 0.1) = 0.1.
    same = losses.co_activity_similarity_loss(
        np.stack([features_a, features_a]), np.stack([logits_a, logits_a]), labels
    )
    np.testing.assert_allclose(float(same), 0.1, rtol=1e-5)


def test_casl_averages_over_pairs_that_share_a_class_and_ignores_padding():
    logits_a, features_a = _casl_video(math.log(3.0), [[1, 0], [0, 1]])
    logits_b, features_b = _casl_video(math.log(3.0), [[0, 1], [1, 0]])
    videos = "abaabab"
    # One padded segment per video, holding junk (a large logit would take all the attention).
    features = np.stack([{"a": features_a, "b": features_b}[v] for v in videos])
    features = np.concatenate([features, np.full((7, 1, 2), 9.0, "float32")], axis=1)
    logits = np.stack([{"a": logits_a, "b": logits_b}[v] for v in videos])
    logits = np.concatenate([logits, np.full((7, 1, 1), 40.0, "float32")], axis=1)
    mask = np.array([[1, 1, 0]] * 7, "float32")
    # Pairs: (0, 1) share class 0 → 0.9; (2, 3) share class 0 → 0.1; (4, 5) share nothing;
    # row 6 is unpaired. Class 1 is shared by nobody.
    labels = np.array([[1, 0], [1, 1], [1, 0], [1, 0], [1, 0], [0, 1], [1, 1]], "float32")
    logits = np.concatenate([logits, np.zeros_like(logits)], axis=-1)
    loss = losses.co_activity_similarity_loss(features, logits, labels, mask)
    np.testing.assert_allclose(float(loss), 0.5, rtol=1e-5)
    no_shared = losses.co_activity_similarity_loss(
        features[4:6], logits[4:6], labels[4:6], mask[4:6]
    )
    assert float(no_shared) == 0.0


def test_sigmoid_classification_loss_is_mean_binary_cross_entropy_over_classes():
    labels = [[1.0, 0.0]]
    logits = [[0.0, math.log(3.0)]]  # σ = ½, ¾
    expected = 0.5 * (-math.log(0.5) - math.log(0.25))
    loss = losses.sigmoid_classification_loss(labels, logits)
    np.testing.assert_allclose(loss.numpy(), [expected], rtol=1e-6)


def test_segment_l1_sums_or_averages_valid_segments():
    weights = [[0.5, 0.25, 0.75, 0.9], [0.1, 0.2, 0.3, 0.4]]
    mask = [[1, 1, 1, 0], [1, 1, 1, 1]]
    np.testing.assert_allclose(losses.segment_l1_loss(weights, mask).numpy(), [1.5, 1.0], rtol=1e-6)
    np.testing.assert_allclose(
        losses.segment_l1_loss(weights, mask, reduction="mean").numpy(), [0.5, 0.25], rtol=1e-6
    )
    with pytest.raises(ValueError, match="reduction"):
        losses.segment_l1_loss(weights, mask, reduction="max")


def test_background_labels_add_background_to_the_base_branch_only():
    base, suppressed = losses.background_class_labels([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    np.testing.assert_allclose(base.numpy(), [[1 / 3, 0, 1 / 3, 1 / 3], [0, 0, 0, 1]], rtol=1e-6)
    np.testing.assert_allclose(suppressed.numpy(), [[0.5, 0, 0.5, 0], [0, 0, 0, 0]], rtol=1e-6)


def test_softmax_binary_cross_entropy_by_hand_and_finite_at_saturation():
    logits = np.array([[math.log(2.0), 0.0, math.log(1.0)]], "float32")  # p = ½, ¼, ¼
    targets = np.array([[0.5, 0.0, 0.5]], "float32")
    expected = (
        -(0.5 * math.log(0.5) + 0.5 * math.log(0.5))
        - math.log(0.75)
        - (0.5 * math.log(0.25) + 0.5 * math.log(0.75))
    ) / 3
    loss = losses.softmax_binary_cross_entropy(targets, logits)
    np.testing.assert_allclose(loss.numpy(), [expected], rtol=1e-6)
    saturated = tf.Variable([[200.0, -200.0, 0.0]])
    with tf.GradientTape() as tape:
        value = losses.softmax_binary_cross_entropy([[0.5, 0.0, 0.5]], saturated)
    gradient = tape.gradient(value, saturated)
    assert np.isfinite(value.numpy()).all() and np.isfinite(gradient.numpy()).all()
    assert float(value) > 50  # log(1 − p) ≈ −200 for the saturated class, not clipped

"""Convex clustering (Peng et al.): exemplar database, Q fitting, L_cc and test-time selection."""

import numpy as np
import pytest
import tensorflow as tf

from tfwsar import clustering
from tfwsar import losses


# ----------------------------------------------------------------------------------------------
# Plain float64 references, written from the equations (pairwise differences, no shortcuts).
# ----------------------------------------------------------------------------------------------


def reference_logsumexp(values, axis):
    largest = np.max(values, axis=axis, keepdims=True)
    return np.squeeze(np.log(np.sum(np.exp(values - largest), axis=axis, keepdims=True)) + largest,
                      axis=axis)


def reference_log_kernel(segments, exemplars, alpha, squared=False):
    squared_distance = np.sum((segments[:, None, :] - exemplars[None, :, :]) ** 2, axis=-1)
    return -alpha * (squared_distance if squared else np.sqrt(squared_distance))


def reference_eta(segments, weights, exemplars, q, alpha):
    """η_{s'} = Σ_s p(s) t_{s,s'} / z_s with p normalised, in log space."""
    log_t = reference_log_kernel(segments, exemplars, alpha)
    with np.errstate(divide="ignore"):
        log_q = np.log(q)
    log_z = reference_logsumexp(log_t + log_q[None, :], axis=1)
    log_p = np.log(weights / weights.sum())
    return np.exp(reference_logsumexp(log_p[:, None] + log_t - log_z[:, None], axis=0))


def reference_objective(segments, weights, exemplars, q, alpha):
    log_t = reference_log_kernel(segments, exemplars, alpha)
    with np.errstate(divide="ignore"):
        log_z = reference_logsumexp(log_t + np.log(q)[None, :], axis=1)
    return np.sum(weights * log_z) / weights.sum()


def random_problem(seed, num_classes=3, count=6, dim=3, sizes=(15, 40, 7)):
    rng = np.random.default_rng(seed)
    features = [rng.normal(size=(size, dim)) for size in sizes[:num_classes]]
    weights = [rng.uniform(0.1, 1.0, size=size) for size in sizes[:num_classes]]
    database = rng.normal(size=(num_classes, count, dim))
    valid = np.ones((num_classes, count), bool)
    valid[0, -2:] = False  # class 0 has 4 real exemplars and 2 padded ones
    database[~valid] = 0.0
    return features, weights, database, valid


# ----------------------------------------------------------------------------------------------
# Q fitting
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_q_update_never_decreases_objective_and_keeps_rows_on_simplex(seed):
    features, weights, database, valid = random_problem(seed)
    q, info = clustering.fit_representativeness(
        features, weights, database, valid, alpha=1.5, epsilon=0.0, max_iterations=60,
        record_history=True)
    objective = info["history"]["objective"]  # [61, C]
    assert objective.shape == (61, 3)
    assert np.all(np.diff(objective, axis=0) >= -1e-12), "an update decreased the objective"
    assert np.all(objective[-1] > objective[0] + 1e-6), "the fit did not improve anything"
    history_q = info["history"]["q"]
    assert np.all(history_q >= 0)
    np.testing.assert_allclose(history_q.sum(axis=2), 1.0, atol=1e-12)
    assert np.all(history_q[:, ~valid] == 0.0)
    # Each step is exactly q ← η ⊙ q (Peng et al.), η from the plain equations.
    for step in (0, 1, 30):
        for c in range(3):
            current = history_q[step, c][valid[c]]
            eta = reference_eta(features[c], weights[c], database[c][valid[c]], current, alpha=1.5)
            np.testing.assert_allclose(history_q[step + 1, c][valid[c]], eta * current, rtol=1e-9)
    # The recorded objective is f(q) = Σ p log Σ q t of the recorded iterate.
    for step in (0, 7, 60):
        for c in range(3):
            expected = reference_objective(features[c], weights[c], database[c],
                                           history_q[step, c], alpha=1.5)
            assert objective[step, c] == pytest.approx(expected, rel=1e-10)
    np.testing.assert_allclose(
        clustering.convex_clustering_objective(features, weights, database, q, valid, alpha=1.5),
        objective[-1], rtol=1e-10)
    # Processing the classes one per block gives the same iterates as all in one block.
    q_blocked, _ = clustering.fit_representativeness(
        features, weights, database, valid, alpha=1.5, epsilon=0.0, max_iterations=60,
        max_block_elements=1)
    np.testing.assert_allclose(q_blocked, q, rtol=1e-10, atol=1e-300)


def test_fit_reaches_the_optimum_kkt_conditions_hold():
    rng = np.random.default_rng(7)
    segments = np.concatenate([rng.normal(loc, 0.3, size=(8, 2)) for loc in ([0, 0], [3, 0], [0, 3])])
    weights = rng.uniform(0.2, 1.0, size=len(segments))
    database = rng.normal(0, 1.5, size=(1, 6, 2))
    q, info = clustering.fit_representativeness(
        [segments], [weights], database, None, alpha=1.0, epsilon=1e-10, max_iterations=200000)
    assert info["converged"][0] and info["gap"][0] < 1e-10
    assert 0 < info["iterations"][0] < 200000
    eta = reference_eta(segments, weights, database[0], q[0], alpha=1.0)
    # KKT of max f on the simplex: ∂f/∂q = η ≤ 1 everywhere, = 1 where q > 0.
    assert np.all(eta <= 1 + 1e-8)
    support = q[0] > 1e-3
    assert support.any()
    np.testing.assert_allclose(eta[support], 1.0, atol=1e-6)
    assert q[0].sum() == pytest.approx(1.0, abs=1e-12)
    # No point of the simplex does better (a concave function at its maximum).
    best = info["objective"][0]
    for candidate in rng.dirichlet(np.ones(6), size=200):
        assert reference_objective(segments, weights, database[0], candidate, 1.0) <= best + 1e-12


def test_fit_at_alpha_times_distance_1e4_is_finite_and_assigns_segments_to_nearest_exemplar():
    # Exemplars 5 apart, segments within 0.05 of exemplars 0, 1, 2 (none near 3): α·d ≈ 1.5e4 to
    # every other exemplar, so t is numerically one-hot and the optimum is q_j = mass of segments
    # whose nearest exemplar is j.
    rng = np.random.default_rng(3)
    exemplars = np.array([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0], [5.0, 5.0]])
    owner = np.repeat([0, 1, 2], [5, 3, 2])
    segments = exemplars[owner] + rng.uniform(-0.03, 0.03, size=(10, 2))
    weights = rng.uniform(0.5, 1.0, size=10)
    alpha = 3000.0
    assert alpha * 5 >= 1e4
    q, info = clustering.fit_representativeness(
        [segments], [weights], exemplars[None], None, alpha=alpha, epsilon=1e-9,
        max_iterations=100)
    expected = np.bincount(owner, weights=weights, minlength=4) / weights.sum()
    assert np.all(np.isfinite(q)) and np.all(np.isfinite(info["log_q"][0, :3]))
    np.testing.assert_allclose(q[0], expected, atol=1e-9)
    assert q[0, 3] < 1e-300  # the exemplar far from every segment loses all its mass
    assert info["converged"][0] and np.isfinite(info["objective"][0])


def test_log_space_step_matches_plain_logsumexp_where_exp_underflows():
    rng = np.random.default_rng(11)
    segments = rng.normal(size=(9, 3)) * 4
    exemplars = rng.normal(size=(5, 3)) * 4
    alpha = 800.0  # α·d in the thousands: exp(−α d) is 0 in float64
    log_t = reference_log_kernel(segments, exemplars, alpha)
    weights = rng.uniform(size=9)
    weights[0] = 1e-280
    log_p = np.log(weights / weights.sum())
    # Some exemplars carry a q of e^{-900}, including the nearest one of several segments.
    log_q = np.log(rng.dirichlet(np.ones(5)))
    log_q[np.argmax(log_t, axis=1)[:3]] = -900.0
    log_q -= reference_logsumexp(log_q, axis=0)
    block = clustering._Block(log_t[None], log_p[None], np.ones((1, 5), bool))
    log_z, log_eta, objective = block.step(log_q[None])
    expected_log_z = reference_logsumexp(log_t + log_q[None, :], axis=1)
    expected_log_eta = reference_logsumexp(log_p[:, None] + log_t - expected_log_z[:, None], axis=0)
    np.testing.assert_allclose(log_z[0], expected_log_z, rtol=1e-12)
    np.testing.assert_allclose(log_eta[0], expected_log_eta, rtol=1e-12)
    assert objective[0] == pytest.approx(np.sum(np.exp(log_p) * expected_log_z), rel=1e-12)


def test_padded_exemplars_stay_at_zero_and_change_nothing():
    features, weights, database, valid = random_problem(5)
    database[~valid] = 100.0  # garbage at padding, close to nothing
    q_init = np.full(valid.shape, 1.0)  # even a nonzero start at padding is ignored
    q, info = clustering.fit_representativeness(
        features, weights, database, valid, alpha=1.0, epsilon=1e-8, max_iterations=5000,
        q_init=q_init, record_history=True)
    assert np.all(info["history"]["q"][:, ~valid] == 0.0)
    assert np.all(info["log_q"][~valid] == -np.inf)
    q_without, _ = clustering.fit_representativeness(
        [features[0]], [weights[0]], database[:1, :4], None, alpha=1.0, epsilon=1e-8,
        max_iterations=5000)
    np.testing.assert_allclose(q[0, :4], q_without[0], atol=1e-12)


def test_classes_without_segments_or_exemplars_are_reported_not_fitted():
    features, weights, database, valid = random_problem(2)
    features[1], weights[1] = features[1][:0], weights[1][:0]
    valid[2] = False
    q, info = clustering.fit_representativeness(features, weights, database, valid, alpha=1.0)
    assert list(info["fitted"]) == [True, False, False]
    np.testing.assert_allclose(q[1], 1 / 6)  # the uniform start, untouched
    assert np.all(q[2] == 0)
    assert info["converged"][0] and not info["converged"][1:].any()


# ----------------------------------------------------------------------------------------------
# L_cc
# ----------------------------------------------------------------------------------------------


def loss_problem(seed=0):
    rng = np.random.default_rng(seed)
    batch, segments, dim, classes, count = 4, 5, 3, 3, 4
    features = rng.normal(size=(batch, segments, dim))
    mask = np.ones((batch, segments))
    mask[0, 3:] = 0
    mask[2, 4:] = 0
    attention = rng.uniform(size=(batch, segments)) * mask
    attention /= attention.sum(axis=1, keepdims=True)
    labels = np.array([[1, 0, 0], [1, 0, 1], [0, 1, 0], [0, 1, 1]], np.float32)
    database = rng.normal(size=(classes, count, dim))
    valid = np.array([[1, 1, 1, 0], [0, 0, 0, 0], [1, 1, 0, 0]], bool)  # class 1: no exemplars
    database[~valid] = 0.0
    q = rng.uniform(size=(classes, count)) * valid
    q /= np.maximum(q.sum(axis=1, keepdims=True), 1e-300)
    return features, attention, mask, labels, database, q, valid


def reference_loss(features, attention, mask, labels, database, q, valid, alpha, squared=False):
    losses_per_video = []
    for b in range(len(features)):
        values = []
        for c in np.flatnonzero(labels[b]):
            if not valid[c].any():
                continue
            log_t = reference_log_kernel(features[b], database[c][valid[c]], alpha, squared)
            log_mixture = reference_logsumexp(log_t + np.log(q[c][valid[c]])[None, :], axis=1)
            values.append(-np.sum(attention[b] * mask[b] * log_mixture))
        losses_per_video.append(np.mean(values) if values else 0.0)
    return np.array(losses_per_video)


@pytest.mark.parametrize("squared", [False, True])
def test_convex_clustering_loss_matches_float64_numpy(squared):
    features, attention, mask, labels, database, q, valid = loss_problem()
    log_q = clustering.log_representativeness(q, valid)
    expected = reference_loss(features, attention, mask, labels, database, q, valid, 2.0, squared)
    assert expected[2] == 0.0 and expected[1] != 0.0  # video 2's only class has no exemplar
    value64 = losses.convex_clustering_loss(features, attention, mask, labels, database, log_q,
                                            alpha=2.0, squared_distance=squared)
    np.testing.assert_allclose(value64.numpy(), expected, rtol=1e-12)
    value32 = losses.convex_clustering_loss(features.astype(np.float32), attention, mask, labels,
                                            database, log_q, alpha=2.0, squared_distance=squared)
    assert value32.dtype == tf.float32
    np.testing.assert_allclose(value32.numpy(), expected, rtol=1e-5)
    # q with a validity mask is the same as log q with −inf at padding.
    masked = losses.convex_clustering_loss(features, attention, mask, labels, database,
                                           np.log(np.maximum(q, 1e-30)), alpha=2.0,
                                           squared_distance=squared, valid=valid)
    np.testing.assert_allclose(masked.numpy(), expected, rtol=1e-12)


def test_convex_clustering_loss_ignores_padded_segments_and_its_gradient_is_correct():
    features, attention, mask, labels, database, q, valid = loss_problem(1)
    log_q = clustering.log_representativeness(q, valid)
    garbage = features.copy()
    garbage[mask == 0] = 1e3
    features_tensor = tf.constant(garbage)
    attention_tensor = tf.constant(attention)
    with tf.GradientTape() as tape:
        tape.watch([features_tensor, attention_tensor])
        value = losses.convex_clustering_loss(features_tensor, attention_tensor, mask, labels,
                                              database, log_q, alpha=1.0)
        total = tf.reduce_sum(value)
    gradient_features, gradient_attention = tape.gradient(total, [features_tensor, attention_tensor])
    clean = losses.convex_clustering_loss(features, attention, mask, labels, database, log_q, 1.0)
    np.testing.assert_allclose(value.numpy(), clean.numpy(), rtol=1e-12)
    assert np.all(gradient_features.numpy()[mask == 0] == 0)
    assert np.any(gradient_features.numpy()[mask == 1] != 0)
    # Analytic vs numerical directional derivatives (float64, central differences).
    rng = np.random.default_rng(0)
    def total_loss(feature_values):
        return float(tf.reduce_sum(losses.convex_clustering_loss(
            feature_values, attention, mask, labels, database, log_q, alpha=1.0)))
    feature_values = tf.constant(features)
    with tf.GradientTape() as tape:
        tape.watch(feature_values)
        total = tf.reduce_sum(losses.convex_clustering_loss(
            feature_values, attention, mask, labels, database, log_q, alpha=1.0))
    analytic = tape.gradient(total, feature_values).numpy()
    for _ in range(3):
        direction = rng.normal(size=features.shape) * mask[..., None]
        step = 1e-6
        numerical = (total_loss(features + step * direction)
                     - total_loss(features - step * direction)) / (2 * step)
        assert np.sum(analytic * direction) == pytest.approx(numerical, rel=1e-6, abs=1e-8)
    # L is linear in p: ∂L/∂p(s) = the loss of a unit attention on s (0 at padding).
    expected_attention_gradient = np.stack([
        reference_loss(features, np.eye(5)[[t] * 4], mask, labels, database, q, valid, 1.0)
        for t in range(5)], axis=1)
    np.testing.assert_allclose(gradient_attention.numpy(), expected_attention_gradient, rtol=1e-10)
    assert np.all(gradient_attention.numpy()[mask == 0] == 0)


def test_loss_cost_and_gradients_are_finite_at_alpha_times_distance_1e4():
    features, attention, mask, labels, database, q, valid = loss_problem(2)
    features = (features * 10).astype(np.float32)
    database = (database * 10).astype(np.float32)
    features[0, 0] = database[0, 1]  # a segment equal to an exemplar: d = 0
    features[3, 2] = database[2, 0]
    alpha = 1e3  # distances ≈ 10-30: α·d ≈ 1e4 to 3e4
    log_q = clustering.log_representativeness(q, valid)
    features_tensor = tf.constant(features)
    attention_tensor = tf.constant(attention, tf.float32)
    for squared in (False, True):
        with tf.GradientTape() as tape:
            tape.watch([features_tensor, attention_tensor])
            value = losses.convex_clustering_loss(features_tensor, attention_tensor, mask, labels,
                                                  database, log_q, alpha, squared_distance=squared)
            total = tf.reduce_sum(value)
        gradients = tape.gradient(total, [features_tensor, attention_tensor])
        assert np.all(np.isfinite(value.numpy())) and total.numpy() > 1e3
        assert all(np.all(np.isfinite(gradient.numpy())) for gradient in gradients)
    expected = reference_loss(features.astype(np.float64), attention, mask, labels,
                              database.astype(np.float64), q, valid, alpha)
    euclidean = losses.convex_clustering_loss(features, attention, mask, labels, database, log_q,
                                              alpha)
    np.testing.assert_allclose(euclidean.numpy(), expected, rtol=1e-4)
    cost = losses.segment_convex_clustering_cost(features[0], database, log_q, alpha)
    assert np.all(np.isfinite(cost.numpy()[:, [0, 2]]))


def test_fitted_q_minimises_the_total_training_loss():
    """Σ_x L_cc(x) = −Σ_c W_c f_c(q) for any Q, and the fitted Q lowers it below the uniform Q."""
    rng = np.random.default_rng(4)
    batch, segments, dim, classes, count = 6, 7, 3, 3, 5
    features = rng.normal(size=(batch, segments, dim)).astype(np.float32).astype(np.float64)
    mask = (rng.uniform(size=(batch, segments)) > 0.2).astype(np.float64)
    attention = rng.uniform(size=(batch, segments)) * mask
    attention /= attention.sum(axis=1, keepdims=True)
    labels = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 1], [0, 1, 0]], float)
    database = rng.normal(size=(classes, count, dim))
    collector = clustering.SegmentSetCollector(classes)
    collector.update(features[:3], attention[:3], mask[:3], labels[:3])
    collector.update(features[3:], attention[3:], mask[3:], labels[3:])
    sets = clustering.SegmentSetCollector(classes)
    sets.update(features, attention, mask, labels)
    merged = clustering.merge_segment_sets([collector.result()])
    assert [len(w) for w in merged.weights] == [len(w) for w in sets.result().weights]

    uniform = np.full((classes, count), 1 / count)
    q, info = clustering.fit_representativeness(collector.result(), None, database, None,
                                                alpha=2.0, epsilon=1e-9, max_iterations=20000)

    def total_loss(representativeness):
        return float(tf.reduce_sum(losses.convex_clustering_loss(
            features, attention, mask, labels, database,
            clustering.log_representativeness(representativeness), alpha=2.0)))

    for representativeness in (uniform, q):
        objective = clustering.convex_clustering_objective(collector.result(), None, database,
                                                           representativeness, alpha=2.0)
        assert total_loss(representativeness) == pytest.approx(
            -np.sum(info["total_weight"] * objective), rel=1e-10)
    assert total_loss(q) < total_loss(uniform) - 1e-3


# ----------------------------------------------------------------------------------------------
# Test-time selection
# ----------------------------------------------------------------------------------------------


def test_segment_cost_per_class_and_selection_of_the_k_cheapest_segments():
    features, _, _, _, database, q, valid = loss_problem(3)
    log_q = clustering.log_representativeness(q, valid)
    costs = losses.segment_convex_clustering_cost(features[1], database, log_q, alpha=1.5).numpy()
    assert costs.shape == (5, 3)
    assert np.all(costs[:, 1] == np.inf)  # class 1 has no exemplar
    for c in (0, 2):
        single = losses.segment_convex_clustering_cost(features[1], database[c], log_q[c], 1.5)
        expected = -reference_logsumexp(
            reference_log_kernel(features[1], database[c][valid[c]], 1.5)
            + np.log(q[c][valid[c]])[None, :], axis=1)
        np.testing.assert_allclose(single.numpy(), expected, rtol=1e-12)
        np.testing.assert_allclose(costs[:, c], expected, rtol=1e-12)

    cost = np.array([[5.0, 1.0], [1.0, 2.0], [0.5, 2.0], [3.0, 0.1], [0.1, 2.0]])
    mask = np.array([1, 1, 1, 1, 0])  # the last (cheapest for class 0) is padding
    selected = clustering.select_segments(cost, k=2, mask=mask)
    assert selected.dtype == bool
    # class 0: 0.5 (t=2) and 1.0 (t=1); class 1: 0.1 (t=3), 1.0 (t=0); ties → earlier.
    np.testing.assert_array_equal(selected, [[0, 1], [1, 0], [1, 0], [0, 1], [0, 0]])
    tied = clustering.select_segments(np.full((4, 1), 2.0), k=2, mask=[0, 1, 1, 1])
    np.testing.assert_array_equal(tied[:, 0], [0, 1, 1, 0])
    everything = clustering.select_segments(cost[None], k=10, mask=mask[None])
    np.testing.assert_array_equal(everything[0], np.repeat(mask[:, None] == 1, 2, axis=1))


# ----------------------------------------------------------------------------------------------
# Exemplar database
# ----------------------------------------------------------------------------------------------


def identifying_features(batch, segments):
    """Feature of (b, t) = [b, t]: tells which segment an exemplar came from."""
    grid = np.stack(np.meshgrid(np.arange(batch), np.arange(segments), indexing="ij"), axis=-1)
    return grid.astype(np.float32)


def test_exemplar_collector_keeps_the_true_top_n_per_class():
    # Video 0 labelled {0}; video 1 labelled {0, 1}; nobody labelled 2. Last segment of each
    # video is padding (and scores highest everywhere, so it would win if it were considered).
    scores = np.array([
        [[0.9, 0.99, 0.5], [0.2, 0.98, 0.5], [0.7, 0.97, 0.5], [9.0, 9.0, 9.0]],   # video 0
        [[0.8, 0.1, 0.9], [0.95, 0.3, 0.9], [0.1, 0.2, 0.9], [9.0, 9.0, 9.0]],     # video 1
    ])
    mask = np.array([[1, 1, 1, 0], [1, 1, 1, 0]])
    labels = np.array([[1, 0, 0], [1, 1, 0]])
    collector = clustering.ExemplarCollector(num_classes=3, num_exemplars=3, feature_dim=2)
    collector.update(scores, identifying_features(2, 4), mask, labels)
    database = collector.result()
    # Class 0: scores 0.95 (1,1), 0.9 (0,0), 0.8 (1,0) — not the padded 9.0s.
    np.testing.assert_array_equal(database.features[0], [[1, 1], [0, 0], [1, 0]])
    np.testing.assert_allclose(database.scores[0], [0.95, 0.9, 0.8])
    # Class 1: only video 1 (video 0's 0.99/0.98/0.97 are not labelled 1): 0.3, 0.2, 0.1.
    np.testing.assert_array_equal(database.features[1], [[1, 1], [1, 2], [1, 0]])
    # Class 2: no labelled video, nothing collected.
    assert not database.valid[2].any() and np.all(database.features[2] == 0)
    assert np.all(database.scores[2] == -np.inf)
    np.testing.assert_array_equal(database.counts, [3, 3, 0])
    np.testing.assert_array_equal(database.candidates, [6, 3, 0])

    # More exemplars than candidates: padded and flagged invalid.
    large = clustering.ExemplarCollector(3, 5, 2)
    large.update(scores[1], identifying_features(2, 4)[1], mask[1], labels[1])  # one video [T, C]
    result = large.result()
    np.testing.assert_array_equal(result.valid[1], [1, 1, 1, 0, 0])
    np.testing.assert_array_equal(result.features[1, :3], [[1, 1], [1, 2], [1, 0]])
    np.testing.assert_array_equal(result.keys[1, 3:], [-1, -1])
    np.testing.assert_array_equal(result.counts, [3, 3, 0])

    # Streaming one video at a time gives the same database.
    streamed = clustering.ExemplarCollector(3, 3, 2)
    for b in range(2):
        streamed.update(scores[b:b + 1], identifying_features(2, 4)[b:b + 1], mask[b:b + 1],
                        labels[b:b + 1])
    for name in ("features", "scores", "valid", "keys", "counts", "candidates"):
        np.testing.assert_array_equal(getattr(streamed.result(), name), getattr(database, name))


def test_ties_are_broken_by_arrival_or_by_given_keys():
    scores = np.full((1, 5, 1), 0.5)
    scores[0, 4, 0] = 0.7
    features = identifying_features(1, 5)
    labels = np.ones((1, 1))
    collector = clustering.ExemplarCollector(1, 3, 2)
    collector.update(scores, features, None, labels)
    # 0.7 first, then the two earliest of the tied 0.5s.
    np.testing.assert_array_equal(collector.result().features[0, :, 1], [4, 0, 1])
    keyed = clustering.ExemplarCollector(1, 3, 2)
    keyed.update(scores, features, None, labels, segment_keys=[[50, 40, 30, 20, 10]])
    np.testing.assert_array_equal(keyed.result().features[0, :, 1], [4, 3, 2])
    with pytest.raises(ValueError):
        keyed.update(scores, features, None, labels)  # keys for some batches only


def collect(batches, num_exemplars=4, with_keys=False):
    collector = clustering.ExemplarCollector(num_classes=3, num_exemplars=num_exemplars,
                                             feature_dim=2)
    for scores, features, mask, labels, keys in batches:
        collector.update(scores, features, mask, labels, keys if with_keys else None)
    return collector


def assert_same_database(first, second):
    for name in ("features", "scores", "valid", "keys", "counts", "candidates"):
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name), err_msg=name)
    assert first.segments_seen == second.segments_seen


def test_split_and_merge_equals_collecting_everything_at_once():
    rng = np.random.default_rng(0)
    batches = []
    for index in range(6):
        # Scores rounded to one decimal: many exact ties, so tie-breaking is exercised too.
        scores = np.round(rng.uniform(size=(2, 5, 3)), 1)
        features = rng.normal(size=(2, 5, 2)).astype(np.float32)
        mask = (rng.uniform(size=(2, 5)) > 0.2).astype(np.float32)
        labels = (rng.uniform(size=(2, 3)) > 0.5).astype(np.float32)
        keys = (index * 2 + np.arange(2))[:, None] * 100 + np.arange(5)[None, :]
        batches.append((scores, features, mask, labels, keys))
    everything = collect(batches).result()
    assert everything.valid.sum() > 6
    first, second, third = collect(batches[:2]), collect(batches[2:3]), collect(batches[3:])
    assert_same_database(clustering.merge([first, second, third]), everything)
    assert_same_database(clustering.merge([clustering.merge([first, second]), third.result()]),
                         everything)
    # With given keys the merge does not depend on the order of the parts.
    keyed_everything = collect(batches, with_keys=True).result()
    keyed_parts = [collect(batches[3:], with_keys=True), collect(batches[:3], with_keys=True)]
    merged = clustering.merge(keyed_parts)
    for name in ("features", "scores", "valid", "keys"):
        np.testing.assert_array_equal(getattr(merged, name), getattr(keyed_everything, name))
    with pytest.raises(ValueError):
        clustering.merge([first, keyed_parts[0]])


def test_exemplar_database_feeds_the_fit_directly():
    rng = np.random.default_rng(1)
    collector = clustering.ExemplarCollector(num_classes=2, num_exemplars=6, feature_dim=3)
    features = rng.normal(size=(3, 4, 3))
    labels = np.array([[1, 0], [1, 0], [1, 0]])  # class 1: no video, no exemplar
    collector.update(rng.uniform(size=(3, 4, 2)), features, np.ones((3, 4)), labels)
    sets = clustering.SegmentSetCollector(2)
    sets.update(features, np.full((3, 4), 0.25), None, labels)
    q, info = clustering.fit_representativeness(sets.result(), None, collector.result(), None,
                                                alpha=1.0)
    assert info["fitted"].tolist() == [True, False]
    assert q[0].sum() == pytest.approx(1.0) and np.all(q[1] == 0)


def test_convex_clustering_loss_compiles_with_xla_and_agrees_with_eager():
    features, attention, mask, labels, database, q, valid = loss_problem(5)
    features = tf.constant(features, tf.float32)
    log_q = clustering.log_representativeness(q, valid)

    def loss_and_gradient(feature_values):
        with tf.GradientTape() as tape:
            tape.watch(feature_values)
            value = losses.convex_clustering_loss(feature_values, attention, mask, labels,
                                                  database, log_q, alpha=2.0)
            total = tf.reduce_sum(value)
        return value, tape.gradient(total, feature_values)

    eager_value, eager_gradient = loss_and_gradient(features)
    xla_value, xla_gradient = tf.function(loss_and_gradient, jit_compile=True)(features)
    np.testing.assert_allclose(xla_value.numpy(), eager_value.numpy(), rtol=1e-5)
    np.testing.assert_allclose(xla_gradient.numpy(), eager_gradient.numpy(), rtol=1e-4, atol=1e-6)

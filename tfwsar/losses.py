"""Loss functions, as plain functions on tensors.

TSRNet (Zhang et al., AAAI 2019), for one stream (RGB or optical flow):

    L    = L_SA + L_KT
    L_SA = L_class + α · Σ_{i<n} (a_i − a_{i+1})² + β · ‖a‖₁
    L_KT = MMD²(FC1(T), FC1(U)) + MMD²(FC2(T), FC2(U))

with a the temporal attention of an untrimmed video U, T the trimmed clips, FC1/FC2 the segment
features of the two fully connected layers. `stream_loss` composes the terms for a training step;
the other functions are the terms themselves, each with the shapes it takes and gives.

The sparsity term as printed does nothing: a is a softmax over the segments, so ‖a‖₁ = Σ a = 1 for
every video and its gradient is zero. `sparsity_loss` therefore offers three readings (see there):
`"entropy"` (shipped default), `"sigmoid_l1"` (STPN's L1 on unnormalised sigmoid scores) and
`"literal"` (the paper's ‖a‖₁, kept for fidelity).
"""

import tensorflow as tf

VARIANTS = ("two_stream", "srnet", "tsrnet", "tsrnet_no_fc2")
"""TSRNet's ablation: Two-Stream (mean pooling, no knowledge transfer), SRNet (attention, no
knowledge transfer), TSRNet, and TSRNet without the FC2 term of L_KT."""

ATTENTION_VARIANTS = ("srnet", "tsrnet", "tsrnet_no_fc2")
KNOWLEDGE_TRANSFER_VARIANTS = ("tsrnet", "tsrnet_no_fc2")
SPARSITY_KINDS = ("entropy", "sigmoid_l1", "literal")

DEFAULT_MMD_BANDWIDTHS = (0.25, 0.5, 1.0, 2.0, 4.0)
"""Multipliers of the base bandwidth (see `mmd_squared`): five Gaussian kernels spaced by 2×,
as in DAN (Long et al. 2015), whose MMD TSRNet's knowledge transfer follows."""


def _segment_weights(values, mask):
    """`[B, T]` float32 0/1 weights of the valid segments (all ones when `mask` is None)."""
    if mask is None:
        return tf.ones(tf.shape(values)[:2], dtype=tf.float32)
    return tf.cast(tf.cast(mask, tf.float32) > 0, tf.float32)


def multilabel_classification_loss(labels, logits):
    """Multi-label cross-entropy of video-level class scores (L_class of TSRNet, as in W-TALC).

    The target distribution is the multi-hot label vector normalised to sum 1, and the prediction
    is the softmax over classes:

        L_class = − Σ_c (y_c / Σ_k y_k) · log softmax(z)_c

    A video with two labels is therefore pushed to give each half of the probability mass. A row
    without labels gives 0.

    Args:
        labels: `[B, C]` multi-hot (any non-negative weights).
        logits: `[B, C]` video-level class logits z.

    Returns:
        `[B]` per-example loss.
    """
    labels = tf.cast(labels, tf.float32)
    logits = tf.cast(logits, tf.float32)
    # p(c | video) = y_c / Σ_k y_k
    target = tf.math.divide_no_nan(labels, tf.reduce_sum(labels, axis=-1, keepdims=True))
    return -tf.reduce_sum(target * tf.nn.log_softmax(logits, axis=-1), axis=-1)


def smoothness_loss(attention, mask=None):
    """Temporal smoothness of the attention: Σ_{i<n} (a_i − a_{i+1})² over valid neighbours.

    A pair (i, i+1) counts only when both segments are valid, so padding adds nothing.

    Args:
        attention: `[B, T]` attention a.
        mask: `[B, T]` 1 = valid segment, 0 = padding (None: all valid).

    Returns:
        `[B]` per-example smoothness penalty.
    """
    attention = tf.cast(attention, tf.float32)
    valid = _segment_weights(attention, mask)
    both_valid = valid[:, :-1] * valid[:, 1:]
    difference = attention[:, :-1] - attention[:, 1:]  # a_i − a_{i+1}
    return tf.reduce_sum(both_valid * tf.square(difference), axis=-1)


def sparsity_loss(attention, mask=None, kind="entropy", logits=None):
    """Sparsity of the attention: TSRNet's β-term, in one of three readings.

    The paper writes β·‖a‖₁. With a = softmax(e) over the valid segments, ‖a‖₁ = Σ_t a_t = 1 for
    every video, so the term is a constant with zero gradient. The readings:

    - `"entropy"` (default): H(a) = −Σ_t a_t log a_t. It is smallest (0) when all attention sits
      on one segment and largest (log n) when it is uniform, so minimising it makes the softmax
      attention sparse — the paper's intent, on the attention it actually has.
    - `"sigmoid_l1"`: STPN's (Nguyen et al. 2018) L1 of unnormalised scores,
      (1/n) Σ_t σ(e_t) over the n valid segments, e the pre-softmax attention logits (`logits`).
      It pushes every logit down; the softmax attention is invariant to a common shift of e, so
      its effect on the attention's shape is indirect (useful where σ(e) itself is read).
    - `"literal"`: ‖a‖₁ = Σ_t |a_t| as printed (constant 1 for a softmax; zero gradient).

    Args:
        attention: `[B, T]` attention a (0 at padding).
        mask: `[B, T]` 1 = valid segment, 0 = padding (None: all valid).
        kind: one of `SPARSITY_KINDS`.
        logits: `[B, T]` pre-softmax attention logits e; required by `"sigmoid_l1"`.

    Returns:
        `[B]` per-example sparsity penalty.
    """
    attention = tf.cast(attention, tf.float32)
    valid = _segment_weights(attention, mask)
    if kind == "entropy":
        # H(a) = −Σ a log a; xlogy gives 0 (and a zero gradient) where a = 0.
        return -tf.reduce_sum(valid * tf.math.xlogy(attention, attention), axis=-1)
    if kind == "sigmoid_l1":
        if logits is None:
            raise ValueError('sparsity_loss(kind="sigmoid_l1") needs the attention logits')
        scores = tf.sigmoid(tf.cast(logits, tf.float32))  # σ(e_t)
        return tf.math.divide_no_nan(
            tf.reduce_sum(valid * scores, axis=-1), tf.reduce_sum(valid, axis=-1)
        )
    if kind == "literal":
        return tf.reduce_sum(valid * tf.abs(attention), axis=-1)  # ‖a‖₁
    raise ValueError(f"unknown sparsity kind {kind!r}; expected one of {SPARSITY_KINDS}")


def _squared_distances(a, b):
    """`[N, M]` squared Euclidean distances between the rows of `a` `[N, D]` and `b` `[M, D]`."""
    a_norms = tf.reduce_sum(tf.square(a), axis=-1)[:, None]
    b_norms = tf.reduce_sum(tf.square(b), axis=-1)[None, :]
    return tf.maximum(a_norms + b_norms - 2.0 * tf.matmul(a, b, transpose_b=True), 0.0)


def _row_weights(rows, weights):
    if weights is None:
        return tf.ones(tf.shape(rows)[:1], dtype=tf.float32)
    return tf.reshape(tf.cast(weights, tf.float32), [-1])


def _weighted_sum(row_weights, matrix, column_weights):
    """Σ_ij u_i M_ij v_j."""
    return tf.reduce_sum(row_weights[:, None] * matrix * column_weights[None, :])


def mmd_squared(
    x,
    y,
    bandwidths=DEFAULT_MMD_BANDWIDTHS,
    x_weights=None,
    y_weights=None,
    base_bandwidth=None,
):
    """Biased (V-statistic) estimate of the squared maximum mean discrepancy between two samples.

        MMD² = Σ_ij p_i p_j k(x_i, x_j) + Σ_ij q_i q_j k(y_i, y_j) − 2 Σ_ij p_i q_j k(x_i, y_j)

    with p, q the row weights normalised to sum 1 (uniform without weights: the usual biased
    estimator) and a sum of Gaussian kernels

        k(u, v) = Σ_s exp(−‖u − v‖² / (s · γ)),    s ∈ `bandwidths`.

    Bandwidth choice: γ is the weighted mean squared distance between distinct rows of the pooled
    sample x ∪ y (DAN's heuristic), held constant for differentiation (`tf.stop_gradient`), so the
    kernels follow the features' scale — FC activations grow and shrink during training — while
    the value stays a deterministic, differentiable function of x and y. The multipliers span
    1/4…4 of γ. Pass `base_bandwidth` to fix γ instead.

    Rows with weight 0 (padded segments) contribute nothing. When either side has no weight the
    result is 0.

    Args:
        x: `[N, D]` first sample (e.g. FC features of trimmed-clip segments).
        y: `[M, D]` second sample (e.g. FC features of untrimmed-video segments).
        bandwidths: multipliers s of the base bandwidth γ, one Gaussian kernel each.
        x_weights: `[N]` non-negative row weights (a mask), or None for all 1.
        y_weights: `[M]` likewise for y.
        base_bandwidth: fixed γ > 0, or None for the data-driven γ above.

    Returns:
        Scalar float32 MMD².
    """
    x = tf.cast(x, tf.float32)
    y = tf.cast(y, tf.float32)
    x_weights = _row_weights(x, x_weights)
    y_weights = _row_weights(y, y_weights)
    x_total = tf.reduce_sum(x_weights)
    y_total = tf.reduce_sum(y_weights)

    distances_xx = _squared_distances(x, x)
    distances_yy = _squared_distances(y, y)
    distances_xy = _squared_distances(x, y)

    if base_bandwidth is None:
        # γ = Σ_{i≠j} w_i w_j ‖z_i − z_j‖² / Σ_{i≠j} w_i w_j over the pooled rows z = x ∪ y.
        pair_distance_sum = (
            _weighted_sum(x_weights, distances_xx, x_weights)
            + _weighted_sum(y_weights, distances_yy, y_weights)
            + 2.0 * _weighted_sum(x_weights, distances_xy, y_weights)
            - tf.reduce_sum(tf.square(x_weights) * tf.linalg.diag_part(distances_xx))
            - tf.reduce_sum(tf.square(y_weights) * tf.linalg.diag_part(distances_yy))
        )
        pair_weight_sum = tf.square(x_total + y_total) - (
            tf.reduce_sum(tf.square(x_weights)) + tf.reduce_sum(tf.square(y_weights))
        )
        gamma = tf.stop_gradient(tf.math.divide_no_nan(pair_distance_sum, pair_weight_sum))
        gamma = tf.maximum(gamma, 1e-12)
    else:
        if base_bandwidth <= 0:
            raise ValueError(f"base_bandwidth must be positive, got {base_bandwidth}")
        gamma = tf.constant(base_bandwidth, tf.float32)

    def kernel(squared_distances):
        return tf.add_n([tf.exp(-squared_distances / (scale * gamma)) for scale in bandwidths])

    p = tf.math.divide_no_nan(x_weights, x_total)
    q = tf.math.divide_no_nan(y_weights, y_total)
    value = (
        _weighted_sum(p, kernel(distances_xx), p)
        + _weighted_sum(q, kernel(distances_yy), q)
        - 2.0 * _weighted_sum(p, kernel(distances_xy), q)
    )
    both_present = tf.cast(tf.logical_and(x_total > 0, y_total > 0), tf.float32)
    return value * both_present


def segment_rows(features, mask, segments_per_video=None):
    """Flattens segment features `[B, T, H]` into rows for `mmd_squared`, with their weights.

    Args:
        features: `[B, T, H]`.
        mask: `[B, T]` 1 = valid segment.
        segments_per_video: None to keep every segment (rows `[B·T, H]`, weight = mask; memory is
            O((B·T)²) in `mmd_squared`), or k to keep k evenly spaced valid segments of each video
            (the ⌊(j + ½)·n / k⌋-th valid segment, j < k, for a video with n valid segments;
            deterministic; short videos repeat segments), so each video weighs the same.

    Returns:
        `(rows [R, H], weights [R])`.
    """
    features = tf.convert_to_tensor(features)
    valid = _segment_weights(features, mask)
    feature_dim = tf.shape(features)[-1]
    if segments_per_video is None:
        return tf.reshape(features, [-1, feature_dim]), tf.reshape(valid, [-1])
    valid_count = tf.reduce_sum(valid, axis=-1, keepdims=True)  # n, [B, 1]
    steps = (tf.range(segments_per_video, dtype=tf.float32) + 0.5) / segments_per_video
    wanted_rank = tf.floor(steps[None, :] * valid_count)  # [B, k], 0-based rank among valid
    # The rank-r valid segment is the first t whose running count of valid segments reaches r + 1.
    running_count = tf.cumsum(valid, axis=-1)
    index = tf.searchsorted(running_count, wanted_rank + 1.0, side="left")
    index = tf.minimum(index, tf.shape(features)[1] - 1)
    rows = tf.gather(features, index, batch_dims=1)  # [B, k, H]
    weights = tf.broadcast_to(tf.cast(valid_count > 0, tf.float32), tf.shape(wanted_rank))
    return tf.reshape(rows, [-1, feature_dim]), tf.reshape(weights, [-1])


def stream_loss(
    outputs,
    batch,
    *,
    variant,
    alpha,
    beta,
    sparsity_kind="entropy",
    global_batch_size,
    num_replicas=1,
    trimmed_outputs=None,
    trimmed_batch=None,
    mmd_bandwidths=DEFAULT_MMD_BANDWIDTHS,
    mmd_segments_per_video=None,
):
    """TSRNet's loss L = L_SA + L_KT for one stream, for one replica's share of a training step.

    Per-example terms, each reduced with `tf.nn.compute_average_loss(·, global_batch_size)` (sum
    over the local examples / global batch, so summing over replicas gives the global mean):
        classification          L_class of the untrimmed videos;
        smoothness              α · Σ_{i<n} (a_i − a_{i+1})²      (attention variants);
        sparsity                β · `sparsity_loss(kind=sparsity_kind)` (attention variants);
        trimmed_classification  L_class of the trimmed clips, which also train the classifier
                                (knowledge-transfer variants; trimmed pairs have the same
                                global batch size).
    Batch-level terms (knowledge-transfer variants), divided by `num_replicas`:
        mmd_fc1                 MMD²(FC1(T), FC1(U));
        mmd_fc2                 MMD²(FC2(T), FC2(U))  (dropped by `tsrnet_no_fc2`).
    MMD is estimated per replica from its local batch (segment rows of its trimmed clips vs. its
    untrimmed videos, padding weighted 0); dividing by `num_replicas` makes the cross-replica sum
    of losses (and of gradients) the mean of the local MMD² estimates. On one replica it is the
    plain batch estimate.

    Variants: `two_stream` (mean pooling; classification only), `srnet` (+ attention
    regularisers), `tsrnet` (+ trimmed classification, both MMD terms), `tsrnet_no_fc2` (FC1 MMD
    only). Non-transfer variants ignore trimmed inputs.

    Args:
        outputs: model outputs for the untrimmed batch (`logits`, `attention`, `fc1`, `fc2`, and
            `attention_logits` for `sigmoid_l1`).
        batch: untrimmed batch with `labels` `[B, C]` and `mask` `[B, T]`.
        variant: one of `VARIANTS`.
        alpha: smoothness weight α.
        beta: sparsity weight β.
        sparsity_kind: one of `SPARSITY_KINDS`.
        global_batch_size: examples per step over all replicas.
        num_replicas: replicas in sync.
        trimmed_outputs: model outputs for the trimmed batch (transfer variants).
        trimmed_batch: trimmed batch with `labels` and `mask` (transfer variants).
        mmd_bandwidths: kernel multipliers for `mmd_squared`.
        mmd_segments_per_video: None (all valid segments) or k (see `segment_rows`).

    Returns:
        dict of scalars: "total" and its parts "classification", "smoothness", "sparsity",
        "trimmed_classification", "mmd_fc1", "mmd_fc2" — each as it enters the total (weighted,
        reduced); unused parts are 0.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; expected one of {VARIANTS}")

    def average(per_example):
        return tf.nn.compute_average_loss(per_example, global_batch_size=global_batch_size)

    zero = tf.constant(0.0, tf.float32)
    mask = batch["mask"]
    classification = multilabel_classification_loss(batch["labels"], outputs["logits"])
    parts = {
        "classification": average(classification),
        "smoothness": zero,
        "sparsity": zero,
        "trimmed_classification": zero,
        "mmd_fc1": zero,
        "mmd_fc2": zero,
    }
    if variant in ATTENTION_VARIANTS:
        attention = outputs["attention"]
        parts["smoothness"] = average(alpha * smoothness_loss(attention, mask))
        parts["sparsity"] = average(
            beta
            * sparsity_loss(
                attention, mask, kind=sparsity_kind, logits=outputs.get("attention_logits")
            )
        )
    if variant in KNOWLEDGE_TRANSFER_VARIANTS:
        if trimmed_outputs is None or trimmed_batch is None:
            raise ValueError(f"variant {variant!r} needs trimmed_outputs and trimmed_batch")
        parts["trimmed_classification"] = average(
            multilabel_classification_loss(trimmed_batch["labels"], trimmed_outputs["logits"])
        )
        layers = ("fc1", "fc2") if variant == "tsrnet" else ("fc1",)
        for layer in layers:
            trimmed_rows, trimmed_weights = segment_rows(
                trimmed_outputs[layer], trimmed_batch["mask"], mmd_segments_per_video
            )
            untrimmed_rows, untrimmed_weights = segment_rows(
                outputs[layer], mask, mmd_segments_per_video
            )
            # MMD²(FC(T), FC(U)) on this replica's batch, / replicas (see docstring).
            parts[f"mmd_{layer}"] = (
                mmd_squared(
                    trimmed_rows,
                    untrimmed_rows,
                    bandwidths=mmd_bandwidths,
                    x_weights=trimmed_weights,
                    y_weights=untrimmed_weights,
                )
                / num_replicas
            )
    return {"total": tf.add_n(list(parts.values())), **parts}


# --- Convex clustering (Peng et al.) ---
#
# Peng et al. compare each segment feature φ(s) of a video x with the exemplars D_c of its labelled
# class c, weighted by their representativeness q (rows of Q on the simplex; see tfwsar.clustering,
# which builds D and fits Q with the network fixed):
#
#     L_cc(x) = −Σ_{s∈x} p(s|x) · log Σ_{s'∈D_c} q_{s'} · exp(−α d(φ(s), φ(s')))
#
# Decisions (the same as tfwsar.clustering, pass the same `squared_distance` to both):
# - d is the Euclidean distance, as printed (`squared_distance=True` gives ‖·‖², a Gaussian kernel).
#   Its square root has an infinite derivative at d = 0 (a segment equal to an exemplar, which is
#   common right after D is collected); there the gradient is taken as 0, a valid subgradient.
# - A video with several labels averages L_cc over its labelled classes (matching the weights
#   p(s|x)/|Y_x| that tfwsar.clustering.SegmentSetCollector gives Q's fit). Classes with no valid
#   exemplar are left out of the average; a video with none of its classes left gets 0.
# - Q is a constant here, passed as log q with −inf for padded exemplars (q = 0):
#   `tfwsar.clustering.log_representativeness(q, valid)` or the fit's `info["log_q"]`.
#   The log-sum is a logsumexp, so α·d in the thousands neither underflows nor gives NaN.


def _convex_clustering_log_kernel(features, exemplars, alpha, squared_distance):
    """log t = −α d(φ(s), φ(s')): features `[..., T, m]`, exemplars `[..., n, m]` → `[..., T, n]`."""
    # ‖a − b‖² = ‖a‖² + ‖b‖² − 2a·b after moving the origin to the exemplars' mean: distances do
    # not change, and the cancellation error (relative to ‖a‖², ‖b‖²) shrinks to the spread scale.
    center = tf.stop_gradient(tf.reduce_mean(exemplars, axis=-2, keepdims=True))
    features = features - center
    exemplars = exemplars - center
    squared = (
        tf.reduce_sum(tf.square(features), axis=-1)[..., :, None]
        + tf.reduce_sum(tf.square(exemplars), axis=-1)[..., None, :]
        - 2.0 * tf.matmul(features, exemplars, transpose_b=True)
    )
    squared = tf.maximum(squared, 0.0)
    if squared_distance:
        distance = squared
    else:
        # sqrt with gradient 0 (not inf → NaN) where the distance is 0.
        positive = squared > 0
        distance = tf.where(
            positive, tf.sqrt(tf.where(positive, squared, tf.ones_like(squared))), tf.zeros_like(squared)
        )
    return -tf.cast(alpha, features.dtype) * distance


def _masked_log_q(log_q, valid, dtype):
    log_q = tf.cast(log_q, dtype)
    if valid is not None:
        log_q = tf.where(tf.cast(valid, tf.bool), log_q, tf.constant(-float("inf"), dtype))
    return log_q


def segment_convex_clustering_cost(features, database, log_q, alpha, squared_distance=False, valid=None):
    """Per-segment cost −log Σ_{s'∈D_c} q_{s'} exp(−α d(φ(s), φ(s'))) (Peng et al., test time).

    At test time each class keeps the k segments of least cost against its exemplars D_c
    (`tfwsar.clustering.select_segments`).

    Args:
        features: `[T, m]` segment features φ(s) of one video.
        database: `[n, m]` exemplars D_c of one class, or `[C, n, m]` for every class.
        log_q: `[n]` (or `[C, n]`) log representativeness, −inf for padded exemplars.
        alpha: α of the kernel.
        squared_distance: False = Euclidean d (paper), True = squared Euclidean.
        valid: optional `[n]` (or `[C, n]`) bool; exemplars where False are ignored.

    Returns:
        `[T]` (or `[T, C]` for a `[C, n, m]` database); +inf for a class without exemplars.
    """
    features = tf.convert_to_tensor(features)
    dtype = features.dtype
    database = tf.cast(database, dtype)
    log_q = _masked_log_q(log_q, valid, dtype)
    if database.shape.rank == 2:
        log_t = _convex_clustering_log_kernel(features, database, alpha, squared_distance)  # [T, n]
        return -tf.reduce_logsumexp(log_q[None, :] + log_t, axis=-1)
    log_t = _convex_clustering_log_kernel(features[None], database, alpha, squared_distance)  # [C, T, n]
    cost = -tf.reduce_logsumexp(log_q[:, None, :] + log_t, axis=-1)  # [C, T]
    return tf.transpose(cost)


def convex_clustering_loss(
    features, attention, mask, labels, database, log_q, alpha, squared_distance=False, valid=None
):
    """L_cc per video, averaged over its labelled classes (Peng et al.).

        L_cc(x) = (1/|Y_x|) Σ_{c∈Y_x} −Σ_{s∈x} p(s|x) · log Σ_{s'∈D_c} q_{s'} exp(−α d(φ(s), φ(s')))

    Only (video, labelled class) pairs are evaluated (a gather over `tf.where(labels > 0)`), so
    memory is O(pairs · T · n), not O(B · T · C · n); it also compiles with XLA. Padded segments
    (mask 0) and padded exemplars (log q = −inf) contribute nothing, to the value or to the
    gradient. Differentiable with respect to `features` and `attention` (and `database`); Q is a
    constant. Scale with `tf.nn.compute_average_loss` like any per-example loss.

    Args:
        features: `[B, T, m]` segment features φ(s).
        attention: `[B, T]` p(s|x) (sums to 1 over the valid segments of a video).
        mask: `[B, T]` 1 = valid segment, 0 = padding (None = all valid).
        labels: `[B, C]` multi-hot video labels.
        database: `[C, n, m]` exemplar features D (zeros at padding).
        log_q: `[C, n]` log representativeness, −inf for padded exemplars.
        alpha: α of the kernel.
        squared_distance: False = Euclidean d (paper), True = squared Euclidean.
        valid: optional `[C, n]` bool exemplar validity (sets log q = −inf where False).

    Returns:
        `[B]` L_cc per video (0 for a video with no labelled class that has exemplars).
    """
    features = tf.convert_to_tensor(features)
    dtype = features.dtype
    attention = tf.cast(attention, dtype)
    if mask is not None:
        attention = attention * tf.cast(tf.cast(mask, dtype) > 0, dtype)
    database = tf.cast(database, dtype)
    log_q = _masked_log_q(log_q, valid, dtype)
    has_exemplars = tf.reduce_any(log_q > -float("inf"), axis=1)  # [C]
    # A class without exemplars would give log 0 = −inf; it is excluded below, and its row is
    # replaced by finite values so no inf·0 or NaN appears in the (discarded) computation.
    log_q = tf.where(has_exemplars[:, None], log_q, tf.zeros_like(log_q))
    positive = tf.logical_and(tf.cast(labels, dtype) > 0, has_exemplars[None, :])  # [B, C]
    pairs = tf.where(positive)  # [P, 2]: (video, class)
    video, class_index = pairs[:, 0], pairs[:, 1]
    # Per-(video, segment) gather_nd indices [P, T, 2], so that the gradients reaching features and
    # attention are dense tensors (tf.gather over videos would give IndexedSlices).
    # (Built by broadcasting only: XLA keeps track of the dynamic number of pairs that way.)
    segment_range = tf.range(tf.shape(features, out_type=tf.int64)[1])[None, :]  # [1, T]
    segment_indices = tf.stack(
        [video[:, None] + tf.zeros_like(segment_range), segment_range + tf.zeros_like(video)[:, None]],
        axis=-1,
    )
    log_t = _convex_clustering_log_kernel(
        tf.gather_nd(features, segment_indices),
        tf.gather(database, class_index),
        alpha,
        squared_distance,
    )  # [P, T, n]
    # log Σ_{s'} q_{s'} t_{s,s'} for each segment of each pair.
    log_mixture = tf.reduce_logsumexp(tf.gather(log_q, class_index)[:, None, :] + log_t, axis=-1)
    pair_loss = -tf.reduce_sum(tf.gather_nd(attention, segment_indices) * log_mixture, axis=-1)  # [P]
    batch_size = tf.shape(features)[0]
    total = tf.math.unsorted_segment_sum(pair_loss, video, tf.cast(batch_size, tf.int64))
    num_classes = tf.reduce_sum(tf.cast(positive, dtype), axis=1)
    return tf.math.divide_no_nan(total, num_classes)


# --- Baselines: W-TALC (Paul et al., ECCV 2018), STPN (Nguyen et al., CVPR 2018), BaS-Net (Lee et
# al., AAAI 2020). The method modules in tfwsar.methods compose these terms; each takes `[B, ...]`
# tensors and a `[B, T]` mask (1 = valid segment) so padding never counts.

TOPK_ROUNDINGS = ("ceil", "floor")


def topk_temporal_mean(values, mask=None, divisor=8, rounding="ceil"):
    """Per channel, the mean of the k largest values over a video's valid segments.

        k = ⌈n / divisor⌉ ("ceil", W-TALC) or ⌊n / divisor⌋ ("floor", BaS-Net), kept in [1, n]

    with n the number of valid segments of the video (k = 0 and a result of 0 when n = 0). Padded
    segments are never among the k, whatever they hold, and get no gradient.

    Args:
        values: `[B, T, C]` per-segment scores (e.g. class logits).
        mask: `[B, T]` 1 = valid segment, 0 = padding (None: all valid).
        divisor: r in k = n / r (8 in both papers).
        rounding: one of `TOPK_ROUNDINGS`.

    Returns:
        `[B, C]`.
    """
    if rounding not in TOPK_ROUNDINGS:
        raise ValueError(f"unknown rounding {rounding!r}; expected one of {TOPK_ROUNDINGS}")
    values = tf.convert_to_tensor(values)
    valid = _segment_weights(values, mask)  # [B, T]
    count = tf.reduce_sum(valid, axis=1)  # n, [B]
    round_k = tf.math.ceil if rounding == "ceil" else tf.math.floor
    k = tf.minimum(tf.maximum(round_k(count / divisor), 1.0), count)
    filled = tf.where(valid[:, :, None] > 0, values, values.dtype.min)
    ranked = tf.sort(filled, axis=1, direction="DESCENDING")  # [B, T, C]
    rank = tf.range(tf.shape(values)[1], dtype=tf.float32)
    kept = rank[None, :, None] < k[:, None, None]
    total = tf.reduce_sum(tf.where(kept, ranked, tf.zeros_like(ranked)), axis=1)
    return tf.math.divide_no_nan(total, tf.cast(k, values.dtype)[:, None])


def topk_mil_loss(labels, segment_logits, mask=None, divisor=8, rounding="ceil"):
    """W-TALC's multiple-instance learning loss L_MILL.

        s_c = mean of the top-k segment logits of class c (k = ⌈n/8⌉, `topk_temporal_mean`)
        L_MILL = − Σ_c (y_c / Σ_k y_k) · log softmax(s)_c

    Args:
        labels: `[B, C]` multi-hot.
        segment_logits: `[B, T, C]`.
        mask: `[B, T]` 1 = valid segment.
        divisor, rounding: as `topk_temporal_mean`.

    Returns:
        `[B]` per-example loss.
    """
    video_logits = topk_temporal_mean(segment_logits, mask, divisor=divisor, rounding=rounding)
    return multilabel_classification_loss(labels, video_logits)


def _cosine_distance(u, v):
    """1 − cos(u, v) along the last axis (0 vectors count as orthogonal to everything)."""
    u, v = tf.math.l2_normalize(u, axis=-1), tf.math.l2_normalize(v, axis=-1)
    return 1.0 - tf.reduce_sum(u * v, axis=-1)


def co_activity_similarity_loss(features, segment_logits, labels, mask=None, margin=0.5):
    """W-TALC's co-activity similarity loss L_CASL over the pairs (0, 1), (2, 3), … of the batch.

    For a video with n valid segments, features X `[T, D]` and class logits `[T, C]`, per class c:

        A_c   = softmax over the valid t of the logits of c           (attention over time)
        Hf_c  = Σ_t A_c(t) x_t                                         high-attention feature
        Lf_c  = Σ_t (1 − A_c(t)) x_t / max(n − 1, 1)                   low-attention feature
        d[u, v] = 1 − cos(u, v)

    and for a pair (m, n) of videos that both have class c:

        L_c(m, n) = ½ · ( max(0, d[Hf_c^m, Hf_c^n] − d[Hf_c^m, Lf_c^n] + ξ)
                        + max(0, d[Hf_c^m, Hf_c^n] − d[Lf_c^m, Hf_c^n] + ξ) )

    L_CASL is the mean of L_c(m, n) over all (pair, shared class), ξ = `margin` (0.5 in the paper);
    0 when no pair shares a class. Pairs are consecutive rows; a pair sharing no class adds
    nothing, and an odd last row is unpaired. This is a batch-level term: one value for the batch
    (divide by the number of replicas, not by the batch size).

    Args:
        features: `[B, T, D]` segment features X (the layer before the classifier).
        segment_logits: `[B, T, C]`.
        labels: `[B, C]` multi-hot (a class is present where > 0).
        mask: `[B, T]` 1 = valid segment (None: all valid).
        margin: ξ.

    Returns:
        Scalar L_CASL.
    """
    features = tf.cast(features, tf.float32)
    segment_logits = tf.cast(segment_logits, tf.float32)
    valid = _segment_weights(segment_logits, mask)[:, :, None]  # [B, T, 1]
    count = tf.reduce_sum(valid, axis=1, keepdims=True)  # n, [B, 1, 1]
    # A: softmax over the valid segments only (padding −1e9 before, 0 after).
    attention = tf.nn.softmax(tf.where(valid > 0, segment_logits, -1e9), axis=1) * valid
    low_attention = (1.0 - attention) * valid / tf.maximum(count - 1.0, 1.0)
    features = features * valid
    high = tf.einsum("btd,btc->bcd", features, attention)  # Hf, [B, C, D]
    low = tf.einsum("btd,btc->bcd", features, low_attention)  # Lf, [B, C, D]

    paired = 2 * (tf.shape(features)[0] // 2)
    first, second = slice(0, paired, 2), slice(1, paired, 2)
    distance_high = _cosine_distance(high[first], high[second])  # d[Hf^m, Hf^n], [P, C]
    distance_first_low = _cosine_distance(high[first], low[second])  # d[Hf^m, Lf^n]
    distance_second_low = _cosine_distance(low[first], high[second])  # d[Lf^m, Hf^n]
    hinge = 0.5 * (
        tf.nn.relu(distance_high - distance_first_low + margin)
        + tf.nn.relu(distance_high - distance_second_low + margin)
    )
    present = tf.cast(tf.cast(labels, tf.float32) > 0, tf.float32)
    shared = present[first] * present[second]  # [P, C]
    return tf.math.divide_no_nan(tf.reduce_sum(hinge * shared), tf.reduce_sum(shared))


def sigmoid_classification_loss(labels, logits):
    """STPN's multi-label loss: binary cross-entropy of σ(z_c) against y_c, mean over classes.

        L_class = (1/C) Σ_c − [y_c log σ(z_c) + (1 − y_c) log(1 − σ(z_c))]

    Args:
        labels: `[B, C]` multi-hot.
        logits: `[B, C]` video-level logits z.

    Returns:
        `[B]` per-example loss.
    """
    labels = tf.cast(labels, tf.float32)
    logits = tf.cast(logits, tf.float32)
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels, logits), axis=-1)


L1_REDUCTIONS = ("sum", "mean")


def segment_l1_loss(weights, mask=None, reduction="sum"):
    """‖w‖₁ of non-negative per-segment weights over the valid segments (STPN's L_sparsity on the
    attention λ, BaS-Net's L_norm on the foreground weights).

        "sum":  Σ_t |w_t|            (both papers' ‖·‖₁; their code sums over T = 400 / 750)
        "mean": (1/n) Σ_t |w_t|      (independent of the video's length)

    Args:
        weights: `[B, T]`.
        mask: `[B, T]` 1 = valid segment.
        reduction: one of `L1_REDUCTIONS`.

    Returns:
        `[B]` per-example penalty.
    """
    if reduction not in L1_REDUCTIONS:
        raise ValueError(f"unknown reduction {reduction!r}; expected one of {L1_REDUCTIONS}")
    weights = tf.cast(weights, tf.float32)
    valid = _segment_weights(weights, mask)
    total = tf.reduce_sum(valid * tf.abs(weights), axis=-1)
    if reduction == "sum":
        return total
    return tf.math.divide_no_nan(total, tf.reduce_sum(valid, axis=-1))


def background_class_labels(labels):
    """BaS-Net's targets over C + 1 classes (the last is background), each normalised to sum 1.

        base branch:         [y, 1] / (Σ y + 1)   every video contains background
        suppression branch:  [y, 0] / Σ y         background is suppressed

    Args:
        labels: `[B, C]` multi-hot.

    Returns:
        `(base [B, C + 1], suppressed [B, C + 1])`; a row without labels gives background only
        (base) and all zeros (suppressed).
    """
    labels = tf.cast(labels, tf.float32)
    ones = tf.ones_like(labels[:, :1])
    base = tf.concat([labels, ones], axis=-1)
    suppressed = tf.concat([labels, tf.zeros_like(ones)], axis=-1)
    normalise = lambda target: tf.math.divide_no_nan(  # noqa: E731
        target, tf.reduce_sum(target, axis=-1, keepdims=True)
    )
    return normalise(base), normalise(suppressed)


def softmax_binary_cross_entropy(targets, logits):
    """Binary cross-entropy of softmax probabilities, mean over classes (BaS-Net's official code:
    `BCELoss` on the softmax video scores).

        p = softmax(z),   L = (1/K) Σ_c − [t_c log p_c + (1 − t_c) log(1 − p_c)]

    log(1 − p_c) is computed as log Σ_{j≠c} exp z_j − log Σ_j exp z_j, exact even where p_c → 1.

    Args:
        targets: `[B, K]` target probabilities t (e.g. from `background_class_labels`).
        logits: `[B, K]` video-level logits z, K ≥ 2.

    Returns:
        `[B]` per-example loss.
    """
    targets = tf.cast(targets, tf.float32)
    logits = tf.cast(logits, tf.float32)
    log_normaliser = tf.reduce_logsumexp(logits, axis=-1, keepdims=True)
    log_probability = logits - log_normaliser
    others = tf.logical_not(tf.eye(tf.shape(logits)[-1], dtype=tf.bool))  # row c: all j ≠ c
    excluded = tf.where(others[None], logits[:, None, :], logits.dtype.min)  # [B, K, K]
    log_complement = tf.reduce_logsumexp(excluded, axis=-1) - log_normaliser
    return -tf.reduce_mean(
        targets * log_probability + (1.0 - targets) * log_complement, axis=-1
    )

"""Convex clustering of segment features (Peng et al.): exemplar database D and representativeness Q.

Host-side numpy (no Keras, no TensorFlow): the pieces of the convex-clustering alternation that run
between training phases with the network fixed. The differentiable loss that uses D and Q inside the
training step is `tfwsar.losses.convex_clustering_loss`.

    D ∈ R^{C×n×m}        per class c, the n highest-scoring segment features φ(s) among the
                         training videos labelled c                     (`ExemplarCollector`, `merge`)
    Q ∈ [0,1]^{C×n}      representativeness of each exemplar, rows on the simplex
                                                                        (`fit_representativeness`)
    t_{s,s'} = exp(−α d(φ(s), φ(s')))                     similarity of a segment and an exemplar
    f_c(q)   = Σ_s p(s) log z_s,   z_s = Σ_{s'} q_{s'} t_{s,s'}        (`convex_clustering_objective`)
    η_{s'}   = Σ_s p(s) t_{s,s'} / z_s,   q ← η ⊙ q                    (the Q update)

Decisions (shared with `tfwsar.losses`; pass the same `squared_distance` to both):

* Distance. d is the Euclidean distance ‖φ(s) − φ(s')‖, as written in the paper
  (`squared_distance=False`, the default). `squared_distance=True` uses ‖·‖², i.e. a Gaussian kernel
  t = exp(−α‖·‖²), the Bregman-divergence form of Lashkari & Golland's convex clustering.
* Weights. A segment s of a video x labelled c belongs to class c's segment set with weight
  p(s|x) / |Y_x| (attention times mask, divided by the number of labels of x; see
  `SegmentSetCollector`). `fit_representativeness` normalises each class's weights by their total,
  so Σ_s p(s) = 1. Then Σ_{s'} q_{s'} η_{s'} = Σ_s p(s) = 1 and the multiplicative update keeps q
  on the simplex. Because the per-video loss averages over the video's labelled classes, fitting Q
  on these sets maximises exactly −Σ_x L_cc(x) over the collected videos (the normalisation by
  the class total only rescales f_c).
* Log space. The fit works with log t = −α d and log q, so α·d in the thousands neither underflows
  nor produces NaN. The sums z_s and η_{s'} are logsumexps taken with a per-segment shift
  M_s = max_{s'} log t_{s,s'} and a per-class shift max log q, which turns them into two matrix
  products per iteration (fast); any sum that comes out below 1e-200 in the shifted scale (where
  terms could have underflowed) is recomputed exactly with a plain logsumexp. Padded (invalid)
  exemplars have log q = −inf, i.e. q = 0, and a multiplicative update never makes them nonzero.
* Ties (exemplar selection). Equal scores are ordered by a key, smaller first: by default the
  arrival position of the segment (earlier wins), or keys given by the caller; `merge` combines
  partial databases into exactly the database one collector would have built.
* Stopping. `gap = |max_{s'} log η_{s'} − Σ_{s'} q_{s'} log η_{s'}|` < ε. Since f is concave,
  f(q*) − f(q) ≤ log Σ q* η ≤ max log η ≤ gap (Σ q log η ≤ log Σ q η = 0): the gap bounds the
  suboptimality, and at convergence η ≤ e^ε everywhere and η ≈ 1 on the support (the KKT
  conditions of max f on the simplex).
"""

import typing

import numpy as np

# Shifted sums below this are recomputed with an exact logsumexp: everything that can underflow in
# float64 (< 1e-308) is then a relative 1e-108 of the sum or less.
_UNDERFLOW_GUARD = 1e-200
_NO_KEY = np.iinfo(np.int64).max


# ---------------------------------------------------------------------------------------------
# Exemplar database D
# ---------------------------------------------------------------------------------------------


class ExemplarDatabase(typing.NamedTuple):
    """The exemplar database D of Peng et al. (result of `ExemplarCollector` / `merge`).

    Attributes:
        features: `[C, n, m]` exemplar features φ(s'), best score first; zeros where not `valid`.
        scores: `[C, n]` float64 segment score of class c of each exemplar; −inf where not `valid`.
        counts: `[C]` int64 number of valid exemplars per class (= min(n, candidates)).
        valid: `[C, n]` bool, False for padding (a class with fewer than n candidate segments).
        keys: `[C, n]` int64 tie-breaking key of each exemplar (see `ExemplarCollector`); −1 where
            not `valid`.
        candidates: `[C]` int64 number of candidate segments offered for each class.
        segments_seen: int, number of segment positions (B·T, padding included) offered.
        automatic_keys: True when keys are arrival positions, False when the caller gave
            `segment_keys`, None when nothing was collected.
    """

    features: np.ndarray
    scores: np.ndarray
    counts: np.ndarray
    valid: np.ndarray
    keys: np.ndarray
    candidates: np.ndarray
    segments_seen: int
    automatic_keys: typing.Optional[bool]


def _select_top(scores, keys, valid, count):
    """Per row, the positions of the `count` best entries by (valid first, score desc, key asc).

    Args:
        scores: `[C, N]` float64 with N ≥ count.
        keys: `[C, N]` int64.
        valid: `[C, N]` bool.
        count: n.

    Returns:
        `[C, n]` int64 positions into the N columns, sorted best first.
    """
    num_rows, num_columns = scores.shape
    masked_scores = np.where(valid, scores, -np.inf)
    masked_keys = np.where(valid, keys, _NO_KEY)
    if num_columns > count:
        chosen = np.argpartition(-masked_scores, count - 1, axis=1)[:, :count]
        chosen_scores = np.take_along_axis(masked_scores, chosen, axis=1)
        threshold = chosen_scores.min(axis=1, keepdims=True)
        # argpartition picks arbitrarily among entries tied at the n-th score; those rows (rare:
        # exact float ties) are redone with a full (score desc, key asc) sort.
        tied_total = np.sum(masked_scores == threshold, axis=1)
        tied_chosen = np.sum(chosen_scores == threshold, axis=1)
        ambiguous = (tied_total > tied_chosen) & np.isfinite(threshold[:, 0])
        for row in np.flatnonzero(ambiguous):
            order = np.lexsort((masked_keys[row], -masked_scores[row]))
            chosen[row] = order[:count]
    else:
        chosen = np.broadcast_to(np.arange(num_columns), (num_rows, num_columns)).copy()
    chosen_scores = np.take_along_axis(masked_scores, chosen, axis=1)
    chosen_keys = np.take_along_axis(masked_keys, chosen, axis=1)
    rows = np.repeat(np.arange(num_rows), count)
    order = np.lexsort((chosen_keys.ravel(), -chosen_scores.ravel(), rows)).reshape(num_rows, count)
    return np.take_along_axis(chosen, order % count, axis=1)


class ExemplarCollector:
    """Streams over batches and keeps, per class, the n highest-scoring segment features.

    Peng et al.'s exemplar database: for class c, the n segments with the highest class-c score
    among the (valid, unpadded) segments of the training videos labelled c. Segments of videos not
    labelled c never enter class c, whatever their score.

    Tie-breaking (deterministic): among equal scores the segment with the smaller key wins. By
    default the key is the arrival position (segments offered before this batch + b·T + t), so the
    earlier segment wins; `merge` treats its parts as if their streams were concatenated in list
    order, which makes "split the data, collect separately, merge" identical to collecting it all
    at once. Pass `segment_keys` (unique non-negative int64 per segment, e.g.
    video_index · max_T + t) for a result independent of the order of the data.

    Args:
        num_classes: C.
        num_exemplars: n, exemplars kept per class.
        feature_dim: m, size of φ(s).
        dtype: numpy dtype of the stored features.
    """

    def __init__(self, num_classes, num_exemplars, feature_dim, dtype=np.float32):
        for name, value in (("num_classes", num_classes), ("num_exemplars", num_exemplars),
                            ("feature_dim", feature_dim)):
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.num_classes = int(num_classes)
        self.num_exemplars = int(num_exemplars)
        self.feature_dim = int(feature_dim)
        self.dtype = np.dtype(dtype)
        self._features = np.zeros((self.num_classes, self.num_exemplars, self.feature_dim), self.dtype)
        self._scores = np.full((self.num_classes, self.num_exemplars), -np.inf)
        self._keys = np.full((self.num_classes, self.num_exemplars), _NO_KEY, dtype=np.int64)
        self._valid = np.zeros((self.num_classes, self.num_exemplars), dtype=bool)
        self._candidates = np.zeros(self.num_classes, dtype=np.int64)
        self._segments_seen = 0
        self._automatic_keys = None

    def update(self, segment_scores, features, mask, labels, segment_keys=None):
        """Offers one batch of segments.

        Args:
            segment_scores: `[B, T, C]` (or `[T, C]` for one video) score of class c on segment t.
            features: `[B, T, m]` (or `[T, m]`) segment features φ.
            mask: `[B, T]` (or `[T]`), 1 = valid segment, 0 = padding; None = all valid.
            labels: `[B, C]` (or `[C]`) multi-hot video labels.
            segment_keys: optional `[B, T]` int64 tie-breaking keys (see the class docstring).
        """
        scores = np.asarray(segment_scores, dtype=np.float64)
        features = np.asarray(features)
        labels = np.asarray(labels)
        if scores.ndim == 2:
            scores, features, labels = scores[None], features[None], labels.reshape(1, -1)
            mask = None if mask is None else np.asarray(mask).reshape(1, -1)
            segment_keys = None if segment_keys is None else np.asarray(segment_keys).reshape(1, -1)
        batch_size, num_segments, num_classes = scores.shape
        if num_classes != self.num_classes:
            raise ValueError(f"segment_scores has {num_classes} classes, expected {self.num_classes}")
        if features.shape != (batch_size, num_segments, self.feature_dim):
            raise ValueError(f"features shape {features.shape} does not match scores {scores.shape} "
                             f"and feature_dim {self.feature_dim}")
        if labels.shape != (batch_size, self.num_classes):
            raise ValueError(f"labels shape {labels.shape}, expected {(batch_size, self.num_classes)}")
        valid_segment = (np.ones((batch_size, num_segments), bool) if mask is None
                         else np.asarray(mask).reshape(batch_size, num_segments) > 0)
        # candidate[c, b·T + t]: segment (b, t) is real and video b is labelled c.
        candidate = (valid_segment[:, :, None] & (labels > 0)[:, None, :])
        candidate = candidate.reshape(-1, self.num_classes).T
        batch_scores = scores.reshape(-1, self.num_classes).T
        if not np.all(np.isfinite(batch_scores[candidate])):
            raise ValueError("segment_scores has NaN or infinite values on candidate segments")

        automatic = segment_keys is None
        if self._automatic_keys is not None and self._automatic_keys != automatic:
            raise ValueError("segment_keys must be given for every batch or for none")
        self._automatic_keys = automatic
        if automatic:
            batch_keys = self._segments_seen + np.arange(batch_size * num_segments, dtype=np.int64)
        else:
            batch_keys = np.asarray(segment_keys, dtype=np.int64).reshape(-1)
            if batch_keys.shape[0] != batch_size * num_segments or np.any(batch_keys < 0):
                raise ValueError("segment_keys must be [B, T] non-negative integers")
        self._segments_seen += batch_size * num_segments
        self._candidates += candidate.sum(axis=1)

        count = self.num_exemplars
        combined_scores = np.concatenate([self._scores, batch_scores], axis=1)
        combined_keys = np.concatenate(
            [self._keys, np.broadcast_to(batch_keys, batch_scores.shape)], axis=1)
        combined_valid = np.concatenate([self._valid, candidate], axis=1)
        chosen = _select_top(combined_scores, combined_keys, combined_valid, count)

        # Positions < n are kept exemplars, the rest index the batch's flattened segments.
        from_store = chosen < count
        rows = np.arange(self.num_classes)[:, None]
        kept = self._features[rows, np.minimum(chosen, count - 1)]
        new = features.reshape(-1, self.feature_dim)[np.maximum(chosen - count, 0)]
        valid = np.take_along_axis(combined_valid, chosen, axis=1)
        self._features = np.where(valid[..., None], np.where(from_store[..., None], kept, new),
                                  0).astype(self.dtype)
        self._scores = np.where(valid, np.take_along_axis(combined_scores, chosen, axis=1), -np.inf)
        self._keys = np.where(valid, np.take_along_axis(combined_keys, chosen, axis=1), _NO_KEY)
        self._valid = valid

    def result(self):
        """The database collected so far, as an `ExemplarDatabase` (copies)."""
        return ExemplarDatabase(
            features=self._features.copy(),
            scores=self._scores.copy(),
            counts=self._valid.sum(axis=1).astype(np.int64),
            valid=self._valid.copy(),
            keys=np.where(self._valid, self._keys, -1),
            candidates=self._candidates.copy(),
            segments_seen=self._segments_seen,
            automatic_keys=self._automatic_keys,
        )


def merge(collectors_or_results):
    """Combines partial exemplar databases (replicas, workers) into the exact global top-n.

    The parts are treated as one stream in list order: with automatic keys, part j's keys are
    shifted by the segments seen by parts 0..j−1, so merging the collectors of consecutive chunks
    of the data equals collecting all of it with one collector (same exemplars, order and ties).

    Args:
        collectors_or_results: a sequence of `ExemplarCollector` and/or `ExemplarDatabase`, all
            with the same C, n and m.

    Returns:
        `ExemplarDatabase`.
    """
    parts = [part.result() if isinstance(part, ExemplarCollector) else part
             for part in collectors_or_results]
    if not parts:
        raise ValueError("merge needs at least one collector or result")
    shape = parts[0].features.shape
    for part in parts:
        if part.features.shape != shape:
            raise ValueError(f"cannot merge exemplar databases of shapes {shape} and "
                             f"{part.features.shape}")
    modes = {part.automatic_keys for part in parts if part.automatic_keys is not None}
    if len(modes) > 1:
        raise ValueError("cannot merge databases collected with and without segment_keys")
    automatic = modes.pop() if modes else None

    offset = 0
    keys = []
    for part in parts:
        shift = offset if automatic else 0
        keys.append(np.where(part.valid, part.keys + shift, _NO_KEY))
        offset += int(part.segments_seen)
    num_classes, count, _ = shape
    combined_scores = np.concatenate([part.scores for part in parts], axis=1)
    combined_valid = np.concatenate([part.valid for part in parts], axis=1)
    combined_keys = np.concatenate(keys, axis=1)
    combined_features = np.concatenate([part.features for part in parts], axis=1)
    chosen = _select_top(combined_scores, combined_keys, combined_valid, count)
    valid = np.take_along_axis(combined_valid, chosen, axis=1)
    features = np.take_along_axis(combined_features, chosen[..., None], axis=1)
    return ExemplarDatabase(
        features=np.where(valid[..., None], features, 0).astype(parts[0].features.dtype),
        scores=np.where(valid, np.take_along_axis(combined_scores, chosen, axis=1), -np.inf),
        counts=valid.sum(axis=1).astype(np.int64),
        valid=valid,
        keys=np.where(valid, np.take_along_axis(combined_keys, chosen, axis=1), -1),
        candidates=np.sum([part.candidates for part in parts], axis=0).astype(np.int64),
        segments_seen=offset,
        automatic_keys=automatic,
    )


# ---------------------------------------------------------------------------------------------
# Per-class weighted segment sets (the data Q is fitted on)
# ---------------------------------------------------------------------------------------------


class SegmentSets(typing.NamedTuple):
    """Per-class weighted segment sets sharing one feature pool (result of `SegmentSetCollector`).

    Attributes:
        features: `[S, m]` pool of segment features (each segment stored once).
        indices: list of C int64 arrays, the rows of `features` in class c's set.
        weights: list of C float64 arrays (same lengths), p(s|x) / |Y_x| of each member.
    """

    features: np.ndarray
    indices: list
    weights: list


class SegmentSetCollector:
    """Turns batches of (features, attention, mask, labels) into per-class weighted segment sets.

    A valid segment s of a video x labelled c joins class c's set with weight p(s|x) / |Y_x|: the
    attention (times the mask) divided by the number of labels of x. With this weight, fitting Q
    maximises exactly −Σ_x L_cc(x) where L_cc averages over the labelled classes (see
    `tfwsar.losses.convex_clustering_loss`). Videos without labels contribute nothing.

    Args:
        num_classes: C.
        min_weight: segments with weight ≤ min_weight are dropped (0 keeps every segment with
            positive attention; a small positive value shrinks the sets at a tiny cost in the
            objective).
        dtype: numpy dtype of the stored features.
    """

    def __init__(self, num_classes, min_weight=0.0, dtype=np.float32):
        self.num_classes = int(num_classes)
        self.min_weight = float(min_weight)
        self.dtype = np.dtype(dtype)
        self._features = []
        self._size = 0
        self._indices = [[] for _ in range(self.num_classes)]
        self._weights = [[] for _ in range(self.num_classes)]

    def update(self, features, attention, mask, labels):
        """Adds one batch.

        Args:
            features: `[B, T, m]` (or `[T, m]`) segment features φ.
            attention: `[B, T]` (or `[T]`) p(s|x).
            mask: `[B, T]` (or `[T]`), 1 = valid segment; None = all valid.
            labels: `[B, C]` (or `[C]`) multi-hot.
        """
        features = np.asarray(features)
        attention = np.asarray(attention, dtype=np.float64)
        labels = np.asarray(labels)
        if features.ndim == 2:
            features, attention, labels = features[None], attention[None], labels.reshape(1, -1)
            mask = None if mask is None else np.asarray(mask).reshape(1, -1)
        batch_size, num_segments = attention.shape
        if features.shape[:2] != (batch_size, num_segments):
            raise ValueError(f"features {features.shape} and attention {attention.shape} disagree")
        if labels.shape != (batch_size, self.num_classes):
            raise ValueError(f"labels shape {labels.shape}, expected {(batch_size, self.num_classes)}")
        valid = (np.ones_like(attention, bool) if mask is None
                 else np.asarray(mask).reshape(batch_size, num_segments) > 0)
        if not np.all(np.isfinite(attention[valid])) or np.any(attention[valid] < 0):
            raise ValueError("attention must be finite and non-negative on valid segments")
        positive = labels > 0
        num_labels = positive.sum(axis=1)
        share = np.where(num_labels > 0, 1.0 / np.maximum(num_labels, 1), 0.0)
        weight = attention * share[:, None]
        keep = valid & (weight > self.min_weight)
        video_index, segment_index = np.nonzero(keep)
        if video_index.size == 0:
            return
        self._features.append(features[video_index, segment_index].astype(self.dtype))
        kept_weight = weight[video_index, segment_index]
        rows = self._size + np.arange(video_index.size, dtype=np.int64)
        for class_index in np.flatnonzero(positive.any(axis=0)):
            member = positive[video_index, class_index]
            self._indices[class_index].append(rows[member])
            self._weights[class_index].append(kept_weight[member])
        self._size += video_index.size

    def result(self):
        """`SegmentSets` collected so far."""
        dim = self._features[0].shape[1] if self._features else 0
        pool = (np.concatenate(self._features, axis=0) if self._features
                else np.zeros((0, dim), self.dtype))
        indices = [np.concatenate(parts) if parts else np.zeros(0, np.int64)
                   for parts in self._indices]
        weights = [np.concatenate(parts) if parts else np.zeros(0, np.float64)
                   for parts in self._weights]
        return SegmentSets(features=pool, indices=indices, weights=weights)


def merge_segment_sets(segment_sets):
    """Concatenates `SegmentSets` from several replicas/workers (pools stacked, indices shifted)."""
    segment_sets = list(segment_sets)
    if not segment_sets:
        raise ValueError("merge_segment_sets needs at least one SegmentSets")
    num_classes = len(segment_sets[0].indices)
    offsets = np.cumsum([0] + [len(part.features) for part in segment_sets[:-1]])
    non_empty = [part.features for part in segment_sets if len(part.features)]
    pool = np.concatenate(non_empty, axis=0) if non_empty else segment_sets[0].features
    indices = [np.concatenate([part.indices[c] + offset
                               for part, offset in zip(segment_sets, offsets)])
               for c in range(num_classes)]
    weights = [np.concatenate([part.weights[c] for part in segment_sets])
               for c in range(num_classes)]
    return SegmentSets(features=pool, indices=indices, weights=weights)


def _class_getter(segment_features, segment_weights, num_classes):
    """A function c -> (features_c [S_c, m] float64, weights_c [S_c] float64 > 0) for any input form."""
    if isinstance(segment_features, SegmentSets):
        if segment_weights is not None:
            raise ValueError("pass segment_weights=None with SegmentSets (they carry the weights)")
        pool = segment_features.features
        members = [(pool, indices, weights) for indices, weights in
                   zip(segment_features.indices, segment_features.weights)]
    elif isinstance(segment_features, (list, tuple)):
        if segment_weights is None or len(segment_features) != len(segment_weights):
            raise ValueError("per-class segment_features need per-class segment_weights")
        members = [(np.asarray(features), None, weights)
                   for features, weights in zip(segment_features, segment_weights)]
    else:
        pool = np.asarray(segment_features)
        weights = np.asarray(segment_weights, dtype=np.float64)
        if pool.ndim != 2 or weights.shape != (num_classes, pool.shape[0]):
            raise ValueError(f"segment_features [S, m] needs segment_weights [C, S]; got "
                             f"{pool.shape} and {weights.shape}")
        members = [(pool, None, weights[c]) for c in range(num_classes)]
    if len(members) != num_classes:
        raise ValueError(f"{len(members)} segment sets for {num_classes} classes")

    def get(class_index):
        features, indices, weights = members[class_index]
        weights = np.asarray(weights, dtype=np.float64).reshape(-1)
        if indices is not None:
            features = features[np.asarray(indices)]
        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2 or features.shape[0] != len(weights):
            raise ValueError(f"class {class_index}: segment features {features.shape} do not match "
                             f"{len(weights)} weights")
        if not np.all(np.isfinite(weights)) or np.any(weights < 0):
            raise ValueError(f"segment weights of class {class_index} must be finite and >= 0")
        keep = weights > 0
        return features[keep], weights[keep]

    return get


# ---------------------------------------------------------------------------------------------
# Representativeness Q
# ---------------------------------------------------------------------------------------------


def _logsumexp(values, axis):
    """log Σ exp(values) along `axis`; −inf for an all −inf slice, never NaN."""
    largest = np.max(values, axis=axis, keepdims=True)
    largest = np.where(np.isfinite(largest), largest, 0.0)
    with np.errstate(divide="ignore"):
        total = np.log(np.sum(np.exp(values - largest), axis=axis, keepdims=True)) + largest
    return np.squeeze(total, axis=axis)


def log_kernel(segment_features, exemplars, alpha, squared_distance=False):
    """log t = −α d(φ(s), φ(s')) in float64.

    Args:
        segment_features: `[..., S, m]`.
        exemplars: `[..., n, m]`.
        alpha: α > 0.
        squared_distance: False = Euclidean d (paper), True = squared Euclidean.

    Returns:
        `[..., S, n]` float64.
    """
    segments = np.asarray(segment_features, dtype=np.float64)
    exemplars = np.asarray(exemplars, dtype=np.float64)
    center = np.mean(exemplars, axis=-2, keepdims=True)  # translation: smaller cancellation error
    segments, exemplars = segments - center, exemplars - center
    squared = (np.sum(segments ** 2, axis=-1)[..., :, None]
               + np.sum(exemplars ** 2, axis=-1)[..., None, :]
               - 2.0 * np.matmul(segments, np.swapaxes(exemplars, -1, -2)))
    squared = np.maximum(squared, 0.0)
    distance = squared if squared_distance else np.sqrt(squared)
    return -float(alpha) * distance


def log_representativeness(q, valid=None):
    """log q with −inf where q = 0 or the exemplar is padding (the `log_q` the loss takes)."""
    q = np.asarray(q, dtype=np.float64)
    keep = q > 0 if valid is None else (q > 0) & np.asarray(valid, bool)
    with np.errstate(divide="ignore"):
        return np.where(keep, np.log(np.where(keep, q, 1.0)), -np.inf)


class _Block:
    """Precomputed kernel of a block of classes, padded to a common number of segments S."""

    def __init__(self, log_t, log_p, valid):
        # log_t: [Cb, S, n] (−inf at invalid exemplars and padded segments); log_p: [Cb, S]
        # normalised weights (−inf at padding); valid: [Cb, n].
        self.log_t = log_t
        self.log_p = log_p
        self.valid = valid
        self.present = np.isfinite(log_p)
        row_max = np.max(log_t, axis=2)
        self.row_shift = np.where(np.isfinite(row_max), row_max, 0.0)  # M_s
        self.kernel = np.exp(log_t - self.row_shift[..., None])         # t / e^{M_s} ∈ [0, 1]
        self.weight = np.where(self.present, np.exp(log_p), 0.0)         # p(s)

    def step(self, log_q):
        """log z [Cb, S], log η [Cb, n] (−inf at invalid), objective f = Σ_s p log z [Cb]."""
        # z_s = Σ_{s'} q_{s'} t_{s,s'} = e^{M_s + A} Σ_{s'} (t/e^{M_s}) (q/e^{A}).
        shift = np.max(log_q, axis=1)                                    # A, finite (q ≠ 0)
        scaled_q = np.exp(log_q - shift[:, None])
        sums = np.matmul(self.kernel, scaled_q[..., None])[..., 0]
        with np.errstate(divide="ignore"):
            log_z = self.row_shift + shift[:, None] + np.log(sums)
        redo = self.present & (sums < _UNDERFLOW_GUARD)
        if redo.any():
            classes, segments = np.nonzero(redo)
            log_z[classes, segments] = _logsumexp(
                self.log_t[classes, segments, :] + log_q[classes, :], axis=1)
        log_z = np.where(self.present, log_z, 0.0)
        objective = np.sum(self.weight * log_z, axis=1)

        # η_{s'} = Σ_s p(s) t_{s,s'} / z_s = e^{R} Σ_s e^{r_s − R} (t/e^{M_s}),
        # r_s = log p(s) − log z_s + M_s.
        exponents = np.where(self.present, self.log_p - log_z + self.row_shift, -np.inf)
        exponent_shift = np.max(exponents, axis=1)
        scaled_weight = np.exp(exponents - exponent_shift[:, None])
        sums = np.matmul(scaled_weight[:, None, :], self.kernel)[:, 0, :]
        with np.errstate(divide="ignore"):
            log_eta = exponent_shift[:, None] + np.log(sums)
        redo = self.valid & (sums < _UNDERFLOW_GUARD)
        if redo.any():
            classes, exemplars = np.nonzero(redo)
            terms = self.log_p[classes, :] + self.log_t[classes, :, exemplars] - log_z[classes, :]
            log_eta[classes, exemplars] = _logsumexp(terms, axis=1)
        log_eta = np.where(self.valid, log_eta, -np.inf)
        return log_z, log_eta, objective


def _duality_gap(log_q, log_eta, valid):
    """|max_{s'} log η_{s'} − Σ_{s'} q_{s'} log η_{s'}| per class (valid exemplars only)."""
    q = np.exp(log_q)
    best = np.max(np.where(valid, log_eta, -np.inf), axis=1)
    expected = np.sum(np.where(valid & (q > 0), q * np.where(valid, log_eta, 0.0), 0.0), axis=1)
    return np.abs(best - expected)


def _initial_log_q(q_init, valid):
    num_classes, count = valid.shape
    if q_init is None:
        q = valid.astype(np.float64)
    else:
        q = np.asarray(q_init, dtype=np.float64)
        if q.shape != (num_classes, count) or not np.all(np.isfinite(q)) or np.any(q < 0):
            raise ValueError(f"q_init must be finite, non-negative, shape {(num_classes, count)}")
        q = np.where(valid, q, 0.0)
    totals = q.sum(axis=1, keepdims=True)
    empty = (totals[:, 0] == 0) & valid.any(axis=1)
    if np.any(empty):
        raise ValueError(f"q_init is zero on every valid exemplar of classes {np.flatnonzero(empty)}")
    return log_representativeness(q / np.where(totals > 0, totals, 1.0), valid)


def fit_representativeness(segment_features, segment_weights, database, valid, alpha,
                           epsilon=1e-4, max_iterations=1000, q_init=None, squared_distance=False,
                           record_history=False, max_block_elements=2 ** 22):
    """Fits Q with the network fixed: per class, maximise f_c(q) = Σ_s p(s) log Σ_{s'} q_{s'} t_{s,s'}.

    Multiplicative update (Peng et al.; Lashkari & Golland 2007), per class c:
        t_{s,s'} = exp(−α d(φ(s), φ(s'))),  z_s = Σ_{s'} t_{s,s'} q_{s'},
        η_{s'} = Σ_s p(s) t_{s,s'} / z_s,   q ← η ⊙ q,
    with the weights normalised so that Σ_s p(s) = 1, which keeps q on the simplex (it is
    renormalised after each step only to remove rounding drift). Each update never decreases f_c.
    A class stops when |max log η − Σ q log η| < ε (a bound on f_c(q*) − f_c(q), see the module
    docstring) or after `max_iterations` updates. Everything is computed in log space.

    Classes are processed together in blocks of at most `max_block_elements` kernel entries
    (classes sorted by set size, padded to the largest in the block).

    Args:
        segment_features: the per-class segment sets, one of
            - `SegmentSets` (from `SegmentSetCollector`), with `segment_weights=None`;
            - a list of C arrays `[S_c, m]`, with `segment_weights` a list of C arrays `[S_c]`;
            - one array `[S, m]`, with `segment_weights` `[C, S]` (0 = not in class c's set).
        segment_weights: see above; p(s|x) (only ratios within a class matter).
        database: `[C, n, m]` exemplar features, or an `ExemplarDatabase`.
        valid: `[C, n]` bool, False for padded exemplars (q stays 0 there); None = the
            database's `valid` (all True for a plain array).
        alpha: α > 0 of the kernel.
        epsilon: ε of the stopping rule.
        max_iterations: cap on updates per class.
        q_init: optional `[C, n]` non-negative starting Q (renormalised; uniform over the valid
            exemplars when None). An exemplar started at 0 stays at 0.
        squared_distance: False = Euclidean d (paper), True = squared Euclidean.
        record_history: also return every iterate (for tests and diagnostics).
        max_block_elements: memory budget of one block, in kernel entries.

    Returns:
        `(q [C, n] float64, info)`; `info` is a dict with
            `log_q` [C, n] (exact log q, −inf at padding, use it for the loss),
            `iterations` [C] int (updates applied), `gap` [C] (final stopping gap),
            `converged` [C] bool (gap < ε), `objective` [C] (final f_c),
            `total_weight` [C] (Σ of the raw weights, so Σ_x L_cc(x) = −Σ_c total_weight_c · f_c),
            `fitted` [C] bool (False for a class with no segment or no valid exemplar: its q is
            the (uniform) start, gap/objective are NaN);
            with `record_history`, `history` = {"q": [I+1, C, n], "objective": [I+1, C],
            "gap": [I+1, C]}: entry k is the state after k updates (a class that stopped earlier
            repeats its final state).
    """
    if isinstance(database, ExemplarDatabase):
        if valid is None:
            valid = database.valid
        database = database.features
    database = np.asarray(database, dtype=np.float64)
    if database.ndim != 3:
        raise ValueError(f"database must be [C, n, m], got shape {database.shape}")
    num_classes, count, _ = database.shape
    valid = (np.ones((num_classes, count), bool) if valid is None
             else np.asarray(valid, dtype=bool))
    if valid.shape != (num_classes, count):
        raise ValueError(f"valid shape {valid.shape}, expected {(num_classes, count)}")
    if not alpha > 0:
        raise ValueError(f"alpha must be positive, got {alpha}")
    get_class = _class_getter(segment_features, segment_weights, num_classes)

    log_q = _initial_log_q(q_init, valid)
    iterations = np.zeros(num_classes, dtype=np.int64)
    gap = np.full(num_classes, np.nan)
    objective = np.full(num_classes, np.nan)
    total_weight = np.zeros(num_classes)
    histories = {}

    sets = {}
    for class_index in range(num_classes):
        features, weights = get_class(class_index)
        total_weight[class_index] = weights.sum()
        if len(weights) and valid[class_index].any():
            sets[class_index] = (features, weights)
    fitted = np.zeros(num_classes, dtype=bool)
    fitted[list(sets)] = True

    # Blocks of classes, largest sets first, each within the memory budget.
    ordered = sorted(sets, key=lambda c: (-len(sets[c][1]), c))
    blocks = []
    for class_index in ordered:
        if blocks:
            block = blocks[-1]
            largest = len(sets[block[0]][1])
            if (len(block) + 1) * largest * count <= max_block_elements:
                block.append(class_index)
                continue
        blocks.append([class_index])

    for block_classes in blocks:
        block_classes = np.asarray(block_classes)
        num_segments = len(sets[block_classes[0]][1])
        log_t = np.full((len(block_classes), num_segments, count), -np.inf)
        log_p = np.full((len(block_classes), num_segments), -np.inf)
        for row, class_index in enumerate(block_classes):
            features, weights = sets[class_index]
            size = len(weights)
            kernel = log_kernel(features, database[class_index], alpha, squared_distance)
            log_t[row, :size] = np.where(valid[class_index], kernel, -np.inf)
            log_p[row, :size] = np.log(weights) - np.log(weights.sum())
        block = _Block(log_t, log_p, valid[block_classes])
        block_log_q = log_q[block_classes]
        block_iterations = np.zeros(len(block_classes), dtype=np.int64)
        history = {"q": [], "objective": [], "gap": []}
        for iteration in range(max_iterations + 1):
            _, log_eta, block_objective = block.step(block_log_q)
            block_gap = _duality_gap(block_log_q, log_eta, block.valid)
            active = ~(block_gap < epsilon)
            if record_history:
                history["q"].append(np.exp(block_log_q))
                history["objective"].append(block_objective)
                history["gap"].append(block_gap)
            if iteration == max_iterations or not active.any():
                break
            updated = np.where(block.valid, block_log_q + log_eta, -np.inf)
            updated = updated - _logsumexp(updated, axis=1)[:, None]
            block_log_q = np.where(active[:, None], updated, block_log_q)
            block_iterations += active
        log_q[block_classes] = block_log_q
        iterations[block_classes] = block_iterations
        gap[block_classes] = block_gap
        objective[block_classes] = block_objective
        if record_history:
            histories[tuple(block_classes)] = history

    info = {
        "log_q": log_q,
        "iterations": iterations,
        "gap": gap,
        "converged": fitted & (gap < epsilon),
        "objective": objective,
        "total_weight": total_weight,
        "fitted": fitted,
    }
    q = np.exp(log_q)
    if record_history:
        length = max([len(h["objective"]) for h in histories.values()], default=1)
        info["history"] = {
            "q": np.repeat(q[None], length, axis=0),
            "objective": np.repeat(np.where(fitted, objective, np.nan)[None], length, axis=0),
            "gap": np.repeat(gap[None], length, axis=0),
        }
        for block_classes, history in histories.items():
            steps = len(history["objective"])
            for name in ("q", "objective", "gap"):
                values = np.stack(history[name])
                info["history"][name][:steps, list(block_classes)] = values
                info["history"][name][steps:, list(block_classes)] = values[-1]
    return q, info


def convex_clustering_objective(segment_features, segment_weights, database, q, valid=None,
                                alpha=1.0, squared_distance=False):
    """f_c(q) = Σ_s p(s) log Σ_{s'} q_{s'} exp(−α d(φ(s), φ(s'))) per class, float64, log space.

    The weights are normalised per class (Σ_s p(s) = 1) as in `fit_representativeness`, whose
    update never decreases this value. A class with an empty segment set gives 0; one whose q is
    zero on every exemplar gives −inf.

    Args:
        segment_features, segment_weights: as in `fit_representativeness`.
        database: `[C, n, m]` or an `ExemplarDatabase`.
        q: `[C, n]` representativeness (rows on the simplex).
        valid: `[C, n]` bool or None (the database's validity, or all valid).
        alpha: α.
        squared_distance: as in `fit_representativeness`.

    Returns:
        `[C]` float64.
    """
    if isinstance(database, ExemplarDatabase):
        if valid is None:
            valid = database.valid
        database = database.features
    database = np.asarray(database, dtype=np.float64)
    num_classes = database.shape[0]
    log_q = log_representativeness(q, valid)
    get_class = _class_getter(segment_features, segment_weights, num_classes)
    values = np.zeros(num_classes)
    for class_index in range(num_classes):
        features, weights = get_class(class_index)
        if not len(weights):
            continue
        log_t = log_kernel(features, database[class_index], alpha, squared_distance)
        log_z = _logsumexp(log_t + log_q[class_index][None, :], axis=1)
        values[class_index] = np.sum(weights * log_z) / weights.sum()
    return values


# ---------------------------------------------------------------------------------------------
# Test time
# ---------------------------------------------------------------------------------------------


def select_segments(per_segment_cost, k, mask=None):
    """Per class, the k segments with the least convex-clustering cost (Peng et al., test time).

    The cost is `tfwsar.losses.segment_convex_clustering_cost` (−log Σ_{s'} q_{s'} t_{s,s'}
    against D_c). Ties go to the earlier segment; padded segments are never selected; a class
    with fewer than k valid segments gets all of them. Taking the union over classes and
    re-scoring it with the classifier and attention is the caller's job (e.g.
    `selected.any(axis=-1)` for the union).

    Args:
        per_segment_cost: `[T, C]` or `[B, T, C]`.
        k: segments kept per class.
        mask: `[T]` or `[B, T]`, 1 = valid segment; None = all valid.

    Returns:
        bool array of the same shape as `per_segment_cost`, True where selected.
    """
    cost = np.asarray(per_segment_cost, dtype=np.float64)
    single = cost.ndim == 2
    if single:
        cost = cost[None]
    if cost.ndim != 3:
        raise ValueError(f"per_segment_cost must be [T, C] or [B, T, C], got shape {cost.shape}")
    valid = (np.ones(cost.shape[:2], bool) if mask is None
             else np.asarray(mask).reshape(cost.shape[:2]) > 0)
    # Order by (padding last, cost ascending with NaN last, segment index): two stable sorts.
    order = np.argsort(cost, axis=1, kind="stable")
    padding = np.broadcast_to(~valid[..., None], cost.shape)
    order = np.take_along_axis(
        order, np.argsort(np.take_along_axis(padding, order, axis=1), axis=1, kind="stable"), axis=1)
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(cost.shape[1])[None, :, None], axis=1)
    selected = (rank < int(k)) & valid[..., None]
    return selected[0] if single else selected

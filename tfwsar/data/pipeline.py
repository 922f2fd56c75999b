"""tf.data pipelines: converted per-video TFRecord files → batches of padded, masked features.

Every batch is a dict:
  rgb [B, T, D_rgb] float32, flow [B, T, D_flow] float32, mask [B, T] float32 (1 = valid segment),
  labels [B, C] float32 multi-hot, video [B] string, num_segments [B] int32, duration [B] float32.

Training batches have a fixed T (`num_segments`): a longer video is sampled down to T segments, a
shorter one is padded with zeros and mask 0. With `batch_length="longest"` a batch's T is its
longest video's, at most `num_segments`, and with `sort_window` the batches hold videos of similar
lengths (`length_sorted_batches`): on THUMOS14's lengths at T = 750 that computes 1.2 segments
per valid one instead of 2.6 (benchmarks/BENCHMARKS.md). The default sampling is W-TALC's "uniform" sampling,
one segment drawn at random from each of T equal slices of the video, so that every action
instance keeps a chance to be seen (a random contiguous crop can cut all of a video's actions out
and leave its video-level label wrong; it is available as `sampling="crop"`).

Shuffling without a buffer. The training stream is a pure function of (seed, element position):
element p belongs to epoch e = p // N (N training videos) and is video order_e[p mod N], where
order_e is a permutation of the video INDICES drawn from (seed, e); its segments are sampled with a
seed drawn from (seed, p). Each video is read from its own file by index. So the stream can start
at any batch (`first_batch`) without reading what came before, no shuffle buffer holds videos
(memory for shuffling is N integers, whatever the feature sizes), and a training run's input
position is the number of batches it has consumed, i.e. its step: `train_lib.Trainer` rebuilds the
stream at the restored step instead of checkpointing an iterator. Checkpoints hold no data.
"""

import pandas as pd
import tensorflow as tf

from tfwsar.data import records

_SHUFFLE_SALT, _SAMPLING_SALT, _PAIR_SALT, _BATCH_ORDER_SALT = 0, 1, 2, 3
BATCH_LENGTHS = ("fixed", "longest")
_MAX_EPOCHS = 2**40


def _video_index(data_dir, subsets, videos=None, allow_empty=False):
    """The index rows (`records.read_index`) of `subsets` in file order, only `videos` if given.

    Raises FileNotFoundError when none is left, unless `allow_empty` and the subsets have videos.
    """
    frames = []
    for subset in subsets:
        index = records.read_index(data_dir, subset)
        if videos is not None:
            index = index[index["video"].isin(set(videos))]
        frames.append(index)
    index = pd.concat(frames, ignore_index=True)
    if index.empty and not (allow_empty and videos is not None):
        raise FileNotFoundError(f"{data_dir}: no videos in subsets {list(subsets)}"
                                + ("" if videos is None else f" among the {len(videos)} requested"))
    return index


def _parser(manifest):
    return lambda serialized: records.parse_example(
        serialized,
        num_classes=len(manifest["classes"]),
        rgb_dim=manifest["feature_dims"]["rgb"],
        flow_dim=manifest["feature_dims"]["flow"],
    )


def _read_in_order(items, read_file, deterministic=True):
    """Reads one file per element of `items` in parallel, keeping the elements' order.

    `read_file(item) -> a one-element Dataset`; each per-video file holds exactly one record, so a
    deterministic interleave with block length 1 yields the records in the order of `items`.
    """
    return items.interleave(read_file, cycle_length=8, block_length=1,
                            num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)


def _uniform_indices(num_segments_video, num_segments, offsets):
    """One index from each of `num_segments` equal slices of [0, T_video): slice k gives
    ⌊(k + offset_k) · T_video / num_segments⌋, offsets in [0, 1)."""
    length = tf.cast(num_segments_video, tf.float32)
    bounds = tf.range(num_segments, dtype=tf.float32) + offsets
    sampled = tf.cast(tf.floor(bounds * length / tf.cast(num_segments, tf.float32)), tf.int32)
    # float32 rounding can put the last slice's (k + offset)·T/N on T itself: clamp.
    return tf.minimum(sampled, num_segments_video - 1)


def _segment_indices(num_segments_video, num_segments, sampling, seed):
    """Indices of the `num_segments` segments kept from a video of `num_segments_video` segments.

    "uniform": slice [0, T_video) into `num_segments` equal parts and draw one index from each;
    "crop": a random contiguous window. Videos no longer than `num_segments` keep every segment.
    """
    if sampling == "uniform":
        offsets = tf.random.stateless_uniform([num_segments], seed=seed)
        sampled = _uniform_indices(num_segments_video, num_segments, offsets)
    elif sampling == "crop":
        start = tf.random.stateless_uniform(
            [], seed=seed, minval=0, maxval=num_segments_video - num_segments + 1, dtype=tf.int32)
        sampled = start + tf.range(num_segments)
    else:
        raise ValueError(f"sampling must be 'uniform' or 'crop', not {sampling!r}")
    return tf.cond(num_segments_video > num_segments,
                   lambda: sampled, lambda: tf.range(num_segments_video))


def _fix_length(example, num_segments, sampling, seed):
    """Samples or pads one parsed example to exactly `num_segments` segments, adding `mask`.

    `num_segments` is a Python int (a static T) or a scalar tensor (its batch's T)."""
    indices = _segment_indices(example["num_segments"], num_segments, sampling, seed)
    kept = tf.shape(indices)[0]
    static = num_segments if isinstance(num_segments, int) else None
    fixed = dict(example)
    for stream in ("rgb", "flow"):
        features = tf.gather(example[stream], indices)
        fixed[stream] = tf.pad(features, [[0, num_segments - kept], [0, 0]])
        fixed[stream].set_shape([static, example[stream].shape[-1]])
    fixed["mask"] = tf.pad(tf.ones([kept], tf.float32), [[0, num_segments - kept]])
    fixed["mask"].set_shape([static])
    return fixed


def _with_mask(example):
    example = dict(example)
    example["mask"] = tf.ones([example["num_segments"]], tf.float32)
    return example


def _drop_subset(example):
    return {key: value for key, value in example.items() if key != "subset"}


def _seed(seed, salt, counter):
    """A stateless RNG seed [2] for one (seed, purpose, counter) triple."""
    base = tf.stack([tf.constant(seed, tf.int64), tf.constant(salt, tf.int64)])
    return tf.random.experimental.stateless_fold_in(base, counter)


def shuffled_positions(num_videos, seed, first_element=0):
    """The infinite stream of (element position p, video index) from `first_element` on.

    Epoch e lists every index in [0, num_videos) once, in a permutation drawn from (seed, e).
    Starting at any element costs nothing: the epochs before it are not generated.
    """
    num_videos, first_element = int(num_videos), int(first_element)
    first_epoch = first_element // num_videos

    def epoch(epoch_index):
        order = tf.random.experimental.stateless_shuffle(
            tf.range(num_videos, dtype=tf.int64), seed=_seed(seed, _SHUFFLE_SALT, epoch_index))
        positions = tf.range(num_videos, dtype=tf.int64) + epoch_index * num_videos
        return tf.data.Dataset.from_tensor_slices((positions, order))

    return (tf.data.Dataset.range(first_epoch, _MAX_EPOCHS).flat_map(epoch)
            .skip(first_element - first_epoch * num_videos))


def class_pair_positions(video_labels, batch_size, similar_pairs, seed, first_batch=0):
    """(element position p, video index) batches whose first `similar_pairs` pairs share a class.

    W-TALC's sampler (Paul et al., ECCV 2018): in batch b, pair i draws a class c uniformly among
    the classes with at least two videos, then two different videos labelled c, from the seed
    (seed, b · similar_pairs + i); the other `batch_size − 2 · similar_pairs` rows follow the
    shuffled epochs of `shuffled_positions`. Element p = b · batch_size + row, so each batch is a
    function of (seed, b) and the stream starts at any batch.

    Args:
      video_labels: per video index, its class indices.
    """
    if not 0 < 2 * similar_pairs <= batch_size:
        raise ValueError(f"similar_pairs={similar_pairs} needs 0 < 2·pairs <= batch_size={batch_size}")
    by_class = {}
    for video, labels in enumerate(video_labels):
        for label in labels:
            by_class.setdefault(int(label), []).append(video)
    members = [videos for _, videos in sorted(by_class.items()) if len(videos) >= 2]
    if not members:
        raise ValueError("no class has two training videos: same-class pairs cannot be drawn")
    lists = tf.ragged.constant(members, dtype=tf.int64)
    random_rows = batch_size - 2 * similar_pairs

    def pair(draw):
        key = _seed(seed, _PAIR_SALT, draw)
        class_row = tf.random.stateless_uniform([], key, 0, lists.nrows(), dtype=tf.int64)
        videos = lists[class_row]
        count = tf.shape(videos, out_type=tf.int64)[0]
        first = tf.random.stateless_uniform([], key + 1, 0, count, dtype=tf.int64)
        second = (first + tf.random.stateless_uniform([], key + 2, 1, count, dtype=tf.int64)) % count
        return tf.stack([videos[first], videos[second]])

    def pair_rows(batch_index):
        draws = batch_index * similar_pairs + tf.range(similar_pairs, dtype=tf.int64)
        paired = tf.reshape(tf.map_fn(pair, draws), [-1])
        return batch_index * batch_size + tf.range(2 * similar_pairs, dtype=tf.int64), paired

    batch_indices = tf.data.Dataset.range(first_batch, _MAX_EPOCHS * len(video_labels))
    if random_rows == 0:
        return batch_indices.flat_map(
            lambda batch_index: tf.data.Dataset.from_tensor_slices(pair_rows(batch_index)))
    rest = shuffled_positions(len(video_labels), seed, first_batch * random_rows).batch(random_rows)

    def rows(batch_index, rest_batch):
        positions, paired = pair_rows(batch_index)
        rest_positions = (batch_index * batch_size + 2 * similar_pairs
                          + tf.range(random_rows, dtype=tf.int64))
        return tf.data.Dataset.from_tensor_slices((tf.concat([positions, rest_positions], 0),
                                                   tf.concat([paired, rest_batch[1]], 0)))

    return tf.data.Dataset.zip(batch_indices, rest).flat_map(rows)


def length_sorted_batches(lengths, batch_size, window_batches, seed, first_batch=0):
    """The infinite stream of batches of videos of similar lengths: (positions, video indices),
    each [batch_size] int64, from batch `first_batch` on.

    Epoch e takes the permutation of the video indices drawn from (seed, e), as
    `shuffled_positions` does, keeps its first ⌊N / B⌋ · B (the other N mod B wait for a later
    epoch), sorts every run of `window_batches` · B of them by length (stable: equal lengths keep
    the permutation's order) and cuts the runs into batches, then shuffles the epoch's batches
    with a seed drawn from (seed, e). Batch b = e · ⌊N / B⌋ + j holds elements p = b · B + row.
    So a batch is a function of (seed, b) and the stream starts at any batch, as before; videos
    are still drawn at random, but a batch's videos are neighbours in length, so padding them to
    the longest of the batch (`training_dataset(batch_length="longest")`) costs little. A window
    of the whole epoch would fix the batches' composition for good: keep `window_batches` below
    half the epoch's batches.

    Args:
      lengths: the number of segments of each video, by video index.
      batch_size: B.
      window_batches: batches per sorted run (≥ 1).
    """
    lengths = tf.constant(list(lengths), tf.int64)
    num_videos, batch_size = int(lengths.shape[0]), int(batch_size)
    batches_per_epoch = num_videos // batch_size
    if batches_per_epoch == 0 or int(window_batches) < 1:
        raise ValueError(f"length-sorted batches need batch_size ≤ {num_videos} videos (got "
                         f"{batch_size}) and window_batches ≥ 1 (got {window_batches})")
    kept, window = batches_per_epoch * batch_size, int(window_batches) * batch_size
    longest = int(tf.reduce_max(lengths)) + 1

    def epoch(epoch_index):
        order = tf.random.experimental.stateless_shuffle(
            tf.range(num_videos, dtype=tf.int64), seed=_seed(seed, _SHUFFLE_SALT, epoch_index))[:kept]
        run_and_length = (tf.range(kept, dtype=tf.int64) // window * longest
                          + tf.gather(lengths, order))
        batches = tf.reshape(tf.gather(order, tf.argsort(run_and_length, stable=True)),
                             [batches_per_epoch, batch_size])
        batches = tf.random.experimental.stateless_shuffle(
            batches, seed=_seed(seed, _BATCH_ORDER_SALT, epoch_index))
        positions = tf.reshape(tf.range(kept, dtype=tf.int64) + epoch_index * kept,
                               [batches_per_epoch, batch_size])
        return tf.data.Dataset.from_tensor_slices((positions, batches))

    first_epoch = int(first_batch) // batches_per_epoch
    return (tf.data.Dataset.range(first_epoch, _MAX_EPOCHS).flat_map(epoch)
            .skip(int(first_batch) - first_epoch * batches_per_epoch))


def _with_batch_length(positions, lengths, batch_size, num_segments):
    """(position, video index) elements → (position, video index, T of its batch), where T is the
    longest video of the B consecutive elements that form a batch, capped at `num_segments`."""
    lengths = tf.constant(list(lengths), tf.int32)

    def batch_rows(batch_positions, indices):
        longest = tf.minimum(tf.reduce_max(tf.gather(lengths, indices)), num_segments)
        return tf.data.Dataset.from_tensor_slices(
            (batch_positions, indices, tf.fill([batch_size], longest)))

    return positions.batch(batch_size, drop_remainder=True).flat_map(batch_rows)


def training_dataset(data_dir, subsets, *, num_segments, batch_size, seed=0, videos=None,
                     sampling="uniform", first_batch=0, similar_pairs=0, batch_length="fixed",
                     sort_window=0, deterministic=True):
    """An infinite stream of shuffled training batches of at most `num_segments` segments.

    The stream is a function of `seed` alone (see the module docstring); `first_batch=k` gives the
    same batches as skipping k batches of the stream, without reading them.

    Args:
      data_dir: a converted dataset directory (manifest.json + per-video files).
      subsets: the subsets to train on, e.g. ("validation",) for THUMOS14.
      num_segments: T of every batch.
      batch_size: videos per batch (per replica's share is taken by tf.distribute).
      seed: seeds the per-epoch order of the videos and the sampling of segments.
      videos: optional collection of video ids to keep (e.g. the training part of a split).
      sampling: "uniform" (default) or "crop"; see the module docstring.
      first_batch: index of the first batch to yield (a resumed run passes its step).
      similar_pairs: if > 0, each batch starts with this many pairs of videos sharing a class
        (`class_pair_positions`; W-TALC's co-activity loss needs them).
      batch_length: "fixed": every batch has T = `num_segments`; "longest": a batch has the T of
        its longest video, at most `num_segments` (longer videos are sampled down to it as in
        "fixed", the others padded to it). With the same seed both give the same videos and
        segments in the same batches; "longest" computes no padding beyond the batch's longest.
      sort_window: if > 0, batches of videos of similar lengths (`length_sorted_batches` with
        windows of this many batches), which leaves little padding under "longest".
      deterministic: keep element order fixed under parallel reads (needed for exact resumption).
    """
    if batch_length not in BATCH_LENGTHS:
        raise ValueError(f"batch_length must be one of {BATCH_LENGTHS}, not {batch_length!r}")
    if similar_pairs and sort_window:
        raise ValueError("similar_pairs and sort_window choose the batches' videos in two "
                         "different ways; use one")
    manifest = records.read_manifest(data_dir)
    index = _video_index(data_dir, subsets, videos)
    files = tf.constant(index["file"].tolist())
    parse = _parser(manifest)
    if similar_pairs:
        positions = class_pair_positions(
            [[int(label) for label in text.split()] for text in index["labels"]], int(batch_size),
            int(similar_pairs), seed, int(first_batch))
    elif sort_window:
        # Sorted by the length the batch will have: videos longer than num_segments are all
        # sampled to num_segments, so they stay in their random order (more varied batches).
        positions = length_sorted_batches(index["num_segments"].clip(upper=int(num_segments)),
                                          batch_size, sort_window, seed, int(first_batch)).unbatch()
    else:
        positions = shuffled_positions(files.shape[0], seed, int(first_batch) * int(batch_size))
    if batch_length == "longest":
        positions = _with_batch_length(positions, index["num_segments"], int(batch_size),
                                       int(num_segments))
    else:
        positions = positions.map(lambda position, video_index: (position, video_index, 0))

    def read(position, video_index, length):
        return tf.data.TFRecordDataset(files[video_index]).map(
            lambda serialized: (position, length, serialized))

    def prepare(position, length, serialized):
        example = _drop_subset(parse(serialized))
        return _fix_length(example, length if batch_length == "longest" else int(num_segments),
                           sampling, _seed(seed, _SAMPLING_SALT, position))

    dataset = _read_in_order(positions, read, deterministic).map(
        prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
    dataset = dataset.batch(batch_size, drop_remainder=True)
    return dataset.prefetch(tf.data.AUTOTUNE)


def evaluation_dataset(data_dir, subset, *, batch_size=1, videos=None):
    """Every video of `subset` once, at full length, in file order.

    With batch_size 1 each batch is one whole video (mask all ones); with more, videos are padded
    to the longest in the batch and the mask marks the valid segments.
    """
    manifest = records.read_manifest(data_dir)
    files = tf.data.Dataset.from_tensor_slices(tf.constant(
        _video_index(data_dir, [subset], videos, allow_empty=True)["file"].tolist(), tf.string))
    dataset = _read_in_order(files, tf.data.TFRecordDataset).map(
        _parser(manifest), num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.map(_drop_subset).map(_with_mask)
    dataset = dataset.padded_batch(batch_size)
    return dataset.prefetch(tf.data.AUTOTUNE)


def paired_dataset(untrimmed, trimmed):
    """(untrimmed batch, trimmed batch) pairs for knowledge transfer; both inputs are infinite."""
    return tf.data.Dataset.zip(untrimmed, trimmed)


def video_ids(data_dir, subset):
    """The video ids of `subset`, in file order (from its index; no feature is read)."""
    return records.read_index(data_dir, subset)["video"].tolist()

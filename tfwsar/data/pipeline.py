"""tf.data pipelines: converted per-video TFRecord files → batches of padded, masked features.

Every batch is a dict:
  rgb [B, T, D_rgb] float32, flow [B, T, D_flow] float32, mask [B, T] float32 (1 = valid segment),
  labels [B, C] float32 multi-hot, video [B] string, num_segments [B] int32, duration [B] float32.

Training batches have a fixed T (`num_segments`): a longer video is sampled down to T segments, a
shorter one is padded with zeros and mask 0. The default sampling is W-TALC's "uniform" sampling,
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

import tensorflow as tf

from tfwsar.data import records

_SHUFFLE_SALT, _SAMPLING_SALT = 0, 1
_MAX_EPOCHS = 2**40


def _video_files(data_dir, subsets, videos=None, allow_empty=False):
    """Paths of the per-video files of `subsets` (file order), keeping only `videos` if given.

    Raises FileNotFoundError when none is left, unless `allow_empty` and the subsets have videos.
    """
    files = []
    for subset in subsets:
        index = records.read_index(data_dir, subset)
        if videos is not None:
            index = index[index["video"].isin(set(videos))]
        files += index["file"].tolist()
    if not files and not (allow_empty and videos is not None):
        raise FileNotFoundError(f"{data_dir}: no videos in subsets {list(subsets)}"
                                + ("" if videos is None else f" among the {len(videos)} requested"))
    return files


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
    sampled = tf.cast(tf.floor(bounds * length / num_segments), tf.int32)
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
    """Samples or pads one parsed example to exactly `num_segments` segments, adding `mask`."""
    indices = _segment_indices(example["num_segments"], num_segments, sampling, seed)
    kept = tf.shape(indices)[0]
    fixed = dict(example)
    for stream in ("rgb", "flow"):
        features = tf.gather(example[stream], indices)
        fixed[stream] = tf.pad(features, [[0, num_segments - kept], [0, 0]])
        fixed[stream].set_shape([num_segments, example[stream].shape[-1]])
    fixed["mask"] = tf.pad(tf.ones([kept], tf.float32), [[0, num_segments - kept]])
    fixed["mask"].set_shape([num_segments])
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


def training_dataset(data_dir, subsets, *, num_segments, batch_size, seed=0, videos=None,
                     sampling="uniform", first_batch=0, deterministic=True):
    """An infinite stream of shuffled training batches of fixed length `num_segments`.

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
      deterministic: keep element order fixed under parallel reads (needed for exact resumption).
    """
    manifest = records.read_manifest(data_dir)
    files = tf.constant(_video_files(data_dir, subsets, videos))
    parse = _parser(manifest)
    positions = shuffled_positions(files.shape[0], seed, int(first_batch) * int(batch_size))

    def read(position, video_index):
        return tf.data.TFRecordDataset(files[video_index]).map(
            lambda serialized: (position, serialized))

    def prepare(position, serialized):
        example = _drop_subset(parse(serialized))
        return _fix_length(example, num_segments, sampling,
                           _seed(seed, _SAMPLING_SALT, position))

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
        _video_files(data_dir, [subset], videos, allow_empty=True), tf.string))
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

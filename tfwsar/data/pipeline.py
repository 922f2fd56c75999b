"""tf.data pipelines: converted TFRecord shards → batches of padded, masked segment features.

Every batch is a dict:
  rgb [B, T, D_rgb] float32, flow [B, T, D_flow] float32, mask [B, T] float32 (1 = valid segment),
  labels [B, C] float32 multi-hot, video [B] string, num_segments [B] int32, duration [B] float32.

Training batches have a fixed T (`num_segments`): a longer video is sampled down to T segments, a
shorter one is padded with zeros and mask 0. The default sampling is W-TALC's "uniform" sampling,
one segment drawn at random from each of T equal slices of the video, so that every action
instance keeps a chance to be seen (a random contiguous crop can cut all of a video's actions out
and leave its video-level label wrong; it is available as `sampling="crop"`).

All randomness (shuffling, sampling) is seeded and carried by the iterator's checkpointable state,
so a run resumed from a checkpoint sees the same batches as an uninterrupted one.
"""

import tensorflow as tf

from tfwsar.data import records


def _records(data_dir, subsets):
    paths = [path for subset in subsets for path in records.shard_paths(data_dir, subset)]
    if not paths:
        raise FileNotFoundError(f"{data_dir}: no TFRecord shards for subsets {list(subsets)}")
    return tf.data.TFRecordDataset(paths)


def _parser(manifest):
    return lambda serialized: records.parse_example(
        serialized,
        num_classes=len(manifest["classes"]),
        rgb_dim=manifest["feature_dims"]["rgb"],
        flow_dim=manifest["feature_dims"]["flow"],
    )


def _keep_videos(videos):
    """A predicate on parsed examples: the video id is in `videos` (None keeps everything)."""
    if videos is None:
        return None
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(sorted(videos), tf.string), tf.ones([len(videos)], tf.int32)),
        default_value=0)
    return lambda example: table.lookup(example["video"]) > 0


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


def training_dataset(data_dir, subsets, *, num_segments, batch_size, seed=0, videos=None,
                     sampling="uniform", shuffle_buffer=None, deterministic=True):
    """An infinite stream of shuffled training batches of fixed length `num_segments`.

    Args:
      data_dir: a converted dataset directory (manifest.json + shards).
      subsets: the subsets to train on, e.g. ("validation",) for THUMOS14.
      num_segments: T of every batch.
      batch_size: videos per batch (per replica's share is taken by tf.distribute).
      seed: seeds shuffling and sampling.
      videos: optional collection of video ids to keep (e.g. the training part of a split).
      sampling: "uniform" (default) or "crop"; see the module docstring.
      shuffle_buffer: serialized videos held for shuffling; None = the whole subset (a full shuffle;
        the buffer is part of the iterator checkpoint, so lower it for very large feature sets).
      deterministic: keep element order fixed under parallel map (needed for exact resumption).
    """
    manifest = records.read_manifest(data_dir)
    dataset = _records(data_dir, subsets).map(_parser(manifest))
    if shuffle_buffer is None:
        shuffle_buffer = max(1, sum(manifest["subsets"][subset]["videos"] for subset in subsets))
    keep = _keep_videos(videos)
    if keep is not None:
        dataset = dataset.filter(keep)
    dataset = dataset.map(_drop_subset).repeat().shuffle(
        shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    # One seed pair per element from a checkpointable random stream: sampling is reproducible.
    seeds = tf.data.Dataset.random(seed=seed).batch(2)
    dataset = tf.data.Dataset.zip(dataset, seeds).map(
        lambda example, element_seed: _fix_length(example, num_segments, sampling, element_seed),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
    dataset = dataset.batch(batch_size, drop_remainder=True)
    return dataset.prefetch(tf.data.AUTOTUNE)


def evaluation_dataset(data_dir, subset, *, batch_size=1, videos=None):
    """Every video of `subset` once, at full length, in file order.

    With batch_size 1 each batch is one whole video (mask all ones); with more, videos are padded
    to the longest in the batch and the mask marks the valid segments.
    """
    manifest = records.read_manifest(data_dir)
    dataset = _records(data_dir, [subset]).map(_parser(manifest), num_parallel_calls=tf.data.AUTOTUNE)
    keep = _keep_videos(videos)
    if keep is not None:
        dataset = dataset.filter(keep)
    dataset = dataset.map(_drop_subset).map(_with_mask)
    dataset = dataset.padded_batch(batch_size)
    return dataset.prefetch(tf.data.AUTOTUNE)


def paired_dataset(untrimmed, trimmed):
    """(untrimmed batch, trimmed batch) pairs for knowledge transfer; both inputs are infinite."""
    return tf.data.Dataset.zip(untrimmed, trimmed)


def video_ids(data_dir, subset):
    """The video ids of `subset`, in file order, read from the shards."""
    video_only = {"video": tf.io.FixedLenFeature([], tf.string)}
    dataset = _records(data_dir, [subset]).map(
        lambda serialized: tf.io.parse_single_example(serialized, video_only)["video"])
    return [video.decode() for video in dataset.as_numpy_iterator()]

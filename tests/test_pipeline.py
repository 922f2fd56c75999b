"""tf.data pipeline: fixed-length training batches, full-length evaluation, masks, labels, pairing."""

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from tfwsar.data import annotations as annotation_readers
from tfwsar.data import features as feature_sources
from tfwsar.data import pipeline, records

CLASSES = ["Jump", "Run", "Throw"]
# video id → (number of segments, labels)
VIDEOS = {"long": (40, ("Jump",)), "short": (5, ("Run", "Throw")), "mid": (12, ("Throw",))}


def _features(length, dim, offset):
    """Segment t of stream features holds the value offset + t everywhere: positions are visible."""
    return np.tile((offset + np.arange(length, dtype=np.float32))[:, None], (1, dim))


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("converted") / "toy"
    videos = pd.DataFrame({
        "video": list(VIDEOS), "subset": "validation",
        "duration": [length / 1.5625 for length, _ in VIDEOS.values()],
        "labels": [labels for _, labels in VIDEOS.values()]})
    instances = pd.DataFrame(
        [(video, "validation", label, 0.0, 1.0) for video, (_, labels) in VIDEOS.items()
         for label in labels], columns=list(annotation_readers.INSTANCE_COLUMNS))
    toy = annotation_readers.Annotations(CLASSES, videos, instances, instances.iloc[:0], "test")
    in_memory = feature_sources.InMemoryFeatures({
        video: (_features(length, 3, 0.0), _features(length, 2, 1000.0))
        for video, (length, _) in VIDEOS.items()})
    records.write_converted_dataset(out, name="toy", annotations=toy, features=in_memory)
    return out


def test_training_batches_have_fixed_length_and_mask_marks_real_segments(dataset_dir):
    batches = pipeline.training_dataset(dataset_dir, ["validation"], num_segments=8, batch_size=3)
    batch = next(iter(batches))
    assert batch["rgb"].shape == (3, 8, 3) and batch["flow"].shape == (3, 8, 2)
    assert batch["mask"].shape == (3, 8) and batch["labels"].shape == (3, 3)
    for index, video in enumerate(batch["video"].numpy()):
        length = VIDEOS[video.decode()][0]
        expected_valid = min(length, 8)
        assert batch["mask"][index].numpy().sum() == expected_valid
        # padding is zero features, after the valid segments
        assert np.all(batch["rgb"][index, expected_valid:].numpy() == 0)
        assert np.all(batch["mask"][index, :expected_valid].numpy() == 1)


def test_uniform_sampling_covers_the_whole_long_video_in_order(dataset_dir):
    batches = pipeline.training_dataset(dataset_dir, ["validation"], num_segments=8, batch_size=1,
                                        videos=["long"])
    for batch in batches.take(5):
        positions = batch["rgb"][0, :, 0].numpy()
        assert np.all(np.diff(positions) > 0), "sampled segments stay in temporal order"
        # one segment from each fifth-of-eight slice of 40 segments: slice k holds [5k, 5k+5)
        assert np.all(positions // 5 == np.arange(8))
        # RGB and flow are sampled at the same positions
        np.testing.assert_array_equal(batch["flow"][0, :, 0].numpy() - 1000.0, positions)


def test_crop_sampling_keeps_a_contiguous_window(dataset_dir):
    batches = pipeline.training_dataset(dataset_dir, ["validation"], num_segments=8, batch_size=1,
                                        videos=["long"], sampling="crop")
    positions = next(iter(batches))["rgb"][0, :, 0].numpy()
    np.testing.assert_array_equal(np.diff(positions), np.ones(7))


def test_labels_are_multi_hot_in_manifest_class_order(dataset_dir):
    batches = pipeline.evaluation_dataset(dataset_dir, "validation", batch_size=1)
    seen = {}
    for batch in batches:
        seen[batch["video"][0].numpy().decode()] = batch["labels"][0].numpy()
    np.testing.assert_array_equal(seen["short"], [0, 1, 1])
    np.testing.assert_array_equal(seen["long"], [1, 0, 0])


def test_evaluation_keeps_full_length_and_pads_batches(dataset_dir):
    single = {batch["video"][0].numpy().decode(): batch["rgb"].shape[1]
              for batch in pipeline.evaluation_dataset(dataset_dir, "validation", batch_size=1)}
    assert single == {video: length for video, (length, _) in VIDEOS.items()}
    padded = next(iter(pipeline.evaluation_dataset(dataset_dir, "validation", batch_size=3)))
    assert padded["rgb"].shape[1] == 40
    np.testing.assert_array_equal(padded["mask"].numpy().sum(axis=1),
                                  [VIDEOS[v.decode()][0] for v in padded["video"].numpy()])


def test_same_seed_gives_same_batches_and_another_seed_differs(dataset_dir):
    def first_batches(seed):
        batches = pipeline.training_dataset(dataset_dir, ["validation"], num_segments=8,
                                            batch_size=2, seed=seed)
        return [batch["rgb"].numpy() for batch in batches.take(3)]

    first, again, other = first_batches(1), first_batches(1), first_batches(2)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(first, other))


def test_starting_at_a_batch_gives_the_batches_an_uninterrupted_stream_gives_there(dataset_dir):
    def batches(first_batch, count):
        stream = pipeline.training_dataset(dataset_dir, ["validation"], num_segments=8,
                                           batch_size=2, seed=3, first_batch=first_batch)
        return [(batch["video"].numpy().tolist(), batch["rgb"].numpy()) for batch in stream.take(count)]

    uninterrupted = batches(0, 7)
    # batch 4 starts at element 8: inside epoch 2 of 3 videos, not at an epoch boundary
    for (videos, rgb), (want_videos, want_rgb) in zip(batches(4, 3), uninterrupted[4:]):
        assert videos == want_videos
        np.testing.assert_array_equal(rgb, want_rgb)


def test_every_epoch_visits_every_video_once_in_a_new_order():
    epochs = [list(pipeline.shuffled_positions(50, seed=7).skip(50 * k).take(50)
                   .map(lambda position, index: index).as_numpy_iterator()) for k in range(3)]
    for order in epochs:
        assert sorted(order) == list(range(50))
    assert epochs[0] != epochs[1] != epochs[2]
    positions = [int(p) for p, _ in pipeline.shuffled_positions(50, seed=7, first_element=120)
                 .take(3).as_numpy_iterator()]
    assert positions == [120, 121, 122]


def test_training_checkpoints_nothing_of_the_input_when_given_a_stream_function(dataset_dir, tmp_path):
    from tfwsar import train_lib

    strategy = tf.distribute.get_strategy()
    with strategy.scope():
        weight = tf.Variable(0.0)

    def step_fn(batch):
        weight.assign_add(tf.reduce_sum(batch["mask"]))
        return {"loss": tf.reduce_sum(batch["mask"])}

    trainer = train_lib.Trainer(
        tmp_path, strategy,
        lambda first: pipeline.training_dataset(dataset_dir, ["validation"], num_segments=8,
                                                batch_size=2, first_batch=first),
        {"weight": weight})
    trainer.train(step_fn, 3, log_every=100)
    variables = [name for name, _ in tf.train.list_variables(trainer.latest_checkpoint)]
    assert not [name for name in variables if name.startswith("iterator")]


def test_video_filter_and_ids(dataset_dir):
    assert sorted(pipeline.video_ids(dataset_dir, "validation")) == sorted(VIDEOS)
    kept = {batch["video"][0].numpy().decode()
            for batch in pipeline.evaluation_dataset(dataset_dir, "validation", videos=["mid"])}
    assert kept == {"mid"}


def test_paired_dataset_yields_untrimmed_and_trimmed_batches(dataset_dir):
    untrimmed = pipeline.training_dataset(dataset_dir, ["validation"], num_segments=8, batch_size=2)
    trimmed = pipeline.training_dataset(dataset_dir, ["validation"], num_segments=4, batch_size=3)
    pair = next(iter(pipeline.paired_dataset(untrimmed, trimmed)))
    assert pair[0]["rgb"].shape == (2, 8, 3) and pair[1]["rgb"].shape == (3, 4, 3)


def test_a_subset_without_videos_raises_naming_the_directory(tmp_path, dataset_dir):
    with pytest.raises(FileNotFoundError, match="toy: no videos in subsets"):
        pipeline.training_dataset(dataset_dir, ["training"], num_segments=8, batch_size=1)


def test_uniform_sampling_never_indexes_past_the_end():
    # The largest float32 below 1 as every offset: for T = 213, N = 200 the last slice's
    # (199 + offset) · 213 / 200 rounds to 213 in float32 — one past the last segment.
    largest_offset = np.nextafter(np.float32(1), np.float32(0))
    for length in (213, 1000, 4097):
        indices = pipeline._uniform_indices(
            tf.constant(length), 200, tf.fill([200], largest_offset))
        assert int(tf.reduce_max(indices)) == length - 1
        assert np.all(np.diff(indices.numpy()) >= 0)


def test_class_pairs_share_a_class_and_the_stream_starts_at_any_batch():
    labels = [[0], [0], [1], [1], [1], [2], [0, 1], [3]]
    rows = list(pipeline.class_pair_positions(labels, 5, 2, seed=3).take(50).as_numpy_iterator())
    assert [position for position, _ in rows] == list(range(50))
    for batch in range(10):
        for pair in range(2):
            first, second = (rows[5 * batch + 2 * pair + k][1] for k in (0, 1))
            assert first != second and set(labels[first]) & set(labels[second])
    later = list(pipeline.class_pair_positions(labels, 5, 2, seed=3, first_batch=7)
                 .take(15).as_numpy_iterator())
    assert later == rows[35:50]


def test_training_batches_with_similar_pairs_start_with_same_label_pairs(dataset_dir):
    # "short" is Run+Throw and "mid" Throw: the only class with two videos is Throw.
    batch = next(iter(pipeline.training_dataset(dataset_dir, ["validation"], num_segments=8,
                                                batch_size=3, similar_pairs=1)))
    first, second = batch["labels"][0].numpy(), batch["labels"][1].numpy()
    assert set(batch["video"].numpy()[:2]) == {b"short", b"mid"}
    assert (first * second)[CLASSES.index("Throw")] == 1

"""Less padding: batches as long as their longest video, and batches of videos of similar lengths.

`pipeline.training_dataset(batch_length="longest", sort_window=W)` keeps the stream a pure function
of (seed, first batch), so a run still resumes at its step exactly.
"""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfwsar import config as config_lib
from tfwsar import train_lib
from tfwsar.data import pipeline
from tfwsar.recipes import tsrnet as recipe
from toy_datasets import make_dataset

NUM_SEGMENTS, BATCH = 48, 4


@pytest.fixture(scope="module")
def varied(tmp_path_factory):
    """40 training videos of 20 to 79 segments: some longer than NUM_SEGMENTS."""
    return make_dataset(tmp_path_factory.mktemp("varied") / "toy", train_videos=40, test_videos=6,
                        feature_dim=4, lengths=(20, 80))


def _batches(data_dir, count, **options):
    dataset = pipeline.training_dataset(data_dir, ["validation"], num_segments=NUM_SEGMENTS,
                                        batch_size=BATCH, seed=3, **options)
    return list(dataset.take(count).as_numpy_iterator())


def _computed_per_valid(batches):
    return sum(batch["mask"].size for batch in batches) / sum(batch["mask"].sum() for batch in batches)


def test_longest_batches_hold_the_same_videos_and_segments_as_fixed_ones_without_the_extra_padding(varied):
    fixed, longest = _batches(varied, 20), _batches(varied, 20, batch_length="longest")
    lengths = set()
    for full, short in zip(fixed, longest):
        length = short["rgb"].shape[1]
        lengths.add(length)
        assert length == min(NUM_SEGMENTS, full["num_segments"].max())
        np.testing.assert_array_equal(short["video"], full["video"])
        for key in ("rgb", "flow", "mask"):
            np.testing.assert_array_equal(short[key], full[key][:, :length])
        assert full["mask"][:, length:].sum() == 0  # only padding was left out
    assert len(lengths) > 1 and min(lengths) < NUM_SEGMENTS
    assert _computed_per_valid(longest) < _computed_per_valid(fixed)


def test_sorted_batches_cover_every_video_once_per_epoch_with_little_padding(varied):
    epoch = 40 // BATCH
    batches = _batches(varied, 3 * epoch, batch_length="longest", sort_window=3)
    epochs = [np.concatenate([b["video"] for b in batches[e * epoch:(e + 1) * epoch]])
              for e in range(3)]
    for videos in epochs:
        assert len(set(videos)) == len(videos) == 40  # 40 = 10 batches of 4: nothing left over
    # New windows every epoch: the batches' compositions change.
    compositions = [{frozenset(b["video"]) for b in batches[e * epoch:(e + 1) * epoch]}
                    for e in range(3)]
    assert compositions[0] != compositions[1] != compositions[2]
    unsorted = _batches(varied, 3 * epoch, batch_length="longest")
    assert _computed_per_valid(batches) < _computed_per_valid(unsorted) - 0.03


def test_sorted_batches_are_a_function_of_the_seed_and_start_at_any_batch(varied):
    options = dict(batch_length="longest", sort_window=3)
    stream = _batches(varied, 24, **options)
    again = _batches(varied, 24, **options)
    later = list(pipeline.training_dataset(
        varied, ["validation"], num_segments=NUM_SEGMENTS, batch_size=BATCH, seed=3,
        first_batch=13, **options).take(11).as_numpy_iterator())
    for first, second in zip(stream, again):
        np.testing.assert_array_equal(first["rgb"], second["rgb"])
    for skipped, started in zip(stream[13:], later):
        np.testing.assert_array_equal(skipped["video"], started["video"])
        np.testing.assert_array_equal(skipped["rgb"], started["rgb"])


def test_length_sorted_batches_sort_each_window_by_length():
    lengths = np.arange(1, 33)[::-1] * 3  # 32 videos, all lengths different
    batches = list(pipeline.length_sorted_batches(lengths, 4, 2, seed=0).take(8).as_numpy_iterator())
    for positions, videos in batches:
        assert positions.tolist() == list(range(positions[0], positions[0] + 4))
        assert positions[0] % 4 == 0
    # Each window of 2 batches = 8 videos; cut after sorting, so each batch is 4 neighbours in
    # length among its window's 8: at most 4 steps apart in the window's order.
    spans = [np.ptp(np.argsort(np.argsort(lengths[videos]))) for _, videos in batches]
    assert all(span == 3 for span in spans)
    assert sorted(v for _, videos in batches for v in videos) == list(range(32))
    with pytest.raises(ValueError, match="window_batches"):
        pipeline.length_sorted_batches(lengths, 4, 0, seed=0)


def test_options_that_cannot_be_combined_are_refused(varied):
    with pytest.raises(ValueError, match="batch_length"):
        pipeline.training_dataset(varied, ["validation"], num_segments=8, batch_size=4,
                                  batch_length="shortest")
    with pytest.raises(ValueError, match="similar_pairs and sort_window"):
        pipeline.training_dataset(varied, ["validation"], num_segments=8, batch_size=4,
                                  similar_pairs=1, sort_window=2)


def test_training_on_sorted_longest_batches_restarted_at_a_checkpoint_ends_with_the_same_weights(
        varied, tmp_path):
    """The Trainer rebuilds the stream at its restored step: batches of changing T included."""
    from tfwsar.methods import tsrnet as tsrnet_method  # pylint: disable=import-outside-toplevel
    from tfwsar.models import tsrnet  # pylint: disable=import-outside-toplevel

    config = config_lib.override(dataclasses.replace(recipe.get_config(), variant="srnet"), [
        f"train.batch_size={BATCH}", "model.fc1_units=8", "model.fc2_units=8",
        "model.attention_units=4"])

    def run(workdir, steps):
        keras.utils.set_random_seed(0)
        strategy = train_lib.make_strategy("default")
        with strategy.scope():
            models = {stream: tsrnet.build_stream_network(
                4, 4, fc1_units=8, fc2_units=8, attention_units=4, dropout_rate=0.2, name=stream)
                for stream in ("rgb", "flow")}
            optimizers = {stream: train_lib.sgd_with_step_decay(0.1, 100, name=f"{stream}_opt")
                          for stream in models}
        train_lib.build_optimizers(strategy, [(optimizers[s], models[s].trainable_variables)
                                              for s in models])
        trainer = train_lib.Trainer(
            workdir, strategy,
            lambda first: pipeline.training_dataset(
                varied, ["validation"], num_segments=NUM_SEGMENTS, batch_size=BATCH, seed=5,
                first_batch=first, batch_length="longest", sort_window=3),
            {**models, **{f"{s}_optimizer": o for s, o in optimizers.items()}},
            steps_per_execution=2)
        trainer.restore_or_initialize()
        trainer.train(tsrnet_method.make_step_fn(config, models, optimizers, 1), steps, log_every=100,
                      summary_every=100, checkpoint_every=4)
        return [w for stream in ("rgb", "flow") for w in models[stream].get_weights()]

    straight = run(tmp_path / "straight", 14)  # 14 steps: more than an epoch of 10 batches
    run(tmp_path / "resumed", 4)  # "killed" after the checkpoint at step 4
    resumed = run(tmp_path / "resumed", 14)
    for expected, actual in zip(straight, resumed):
        np.testing.assert_array_equal(actual, expected)


@pytest.mark.slow
def test_xla_steps_get_their_batch_without_the_string_video_ids(tmp_path):
    strategy = train_lib.make_strategy("default")
    with strategy.scope():
        weight = tf.Variable(1.0)
        optimizer = train_lib.sgd_with_step_decay(0.1, 100)
    train_lib.build_optimizers(strategy, [(optimizer, [weight])])
    dataset = tf.data.Dataset.from_tensors(
        {"x": tf.ones([4, 3]), "video": tf.constant(["a", "b", "c", "d"])}).repeat()
    seen = []

    def step_fn(batch):
        seen.append(sorted(batch))
        with tf.GradientTape() as tape:
            loss = tf.nn.compute_average_loss(tf.reduce_sum((batch["x"] * weight) ** 2, axis=1))
        optimizer.apply_gradients([(tape.gradient(loss, weight), weight)])
        return {"loss": loss}

    trainer = train_lib.Trainer(tmp_path, strategy, dataset, {"weight": weight, "optimizer": optimizer},
                                jit_compile=True)
    assert trainer.train(step_fn, 3, log_every=1, summary_every=100)["step"] == 3
    assert seen and all(keys == ["x"] for keys in seen)
    assert float(weight.numpy()) < 1.0

"""TSRNet's stream network: outputs, masking, shared classifier, serialization, variants."""

import numpy as np
import pytest
import keras

from tfwsar import losses
from tfwsar.models import tsrnet

FEATURES, CLASSES = 8, 4
SIZES = dict(fc1_units=6, fc2_units=5, attention_units=3)


def build(pooling="attention", **overrides):
    keras.utils.set_random_seed(0)
    arguments = {**SIZES, "pooling": pooling, **overrides}
    return tsrnet.build_stream_network(FEATURES, CLASSES, **arguments)


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(2, 7, FEATURES)).astype("float32")
    mask = np.ones((2, 7), "float32")
    mask[1, 4:] = 0.0
    return {"features": features, "mask": mask}


def test_outputs_have_the_interface_shapes(batch):
    outputs = build()(batch)
    shapes = {name: tuple(value.shape) for name, value in outputs.items()}
    assert shapes == {
        "logits": (2, CLASSES),
        "probabilities": (2, CLASSES),
        "attention": (2, 7),
        "attention_logits": (2, 7),
        "segment_logits": (2, 7, CLASSES),
        "fc1": (2, 7, 6),
        "fc2": (2, 7, 5),
    }
    np.testing.assert_allclose(outputs["probabilities"].numpy().sum(axis=-1), 1.0, rtol=1e-6)


def test_attention_is_zero_at_padding_and_sums_to_one(batch):
    outputs = build()(batch)
    attention = outputs["attention"].numpy()
    assert np.all(attention[1, 4:] == 0.0) and np.all(attention[1, :4] > 0)
    np.testing.assert_allclose(attention.sum(axis=-1), 1.0, rtol=1e-6)
    for name in ("segment_logits", "fc1", "fc2", "attention_logits"):
        assert np.all(outputs[name].numpy()[1, 4:] == 0.0), name


def test_appending_padded_segments_changes_no_output_on_the_valid_part(batch):
    model = build()
    short = {"features": batch["features"][1:, :4], "mask": batch["mask"][1:, :4]}
    junk = np.full((1, 5, FEATURES), 7.0, "float32")
    long = {
        "features": np.concatenate([short["features"], junk], axis=1),
        "mask": np.concatenate([short["mask"], np.zeros((1, 5), "float32")], axis=1),
    }
    short_outputs, long_outputs = model(short), model(long)
    for name in ("logits", "probabilities"):
        np.testing.assert_allclose(long_outputs[name], short_outputs[name], rtol=1e-6, atol=1e-7)
    for name in ("attention", "attention_logits", "segment_logits", "fc1", "fc2"):
        np.testing.assert_allclose(
            long_outputs[name][:, :4], short_outputs[name], rtol=1e-6, atol=1e-7, err_msg=name
        )


def test_one_classifier_scores_the_video_and_every_segment(batch):
    outputs = build()(batch)
    # Linear classifier and Σ_t a_t = 1: W(Σ a_t x_t) + b = Σ a_t (W x_t + b).
    from_segments = np.einsum("bt,btc->bc", outputs["attention"], outputs["segment_logits"])
    np.testing.assert_allclose(outputs["logits"].numpy(), from_segments, rtol=1e-5, atol=1e-6)


def test_dropout_is_a_keras_drop_rate_active_only_in_training(batch):
    model = build(dropout_rate=0.5)
    assert model.get_layer("fc1_dropout").rate == 0.5
    assert tsrnet.PAPER_HYPERPARAMETERS.dropout_rate == pytest.approx(1 - 0.8)
    inference = [model(batch)["fc1"].numpy() for _ in range(2)]
    np.testing.assert_array_equal(inference[0], inference[1])
    training = model(batch, training=True)["fc1"].numpy()
    assert np.mean(training[inference[0] > 0] == 0.0) > 0.2


def test_keras_file_round_trip_gives_exactly_equal_outputs(batch, tmp_path):
    model = build()
    path = tmp_path / "rgb.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    before, after = model(batch), restored(batch)
    assert set(after) == set(before)
    for name in before:
        np.testing.assert_array_equal(before[name].numpy(), after[name].numpy(), err_msg=name)


@pytest.mark.parametrize("variant", losses.VARIANTS)
def test_every_variant_builds_and_runs(variant, batch):
    pooling = tsrnet.pooling_for_variant(variant)
    outputs = build(pooling=pooling, name=variant)(batch)
    attention = outputs["attention"].numpy()
    if variant == "two_stream":
        np.testing.assert_allclose(attention[1], [0.25] * 4 + [0.0] * 3)
    else:
        assert np.ptp(attention[0]) > 0  # learned attention is not uniform
    np.testing.assert_allclose(attention.sum(axis=-1), 1.0, rtol=1e-6)


def test_unknown_pooling_or_variant_is_refused():
    with pytest.raises(ValueError, match="pooling"):
        tsrnet.build_stream_network(FEATURES, CLASSES, pooling="max")
    with pytest.raises(ValueError, match="variant"):
        tsrnet.pooling_for_variant("tsrnet_v2")
    assert tuple(tsrnet.POOLING_BY_VARIANT) == losses.VARIANTS


def test_fuse_streams_weights_rgb_by_theta():
    rgb, flow = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    np.testing.assert_allclose(tsrnet.fuse_streams(rgb, flow, 0.7), [0.7, 0.3])


def test_paper_preset_trains_with_the_paper_schedule():
    from tfwsar import train_lib
    from tfwsar.recipes import tsrnet as recipe

    paper = recipe.get_config("paper").train
    hyperparameters = tsrnet.PAPER_HYPERPARAMETERS
    assert (paper.batch_size, paper.momentum) == (hyperparameters.batch_size, 0.9) == (16, 0.9)
    assert (paper.learning_rate_rgb, paper.learning_rate_flow) == (1e-4, 5e-4)
    optimizer = train_lib.sgd_with_step_decay(paper.learning_rate_flow, paper.decay_every,
                                              paper.decay_factor, paper.momentum)
    rates = []
    for step in (0, 4999, 5000, 10000):
        optimizer.iterations.assign(step)
        rates.append(float(optimizer.learning_rate))
    np.testing.assert_allclose(rates, [5e-4, 5e-4, 5e-5, 5e-6], rtol=1e-6)

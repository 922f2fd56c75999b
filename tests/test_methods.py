"""The method modules W-TALC, STPN and BaS-Net: the interface the shared runner relies on, what
`video_outputs` gives, masks, and that one `step_fn` trains."""

import dataclasses
import functools

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfwsar import losses
from tfwsar.layers.minmax_normalization import temporal_minmax
from tfwsar.methods import basnet, shared, stpn, wtalc

FEATURE_DIMS = {"rgb": 5, "flow": 4}
NUM_CLASSES = 3

# Tiny networks, no dropout (so that two calls on the same input agree).
TINY = {
    "wtalc": (wtalc, wtalc.ModelConfig(fc_units=8, dropout_rate=0.0)),
    "stpn": (stpn, stpn.ModelConfig(attention_units=4)),
    "basnet": (basnet, basnet.ModelConfig(filter_units=4, cas_units=8, dropout_rate=0.0)),
}
WITH_ATTENTION = {"wtalc": False, "stpn": True, "basnet": True}
TRAINING_KEYS = {
    "optimizer", "learning_rate", "weight_decay", "batch_size", "num_segments", "steps"
}


def make_batch(num_segments, valid, labels, seed=0):
    """A batch of len(valid) videos padded to `num_segments`, junk in the padding."""
    rng = np.random.default_rng(seed)
    size = len(valid)
    batch = {
        stream: rng.normal(size=(size, num_segments, dim)).astype("float32")
        for stream, dim in FEATURE_DIMS.items()
    }
    batch["mask"] = (np.arange(num_segments)[None, :] < np.array(valid)[:, None]).astype("float32")
    for stream in FEATURE_DIMS:
        batch[stream][batch["mask"] == 0] = 30.0
    batch["labels"] = np.eye(NUM_CLASSES, dtype="float32")[labels]
    return batch


def build(name, seed=0):
    module, config = TINY[name]
    keras.utils.set_random_seed(seed)
    return module, config, module.build_networks(FEATURE_DIMS, NUM_CLASSES, config)


@pytest.mark.parametrize("name", sorted(TINY))
def test_module_provides_the_method_interface(name):
    module, config, networks = build(name)
    assert module.PAPER.count('"') == 2 and module.PAPER[-4:].isdigit()
    assert module.__doc__.count("\n") > 20  # the equations and where they are
    assert dataclasses.is_dataclass(module.ModelConfig)
    first_field = dataclasses.fields(module.ModelConfig)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):  # configs are frozen
        setattr(module.ModelConfig(), first_field, None)
    assert TRAINING_KEYS <= set(module.PAPER_TRAINING)
    assert module.PAPER_TRAINING["optimizer"] == "adam"
    assert module.PAPER_TRAINING["learning_rate"] == 1e-4
    optimizers = module.build_optimizers(config, 1e-3, 5e-4)
    assert set(optimizers) == set(networks)
    for network in networks.values():
        assert isinstance(network, keras.Model) and network.built and network.trainable_variables


def test_paper_settings():
    assert wtalc.PAPER_TRAINING["weight_decay"] == 5e-4 and wtalc.PAPER_TRAINING["batch_size"] == 10
    assert wtalc.ModelConfig().mil_weight == 0.5 and wtalc.ModelConfig().margin == 0.5
    assert wtalc.ModelConfig().similar_pairs == wtalc.PAPER_TRAINING["similar_pairs"] == 3
    assert stpn.ModelConfig().sparsity_weight == 1e-4 and stpn.PAPER_TRAINING["num_segments"] == 400
    assert basnet.ModelConfig().filter_l1_weight == 1e-4
    assert basnet.PAPER_TRAINING["batch_size"] == 16 and basnet.PAPER_TRAINING["num_segments"] == 750


@pytest.mark.parametrize("name", sorted(TINY))
def test_video_outputs_shapes_and_ranges_with_variable_length_inside_a_tf_function(name):
    module, _, networks = build(name)
    outputs_of = tf.function(lambda batch: module.video_outputs(networks, batch))
    for num_segments, valid in ((7, [7, 4]), (12, [12, 9])):
        batch = make_batch(num_segments, valid, [0, 2])
        outputs = {key: value.numpy() for key, value in outputs_of(batch).items()}
        assert outputs["class_scores"].shape == (2, NUM_CLASSES)
        assert outputs["cas"].shape == (2, num_segments, NUM_CLASSES)
        assert ("attention" in outputs) == WITH_ATTENTION[name]
        checked = ["class_scores", "cas"] + (["attention"] if WITH_ATTENTION[name] else [])
        for key in checked:
            assert np.all(outputs[key] >= 0.0) and np.all(outputs[key] <= 1.0), key
        if WITH_ATTENTION[name]:
            assert outputs["attention"].shape == (2, num_segments)
            assert np.all(outputs["attention"][1, valid[1]:] == 0.0)
        assert np.all(outputs["cas"][1, valid[1]:] == 0.0)  # nothing at padding


@pytest.mark.parametrize("name", sorted(TINY))
def test_padding_changes_no_output(name):
    module, _, networks = build(name)
    padded = make_batch(10, [10, 6], [0, 1])  # video 1: 6 segments and 4 of junk padding
    alone = {key: value[1:2, :6] for key, value in padded.items() if key != "labels"}
    with_padding = module.video_outputs(networks, padded)
    for key, value in module.video_outputs(networks, alone).items():
        same_part = (slice(1, 2),) + tuple(slice(0, size) for size in value.shape[1:])
        np.testing.assert_allclose(
            with_padding[key].numpy()[same_part], value.numpy(), rtol=1e-5, atol=1e-6, err_msg=key
        )


@pytest.mark.parametrize("name", sorted(TINY))
def test_twenty_steps_reduce_the_loss_on_a_fixed_batch(name):
    module, config, networks = build(name)
    optimizers = module.build_optimizers(config, 1e-2, 5e-4)
    batch = make_batch(9, [9, 9, 6, 8], [0, 0, 1, 2])
    step_fn = tf.function(
        module.make_step_fn(networks, optimizers, config, global_batch_size=4, num_replicas=1)
    )
    totals = []
    for _ in range(20):
        terms = step_fn(batch)
        totals.append(float(terms["total"]))
        parts = sum(float(value) for key, value in terms.items() if key != "total")
        assert float(terms["total"]) == pytest.approx(parts, rel=1e-5)
    assert totals[-1] < 0.9 * totals[0], totals


@pytest.mark.parametrize("name", sorted(TINY))
def test_step_terms_are_scaled_by_the_global_batch_and_the_replicas(name):
    batch = make_batch(8, [8, 8, 5, 8], [0, 0, 1, 1])
    terms = {}
    for replicas in (1, 2):
        module, config, networks = build(name)
        optimizers = module.build_optimizers(config, 1e-3, 0.0)
        step_fn = module.make_step_fn(
            networks, optimizers, config, global_batch_size=4 * replicas, num_replicas=replicas
        )
        terms[replicas] = {key: float(value) for key, value in step_fn(batch).items()}
    for key, value in terms[1].items():
        assert terms[2][key] == pytest.approx(value / 2, rel=1e-5), key


def test_wtalc_loss_is_the_balance_of_mil_and_casl():
    module, config, networks = build("wtalc")
    batch = make_batch(9, [9, 7, 9, 9], [0, 0, 1, 2])
    outputs = networks["model"](shared.joint_model_inputs(batch), training=False)
    mil = losses.topk_mil_loss(batch["labels"], outputs["segment_logits"], batch["mask"])
    casl = losses.co_activity_similarity_loss(
        outputs["features"], outputs["segment_logits"], batch["labels"], batch["mask"]
    )
    optimizers = module.build_optimizers(config, 1e-3, 0.0)
    step_fn = module.make_step_fn(networks, optimizers, config, global_batch_size=4, num_replicas=1)
    terms = step_fn(batch)
    assert float(terms["mil"]) == pytest.approx(0.5 * float(tf.reduce_mean(mil)), rel=1e-5)
    assert float(terms["casl"]) == pytest.approx(0.5 * float(casl), rel=1e-5)
    assert float(casl) > 0  # videos 0 and 1 share class 0


def test_wtalc_class_scores_are_the_softmax_of_top_k_means_and_cas_spans_the_range():
    _, _, networks = build("wtalc")
    batch = make_batch(16, [16, 9], [0, 1])
    outputs = wtalc.video_outputs(networks, batch)
    logits = outputs["segment_logits"].numpy()[1, :9]
    top_two = -np.sort(-logits, axis=0)[:2].mean(axis=0)  # ⌈9/8⌉ = 2
    np.testing.assert_allclose(outputs["topk_logits"].numpy()[1], top_two, rtol=1e-5)
    np.testing.assert_allclose(
        outputs["class_scores"].numpy()[1], np.exp(top_two) / np.exp(top_two).sum(), rtol=1e-5
    )
    cas = outputs["cas"].numpy()[1, :9]
    np.testing.assert_allclose(cas.min(axis=0), 0.0)
    np.testing.assert_allclose(cas.max(axis=0), 1.0)


def test_stpn_tcam_is_attention_times_sigmoid_of_the_classifier_without_bias():
    _, _, networks = build("stpn")
    batch = make_batch(6, [6, 4], [0, 1])
    outputs = stpn.video_outputs(networks, batch)
    sigmoid = lambda x: 1.0 / (1.0 + np.exp(-x))  # noqa: E731
    valid = batch["mask"][..., None]
    for stream in stpn.STREAMS:
        kernel, bias = (w.numpy() for w in networks[stream].get_layer("classifier").weights)
        features = batch[stream] * valid
        tcam = features @ kernel  # a_t = w_c · x_t, no bias
        attention = outputs[f"{stream}_attention"].numpy()[..., None]
        close = functools.partial(np.testing.assert_allclose, rtol=1e-5, atol=1e-6)
        close(outputs[f"{stream}_segment_logits"].numpy(), tcam)
        close(outputs[f"{stream}_cas"].numpy(), attention * sigmoid(tcam) * valid)
        pooled = (attention * features).sum(axis=1) / valid.sum(axis=1)  # Σ λ x / n
        close(outputs[f"{stream}_class_scores"].numpy(), sigmoid(pooled @ kernel + bias))
    fused = 0.5 * (outputs["rgb_cas"].numpy() + outputs["flow_cas"].numpy())
    np.testing.assert_allclose(outputs["cas"].numpy(), fused, rtol=1e-6)


@pytest.mark.parametrize("normalizer", stpn.POOLING_NORMALIZERS)
def test_stpn_pooling_normalizers_build_and_bad_values_fail(normalizer):
    config = stpn.ModelConfig(attention_units=3, pooling_normalizer=normalizer)
    network = stpn.build_stream_network(4, NUM_CLASSES, config)
    ones = np.ones((1, 3, 4), "float32")
    outputs = network({"features": ones, "mask": ones[..., 0]})
    assert np.isfinite(outputs["video_logits"].numpy()).all()
    with pytest.raises(ValueError, match="pooling_normalizer"):
        stpn.ModelConfig(pooling_normalizer="max")


def test_basnet_branches_share_weights_and_scores_drop_the_background():
    _, _, networks = build("basnet")
    model = networks["model"]
    assert len([layer for layer in model.layers if layer.name.startswith("cas_conv")]) == 2
    batch = make_batch(10, [10, 7], [0, 2])
    raw = model(shared.joint_model_inputs(batch), training=False)
    outputs = basnet.video_outputs(networks, batch)
    full = tf.nn.softmax(raw["suppressed_video_logits"]).numpy()
    np.testing.assert_allclose(outputs["class_scores"].numpy(), full[:, :-1], rtol=1e-6)
    np.testing.assert_array_equal(outputs["attention"].numpy(), raw["foreground_weights"].numpy())
    expected_cas = temporal_minmax(raw["suppressed_logits"][:, :, :-1], batch["mask"], rectify=True)
    np.testing.assert_allclose(outputs["cas"].numpy(), expected_cas.numpy(), rtol=1e-6)
    # With every filter weight at 1, the suppression branch is the base branch (shared weights).
    model.get_layer("filtering_module").score.bias.assign([60.0])
    opened = model(shared.joint_model_inputs(batch), training=False)
    np.testing.assert_allclose(
        opened["suppressed_logits"].numpy(), opened["base_logits"].numpy(), rtol=1e-5, atol=1e-6
    )


def test_basnet_categorical_loss_option_trains_and_unknown_losses_fail():
    config = dataclasses.replace(TINY["basnet"][1], classification_loss="categorical")
    networks = basnet.build_networks(FEATURE_DIMS, NUM_CLASSES, config)
    optimizers = basnet.build_optimizers(config, 1e-3, 0.0)
    step_fn = basnet.make_step_fn(networks, optimizers, config, global_batch_size=2, num_replicas=1)
    terms = step_fn(make_batch(6, [6, 6], [0, 1]))
    assert float(terms["base"]) > float(terms["filter_l1"]) > 0
    with pytest.raises(ValueError, match="classification_loss"):
        basnet.ModelConfig(classification_loss="hinge")


def test_adam_with_l2_is_adam_on_the_gradient_plus_l2_times_the_weights():
    weights = np.array([2.0, -1.0, 0.5], "float32")
    gradient = np.array([0.1, 0.0, -0.3], "float32")
    coupled = keras.Variable(weights)
    reference = keras.Variable(weights)
    shared.AdamWithL2(learning_rate=0.1, l2=0.5).apply_gradients([(tf.constant(gradient), coupled)])
    keras.optimizers.Adam(learning_rate=0.1).apply_gradients(
        [(tf.constant(gradient + 0.5 * weights), reference)]
    )
    np.testing.assert_allclose(coupled.numpy(), reference.numpy(), rtol=1e-6)
    optimizers = shared.adam_optimizers(("rgb", "flow"), 1e-4, 5e-4)
    assert optimizers["rgb"].l2 == 5e-4 and optimizers["flow"].name == "flow_adam"
    restored = shared.AdamWithL2.from_config(optimizers["rgb"].get_config())
    assert restored.l2 == 5e-4


@pytest.mark.parametrize("name", sorted(TINY))
def test_networks_round_trip_through_a_keras_file(name, tmp_path):
    _, _, networks = build(name)
    batch = make_batch(6, [6, 4], [0, 1])
    for key, network in networks.items():
        inputs = (shared.joint_model_inputs(batch) if key == "model"
                  else {"features": batch[key], "mask": batch["mask"]})
        network.save(tmp_path / f"{key}.keras")
        restored = keras.saving.load_model(tmp_path / f"{key}.keras")
        before, after = network(inputs), restored(inputs)
        for output in before:
            np.testing.assert_array_equal(before[output].numpy(), after[output].numpy())

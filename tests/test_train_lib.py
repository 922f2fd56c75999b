"""The training loop: learning, resuming exactly, replicas, phases, summaries, profiling."""

import glob
import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfwsar import train_lib

NUM_FEATURES = 4
GLOBAL_BATCH = 8


def _dataset(num_examples=96):
    """Random regression data (fixed by a NumPy seed), shuffled each epoch, global batches of 8."""
    random = np.random.default_rng(0)
    features = random.normal(size=(num_examples, NUM_FEATURES)).astype("float32")
    targets = (features @ np.array([[1.0], [2.0], [-1.0], [0.5]], "float32")
               + 0.1 * random.normal(size=(num_examples, 1)).astype("float32"))
    return (tf.data.Dataset.from_tensor_slices({"x": features, "y": targets})
            .shuffle(32).repeat().batch(GLOBAL_BATCH, drop_remainder=True))


def _two_stream(strategy, learning_rates=(0.02, 0.01), decay_every=7):
    """Two tiny 'streams', each a Dense net with dropout and its own SGD, like TSRNet's RGB/flow."""
    with strategy.scope():
        models = [keras.Sequential([keras.Input((NUM_FEATURES,)),
                                    keras.layers.Dense(16, activation="relu"),
                                    keras.layers.Dropout(0.1), keras.layers.Dense(1)])
                  for _ in learning_rates]
        optimizers = [train_lib.sgd_with_step_decay(rate, decay_every=decay_every, factor=0.5,
                                                    name=f"sgd_{index}")
                      for index, rate in enumerate(learning_rates)]
    train_lib.build_optimizers(strategy, [(optimizer, model.trainable_variables)
                                          for model, optimizer in zip(models, optimizers)])
    return models, optimizers


def _two_stream_step(models, optimizers):
    def step_fn(batch):
        outputs = {}
        for name, model, optimizer in zip(("rgb", "flow"), models, optimizers):
            with tf.GradientTape() as tape:
                per_example = tf.reduce_mean((model(batch["x"], training=True) - batch["y"]) ** 2, -1)
                loss = tf.nn.compute_average_loss(per_example)
            gradients = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(gradients, model.trainable_variables))
            outputs[f"loss_{name}"] = loss
        return outputs
    return step_fn


def _trainer(workdir, strategy, models, optimizers, **kwargs):
    trackables = {"rgb_model": models[0], "flow_model": models[1],
                  "rgb_optimizer": optimizers[0], "flow_optimizer": optimizers[1]}
    return train_lib.Trainer(workdir, strategy, _dataset(), trackables, **kwargs)


def _quiet(**kwargs):
    return dict(dict(log_every=1000, summary_every=1000, checkpoint_every=1000), **kwargs)


def _event_tags(directory):
    tags = set()
    for path in glob.glob(os.path.join(directory, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            tags.update(value.tag for value in event.summary.value)
    return tags


@pytest.mark.parametrize("jit_compile", [False, True], ids=["graph", "xla"])
def test_training_decreases_the_loss_of_both_streams(tmp_path, jit_compile):
    train_lib.enable_determinism(1)
    strategy = train_lib.make_strategy("default")
    models, optimizers = _two_stream(strategy, decay_every=1000)
    trainer = _trainer(tmp_path, strategy, models, optimizers, jit_compile=jit_compile)
    logged = {}
    result = trainer.train(_two_stream_step(models, optimizers), num_steps=60, **_quiet(
        log_every=10, on_log=lambda step, values: logged.update({step: values})))
    assert result["step"] == 60 and int(trainer.step.numpy()) == 60
    assert sorted(logged) == [10, 20, 30, 40, 50, 60]
    for name in ("loss_rgb", "loss_flow"):
        assert logged[60][name] < 0.3 * logged[10][name], (name, logged)
    assert [int(optimizer.iterations.numpy()) for optimizer in optimizers] == [60, 60]


def _run_to(workdir, num_steps, seed=7):
    """What one process of a run does: fresh objects, restore if possible, train to num_steps."""
    train_lib.enable_determinism(seed)
    strategy = train_lib.make_strategy("default")
    models, optimizers = _two_stream(strategy)
    trainer = _trainer(workdir, strategy, models, optimizers)
    restored = trainer.restore_or_initialize()
    per_step = {}
    trainer.train(_two_stream_step(models, optimizers), num_steps,
                  **_quiet(log_every=1, on_log=lambda step, values: per_step.update({step: values})))
    return restored, models, optimizers, per_step


def test_a_restarted_run_continues_exactly_where_it_stopped(tmp_path):
    # The iterator position, dropout seeds, optimizer momenta and lr-schedule step all have to come
    # back. Without the iterator in the checkpoint the resumed run sees other batches and this fails.
    restored, straight_models, straight_optimizers, straight_losses = _run_to(tmp_path / "straight", 20)
    assert not restored
    first_restored, _, _, _ = _run_to(tmp_path / "resumed", 10)
    second_restored, resumed_models, resumed_optimizers, resumed_losses = _run_to(
        tmp_path / "resumed", 20)
    assert not first_restored and second_restored
    assert sorted(resumed_losses) == list(range(11, 21))
    for step in range(11, 21):
        for name in ("loss_rgb", "loss_flow"):
            np.testing.assert_allclose(resumed_losses[step][name], straight_losses[step][name],
                                       rtol=1e-6, err_msg=f"{name} at step {step}")
    for straight, resumed in zip(straight_models, resumed_models):
        for straight_weight, resumed_weight in zip(straight.get_weights(), resumed.get_weights()):
            np.testing.assert_allclose(resumed_weight, straight_weight, rtol=1e-6, atol=1e-7)
    for straight, resumed in zip(straight_optimizers, resumed_optimizers):
        assert int(resumed.iterations.numpy()) == int(straight.iterations.numpy()) == 20
        assert float(resumed.learning_rate) == float(straight.learning_rate)


def test_steps_per_execution_takes_the_same_steps_and_stops_at_checkpoint_steps(tmp_path):
    results = []
    for steps_per_execution in (1, 4):
        train_lib.enable_determinism(3)
        strategy = train_lib.make_strategy("default")
        models, optimizers = _two_stream(strategy)
        workdir = tmp_path / str(steps_per_execution)
        trainer = _trainer(workdir, strategy, models, optimizers,
                           steps_per_execution=steps_per_execution)
        logged = {}
        trainer.train(_two_stream_step(models, optimizers), 14,
                      **_quiet(log_every=7, checkpoint_every=6,
                               on_log=lambda step, values: logged.update({step: values})))
        checkpoints = sorted(os.path.basename(path)
                             for path in glob.glob(str(workdir / "checkpoints" / "*.index")))
        assert checkpoints == ["ckpt-12.index", "ckpt-14.index", "ckpt-6.index"]
        assert sorted(logged) == [7, 14]
        results.append((logged, [weight for model in models for weight in model.get_weights()]))
    (single_logged, single_weights), (multi_logged, multi_weights) = results
    for step in (7, 14):  # log lines are means over the window whichever way it was cut
        np.testing.assert_allclose(multi_logged[step]["loss_rgb"], single_logged[step]["loss_rgb"],
                                   rtol=1e-5)
    for single, multi in zip(single_weights, multi_weights):
        np.testing.assert_allclose(multi, single, rtol=1e-5, atol=1e-7)


def test_a_phase_change_assigns_a_scope_variable_without_retracing_and_is_checkpointed(tmp_path):
    strategy = train_lib.make_strategy("default")
    models, optimizers = _two_stream(strategy)
    with strategy.scope():
        target_offset = tf.Variable(0.0, trainable=False, name="target_offset")
    trackables = {"model": models[0], "optimizer": optimizers[0], "target_offset": target_offset}
    trainer = train_lib.Trainer(tmp_path, strategy, _dataset(), trackables)
    traces = []

    def step_fn_using_offset(batch):
        traces.append(1)  # Python side effect: runs only while tracing
        with tf.GradientTape() as tape:
            error = models[0](batch["x"], training=True) - (batch["y"] + target_offset)
            loss = tf.nn.compute_average_loss(tf.reduce_mean(error ** 2, -1))
        gradients = tape.gradient(loss, models[0].trainable_variables)
        optimizers[0].apply_gradients(zip(gradients, models[0].trainable_variables))
        offset_per_example = tf.fill([tf.shape(error)[0]], target_offset)
        return {"loss": loss, "offset": tf.nn.compute_average_loss(offset_per_example)}

    step_fn_without_offset = _two_stream_step(models[:1], optimizers[:1])
    assert trainer.train(step_fn_without_offset, 5, **_quiet())["step"] == 5

    target_offset.assign(3.0)
    trainer.phase.assign(1)
    trainer.save()
    after_first = trainer.train(step_fn_using_offset, 10, **_quiet(log_every=5))
    assert after_first["offset"] == pytest.approx(3.0)
    target_offset.assign(-2.0)  # the next phase of the same round: new value, same compiled step
    trainer.round.assign_add(1)
    trainer.phase.assign(2)
    after_second = trainer.train(step_fn_using_offset, 15, **_quiet(log_every=5))
    assert after_second["offset"] == pytest.approx(-2.0)
    assert len(traces) == 1, "assigning a variable between phases retraced the step"
    assert trainer.train(step_fn_using_offset, 12, **_quiet()) == {"step": 15}  # already past: no-op

    with strategy.scope():
        fresh_offset = tf.Variable(0.0, trainable=False, name="target_offset")
    fresh_models, fresh_optimizers = _two_stream(strategy)
    fresh = train_lib.Trainer(tmp_path, strategy, _dataset(), {
        "model": fresh_models[0], "optimizer": fresh_optimizers[0], "target_offset": fresh_offset})
    assert fresh.restore_or_initialize()
    assert (int(fresh.step.numpy()), int(fresh.round.numpy()), int(fresh.phase.numpy())) == (15, 1, 2)
    assert float(fresh_offset.numpy()) == -2.0
    for original, restored in zip(models[0].get_weights(), fresh_models[0].get_weights()):
        np.testing.assert_array_equal(restored, original)


def test_summaries_text_image_eval_and_profile_are_written(tmp_path):
    strategy = train_lib.make_strategy("default")
    models, optimizers = _two_stream(strategy)
    trainer = _trainer(tmp_path, strategy, models, optimizers)
    trainer.write_text("config", {"batch_size": GLOBAL_BATCH, "steps": 8})
    evaluations = []

    def eval_fn(step):
        evaluations.append(step)
        return {"accuracy": 0.5}

    result = trainer.train(_two_stream_step(models, optimizers), 8, log_every=4, summary_every=2,
                           checkpoint_every=100, profile_steps=(3, 5), eval_fn=eval_fn, eval_every=4)
    timeline = np.zeros((6, 20, 3), np.uint8)
    timeline[:, :10, 0] = 255
    trainer.write_image("attention_vs_ground_truth/video_0", timeline)
    trainer.close()

    assert evaluations == [4, 8] and result["eval/accuracy"] == 0.5
    assert _event_tags(tmp_path / "train") >= {
        "loss_rgb", "loss_flow", "learning_rate/rgb_optimizer", "learning_rate/flow_optimizer",
        "steps_per_second", "config", "attention_vs_ground_truth/video_0"}
    assert "accuracy" in _event_tags(tmp_path / "eval")
    rates = {}
    for path in glob.glob(str(tmp_path / "train" / "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag == "learning_rate/rgb_optimizer":
                    rates[event.step] = float(tf.make_ndarray(value.tensor))
    # 0.02 halved every 7 updates; the rate written at step s is the one update s+1 will use
    assert rates == pytest.approx({2: 0.02, 4: 0.02, 6: 0.02, 8: 0.01})
    assert glob.glob(str(tmp_path / "train" / "plugins" / "profile" / "*" / "*.xplane.pb"))


def test_sgd_with_step_decay_divides_the_rate_every_decay_every_updates():
    optimizer = train_lib.sgd_with_step_decay(1e-4, decay_every=5000)
    assert optimizer.momentum == 0.9
    rates = []
    for updates_done in (0, 4999, 5000, 9999, 10000):
        optimizer.iterations.assign(updates_done)
        rates.append(float(optimizer.learning_rate))
    np.testing.assert_allclose(rates, [1e-4, 1e-4, 1e-5, 1e-5, 1e-6], rtol=1e-6)


def test_misuse_is_reported_clearly(tmp_path):
    strategy = train_lib.make_strategy("default")
    models, optimizers = _two_stream(strategy)
    unbuilt = keras.optimizers.SGD(0.1)
    with pytest.raises(ValueError, match="build_optimizers"):
        train_lib.Trainer(tmp_path, strategy, _dataset(), {"model": models[0], "optimizer": unbuilt})
    with pytest.raises(ValueError, match="reserved"):
        train_lib.Trainer(tmp_path, strategy, _dataset(), {"step": models[0]})
    trainer = _trainer(tmp_path, strategy, models, optimizers)
    with pytest.raises(FloatingPointError, match="loss is nan at step 1"):
        trainer.train(lambda batch: {"loss": tf.constant(np.nan)}, 3, **_quiet())
    short = train_lib.Trainer(tmp_path / "short", strategy, _dataset().take(2), {"model": models[0]})
    with pytest.raises(ValueError, match="ran out at step 2"):
        short.train(lambda batch: {"loss": tf.reduce_sum(batch["y"])}, 5, **_quiet())


def test_logical_cpus_cannot_be_changed_once_tensorflow_has_started():
    tf.constant(1.0)  # make sure TF has initialised its devices in this process
    current = len(tf.config.list_logical_devices("CPU"))
    train_lib.use_logical_cpus(current)  # asking for what is already there is fine
    with pytest.raises(RuntimeError, match="before TensorFlow initialises its devices"):
        train_lib.use_logical_cpus(current + 1)


MIRRORED_SCRIPT = textwrap.dedent("""
    import json, sys
    from tfwsar import train_lib
    train_lib.use_logical_cpus(2)  # before TF touches devices
    import keras, numpy as np, tensorflow as tf

    workdir = sys.argv[1]
    random = np.random.default_rng(0)
    batch = {"x": random.normal(size=(8, 4)).astype("float32"),
             "y": random.normal(size=(8, 1)).astype("float32")}
    dataset = tf.data.Dataset.from_tensors(batch).repeat()
    initial = [random.normal(size=(4, 1)).astype("float32"), np.zeros(1, "float32")]

    def setup(strategy, name):
        with strategy.scope():
            model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
            model.set_weights(initial)
            optimizer = keras.optimizers.SGD(0.1, momentum=0.9)
        train_lib.build_optimizers(strategy, [(optimizer, model.trainable_variables)])

        def step_fn(batch):
            context = tf.distribute.get_replica_context()
            with tf.GradientTape() as tape:
                per_example = tf.reduce_mean((model(batch["x"]) - batch["y"]) ** 2, -1)
                mse = tf.nn.compute_average_loss(per_example)                 # per-example term
                kernel = model.trainable_variables[0]
                penalty = tf.nn.scale_regularization_loss(0.1 * tf.reduce_sum(kernel ** 2))
                loss = mse + penalty
            gradients = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(gradients, model.trainable_variables))
            return {"loss": loss, "mse": mse, "penalty": penalty,
                    "examples": tf.cast(tf.shape(per_example)[0], tf.float32),
                    "replicas": tf.constant(1.0),
                    "replica_sizes_differ": tf.cast(tf.shape(per_example)[0] != 4, tf.float32)}

        trainer = train_lib.Trainer(f"{workdir}/{name}", strategy, dataset,
                                    {"model": model, "optimizer": optimizer}, steps_per_execution=2)
        return model, trainer, step_fn

    quiet = dict(log_every=1, summary_every=100, checkpoint_every=100)
    result = {}
    for name, strategy in (("single", train_lib.make_strategy("default")),
                           ("mirrored", train_lib.make_strategy("auto"))):
        model, trainer, step_fn = setup(strategy, name)
        losses = {}
        trainer.train(step_fn, 3, **quiet, on_log=lambda step, values: losses.update({step: values}))
        result[name] = {"strategy": type(strategy).__name__, "replicas": strategy.num_replicas_in_sync,
                        "losses": losses, "weights": [w.tolist() for w in model.get_weights()]}
    # a restarted mirrored process: fresh objects restore from the checkpoint and continue
    model, trainer, step_fn = setup(train_lib.make_strategy("mirrored"), "mirrored")
    result["restored"] = trainer.restore_or_initialize()
    result["restored_step"] = int(trainer.step.numpy())
    result["restored_weights"] = [w.tolist() for w in model.get_weights()]
    result["continued"] = trainer.train(step_fn, 5, **quiet)
    try:
        train_lib.Trainer(f"{workdir}/odd", train_lib.make_strategy("mirrored"),
                          dataset.unbatch().batch(7, drop_remainder=True), {})
        result["odd_batch_error"] = None
    except ValueError as error:
        result["odd_batch_error"] = str(error)
    print("RESULT " + json.dumps(result))
""")


@pytest.mark.slow
def test_two_logical_cpu_replicas_sum_to_the_single_replica_loss(tmp_path):
    script = tmp_path / "mirrored.py"
    script.write_text(MIRRORED_SCRIPT)
    completed = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True,
                               text=True, timeout=240, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert completed.returncode == 0, completed.stderr[-3000:]
    line = next(line for line in completed.stdout.splitlines() if line.startswith("RESULT "))
    result = json.loads(line[len("RESULT "):])
    single, mirrored = result["single"], result["mirrored"]
    assert (single["replicas"], mirrored["replicas"]) == (1, 2)
    assert mirrored["strategy"] == "MirroredStrategy"
    for step in ("1", "2", "3"):
        assert mirrored["losses"][step]["replicas"] == 2.0
        assert mirrored["losses"][step]["examples"] == 8.0  # 4 + 4: each replica got half the batch
        assert mirrored["losses"][step]["replica_sizes_differ"] == 0.0
        for term in ("loss", "mse", "penalty"):
            np.testing.assert_allclose(mirrored["losses"][step][term], single["losses"][step][term],
                                       rtol=1e-6, err_msg=f"{term} at step {step}")
    assert single["losses"]["3"]["loss"] < single["losses"]["1"]["loss"]
    for single_weight, mirrored_weight in zip(single["weights"], mirrored["weights"]):
        np.testing.assert_allclose(mirrored_weight, single_weight, rtol=1e-5, atol=1e-7)
    assert result["restored"] and result["restored_step"] == 3
    for restored_weight, mirrored_weight in zip(result["restored_weights"], mirrored["weights"]):
        np.testing.assert_array_equal(restored_weight, mirrored_weight)
    assert result["continued"]["step"] == 5
    assert "global batch 7 is not divisible by 2 replicas" in result["odd_batch_error"]

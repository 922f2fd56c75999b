"""Distributed training: two replicas train like one, and two worker processes behave as one run.

Select these with `python -m pytest -k "mirrored or multi_worker"`. They are small (toy data,
narrow networks, seconds of training) but start TensorFlow in subprocesses: logical CPU devices
must be configured before TensorFlow initialises its devices, and each worker of a multi-worker
run is its own process (`TF_CONFIG`, 127.0.0.1, free ports). Every wait is bounded.
"""

import json
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from toy_datasets import make_dataset

pytestmark = pytest.mark.slow

TESTS = pathlib.Path(__file__).resolve().parent
RUN_TIMEOUT = 600  # seconds for one recipe run of two workers (the machine may be busy)
LOST_WORKER_TIMEOUT = 120  # the heartbeat timeout is 10 s: far longer means a hang


def _run_script(script, *args, timeout=RUN_TIMEOUT):
    """Runs `script` in a fresh Python; returns the JSON it printed on its `RESULT ` line."""
    completed = subprocess.run(
        [sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True,
        timeout=timeout, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
                              "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])},
        check=False)
    assert completed.returncode == 0, completed.stderr[-4000:]
    line = next(line for line in completed.stdout.splitlines() if line.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


# ------------------------------------------------------------------------------------------------
# Two logical CPUs + MirroredStrategy: one step of each method's step function
# ------------------------------------------------------------------------------------------------

# Shared by both scripts: a toy global batch, models built from one seed, one step under a
# strategy, and the single-replica references.
_STEP_HARNESS = textwrap.dedent("""
    import json, sys, tempfile
    from tfwsar import train_lib
    train_lib.use_logical_cpus(2)  # before TensorFlow initialises its devices
    import keras, numpy as np, tensorflow as tf
    from tfwsar.models import tsrnet

    BATCH, FEATURE_DIM, NUM_CLASSES = 4, 6, 3
    random = np.random.default_rng(0)

    def toy_batch(lengths, num_segments):
        mask = (np.arange(num_segments)[None] < np.array(lengths)[:, None]).astype("float32")
        labels = np.zeros((BATCH, NUM_CLASSES), "float32")
        labels[np.arange(BATCH), random.integers(0, NUM_CLASSES, BATCH)] = 1.0
        labels[0, (np.argmax(labels[0]) + 1) % NUM_CLASSES] = 1.0  # one video with two labels
        return {stream: (random.normal(size=(BATCH, num_segments, FEATURE_DIM)) * mask[..., None]
                         ).astype("float32") for stream in ("rgb", "flow")} | {
            "mask": mask, "labels": labels}

    def halves(element):
        # The rows replica r of 2 gets (train_lib cuts [r*B//2, (r+1)*B//2)).
        return [tf.nest.map_structure(lambda x: x[r * BATCH // 2:(r + 1) * BATCH // 2], element)
                for r in range(2)]

    def build(strategy, config, pooling, seed=1):
        keras.utils.set_random_seed(seed)  # the same initial weights for every copy
        with strategy.scope():
            models = {stream: tsrnet.build_stream_network(
                FEATURE_DIM, NUM_CLASSES, fc1_units=config.model.fc1_units,
                fc2_units=config.model.fc2_units, attention_units=config.model.attention_units,
                dropout_rate=config.model.dropout_rate, pooling=pooling, name=stream)
                for stream in ("rgb", "flow")}
            optimizers = {stream: train_lib.sgd_with_step_decay(
                0.5, 1000, momentum=0.9, name=f"{stream}_optimizer") for stream in models}
        train_lib.build_optimizers(
            strategy, [(optimizers[s], models[s].trainable_variables) for s in models])
        return models, optimizers

    def weights(models):
        return [w for stream in ("rgb", "flow") for w in models[stream].get_weights()]

    def one_trainer_step(strategy, models, optimizers, step_fn, element, extra=None):
        # One step through train_lib (it cuts each replica's rows); returns the logged values.
        logged = {}
        trainer = train_lib.Trainer(
            tempfile.mkdtemp(), strategy, tf.data.Dataset.from_tensors(element).repeat(),
            {**models, **{f"{s}_optimizer": o for s, o in optimizers.items()}, **(extra or {})})
        trainer.train(step_fn, 1, log_every=1, summary_every=1000, checkpoint_every=1000,
                      on_log=lambda step, values: logged.update(values))
        return logged

    def one_step(step_fn, element):
        return {key: float(value) for key, value in tf.function(step_fn)(element).items()}

    def compare(name, actual, expected):
        return {"name": name, "max_abs_difference": float(max(
            np.max(np.abs(a - e)) for a, e in zip(actual, expected))),
            "max_abs_update": float(max(np.max(np.abs(e - i))
                                        for e, i in zip(expected, initial_weights)))}
""")

_TSRNET_STEPS_SCRIPT = _STEP_HARNESS + textwrap.dedent("""
    from tfwsar import config as config_lib
    from tfwsar.methods import tsrnet as tsrnet_method
    from tfwsar.recipes import tsrnet as recipe

    untrimmed, trimmed = toy_batch([12, 7, 9, 12], 12), toy_batch([6, 6, 4, 6], 6)
    results = []
    for variant in recipe.VARIANTS:
        config = config_lib.override(recipe.get_config(), [
            f"variant={variant}", f"train.batch_size={BATCH}", "model.fc1_units=8",
            "model.fc2_units=8", "model.attention_units=4", "model.dropout_rate=0.0",
            "model.mmd_segments_per_video=4", "model.beta=0.1"])
        pooling = tsrnet.pooling_for_variant(variant)
        element = (untrimmed, trimmed) if variant in ("tsrnet", "tsrnet_no_fc2") else untrimmed

        mirrored = train_lib.make_strategy("mirrored")
        models, optimizers = build(mirrored, config, pooling)
        initial_weights = weights(models)
        logged = one_trainer_step(mirrored, models, optimizers,
                                  tsrnet_method.make_step_fn(config, models, optimizers, 2), element)
        two_replicas = weights(models)

        # Reference 1, on one device: each half as replica r of 2 sees it (num_replicas=2),
        # from the same weights. SGD's first step is linear in the gradient (the momentum starts
        # at 0), so the 2-replica update is the sum of the two half updates: this is the
        # documented definition, batch-level terms (the MMD²) being the mean of per-replica
        # estimates.
        single = train_lib.make_strategy("default")
        summed = [np.zeros_like(w) for w in initial_weights]
        half_logs = []
        for half in halves(element):
            models, optimizers = build(single, config, pooling)
            half_logs.append(one_step(
                tsrnet_method.make_step_fn(config, models, optimizers, 2), half))
            summed = [s + (w - i) for s, w, i in zip(summed, weights(models), initial_weights)]
        documented = [i + s for i, s in zip(initial_weights, summed)]

        # Reference 2: one replica on the whole global batch, the plain single-device step.
        models, optimizers = build(single, config, pooling)
        whole_log = one_step(tsrnet_method.make_step_fn(config, models, optimizers, 1), element)
        whole = weights(models)
        results.append({
            "variant": variant,
            "documented": compare("documented", two_replicas, documented),
            "whole": compare("whole", two_replicas, whole),
            "logged": logged,
            "half_sum": {key: half_logs[0][key] + half_logs[1][key] for key in half_logs[0]},
            "whole_logged": whole_log})
    print("RESULT " + json.dumps(results))
""")

_CONVEX_CLUSTERING_STEPS_SCRIPT = _STEP_HARNESS + textwrap.dedent("""
    from tfwsar import config as config_lib
    from tfwsar.recipes import convex_clustering as recipe

    element = toy_batch([12, 7, 9, 12], 12)
    num_exemplars, embedding = 5, 8
    exemplar_values = random.normal(size=(NUM_CLASSES, num_exemplars, embedding)).astype("float32")
    valid_values = np.ones((NUM_CLASSES, num_exemplars), bool)
    valid_values[1, 3:] = False  # a class with padded exemplars
    q = random.dirichlet(np.ones(num_exemplars), size=NUM_CLASSES)
    log_q_values = np.where(valid_values, np.log(q), -np.inf).astype("float32")
    config = config_lib.override(recipe.get_config(), [
        f"train.batch_size={BATCH}", "model.fc1_units=8", f"model.fc2_units={embedding}",
        "model.attention_units=4", "model.dropout_rate=0.0", "model.smoothness_weight=0.5",
        "model.sparsity_weight=0.1", "clustering.loss_weight=1.0"])

    def build_all(strategy):
        models, optimizers = build(strategy, config, "attention")
        with strategy.scope():
            exemplars = {s: tf.Variable(exemplar_values, trainable=False) for s in models}
            log_q = {s: tf.Variable(log_q_values, trainable=False) for s in models}
            valid = tf.Variable(valid_values, trainable=False)
        steps = recipe.make_step_fns(config, models, optimizers, exemplars, log_q, valid,
                                     strategy.num_replicas_in_sync)
        state = {**{f"exemplars_{s}": v for s, v in exemplars.items()},
                 **{f"log_q_{s}": v for s, v in log_q.items()}, "exemplar_valid": valid}
        return models, optimizers, dict(zip(("plain", "clustering"), steps)), state

    results = []
    for phase in ("plain", "clustering"):
        mirrored = train_lib.make_strategy("mirrored")
        models, optimizers, steps, state = build_all(mirrored)
        initial_weights = weights(models)
        logged = one_trainer_step(mirrored, models, optimizers, steps[phase], element, state)
        two_replicas = weights(models)
        models, optimizers, steps, _ = build_all(train_lib.make_strategy("default"))
        whole_log = one_step(steps[phase], element)
        results.append({"phase": phase, "whole": compare("whole", two_replicas, weights(models)),
                        "logged": logged, "whole_logged": whole_log})
    print("RESULT " + json.dumps(results))
""")

TOLERANCE = 1e-5


def test_mirrored_tsrnet_step_on_two_replicas_updates_the_weights_as_one_replica():
    """Every variant: per-example terms over the global batch, the MMD² the mean of the
    replicas' estimates (train_lib's rule); without MMD that is the whole-batch step itself."""
    results = _run_script(_TSRNET_STEPS_SCRIPT)
    assert [result["variant"] for result in results] == [
        "two_stream", "srnet", "tsrnet", "tsrnet_no_fc2"]
    for result in results:
        documented, whole = result["documented"], result["whole"]
        assert documented["max_abs_update"] > 100 * TOLERANCE  # the step moved the weights
        assert documented["max_abs_difference"] < TOLERANCE, result
        for key, value in result["logged"].items():  # logged = sum over replicas
            assert value == pytest.approx(result["half_sum"][key], rel=1e-5, abs=1e-6), key
        if result["variant"] in ("two_stream", "srnet"):
            assert whole["max_abs_difference"] < TOLERANCE, result
            for key, value in result["logged"].items():
                assert value == pytest.approx(result["whole_logged"][key], rel=1e-5, abs=1e-6), key
        else:
            # The MMD² of each half is not the MMD² of the whole batch, and the test sees it.
            assert whole["max_abs_difference"] > 10 * TOLERANCE, result
            assert result["logged"]["rgb/mmd_fc1"] != pytest.approx(
                result["whole_logged"]["rgb/mmd_fc1"], rel=1e-3)


def test_mirrored_convex_clustering_step_with_and_without_l_cc_updates_the_weights_as_one_replica():
    """L_class and λ·L_cc are per-video terms over the global batch: 2 replicas = the whole batch."""
    results = _run_script(_CONVEX_CLUSTERING_STEPS_SCRIPT)
    assert [result["phase"] for result in results] == ["plain", "clustering"]
    for result in results:
        assert result["whole"]["max_abs_update"] > 100 * TOLERANCE
        assert result["whole"]["max_abs_difference"] < TOLERANCE, result
        for key, value in result["logged"].items():
            assert value == pytest.approx(result["whole_logged"][key], rel=1e-5, abs=1e-6), key
    assert results[1]["logged"]["rgb/convex_clustering"] > 0.0


# ------------------------------------------------------------------------------------------------
# Two worker processes on localhost: MultiWorkerMirroredStrategy through TF_CONFIG
# ------------------------------------------------------------------------------------------------

TSRNET_FLAGS = [
    "--variant", "srnet", "--validation_fraction", "0.25", "--strategy", "multi_worker",
    "--set", "train.batch_size=4", "--set", "train.steps_per_execution=1",
    "--set", "data.num_segments=32", "--set", "model.fc1_units=16", "--set", "model.fc2_units=16",
    "--set", "model.attention_units=8", "--set", "train.log_every=50",
    "--set", "train.eval_every=100", "--set", "train.checkpoint_every=20"]
TSRNET_STEPS = 300  # long enough (seconds) to kill a worker between two checkpoints
CONVEX_CLUSTERING_FLAGS = [
    "--steps", "4", "--round_steps", "4", "--strategy", "multi_worker",
    "--set", "data.validation_fraction=0.25", "--set", "data.num_segments=16",
    "--set", "model.fc1_units=16", "--set", "model.fc2_units=8", "--set", "model.attention_units=8",
    "--set", "clustering.num_exemplars=4", "--set", "clustering.max_iterations=50",
    "--set", "train.batch_size=4", "--set", "train.steps_per_execution=2",
    "--set", "train.log_every=2", "--set", "train.eval_every=4", "--set", "train.checkpoint_every=2"]
CHIEF_FILES = ("config.json", "metrics.json", "predictions.json", "saved_model/saved_model.pb",
               "checkpoints/checkpoint", "report.html")


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class _Workers:
    """Two recipe processes of one cluster; worker 0 is the chief. Each has its own TMPDIR, so
    that the test can see what a worker leaves in its temporary directory."""

    def __init__(self, tmp_path, name, module, workdirs, flags):
        self.directory = tmp_path / name
        self.directory.mkdir(exist_ok=True)
        cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
        self.temporary = [self.directory / f"tmp{index}" for index in range(2)]
        self.logs = [self.directory / f"worker{index}.log" for index in range(2)]
        self.processes = []
        for index in range(2):
            self.temporary[index].mkdir(exist_ok=True)
            env = {**os.environ, "TMPDIR": str(self.temporary[index]),
                   "TF_CONFIG": json.dumps({"cluster": cluster,
                                            "task": {"type": "worker", "index": index}})}
            with open(self.logs[index], "w", encoding="utf-8") as log:
                self.processes.append(subprocess.Popen(
                    [sys.executable, "-m", module, "--workdir", str(workdirs[index]), *flags],
                    env=env, stdout=log, stderr=subprocess.STDOUT))

    def log(self, index):
        return self.logs[index].read_text(encoding="utf-8")

    def tails(self):
        return "\n".join(f"--- worker {index}:\n{self.log(index)[-3000:]}" for index in range(2))

    def wait(self, index=None, timeout=RUN_TIMEOUT):
        """Return codes; a process still running after `timeout` is killed and the test fails."""
        deadline = time.monotonic() + timeout
        codes = []
        for process in self.processes if index is None else [self.processes[index]]:
            try:
                codes.append(process.wait(timeout=max(1.0, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                self.kill()
                pytest.fail(f"a worker still ran {timeout} s later (hung?)\n{self.tails()}")
        return codes

    def kill(self):
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=60)

    def leftovers(self, index):
        """The tfwsar-worker-* directories left in a worker's TMPDIR."""
        return sorted(path.name for path in self.temporary[index].glob("tfwsar-worker-*"))


def _run_workers(tmp_path, name, module, workdirs, flags):
    workers = _Workers(tmp_path, name, module, workdirs, flags)
    try:
        assert workers.wait() == [0, 0], workers.tails()
    finally:
        workers.kill()
    return workers


def _run_single_process(module, workdir, flags):
    completed = subprocess.run([sys.executable, "-m", module, "--workdir", str(workdir), *flags],
                               capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed.stderr


def _read_json(path):
    return json.loads(pathlib.Path(path).read_text(encoding="utf-8"))


def _assert_only_the_chief_wrote(workers, chief_workdir, worker_workdir):
    for name in CHIEF_FILES:
        assert (chief_workdir / name).exists(), name
    assert not worker_workdir.exists()  # the non-chief wrote into a temporary copy...
    assert workers.leftovers(1) == [] and workers.leftovers(0) == []  # ...and removed it


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("data") / "toy", train_videos=12, test_videos=6,
                        feature_dim=8)


@pytest.fixture(scope="module")
def tsrnet_two_workers(toy_data, tmp_path_factory):
    """An uninterrupted two-worker TSRNet run; worker 1 is given a workdir of its own."""
    root = tmp_path_factory.mktemp("tsrnet_two_workers")
    workdirs = (root / "chief", root / "worker1")
    workers = _run_workers(root, "run", "tfwsar.recipes.tsrnet", workdirs,
                           ["--data", str(toy_data), "--steps", str(TSRNET_STEPS), *TSRNET_FLAGS])
    return workers, workdirs


def test_multi_worker_tsrnet_only_the_chief_writes_and_one_process_resumes_its_checkpoint(
        tsrnet_two_workers, toy_data, tmp_path):
    workers, (chief, worker) = tsrnet_two_workers
    _assert_only_the_chief_wrote(workers, chief, worker)
    assert "2 replicas" in workers.log(0)
    assert sorted(path.name for path in (chief / "checkpoints").glob("ckpt-*.index"))[-1] == (
        f"ckpt-{TSRNET_STEPS}.index")
    # Both workers computed the same run (the worker's tables are printed, not written).
    tables = [[line for line in workers.log(index).splitlines() if line.startswith("srnet ")]
              for index in range(2)]
    assert len(tables[0]) == 2 and tables[1] == tables[0]
    # ... and only the chief's summary names a workdir with the run in it.
    assert f"Everything is in {chief}" in workers.log(0)
    assert "Only the chief writes the run" in workers.log(1) and str(worker) not in workers.log(1)

    single = tmp_path / "single"
    shutil.copytree(chief, single)
    flags = [flag for flag in TSRNET_FLAGS if flag != "multi_worker"]
    flags[flags.index("--strategy") + 1:flags.index("--strategy") + 1] = ["default"]
    log = _run_single_process("tfwsar.recipes.tsrnet", single,
                              ["--data", str(toy_data), "--steps", str(TSRNET_STEPS + 20), *flags])
    assert f"(step {TSRNET_STEPS}," in log
    metrics = _read_json(single / "metrics.json")
    assert metrics["resumed"] is True
    assert (single / "checkpoints" / f"ckpt-{TSRNET_STEPS + 20}.index").exists()


def test_multi_worker_convex_clustering_only_the_chief_writes_and_one_process_resumes_it(
        toy_data, tmp_path):
    workdirs = (tmp_path / "chief", tmp_path / "worker1")
    workers = _run_workers(tmp_path, "run", "tfwsar.recipes.convex_clustering", workdirs,
                           ["--data", str(toy_data), "--rounds", "1", *CONVEX_CLUSTERING_FLAGS])
    chief, worker = workdirs
    _assert_only_the_chief_wrote(workers, chief, worker)
    assert (chief / "exemplars.npz").exists() and (chief / "rounds" / "round_1" / "round.json").exists()

    # One process takes the chief's finished run one round further.
    flags = [flag for flag in CONVEX_CLUSTERING_FLAGS if flag != "multi_worker"]
    flags[flags.index("--strategy") + 1:flags.index("--strategy") + 1] = ["default"]
    log = _run_single_process("tfwsar.recipes.convex_clustering", chief,
                              ["--data", str(toy_data), "--rounds", "2", *flags])
    assert "(step 8, round 2, phase 2)" in log
    metrics = _read_json(chief / "metrics.json")
    assert metrics["resumed"] is True
    assert [entry["steps"] for entry in metrics["rounds"]] == [[0, 4], [4, 8], [8, 12]]


def _dead_pid():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait(timeout=60)
    return process.pid


def test_multi_worker_run_killed_worker_stops_the_other_clearly_and_both_resume_to_the_same_metrics(
        tsrnet_two_workers, toy_data, tmp_path):
    _, (reference, _) = tsrnet_two_workers
    workdir = tmp_path / "shared"  # both workers get the same path, as on one host
    flags = ["--data", str(toy_data), "--steps", str(TSRNET_STEPS), *TSRNET_FLAGS]
    workers = _Workers(tmp_path, "killed", "tfwsar.recipes.tsrnet", (workdir, workdir), flags)
    try:
        deadline = time.monotonic() + RUN_TIMEOUT
        while not (workdir / "checkpoints" / "ckpt-60.index").exists():
            assert all(p.poll() is None for p in workers.processes), workers.tails()
            assert time.monotonic() < deadline, workers.tails()
            time.sleep(0.05)
        workers.processes[1].send_signal(signal.SIGKILL)
        assert workers.wait(0, timeout=LOST_WORKER_TIMEOUT)[0] != 0
    finally:
        workers.kill()
    chief_log = workers.log(0)
    assert "error: training stopped at step" in chief_log, workers.tails()
    assert "another worker of this 2-worker run failed or became unreachable" in chief_log
    assert "Traceback" not in chief_log
    named = re.search(r"checkpoint is (\S+/ckpt-(\d+));", chief_log)
    assert named, chief_log[-2000:]
    last = int(named.group(2))
    assert 60 <= last < TSRNET_STEPS
    assert named.group(1) == str(workdir / "checkpoints" / f"ckpt-{last}")
    assert pathlib.Path(named.group(1) + ".index").exists()
    killed_leftovers = workers.leftovers(1)
    assert len(killed_leftovers) == 1, killed_leftovers  # SIGKILL: it could not remove its copy

    # A restart where worker 1 cannot see the chief's workdir: both refuse to train.
    mismatched = _Workers(tmp_path, "mismatched", "tfwsar.recipes.tsrnet",
                          (workdir, tmp_path / "elsewhere"), flags)
    try:
        assert 0 not in mismatched.wait()
    finally:
        mismatched.kill()
    for index in range(2):
        assert f"error: the workers start from different steps [0, {last}]" in mismatched.log(index)

    # Both started again on the shared workdir: they resume from the chief's last checkpoint.
    # What the killed worker left behind, as it would be on its host's TMPDIR:
    (tmp_path / "restarted" / "tmp1" / f"tfwsar-worker-{_dead_pid()}-left").mkdir(parents=True)
    restarted = _Workers(tmp_path, "restarted", "tfwsar.recipes.tsrnet", (workdir, workdir), flags)
    try:
        assert restarted.wait() == [0, 0], restarted.tails()
    finally:
        restarted.kill()
    assert f"ckpt-{last} (step {last}," in restarted.log(0) and f"(step {last}," in restarted.log(1)
    resumed, uninterrupted = _read_json(workdir / "metrics.json"), _read_json(reference / "metrics.json")
    assert resumed["resumed"] and not uninterrupted["resumed"]
    for key in ("classification", "detection", "selection"):
        assert resumed[key] == uninterrupted[key], key
    assert _read_json(workdir / "predictions.json") == _read_json(reference / "predictions.json")
    assert restarted.leftovers(1) == [] and restarted.leftovers(0) == []

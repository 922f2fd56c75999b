"""The convex-clustering recipe: a whole run's workdir, resuming after a kill, the test-time rule."""

import dataclasses
import glob
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from tfwsar import clustering, inference
from tfwsar.recipes import convex_clustering
from toy_datasets import make_dataset

CLASSES = ["Jump", "Run", "Throw"]
FEATURE_DIM = 8
FEATURE_RATE = 25.0 / 16.0
TRAIN_VIDEOS = 12
TEST_VIDEOS = 6


def _tiny_dataset(out):
    """3 classes, 12 training + 6 test videos of 24–40 segments; each class is a direction
    (tests/toy_datasets.py); test videos cycle through the classes, so every class has ground truth."""
    return make_dataset(out, train_videos=TRAIN_VIDEOS, test_videos=TEST_VIDEOS,
                        feature_dim=FEATURE_DIM, classes=CLASSES)


def _tiny_config(data_dir):
    config = convex_clustering.get_config()
    return dataclasses.replace(
        config,
        data=dataclasses.replace(config.data, data_dir=str(data_dir), validation_fraction=0.25,
                                 num_segments=16),
        # No dropout: under MirroredStrategy Keras draws one mask for every replica's rows, so
        # only without it can a 2-replica run be compared number for number with a 1-replica run.
        model=dataclasses.replace(config.model, fc1_units=16, fc2_units=8, attention_units=8,
                                  dropout_rate=0.0),
        clustering=dataclasses.replace(config.clustering, rounds=1, round_steps=4,
                                       num_exemplars=4, max_iterations=50),
        train=dataclasses.replace(config.train, steps=4, batch_size=4, steps_per_execution=2,
                                  log_every=1, eval_every=4, checkpoint_every=2))


STATE_NAMES = ("exemplars_rgb", "exemplars_flow", "log_q_rgb", "log_q_flow", "exemplar_valid")


class _Killed(Exception):
    """Stands in for the process being killed."""


def _comparable(metrics):
    return {key: value for key, value in metrics.items() if key != "resumed"}


def _assert_same_results(workdir, reference):
    """Same predictions (every detection score) and the same final D and Q as `reference`."""
    for name in ("predictions.json",):
        with open(os.path.join(workdir, name), encoding="utf-8") as file, \
                open(os.path.join(reference, name), encoding="utf-8") as expected:
            assert json.load(file) == json.load(expected)
    resumed, uninterrupted = (np.load(os.path.join(directory, "exemplars.npz"))
                              for directory in (workdir, reference))
    for name in STATE_NAMES:
        np.testing.assert_array_equal(resumed[name], uninterrupted[name])


def _saved_state(workdir):
    """Round, phase, step and D/Q/validity of the newest checkpoint in `workdir`."""
    reader = tf.train.load_checkpoint(os.path.join(workdir, "checkpoints"))

    def value(name):
        return reader.get_tensor(f"{name}/.ATTRIBUTES/VARIABLE_VALUE")

    return ({name: int(value(name)) for name in ("round", "phase", "step")},
            {name: value(name) for name in STATE_NAMES})


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return _tiny_dataset(tmp_path_factory.mktemp("data") / "toy")


@pytest.fixture(scope="module")
def uninterrupted(tiny_data, tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("uninterrupted"))
    events = []
    metrics = convex_clustering.run(
        _tiny_config(tiny_data), workdir,
        on_progress=lambda round_index, phase, step, state: events.append((round_index, phase, step)))
    return workdir, metrics, events


@pytest.mark.slow
def test_a_run_leaves_every_workdir_file_with_baseline_and_rounds(uninterrupted, tiny_data):
    workdir, metrics, events = uninterrupted
    config = _tiny_config(tiny_data)

    # The alternation ran as numbered: (1) then (2) → (3) → (4), with the steps of each phase.
    phase_starts = [(r, p) for r, p, _ in events]
    assert phase_starts[0] == (0, 1)
    assert [(r, p) for r, p in dict.fromkeys(phase_starts)] == [(0, 1), (1, 2), (1, 3), (1, 4)]
    assert max(step for _, _, step in events) == config.train.steps + config.clustering.round_steps

    # config.json: the resolved config.
    with open(os.path.join(workdir, "config.json"), encoding="utf-8") as file:
        assert json.load(file) == json.loads(json.dumps(dataclasses.asdict(config)))

    # metrics.json: the contract keys, for the final run and for the round-0 baseline.
    with open(os.path.join(workdir, "metrics.json"), encoding="utf-8") as file:
        stored = json.load(file)
    assert stored == json.loads(json.dumps(metrics))
    tious = [f"0.{i}" for i in range(1, 10)]
    for document in (stored, stored["baseline"], stored["final_without_selection"]):
        assert set(document["classification"]) == {"rgb", "flow", "fusion"}
        assert all(0.0 <= v <= 1.0 for v in document["classification"].values())
        assert set(document["detection"]) == set(tious) | {"average"}
        assert document["detection"]["average"] == pytest.approx(
            np.mean([document["detection"][key] for key in tious]))
        assert document["test_videos"] == TEST_VIDEOS
    assert stored["test_time"]["selection"] == "convex clustering"
    assert 0.0 < stored["test_time"]["union_fraction_mean"] <= 1.0
    assert stored["baseline"]["test_time"]["selection"] == "every segment"
    assert [entry["round"] for entry in stored["rounds"]] == [0, 1]
    first = stored["rounds"][1]
    assert first["database"]["exemplars_per_class"] == [4, 4, 4]
    for stream in ("rgb", "flow"):
        fit = first["representativeness"][stream]
        assert fit["fitted_classes"] == 3 and 1 <= fit["iterations_max"] <= 50
        assert np.isfinite(fit["mean_l_cc"])
    assert first["steps"] == [4, 8] and first["selection"]["step"] == 8
    assert stored["resumed"] is False

    # predictions.json: ActivityNet result format over every test video, known labels.
    with open(os.path.join(workdir, "predictions.json"), encoding="utf-8") as file:
        predictions = json.load(file)
    assert set(predictions) >= {"version", "external_data", "results"}
    assert len(predictions["results"]) == TEST_VIDEOS
    detections = [d for video in predictions["results"].values() for d in video]
    assert detections and all(d["label"] in CLASSES for d in detections)
    assert all(0.0 <= d["segment"][0] < d["segment"][1] for d in detections)

    # saved_model/: the serving contract, inputs rgb and flow of any length.
    loaded = tf.saved_model.load(os.path.join(workdir, "saved_model"))
    serve = loaded.signatures["serving_default"]
    assert set(serve.structured_input_signature[1]) == {"rgb", "flow"}
    served = serve(rgb=tf.zeros([13, FEATURE_DIM]), flow=tf.zeros([13, FEATURE_DIM]))
    assert served["probabilities"].shape == [3]
    assert served["attention_rgb"].shape == [13] and served["attention_flow"].shape == [13]
    assert served["segment_scores"].shape == [13, 3]
    np.testing.assert_allclose(np.sum(served["probabilities"]), 1.0, rtol=1e-5)

    # exemplars.npz: D and log Q of the last round, as checkpointed.
    saved = np.load(os.path.join(workdir, "exemplars.npz"))
    _, checkpointed = _saved_state(workdir)
    for name in STATE_NAMES:
        np.testing.assert_array_equal(saved[name], checkpointed[name])
    assert saved["exemplars_rgb"].shape == (3, 4, 8)
    q = np.exp(saved["log_q_rgb"])
    np.testing.assert_allclose(q.sum(axis=1), 1.0, rtol=1e-5)
    assert list(saved["classes"]) == CLASSES

    # TensorBoard events, checkpoints, per-round records and selection.
    for directory in ("train", "eval"):
        assert glob.glob(os.path.join(workdir, directory, "events.out.tfevents.*"))
    assert tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
    counters, _ = _saved_state(workdir)
    assert counters == {"round": 2, "phase": convex_clustering.PHASE_COLLECT, "step": 8}
    for round_index in (0, 1):
        directory = os.path.join(workdir, "rounds", f"round_{round_index}")
        assert os.path.exists(os.path.join(directory, "round.json"))
        assert os.path.exists(os.path.join(directory, "selection", "best.json"))


def _kill_then_resume(data_dir, workdir, should_kill):
    """Runs until `should_kill(round, phase, step, call_index)` is true, then runs again."""
    config = _tiny_config(data_dir)
    calls = []

    def killer(round_index, phase, step, state):
        calls.append((round_index, phase, step))
        if should_kill(round_index, phase, step, len(calls)):
            raise _Killed()

    with pytest.raises(_Killed):
        convex_clustering.run(config, workdir, on_progress=killer)
    saved_counters, saved_state = _saved_state(workdir)

    resumed_events = []

    def recorder(round_index, phase, step, state):
        resumed_events.append((round_index, phase, step,
                               {name: variable.numpy().copy() for name, variable in state.items()}))

    metrics = convex_clustering.run(config, workdir, on_progress=recorder)
    return calls, saved_counters, saved_state, resumed_events, metrics


@pytest.mark.slow
def test_a_run_killed_in_phase_3_resumes_fitting_q_with_d_restored(uninterrupted, tiny_data,
                                                                   tmp_path):
    fit_calls = []

    def in_phase_3_after_its_host_pass(round_index, phase, step, _):
        if (round_index, phase) == (1, convex_clustering.PHASE_FIT):
            fit_calls.append(step)
        return len(fit_calls) == 2  # the second phase-(3) call: Q fitted, not yet saved

    _, saved_counters, saved_state, resumed, metrics = _kill_then_resume(
        tiny_data, str(tmp_path), in_phase_3_after_its_host_pass)

    assert saved_counters == {"round": 1, "phase": convex_clustering.PHASE_FIT, "step": 4}
    assert np.all(np.isneginf(saved_state["log_q_rgb"])), "Q was not saved before the kill"
    first_round, first_phase, first_step, first_state = resumed[0]
    assert (first_round, first_phase, first_step) == (1, convex_clustering.PHASE_FIT, 4)
    assert convex_clustering.PHASE_COLLECT not in [event[1] for event in resumed], \
        "D is restored, not collected again"
    for name in ("exemplars_rgb", "exemplars_flow", "exemplar_valid"):
        np.testing.assert_array_equal(first_state[name], saved_state[name])
    assert saved_state["exemplar_valid"].all()
    assert metrics["resumed"] is True
    assert _comparable(metrics) == _comparable(uninterrupted[1])
    _assert_same_results(str(tmp_path), uninterrupted[0])


@pytest.mark.slow
def test_a_run_killed_in_phase_4_resumes_training_with_d_and_q_restored(uninterrupted, tiny_data,
                                                                        tmp_path):
    def in_phase_4_after_a_checkpoint(round_index, phase, step, _):
        return (round_index, phase, step) == (1, convex_clustering.PHASE_TRAIN_CC, 7)

    _, saved_counters, saved_state, resumed, metrics = _kill_then_resume(
        tiny_data, str(tmp_path), in_phase_4_after_a_checkpoint)

    # Killed at step 7: the newest checkpoint is phase (4)'s step 6 (checkpoint_every=2).
    assert saved_counters == {"round": 1, "phase": convex_clustering.PHASE_TRAIN_CC, "step": 6}
    first_round, first_phase, first_step, first_state = resumed[0]
    assert (first_round, first_phase, first_step) == (1, convex_clustering.PHASE_TRAIN_CC, 6)
    assert {event[1] for event in resumed} == {convex_clustering.PHASE_TRAIN_CC}
    for name in STATE_NAMES:
        np.testing.assert_array_equal(first_state[name], saved_state[name])
    assert np.isfinite(saved_state["log_q_rgb"]).all()
    np.testing.assert_allclose(np.exp(saved_state["log_q_flow"]).sum(axis=1), 1.0, rtol=1e-5)
    assert _comparable(metrics) == _comparable(uninterrupted[1])
    _assert_same_results(str(tmp_path), uninterrupted[0])


@pytest.mark.slow
def test_two_replicas_train_collect_and_fit_like_one(uninterrupted, tiny_data, tmp_path):
    """MirroredStrategy over 2 logical CPUs: L_cc scaled by the global batch, D dealt to 2 collectors."""
    workdir = tmp_path / "mirrored"
    script = textwrap.dedent(f"""
        import dataclasses, sys
        sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})
        from tfwsar import train_lib
        train_lib.use_logical_cpus(2)
        import test_convex_clustering_recipe as recipe_test
        from tfwsar.recipes import convex_clustering
        assert train_lib.make_strategy("mirrored").num_replicas_in_sync == 2
        config = recipe_test._tiny_config({str(tiny_data)!r})
        config = dataclasses.replace(config, train=dataclasses.replace(config.train,
                                                                       strategy="mirrored"))
        convex_clustering.run(config, {str(workdir)!r})
    """)
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                               env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, check=False)
    assert completed.returncode == 0, completed.stderr[-3000:]
    reference = uninterrupted[1]
    with open(workdir / "metrics.json", encoding="utf-8") as file:
        mirrored = json.load(file)
    for key in ("classification", "detection"):
        assert mirrored[key] == pytest.approx(reference[key], abs=1e-9)
        assert mirrored["baseline"][key] == pytest.approx(reference["baseline"][key], abs=1e-9)
    for stream in ("rgb", "flow"):
        assert (mirrored["rounds"][1]["representativeness"][stream]["mean_l_cc"]
                == pytest.approx(reference["rounds"][1]["representativeness"][stream]["mean_l_cc"],
                                 rel=1e-6))
    expected = np.load(os.path.join(uninterrupted[0], "exemplars.npz"))
    saved = np.load(workdir / "exemplars.npz")
    np.testing.assert_array_equal(saved["exemplar_valid"], expected["exemplar_valid"])
    for name in ("exemplars_rgb", "exemplars_flow", "log_q_rgb", "log_q_flow"):
        np.testing.assert_allclose(saved[name], expected[name], rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------------------------------
# The host-side steps on hand-made outputs (fast)
# ------------------------------------------------------------------------------------------------


def _outputs(num_videos=5, num_classes=3, dim=4, seed=0):
    random = np.random.default_rng(seed)
    outputs = []
    for index in range(num_videos):
        length = int(random.integers(6, 12))
        attention = {s: random.dirichlet(np.ones(length)) for s in ("rgb", "flow")}
        logits = {s: random.normal(size=(length, num_classes)) for s in ("rgb", "flow")}
        segment_probabilities = {s: np.exp(v) / np.exp(v).sum(1, keepdims=True)
                                 for s, v in logits.items()}
        pooled = {s: attention[s] @ logits[s] for s in ("rgb", "flow")}
        outputs.append(inference.VideoOutputs(
            video=f"v{index}", duration=length / FEATURE_RATE,
            labels=(index % num_classes,) if index != 3 else (0, 2),
            probabilities={s: np.exp(v) / np.exp(v).sum() for s, v in pooled.items()},
            attention=attention,
            features={s: random.normal(size=(length, dim)).astype(np.float32)
                      for s in ("rgb", "flow")},
            segment_probabilities=segment_probabilities))
    return outputs


def test_rescoring_every_segment_gives_back_the_networks_class_scores():
    for output in _outputs():
        rescored = convex_clustering.rescore(output, np.ones(len(output.attention["rgb"]), bool))
        for stream in ("rgb", "flow"):
            np.testing.assert_allclose(rescored.probabilities[stream],
                                       output.probabilities[stream], rtol=1e-5)


def test_rescoring_one_segment_gives_that_segments_class_scores():
    output = _outputs()[0]
    union = np.zeros(len(output.attention["rgb"]), bool)
    union[2] = True
    rescored = convex_clustering.rescore(output, union)
    np.testing.assert_allclose(rescored.probabilities["flow"],
                               output.segment_probabilities["flow"][2], rtol=1e-5)


def test_the_exemplar_database_does_not_depend_on_how_videos_are_dealt_to_replicas():
    outputs = _outputs(num_videos=9)
    single = convex_clustering.collect_exemplar_database(outputs, 3, 4, theta=0.5, num_shards=1)
    dealt = convex_clustering.collect_exemplar_database(outputs, 3, 4, theta=0.5, num_shards=3)
    for stream in ("rgb", "flow"):
        np.testing.assert_array_equal(single[0][stream], dealt[0][stream])
    np.testing.assert_array_equal(single[1], dealt[1])


def test_the_exemplars_are_the_best_scoring_segments_of_videos_with_that_label():
    outputs = _outputs(num_videos=6)
    database, valid, _ = convex_clustering.collect_exemplar_database(outputs, 3, 2, theta=0.5)
    for class_index in range(3):
        candidates = [(score, tuple(np.concatenate([o.features["rgb"][t], o.features["flow"][t]])))
                      for o in outputs if class_index in o.labels
                      for t, score in enumerate(
                          convex_clustering.segment_scores(o, 0.5)[:, class_index])]
        best = sorted(candidates, key=lambda item: -item[0])[:2]
        assert valid[class_index].all()
        for row, (_, features) in enumerate(best):
            np.testing.assert_array_equal(database["rgb"][class_index, row], features[:4])
            np.testing.assert_array_equal(database["flow"][class_index, row], features[4:])


def test_the_test_time_union_holds_k_segments_of_each_candidate_class_nearest_its_exemplars():
    output = _outputs(num_videos=1, dim=2)[0]
    length = len(output.attention["rgb"])
    # Class c's single exemplar sits on segment c's features (both streams): cost is least there.
    exemplars = {s: output.features[s][:3][:, None, :] for s in ("rgb", "flow")}
    log_q = {s: np.zeros((3, 1)) for s in ("rgb", "flow")}
    settings = dataclasses.replace(convex_clustering.ClusteringConfig(), test_k=1, test_classes=0)
    union = convex_clustering.select_union(output, exemplars, log_q, settings, theta=0.5)
    assert union.tolist() == [True, True, True] + [False] * (length - 3)
    top = int(np.argmax(output.probabilities["rgb"] + output.probabilities["flow"]))
    settings = dataclasses.replace(settings, test_classes=1)
    union = convex_clustering.select_union(output, exemplars, log_q, settings, theta=0.5)
    assert np.flatnonzero(union).tolist() == [top]


def test_q_is_fitted_on_the_simplex_and_lowers_the_clustering_cost():
    outputs = _outputs(num_videos=8)
    database, valid, _ = convex_clustering.collect_exemplar_database(outputs, 3, 4, theta=0.5)
    settings = convex_clustering.ClusteringConfig()
    log_q, summary = convex_clustering.fit_stream_representativeness(
        outputs, "rgb", database["rgb"], valid, 3, settings)
    np.testing.assert_allclose(np.exp(log_q).sum(axis=1), 1.0)
    uniform = np.where(valid, 1.0 / valid.sum(axis=1, keepdims=True), 0.0)
    sets = clustering.SegmentSetCollector(3)
    for output in outputs:
        labels = np.zeros(3)
        labels[list(output.labels)] = 1
        sets.update(output.features["rgb"], output.attention["rgb"], None, labels)
    fitted = clustering.convex_clustering_objective(sets.result(), None, database["rgb"],
                                                    np.exp(log_q), valid, alpha=settings.alpha)
    start = clustering.convex_clustering_objective(sets.result(), None, database["rgb"], uniform,
                                                   valid, alpha=settings.alpha)
    assert np.all(fitted >= start - 1e-12) and np.any(fitted > start + 1e-6)
    assert summary["fitted_classes"] == 3 and summary["converged_classes"] == 3

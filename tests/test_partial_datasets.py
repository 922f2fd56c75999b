"""Runs on part of a dataset: a test subset that lacks classes, a class with one training video.

A finished training is never lost: predictions.json and the SavedModel are written before the
evaluation, a prediction of a dataset class without ground truth in the subset is no error (AP is
averaged over the classes that have ground truth there), and an unknown label is still one error.
"""

import dataclasses
import json
import subprocess
import sys

import pandas as pd
import pytest

from tfwsar import config as config_lib
from tfwsar import evaluation, inference
from tfwsar.errors import DataError
from tfwsar.recipes import convex_clustering
from tfwsar.recipes import tsrnet as tsrnet_recipe
from toy_datasets import CLASSES, make_dataset

WORKDIR_FILES = ("metrics.json", "predictions.json", "config.json", "saved_model/saved_model.pb",
                 "checkpoints/checkpoint")
REPO = __import__("pathlib").Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def partial_data(tmp_path_factory):
    """4 classes; "Swim" has a single training video and no test video, "Throw" no test video."""
    return make_dataset(tmp_path_factory.mktemp("partial") / "toy",
                        train_labels=[0, 1, 2, 0, 1, 2, 0, 1, 2, 3, 0, 1],
                        test_labels=[0, 1, 0, 1, 0, 1])


def _tsrnet_config(data_dir):
    return config_lib.override(tsrnet_recipe.get_config(), [
        "variant=srnet", f"data.data_dir={data_dir}", "data.validation_fraction=0.25",
        "train.steps=4", "train.batch_size=4", "train.steps_per_execution=2", "train.log_every=2",
        "train.eval_every=2", "train.checkpoint_every=2", "data.num_segments=16",
        "model.fc1_units=8", "model.fc2_units=8", "model.attention_units=4",
        "detection.class_threshold=0.0", "detection.top_k=4"])


def _convex_clustering_config(data_dir):
    config = convex_clustering.get_config()
    return dataclasses.replace(
        config,
        data=dataclasses.replace(config.data, data_dir=str(data_dir), validation_fraction=0.25,
                                 num_segments=16),
        model=dataclasses.replace(config.model, fc1_units=8, fc2_units=8, attention_units=4),
        clustering=dataclasses.replace(config.clustering, rounds=1, round_steps=2,
                                       num_exemplars=4, max_iterations=20),
        train=dataclasses.replace(config.train, steps=2, batch_size=4, steps_per_execution=2,
                                  log_every=2, eval_every=2, checkpoint_every=2))


def _predicted_labels(workdir):
    predictions = json.loads((workdir / "predictions.json").read_text())
    return {entry["label"] for entries in predictions["results"].values() for entry in entries}


@pytest.mark.slow
def test_tsrnet_on_a_test_subset_lacking_classes_ends_with_every_workdir_file(partial_data, tmp_path):
    metrics = tsrnet_recipe.run(_tsrnet_config(partial_data), str(tmp_path))
    for name in WORKDIR_FILES:
        assert (tmp_path / name).exists(), name
    assert metrics["detection_classes"] == 2  # Jump and Run have test ground truth
    # Every class is predicted somewhere (top_k = 4, no class threshold): the missing ones are
    # left out of the mAP and reported, not an error.
    assert {"Throw", "Swim"} <= _predicted_labels(tmp_path)
    assert any("no ground truth in subset 'test'" in note for note in metrics["notes"])


@pytest.mark.slow
def test_convex_clustering_on_a_test_subset_lacking_classes_ends_with_every_workdir_file(
        partial_data, tmp_path):
    metrics = convex_clustering.run(_convex_clustering_config(partial_data), str(tmp_path))
    for name in WORKDIR_FILES + ("exemplars.npz",):
        assert (tmp_path / name).exists(), name
    assert metrics["detection_classes"] == 2


@pytest.mark.slow
def test_predictions_and_the_saved_model_survive_a_failed_evaluation(partial_data, tmp_path,
                                                                     monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("injected failure")

    monkeypatch.setattr(inference, "score_test_split", broken)
    with pytest.raises(inference.EvaluationError) as raised:
        tsrnet_recipe.run(_tsrnet_config(partial_data), str(tmp_path))
    message = str(raised.value)
    assert "injected failure" in message and "tools/evaluate.py" in message
    assert str(tmp_path / "predictions.json") in message
    assert (tmp_path / "predictions.json").exists()
    assert (tmp_path / "saved_model" / "saved_model.pb").exists()
    assert not (tmp_path / "metrics.json").exists()


def _ground_truth_file(path):
    """Classes A, B, C in the taxonomy; the test subset has ground truth of A and B only."""
    database = {
        "v1": {"subset": "test", "duration": 20.0, "annotations": [
            {"segment": [1.0, 5.0], "label": "A"}, {"segment": [10.0, 12.0], "label": "B"}]},
        "v2": {"subset": "test", "duration": 20.0, "annotations": [
            {"segment": [2.0, 6.0], "label": "A"}]},
        "v3": {"subset": "validation", "duration": 20.0, "annotations": [
            {"segment": [2.0, 6.0], "label": "C"}]},
    }
    path.write_text(json.dumps({"version": "1.3", "database": database,
                                "taxonomy": [{"nodeName": name} for name in "ABC"]}))
    return path


def _predictions_file(path, extra_label=None):
    results = {"v1": [{"label": "A", "score": 0.9, "segment": [1.0, 5.0]},
                      {"label": "B", "score": 0.8, "segment": [9.0, 12.0]}],
               "v2": [{"label": "A", "score": 0.7, "segment": [12.0, 16.0]}]}
    if extra_label:
        results["v2"].append({"label": extra_label, "score": 0.95, "segment": [2.0, 6.0]})
    path.write_text(json.dumps({"version": "VERSION 1.3", "external_data": {}, "results": results}))
    return path


def test_a_dataset_class_without_ground_truth_in_the_subset_is_left_out_and_counted(tmp_path):
    ground_truth = evaluation.load_ground_truth(_ground_truth_file(tmp_path / "gt.json"), "test")
    assert ground_truth.classes == ["A", "B"] and ground_truth.known_classes == ["A", "B", "C"]
    with_c = evaluation.detection_map(ground_truth, _predictions_file(tmp_path / "p.json", "C"), [0.5])
    without_c = evaluation.detection_map(ground_truth, _predictions_file(tmp_path / "q.json"), [0.5])
    assert with_c["mAP"] == without_c["mAP"] and set(with_c["per_class"]) == {"A", "B"}
    assert with_c["num_predictions_without_ground_truth_class"] == 1
    assert with_c["classes_without_ground_truth"] == ["C"]
    # A: one hit of two instances → AP 0.5; B: tIoU 2/3 ≥ 0.5 → AP 1.
    assert with_c["mAP"]["0.5"] == pytest.approx(0.75)


def test_a_label_unknown_to_the_whole_dataset_is_still_one_error_naming_the_entry(tmp_path):
    ground_truth = evaluation.load_ground_truth(_ground_truth_file(tmp_path / "gt.json"), "test")
    with pytest.raises(DataError, match=r"p.json: results\['v2'\]\[1\]: label 'Z' is not a class "
                                        r"of the dataset"):
        evaluation.detection_map(ground_truth, _predictions_file(tmp_path / "p.json", "Z"), [0.5])


def test_without_a_taxonomy_the_dataset_classes_are_the_labels_of_every_subset(tmp_path):
    path = _ground_truth_file(tmp_path / "gt.json")
    data = json.loads(path.read_text())
    del data["taxonomy"]
    path.write_text(json.dumps(data))
    assert evaluation.load_ground_truth(path, "test").known_classes == ["A", "B", "C"]


def _evaluate(*arguments):
    return subprocess.run([sys.executable, str(REPO / "tools" / "evaluate.py"), *arguments],
                          capture_output=True, text=True, check=False)


def test_evaluate_tool_averages_over_present_classes_and_says_what_it_left_out(tmp_path):
    out = tmp_path / "result.json"
    completed = _evaluate("--ground-truth", str(_ground_truth_file(tmp_path / "gt.json")),
                          "--predictions", str(_predictions_file(tmp_path / "p.json", "C")),
                          "--subset", "test", "--tiou", "0.5", "--json", str(out))
    assert completed.returncode == 0, completed.stderr
    assert "1 prediction(s) of classes with no ground truth in subset 'test' (C)" in completed.stderr
    result = json.loads(out.read_text())
    assert result["mAP"]["0.5"] == pytest.approx(0.75)
    assert result["classes_without_ground_truth"] == ["C"]


def test_evaluate_tool_refuses_an_unknown_label_with_one_error_and_no_output(tmp_path):
    out = tmp_path / "result.json"
    completed = _evaluate("--ground-truth", str(_ground_truth_file(tmp_path / "gt.json")),
                          "--predictions", str(_predictions_file(tmp_path / "p.json", "Z")),
                          "--subset", "test", "--tiou", "0.5", "--json", str(out))
    assert completed.returncode == 1
    assert completed.stderr.count("error:") == 1 and "label 'Z'" in completed.stderr
    assert not out.exists()


def test_evaluate_help_states_the_partial_dataset_rule():
    completed = _evaluate("--help")
    assert "no ground truth in --subset is no error" in " ".join(completed.stdout.split())


def test_the_toy_partial_dataset_really_lacks_test_classes(partial_data):
    truth = json.loads((partial_data / "ground_truth.json").read_text())["database"]
    test_labels = {a["label"] for v in truth.values() if v["subset"] == "test" for a in v["annotations"]}
    train_counts = pd.Series([v["annotations"][0]["label"] for v in truth.values()
                              if v["subset"] == "validation"]).value_counts()
    assert test_labels == {"Jump", "Run"} and train_counts["Swim"] == 1 and len(CLASSES) == 4


@pytest.mark.slow
def test_wtalc_pairs_and_evaluation_work_when_a_class_has_one_training_video(partial_data, tmp_path):
    from tfwsar.recipes import wtalc  # pylint: disable=import-outside-toplevel

    config = config_lib.override(wtalc.get_config(), [
        f"data.data_dir={partial_data}", "data.validation_fraction=0.25", "data.num_segments=16",
        "data.similar_pairs=1", "train.steps=4", "train.batch_size=4",
        "train.steps_per_execution=2", "train.log_every=2", "train.eval_every=2",
        "train.checkpoint_every=2"])
    metrics = wtalc.run(config, str(tmp_path))
    for name in WORKDIR_FILES:
        assert (tmp_path / name).exists(), name
    assert metrics["detection_classes"] == 2

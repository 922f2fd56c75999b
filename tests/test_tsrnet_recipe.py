"""The TSRNet recipe end to end on the embedded default dataset: every variant, resume, 2 replicas."""

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tfwsar import config as config_lib
from tfwsar.recipes import tsrnet as recipe

pytestmark = pytest.mark.slow

WORKDIR_FILES = ("metrics.json", "predictions.json", "config.json", "saved_model/saved_model.pb",
                 "checkpoints/checkpoint", "selection/best.json")


def tiny_config(variant="tsrnet", steps=4):
    """The default recipe shrunk to seconds: few steps, short batches, narrow layers."""
    return config_lib.override(dataclasses.replace(recipe.get_config(), variant=variant), [
        f"train.steps={steps}", "train.batch_size=4", "train.steps_per_execution=2",
        "train.log_every=2", "train.eval_every=2", "train.checkpoint_every=2",
        "data.num_segments=32", "data.trimmed_num_segments=8", "model.fc1_units=16",
        "model.fc2_units=16", "model.attention_units=8", "model.mmd_segments_per_video=4"])


def _event_files(directory):
    return [name for name in os.listdir(directory) if name.startswith("events.out.tfevents")]


@pytest.mark.parametrize("variant", recipe.VARIANTS)
def test_each_variant_leaves_the_whole_workdir_contract(variant, tmp_path):
    metrics = recipe.run(tiny_config(variant), str(tmp_path))
    for name in WORKDIR_FILES:
        assert (tmp_path / name).exists(), name
    assert _event_files(tmp_path / "train") and _event_files(tmp_path / "eval")
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written == json.loads(json.dumps(metrics))
    assert set(written["classification"]) >= {"rgb", "flow", "fusion"}
    assert all(0.0 <= written["classification"][k] <= 1.0 for k in ("rgb", "flow", "fusion"))
    expected_keys = {"0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9", "average"}
    assert set(written["detection"]) == expected_keys
    assert written["detection"]["average"] == pytest.approx(
        np.mean([written["detection"][k] for k in expected_keys - {"average"}]))
    predictions = json.loads((tmp_path / "predictions.json").read_text())
    assert set(predictions) >= {"version", "external_data", "results"}
    assert len(predictions["results"]) == written["test_videos"] == 212
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["variant"] == variant and config["train"]["steps"] == 4


def test_an_interrupted_run_resumed_ends_with_the_same_metrics(tmp_path):
    uninterrupted = recipe.run(tiny_config(steps=6), str(tmp_path / "straight"))
    recipe.run(tiny_config(steps=2), str(tmp_path / "resumed"))  # "killed" after 2 steps
    resumed = recipe.run(tiny_config(steps=6), str(tmp_path / "resumed"))
    assert resumed["resumed"] and not uninterrupted["resumed"]
    assert resumed["classification"] == uninterrupted["classification"]
    assert resumed["detection"] == uninterrupted["detection"]
    assert resumed["selection"] == uninterrupted["selection"]


def test_two_logical_cpus_train_with_mirrored_strategy(tmp_path):
    command = [sys.executable, "-m", "tfwsar.recipes.tsrnet", "--workdir", str(tmp_path),
               "--logical_cpus", "2", "--strategy", "mirrored", "--variant", "srnet",
               "--set", "train.steps=2", "--set", "train.batch_size=4",
               "--set", "train.steps_per_execution=1", "--set", "data.num_segments=16",
               "--set", "model.fc1_units=8", "--set", "model.fc2_units=8",
               "--set", "model.attention_units=4", "--validation_fraction", "0"]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "2 replicas" in completed.stderr or "replicas=2" in completed.stderr
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["classification"]["fusion"] >= 0.0
    assert "Classification accuracy" in completed.stdout


def test_unknown_override_names_the_key():
    with pytest.raises(ValueError, match="train.bogus"):
        config_lib.override(recipe.get_config(), ["train.bogus=1"])


def test_a_missing_dataset_is_one_clear_error_and_leaves_no_workdir(tmp_path):
    workdir = tmp_path / "run"
    completed = subprocess.run(
        [sys.executable, "-m", "tfwsar.recipes.tsrnet", "--data", str(tmp_path / "nothing"),
         "--workdir", str(workdir)], capture_output=True, text=True, check=False)
    assert completed.returncode == 1
    assert "error:" in completed.stderr and "is not a converted dataset" in completed.stderr
    assert not workdir.exists()


def test_transfer_without_trimmed_data_is_refused_before_writing(tmp_path):
    from tfwsar.data import synthetic
    from tfwsar.errors import DataError

    untrimmed, _ = synthetic.ensure_default_dataset()
    config = config_lib.override(tiny_config("tsrnet"), [f"data.data_dir={untrimmed}"])
    with pytest.raises(DataError, match="--trimmed"):
        recipe.run(config, str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()

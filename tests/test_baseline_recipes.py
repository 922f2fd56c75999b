"""The baselines (W-TALC, STPN, BaS-Net) run like TSRNet: the workdir contract, resume, compare."""

import json
import os
import subprocess
import sys

import pytest

from tfwsar import config as config_lib
from tfwsar.recipes import basnet, compare, stpn, wtalc
from toy_datasets import make_dataset

pytestmark = pytest.mark.slow

RECIPES = {"wtalc": wtalc, "stpn": stpn, "basnet": basnet}
WORKDIR_FILES = ("metrics.json", "predictions.json", "config.json", "report.html",
                 "saved_model/saved_model.pb", "checkpoints/checkpoint", "selection/best.json")


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("baselines") / "toy")


def tiny_config(name, data_dir, steps=4):
    return config_lib.override(RECIPES[name].get_config(), [
        f"data.data_dir={data_dir}", "data.validation_fraction=0.25", "data.num_segments=16",
        f"data.similar_pairs={1 if name == 'wtalc' else 0}", f"train.steps={steps}",
        "train.batch_size=4", "train.steps_per_execution=2", "train.log_every=2",
        "train.eval_every=2", "train.checkpoint_every=2", "detection.other_rules=whole_video"])


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_each_baseline_leaves_the_whole_workdir_contract(name, toy_data, tmp_path):
    metrics = RECIPES[name].run(tiny_config(name, toy_data), str(tmp_path))
    for path in WORKDIR_FILES:
        assert (tmp_path / path).exists(), path
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["method"] == name and written == json.loads(json.dumps(metrics))
    assert set(written["classification"]) >= {"rgb", "flow", "fusion"}
    assert set(written["detection"]) == {"0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8",
                                         "0.9", "average"}
    assert set(written["detection_by_rule"]) == {"whole_video"}
    predictions = json.loads((tmp_path / "predictions.json").read_text())
    assert len(predictions["results"]) == 6


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_an_interrupted_baseline_resumed_ends_with_the_same_metrics(name, toy_data, tmp_path):
    uninterrupted = RECIPES[name].run(tiny_config(name, toy_data, steps=6), str(tmp_path / "straight"))
    RECIPES[name].run(tiny_config(name, toy_data, steps=2), str(tmp_path / "resumed"))  # "killed"
    resumed = RECIPES[name].run(tiny_config(name, toy_data, steps=6), str(tmp_path / "resumed"))
    assert resumed["resumed"] and not uninterrupted["resumed"]
    for key in ("classification", "detection", "selection"):
        assert resumed[key] == uninterrupted[key], key


def test_the_saved_model_serves_probabilities_attention_and_segment_scores(toy_data, tmp_path):
    import numpy as np  # pylint: disable=import-outside-toplevel
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    stpn.run(tiny_config("stpn", toy_data), str(tmp_path))
    serve = tf.saved_model.load(str(tmp_path / "saved_model")).signatures["serving_default"]
    outputs = serve(rgb=tf.random.normal([37, 8]), flow=tf.random.normal([37, 8]))
    assert outputs["probabilities"].shape == (4,) and outputs["attention"].shape == (37,)
    assert outputs["segment_scores"].shape == (37, 4)
    assert np.all((outputs["segment_scores"].numpy() >= 0) & (outputs["segment_scores"].numpy() <= 1))


def test_compare_runs_two_methods_into_one_table(toy_data, tmp_path):
    summary, table = compare.compare(
        ["srnet", "stpn"], seeds=1, workdir=str(tmp_path), data_dir=str(toy_data), steps=2,
        overrides=["data.num_segments=16", "train.batch_size=4", "train.steps_per_execution=1",
                   "data.validation_fraction=0.25", "train.log_every=1", "train.eval_every=2",
                   "train.checkpoint_every=2"])
    assert set(summary) == {"srnet", "stpn"}
    assert "| srnet (1 seeds) |" in table and "| stpn (1 seeds) |" in table
    written = json.loads((tmp_path / "comparison.json").read_text())
    assert written["methods"]["stpn"]["detection"]["0.5"]["values"] == [
        json.loads((tmp_path / "stpn" / "seed_0" / "metrics.json").read_text())["detection"]["0.5"]]
    assert (tmp_path / "comparison.md").read_text().strip() == table


def test_a_recipe_command_prints_the_tables_and_its_paper_row(toy_data, tmp_path):
    command = [sys.executable, "-m", "tfwsar.recipes.basnet", "--data", str(toy_data),
               "--workdir", str(tmp_path), "--steps", "2", "--validation_fraction", "0.25",
               "--set", "data.num_segments=16", "--set", "train.batch_size=4",
               "--set", "train.steps_per_execution=1"]
    completed = subprocess.run(command, capture_output=True, text=True, check=False,
                               env={**os.environ, "TFWSAR_VERBOSE": ""})
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "paper basnet (THUMOS14, real)" in completed.stdout
    assert "Report:" in completed.stdout

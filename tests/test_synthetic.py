"""The embedded default datasets: real THUMOS14 / ActivityNet1.3 timelines, generated features with
known structure."""

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tfwsar.data import synthetic

CLASSES = ["Jump", "Run", "Throw"]


def _generator(**changes):
    return synthetic._Generator(synthetic.SyntheticSpec(**changes), CLASSES)


def test_same_seed_same_features_other_seed_differs():
    def draw(seed):
        generator = _generator(seed=seed)
        rng = np.random.default_rng(0)
        return generator.untrimmed(rng, 50, [("Run", 5.0, 10.0)], [], ("Run",))["rgb"]

    np.testing.assert_array_equal(draw(0), draw(0))
    assert not np.array_equal(draw(0), draw(1))


def test_class_signal_lies_inside_the_action_and_weakly_around_it():
    spec = synthetic.SyntheticSpec(noise_scale=0.0, scene_scale=0.0, actionness=0.0)
    generator = synthetic._Generator(spec, CLASSES)
    rate = spec.feature_fps / spec.feature_stride
    features = generator.untrimmed(np.random.default_rng(0), 100, [("Throw", 20 / rate, 30 / rate)],
                                   [], ("Throw",))
    for stream in ("rgb", "flow"):
        prototype = generator.streams[stream]["prototypes"][2]
        projection = features[stream] @ prototype / (prototype @ prototype)
        inside = projection[20:30]
        context = np.concatenate([projection[14:20], projection[30:36]])
        assert np.all(inside > 0) and np.allclose(inside, inside[0])
        np.testing.assert_allclose(context, spec.context * inside[0], rtol=1e-5)
        assert np.all(projection[:14] == 0) and np.all(projection[36:] == 0)


def test_rgb_and_flow_carry_complementary_evidence():
    generator = _generator()
    strengths = [generator.streams[s]["strength"] for s in ("rgb", "flow")]
    np.testing.assert_allclose(strengths[0] + strengths[1], 2.0)
    assert not np.allclose(strengths[0], strengths[1])


def test_trimmed_clips_are_shifted_away_from_the_untrimmed_domain():
    generator = _generator()
    rng = np.random.default_rng(0)
    clip = generator.trimmed(rng, 2000, "Jump")["rgb"]
    parameters = generator.streams["rgb"]
    signal = generator._class_signal("rgb", "Jump") + generator.spec.actionness * parameters["actionness"]
    expected_mean = generator.spec.shift_scale * signal + parameters["shift"]
    np.testing.assert_allclose(clip.mean(axis=0), expected_mean, atol=0.25)


def test_noise_is_temporally_correlated_with_unit_variance():
    noise = synthetic._correlated_noise(np.random.default_rng(0), 20000, 4, smoothing=5)
    assert noise.std() == pytest.approx(1.0, abs=0.05)
    lag_one = np.mean(noise[1:] * noise[:-1])
    assert lag_one == pytest.approx(0.8, abs=0.05)  # box filter of 5: overlap 4/5


@pytest.mark.slow
def test_default_dataset_has_the_real_thumos14_counts_and_is_cached(tmp_path):
    untrimmed, trimmed = synthetic.ensure_default_dataset(root=tmp_path / "default")
    manifest = json.loads((untrimmed / "manifest.json").read_text())
    assert manifest["subsets"]["validation"]["videos"] == 200
    assert manifest["subsets"]["validation"]["instances"] == 3007
    assert manifest["subsets"]["test"]["videos"] == 212
    assert manifest["subsets"]["test"]["instances"] == 3358
    assert manifest["feature_rate"] == pytest.approx(25 / 16)
    trimmed_manifest = json.loads((trimmed / "manifest.json").read_text())
    assert trimmed_manifest["classes"] == manifest["classes"]
    assert trimmed_manifest["subsets"]["training"]["videos"] > 1500
    stamp = os.path.getmtime(untrimmed / "manifest.json")
    assert synthetic.ensure_default_dataset(root=tmp_path / "default") == (untrimmed, trimmed)
    assert os.path.getmtime(untrimmed / "manifest.json") == stamp
    assert not [p for p in (tmp_path / "default").iterdir() if p.name.startswith("staging")]


# ---- The embedded ActivityNet default --------------------------------------------------------

ACTIVITYNET_FILE = synthetic.resources_dir() / "activitynet" / synthetic.ACTIVITYNET_SUBSET


def test_class_profile_puts_the_core_in_the_middle_of_the_instance():
    np.testing.assert_allclose(synthetic.class_profile(8, 0.5, 0.15),
                               [0.15, 0.15, 1, 1, 1, 1, 0.15, 0.15])
    np.testing.assert_allclose(synthetic.class_profile(5, 0.5, 0.0), [0, 1, 1, 0, 0])  # ⌊5/4⌋ before
    np.testing.assert_allclose(synthetic.class_profile(1, 0.5, 0.0), [1])  # never without a core
    np.testing.assert_allclose(synthetic.class_profile(4, 1.0, 0.0), [1, 1, 1, 1])


def test_activitynet_instances_are_class_specific_in_their_middle_and_generic_on_their_flanks():
    spec = dataclasses.replace(synthetic.ACTIVITYNET_SPEC, noise_scale=0.0, scene_scale=0.0)
    generator = synthetic._Generator(spec, CLASSES)
    rate = spec.feature_fps / spec.feature_stride
    features = generator.untrimmed(np.random.default_rng(0), 100,
                                   [("Run", 20 / rate, 60 / rate)], [], ("Run",))
    for stream in ("rgb", "flow"):
        prototype = generator.streams[stream]["prototypes"][1]
        actionness = generator.streams[stream]["actionness"]
        x = features[stream]
        class_part = x - spec.actionness * actionness * (np.arange(100) >= 20)[:, None] * (
            np.arange(100) < 60)[:, None]
        projection = class_part @ prototype / (prototype @ prototype)
        core = projection[30:50]  # the middle half of segments 20…59
        assert np.allclose(core, core[0]) and core[0] > 0
        np.testing.assert_allclose(projection[20:30], spec.flank_class * core[0], rtol=1e-4)
        np.testing.assert_allclose(projection[50:60], spec.flank_class * core[0], rtol=1e-4)
        np.testing.assert_allclose(projection[:20], 0, atol=1e-6)  # no context outside
        np.testing.assert_allclose(projection[60:], 0, atol=1e-6)
        # the class-agnostic actionness is the same over the whole instance, core and flanks
        assert np.allclose(x[20:60] - class_part[20:60], spec.actionness * actionness, atol=1e-6)


def test_shipped_activitynet_subset_is_25_classes_of_real_timelines():
    from tfwsar.data import annotations

    activitynet = annotations.read_activitynet_json(ACTIVITYNET_FILE)
    videos = activitynet.videos
    assert len(activitynet.classes) == 25
    assert videos["subset"].value_counts().to_dict() == {"training": 400, "validation": 150}
    assert activitynet.instances["subset"].value_counts().to_dict() == {
        "training": 560, "validation": 218}
    assert all(len(labels) == 1 for labels in videos["labels"])
    per_class = videos.assign(label=videos["labels"].str[0]).groupby(["label", "subset"]).size()
    assert set(per_class[per_class.index.get_level_values(1) == "training"]) == {16}
    assert set(per_class[per_class.index.get_level_values(1) == "validation"]) == {6}
    # long actions, as on ActivityNet: the median instance covers a large part of its video
    merged = activitynet.instances.merge(videos[["video", "duration"]], on="video")
    coverage = (merged["t_end"].clip(upper=merged["duration"]) - merged["t_start"]) / merged["duration"]
    assert 0.35 < coverage.median() < 0.5 and (coverage > 0.8).mean() > 0.2
    assert 20 < videos["duration"].mean() * synthetic.ACTIVITYNET_SPEC.feature_fps / (
        synthetic.ACTIVITYNET_SPEC.feature_stride) < 200


def test_shipped_activitynet_subset_copies_the_source_annotation_file(shared_data):
    source = json.loads((shared_data / "activitynet" / "anet_anno_action.json").read_text())
    shipped = json.loads(ACTIVITYNET_FILE.read_text())
    for video, record in shipped["database"].items():
        assert record["duration"] == source[f"v_{video}"]["duration_second"]
        assert record["annotations"] == source[f"v_{video}"]["annotations"]


def test_unknown_embedded_dataset_is_refused():
    with pytest.raises(ValueError, match="thumos14"):
        synthetic.ensure_embedded_dataset("kinetics")


@pytest.mark.slow
def test_activitynet_default_dataset_has_the_subset_timelines_and_a_trimmed_domain(tmp_path):
    from tfwsar.data import records

    untrimmed, trimmed = synthetic.ensure_activitynet_dataset(root=tmp_path / "anet")
    manifest = json.loads((untrimmed / "manifest.json").read_text())
    assert manifest["subsets"]["training"]["videos"] == 400
    assert manifest["subsets"]["validation"]["videos"] == 150
    assert manifest["subsets"]["validation"]["instances"] == 218
    assert manifest["feature_rate"] == pytest.approx(25 / 32)
    assert manifest["feature_dims"] == {"rgb": 128, "flow": 128}
    index = records.read_index(untrimmed, "validation")
    expected = np.maximum(1, (index["duration"] * 25 / 32).astype(int))
    np.testing.assert_array_equal(index["num_segments"], expected)  # T from the real durations
    trimmed_manifest = json.loads((trimmed / "manifest.json").read_text())
    assert trimmed_manifest["classes"] == manifest["classes"]
    assert len(trimmed_manifest["class_mapping"]) == 25
    assert trimmed_manifest["subsets"]["training"]["videos"] == 25 * 18 * 5


@pytest.mark.slow
def test_activitynet_preset_runs_end_to_end_without_data(tmp_path):
    command = [sys.executable, "-m", "tfwsar.recipes.tsrnet", "--preset", "activitynet",
               "--variant", "tsrnet", "--workdir", str(tmp_path), "--steps", "4",
               "--set", "train.batch_size=4", "--set", "train.steps_per_execution=2",
               "--set", "train.eval_every=2", "--set", "data.num_segments=32",
               "--set", "model.fc1_units=16", "--set", "model.fc2_units=16",
               "--set", "model.attention_units=8", "--set", "model.mmd_segments_per_video=4"]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    assert completed.returncode == 0, completed.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["protocol"] == "activitynet" and metrics["test_videos"] == 150
    assert set(metrics["detection"]) == {"0.5", "0.55", "0.6", "0.65", "0.7", "0.75", "0.8",
                                         "0.85", "0.9", "0.95", "average"}
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["data"]["embedded"] == "activitynet" and config["data"]["data_dir"] == ""
    assert config["detection"]["rule"] == "attention"
    predictions = json.loads((tmp_path / "predictions.json").read_text())["results"]
    assert len(predictions) == 150 and all(predictions.values())

"""The embedded default dataset: real THUMOS14 timeline, generated features with known structure."""

import json
import os

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

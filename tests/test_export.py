"""SavedModel export: loads without tfwsar, equals the Keras models, detects as tfwsar.localize."""

import json
import pathlib
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from tfwsar import export, inference, localize
from tfwsar.models import tsrnet

CLASSES = ["Jump", "Run", "Throw", "Swim", "Kick"]
FEATURE_DIMS = {"rgb": 6, "flow": 4}
FEATURE_RATE = 1.5625
SETTINGS = inference.DetectionSettings(theta=0.4, thresholds=(0.2, 0.5), class_threshold=0.15,
                                       top_k=2, nms_tiou=0.6)
LENGTHS = {"video_a": 37, "video_b": 9, "video_c": 60}
TOOLS = str(pathlib.Path(__file__).resolve().parents[1] / "tools")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    keras.utils.set_random_seed(4)
    models = {stream: tsrnet.build_stream_network(
        FEATURE_DIMS[stream], len(CLASSES), fc1_units=16, fc2_units=8, attention_units=8,
        name=stream) for stream in inference.STREAMS}
    root = tmp_path_factory.mktemp("export")
    export.export_two_stream(models, root / "saved_model", feature_dims=FEATURE_DIMS,
                             classes=CLASSES, feature_rate=FEATURE_RATE, settings=SETTINGS)
    rng = np.random.default_rng(0)
    features = {}
    for stream in inference.STREAMS:
        (root / "features" / stream).mkdir(parents=True)
    for video, length in LENGTHS.items():
        # a slowly varying signal so that attention forms runs, plus noise
        base = np.sin(np.linspace(0, 3, length))[:, None]
        features[video] = {
            stream: (2 * base + rng.normal(size=(length, FEATURE_DIMS[stream]))).astype(np.float32)
            for stream in inference.STREAMS}
        for stream in inference.STREAMS:
            np.save(root / "features" / stream / f"{video}.npy", features[video][stream])
    return models, root, features


def _keras_outputs(models, features):
    outputs = {}
    for stream in inference.STREAMS:
        values = features[stream][None]
        result = models[stream]({"features": values, "mask": np.ones(values.shape[:2], np.float32)},
                                training=False)
        outputs[stream] = {key: np.asarray(value)[0] for key, value in result.items()}
    return outputs


SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    root, videos = sys.argv[1], sys.argv[2].split(",")
    loaded = tf.saved_model.load(root + "/saved_model")
    results = {}
    for video in videos:
        rgb = tf.constant(np.load(f"{root}/features/rgb/{video}.npy"))
        flow = tf.constant(np.load(f"{root}/features/flow/{video}.npy"))
        served = loaded.signatures["serving_default"](rgb=rgb, flow=flow)
        detected = loaded.signatures["detect"](rgb=rgb, flow=flow)
        results[video] = {key: value.numpy().tolist() for key, value in
                          {**served, **{"detect_" + k: v for k, v in detected.items()
                                        if k != "classes"}}.items()}
        results[video]["classes"] = [c.decode() for c in detected["classes"].numpy()]
    assert not any(name == "tfwsar" or name.startswith("tfwsar.") for name in sys.modules)
    print(json.dumps(results))
""")


@pytest.fixture(scope="module")
def served_without_tfwsar(exported):
    _, root, _ = exported
    completed = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(root), ",".join(LENGTHS)], capture_output=True,
        text=True, cwd=str(root), check=False)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_signatures_take_rgb_and_flow_of_any_length(served_without_tfwsar):
    for video, length in LENGTHS.items():
        outputs = served_without_tfwsar[video]
        assert np.shape(outputs["probabilities"]) == (len(CLASSES),)
        assert np.shape(outputs["attention_rgb"]) == (length,)
        assert np.shape(outputs["segment_scores"]) == (length, len(CLASSES))
        assert outputs["classes"] == CLASSES
        assert outputs["detect_feature_rate"] == pytest.approx(FEATURE_RATE)


def test_served_outputs_equal_the_keras_models(exported, served_without_tfwsar):
    models, _, features = exported
    for video in LENGTHS:
        expected = _keras_outputs(models, features[video])
        outputs = served_without_tfwsar[video]
        for stream in inference.STREAMS:
            np.testing.assert_allclose(outputs[f"probabilities_{stream}"],
                                       expected[stream]["probabilities"], rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(outputs[f"attention_{stream}"],
                                       expected[stream]["attention"], rtol=1e-5, atol=1e-6)
        fused = (SETTINGS.theta * expected["rgb"]["probabilities"]
                 + (1 - SETTINGS.theta) * expected["flow"]["probabilities"])
        np.testing.assert_allclose(outputs["probabilities"], fused, rtol=1e-5, atol=1e-6)


def test_detect_signature_equals_numpy_localization(exported, served_without_tfwsar):
    models, _, features = exported
    total = 0
    for video in LENGTHS:
        expected_outputs = _keras_outputs(models, features[video])
        expected = localize.localize_video(
            expected_outputs["rgb"]["attention"], expected_outputs["flow"]["attention"],
            expected_outputs["rgb"]["probabilities"], expected_outputs["flow"]["probabilities"],
            feature_rate=FEATURE_RATE, theta=SETTINGS.theta, threshold=SETTINGS.thresholds,
            class_threshold=SETTINGS.class_threshold, top_k=SETTINGS.top_k,
            nms_tiou=SETTINGS.nms_tiou)
        outputs = served_without_tfwsar[video]
        got = export.detections_from_signature(
            {key[len("detect_"):]: np.asarray(value) for key, value in outputs.items()
             if key.startswith("detect_")})

        def key(detection):
            return (detection["label_index"], round(detection["t_start"], 4),
                    round(detection["t_end"], 4))

        assert sorted(map(key, got)) == sorted(map(key, expected)), video
        expected_scores = {key(d): d["score"] for d in expected}
        for detection in got:
            assert detection["score"] == pytest.approx(expected_scores[key(detection)], rel=1e-4)
        total += len(got)
    assert total > 0, "the fixture must produce detections for the comparison to mean anything"


def test_localize_tool_writes_activitynet_predictions(exported, tmp_path):
    sys.path.insert(0, TOOLS)
    try:
        import localize as localize_tool  # tools/localize.py
    finally:
        sys.path.remove(TOOLS)
    _, root, _ = exported
    out = tmp_path / "predictions.json"
    assert localize_tool.main(["--saved-model", str(root / "saved_model"),
                               "--features", str(root / "features"), "--out", str(out)]) == 0
    predictions = json.loads(out.read_text())
    assert set(predictions["results"]) == set(LENGTHS)
    for entries in predictions["results"].values():
        for entry in entries:
            assert entry["label"] in CLASSES and entry["segment"][0] < entry["segment"][1]


def test_localize_tool_fails_cleanly_on_missing_model(tmp_path, capsys):
    sys.path.insert(0, TOOLS)
    try:
        import localize as localize_tool
    finally:
        sys.path.remove(TOOLS)
    out = tmp_path / "predictions.json"
    assert localize_tool.main(["--saved-model", str(tmp_path / "nothing"), "--features",
                               str(tmp_path), "--out", str(out)]) == 1
    assert "error:" in capsys.readouterr().err and not out.exists()

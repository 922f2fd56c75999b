"""SavedModel export: loads without tfwsar, equals the Keras models, detects as tfwsar.localize."""

import dataclasses
import json
import pathlib
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

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
                                        if detected[k].dtype != tf.string}}.items()}
        results[video]["classes"] = [c.decode() for c in detected["classes"].numpy()]
        for key in ("rule", "detection_settings"):
            results[video]["detect_" + key] = detected[key].numpy().decode()
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
        for key in ("segment_probabilities", "segment_probabilities_rgb",
                    "segment_probabilities_flow"):
            assert np.shape(outputs[key]) == (length, len(CLASSES))
            np.testing.assert_allclose(np.sum(outputs[key], axis=1), 1.0, rtol=1e-5)
        assert outputs["detect_rule"] == "tsrnet"
        assert json.loads(outputs["detect_detection_settings"]) == json.loads(
            json.dumps(dataclasses.asdict(SETTINGS)))


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


# ---------------------------------------------------------------------------------------------
# `detect` implements the exported settings' rule: the same detections as tfwsar.localize


RULE_SETTINGS = {
    "tsrnet_mean": inference.DetectionSettings(
        rule="tsrnet", theta=0.3, thresholds=(0.15, 0.3, 0.5), class_threshold=0.1, top_k=3,
        nms_tiou=0.4),
    "tsrnet_contrast": inference.DetectionSettings(
        rule="tsrnet", theta=0.6, thresholds=(0.05, 0.2, 0.4), scoring="contrast", top_k=2,
        class_threshold=0.2, nms_tiou=None),
    "whole_video": inference.DetectionSettings(rule="whole_video", theta=0.7, top_k=3,
                                               class_threshold=0.15),
    "attention": inference.DetectionSettings(rule="attention", theta=0.4, smoothing=5,
                                             max_gap=3, margin=0.3, top_k=2, nms_tiou=0.5),
    "cas": inference.DetectionSettings(rule="cas", theta=0.55, smoothing=3, max_gap=2, top_k=3,
                                       class_threshold=0.05, nms_tiou=None),
    "attention_cas": inference.DetectionSettings(
        rule="attention_cas", theta=0.45, smoothing=4, max_gap=1, nms_tiou=0.3,
        relative_thresholds=(0.0, 0.25, 0.5, 0.75), class_threshold=None, top_k=None),
    "thumos14_default": inference.DetectionSettings(**localize.THUMOS14_DETECTION),
    "activitynet_default": inference.DetectionSettings(**localize.ACTIVITYNET_DETECTION),
}
# a long and a medium video, two short ones (T ≤ 3) and one whose features, hence every score,
# are the same at every segment
RULE_LENGTHS = {"long": 90, "medium": 41, "three": 3, "one": 1, "constant": 15}
MAX_DETECTIONS = 60


@pytest.fixture(scope="module")
def rule_networks():
    keras.utils.set_random_seed(11)
    models = {stream: tsrnet.build_stream_network(
        FEATURE_DIMS[stream], len(CLASSES), fc1_units=16, fc2_units=8, attention_units=8,
        name=f"rule_{stream}") for stream in inference.STREAMS}
    rng = np.random.default_rng(3)
    features = {}
    for video, length in RULE_LENGTHS.items():
        if video == "constant":
            features[video] = {stream: np.tile(rng.normal(size=(1, FEATURE_DIMS[stream])),
                                               (length, 1)).astype(np.float32)
                               for stream in inference.STREAMS}
            continue
        base = np.sin(np.linspace(0, 5, length))[:, None]
        features[video] = {
            stream: (2 * base + rng.normal(size=(length, FEATURE_DIMS[stream]))).astype(np.float32)
            for stream in inference.STREAMS}
    return models, features


def _export(models, path, settings):
    export.export_two_stream(models, path, feature_dims=FEATURE_DIMS, classes=CLASSES,
                             feature_rate=FEATURE_RATE, settings=settings,
                             max_detections=MAX_DETECTIONS)
    return tf.saved_model.load(str(path))


def _video_outputs(video, outputs, duration):
    """inference.VideoOutputs as inference.predict_videos makes them from the networks' outputs."""
    return inference.VideoOutputs(
        video=video, duration=duration, labels=(),
        probabilities={s: outputs[s]["probabilities"] for s in inference.STREAMS},
        attention={s: outputs[s]["attention"] for s in inference.STREAMS}, features={},
        segment_probabilities={s: inference._softmax(outputs[s]["segment_logits"])  # pylint: disable=protected-access
                               for s in inference.STREAMS})


def _served_outputs(video, served, duration):
    """inference.VideoOutputs from the SavedModel's own serving_default outputs."""
    return inference.VideoOutputs(
        video=video, duration=duration, labels=(),
        probabilities={s: served[f"probabilities_{s}"] for s in inference.STREAMS},
        attention={s: served[f"attention_{s}"] for s in inference.STREAMS}, features={},
        segment_probabilities={s: served[f"segment_probabilities_{s}"]
                               for s in inference.STREAMS})


def _assert_same_detections(got, expected, context, tolerance=1e-5):
    """Same detections in the same order: labels equal, times and scores within `tolerance`.

    Detections whose expected scores tie exactly have no defined order in the SavedModel's
    float64 running sums versus numpy's summation (tfwsar.localize keeps creation order, and the
    two may differ in the last bit): within such a tie group they are compared as sorted sets.
    """
    expected = expected[:MAX_DETECTIONS]
    assert len(got) == len(expected), (context, got, expected)
    np.testing.assert_allclose([d["score"] for d in got], [d["score"] for d in expected],
                               rtol=tolerance, atol=tolerance, err_msg=str(context))
    index = 0
    while index < len(expected):
        end = index + 1
        while end < len(expected) and abs(expected[end]["score"] - expected[index]["score"]) <= (
                1e-12 * max(1.0, abs(expected[index]["score"]))):
            end += 1

        def keyed(detections):
            return sorted(((d["label_index"], d["t_start"], d["t_end"]) for d in detections),
                          key=lambda k: (k[0], round(k[1], 4), round(k[2], 4)))

        for mine, theirs in zip(keyed(got[index:end]), keyed(expected[index:end])):
            assert mine[0] == theirs[0], (context, index, got, expected)
            np.testing.assert_allclose(mine[1:], theirs[1:], rtol=tolerance, atol=tolerance,
                                       err_msg=str(context))
        index = end


def _detect(loaded, features, duration=None):
    inputs = {s: tf.constant(features[s]) for s in inference.STREAMS}
    if duration is None:
        outputs = loaded.signatures["detect"](**inputs)
    else:
        outputs = loaded.signatures["detect_with_duration"](
            **inputs, duration=tf.constant(duration, tf.float32))
    return outputs, export.detections_from_signature(
        {key: value.numpy() for key, value in outputs.items()})


@pytest.mark.parametrize("case", sorted(RULE_SETTINGS))
def test_detect_implements_the_exported_rule(rule_networks, tmp_path, case):
    """`detect` = inference.detect_videos on the networks' outputs (duration T / F) and
    `detect_with_duration` = the same with a video's duration; `localize.localize_rule` on the
    SavedModel's own serving_default outputs gives them exactly (bitwise-equal inputs)."""
    models, features = rule_networks
    settings = RULE_SETTINGS[case]
    loaded = _export(models, tmp_path / "saved_model", settings)
    total = 0
    for video, length in RULE_LENGTHS.items():
        outputs, got = _detect(loaded, features[video])
        assert outputs["rule"].numpy().decode() == settings.rule
        assert json.loads(outputs["detection_settings"].numpy().decode())["rule"] == settings.rule
        # the networks' outputs, as a run's predictions.json is made (the constant video too:
        # localize.CONSTANT_RANGE keeps float32 rounding, which differs between the Keras call
        # and the SavedModel graph, from being stretched into proposals)
        networks = _keras_outputs(models, features[video])
        expected = inference.detect_videos(
            [_video_outputs(video, networks, length / FEATURE_RATE)], settings,
            FEATURE_RATE)[video]
        _assert_same_detections(got, expected, (case, video, "detect"))
        # the SavedModel's own per-segment outputs: the rule alone, on identical numbers
        served = {key: value.numpy() for key, value in loaded.signatures["serving_default"](
            rgb=tf.constant(features[video]["rgb"]), flow=tf.constant(features[video]["flow"])).items()}
        exact = localize.localize_rule(
            settings.rule, {s: served[f"attention_{s}"] for s in inference.STREAMS},
            {s: served[f"probabilities_{s}"] for s in inference.STREAMS},
            {s: served[f"segment_probabilities_{s}"] for s in inference.STREAMS},
            theta=settings.theta, feature_rate=FEATURE_RATE, thresholds=settings.thresholds,
            scoring=settings.scoring, relative_thresholds=settings.relative_thresholds,
            smoothing=settings.smoothing, max_gap=settings.max_gap, margin=settings.margin,
            class_threshold=settings.class_threshold, top_k=settings.top_k,
            nms_tiou=settings.nms_tiou)
        _assert_same_detections(got, exact, (case, video, "served"), tolerance=1e-6)
        # a duration shorter than T / F: ends clipped ("whole_video": ends there)
        duration = float(np.float32(max(length - 0.6, 0.3) / FEATURE_RATE))
        _, clipped = _detect(loaded, features[video], duration)
        expected = inference.detect_videos(
            [_served_outputs(video, served, duration)], settings, FEATURE_RATE)[video]
        _assert_same_detections(clipped, expected, (case, video, "duration"), tolerance=1e-6)
        assert all(d["t_end"] <= duration + 1e-6 for d in clipped)
        total += len(got)
    assert total > len(RULE_LENGTHS), "the fixture must produce detections to compare"


def test_sequence_rules_find_several_proposals_per_video(rule_networks, tmp_path):
    """The comparison above means something: the long video gives several distinct intervals of
    several classes under a sequence rule, and NMS removed some."""
    models, features = rule_networks
    settings = RULE_SETTINGS["attention_cas"]
    loaded = _export(models, tmp_path / "saved_model", settings)
    _, got = _detect(loaded, features["long"])
    assert len({(d["t_start"], d["t_end"]) for d in got}) >= 5
    assert len({d["label_index"] for d in got}) >= 2
    networks = _keras_outputs(models, features["long"])
    unsuppressed = inference.detect_videos(
        [_video_outputs("long", networks, RULE_LENGTHS["long"] / FEATURE_RATE)],
        dataclasses.replace(settings, nms_tiou=None), FEATURE_RATE)["long"]
    assert len(unsuppressed) > len(got)


def test_detect_returns_at_most_max_detections(rule_networks, tmp_path):
    models, features = rule_networks
    settings = dataclasses.replace(RULE_SETTINGS["cas"], class_threshold=None, top_k=None)
    export.export_two_stream(models, tmp_path / "saved_model", feature_dims=FEATURE_DIMS,
                             classes=CLASSES, feature_rate=FEATURE_RATE, settings=settings,
                             max_detections=4)
    loaded = tf.saved_model.load(str(tmp_path / "saved_model"))
    outputs, got = _detect(loaded, features["long"])
    networks = _keras_outputs(models, features["long"])
    expected = inference.detect_videos(
        [_video_outputs("long", networks, RULE_LENGTHS["long"] / FEATURE_RATE)], settings,
        FEATURE_RATE)["long"]
    assert len(expected) > 4 and len(got) == 4 and outputs["labels"].shape == (4,)
    _assert_same_detections(got, expected[:4], "max_detections")


@pytest.mark.parametrize("rule", localize.PUBLISHED_RULES)
def test_export_refuses_a_rule_it_cannot_implement(rule_networks, tmp_path, rule):
    models, _ = rule_networks
    with pytest.raises(ValueError, match=f"detection rule '{rule}' cannot be exported"):
        export.export_two_stream(models, tmp_path / "saved_model", feature_dims=FEATURE_DIMS,
                                 classes=CLASSES, feature_rate=FEATURE_RATE,
                                 settings=inference.DetectionSettings(rule=rule))
    assert not (tmp_path / "saved_model").exists()


def test_localize_tool_uses_the_exported_rule(rule_networks, tmp_path):
    """tools/localize.py on a SavedModel exported with the THUMOS14 default rule ("cas") writes
    the detections of that rule."""
    sys.path.insert(0, TOOLS)
    try:
        import localize as localize_tool  # tools/localize.py
    finally:
        sys.path.remove(TOOLS)
    models, features = rule_networks
    settings = RULE_SETTINGS["thumos14_default"]
    _export(models, tmp_path / "saved_model", settings)
    for video in RULE_LENGTHS:
        for stream in inference.STREAMS:
            (tmp_path / "features" / stream).mkdir(parents=True, exist_ok=True)
            np.save(tmp_path / "features" / stream / f"{video}.npy", features[video][stream])
    out = tmp_path / "predictions.json"
    assert localize_tool.main(["--saved-model", str(tmp_path / "saved_model"),
                               "--features", str(tmp_path / "features"), "--out", str(out)]) == 0
    results = json.loads(out.read_text())["results"]
    assert set(results) == set(RULE_LENGTHS)
    for video, length in RULE_LENGTHS.items():
        expected = inference.detect_videos(
            [_video_outputs(video, _keras_outputs(models, features[video]), length / FEATURE_RATE)],
            settings, FEATURE_RATE)[video]
        _assert_same_detections(
            [{"label_index": CLASSES.index(e["label"]), "t_start": e["segment"][0],
              "t_end": e["segment"][1], "score": e["score"]} for e in results[video]],
            expected, (video, "tool"))

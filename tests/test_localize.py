"""Detection from attention and class scores, on hand-made score sequences."""

import json

import numpy as np
import pytest

from tfwsar import localize
from tfwsar.errors import DataError


def two_run_attention():
    """Attention (sums to 1) peaking on segments 2–3 and 6–8 of 10."""
    attention = np.array([0, 0, 1, 1, 0, 0, 1, 1, 1, 0], dtype=np.float64)
    return attention / attention.sum()


def test_two_separated_runs_are_found_with_boundaries_in_seconds():
    attention = two_run_attention()
    detections = localize.localize_video(
        attention, attention, [0.9, 0.1], [0.9, 0.1], feature_rate=2.0, theta=0.5, threshold=0.5
    )
    intervals = sorted((d["label_index"], d["t_start"], d["t_end"]) for d in detections)
    # segment i covers [i/F, (i+1)/F] with F = 2 segments per second
    assert intervals == [(0, 1.0, 2.0), (0, 3.0, 4.5)]
    for detection in detections:
        assert detection["score"] == pytest.approx(0.9)  # mean of w̄ = 1 · s over the run


def test_raw_attention_scale_does_not_change_detections():
    attention = two_run_attention()
    arguments = dict(feature_rate=2.0, theta=0.5, threshold=0.5)
    scores = [0.9, 0.1]
    reference = localize.localize_video(attention, attention, scores, scores, **arguments)
    halved = localize.localize_video(attention / 2, attention / 7, scores, scores, **arguments)
    assert halved == reference
    unnormalised = localize.localize_video(
        attention, attention, scores, scores, normalize_attention=False, **arguments
    )
    assert unnormalised == []  # raw a_i ≈ 1/T never reach 0.5


def test_threshold_is_inclusive_and_runs_touch_the_video_ends():
    weights = np.array([[0.5], [0.7], [0.49], [0.2], [0.5]])
    detections = localize.localize_from_weights(weights, [1.0], feature_rate=1.0, threshold=0.5)
    intervals = sorted((d["t_start"], d["t_end"]) for d in detections)
    assert intervals == [(0.0, 2.0), (4.0, 5.0)]
    scores = {(d["t_start"], d["t_end"]): d["score"] for d in detections}
    assert scores[(0.0, 2.0)] == pytest.approx(0.6)


def test_nothing_above_threshold_gives_no_detection():
    attention = two_run_attention()
    scores = [0.6, 0.4]
    detections = localize.localize_video(
        attention, attention, scores, scores, feature_rate=1.0, theta=0.5, threshold=0.61
    )
    assert detections == []


def test_theta_chooses_between_the_streams():
    rgb = np.array([1.0, 1.0, 0.0, 0.0, 0.0])
    flow = np.array([0.0, 0.0, 0.0, 1.0, 1.0])
    scores = [1.0]
    arguments = dict(feature_rate=1.0, threshold=0.6, class_threshold=None)
    only_rgb = localize.localize_video(rgb, flow, scores, scores, theta=1.0, **arguments)
    only_flow = localize.localize_video(rgb, flow, scores, scores, theta=0.0, **arguments)
    balanced = localize.localize_video(rgb, flow, scores, scores, theta=0.5, **arguments)
    assert [(d["t_start"], d["t_end"]) for d in only_rgb] == [(0.0, 2.0)]
    assert [(d["t_start"], d["t_end"]) for d in only_flow] == [(3.0, 5.0)]
    assert balanced == []  # each stream alone gives w̄ = 0.5 < 0.6


def test_nms_removes_an_overlapping_lower_scoring_duplicate():
    weights = np.array([[0.2], [0.5], [0.9], [0.5], [0.0]])
    arguments = dict(feature_rate=1.0, threshold=[0.1, 0.3])
    pooled = localize.localize_from_weights(weights, [1.0], **arguments)
    # threshold 0.1: segments 0–3 (mean 0.525); threshold 0.3: segments 1–3 (mean 0.633); tIoU 0.75
    assert [(d["t_start"], d["t_end"]) for d in pooled] == [(1.0, 4.0), (0.0, 4.0)]
    suppressed = localize.localize_from_weights(weights, [1.0], nms_tiou=0.5, **arguments)
    assert [(d["t_start"], d["t_end"]) for d in suppressed] == [(1.0, 4.0)]
    assert suppressed[0]["score"] == pytest.approx((0.5 + 0.9 + 0.5) / 3)
    lenient = localize.localize_from_weights(weights, [1.0], nms_tiou=0.8, **arguments)
    assert len(lenient) == 2


def test_nms_keeps_overlapping_detections_of_different_classes():
    detections = [
        {"label_index": 0, "t_start": 0.0, "t_end": 4.0, "score": 0.9},
        {"label_index": 1, "t_start": 0.0, "t_end": 4.0, "score": 0.5},
        {"label_index": 0, "t_start": 1.0, "t_end": 4.0, "score": 0.4},
    ]
    kept = localize.temporal_nms(detections, 0.5)
    assert [(d["label_index"], d["score"]) for d in kept] == [(0, 0.9), (1, 0.5)]


def test_contrast_scoring_subtracts_the_margins_around_the_run():
    weights = np.array([[0.1], [0.2], [0.8], [0.8], [0.8], [0.8], [0.4], [0.0]])
    (detection,) = localize.localize_from_weights(
        weights, [1.0], feature_rate=1.0, threshold=0.5, scoring="contrast"
    )
    # run 2–5 (length 4): margin ⌈0.25·4⌉ = 1 segment each side → outside {0.2, 0.4}
    assert detection["score"] == pytest.approx(0.8 - 0.3)
    with pytest.raises(ValueError, match="scoring"):
        localize.localize_from_weights(
            weights, [1.0], feature_rate=1.0, threshold=0.5, scoring="max"
        )


def test_class_selection_by_score_and_top_k():
    scores = [0.05, 0.5, 0.3, 0.15]
    assert localize.select_classes(scores, class_threshold=0.1) == [1, 2, 3]
    assert localize.select_classes(scores, class_threshold=0.1, top_k=2) == [1, 2]
    assert localize.select_classes(scores, class_threshold=0.9) == [1]
    assert localize.select_classes(scores, class_threshold=0.9, keep_top_class=False) == []
    weights = np.ones((3, 4))
    detections = localize.localize_from_weights(
        weights, scores, feature_rate=1.0, threshold=0.5, top_k=2
    )
    assert sorted(d["label_index"] for d in detections) == [1, 2]


def test_interval_ends_are_clipped_to_the_duration():
    (detection,) = localize.localize_from_weights(
        np.ones((3, 1)), [1.0], feature_rate=1.0, threshold=0.5, duration=2.4
    )
    assert (detection["t_start"], detection["t_end"]) == (0.0, 2.4)


def test_activitynet_format_names_labels_and_segments(tmp_path):
    detections = {
        "video_test_0000004": [
            {"label_index": 1, "t_start": 1.0, "t_end": 2.5, "score": np.float32(0.75)}
        ],
        "video_test_0000005": [],
    }
    result = localize.predictions_to_activitynet(detections, ["Diving", "GolfSwing"])
    assert result["external_data"]["used"] is False and "details" in result["external_data"]
    assert result["version"]
    assert result["results"] == {
        "video_test_0000004": [{"label": "GolfSwing", "score": 0.75, "segment": [1.0, 2.5]}],
        "video_test_0000005": [],
    }
    path = tmp_path / "predictions.json"
    localize.write_predictions(path, result)
    assert json.loads(path.read_text()) == result
    assert [p.name for p in tmp_path.iterdir()] == ["predictions.json"]


def test_bad_label_index_names_the_video():
    with pytest.raises(DataError, match="video_7"):
        localize.predictions_to_activitynet(
            {"video_7": [{"label_index": 3, "t_start": 0, "t_end": 1, "score": 1}]}, ["A", "B"]
        )


def test_a_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path):
    path = tmp_path / "predictions.json"
    path.write_text('{"old": true}')
    with pytest.raises(ValueError):
        localize.write_predictions(path, {"results": {"v": [{"score": float("nan")}]}})
    assert path.read_text() == '{"old": true}'
    assert [p.name for p in tmp_path.iterdir()] == ["predictions.json"]

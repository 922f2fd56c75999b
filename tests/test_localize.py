"""Detection from attention and class scores, on hand-made score sequences."""

import json

import numpy as np
import pytest

from tfwsar import evaluation, localize
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


# ---- Rules for long actions (localize_rule and its pipeline) --------------------------------


def plateau(length=100, first=20, last=79, inside=1.0, outside=0.0):
    """A `[T]` sequence equal to `inside` on segments first…last, `outside` elsewhere."""
    values = np.full(length, outside)
    values[first : last + 1] = inside
    return values


def best_interval(detections):
    return (detections[0]["t_start"], detections[0]["t_end"])


def test_a_long_plateau_is_found_whole():
    sequence = plateau()[:, None]
    detections = localize.localize_sequence(sequence, [0.8], feature_rate=2.0)
    assert best_interval(detections) == (10.0, 40.0)  # segments 20…79 at 2 segments/s
    assert detections[0]["score"] == pytest.approx(0.8 * 1.0)  # s̄_c · (1 inside − 0 outside)


def test_gap_filling_merges_the_fragments_of_one_action():
    values = plateau()
    values[48:51] = 0.0  # the score dips for 3 segments inside the action
    fragments = localize.localize_sequence(values[:, None], [1.0], feature_rate=1.0,
                                           relative_thresholds=[0.5])
    assert sorted((d["t_start"], d["t_end"]) for d in fragments) == [(20.0, 48.0), (51.0, 80.0)]
    merged = localize.localize_sequence(values[:, None], [1.0], feature_rate=1.0,
                                        relative_thresholds=[0.5], max_gap=3)
    assert [(d["t_start"], d["t_end"]) for d in merged] == [(20.0, 80.0)]
    short_gap = localize.localize_sequence(values[:, None], [1.0], feature_rate=1.0,
                                           relative_thresholds=[0.5], max_gap=2)
    assert len(short_gap) == 2  # a gap longer than max_gap stays a gap


def test_the_ends_of_the_video_are_not_gaps():
    active = np.array([False, True, True, False, False, True, False])
    np.testing.assert_array_equal(localize.fill_gaps(active, 2),
                                  [False, True, True, True, True, True, False])
    np.testing.assert_array_equal(localize.fill_gaps(active, 1), active)


def test_smoothing_averages_the_segments_that_exist_near_the_ends():
    smoothed = localize.smooth([0.0, 3.0, 0.0, 0.0, 6.0], 3)
    np.testing.assert_allclose(smoothed, [1.5, 1.0, 1.0, 2.0, 3.0])
    np.testing.assert_array_equal(localize.smooth([1.0, 2.0], 1), [1.0, 2.0])
    two_classes = localize.smooth(np.array([[0.0, 1.0], [3.0, 1.0], [0.0, 1.0]]), 3)
    np.testing.assert_allclose(two_classes, [[1.5, 1.0], [1.0, 1.0], [1.5, 1.0]])


def test_outer_inner_contrast_prefers_the_whole_action_over_its_core():
    # A core (1.0) with weaker flanks (0.6) around it, background (0) outside: thresholds at
    # 0.5 and 0.8 give the whole action (segments 10…49) and its core (segments 20…39).
    values = plateau(60, 10, 49, inside=0.6)
    values[20:40] = 1.0
    detections = localize.localize_sequence(values[:, None], [1.0], feature_rate=1.0,
                                            relative_thresholds=[0.5, 0.8])
    scores = {(d["t_start"], d["t_end"]): d["score"] for d in detections}
    assert scores[(10.0, 50.0)] == pytest.approx((20 * 1.0 + 20 * 0.6) / 40 - 0.0)
    assert scores[(20.0, 40.0)] == pytest.approx(1.0 - 0.6)  # its margins are the flanks
    assert best_interval(detections) == (10.0, 50.0)
    # The mean score of TSRNet's rule ranks the core first: it cannot tell a fragment.
    mean_scored = localize.localize_from_weights(values[:, None], [1.0], feature_rate=1.0,
                                                 threshold=[0.5, 0.8])
    assert best_interval(mean_scored) == (20.0, 40.0)


def test_relative_thresholds_do_not_depend_on_the_scale_of_the_scores():
    rng = np.random.default_rng(0)
    cas = np.clip(plateau(80, 10, 59)[:, None] * [0.7, 0.1] + 0.2 * rng.random((80, 2)), 0, None)
    arguments = dict(theta=0.5, feature_rate=1.0, smoothing=3, max_gap=2, nms_tiou=0.5)
    scores = {"rgb": [0.7, 0.3], "flow": [0.7, 0.3]}
    reference = localize.localize_rule("cas", None, scores, {"rgb": cas, "flow": cas}, **arguments)
    scaled = {"rgb": 0.05 * cas + 3.0, "flow": 0.05 * cas + 3.0}
    rescaled = localize.localize_rule("cas", None, scores, scaled, **arguments)
    assert [(d["label_index"], d["t_start"], d["t_end"]) for d in rescaled] == [
        (d["label_index"], d["t_start"], d["t_end"]) for d in reference]
    assert [d["score"] for d in rescaled] == pytest.approx([d["score"] for d in reference])
    assert best_interval(reference) == pytest.approx((10.0, 60.0), abs=1.0)  # ± the smoothing


def test_pooled_thresholds_give_each_run_once_and_nms_keeps_the_best_of_overlaps():
    values = np.array([0.0, 0.3, 0.6, 1.0, 1.0, 0.6, 0.3, 0.0, 0.0, 0.9, 0.0])
    pooled = localize.localize_sequence(values[:, None], [1.0], feature_rate=1.0,
                                        relative_thresholds=[0.2, 0.5, 0.8, 0.85])
    intervals = [(d["t_start"], d["t_end"]) for d in pooled]
    assert sorted(intervals) == [(1.0, 7.0), (2.0, 6.0), (3.0, 5.0), (9.0, 10.0)]  # no repeats
    suppressed = localize.localize_sequence(values[:, None], [1.0], feature_rate=1.0,
                                            relative_thresholds=[0.2, 0.5, 0.8, 0.85],
                                            nms_tiou=0.5)
    # OIC: 9 → 0.9, 1…6 → 0.63 (zeros around it), 2…5 → 0.8 − 0.3 = 0.5, 3…4 → 1 − 0.6 = 0.4.
    # 2…5 overlaps the better 1…6 at tIoU 4/6 > 0.5 and goes; 3…4 overlaps it at 2/6 and stays.
    assert [(d["t_start"], d["t_end"]) for d in suppressed] == [(9.0, 10.0), (1.0, 7.0), (3.0, 5.0)]
    assert [d["score"] for d in suppressed] == pytest.approx([0.9, 3.8 / 6, 0.4])


def test_whole_video_rule_gives_the_selected_classes_over_the_whole_video():
    scores = {"rgb": [0.6, 0.3, 0.1], "flow": [0.4, 0.5, 0.1]}
    cas = {stream: np.full((7, 3), 1 / 3) for stream in ("rgb", "flow")}
    detections = localize.localize_rule("whole_video", None, scores, cas, theta=0.5,
                                        feature_rate=2.0, duration=3.4, top_k=2)
    assert detections == [
        {"label_index": 0, "t_start": 0.0, "t_end": 3.4, "score": pytest.approx(0.5)},
        {"label_index": 1, "t_start": 0.0, "t_end": 3.4, "score": pytest.approx(0.4)}]
    without_duration = localize.localize_rule("whole_video", None, scores, cas, theta=0.5,
                                              feature_rate=2.0, top_k=1)
    assert [(d["t_start"], d["t_end"]) for d in without_duration] == [(0.0, 3.5)]


def test_each_rule_localises_its_own_sequence():
    attention = {"rgb": np.array([0.0, 1.0, 1.0, 0.0, 0.0, 0.0]),
                 "flow": np.array([0.0, 0.5, 0.5, 0.0, 0.0, 0.0])}
    scores = {"rgb": np.array([0.9, 0.1]), "flow": np.array([0.9, 0.1])}
    cas = {stream: np.array([[0.1, 0.9]] * 3 + [[0.9, 0.1]] * 3) for stream in ("rgb", "flow")}
    arguments = dict(theta=0.5, feature_rate=1.0, top_k=1, nms_tiou=0.5)
    np.testing.assert_allclose(  # ā = θ·â_rgb + (1−θ)·â_flow for every class, â = a / max a
        localize.rule_sequence("attention", attention, scores, cas, theta=0.5),
        np.outer([0, 1, 1, 0, 0, 0], [1.0, 1.0]))
    np.testing.assert_allclose(localize.rule_sequence("cas", attention, scores, cas, theta=0.5),
                               cas["rgb"])
    np.testing.assert_allclose(
        localize.rule_sequence("attention_cas", attention, scores, cas, theta=0.5),
        np.array([0, 1, 1, 0, 0, 0])[:, None] * cas["rgb"])
    assert best_interval(localize.localize_rule("attention", attention, scores, cas,
                                                **arguments)) == (1.0, 3.0)
    assert best_interval(localize.localize_rule("cas", attention, scores, cas,
                                                **arguments)) == (3.0, 6.0)
    tsrnet = localize.localize_rule("tsrnet", attention, scores, cas, thresholds=[0.5], **arguments)
    assert tsrnet == localize.localize_video(
        attention["rgb"], attention["flow"], scores["rgb"], scores["flow"], feature_rate=1.0,
        theta=0.5, threshold=[0.5], top_k=1, nms_tiou=0.5)
    with pytest.raises(ValueError, match="rule"):
        localize.localize_rule("peaks", attention, scores, cas, **arguments)


def test_detection_settings_name_a_rule_and_detect_videos_applies_it():
    from tfwsar import inference

    with pytest.raises(ValueError, match="rule"):
        inference.DetectionSettings(rule="peaks")
    output = inference.VideoOutputs(
        video="v", duration=4.0, labels=(0,),
        probabilities={"rgb": np.array([0.8, 0.2]), "flow": np.array([0.8, 0.2])},
        attention={"rgb": np.array([0.1, 0.4, 0.4, 0.1]), "flow": np.array([0.1, 0.4, 0.4, 0.1])},
        features={}, segment_probabilities={s: np.full((4, 2), 0.5) for s in ("rgb", "flow")})
    whole = inference.detect_videos([output], inference.DetectionSettings(rule="whole_video"), 1.0)
    assert [(d["t_start"], d["t_end"]) for d in whole["v"]] == [(0.0, 4.0), (0.0, 4.0)]
    attention_rule = inference.detect_videos(
        [output], inference.DetectionSettings(rule="attention", top_k=1), 1.0)
    assert best_interval(attention_rule["v"]) == (1.0, 3.0)
    # Under any rule but "tsrnet", detect_videos_from_weights ignores the caller's weights.
    from_weights = inference.detect_videos_from_weights(
        [output], [np.zeros((4, 2))], [np.array([0.8, 0.2])],
        inference.DetectionSettings(rule="attention", top_k=1), 1.0)
    assert from_weights == attention_rule


def test_a_sequence_constant_up_to_float32_rounding_gives_no_relative_proposals():
    flat = np.full(12, 0.3, dtype=np.float32).astype(np.float64)
    flat[5] = np.nextafter(np.float32(0.3), np.float32(1.0))  # one float32 step above the rest
    np.testing.assert_array_equal(localize.relative_scale(flat), np.zeros(12))
    varied = flat.copy()
    varied[5] = 0.31
    assert localize.relative_scale(varied)[5] == 1.0 and localize.relative_scale(varied).min() == 0.0


def test_nms_keeps_a_run_that_overlaps_by_exactly_the_threshold_on_the_segment_grid():
    rate = 1.5625  # 3 of 5 segments overlap: tIoU 0.6, computed in seconds as 0.5999999999999995
    best = {"label_index": 0, "t_start": 43 / rate, "t_end": 48 / rate, "score": 0.9}
    inside = {"label_index": 0, "t_start": 44 / rate, "t_end": 47 / rate, "score": 0.5}
    wider = {"label_index": 0, "t_start": 44 / rate, "t_end": 48 / rate, "score": 0.4}  # tIoU 0.8
    kept = localize.temporal_nms([best, inside, wider], 0.6)
    assert kept == [best, inside]
    # the same tie that float rounding computes as 0.6000000000000001 is kept as well
    early_best = {"label_index": 0, "t_start": 4 / rate, "t_end": 9 / rate, "score": 0.9}
    early_inside = {"label_index": 0, "t_start": 5 / rate, "t_end": 8 / rate, "score": 0.5}
    assert evaluation.temporal_iou([[5 / rate, 8 / rate]], [[4 / rate, 9 / rate]])[0, 0] > 0.6
    assert len(localize.temporal_nms([early_best, early_inside], 0.6)) == 2

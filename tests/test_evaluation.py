"""tfwsar.evaluation and tools/evaluate.py: hand-computed fixtures, a loop-based oracle, the real sample.

The oracle below is an independent, plain-Python implementation of the same definitions (one
prediction at a time, one threshold at a time, as the ActivityNet toolkit and W-TALC's detectionMAP.py
loop); the vectorised `detection_map` must agree with it on random inputs and on the ActivityNet sample.
"""

import importlib.util
import json
import random

import numpy as np
import pandas as pd
import pytest

from tfwsar import evaluation
from tfwsar.errors import DataError

from conftest import REPO


# ------------------------------------------------------------------------------------------------
# Oracle: loops over plain Python lists.
# ------------------------------------------------------------------------------------------------


def oracle_iou(start_a, end_a, start_b, end_b):
    intersection = max(0.0, min(end_a, end_b) - max(start_a, start_b))
    union = (end_b - start_b) + (end_a - start_a) - intersection
    if union == 0:
        return 1.0 if (start_a, end_a) == (start_b, end_b) else 0.0
    return intersection / union


def oracle_interpolated_ap(flags, num_positives):
    """flags: 1 = TP, 0 = FP in rank order."""
    precision, recall, tp, fp = [], [], 0, 0
    for flag in flags:
        tp += flag
        fp += 1 - flag
        precision.append(tp / (tp + fp))
        recall.append(tp / num_positives)
    precision = [0.0] + precision + [0.0]
    recall = [0.0] + recall + [1.0]
    for index in range(len(precision) - 2, -1, -1):
        precision[index] = max(precision[index], precision[index + 1])
    return sum((recall[index] - recall[index - 1]) * precision[index]
               for index in range(1, len(recall)) if recall[index] != recall[index - 1])


def oracle_anet(ground_truth, predictions, thresholds, ambiguous=(), tie_break="stable"):
    """ground_truth: [(video, label, start, end)]; predictions: [(video, label, start, end, score)];
    ambiguous: [(video, start, end)]. Returns ({threshold: mAP}, {label: [AP per threshold]})."""
    classes = []
    for _, label, _, _ in ground_truth:
        if label not in classes:
            classes.append(label)
    per_class = {}
    for label in classes:
        instances = [row for row in ground_truth if row[1] == label]
        preds = [row for row in predictions if row[1] == label]
        if tie_break == "stable":  # equal scores: later-listed first
            ranking = sorted(range(len(preds)), key=lambda i: (-preds[i][4], -i))
        else:  # the toolkit's own call
            ranking = list(np.array([row[4] for row in preds], np.float64).argsort()[::-1])
        aps = []
        for threshold in thresholds:
            matched = [False] * len(instances)
            flags = []
            for i in ranking:
                video, _, start, end, _ = preds[i]
                candidates = [j for j in range(len(instances)) if instances[j][0] == video]
                ious = {j: oracle_iou(start, end, instances[j][2], instances[j][3]) for j in candidates}
                if tie_break == "stable":
                    candidates.sort(key=lambda j: (-ious[j], -j))
                else:
                    row = np.array([ious[j] for j in candidates], np.float64)
                    candidates = [candidates[k] for k in row.argsort()[::-1]]
                flag = 0
                for j in candidates:  # the toolkit's loop: stop below threshold, skip matched
                    if ious[j] < threshold:
                        break
                    if matched[j]:
                        continue
                    matched[j] = True
                    flag = 1
                    break
                if flag == 0 and any(a_video == video and min(end, a_end) - max(start, a_start) > 0
                                     for a_video, a_start, a_end in ambiguous):
                    continue  # THUMOS14: false positives in Ambiguous segments are dropped
                flags.append(flag)
            aps.append(oracle_interpolated_ap(flags, len(instances)) if flags else 0.0)
        per_class[label] = aps
    mean = {threshold: sum(per_class[label][t] for label in classes) / len(classes)
            for t, threshold in enumerate(thresholds)}
    return mean, per_class


def oracle_wtalc(ground_truth, predictions, thresholds, ambiguous=(), tie_break="stable"):
    """W-TALC's getLocMAP, loop for loop (IoU in seconds)."""
    classes = sorted({row[1] for row in ground_truth})
    annotated = {row[0] for row in ground_truth}
    per_class = {}
    for label in classes:
        preds = [row for row in predictions if row[1] == label and row[0] in annotated
                 and not any(a_video == row[0] and min(row[3], a_end) - max(row[2], a_start) > 0
                             for a_video, a_start, a_end in ambiguous)]
        scores = np.array([row[4] for row in preds], np.float64)
        ranking = list(np.argsort(-scores, kind="stable" if tie_break == "stable" else None))
        aps = []
        for threshold in thresholds:
            remaining = [row for row in ground_truth if row[1] == label]
            num_positives = len(remaining)
            tp = []
            for i in ranking:
                video, _, start, end, _ = preds[i]
                flag = 0
                for j in range(len(remaining)):
                    other_video, _, other_start, other_end = remaining[j]
                    if other_video == video and oracle_iou(start, end, other_start, other_end) >= threshold:
                        flag = 1
                        del remaining[j]
                        break
                tp.append(flag)
            if sum(tp) == 0:
                aps.append(0.0)
                continue
            ap, seen_tp, seen_fp = 0.0, 0, 0
            for flag in tp:
                seen_tp += flag
                seen_fp += 1 - flag
                ap += flag * seen_tp / (seen_tp + seen_fp)
            aps.append(ap / num_positives)
        per_class[label] = aps
    mean = {threshold: sum(per_class[label][t] for label in classes) / len(classes)
            for t, threshold in enumerate(thresholds)}
    return mean, per_class


# ------------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------------


def gt_frame(rows):
    return pd.DataFrame(rows, columns=["video", "label", "t_start", "t_end"])


def pred_frame(rows):
    return pd.DataFrame(rows, columns=["video", "label", "t_start", "t_end", "score"])


def ground_truth(rows, ambiguous=(), videos=None):
    return evaluation.GroundTruth.from_frames(
        gt_frame(rows), ambiguous=pd.DataFrame(list(ambiguous), columns=["video", "t_start", "t_end"]),
        videos=videos)


def ap_at(gt_rows, pred_rows, thresholds, **kwargs):
    result = evaluation.detection_map(ground_truth(gt_rows, kwargs.pop("ambiguous", ())),
                                      pred_frame(pred_rows), thresholds, **kwargs)
    return [result["mAP"][evaluation.tiou_key(t)] for t in thresholds]


def write_json(path, payload):
    path.write_text(json.dumps(payload))
    return path


# ------------------------------------------------------------------------------------------------
# tIoU
# ------------------------------------------------------------------------------------------------


def test_temporal_iou_is_intersection_over_union_for_every_pair():
    iou = evaluation.temporal_iou([[0.0, 10.0], [4.0, 4.0]], [[5.0, 15.0], [10.0, 20.0], [0.0, 10.0],
                                                                [2.0, 4.0], [4.0, 4.0]])
    assert iou.shape == (2, 5)
    np.testing.assert_allclose(iou[0], [5 / 15, 0.0, 1.0, 0.2, 0.0])
    # Zero-length against zero-length: 1 where they coincide, 0 elsewhere (never NaN).
    np.testing.assert_allclose(iou[1], [0.0, 0.0, 0.0, 0.0, 1.0])
    assert evaluation.temporal_iou([[3.0, 3.0]], [[5.0, 5.0]])[0, 0] == 0.0


def test_threshold_keys_are_short_decimal_strings():
    assert [evaluation.tiou_key(t) for t in evaluation.ACTIVITYNET_TIOUS] == [
        "0.5", "0.55", "0.6", "0.65", "0.7", "0.75", "0.8", "0.85", "0.9", "0.95"]
    assert [evaluation.tiou_key(t) for t in evaluation.THUMOS14_TIOUS][0] == "0.1"


# ------------------------------------------------------------------------------------------------
# Detection AP, hand-computed fixtures
# ------------------------------------------------------------------------------------------------


def test_a_duplicate_prediction_is_a_false_positive():
    gt = [("v1", "A", 0.0, 10.0), ("v1", "A", 20.0, 30.0)]
    preds = [("v1", "A", 0.0, 10.0, 0.9), ("v1", "A", 0.0, 10.0, 0.8), ("v1", "A", 20.0, 30.0, 0.7)]
    # TP, FP, TP: precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1 -> AP = 1/2 * 1 + 1/2 * 2/3 = 5/6.
    assert ap_at(gt, preds, [0.5]) == pytest.approx([5 / 6])


def test_duplicate_ground_truth_instances_both_count_and_need_a_match_each():
    gt = [("v1", "A", 0.0, 10.0), ("v1", "A", 0.0, 10.0)]
    assert ap_at(gt, [("v1", "A", 0.0, 10.0, 0.9)], [0.5]) == pytest.approx([0.5])
    assert ap_at(gt, [("v1", "A", 0.0, 10.0, 0.9), ("v1", "A", 1.0, 10.0, 0.8)], [0.5]) == pytest.approx([1.0])


def test_a_prediction_overlapping_two_ground_truths_takes_the_higher_tiou():
    gt = [("v1", "A", 0.0, 10.0), ("v1", "A", 8.0, 20.0)]
    # p1 [6, 18]: tIoU 4/18 with the first instance, 10/14 with the second -> takes the second,
    # leaving the first for p2 [0, 9] (tIoU 0.9).
    preds = [("v1", "A", 6.0, 18.0, 0.9), ("v1", "A", 0.0, 9.0, 0.8)]
    assert ap_at(gt, preds, [0.2]) == pytest.approx([1.0])
    # W-TALC takes the FIRST listed instance with IoU >= 0.2: p1 gets [0, 10], p2 then only has
    # [8, 20] (IoU 1/20) -> TP, FP -> AP = (1 * 1) / 2.
    assert ap_at(gt, preds, [0.2], protocol="wtalc") == pytest.approx([0.5])
    # At 0.75 p1's best tIoU 10/14 is too low -> FP; p2 (0.9) -> TP: precision 1/2 at recall 1/2 -> 1/4.
    assert ap_at(gt, preds, [0.75]) == pytest.approx([0.25])


def test_tiou_exactly_at_the_threshold_is_a_match():
    gt = [("v1", "A", 0.0, 4.0)]
    preds = [("v1", "A", 0.0, 2.0, 0.9)]  # tIoU 2/4 = 0.5 exactly
    assert ap_at(gt, preds, [0.5, 0.55]) == [1.0, 0.0]
    gt = [("v1", "A", 0.0, 10.0)]
    assert ap_at(gt, [("v1", "A", 0.0, 1.0, 0.9)], [0.1]) == [1.0]  # 1/10 at 0.1


def test_activitynet_thresholds_are_the_toolkits_linspace_values():
    # np.linspace(0.5, 0.95, 10)[8] is 0.8999999999999999, so a tIoU of 0.8999999999999999 passes the
    # toolkit's "0.9" and fails a typed 0.9.
    assert evaluation.ACTIVITYNET_TIOUS == tuple(np.linspace(0.5, 0.95, 10))
    threshold = evaluation.ACTIVITYNET_TIOUS[8]
    assert threshold < 0.9
    gt = [("v1", "A", 0.0, 1.0)]
    preds = [("v1", "A", 0.0, threshold, 0.9)]  # tIoU = 0.8999999999999999
    assert ap_at(gt, preds, [threshold]) == [1.0]
    assert ap_at(gt, preds, [0.9]) == [0.0]


def test_predictions_on_videos_without_ground_truth_are_false_positives():
    gt = [("v1", "A", 0.0, 10.0)]
    preds = [("v2", "A", 0.0, 10.0, 0.9), ("elsewhere", "A", 0.0, 10.0, 0.85), ("v1", "A", 0.0, 10.0, 0.8)]
    truth = ground_truth(gt, videos=["v1", "v2"])
    result = evaluation.detection_map(truth, pred_frame(preds), [0.5])
    # FP, FP, TP: precision 1/3 at recall 1 -> AP 1/3.
    assert result["mAP"]["0.5"] == pytest.approx(1 / 3)
    assert result["num_predictions_outside_subset"] == 1
    # W-TALC evaluates only annotated videos: both are ignored.
    result = evaluation.detection_map(truth, pred_frame(preds), [0.5], protocol="wtalc")
    assert result["mAP"]["0.5"] == pytest.approx(1.0)
    assert result["num_predictions_ignored"] == 2


def test_a_class_without_predictions_scores_zero_and_counts_in_the_mean():
    gt = [("v1", "A", 0.0, 10.0), ("v2", "B", 0.0, 10.0)]
    result = evaluation.detection_map(ground_truth(gt), pred_frame([("v1", "A", 0.0, 10.0, 0.9)]), [0.5])
    assert result["per_class"] == {"A": {"0.5": 1.0}, "B": {"0.5": 0.0}}
    assert result["mAP"]["0.5"] == pytest.approx(0.5)
    wtalc = evaluation.detection_map(ground_truth(gt), pred_frame([("v1", "A", 0.0, 10.0, 0.9)]), [0.5],
                                     protocol="wtalc")
    assert wtalc["mAP"]["0.5"] == pytest.approx(0.5)


def test_equal_scores_stable_rule_ranks_the_later_listed_prediction_first():
    gt = [("v1", "A", 0.0, 10.0)]
    preds = [("v1", "A", 0.0, 10.0, 0.5), ("v1", "A", 50.0, 60.0, 0.5)]
    # Later first: FP then TP -> AP 1/2 (earlier first would give 1).
    assert ap_at(gt, preds, [0.5], tie_break="stable") == [0.5]
    assert ap_at(list(reversed(gt)), list(reversed(preds)), [0.5], tie_break="stable") == [1.0]
    # W-TALC's np.argsort(-score): earlier first.
    assert ap_at(gt, preds, [0.5], protocol="wtalc", tie_break="stable") == [1.0]


def test_equal_scores_official_rule_is_the_toolkits_argsort():
    gt = [("v1", "A", 0.0, 10.0)]
    preds = [("v1", "A", 0.0, 10.0, 0.5), ("v1", "A", 50.0, 60.0, 0.5), ("v1", "A", 70.0, 80.0, 0.5),
             ("v1", "A", 90.0, 95.0, 0.5), ("v1", "A", 100.0, 110.0, 0.7)]
    order = np.array([row[4] for row in preds]).argsort()[::-1]
    flags = []
    matched = False
    for index in order:
        hit = not matched and oracle_iou(preds[index][2], preds[index][3], 0.0, 10.0) >= 0.5
        matched |= hit
        flags.append(int(hit))
    expected = oracle_interpolated_ap(flags, 1)
    assert ap_at(gt, preds, [0.5], tie_break="official") == pytest.approx([expected])


def test_equal_tiou_ground_truths_stable_rule_tries_the_later_listed_first():
    gt = [("v1", "A", 0.0, 10.0), ("v1", "A", 20.0, 30.0)]
    # p1 [5, 25] has tIoU 5/25 with both; taking the later one ([20, 30]) leaves p2 [20, 30]
    # without a match: TP, FP -> AP = 1/2 * 1 = 1/2.
    preds = [("v1", "A", 5.0, 25.0, 0.9), ("v1", "A", 20.0, 30.0, 0.8)]
    assert ap_at(gt, preds, [0.2], tie_break="stable") == [0.5]
    official, _ = oracle_anet(gt, preds, [0.2], tie_break="official")
    assert ap_at(gt, preds, [0.2], tie_break="official") == pytest.approx([official[0.2]])


def test_zero_length_prediction_matches_a_coinciding_zero_length_ground_truth():
    gt = [("v1", "A", 4.0, 4.0), ("v1", "A", 10.0, 20.0)]
    preds = [("v1", "A", 4.0, 4.0, 0.9), ("v1", "A", 7.0, 7.0, 0.8), ("v1", "A", 10.0, 20.0, 0.7)]
    # TP, FP, TP -> AP = 1/2 + 1/2 * 2/3.
    assert ap_at(gt, preds, [0.95]) == pytest.approx([0.5 + 1 / 3])


def test_average_is_the_mean_over_the_chosen_thresholds():
    gt = [("v1", "A", 0.0, 10.0)]
    preds = [("v1", "A", 0.0, 7.0, 0.9)]  # tIoU 0.7
    result = evaluation.detection_map(ground_truth(gt), pred_frame(preds), evaluation.THUMOS14_TIOUS,
                                      average_tious=evaluation.THUMOS14_AVERAGE_TIOUS)
    assert [result["mAP"][key] for key in result["mAP"]] == [1.0] * 7 + [0.0] * 2
    assert result["average"] == 1.0
    assert result["average_tious"] == ["0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7"]
    full = evaluation.detection_map(ground_truth(gt), pred_frame(preds), evaluation.THUMOS14_TIOUS)
    assert full["average"] == pytest.approx(7 / 9)
    with pytest.raises(DataError, match="among the evaluated"):
        evaluation.detection_map(ground_truth(gt), pred_frame(preds), [0.5], average_tious=[0.7])


# ------------------------------------------------------------------------------------------------
# THUMOS14 Ambiguous segments and bad videos
# ------------------------------------------------------------------------------------------------


def test_false_positives_inside_ambiguous_segments_are_dropped():
    gt = [("v1", "A", 10.0, 20.0)]
    ambiguous = [("v1", 30.0, 40.0)]
    preds = [("v1", "A", 39.0, 45.0, 0.95),  # 1 s inside the Ambiguous segment: dropped
             ("v1", "A", 32.0, 38.0, 0.9),   # inside: dropped
             ("v1", "A", 40.0, 45.0, 0.85),  # touches it at 40 s only: stays a false positive
             ("v1", "A", 10.0, 20.0, 0.8),   # TP
             ("v1", "A", 50.0, 60.0, 0.7)]   # FP
    # Kept: FP, TP, FP -> precision 1/2 at recall 1 -> AP 1/2; without the rule 1/4.
    assert ap_at(gt, preds, [0.5], ambiguous=ambiguous) == [0.5]
    assert ap_at(gt, preds, [0.5], ambiguous=ambiguous, use_ambiguous=False) == [0.25]
    # W-TALC removes every prediction overlapping an Ambiguous segment before matching.
    assert ap_at(gt, preds, [0.5], ambiguous=ambiguous, protocol="wtalc") == [0.5]


def test_ambiguous_rule_applies_per_threshold_and_keeps_true_positives():
    gt = [("v1", "A", 10.0, 20.0)]
    ambiguous = [("v1", 18.0, 30.0)]
    preds = [("v1", "A", 15.0, 25.0, 0.9),  # tIoU 1/3: TP at 0.3, FP at 0.5 (overlaps Ambiguous)
             ("v1", "A", 10.0, 20.0, 0.8)]  # at 0.3 a FP overlapping Ambiguous; at 0.5 the TP
    assert ap_at(gt, preds, [0.3, 0.5], ambiguous=ambiguous) == [1.0, 1.0]
    assert ap_at(gt, preds, [0.3, 0.5], ambiguous=ambiguous, use_ambiguous=False) == [1.0, 0.5]
    # W-TALC drops both (they overlap the Ambiguous segment) whatever they match.
    assert ap_at(gt, preds, [0.3, 0.5], ambiguous=ambiguous, protocol="wtalc") == [0.0, 0.0]


def test_ambiguous_rows_of_a_dataframe_and_the_json_ambiguous_key_are_both_read(tmp_path):
    frame = gt_frame([("v1", "A", 10.0, 20.0), ("v1", "Ambiguous", 30.0, 40.0)])
    truth = evaluation.GroundTruth.from_frames(frame)
    assert truth.classes == ["A"]
    assert truth.ambiguous[["t_start", "t_end"]].values.tolist() == [[30.0, 40.0]]
    path = write_json(tmp_path / "gt.json", {"database": {"v1": {
        "subset": "test", "annotations": [{"segment": [10, 20], "label": "A"}], "ambiguous": [[30, 40]]}}})
    loaded = evaluation.load_ground_truth(path, "test")
    assert loaded.ambiguous[["t_start", "t_end"]].values.tolist() == [[30.0, 40.0]]
    preds = pred_frame([("v1", "A", 32.0, 38.0, 0.9), ("v1", "A", 10.0, 20.0, 0.8)])
    assert evaluation.detection_map(loaded, preds, [0.5])["mAP"]["0.5"] == 1.0
    assert evaluation.detection_map(frame, preds, [0.5])["mAP"]["0.5"] == 1.0


def test_excluded_videos_leave_ground_truth_and_predictions():
    bad = evaluation.THUMOS14_BAD_TEST_VIDEOS[0]
    gt = [("video_test_0000001", "A", 0.0, 10.0), (bad, "A", 0.0, 10.0)]
    preds = [(bad, "A", 50.0, 60.0, 0.9), ("video_test_0000001", "A", 0.0, 10.0, 0.8)]
    assert ap_at(gt, preds, [0.5]) == [0.25]  # FP, TP with 2 instances
    assert ap_at(gt, preds, [0.5], exclude_videos=evaluation.THUMOS14_BAD_TEST_VIDEOS) == [1.0]


# ------------------------------------------------------------------------------------------------
# Agreement with the oracle on random inputs
# ------------------------------------------------------------------------------------------------


def random_case(seed, num_videos=6, classes=("A", "B", "C"), ties=True):
    rng = random.Random(seed)
    gt, preds, ambiguous = [], [], []
    for video in range(num_videos):
        name = f"v{video}"
        for _ in range(rng.randint(0, 4)):
            start = rng.choice([0.0, 5.0, 10.0, 20.0, 40.0]) + rng.choice([0.0, 0.5, 1.5])
            gt.append((name, rng.choice(classes), start, start + rng.choice([2.0, 5.0, 10.0, 15.0])))
        if rng.random() < 0.4:
            start = rng.uniform(0, 50)
            ambiguous.append((name, start, start + rng.uniform(1, 8)))
    if len({row[1] for row in gt}) < 2:
        gt.append(("v0", "A", 1.0, 9.0))
    gt.append(("v0", gt[0][1], gt[0][2], gt[0][3]))  # a duplicate instance
    for video in range(num_videos + 1):  # the last video has no ground truth
        for _ in range(rng.randint(0, 20)):
            start = rng.choice([0.0, 4.0, 10.0, 19.0, 21.0, 40.0]) + rng.choice([0.0, 1.0, 2.5])
            score = rng.choice([0.1, 0.5, 0.9]) if ties else rng.random()
            preds.append((f"v{video}", rng.choice(classes[:2] if video % 3 else classes), start,
                          start + rng.choice([0.0, 2.0, 6.0, 10.0, 14.0]), score))
    labels = {row[1] for row in gt}
    preds = [row for row in preds if row[1] in labels]
    return gt, preds, ambiguous


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("tie_break", ["stable", "official"])
def test_detection_map_agrees_with_the_loop_oracle(seed, tie_break):
    gt, preds, ambiguous = random_case(seed)
    thresholds = [0.1, 0.3, 0.5, 0.7, 0.9]
    for amb in ((), ambiguous):
        expected, expected_per_class = oracle_anet(gt, preds, thresholds, amb, tie_break)
        result = evaluation.detection_map(ground_truth(gt, amb), pred_frame(preds), thresholds,
                                          tie_break=tie_break)
        for threshold in thresholds:
            assert result["mAP"][evaluation.tiou_key(threshold)] == pytest.approx(expected[threshold], abs=1e-12)
        for label, aps in expected_per_class.items():
            assert [result["per_class"][label][evaluation.tiou_key(t)] for t in thresholds] == \
                pytest.approx(aps, abs=1e-12)
        expected, _ = oracle_wtalc(gt, preds, thresholds, amb, tie_break)
        result = evaluation.detection_map(ground_truth(gt, amb), pred_frame(preds), thresholds,
                                          protocol="wtalc", tie_break=tie_break)
        for threshold in thresholds:
            assert result["mAP"][evaluation.tiou_key(threshold)] == pytest.approx(expected[threshold], abs=1e-12)


def test_many_predictions_per_video_agree_with_the_oracle():
    rng = random.Random(7)
    gt = [("v0", "A", float(s), float(s) + rng.choice([3.0, 8.0])) for s in range(0, 200, 9)]
    preds = [("v0", "A", s, s + rng.choice([2.0, 4.0, 8.0]), rng.choice([0.2, 0.4, 0.6, 0.8]))
             for s in (rng.uniform(0, 200) for _ in range(300))]
    thresholds = [0.1, 0.5, 0.7]
    for tie_break in ("stable", "official"):
        expected, _ = oracle_anet(gt, preds, thresholds, tie_break=tie_break)
        result = evaluation.detection_map(ground_truth(gt), pred_frame(preds), thresholds, tie_break=tie_break)
        assert [result["mAP"][evaluation.tiou_key(t)] for t in thresholds] == \
            pytest.approx([expected[t] for t in thresholds], abs=1e-12)


def test_wtalc_feature_rate_measures_iou_on_the_rounded_feature_grid():
    gt = [("v1", "A", 0.0, 10.0)]
    # In seconds the IoU is 6.6/10 < 0.68; on a 1-segment-per-second grid [0, 6.6] becomes segments
    # [0, 7): IoU 7/10 >= 0.68.
    preds = [("v1", "A", 0.0, 6.6, 0.9)]
    assert ap_at(gt, preds, [0.68], protocol="wtalc") == [0.0]
    assert ap_at(gt, preds, [0.68], protocol="wtalc", feature_rate=1.0) == [1.0]
    with pytest.raises(DataError, match="feature_rate"):
        ap_at(gt, preds, [0.5], feature_rate=1.0)


# ------------------------------------------------------------------------------------------------
# Loading and validation
# ------------------------------------------------------------------------------------------------


def result_file(tmp_path, results, name="pred.json"):
    return write_json(tmp_path / name, {"version": "x", "external_data": {}, "results": results})


@pytest.fixture
def gt_file(tmp_path):
    return write_json(tmp_path / "gt.json", {"version": "x", "taxonomy": [], "database": {
        "vid_a": {"subset": "test", "duration": 50.0, "annotations": [{"segment": [1.0, 5.0], "label": "Jump"}]},
        "vid_b": {"subset": "validation", "annotations": [{"segment": ["2.0", "9.5"], "label": "Run"}]},
        "vid_c": {"subset": "test", "annotations": []}}})


def test_load_ground_truth_keeps_one_subset_and_reads_string_segments(gt_file):
    truth = evaluation.load_ground_truth(gt_file, "test")
    assert truth.classes == ["Jump"]
    assert truth.videos == ("vid_a", "vid_c")
    assert truth.instances.values.tolist() == [["vid_a", "Jump", 1.0, 5.0]]
    validation = evaluation.load_ground_truth(gt_file, "validation")
    assert validation.instances.values.tolist() == [["vid_b", "Run", 2.0, 9.5]]
    with pytest.raises(DataError, match=r"no video has subset 'testing' \(subsets present: test, validation\)"):
        evaluation.load_ground_truth(gt_file, "testing")


def test_load_predictions_reads_the_result_format_in_file_order(tmp_path, gt_file):
    truth = evaluation.load_ground_truth(gt_file, "test")
    path = result_file(tmp_path, {"vid_a": [{"label": "Jump", "score": 0.5, "segment": [1, 2]},
                                            {"label": "Jump", "score": 1, "segment": ["3", "4.5"]}],
                                  "vid_z": [{"label": "Jump", "score": 0.25, "segment": [0, 1]}]})
    frame = evaluation.load_predictions(path, truth)
    assert list(frame.columns) == ["video", "label", "t_start", "t_end", "score"]
    assert frame.values.tolist() == [["vid_a", "Jump", 1.0, 2.0, 0.5], ["vid_a", "Jump", 3.0, 4.5, 1.0],
                                     ["vid_z", "Jump", 0.0, 1.0, 0.25]]


@pytest.mark.parametrize("entry, message", [
    ({"label": "Fly", "score": 0.5, "segment": [1, 2]}, r"results\['vid_a'\]\[1\]: label 'Fly' is not a class"),
    ({"label": "Jump", "score": 0.5, "segment": [3, 2]}, r"results\['vid_a'\]\[1\]: segment .* ends before"),
    ({"label": "Jump", "score": float("nan"), "segment": [1, 2]}, r"results\['vid_a'\]\[1\]: score is NaN"),
    ({"label": "Jump", "score": "high", "segment": [1, 2]}, r"results\['vid_a'\]\[1\]: \"score\" must be a number"),
    ({"label": "Jump", "score": 0.5, "segment": [1, 2, 3]}, r"results\['vid_a'\]\[1\]: \"segment\" must be"),
    ({"label": "Jump", "score": 0.5, "segment": [1, "x"]}, r"results\['vid_a'\]\[1\]: segment end must be"),
    ({"label": "Jump", "score": 0.5, "segment": [1, float("inf")]}, r"results\['vid_a'\]\[1\]: .*not finite"),
    ("Jump 0.5 1 2", r"results\['vid_a'\]\[1\] must be an object"),
])
def test_bad_predictions_raise_an_error_naming_the_video_and_entry(tmp_path, gt_file, entry, message):
    truth = evaluation.load_ground_truth(gt_file, "test")
    path = result_file(tmp_path, {"vid_a": [{"label": "Jump", "score": 0.5, "segment": [1, 2]}, entry]})
    with pytest.raises(DataError, match=message):
        evaluation.load_predictions(path, truth)
    with pytest.raises(DataError, match=message):
        evaluation.detection_map(truth, path, [0.5])


@pytest.mark.parametrize("payload, message", [
    ([{"video": "vid_a"}], "not in the ActivityNet result format"),
    ({"version": "x", "database": {}}, "not in the ActivityNet result format"),
    ({"results": {"vid_a": {"label": "Jump"}}}, r"results\['vid_a'\] must be a list"),
])
def test_files_not_in_the_result_format_are_rejected(tmp_path, gt_file, payload, message):
    path = write_json(tmp_path / "pred.json", payload)
    with pytest.raises(DataError, match=message):
        evaluation.load_predictions(path, evaluation.load_ground_truth(gt_file, "test"))


def test_unreadable_files_are_data_errors(tmp_path):
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(DataError, match="broken.json: not a JSON predictions file"):
        evaluation.load_predictions(tmp_path / "broken.json")
    with pytest.raises(DataError, match="not found"):
        evaluation.load_ground_truth(tmp_path / "missing.json", "test")
    write_json(tmp_path / "gt.json", {"database": {"v": {"subset": "test", "annotations": [
        {"segment": [5, 1], "label": "A"}]}}})
    with pytest.raises(DataError, match=r"database\['v'\]\[\"annotations\"\]\[0\]: segment .* ends before"):
        evaluation.load_ground_truth(tmp_path / "gt.json", "test")


def test_in_memory_predictions_are_validated_too():
    truth = ground_truth([("v1", "A", 0.0, 10.0)])
    with pytest.raises(DataError, match=r"predictions row 1 \(video 'v1'\): score is NaN"):
        evaluation.detection_map(truth, pred_frame([("v1", "A", 0, 1, 0.5), ("v1", "A", 0, 1, float("nan"))]), [0.5])
    with pytest.raises(DataError, match="lacks column"):
        evaluation.detection_map(truth, pd.DataFrame({"video": ["v1"]}), [0.5])
    with pytest.raises(DataError, match="label 'Z' is not a class"):
        evaluation.detection_map(truth, pred_frame([("v1", "Z", 0, 1, 0.5)]), [0.5])
    result = evaluation.detection_map(truth, {"results": {"v1": [{"label": "A", "score": 1, "segment": [0, 10]}]}},
                                      [0.5])
    assert result["mAP"]["0.5"] == 1.0
    # Result dicts built in memory may hold numpy scalars.
    result = evaluation.detection_map(truth, {"results": {"v1": [
        {"label": "A", "score": np.float32(0.5), "segment": [np.float32(0), np.int64(10)]}]}}, [0.5])
    assert result["mAP"]["0.5"] == 1.0
    with pytest.raises(DataError, match="must be a number"):
        evaluation.detection_map(truth, {"results": {"v1": [{"label": "A", "score": True, "segment": [0, 1]}]}},
                                 [0.5])


def test_dataframe_ground_truth_with_several_subsets_needs_a_subset():
    frame = gt_frame([("v1", "A", 0.0, 10.0), ("v2", "B", 0.0, 10.0)]).assign(subset=["test", "validation"])
    preds = pred_frame([("v1", "A", 0.0, 10.0, 0.9)])
    with pytest.raises(DataError, match="several subsets"):
        evaluation.detection_map(frame, preds, [0.5])
    result = evaluation.detection_map(frame, preds, [0.5], subset="test")
    assert result["per_class"] == {"A": {"0.5": 1.0}}


# ------------------------------------------------------------------------------------------------
# Classification
# ------------------------------------------------------------------------------------------------


PROBABILITIES = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.2, 0.6], [0.3, 0.1, 0.6]])
LABELS = [[1], [1, 2], [0], [2]]


def test_top1_accuracy_counts_a_video_when_its_top_class_is_one_of_its_labels():
    assert evaluation.classification_accuracy(PROBABILITIES, LABELS) == 0.5
    multi_hot = np.array([[0, 1, 0], [0, 1, 1], [1, 0, 0], [0, 0, 1]])
    assert evaluation.classification_accuracy(PROBABILITIES, multi_hot) == 0.5
    # Any of the labels counts, not only the first listed (CliffDiving videos are also Diving).
    assert evaluation.classification_accuracy([[0.1, 0.2, 0.7], [0.6, 0.3, 0.1]], [[0, 2], [2, 1]]) == 0.5
    with pytest.raises(DataError, match="video 1 has no label"):
        evaluation.classification_accuracy(PROBABILITIES[:2], [[1], []])
    with pytest.raises(DataError, match="not a class index"):
        evaluation.classification_accuracy(PROBABILITIES[:1], [[3]])


def test_classification_map_by_hand():
    # Class 0: ranking v1 (.5, neg), v3 (.3, neg), v2 (.2, pos), v0 -> precision 1/3 at recall 1 -> 1/3.
    # Class 1: v0 (.7, pos), v1 (.3, pos) -> 1.
    # Class 2 (positives v1, v3): ties broken later-row-first: v3 (.6, pos), v2 (.6), v1 (.2, pos), v0
    #   -> precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1 -> 1/2 + 1/2 * 2/3 = 5/6.
    expected = (1 / 3 + 1 + 5 / 6) / 3
    assert evaluation.classification_map(PROBABILITIES, LABELS, tie_break="stable") == pytest.approx(expected)


def test_hit_at_k_by_hand():
    # top-1: v0 {1} hit; v1 {0} miss; v2 {2} miss; v3 {2} hit.
    assert evaluation.hit_at_k(PROBABILITIES, LABELS, k=1) == 0.5
    # top-2 (stable, later first among ties): v0 {1,2} hit; v1 {0,1} hit (1 of 2 labels); v2 {2, 1} miss
    # (tie .2/.2: class 1 listed later ranks first); v3 {2, 0} hit.
    assert evaluation.hit_at_k(PROBABILITIES, LABELS, k=2, tie_break="stable") == 0.75
    assert evaluation.hit_at_k(PROBABILITIES, LABELS, k=2, average=True, tie_break="stable") == \
        pytest.approx((1 + 0.5 + 0 + 1) / 4)


# ------------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------------


def load_cli():
    spec = importlib.util.spec_from_file_location("evaluate_cli", REPO / "tools" / "evaluate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_prints_a_table_and_writes_the_json(tmp_path, gt_file, capsys):
    predictions = result_file(tmp_path, {"vid_a": [{"label": "Jump", "score": 0.9, "segment": [1.0, 4.0]}]})
    out = tmp_path / "metrics.json"
    status = load_cli().main(["--ground-truth", str(gt_file), "--predictions", str(predictions), "--subset", "test",
                              "--tiou", "0.5", "0.75", "0.8", "--json", str(out)])
    assert status == 0
    written = json.loads(out.read_text())
    # tIoU 3/4: matched at 0.5 and 0.75, not at 0.8.
    assert written["mAP"] == {"0.5": 1.0, "0.75": 1.0, "0.8": 0.0}
    assert written["average"] == pytest.approx(2 / 3)
    lines = capsys.readouterr().out.splitlines()
    assert ["0.75", "100.00"] in [line.split() for line in lines]
    assert any(line.startswith("average 0.5:0.8") and line.endswith("66.67") for line in lines)
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".evaluate-")] == []


def test_cli_presets_and_bad_input(tmp_path, gt_file, capsys):
    cli = load_cli()
    predictions = result_file(tmp_path, {"vid_a": [{"label": "Jump", "score": 0.9, "segment": [1.0, 5.0]}]})
    out = tmp_path / "metrics.json"
    assert cli.main(["--ground-truth", str(gt_file), "--predictions", str(predictions), "--subset", "test",
                     "--tiou", "thumos14", "--json", str(out)]) == 0
    written = json.loads(out.read_text())
    assert list(written["mAP"]) == ["0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9"]
    assert written["average_tious"] == ["0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7"]
    bad = result_file(tmp_path, {"vid_a": [{"label": "Fly", "score": 0.9, "segment": [1.0, 5.0]}]}, "bad.json")
    out.unlink()
    status = cli.main(["--ground-truth", str(gt_file), "--predictions", str(bad), "--subset", "test",
                       "--tiou", "0.5", "--json", str(out)])
    assert status == 1
    assert capsys.readouterr().err.startswith("error: ")
    assert not out.exists()


# ------------------------------------------------------------------------------------------------
# The ActivityNet1.3 validation sample (../shared/data)
# ------------------------------------------------------------------------------------------------

# Obtained with `oracle_anet(..., tie_break="stable")` on the sample (the fake submission scores every
# prediction 1.0, so the value depends on the tie rule; "stable" is platform-independent).
SAMPLE_STABLE_MAP = 0.9719758051394811


def sample_rows(shared_data, tmp_path):
    activitynet = shared_data / "activitynet"
    annotations = json.loads((activitynet / "anet_anno_action.json").read_text())
    info = pd.read_csv(activitynet / "video_info_new.csv")
    subsets = dict(zip(info["video"], info["subset"]))
    database = {key[2:]: {"subset": subsets[key], "duration": entry["duration_second"],
                          "annotations": entry["annotations"]} for key, entry in annotations.items()}
    gt_path = write_json(tmp_path / "activitynet_gt.json", {"version": "VERSION 1.3", "taxonomy": [],
                                                            "database": database})
    predictions = json.loads((activitynet / "sample_detection_prediction.json").read_text())["results"]
    gt = [(video, item["label"], float(item["segment"][0]), float(item["segment"][1]))
          for video, entry in database.items() if entry["subset"] == "validation" for item in entry["annotations"]]
    preds = [(video, item["label"], float(item["segment"][0]), float(item["segment"][1]), float(item["score"]))
             for video, items in predictions.items() for item in items]
    return gt_path, gt, preds


@pytest.mark.slow
def test_activitynet_sample_matches_the_oracle(shared_data, tmp_path):
    gt_path, gt, preds = sample_rows(shared_data, tmp_path)
    prediction_path = shared_data / "activitynet" / "sample_detection_prediction.json"
    truth = evaluation.load_ground_truth(gt_path, "validation")
    assert len(truth.classes) == 200 and len(truth.instances) == 7293
    thresholds = evaluation.ACTIVITYNET_TIOUS
    stable = evaluation.detection_map(truth, prediction_path, thresholds, tie_break="stable")
    assert stable["num_predictions"] == 7654
    assert stable["num_predictions_outside_subset"] == 361  # on videos the BSN annotations lack
    # The fake submission is built from the ground truth: the same AP at every threshold.
    for key in stable["mAP"]:
        assert stable["mAP"][key] == pytest.approx(SAMPLE_STABLE_MAP, abs=1e-12)
    assert stable["average"] == pytest.approx(SAMPLE_STABLE_MAP, abs=1e-12)
    # The oracle on just two thresholds (the loops are slow); "official" depends on numpy's sort, so
    # it is compared live.
    for tie_break in ("stable", "official"):
        expected, _ = oracle_anet(gt, preds, [thresholds[0], thresholds[-1]], tie_break=tie_break)
        result = evaluation.detection_map(truth, prediction_path, thresholds, tie_break=tie_break)
        assert result["mAP"]["0.5"] == pytest.approx(expected[thresholds[0]], abs=1e-12)
        assert result["mAP"]["0.95"] == pytest.approx(expected[thresholds[-1]], abs=1e-12)


@pytest.mark.slow
def test_jittered_activitynet_sample_matches_the_oracle(shared_data, tmp_path):
    """The sample with segments jittered and scores rounded to 2 decimals (many ties): the AP now
    differs between thresholds, and both tie rules must agree with the oracle."""
    gt_path, gt, preds = sample_rows(shared_data, tmp_path)
    rng = np.random.default_rng(0)
    jittered = []
    for video, label, start, end, _ in preds:
        length = max(end - start, 1.0)
        start, end = sorted((start + rng.normal(0, 0.15) * length, end + rng.normal(0, 0.15) * length))
        jittered.append((video, label, start, end, float(np.round(rng.random(), 2))))
    truth = evaluation.load_ground_truth(gt_path, "validation")
    thresholds = [0.5, 0.75, 0.95]
    for tie_break in ("stable", "official"):
        expected, _ = oracle_anet(gt, jittered, thresholds, tie_break=tie_break)
        result = evaluation.detection_map(truth, pred_frame(jittered), thresholds, tie_break=tie_break)
        assert [result["mAP"][evaluation.tiou_key(t)] for t in thresholds] == \
            pytest.approx([expected[t] for t in thresholds], abs=1e-12)
    assert expected[0.5] > expected[0.75] > expected[0.95] > 0

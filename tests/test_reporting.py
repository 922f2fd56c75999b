"""metrics.json document, seed summaries, paper-shaped tables, attention timelines."""

import json

import numpy as np
import pytest

from tfwsar import reporting


def _detection(values):
    keys = ["0.1", "0.2", "0.3"]
    return {"mAP": dict(zip(keys, values)), "average": float(np.mean(values))}


def test_metrics_document_has_the_contract_keys_only_where_expected():
    document = reporting.metrics_document(
        {"rgb": 0.5, "flow": 0.25, "fusion": 0.75, "fusion_map": 0.9},
        _detection([0.3, 0.2, 0.1]), extra={"variant": "tsrnet"})
    assert document["classification"] == {"rgb": 0.5, "flow": 0.25, "fusion": 0.75}
    assert document["detection"] == {"0.1": 0.3, "0.2": 0.2, "0.3": 0.1,
                                     "average": pytest.approx(0.2)}
    assert document["variant"] == "tsrnet"


def test_seeds_summary_reports_mean_and_population_std_of_every_number():
    per_seed = [reporting.metrics_document({"rgb": r, "flow": 0.5, "fusion": 0.5},
                                           _detection([d, d, d]))
                for r, d in ((0.2, 0.1), (0.4, 0.3))]
    summary = reporting.seeds_summary(per_seed)
    assert summary["seeds"] == 2
    assert summary["metrics"]["classification"]["rgb"]["mean"] == pytest.approx(0.3)
    assert summary["metrics"]["classification"]["rgb"]["std"] == pytest.approx(0.1)
    assert summary["metrics"]["classification"]["flow"]["std"] == 0.0
    assert summary["metrics"]["detection"]["average"]["values"] == pytest.approx([0.1, 0.3])


def test_tables_print_percentages_with_the_paper_row():
    table = reporting.classification_table([("tsrnet", {"rgb": 0.5, "flow": 0.25, "fusion": 0.75})])
    assert "50.00" in table and "25.00" in table and "75.00" in table
    assert "87.10" in table  # the paper's fusion accuracy
    detection = reporting.detection_table([("srnet", {"0.1": 0.5, "average": 0.5})])
    assert "55.90" in detection and "srnet" in detection


def test_write_json_is_atomic_and_readable(tmp_path):
    path = tmp_path / "deep" / "metrics.json"
    reporting.write_json(str(path), {"a": 1})
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in path.parent.iterdir()] == ["metrics.json"]


def test_attention_timeline_marks_attention_and_ground_truth_bands():
    attention = np.zeros(100)
    attention[40:50] = 1.0
    image = reporting.attention_timeline(attention, attention * 0.5, [(0.0, 10.0)],
                                         feature_rate=2.0, width=100)
    assert image.shape == (60, 100, 3) and image.dtype == np.uint8
    assert image[0:20, 45, 0].min() == 255 and image[0:20, 10, 0].max() == 0  # RGB band, red
    assert image[20:40, 45, 1].min() == 255  # flow band normalised to its own peak, green
    # ground truth [0, 10] s = segments [0, 20) at 2 segments/s
    assert image[40:60, 5].min() == 255 and image[40:60, 30].max() == 0

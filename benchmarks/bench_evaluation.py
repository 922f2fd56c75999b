"""Detection evaluation speed: tfwsar.evaluation.detection_map vs the official toolkit's algorithm.

    python benchmarks/bench_evaluation.py [--shared ../shared/data] [--jitter-copies 3] [--repeats 5]

Rebuilds the ActivityNet1.3 validation ground truth (anet_anno_action.json + video_info_new.csv,
ids without "v_", subset from the CSV), then evaluates the official sample submission
(sample_detection_prediction.json, 4,926 videos, 7,654 predictions) at the ten thresholds
0.5:0.05:0.95 with
  - `reference_eval_detection.ANETdetection` (the toolkit's pandas/per-prediction loops, one core), once;
  - `tfwsar.evaluation.detection_map` (tie_break="official"), best of --repeats;
both timed end to end (reading both JSON files included), in one process pinned to one CPU.
It checks that the two give bit-identical per-class APs and prints the speed ratio.
`--jitter-copies N` also runs a harder case: every prediction replaced by N jittered copies with
scores rounded to 2 decimals (many ties), so AP differs between thresholds.
"""

import argparse
import json
import os
import pathlib
import statistics
import sys
import tempfile
import time

import numpy as np
import pandas as pd

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import reference_eval_detection  # noqa: E402  (benchmarks/ is not a package)
from tfwsar import evaluation  # noqa: E402


def build_ground_truth(shared, out_path):
    activitynet = shared / "activitynet"
    annotations = json.loads((activitynet / "anet_anno_action.json").read_text())
    info = pd.read_csv(activitynet / "video_info_new.csv")
    subsets = dict(zip(info["video"], info["subset"]))
    database = {key[2:]: {"subset": subsets[key], "duration": entry["duration_second"],
                          "annotations": entry["annotations"]} for key, entry in annotations.items()}
    out_path.write_text(json.dumps({"version": "VERSION 1.3", "taxonomy": [], "database": database}))


def jitter_predictions(source, out_path, copies, seed=0):
    rng = np.random.default_rng(seed)
    data = json.loads(source.read_text())
    results = {}
    for video, entries in data["results"].items():
        jittered = []
        for entry in entries:
            start, end = entry["segment"]
            length = max(end - start, 1.0)
            for _ in range(copies):
                a, b = sorted((start + rng.normal(0, 0.15) * length, end + rng.normal(0, 0.15) * length))
                jittered.append({"label": entry["label"], "score": float(np.round(rng.random(), 2)),
                                 "segment": [a, b]})
        results[video] = jittered
    data["results"] = results
    out_path.write_text(json.dumps(data))


def run_reference(gt_path, prediction_path):
    start = time.perf_counter()
    evaluator = reference_eval_detection.ANETdetection(str(gt_path), str(prediction_path),
                                                       tiou_thresholds=np.linspace(0.5, 0.95, 10),
                                                       subset="validation")
    with np.errstate(invalid="ignore"):  # the toolkit's 0/0 on zero-length segments
        evaluator.evaluate()
    return time.perf_counter() - start, evaluator


def run_ours(gt_path, prediction_path):
    start = time.perf_counter()
    truth = evaluation.load_ground_truth(gt_path, "validation")
    result = evaluation.detection_map(truth, prediction_path, evaluation.ACTIVITYNET_TIOUS)
    return time.perf_counter() - start, result


def compare(name, gt_path, prediction_path, repeats):
    count = sum(len(v) for v in json.loads(prediction_path.read_text())["results"].values())
    print(f"\n== {name}: {prediction_path.name}, {count} predictions, 10 thresholds")
    reference_seconds, evaluator = run_reference(gt_path, prediction_path)
    ours_times, result = [], None
    for _ in range(repeats):
        seconds, result = run_ours(gt_path, prediction_path)
        ours_times.append(seconds)
    classes = list(evaluator.activity_index)
    ours_ap = np.array([[result["per_class"][label][key] for label in classes] for key in result["mAP"]])
    identical = np.array_equal(ours_ap, evaluator.ap) and evaluator.average_mAP == result["average"]
    best = min(ours_times)
    print(f"reference (toolkit algorithm, pandas loops): {reference_seconds:8.2f} s   average mAP "
          f"{evaluator.average_mAP:.15f}")
    print(f"tfwsar detection_map (best of {repeats}):         {best:8.3f} s   average mAP "
          f"{result['average']:.15f}   (median {statistics.median(ours_times):.3f} s)")
    print(f"per-class APs bit-identical: {identical}")
    print(f"speed ratio (reference / tfwsar): {reference_seconds / best:.0f}x")
    return identical


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=pathlib.Path, default=HERE.parent.parent / "shared" / "data",
                        help="the shared data directory (default ../shared/data)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--jitter-copies", type=int, default=0,
                        help="also time the jittered sample with this many copies per prediction")
    parser.add_argument("--all-cores", action="store_true", help="do not pin the process to one CPU")
    args = parser.parse_args(argv)
    if not args.all_cores and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    print(f"CPUs used: {len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else 'all'}; "
          f"numpy {np.__version__}, pandas {pd.__version__}")
    sample = args.shared / "activitynet" / "sample_detection_prediction.json"
    with tempfile.TemporaryDirectory() as directory:
        gt_path = pathlib.Path(directory) / "activitynet_validation_gt.json"
        build_ground_truth(args.shared, gt_path)
        ok = compare("ActivityNet1.3 validation sample", gt_path, sample, args.repeats)
        if args.jitter_copies:
            jittered = pathlib.Path(directory) / f"sample_jittered_x{args.jitter_copies}.json"
            jitter_predictions(sample, jittered, args.jitter_copies)
            ok &= compare("jittered sample", gt_path, jittered, args.repeats)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

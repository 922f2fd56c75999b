"""Detection mAP of ActivityNet-format predictions at tIoU thresholds.

    python tools/evaluate.py --ground-truth GT.json --predictions P.json --subset test \
        --tiou 0.1 0.2 0.3 0.4 0.5 0.6 0.7 0.8 0.9 [--average-tiou 0.1 ... 0.7] \
        [--protocol anet|wtalc] [--json OUT.json] [--drop-bad-thumos-videos]

`--tiou` also takes a preset: `thumos14` (0.1:0.1:0.9, average over 0.1:0.7) or `activitynet`
(0.5:0.05:0.95, average over all). Prints an aligned table (mAP in %) and, with `--json`, writes
`{"mAP": {"0.1": ...}, "average": ..., ...}` (fractions) atomically. Definitions, tie-breaking and
the Ambiguous rule: `tfwsar/evaluation.py`. Bad input: `error: ...` on stderr, exit status 1, no output.

Partial datasets: a prediction of one of the dataset's classes (the ground-truth file's taxonomy, or
the labels of all its subsets) that has no ground truth in --subset is no error: mAP is averaged over
the classes with ground truth in the subset (the ActivityNet definition), such predictions are left
out, and a note on stderr counts them. A label that is no class of the dataset is an error naming
the file and the entry.
"""

import argparse
import sys

from tfwsar import evaluation, files
from tfwsar.errors import DataError

PRESETS = {
    "thumos14": (evaluation.THUMOS14_TIOUS, evaluation.THUMOS14_AVERAGE_TIOUS),
    "activitynet": (evaluation.ACTIVITYNET_TIOUS, None),
}


def parse_args(argv):
    paragraphs = __doc__.split("\n\n")
    parser = argparse.ArgumentParser(description=paragraphs[0], epilog=paragraphs[-1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ground-truth", required=True, help="ground-truth JSON (ActivityNet layout)")
    parser.add_argument("--predictions", required=True, help="predictions JSON (ActivityNet result format)")
    parser.add_argument("--subset", required=True, help='subset to evaluate, e.g. "test", "validation"')
    parser.add_argument("--tiou", nargs="+", required=True,
                        help="tIoU thresholds, or one preset: " + " | ".join(PRESETS))
    parser.add_argument("--average-tiou", nargs="+", type=float, default=None,
                        help="thresholds the average is taken over (default: the preset's, else all)")
    parser.add_argument("--protocol", choices=evaluation.PROTOCOLS, default="anet",
                        help="anet: ActivityNet toolkit AP (default); wtalc: W-TALC detectionMAP.py AP")
    parser.add_argument("--json", default=None, help="write the result JSON here")
    parser.add_argument("--drop-bad-thumos-videos", action="store_true",
                        help="exclude THUMOS14 test videos with wrong annotations: "
                             + ", ".join(evaluation.THUMOS14_BAD_TEST_VIDEOS))
    parser.add_argument("--exclude-video", nargs="+", default=[], metavar="VIDEO",
                        help="further video ids to exclude from ground truth and predictions")
    parser.add_argument("--no-ambiguous", action="store_true",
                        help="ignore Ambiguous segments in the ground truth")
    parser.add_argument("--tie-break", choices=evaluation.TIE_BREAKS, default="official",
                        help="order of equal scores: the toolkit's numpy argsort (default) or stable")
    parser.add_argument("--feature-rate", type=float, default=None,
                        help="wtalc only: feature segments per second, to measure IoU on W-TALC's grid")
    parser.add_argument("--per-class", action="store_true", help="also print the AP of every class")
    return parser.parse_args(argv)


def resolve_thresholds(tiou, average_tiou):
    """--tiou / --average-tiou values -> (thresholds, average thresholds or None)."""
    if len(tiou) == 1 and tiou[0] in PRESETS:
        thresholds, preset_average = PRESETS[tiou[0]]
        return thresholds, average_tiou if average_tiou is not None else preset_average
    try:
        thresholds = [float(value) for value in tiou]
    except ValueError:
        raise DataError(f"--tiou: expected numbers or one of {', '.join(PRESETS)}, got {' '.join(tiou)}") from None
    return thresholds, average_tiou


def main(argv=None):
    args = parse_args(argv)
    try:
        thresholds, average_tious = resolve_thresholds(args.tiou, args.average_tiou)
        exclude = list(args.exclude_video)
        if args.drop_bad_thumos_videos:
            exclude += list(evaluation.THUMOS14_BAD_TEST_VIDEOS)
        ground_truth = evaluation.load_ground_truth(args.ground_truth, args.subset)
        result = evaluation.detection_map(
            ground_truth, args.predictions, thresholds, protocol=args.protocol, average_tious=average_tious,
            exclude_videos=exclude, use_ambiguous=not args.no_ambiguous, tie_break=args.tie_break,
            feature_rate=args.feature_rate)
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"protocol {result['protocol']}  subset {args.subset}  classes {len(result['per_class'])}  "
          f"ground truth {result['num_ground_truth']}  predictions {result['num_predictions']}")
    for line in evaluation.notes(result, args.subset):
        print(line, file=sys.stderr)
    print(evaluation.format_table(result))
    if args.per_class:
        keys = list(result["mAP"])
        width = max(len(name) for name in result["per_class"])
        print("\n" + f"{'class':<{width}}  " + "  ".join(f"{key:>6}" for key in keys))
        for name, values in result["per_class"].items():
            print(f"{name:<{width}}  " + "  ".join(f"{100.0 * values[key]:6.2f}" for key in keys))
    if args.json:
        payload = {"mAP": result["mAP"], "average": result["average"],
                   "average_tious": result["average_tious"], "protocol": result["protocol"],
                   "subset": args.subset, "per_class": result["per_class"],
                   "num_predictions_without_ground_truth_class":
                       result["num_predictions_without_ground_truth_class"],
                   "classes_without_ground_truth": result["classes_without_ground_truth"]}
        files.write_json_atomically(args.json, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Every detection rule of tfwsar.localize on trained runs, without retraining.

    python benchmarks/localization_rules.py --runs workdir/anet/srnet workdir/anet/tsrnet \
        --markdown rules.md --json rules.json

Each `--runs` directory is a `python -m tfwsar.recipes.tsrnet` or `.convex_clustering` workdir;
its `seed_<k>/` subdirectories (written by `--seeds N`) are its other seeds. For every run the
chosen weights (`load_run`) are loaded once, the test split is run through both streams once
(`inference.predict_videos`; convex clustering: then its test-time selection), and every rule
re-scores the same outputs with the run's own detection settings (`config.json`, section
`detection`), `--set key=value` overriding them for all rules (e.g. `--set smoothing=5`). Each rule is evaluated with the same evaluator as the recipes
(`evaluation.detection_map`: the ActivityNet toolkit's mAP at the run's protocol thresholds).
The table gives mean ± std over the seeds of each run (population std, as `--seeds` reports).

`--grid key=v1,v2 ...` adds every combination of the listed values of the sequence rules'
settings as extra rows (for choosing a preset's settings; say on which split you chose them).
"""

import argparse
import dataclasses
import itertools
import json
import os
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tfwsar import config as config_lib  # noqa: E402  pylint: disable=wrong-import-position
from tfwsar import evaluation, inference, localize  # noqa: E402  pylint: disable=wrong-import-position

SHARED_RULES = ("tsrnet", "whole_video") + localize.SEQUENCE_RULES  # rules every method can use
COLUMNS = {"activitynet": ("0.5", "0.75", "0.95", "average"),
           "thumos14": ("0.1", "0.3", "0.5", "0.7", "average_0.1_0.7", "average")}


def seed_directories(run):
    """The run directory and its `seed_<k>` subdirectories, in seed order."""
    run = pathlib.Path(run)
    seeds = sorted((path for path in run.glob("seed_*") if (path / "config.json").exists()),
                   key=lambda path: int(path.name.split("_")[1]))
    return [run] + seeds


def method_of(config):
    """"convex_clustering" or the TSRNet variant of a run's config."""
    return "convex_clustering" if "clustering" in config else config["variant"]


def load_run(workdir, split="test"):
    """(config dict, data_dir, manifest, outputs, ground truth) of one run on `split`: "test" (the
    run's test subset) or "selection" (the training videos the run held out for model selection,
    never trained on: for choosing detection settings without looking at the test split).

    TSRNet: the chosen weights (`selection/best`). Convex clustering: the final networks (the last
    checkpoint) and its test-time selection with the stored D and Q (`exemplars.npz`): the
    outputs are re-scored on each video's selected segments, as the recipe scores them."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    from tfwsar.data import records, synthetic  # pylint: disable=import-outside-toplevel
    from tfwsar.models import tsrnet  # pylint: disable=import-outside-toplevel

    config = json.loads((pathlib.Path(workdir) / "config.json").read_text())
    data_dir = config["data"]["data_dir"]
    if not data_dir:
        data_dir, _ = synthetic.ensure_embedded_dataset(config["data"].get("embedded", "thumos14"))
    manifest = records.read_manifest(data_dir)
    model, method = config["model"], method_of(config)
    models = {stream: tsrnet.build_stream_network(
        manifest["feature_dims"][stream], len(manifest["classes"]), fc1_units=model["fc1_units"],
        fc2_units=model["fc2_units"], attention_units=model["attention_units"],
        dropout_rate=model["dropout_rate"],
        pooling="attention" if method == "convex_clustering" else tsrnet.pooling_for_variant(method),
        name=stream) for stream in inference.STREAMS}
    best = pathlib.Path(workdir) / "selection" / "best"
    checkpoint = tf.train.Checkpoint(**models)
    if (pathlib.Path(workdir) / "selection" / "best.json").exists():
        checkpoint.read(str(best)).expect_partial()
    else:  # convex clustering, or no selection: the last training checkpoint
        checkpoint.read(tf.train.latest_checkpoint(str(pathlib.Path(workdir) / "checkpoints"))
                        ).expect_partial()
    data = config["data"]
    subset, videos = data["test_subset"], None
    if split == "selection":
        subset = data["train_subset"]
        _, videos = inference.split_training_videos(
            data_dir, subset, data["validation_fraction"], config["train"]["seed"])
    outputs = inference.predict_videos(models, data_dir, subset, videos=videos)
    if method == "convex_clustering":
        outputs = convex_clustering_test_time(workdir, config, outputs)
    ground_truth = evaluation.load_ground_truth(os.path.join(data_dir, "ground_truth.json"), subset)
    if videos is not None:
        kept = set(videos)
        ground_truth = ground_truth.without_videos(
            [video for video in ground_truth.videos if video not in kept])
    return config, str(data_dir), manifest, outputs, ground_truth


def convex_clustering_test_time(workdir, config, outputs):
    """Convex clustering's test-time selection and re-scoring of `outputs` (its recipe's own
    `select_union` and `rescore`), with D and log Q from the run's `exemplars.npz`."""
    from tfwsar.recipes import convex_clustering  # pylint: disable=import-outside-toplevel

    settings = convex_clustering.ClusteringConfig(**config["clustering"])
    if settings.rounds == 0:
        return outputs
    stored = np.load(pathlib.Path(workdir) / "exemplars.npz")
    exemplars = {stream: stored[f"exemplars_{stream}"] for stream in inference.STREAMS}
    log_q = {stream: stored[f"log_q_{stream}"] for stream in inference.STREAMS}
    theta = config["detection"]["theta"]
    return [convex_clustering.rescore(output, convex_clustering.select_union(
        output, exemplars, log_q, settings, theta)) for output in outputs]


def base_settings(config, overrides):
    """DetectionSettings from a run's `detection` config section, then `key=value` overrides."""
    fields = {field.name for field in dataclasses.fields(inference.DetectionSettings)}
    values = {key: tuple(value) if isinstance(value, list) else value
              for key, value in config["detection"].items() if key in fields}
    return config_lib.override(inference.DetectionSettings(**values), overrides)


def configurations(settings, rules, grid):
    """[(row name, DetectionSettings)]: each rule with `settings`, then the grid's combinations."""
    rows = [(rule, dataclasses.replace(settings, rule=rule)) for rule in rules]
    if grid:
        keys = [item.split("=", 1)[0] for item in grid]
        choices = [item.split("=", 1)[1].split(",") for item in grid]
        for rule in rules:
            if rule not in localize.SEQUENCE_RULES:
                continue
            for combination in itertools.product(*choices):
                assignments = [f"{key}={value}" for key, value in zip(keys, combination)]
                rows.append((f"{rule} {' '.join(assignments)}", config_lib.override(
                    dataclasses.replace(settings, rule=rule), assignments)))
    return rows


def score(outputs, ground_truth, settings, manifest, config):
    """The run's metrics under `settings`: {column: value} (mAP at tIoU keys, averages)."""
    detections = inference.detect_videos(outputs, settings, manifest["feature_rate"])
    predictions = localize.predictions_to_activitynet(detections, manifest["classes"])
    protocol = config["detection"]["protocol"]
    thumos = protocol == "thumos14"
    detection = evaluation.detection_map(
        ground_truth, predictions,
        evaluation.THUMOS14_TIOUS if thumos else evaluation.ACTIVITYNET_TIOUS,
        exclude_videos=(evaluation.THUMOS14_BAD_TEST_VIDEOS
                        if config["detection"].get("drop_bad_test_videos") else ()))
    row = dict(detection["mAP"], average=detection["average"])
    if thumos:
        row["average_0.1_0.7"] = float(np.mean(
            [row[evaluation.tiou_key(t)] for t in evaluation.THUMOS14_AVERAGE_TIOUS]))
    row["fusion_accuracy"] = inference.classification_metrics(outputs, settings.theta)["fusion"]
    return row


def evaluate_runs(runs, rules, overrides, grid, split="test"):
    """{run: {"seeds": [workdir], "protocol", "rows": {row: [per-seed metrics]}}}."""
    results = {}
    for run in runs:
        entry = {"seeds": [], "rows": {}}
        for workdir in seed_directories(run):
            config, _, manifest, outputs, ground_truth = load_run(workdir, split)
            entry["seeds"].append(str(workdir))
            entry["protocol"] = config["detection"]["protocol"]
            entry["variant"] = method_of(config)
            for name, settings in configurations(base_settings(config, overrides), rules, grid):
                entry["rows"].setdefault(name, []).append(
                    score(outputs, ground_truth, settings, manifest, config))
            print(f"scored {workdir}", file=sys.stderr, flush=True)
        results[str(run)] = entry
    return results


def markdown(results):
    """One table per protocol: run × rule rows, mean ± std (%) over seeds."""
    lines = []
    for protocol in sorted({entry["protocol"] for entry in results.values()}):
        columns = COLUMNS[protocol]
        seeds = sorted({len(entry["seeds"]) for entry in results.values()})
        lines += [f"mAP (%), mean ± std over {'/'.join(map(str, seeds))} seed(s)", "",
                  "| run | rule | " + " | ".join(columns) + " |",
                  "|---|---|" + "---|" * len(columns)]
        for run, entry in results.items():
            if entry["protocol"] != protocol:
                continue
            for name, per_seed in entry["rows"].items():
                cells = []
                for column in columns:
                    values = 100 * np.asarray([row[column] for row in per_seed])
                    cells.append(f"{values.mean():.1f} ± {values.std():.1f}")
                label = entry["variant"]
                if pathlib.Path(run).name != label:
                    label += f" ({pathlib.Path(run).name})"
                lines.append(f"| {label} | {name} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", nargs="+", required=True, help="TSRNet workdirs (seed_k inside)")
    parser.add_argument("--rules", default=",".join(SHARED_RULES),
                        help=f"comma list of {localize.RULES} (default: {','.join(SHARED_RULES)})")
    parser.add_argument("--set", action="append", default=[],
                        help="override a DetectionSettings field for every rule: --set smoothing=5")
    parser.add_argument("--grid", nargs="*", default=[],
                        help="extra rows: key=v1,v2 ... combinations for the sequence rules")
    parser.add_argument("--split", choices=("test", "selection"), default="test",
                        help="test: the run's test subset; selection: its held-out training videos")
    parser.add_argument("--json", help="write every per-seed number here")
    parser.add_argument("--markdown", help="write the table here (it is printed anyway)")
    args = parser.parse_args(argv)
    rules = [rule for rule in args.rules.split(",") if rule]
    unknown = [rule for rule in rules if rule not in localize.RULES]
    if unknown:
        parser.error(f"unknown rules {unknown}; expected some of {localize.RULES}")
    results = evaluate_runs(args.runs, rules, args.set, args.grid, args.split)
    table = markdown(results)
    print(table)
    if args.markdown:
        pathlib.Path(args.markdown).write_text(table + "\n", encoding="utf-8")
    if args.json:
        from tfwsar import files  # pylint: disable=import-outside-toplevel
        files.write_json_atomically(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())

r"""Every method on the same data, scored by the same evaluator: one table.

    python -m tfwsar.recipes.compare --methods tsrnet,srnet,convex_clustering,wtalc,stpn,basnet \
        --seeds 3 --workdir runs/compare [--data DIR --trimmed DIR] [--preset default|paper|activitynet]

Without `--data` it runs on the embedded default. Each method × seed trains into
`workdir/<method>/seed_<k>` with its recipe's own settings for the preset (seed k = 0, 1, …); a
finished run is not trained again (its metrics.json is read). `--rules cas,attention` also scores
each trained model's test outputs with other detection rules of `tfwsar.localize` at the end of
its run (no retraining; `detection.other_rules`): rows `<method> + <rule>`. Writes `workdir/comparison.json` (mean, std and values per method and tIoU,
classification accuracy, training seconds) and `workdir/comparison.md` (the same as a markdown
table, mean ± std in %), and prints the table.
"""

import dataclasses
import json
import os
import sys
import time

from absl import flags

from tfwsar import config as config_lib

METHODS = ("tsrnet", "srnet", "two_stream", "convex_clustering", "wtalc", "stpn", "basnet")
FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_string("methods", "tsrnet,srnet,convex_clustering,wtalc,stpn,basnet",
                        f"comma list of {', '.join(METHODS)}")
    flags.DEFINE_integer("seeds", 3, "seeds per method")
    flags.DEFINE_string("data", None, "converted dataset directory (default: embedded)")
    flags.DEFINE_string("trimmed", None, "converted trimmed dataset (TSRNet's transfer)")
    flags.DEFINE_string("workdir", None, "run directory (default: ./workdir/compare)")
    flags.DEFINE_string("preset", "default", "default | paper | activitynet")
    flags.DEFINE_integer("steps", None, "training steps of every method (default: each preset's)")
    flags.DEFINE_string("rules", "", "more detection rules to score every model with")
    flags.DEFINE_multi_string("set", [], "override a setting of every method: --set train.batch_size=8")


def method_run(name, preset, data_dir, trimmed_dir, steps, overrides=(), rules=()):
    """(config, run function) of one method name with its recipe's preset."""
    # pylint: disable=import-outside-toplevel
    from tfwsar.recipes import basnet, convex_clustering, stpn, tsrnet, wtalc

    if name in tsrnet.VARIANTS:
        config = dataclasses.replace(tsrnet.get_config(preset, data_dir=data_dir), variant=name)
        assignments = [f"data.trimmed_dir={trimmed_dir}"] if trimmed_dir else []
        run = tsrnet.run
    else:
        recipe = {"convex_clustering": convex_clustering, "wtalc": wtalc, "stpn": stpn,
                  "basnet": basnet}.get(name)
        if recipe is None:
            raise ValueError(f"unknown method {name!r}; expected one of {', '.join(METHODS)}")
        config, assignments, run = recipe.get_config(preset, data_dir=data_dir), [], recipe.run
    if data_dir:
        assignments.append(f"data.data_dir={data_dir}")
    if steps:
        assignments.append(f"train.steps={steps}")
    if rules and hasattr(config.detection, "other_rules"):  # not convex clustering's test rule
        assignments.append(f"detection.other_rules={','.join(rules)}")
    return config_lib.override(config, assignments + list(overrides)), run


def _row(metrics, seconds):
    return {"detection": metrics["detection"],
            "classification": metrics["classification"]["fusion"],
            "train_seconds": seconds}


def summarize(rows):
    """{row name: [per-seed row]} → {row name: {"detection": {tIoU: {mean, std, values}}, ...}}."""
    import numpy as np  # pylint: disable=import-outside-toplevel

    def stats(values):
        values = np.asarray(values, np.float64)
        return {"mean": float(values.mean()), "std": float(values.std()),
                "values": [float(v) for v in values]}

    summary = {}
    for name, per_seed in rows.items():
        keys = list(per_seed[0]["detection"])
        summary[name] = {
            "seeds": len(per_seed),
            "detection": {key: stats([row["detection"][key] for row in per_seed]) for key in keys},
            "classification": stats([row["classification"] for row in per_seed]),
            "train_seconds": stats([row["train_seconds"] for row in per_seed]),
        }
    return summary


def markdown(summary):
    """The comparison as a markdown table: mean ± std in % per tIoU, accuracy, seconds."""
    names = list(summary)
    keys = list(summary[names[0]]["detection"])
    lines = ["| method | " + " | ".join(f"mAP@{key}" if key != "average" else "avg mAP"
                                         for key in keys) + " | fusion acc. | train s |",
             "|---" * (len(keys) + 3) + "|"]
    for name in names:
        row = summary[name]
        cells = [f"{100 * row['detection'][key]['mean']:.1f} ± {100 * row['detection'][key]['std']:.1f}"
                 for key in keys]
        cells.append(f"{100 * row['classification']['mean']:.1f} ± {100 * row['classification']['std']:.1f}")
        cells.append(f"{row['train_seconds']['mean']:.0f}")
        lines.append(f"| {name} ({row['seeds']} seeds) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def compare(methods, *, seeds, workdir, preset="default", data_dir="", trimmed_dir="", steps=None,
            overrides=(), rules=()):
    """Runs (or reads) every method × seed; writes comparison.json/.md; returns the summary."""
    from tfwsar import files  # pylint: disable=import-outside-toplevel

    rows = {}
    for name in methods:
        base, run = method_run(name, preset, data_dir, trimmed_dir, steps, overrides, rules)
        for seed in range(seeds):
            seed_dir = os.path.join(workdir, name, f"seed_{seed}")
            metrics_path = os.path.join(seed_dir, "metrics.json")
            config = dataclasses.replace(base, train=dataclasses.replace(
                base.train, seed=base.train.seed + seed))
            started = time.time()
            if os.path.exists(metrics_path):
                with open(metrics_path, encoding="utf-8") as file:
                    metrics = json.load(file)
                seconds = metrics.get("compare_seconds", float("nan"))
            else:
                print(f"[compare] {name} seed {seed} → {seed_dir}", file=sys.stderr, flush=True)
                metrics = run(config, seed_dir)
                seconds = round(time.time() - started, 1)
                files.write_json_atomically(metrics_path, {**metrics, "compare_seconds": seconds})
            rows.setdefault(name, []).append(_row(metrics, seconds))
            for rule, detection in metrics.get("detection_by_rule", {}).items():
                if rule == metrics.get("detection_rule"):
                    continue  # the method's own row already
                rows.setdefault(f"{name} + {rule}", []).append(
                    {"detection": detection, "classification": metrics["classification"]["fusion"],
                     "train_seconds": seconds})
    summary = summarize(rows)
    files.write_json_atomically(os.path.join(workdir, "comparison.json"),
                                {"preset": preset, "data": data_dir or "embedded", "seeds": seeds,
                                 "methods": summary})
    table = markdown(summary)
    with open(os.path.join(workdir, "comparison.md"), "w", encoding="utf-8") as file:
        file.write(table + "\n")
    return summary, table


def main(argv):
    del argv
    methods = [name.strip() for name in FLAGS.methods.split(",") if name.strip()]
    for name in methods:
        if name not in METHODS:
            print(f"error: --methods: unknown method {name!r}; expected {', '.join(METHODS)}",
                  file=sys.stderr)
            sys.exit(1)
    from tfwsar.errors import DataError  # pylint: disable=import-outside-toplevel

    workdir = FLAGS.workdir or os.path.join("workdir", "compare")
    try:
        _, table = compare(methods, seeds=FLAGS.seeds, workdir=workdir, preset=FLAGS.preset,
                           data_dir=FLAGS.data or "", trimmed_dir=FLAGS.trimmed or "",
                           steps=FLAGS.steps, overrides=FLAGS.set,
                           rules=[rule for rule in FLAGS.rules.split(",") if rule])
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    print()
    print(table)
    print(f"\nEverything is in {os.path.abspath(workdir)}: comparison.md, comparison.json, "
          f"<method>/seed_<k>/ (each a full run with report.html)")


if __name__ == "__main__":
    from tfwsar import console  # pylint: disable=import-outside-toplevel
    define_flags()
    console.run(main)

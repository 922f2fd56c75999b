"""SavedModel inference latency against video length: 100 to 5,625 segments (one hour of THUMOS14).

    python benchmarks/bench_inference.py [--dim 1024] [--repeats 9] [--signature serving_default]
        [--detection tsrnet|thumos14|activitynet]

The paper-width TSRNet pair (FC1 = FC2 = 512, attention 256, 20 classes, D per stream, untrained
weights: latency does not depend on their values) is exported with `export.export_two_stream`,
loaded back with `tf.saved_model.load` in the same process, and each length T is timed as a
user calls it: `signature(rgb=[T, D], flow=[T, D])`, one video per call, outputs fetched as
numpy. After one warm-up call per length, lengths are timed in rounds, each round visiting
every length once in shuffled order (so a change of the machine's load falls on all lengths),
and the median of the rounds is kept. `--detection` is the rule `detect` implements: "tsrnet"
(the paper's), "thumos14" / "activitynet" (the recipes' defaults, `localize.THUMOS14_DETECTION`,
`ACTIVITYNET_DETECTION`).

Linearity: the least-squares line a + b·T through the medians, and for every length its median
over the line's value; "linear within 1.2×" means every ratio lies in [1/1.2, 1.2]. The cost per
segment at each length is also printed, relative to the longest.
"""

import argparse
import atexit
import os
import shutil
import tempfile
import time

import numpy as np

LENGTHS = (100, 250, 500, 1000, 2000, 3500, 5625)


def export_paper_model(directory, dim, num_classes=20, detection="tsrnet"):
    from tfwsar import export, inference, localize, train_lib  # pylint: disable=import-outside-toplevel
    from tfwsar.models import tsrnet  # pylint: disable=import-outside-toplevel

    train_lib.enable_determinism(0)
    paper = tsrnet.PAPER_HYPERPARAMETERS
    models = {stream: tsrnet.build_stream_network(
        dim, num_classes, fc1_units=paper.fc1_units, fc2_units=paper.fc2_units,
        attention_units=paper.attention_units, dropout_rate=paper.dropout_rate, name=stream)
        for stream in ("rgb", "flow")}
    path = os.path.join(directory, "saved_model")
    export.export_two_stream(models, path, feature_dims={"rgb": dim, "flow": dim},
                             classes=[f"class_{index}" for index in range(num_classes)],
                             feature_rate=25.0 / 16.0, settings=inference.DetectionSettings(**{
                                 "tsrnet": {}, "thumos14": localize.THUMOS14_DETECTION,
                                 "activitynet": localize.ACTIVITYNET_DETECTION}[detection]))
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--dim", type=int, default=1024, help="features per stream")
    parser.add_argument("--repeats", type=int, default=9, help="timed rounds")
    parser.add_argument("--signature", default="serving_default", choices=("serving_default", "detect"))
    parser.add_argument("--detection", default="tsrnet", choices=("tsrnet", "thumos14", "activitynet"),
                        help="the rule detect implements (the recipes' THUMOS14 / ActivityNet defaults)")
    args = parser.parse_args()
    from tfwsar import console  # pylint: disable=import-outside-toplevel
    console.quiet_terminal()
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    directory = tempfile.mkdtemp(prefix="bench-inference-")
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    started = time.perf_counter()
    path = export_paper_model(directory, args.dim, detection=args.detection)
    print(f"exported {path} in {time.perf_counter() - started:.0f} s")
    signature = tf.saved_model.load(path).signatures[args.signature]
    random = np.random.default_rng(0)
    inputs = {length: {stream: tf.constant(random.standard_normal((length, args.dim), np.float32))
                       for stream in ("rgb", "flow")} for length in LENGTHS}

    def call(length):
        started = time.perf_counter()
        outputs = signature(**inputs[length])
        {key: value.numpy() for key, value in outputs.items()}  # pylint: disable=expression-not-assigned
        return time.perf_counter() - started

    for length in LENGTHS:
        call(length)
    times = {length: [] for length in LENGTHS}
    for _ in range(args.repeats):
        for length in random.permutation(LENGTHS):
            times[int(length)].append(call(int(length)))
    medians = np.array([np.median(times[length]) for length in LENGTHS])
    lengths = np.array(LENGTHS, float)
    slope, intercept = np.polyfit(lengths, medians, 1)
    fitted = intercept + slope * lengths
    per_segment = medians / lengths
    print(f"\n{args.signature} (rule {args.detection}), D={args.dim} per stream, paper widths, "
          f"median of {args.repeats} rounds; line a + b·T: a = {intercept * 1e3:.2f} ms, b = {slope * 1e6:.1f} µs/segment")
    print(f"{'T':>6} {'median ms':>10} {'min ms':>8} {'µs/segment':>11} {'÷ longest':>10} {'÷ line':>7}")
    for index, length in enumerate(LENGTHS):
        print(f"{length:>6} {medians[index] * 1e3:>10.2f} {min(times[length]) * 1e3:>8.2f} "
              f"{per_segment[index] * 1e6:>11.1f} {per_segment[index] / per_segment[-1]:>10.2f} "
              f"{medians[index] / fitted[index]:>7.2f}")
    worst = max(np.max(medians / fitted), np.max(fitted / medians))
    print(f"worst ratio to the line: {worst:.2f}× ({'within' if worst <= 1.2 else 'NOT within'} "
          f"1.2×); one hour (5,625 segments) in {medians[-1] * 1e3:.0f} ms")


if __name__ == "__main__":
    main()

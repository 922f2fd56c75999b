"""Training speed at the paper preset, each figure a ratio measured in one process.

    python benchmarks/bench_training.py [--work DIR] [--steps 40] [WHAT ...]

WHAT (default: all of them, in this order):
  flops     training throughput in valid segments/s and model FLOP/s against the float32 matmul
            rate measured in the same process, in turns: each round a matmul measurement, then
            training steps with a fixed T = 750 and with the paper preset's batches (longest
            video, sort_window 5);
  pipeline  the real TFRecord pipeline against the same steps on in-memory batches (fixed
            T = 750 on both sides: the in-memory side repeats one batch, so it has one length);
  padding   computed / valid segments on THUMOS14's lengths with a fixed T (the paper's 750)
            and with `batch_length="longest"` + `sort_window` 0/2/4/5, and the throughput of
            fixed T against the paper preset's (longest + sort_window 5);
  xla       jit_compile on / off, one replica, in-memory batches (one batch, fixed T = 750);
  trace     the TF profiler over a window of training steps (`Trainer.train(profile_steps=...)`):
            the ops that take the step's time, from the trace's framework op statistics; once
            with a fixed T = 750, once with the paper preset's batches.

Every mode sets `batch_length` and `sort_window` itself (FIXED_T, PAPER_BATCHES below) instead of
taking them from the preset: since c9d9f8a the "paper" preset batches to the longest video
(`batch_length="longest"`, `sort_window=5`); before, every batch had T = 750.

Data: THUMOS14's 200 validation and 212 test videos at their real durations (the shipped
annotations, 1.5625 segments/s) and the trimmed UCF101-like clips, with features generated at
the paper's width, 1024 per stream (`synthetic.ensure_default_dataset` with
`SyntheticSpec(feature_dim=1024)`; built once into --work, 1.3 GB). Training is the TSRNet recipe's
step (`methods.tsrnet.make_step_fn`, variant tsrnet: both streams, the trimmed batch, MMD on FC1
and FC2) at the "paper" preset: batch 16, T at most 750 (trimmed T = 32), H1 = H2 = 512,
attention 256, dropout 0.2, SGD momentum, one replica, 10 steps per compiled call; the batches'
length as each mode says. The 160 training videos are those of the recipe's split (40 held out
for selection).

Model FLOPs are the matrix products of a step, counted from the layer shapes (`step_flops`):
forward 2·rows·in·out per dense layer (FC1, FC2, attention W1, the per-segment classifier),
backward twice that (weights and inputs; FC1 needs no input gradient), on both streams, for the
untrimmed (B·T rows) and trimmed (B·T_trimmed rows) batches, plus the MMD's distance products.
With batches of varying T the count is taken at the window's mean T (it is affine in T, so this
is the exact sum over the window's batches). Element-wise work (ReLU, dropout, masks, softmax) is
not counted: it is what keeps a step from the matmul rate.
"""

import argparse
import atexit
import os
import pathlib
import shutil
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

BATCH, TRIMMED_T, DIM = 16, 32, 1024
WIDTHS = {"fc1": 512, "fc2": 512, "attention": 256}
MMD_SEGMENTS = 32
# The untrimmed batches' length, set explicitly in every mode (`pipeline.training_dataset` options).
FIXED_T = {"batch_length": "fixed", "sort_window": 0}  # T = 750: the paper preset before c9d9f8a
PAPER_BATCHES = {"batch_length": "longest", "sort_window": 5}  # the "paper" preset's since c9d9f8a


# ------------------------------------------------------------------------------------------------
# Set-up shared by the measurements
# ------------------------------------------------------------------------------------------------


class Bench:
    """The paper-preset data, config and helpers of one process."""

    def __init__(self, work, dim=DIM):
        from tfwsar import inference  # pylint: disable=import-outside-toplevel
        from tfwsar import config as config_lib  # pylint: disable=import-outside-toplevel
        from tfwsar.data import records, synthetic  # pylint: disable=import-outside-toplevel
        from tfwsar.recipes import tsrnet  # pylint: disable=import-outside-toplevel

        from tfwsar import train_lib  # pylint: disable=import-outside-toplevel

        train_lib.enable_determinism(0)  # as the recipes do by default
        started = time.perf_counter()
        self.data_dir, self.trimmed_dir = synthetic.ensure_default_dataset(
            synthetic.SyntheticSpec(feature_dim=dim), root=pathlib.Path(work) / f"thumos14-{dim}",
            show_progress=False)
        print(f"data {self.data_dir} ({time.perf_counter() - started:.0f} s)", flush=True)
        self.dim = dim
        self.config = config_lib.override(tsrnet.get_config("paper", data_dir=str(self.data_dir)), [
            f"data.data_dir={self.data_dir}", f"data.trimmed_dir={self.trimmed_dir}"])
        self.manifest = records.read_manifest(self.data_dir)
        self.train_videos, _ = inference.split_training_videos(
            self.data_dir, self.config.data.train_subset, self.config.data.validation_fraction,
            self.config.train.seed)
        self.num_segments = self.config.data.num_segments
        preset = {name: getattr(self.config.data, name) for name in PAPER_BATCHES}
        if preset != PAPER_BATCHES:
            print(f"note: the paper preset's batches are now {preset}; this benchmark's "
                  f"'paper preset' measurements use {PAPER_BATCHES}", flush=True)

    def batches(self, *, batch_length, sort_window):
        """`first_batch -> dataset` of (untrimmed, trimmed) training batches, as the recipe's;
        the untrimmed batches' length set by `batch_length` and `sort_window` (FIXED_T,
        PAPER_BATCHES)."""
        from tfwsar.data import pipeline  # pylint: disable=import-outside-toplevel

        def batches(first_batch):
            untrimmed = pipeline.training_dataset(
                self.data_dir, [self.config.data.train_subset], num_segments=self.num_segments,
                batch_size=BATCH, seed=0, videos=self.train_videos, first_batch=first_batch,
                batch_length=batch_length, sort_window=sort_window)
            trimmed = pipeline.training_dataset(
                self.trimmed_dir, ["training"], num_segments=TRIMMED_T, batch_size=BATCH, seed=1,
                first_batch=first_batch)
            return pipeline.paired_dataset(untrimmed, trimmed)

        return batches

    def in_memory(self):
        """`first_batch -> dataset` repeating one (untrimmed, trimmed) batch held in memory, at
        fixed T = 750 (one batch has one length)."""
        import tensorflow as tf  # pylint: disable=import-outside-toplevel

        element = next(iter(self.batches(**FIXED_T)(0)))
        element = tf.nest.map_structure(tf.constant, tf.nest.map_structure(np.asarray, element))
        dataset = tf.data.Dataset.from_tensors(element).repeat().prefetch(2)
        return lambda first_batch: dataset

    def trainer(self, batches, jit_compile=False):
        """A Trainer with fresh paper-width networks and the recipe's TSRNet step."""
        import bench_training_state  # pylint: disable=import-outside-toplevel

        from tfwsar import train_lib  # pylint: disable=import-outside-toplevel
        from tfwsar.methods import tsrnet  # pylint: disable=import-outside-toplevel

        strategy = train_lib.make_strategy("default")
        models, optimizers = bench_training_state._models_and_optimizers(  # pylint: disable=protected-access
            strategy, self.dim, len(self.manifest["classes"]))
        workdir = tempfile.mkdtemp(prefix="bench-training-")
        atexit.register(shutil.rmtree, workdir, ignore_errors=True)
        trainer = train_lib.Trainer(
            workdir, strategy, batches,
            {**models, **{f"{s}_optimizer": o for s, o in optimizers.items()}},
            steps_per_execution=10, jit_compile=jit_compile)
        return trainer, tsrnet.make_step_fn(self.config, models, optimizers, 1)

    def valid_segments(self, batches, first, last):
        """Valid and computed untrimmed segments of batches [first, last)."""
        valid = computed = 0
        for untrimmed, _ in batches(first).take(last - first):
            mask = untrimmed["mask"].numpy()
            valid += float(mask.sum())
            computed += mask.size
        return valid, computed


def measure_steps(trainer, step_fn, steps, warmup=10, profile_steps=None):
    """Steps per second of `steps` steps after `warmup` untimed ones (the first call traces and
    fills the input pipeline): (rate, first step, last step). The checkpoint that ends a `train`
    call is not timed."""
    if warmup:
        trainer.train(step_fn, int(trainer.step.numpy()) + warmup, log_every=10**9,
                      summary_every=10**9, checkpoint_every=10**9)
    stamps = []
    first = int(trainer.step.numpy())
    started, cpu_started = time.perf_counter(), time.process_time()
    trainer.train(step_fn, first + steps, log_every=steps, summary_every=10**9,
                  checkpoint_every=10**9, profile_steps=profile_steps,
                  on_log=lambda step, _: stamps.append((step, time.perf_counter(),
                                                        time.process_time())))
    last, ended, cpu_ended = stamps[-1]
    measure_steps.cpu_seconds_per_step = (cpu_ended - cpu_started) / (last - first)
    return (last - first) / (ended - started), first, last


def matmul_rate(rows, inner, columns, seconds=4.0):
    """Median float32 FLOP/s of tf.matmul [rows, inner] × [inner, columns] (chunks of ~0.5 s)."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    a = tf.random.normal([rows, inner])
    b = tf.random.normal([inner, columns])

    @tf.function
    def products(count):
        total = tf.constant(0.0)
        for _ in tf.range(count):
            total += tf.reduce_sum(tf.matmul(a, b)[:1, :1])
        return total

    flops = 2.0 * rows * inner * columns
    float(products(tf.constant(2)))
    count = 1
    while True:  # calibrate a chunk of ~0.5 s
        started = time.perf_counter()
        float(products(tf.constant(count)))
        if time.perf_counter() - started > 0.25:
            break
        count *= 2
    rates, deadline = [], time.perf_counter() + seconds
    cpu_started = time.process_time()
    while time.perf_counter() < deadline or len(rates) < 3:
        started = time.perf_counter()
        float(products(tf.constant(count)))
        rates.append(count * flops / (time.perf_counter() - started))
    matmul_rate.flops_per_cpu_second = (len(rates) * count * flops
                                        / (time.process_time() - cpu_started))
    return float(np.median(rates))


def step_flops(num_segments, dim=DIM, num_classes=20, transfer=True):
    """Matmul FLOPs of one TSRNet training step, both streams (see the module docstring)."""
    def dense(rows, first_layer_too=True):
        layers = [(dim, WIDTHS["fc1"]), (WIDTHS["fc1"], WIDTHS["fc2"]),
                  (WIDTHS["fc2"], WIDTHS["attention"]), (WIDTHS["fc2"], num_classes)]
        forward = sum(2.0 * rows * a * b for a, b in layers)
        backward = sum((4.0 if index or first_layer_too else 2.0) * rows * a * b
                       for index, (a, b) in enumerate(layers))
        return forward + backward

    per_stream = dense(BATCH * num_segments, first_layer_too=False)
    if transfer:
        per_stream += dense(BATCH * TRIMMED_T, first_layer_too=False)
        pooled = 2 * BATCH * MMD_SEGMENTS  # rows entering the MMD (trimmed + untrimmed)
        per_stream += 3 * sum(2.0 * pooled * pooled * WIDTHS[layer] for layer in ("fc1", "fc2"))
    return 2 * per_stream


# ------------------------------------------------------------------------------------------------
# The measurements
# ------------------------------------------------------------------------------------------------


def flops(bench, args):
    """Matmul measurements and training rounds in turns, so all see the same load: each round a
    matmul at FC1's shape for T = 750, then training steps with a fixed T = 750 (FIXED_T) and with
    the paper preset's batches (PAPER_BATCHES), the two in alternating order."""
    fc1_shape = (BATCH * bench.num_segments, DIM, WIDTHS["fc1"])
    square = matmul_rate(2048, 2048, 2048)
    settings = {"fixed T": FIXED_T, "paper preset": PAPER_BATCHES}
    runs = {}
    for name, options in settings.items():
        batches = bench.batches(**options)
        trainer, step_fn = bench.trainer(batches)
        measure_steps(trainer, step_fn, 10)
        runs[name] = (batches, trainer, step_fn)
    num_classes = len(bench.manifest["classes"])
    steps = args.steps // args.rounds
    results = {name: [] for name in settings}
    matmuls = []
    for index in range(args.rounds):
        matmul = matmul_rate(*fc1_shape, seconds=3.0)
        matmul_per_cpu = matmul_rate.flops_per_cpu_second
        matmuls.append(matmul)
        for name in (list(settings) if index % 2 == 0 else list(settings)[::-1]):
            batches, trainer, step_fn = runs[name]
            rate, first, last = measure_steps(trainer, step_fn, steps, warmup=0)
            cpu_per_step = measure_steps.cpu_seconds_per_step
            valid, computed = bench.valid_segments(batches, first, last)
            mean_t = computed / BATCH / (last - first)
            model = step_flops(mean_t, num_classes=num_classes)  # affine in T: exact for the window
            results[name].append({
                "steps/s": rate, "valid/s": valid / (last - first) * rate,
                "computed/valid": computed / valid, "T": mean_t, "model": model,
                "ratio": model * rate / matmul,
                "cpu ratio": model / cpu_per_step / matmul_per_cpu})
    print(f"\n[flops] paper widths, batch {BATCH}, T at most {bench.num_segments}, D={DIM} per "
          f"stream, {args.rounds} rounds, each a matmul measurement then {steps} steps of each "
          f"setting (alternating order)")
    print(f"  matmul {fc1_shape[0]}x{fc1_shape[1]}x{fc1_shape[2]} (FC1's shape at T=750) per "
          f"round: {['%.1f' % (r / 1e9) for r in matmuls]} GFLOP/s (2048³ at the start: "
          f"{square / 1e9:.1f})")
    medians = {}
    for name, rows in results.items():
        column = lambda key, rows=rows: np.array([row[key] for row in rows])  # noqa: E731
        medians[name] = (np.median(column("ratio")), np.median(column("cpu ratio")),
                         np.mean(column("valid/s")))
        print(f"  {name} ({settings[name]}):")
        print(f"    steps/s {['%.3f' % r for r in column('steps/s')]}; valid segments/s "
              f"{['%.0f' % r for r in column('valid/s')]}; computed per valid "
              f"{['%.2f' % r for r in column('computed/valid')]}; mean T "
              f"{['%.0f' % r for r in column('T')]}")
        gflops = column("model") * column("steps/s") / 1e9
        print(f"    model: {['%.1f' % (r / 1e9) for r in column('model')]} GFLOP per step "
              f"(matmuls) → {['%.1f' % r for r in gflops]} GFLOP/s")
        print(f"    model FLOP/s / matmul FLOP/s per round "
              f"{['%.2f' % r for r in column('ratio')]}: median {medians[name][0]:.2f}×")
        print(f"    the same per CPU-second (process CPU time: insensitive to other jobs' load, "
              f"counts the input pipeline's threads too) "
              f"{['%.2f' % r for r in column('cpu ratio')]}: median {medians[name][1]:.2f}×")
    (fixed_ratio, fixed_cpu, fixed_valid), (paper_ratio, paper_cpu, paper_valid) = (
        medians["fixed T"], medians["paper preset"])
    print(f"  paper preset / fixed T: valid segments/s {paper_valid / fixed_valid:.2f}×, FLOP/s "
          f"ratio {paper_ratio / fixed_ratio:.2f}× (per CPU-second {paper_cpu / fixed_cpu:.2f}×)")
    return float(fixed_ratio)


def pipeline_against_memory(bench, args):
    rates, cpu = {"pipeline": [], "memory": []}, {"pipeline": [], "memory": []}
    for _ in range(2):  # interleaved: the machine's load changes
        for name, batches in (("pipeline", bench.batches(**FIXED_T)),
                              ("memory", bench.in_memory())):
            trainer, step_fn = bench.trainer(batches)
            rates[name].append(measure_steps(trainer, step_fn, args.steps)[0])
            cpu[name].append(measure_steps.cpu_seconds_per_step)
    pipeline, memory = (float(np.mean(rates[name])) for name in ("pipeline", "memory"))
    print(f"\n[pipeline] fixed T={bench.num_segments} (batch_length=fixed, sort_window=0) on both "
          f"sides; steps/s, TFRecord pipeline {['%.3f' % r for r in rates['pipeline']]} vs "
          f"in-memory batches {['%.3f' % r for r in rates['memory']]}: ratio {pipeline / memory:.3f}")
    print(f"  CPU seconds per step (all threads: the pipeline's parsing included), pipeline "
          f"{['%.2f' % c for c in cpu['pipeline']]} vs in-memory {['%.2f' % c for c in cpu['memory']]}"
          f": in-memory / pipeline {np.mean(cpu['memory']) / np.mean(cpu['pipeline']):.3f}")
    return pipeline / memory


def thumos14_lengths(subset_csv="val_video_info.csv", rate=25.0 / 16.0):
    """Segments per video from the shipped THUMOS14 video info (frames / fps · rate)."""
    import pandas as pd  # pylint: disable=import-outside-toplevel

    from tfwsar.data import synthetic  # pylint: disable=import-outside-toplevel

    table = pd.read_csv(synthetic.resources_dir() / "thumos14" / subset_csv)
    return np.maximum(1, np.floor(table["count"] / table["fps"] * rate)).astype(int)


def padding(bench, args):
    lengths = thumos14_lengths()
    fixed = len(lengths) * bench.num_segments / np.minimum(lengths, bench.num_segments).sum()
    print(f"\n[padding] THUMOS14 validation, {len(lengths)} videos, median {np.median(lengths):.0f} "
          f"segments, mean {lengths.mean():.0f}, max {lengths.max()}; fixed T={bench.num_segments}: "
          f"{fixed:.2f} computed per valid segment (all videos)")
    settings = {"fixed T": FIXED_T, "longest": {"batch_length": "longest", "sort_window": 0},
                **{f"longest + sort_window {window}": {"batch_length": "longest",
                                                        "sort_window": window}
                   for window in (2, 4, 5)}}
    epoch_batches = len(bench.train_videos) // BATCH
    for name, options in settings.items():
        valid, computed = bench.valid_segments(bench.batches(**options), 0, 3 * epoch_batches)
        print(f"  {name:<26} {computed / valid:.3f} computed per valid (3 epochs of the "
              f"{len(bench.train_videos)} training videos)")
    assert settings["longest + sort_window 5"] == PAPER_BATCHES
    rates = {"fixed T": [], "longest + sort_window 5": []}
    for _ in range(2):
        for name in rates:
            batches = bench.batches(**settings[name])
            trainer, step_fn = bench.trainer(batches)
            rate, first, last = measure_steps(trainer, step_fn, args.steps)
            valid, computed = bench.valid_segments(batches, first, last)
            rates[name].append((rate, valid / (last - first) * rate, computed / valid))
    for name, values in rates.items():
        print(f"  {name:<26} steps/s {['%.3f' % v[0] for v in values]}, valid segments/s "
              f"{['%.0f' % v[1] for v in values]} (computed/valid {values[0][2]:.2f})")
    before, after = (np.mean([v[1] for v in rates[name]]) for name in rates)
    print(f"  valid segments/s, longest + sort_window 5 (the paper preset) / fixed T: "
          f"{after / before:.2f}×")


def xla(bench, args):
    rates = {False: [], True: []}
    memory = bench.in_memory()
    for _ in range(2):
        for jit_compile in rates:
            trainer, step_fn = bench.trainer(memory, jit_compile=jit_compile)
            rates[jit_compile].append(measure_steps(trainer, step_fn, args.steps)[0])
    off, on = np.mean(rates[False]), np.mean(rates[True])
    print(f"\n[xla] one replica, in-memory batches (fixed T={bench.num_segments}), steps/s: jit_compile off "
          f"{['%.3f' % r for r in rates[False]]}, on {['%.3f' % r for r in rates[True]]}: "
          f"on/off {on / off:.2f}×")


def trace(bench, args):
    from tensorboard_plugin_profile.convert import tf_stats_proto_to_gviz  # pylint: disable=import-outside-toplevel
    from tensorflow.python.profiler.internal import _pywrap_profiler  # pylint: disable=import-outside-toplevel

    for name, options in (("fixed T", FIXED_T), ("paper preset", PAPER_BATCHES)):
        trainer, step_fn = bench.trainer(bench.batches(**options))
        start = int(trainer.step.numpy()) + 20
        rate, _, _ = measure_steps(trainer, step_fn, 20, profile_steps=(start, start + 10))
        planes = sorted(pathlib.Path(trainer.workdir).glob("train/plugins/profile/*/*.xplane.pb"))
        print(f"\n[trace] {name} ({options}): {planes[-1]} (steps {start}–{start + 10}; "
              f"{rate:.3f} steps/s)")
        data, ok = _pywrap_profiler.xspace_to_tools_data([str(planes[-1])], "framework_op_stats",
                                                         {})
        if not ok:
            print("  could not convert the trace")
            continue
        print_op_stats(tf_stats_proto_to_gviz.to_csv(data), steps=10)


def print_op_stats(table, steps, top=15):
    """Where the host's time goes, from the profiler's framework op statistics (CSV): per op type
    and per op, as ms per step and as a share of the busy (non-idle) self time. The input
    pipeline's ops (type "Dataset") run on their own threads beside the step's."""
    import csv  # pylint: disable=import-outside-toplevel
    import io  # pylint: disable=import-outside-toplevel
    import re  # pylint: disable=import-outside-toplevel

    rows = [row for row in csv.DictReader(io.StringIO(table if isinstance(table, str) else table.decode()))
            if row["Host/device"] == "Host" and row["Type"] != "IDLE"]
    busy = sum(float(row["Total self-time (us)"]) for row in rows)
    step_ops = [row for row in rows if row["Type"] != "Dataset"]
    step_busy = sum(float(row["Total self-time (us)"]) for row in step_ops)
    print(f"  busy host time {busy / 1e3 / steps:.0f} ms per step, of which the training step's "
          f"ops {step_busy / 1e3 / steps:.0f} ms and the input pipeline's {(busy - step_busy) / 1e3 / steps:.0f} ms")
    by_type = {}
    for row in step_ops:
        by_type[row["Type"]] = by_type.get(row["Type"], 0.0) + float(row["Total self-time (us)"])
    print("  the step's ops by type (ms per step, share of the step's ops):")
    for kind, micros in sorted(by_type.items(), key=lambda item: -item[1])[:top]:
        print(f"    {kind:<34} {micros / 1e3 / steps:8.1f}  {micros / step_busy:6.1%}")
    by_layer = {}
    for row in step_ops:
        found = re.search(r"(fc1_dropout|fc2_dropout|fc1|fc2|attention_pooling|classifier|optimizer)",
                          row["Operation"])
        layer = (found.group(1) if found else "losses and the rest") + (
            " (backward)" if "gradient_tape" in row["Operation"] else "")
        types = by_layer.setdefault(layer, {})
        types[row["Type"]] = types.get(row["Type"], 0.0) + float(row["Total self-time (us)"])
    print("  the step's ops by layer (share of the step's ops; its main op types):")
    for layer, types in sorted(by_layer.items(), key=lambda item: -sum(item[1].values())):
        parts = sorted(types.items(), key=lambda item: -item[1])[:4]
        print(f"    {layer:<32} {sum(types.values()) / step_busy:6.1%}  "
              + ", ".join(f"{kind} {micros / step_busy:.1%}" for kind, micros in parts))
    matmuls = sum(micros for kind, micros in by_type.items() if "MatMul" in kind or "Einsum" in kind)
    dropout = sum(sum(types.values()) for layer, types in by_layer.items() if "dropout" in layer)
    print(f"  → matrix products (MatMul, Einsum) {matmuls / step_busy:.1%} of the step's op time; "
          f"the dropout layers {dropout / step_busy:.1%}; everything else "
          f"{1 - (matmuls + dropout) / step_busy:.1%}")
    print("  the step's largest ops:")
    for row in sorted(step_ops, key=lambda row: -float(row["Total self-time (us)"]))[:top]:
        micros = float(row["Total self-time (us)"])
        print(f"    {micros / 1e3 / steps:8.1f} ms {micros / step_busy:6.1%}  {row['Type']:<26} "
              f"{row['Operation'][-80:]}")


MEASUREMENTS = {"flops": flops, "pipeline": pipeline_against_memory, "padding": padding,
                "xla": xla, "trace": trace}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("what", nargs="*", help=f"any of {', '.join(MEASUREMENTS)} (default: all)")
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "tfwsar-bench"),
                        help="the generated dataset is built here once and reused")
    parser.add_argument("--steps", type=int, default=40, help="timed steps per measurement")
    parser.add_argument("--rounds", type=int, default=4, help="flops: matmul/training turns")
    args = parser.parse_args()
    unknown = set(args.what) - set(MEASUREMENTS)
    if unknown:
        parser.error(f"unknown measurement(s) {sorted(unknown)}; choose from {list(MEASUREMENTS)}")
    from tfwsar import console  # pylint: disable=import-outside-toplevel
    console.quiet_terminal()
    bench = Bench(args.work)
    for name in args.what or list(MEASUREMENTS):
        MEASUREMENTS[name](bench, args)


if __name__ == "__main__":
    main()

"""What a run costs before starting it: time and peak memory (RSS) of whole recipe runs.

    python benchmarks/bench_scale.py memory [--work DIR] [--paper-steps 200]
    python benchmarks/bench_scale.py activitynet [--work DIR] [--dim 64] [--steps 300]

Every stage runs as its own child process (`python -m tfwsar.recipes.tsrnet ...`, exactly the
command a user types), timed by the wall clock, its peak RSS read from `os.wait4` (that child's
alone) and its RSS sampled every second from /proc (so a plateau shows that memory does not grow
with the steps). The child's log lines are time-stamped as they arrive, which splits one run into
its stages: training (up to the last `[train_lib] step` line), model selection, then test-split
inference, detection, evaluation, export and report.

`memory`: the default recipe (`python -m tfwsar.recipes.tsrnet`: the embedded THUMOS14 default,
600 steps, T = 200, D = 32), then the paper preset (`--preset paper`: batch 16, T = 750, paper
widths) on THUMOS14's real lengths with generated 1024-d features per stream and the trimmed
UCF101-like clips (the data of bench_training.py, built once into --work), for `--paper-steps`
steps (the paper trains 15,000; the memory of a step does not change with the step count).

`activitynet`: ActivityNet1.3 at full size: every video of the real annotation file
(../shared/data/activitynet/anet_anno_action.json + video_info_new.csv; lengths from the
durations at 1.5625 segments/s) with generated `--dim`-d features per stream
(`bench_training_state.GeneratedFeatures`), converted (`records.write_converted_dataset`), then
`--preset activitynet` (the paper settings with T = 200; variant srnet: no trimmed domain) for
`--steps` steps, model selection on the held-out 20 % of the training videos, and the
evaluation on all 4,728 validation videos (tIoU 0.5:0.05:0.95); then the same command again on
the finished workdir, which restores the checkpoint and only evaluates (its own peak memory).
"""

import argparse
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


def run_child(command, label, stages=()):
    """Runs `command`; prints and returns (seconds, peak RSS MiB, {stage: seconds from start}).

    `stages` are (name, predicate(line)) pairs: a stage ends at the LAST line it accepts.
    """
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env=env)
    lines, samples = [], []

    def read():
        for line in process.stdout:
            lines.append((time.perf_counter() - started, line.rstrip("\n")))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    while True:  # os.wait4, not Popen.poll: the child's own resource usage, unreaped before
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            break
        try:
            with open(f"/proc/{process.pid}/status", encoding="utf-8") as status_file:
                rss = next(int(line.split()[1]) for line in status_file if line.startswith("VmRSS:"))
            samples.append((time.perf_counter() - started, rss / 1024))
        except (OSError, StopIteration):
            pass
        time.sleep(1.0)
    seconds = time.perf_counter() - started
    reader.join(timeout=10)
    peak = usage.ru_maxrss / 1024
    if process.returncode:
        print("\n".join(line for _, line in lines[-30:]))
        raise SystemExit(f"{label}: exit status {process.returncode}")
    ends = {}
    for name, accepts in stages:
        matching = [at for at, line in lines if accepts(line)]
        if matching:
            ends[name] = matching[-1]
    quarter = [f"{rss:.0f}" for _, rss in samples[len(samples) // 4::max(1, len(samples) // 4)]]
    print(f"{label}: {seconds:.0f} s, peak RSS {peak:.0f} MiB (RSS every quarter of the run, "
          f"MiB: {', '.join(quarter)})", flush=True)
    return seconds, peak, ends, lines


def recipe_command(*flags):
    return [sys.executable, "-m", "tfwsar.recipes.tsrnet", *flags]


TRAINING_STAGES = (
    ("training", lambda line: line.startswith("[train_lib] step ")),
    ("selection", lambda line: line.startswith("[train_lib] eval at step ")),
    ("done", lambda line: " done in " in line),
)


def print_stages(seconds, ends):
    previous, rows = 0.0, []
    for name in ("training", "selection", "done"):
        if name in ends:
            rows.append((name, ends[name] - previous))
            previous = ends[name]
    rows.append(("report and exit", seconds - previous))
    names = {"training": "start + training", "selection": "last selection evaluation",
             "done": "test inference, detection, evaluation, export, report"}
    for name, duration in rows:
        print(f"    {names.get(name, name):<55} {duration:7.0f} s")


def fresh(directory):
    """`directory` removed first: a recipe resumes an existing workdir instead of training."""
    shutil.rmtree(directory, ignore_errors=True)
    return str(directory)


def memory(args):
    work = pathlib.Path(args.work)
    default = run_child(recipe_command("--workdir", fresh(work / "runs" / "default")),
                        "default recipe (python -m tfwsar.recipes.tsrnet)", TRAINING_STAGES)
    print_stages(default[0], default[2])
    import bench_training  # pylint: disable=import-outside-toplevel

    from tfwsar.data import synthetic  # pylint: disable=import-outside-toplevel
    data_dir, trimmed_dir = synthetic.ensure_default_dataset(
        synthetic.SyntheticSpec(feature_dim=bench_training.DIM),
        root=work / f"thumos14-{bench_training.DIM}", show_progress=False)
    paper = run_child(recipe_command(
        "--preset", "paper", "--data", str(data_dir), "--trimmed", str(trimmed_dir),
        "--workdir", fresh(work / "runs" / "paper"), "--steps", str(args.paper_steps),
        "--set", f"train.eval_every={args.paper_steps}", "--set", "train.log_every=50"),
        f"paper preset, {args.paper_steps} steps (THUMOS14 lengths, D=1024)", TRAINING_STAGES)
    print_stages(paper[0], paper[2])


def activitynet(args):
    work = pathlib.Path(args.work)
    data_dir = work / f"activitynet-full-{args.dim}"
    if not (data_dir / "manifest.json").exists():
        code = (f"import sys; sys.path.insert(0, {str(REPO / 'benchmarks')!r})\n"
                "from tfwsar import console; console.quiet_terminal()\n"
                "import bench_training_state as b\n"
                "from tfwsar.data import annotations as a\n"
                f"anet = a.read_activitynet_json({str(SHARED / 'activitynet' / 'anet_anno_action.json')!r},"
                f" video_info={str(SHARED / 'activitynet' / 'video_info_new.csv')!r})\n"
                "print(anet.videos['subset'].value_counts().to_dict(), len(anet.instances), flush=True)\n"
                f"b._convert(anet, {args.dim}, {str(data_dir)!r})\n")
        run_child([sys.executable, "-c", code], f"conversion (D={args.dim})")
    import json  # pylint: disable=import-outside-toplevel
    manifest = json.loads((data_dir / "manifest.json").read_text())
    size = sum(path.stat().st_size for path in data_dir.rglob("*.tfrecord"))
    print(f"  {data_dir}: {size / 2**30:.2f} GiB, subsets "
          + ", ".join(f"{name} {entry['videos']} videos / {entry['segments']:,} segments"
                      for name, entry in manifest["subsets"].items()))
    workdir = work / "runs" / f"activitynet-{args.dim}"
    fresh(workdir)
    flags = ("--preset", "activitynet", "--data", str(data_dir), "--variant", "srnet",
             "--workdir", str(workdir), "--steps", str(args.steps),
             "--set", f"train.eval_every={args.steps}", "--set", "train.log_every=50")
    full = run_child(recipe_command(*flags), f"train {args.steps} steps + select + evaluate",
                     TRAINING_STAGES)
    print_stages(full[0], full[2])
    again = run_child(recipe_command(*flags), "the same command again (restore, evaluate only)",
                      TRAINING_STAGES)
    print_stages(again[0], again[2])
    metrics = json.loads((workdir / "metrics.json").read_text())
    print(f"  evaluated {metrics.get('test_videos')} videos; average mAP "
          f"{metrics['detection'].get('average', float('nan')):.4f} (generated features: "
          f"no signal, the number only shows the evaluation ran)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("what", choices=("memory", "activitynet"))
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "tfwsar-bench"))
    parser.add_argument("--paper-steps", type=int, default=200)
    parser.add_argument("--dim", type=int, default=64, help="activitynet: features per stream")
    parser.add_argument("--steps", type=int, default=300, help="activitynet: training steps")
    args = parser.parse_args()
    from tfwsar import console  # pylint: disable=import-outside-toplevel
    console.quiet_terminal()
    {"memory": memory, "activitynet": activitynet}[args.what](args)


if __name__ == "__main__":
    main()

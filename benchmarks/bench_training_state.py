"""Training state against dataset size: checkpoint bytes and seconds, and peak memory of training.

    python benchmarks/bench_training_state.py checkpoint [--dim 2048] [--work DIR]
    python benchmarks/bench_training_state.py memory [--dim 64] [--fraction 1.0] [--steps 200]

`checkpoint`: a THUMOS14-sized dataset (the 200 validation videos, lengths from their real
durations at 1.5625 segments/s, generated `dim`-d features per stream) is converted, then TSRNet's
two stream networks at the paper's widths train a few steps at the paper preset (batch 16, T = 750)
and are checkpointed twice in one process:
  before — the input as tfwsar fed it up to v0.1: a full-dataset `shuffle` whose iterator (buffer
           included) is saved in the checkpoint;
  after  — `pipeline.training_dataset` as a stream function: the input position is the step.
It prints bytes and seconds per checkpoint of both and their ratio.

`memory`: the ActivityNet1.3 training subset from the real annotation file (9,649 videos in
../shared/data; lengths from their durations at 1.5625 segments/s; `fraction` keeps a part) with
generated `dim`-d features, converted, then `steps` training steps of the `activitynet` preset's
shapes (batch 16, T = 200); prints the peak RSS of the training process. Run it with
`--fraction 0.1` and `1.0` to see whether memory grows with the dataset.

Features are generated on the fly per video (seeded), so generation needs no memory for the set.
"""

import argparse
import os
import pathlib
import resource
import shutil
import sys
import tempfile
import time
import zlib

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
RATE = 25.0 / 16.0


class GeneratedFeatures:
    """A feature source (`tfwsar.data.features` interface) of seeded random features per video."""

    def __init__(self, lengths, dim):
        self.lengths, self.dim = dict(lengths), int(dim)

    def videos(self):
        return list(self.lengths)

    def read(self, video):
        random = np.random.default_rng(zlib.crc32(video.encode()))
        length = self.lengths[video]
        return (random.standard_normal((length, self.dim), dtype=np.float32),
                random.standard_normal((length, self.dim), dtype=np.float32))


def _convert(annotations, dim, out):
    from tfwsar.data import records  # pylint: disable=import-outside-toplevel

    lengths = {video: max(1, int(round(duration * RATE)))
               for video, duration in zip(annotations.videos["video"], annotations.videos["duration"])}
    started = time.perf_counter()
    records.write_converted_dataset(out, name=annotations.source, annotations=annotations,
                                    features=GeneratedFeatures(lengths, dim), show_progress=False)
    print(f"converted {len(lengths)} videos, {sum(lengths.values())} segments, D={dim} per stream "
          f"in {time.perf_counter() - started:.0f} s → {out}", flush=True)
    return out


def _models_and_optimizers(strategy, dim, num_classes):
    from tfwsar import train_lib  # pylint: disable=import-outside-toplevel
    from tfwsar.models import tsrnet  # pylint: disable=import-outside-toplevel

    paper = tsrnet.PAPER_HYPERPARAMETERS
    with strategy.scope():
        models = {stream: tsrnet.build_stream_network(
            dim, num_classes, fc1_units=paper.fc1_units, fc2_units=paper.fc2_units,
            attention_units=paper.attention_units, dropout_rate=paper.dropout_rate, name=stream)
            for stream in ("rgb", "flow")}
        optimizers = {stream: train_lib.sgd_with_step_decay(1e-4, 5000, name=f"{stream}_optimizer")
                      for stream in models}
    train_lib.build_optimizers(strategy, [(optimizers[s], models[s].trainable_variables)
                                          for s in models])
    return models, optimizers


def _step_fn(models, optimizers):
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    from tfwsar import losses  # pylint: disable=import-outside-toplevel

    def step_fn(batch):
        results = {}
        for stream, model in models.items():
            with tf.GradientTape() as tape:
                outputs = model({"features": batch[stream], "mask": batch["mask"]}, training=True)
                terms = losses.stream_loss(outputs, batch, variant="srnet", alpha=1.0, beta=0.01,
                                           sparsity_kind="entropy", global_batch_size=16,
                                           num_replicas=1)
            gradients = tape.gradient(terms["total"], model.trainable_variables)
            optimizers[stream].apply_gradients(zip(gradients, model.trainable_variables))
            results[f"{stream}/total"] = terms["total"]
        return results

    return step_fn


def _old_input(data_dir, batch_size, num_segments):
    """The v0.1 training input: every video parsed, a full shuffle buffer, iterator checkpointed."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    from tfwsar.data import pipeline, records  # pylint: disable=import-outside-toplevel

    manifest = records.read_manifest(data_dir)
    files = records.record_paths(data_dir, "validation")
    dataset = tf.data.TFRecordDataset(files).map(pipeline._parser(manifest))  # pylint: disable=protected-access
    dataset = dataset.map(pipeline._drop_subset).repeat().shuffle(len(files), seed=0)  # pylint: disable=protected-access
    seeds = tf.data.Dataset.random(seed=0).batch(2)
    dataset = tf.data.Dataset.zip(dataset, seeds).map(
        lambda example, seed: pipeline._fix_length(example, num_segments, "uniform", seed))  # pylint: disable=protected-access
    return dataset.batch(batch_size, drop_remainder=True).prefetch(2)


def _checkpoint_cost(trainer, step_fn, steps):
    trainer.train(step_fn, steps, log_every=10**9, checkpoint_every=10**9, summary_every=10**9)
    started = time.perf_counter()
    path = trainer.save()
    seconds = time.perf_counter() - started
    size = sum(p.stat().st_size for p in pathlib.Path(path).parent.glob(pathlib.Path(path).name + ".*"))
    return size, seconds


def checkpoint(args):
    from tfwsar import train_lib  # pylint: disable=import-outside-toplevel
    from tfwsar.data import annotations as annotation_io  # pylint: disable=import-outside-toplevel
    from tfwsar.data import pipeline, records  # pylint: disable=import-outside-toplevel

    work = pathlib.Path(args.work or tempfile.mkdtemp(prefix="bench-state-"))
    thumos = annotation_io.read_thumos14_txt(annotation_io.packaged_thumos14_directory(),
                                             video_info=annotation_io.packaged_thumos14_directory()
                                             / "val_video_info.csv")
    thumos = annotation_io.Annotations(
        thumos.classes, thumos.videos[thumos.videos["subset"] == "validation"].reset_index(drop=True),
        thumos.instances[thumos.instances["subset"] == "validation"].reset_index(drop=True),
        thumos.ambiguous.iloc[:0], "thumos14-validation")
    data_dir = work / "data"
    if not (data_dir / "manifest.json").exists():
        _convert(thumos, args.dim, data_dir)
    manifest = records.read_manifest(data_dir)
    data_bytes = sum(path.stat().st_size for path in (data_dir / "validation").glob("*.tfrecord"))
    strategy = train_lib.make_strategy("default")
    results = {}
    for name, dataset in (
            ("before (full shuffle buffer in the iterator)", _old_input(data_dir, 16, 750)),
            ("after (stream function, position = step)",
             lambda first: pipeline.training_dataset(data_dir, ["validation"], num_segments=750,
                                                     batch_size=16, first_batch=first))):
        models, optimizers = _models_and_optimizers(strategy, args.dim, len(manifest["classes"]))
        trainables = {**models, **{f"{s}_optimizer": o for s, o in optimizers.items()}}
        workdir = work / ("before" if name.startswith("before") else "after")
        shutil.rmtree(workdir, ignore_errors=True)
        trainer = train_lib.Trainer(workdir, strategy, dataset, trainables)
        results[name] = _checkpoint_cost(trainer, _step_fn(models, optimizers), args.steps)
        trainer.close()
    print(f"\ntraining data: {data_bytes / 2**20:.0f} MiB in {manifest['subsets']['validation']['videos']}"
          f" videos, D={args.dim} per stream; checkpoint after {args.steps} steps (batch 16, T=750):")
    for name, (size, seconds) in results.items():
        print(f"  {name:<48} {size / 2**20:9.2f} MiB  {seconds:6.2f} s per checkpoint")
    (before_size, before_seconds), (after_size, after_seconds) = results.values()
    print(f"  ratio before/after: {before_size / after_size:.1f}× bytes, "
          f"{before_seconds / max(after_seconds, 1e-9):.1f}× seconds")


def memory(args):
    from tfwsar.data import annotations as annotation_io  # pylint: disable=import-outside-toplevel

    work = pathlib.Path(args.work or tempfile.mkdtemp(prefix="bench-memory-"))
    data_dir = work / f"anet-{args.fraction:g}-{args.dim}"
    if not (data_dir / "manifest.json").exists():
        anet = annotation_io.read_activitynet_json(SHARED / "activitynet" / "anet_anno_action.json",
                                                   video_info=SHARED / "activitynet" / "video_info_new.csv")
        videos = anet.videos[anet.videos["subset"] == "training"]
        videos = videos.sample(frac=args.fraction, random_state=0) if args.fraction < 1 else videos
        kept = set(videos["video"])
        anet = annotation_io.Annotations(
            anet.classes, videos.reset_index(drop=True),
            anet.instances[anet.instances["video"].isin(kept)].reset_index(drop=True),
            anet.ambiguous.iloc[:0], "activitynet-training")
        _convert(anet, args.dim, data_dir)
    # Train in a child process so its peak RSS is the training's alone.
    code = (f"import sys; sys.argv = ['x']; sys.path.insert(0, {str(REPO / 'benchmarks')!r});"
            f"import bench_training_state as b; b._train_only({str(data_dir)!r}, {args.dim}, {args.steps})")
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    status = os.spawnv(os.P_WAIT, sys.executable, [sys.executable, "-c", code])
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if status:
        sys.exit(status)
    data_bytes = sum(path.stat().st_size for path in (data_dir / "training").glob("*.tfrecord"))
    print(f"\nActivityNet1.3 training × {args.fraction:g}: {data_bytes / 2**20:.0f} MiB of features; "
          f"{args.steps} steps (batch 16, T=200) in {time.perf_counter() - started:.0f} s; "
          f"peak RSS of training {peak / 2**10:.0f} MiB" + ("" if peak > before else " (≤ an earlier child)"))


def _train_only(data_dir, dim, steps):
    from tfwsar import train_lib  # pylint: disable=import-outside-toplevel
    from tfwsar.data import pipeline, records  # pylint: disable=import-outside-toplevel

    manifest = records.read_manifest(data_dir)
    strategy = train_lib.make_strategy("default")
    models, optimizers = _models_and_optimizers(strategy, dim, len(manifest["classes"]))
    workdir = tempfile.mkdtemp(prefix="bench-memory-run-")
    trainer = train_lib.Trainer(
        workdir, strategy,
        lambda first: pipeline.training_dataset(data_dir, ["training"], num_segments=200,
                                                batch_size=16, first_batch=first),
        {**models, **{f"{s}_optimizer": o for s, o in optimizers.items()}}, steps_per_execution=10)
    trainer.train(_step_fn(models, optimizers), steps, log_every=max(1, steps // 4),
                  checkpoint_every=max(1, steps // 2), summary_every=10**9)
    trainer.close()
    shutil.rmtree(workdir, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=("checkpoint", "memory"))
    parser.add_argument("--dim", type=int, default=None, help="features per stream")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--fraction", type=float, default=1.0, help="memory: part of the videos")
    parser.add_argument("--work", default=None, help="keep the generated data here (reused)")
    args = parser.parse_args()
    if args.what == "checkpoint":
        args.dim, args.steps = args.dim or 2048, args.steps or 3
        checkpoint(args)
    else:
        args.dim, args.steps = args.dim or 64, args.steps or 200
        memory(args)


if __name__ == "__main__":
    main()

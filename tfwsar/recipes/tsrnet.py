r"""TSRNet (Zhang et al., AAAI 2019): train, select, evaluate, export — one run, top to bottom.

    python -m tfwsar.recipes.tsrnet                       # the embedded default, ~2 minutes on CPU
    python -m tfwsar.recipes.tsrnet --data DIR --trimmed DIR --workdir DIR \
        --variant tsrnet --steps 15000 --preset paper     # a converted THUMOS14 (see recipes/)

Variants (one flag): two_stream (mean pooling, no knowledge transfer), srnet (self-attention, no
transfer), tsrnet (self-attention + MMD transfer from trimmed clips), tsrnet_no_fc2 (transfer on FC1
only). `--variant all` runs the four for the ablation table, each into `workdir/<variant>`.

Each run's workdir ends with metrics.json, predictions.json, saved_model/, TensorBoard event files
(train/, eval/), checkpoints/, selection/ and config.json. Checkpoints are chosen on a validation
part carved from the training videos (never on the test split). `--seeds N` repeats the run with
N seeds (seed k > 0 in `workdir/seed_k`) and writes metrics_seeds.json with mean ± std.
"""

import dataclasses
import os
import sys
import time

from absl import app, flags

from tfwsar import config as config_lib
from tfwsar import experiment

VARIANTS = ("two_stream", "srnet", "tsrnet", "tsrnet_no_fc2")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    data_dir: str = ""  # converted untrimmed dataset; "" = the embedded default
    trimmed_dir: str = ""  # converted trimmed dataset (UCF101 classes of data_dir)
    embedded: str = "thumos14"  # the embedded default used without data_dir: thumos14 | activitynet
    train_subset: str = "validation"  # THUMOS14 trains on its validation videos
    test_subset: str = "test"
    validation_fraction: float = 0.2  # of the training videos, for model selection only
    num_segments: int = 200  # T of training batches
    trimmed_num_segments: int = 16
    sampling: str = "uniform"
    # "fixed": every batch has T = num_segments; "longest": its longest video's T, at most
    # num_segments. sort_window > 0: batches of similar lengths (tfwsar.data.pipeline).
    batch_length: str = "fixed"
    sort_window: int = 0


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    fc1_units: int = 128
    fc2_units: int = 128
    attention_units: int = 64
    dropout_rate: float = 0.2  # Keras drop rate; the paper's "dropout 0.8" read as keep-prob
    alpha: float = 1.0  # smoothness weight α
    beta: float = 0.01  # sparsity weight β
    sparsity_kind: str = "entropy"  # "entropy" | "sigmoid_l1" | "literal" (see tfwsar.losses)
    mmd_segments_per_video: int = 16  # segments per video entering MMD² (bounds its O(N²) cost)


@dataclasses.dataclass(frozen=True)
class TrainConfig(experiment.LoopConfig):
    steps: int = 600
    batch_size: int = 16  # paper
    learning_rate_rgb: float = 0.01
    learning_rate_flow: float = 0.01
    decay_every: int = 400  # paper: ÷10 every 5,000 of its steps
    decay_factor: float = 0.1  # paper
    momentum: float = 0.9  # paper


# The detection settings every method shares (rule "tsrnet": the paper's, on `thresholds`).
DetectionConfig = experiment.DetectionConfig


@dataclasses.dataclass(frozen=True)
class Config:
    variant: str = "tsrnet"
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    detection: DetectionConfig = DetectionConfig()


def get_config(preset="default", data_dir=""):
    """"default": sized for the embedded dataset (2 minutes on 2 CPU cores), with the detection
    rule found best there (`localize.THUMOS14_DETECTION`; the paper's rule: detection.rule=tsrnet).

    "paper": the paper's THUMOS14 settings — batch 16, SGD momentum 0.9, lr 1e-4 (RGB) / 5e-4
    (flow) ÷10 every 5,000 steps, dropout keep 0.8, T = 750 — with our layer widths; a batch is
    as long as its longest video (≤ 750) and batches are of similar lengths (`sort_window` 5).
    "activitynet": ActivityNet1.3: train on "training", test on "validation" (the test labels are
    withheld), tIoU 0.5:0.05:0.95, and the detection rule for long actions
    (`localize.ACTIVITYNET_DETECTION`).
    With a `data_dir` (real data), the "paper" settings with T = 200 (~2-minute videos at 1.5625
    segments/s); without, the embedded ActivityNet default with the "default" schedule, T = 128
    (its videos have 94 segments on average, at most 187).
    """
    from tfwsar import localize  # pylint: disable=import-outside-toplevel

    config = Config()
    if preset == "default":
        return dataclasses.replace(config, detection=dataclasses.replace(
            config.detection, **localize.THUMOS14_DETECTION))
    if preset == "paper":
        from tfwsar.models.tsrnet import PAPER_HYPERPARAMETERS as paper  # pylint: disable=import-outside-toplevel
        return dataclasses.replace(
            config,
            # T = its longest video's, batches of similar lengths: 1.24 computed segments per
            # valid one on THUMOS14's lengths instead of 2.64 (benchmarks/BENCHMARKS.md).
            data=dataclasses.replace(config.data, num_segments=750, trimmed_num_segments=32,
                                     batch_length="longest", sort_window=5),
            model=dataclasses.replace(
                config.model, fc1_units=paper.fc1_units, fc2_units=paper.fc2_units,
                attention_units=paper.attention_units, dropout_rate=paper.dropout_rate,
                mmd_segments_per_video=32),
            train=dataclasses.replace(
                config.train, steps=15000, batch_size=paper.batch_size,
                learning_rate_rgb=paper.learning_rate_rgb,
                learning_rate_flow=paper.learning_rate_flow,
                decay_every=paper.learning_rate_decay_steps,
                decay_factor=paper.learning_rate_decay_factor, momentum=paper.momentum,
                log_every=500, eval_every=1000, checkpoint_every=1000))
    if preset == "activitynet":
        return experiment.activitynet_preset(get_config("paper") if data_dir else config, data_dir)
    raise ValueError(f"unknown preset {preset!r}; expected 'default', 'paper' or 'activitynet'")


FLAGS = flags.FLAGS


def define_flags():
    """Defines the command-line flags, only when run as a program: both recipes have flags of the
    same names, and absl refuses a name defined twice in one process (e.g. the test suite)."""
    flags.DEFINE_string("data", None, "converted untrimmed dataset directory (default: embedded)")
    flags.DEFINE_string("trimmed", None, "converted trimmed (UCF101) dataset directory")
    flags.DEFINE_string("workdir", None, "run directory (default: ./workdir/tsrnet)")
    flags.DEFINE_string("variant", None, f"one of {VARIANTS}, a comma list, or 'all'")
    flags.DEFINE_integer("steps", None, "training steps")
    flags.DEFINE_integer("seeds", 1, "repeat the run with this many seeds (mean ± std)")
    flags.DEFINE_string("preset", "default", "default | paper | activitynet")
    flags.DEFINE_string("profile_steps", None, "start,stop steps to trace with the TF profiler")
    flags.DEFINE_string("strategy", None, "auto | default | mirrored | multi_worker")
    flags.DEFINE_integer("logical_cpus", 0, "split the CPU into N logical devices (try multi-replica)")
    flags.DEFINE_float("validation_fraction", None, "training videos held out for model selection")
    flags.DEFINE_multi_string("set", [], "override any setting: --set train.batch_size=8")


def config_from_flags():
    config = get_config(FLAGS.preset, data_dir=FLAGS.data or "")
    assignments = []
    for flag, key in (("data", "data.data_dir"), ("trimmed", "data.trimmed_dir"),
                      ("steps", "train.steps"), ("profile_steps", "train.profile_steps"),
                      ("strategy", "train.strategy"),
                      ("validation_fraction", "data.validation_fraction")):
        if getattr(FLAGS, flag) is not None:
            assignments.append(f"{key}={getattr(FLAGS, flag)}")
    return config_lib.override(config, assignments + FLAGS.set)


def make_step_fn(config, models, optimizers, num_replicas):
    """`step_fn(element) -> {"<stream>/<term>": scalar}` for `train_lib.Trainer`: one TSRNet step.

    On this replica's share of the global batch: L = L_SA + L_KT per stream (`losses.stream_loss`,
    per-example terms over the global `config.train.batch_size`, the MMD² divided by
    `num_replicas`), each stream's gradients applied by its own optimizer. `element` is the
    untrimmed batch, or (untrimmed batch, trimmed batch) for the knowledge-transfer variants.
    """
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    from tfwsar import losses  # pylint: disable=import-outside-toplevel

    transfer = config.variant in losses.KNOWLEDGE_TRANSFER_VARIANTS

    def step_fn(element):
        batch, trimmed_batch = element if transfer else (element, None)
        results = {}
        for stream, model in models.items():
            with tf.GradientTape() as tape:
                outputs = model({"features": batch[stream], "mask": batch["mask"]}, training=True)
                trimmed_outputs = None
                if transfer:
                    trimmed_outputs = model(
                        {"features": trimmed_batch[stream], "mask": trimmed_batch["mask"]},
                        training=True)
                terms = losses.stream_loss(
                    outputs, batch, variant=config.variant, alpha=config.model.alpha,
                    beta=config.model.beta, sparsity_kind=config.model.sparsity_kind,
                    global_batch_size=config.train.batch_size, num_replicas=num_replicas,
                    trimmed_outputs=trimmed_outputs, trimmed_batch=trimmed_batch,
                    mmd_segments_per_video=config.model.mmd_segments_per_video)
            variables = model.trainable_variables
            gradients = tape.gradient(terms["total"], variables)
            optimizers[stream].apply_gradients(zip(gradients, variables))
            results.update({f"{stream}/{name}": value for name, value in terms.items()})
        return results

    return step_fn


def run(config, workdir):
    """Trains one variant with one seed into `workdir`; returns its metrics document."""
    # Heavy imports here, not at module import (no import-time work).
    from tfwsar import evaluation, export, inference, localize, train_lib
    from tfwsar.data import pipeline, records, synthetic
    from tfwsar.errors import DataError
    from tfwsar.models import tsrnet

    started = time.time()
    # ---- Data: the converted dataset (or the embedded default), a held-out part for selection.
    # Checked before anything is written: bad input leaves no workdir behind.
    data_dir, trimmed_dir = config.data.data_dir, config.data.trimmed_dir
    if not data_dir:
        data_dir, default_trimmed = synthetic.ensure_embedded_dataset(config.data.embedded)
        trimmed_dir = trimmed_dir or str(default_trimmed)
    manifest = records.read_manifest(data_dir)
    classes, feature_rate = manifest["classes"], manifest["feature_rate"]
    transfer = config.variant in ("tsrnet", "tsrnet_no_fc2")
    if transfer and not trimmed_dir:
        raise DataError(f"variant {config.variant} transfers from trimmed clips: give --trimmed "
                        f"(a UCF101 dataset converted with --classes-of {data_dir})")
    if transfer and records.read_manifest(trimmed_dir)["classes"] != classes:
        raise DataError(f"{trimmed_dir}: classes differ from {data_dir}'s; convert it with "
                        f"--classes-of {data_dir}")

    if config.train.deterministic:
        train_lib.enable_determinism(config.train.seed)
    strategy = train_lib.make_strategy(config.train.strategy)
    # Only the chief writes `workdir`; any other worker a temporary copy, removed when it exits.
    workdir = train_lib.worker_workdir(strategy, workdir)
    os.makedirs(workdir, exist_ok=True)
    config_lib.write_json(config, os.path.join(workdir, "config.json"))
    train_videos, selection_videos = inference.split_training_videos(
        data_dir, config.data.train_subset, config.data.validation_fraction, config.train.seed)

    def training_batches(first_batch):
        """The training stream from batch `first_batch` on (the Trainer passes its step)."""
        untrimmed = pipeline.training_dataset(
            data_dir, [config.data.train_subset], num_segments=config.data.num_segments,
            batch_size=config.train.batch_size, seed=config.train.seed, videos=train_videos,
            sampling=config.data.sampling, first_batch=first_batch,
            batch_length=config.data.batch_length, sort_window=config.data.sort_window)
        if not transfer:
            return untrimmed
        trimmed = pipeline.training_dataset(
            trimmed_dir, ["training"], num_segments=config.data.trimmed_num_segments,
            batch_size=config.train.batch_size, seed=config.train.seed + 1,
            first_batch=first_batch)
        return pipeline.paired_dataset(untrimmed, trimmed)

    print(f"[tsrnet] {config.variant}: {len(train_videos)} training videos, "
          f"{len(selection_videos)} held out for selection, {len(classes)} classes, "
          f"{strategy.num_replicas_in_sync} replicas, data {data_dir}", file=sys.stderr)

    # ---- Model: one network and one optimizer per stream (own learning rates).
    streams = inference.STREAMS
    learning_rates = {"rgb": config.train.learning_rate_rgb, "flow": config.train.learning_rate_flow}
    with strategy.scope():
        models = {stream: tsrnet.build_stream_network(
            manifest["feature_dims"][stream], len(classes), fc1_units=config.model.fc1_units,
            fc2_units=config.model.fc2_units, attention_units=config.model.attention_units,
            dropout_rate=config.model.dropout_rate,
            pooling=tsrnet.pooling_for_variant(config.variant), name=stream)
            for stream in streams}
        optimizers = {stream: train_lib.sgd_with_step_decay(
            learning_rates[stream], config.train.decay_every, config.train.decay_factor,
            config.train.momentum, name=f"{stream}_optimizer") for stream in streams}
    train_lib.build_optimizers(
        strategy, [(optimizers[s], models[s].trainable_variables) for s in streams])
    trainer = train_lib.Trainer(
        workdir, strategy, training_batches, {**models, **{f"{s}_optimizer": o for s, o in optimizers.items()}},
        steps_per_execution=config.train.steps_per_execution)
    resumed = trainer.restore_or_initialize()
    trainer.write_text("config", config_lib.to_json(config))

    step_fn = make_step_fn(config, models, optimizers, strategy.num_replicas_in_sync)

    # ---- Model selection on the held-out training videos (video-level labels only).
    selection = inference.BestWeights(workdir, models, metric="fused classification mAP")

    select = inference.selection_evaluator(models, selection, data_dir, config.data.train_subset,
                                           selection_videos, config.detection.theta)
    profile = None
    if config.train.profile_steps:
        profile = tuple(int(v) for v in config.train.profile_steps.split(","))
    trainer.train(step_fn, config.train.steps, log_every=config.train.log_every,
                  checkpoint_every=config.train.checkpoint_every,
                  summary_every=min(100, config.train.log_every), profile_steps=profile,
                  eval_fn=select if selection_videos else None,
                  eval_every=config.train.eval_every if selection_videos else None)
    chosen = selection.restore()

    # ---- Evaluation on the test split, once, with the chosen weights.
    settings = experiment.detection_settings(config.detection)
    test_outputs = inference.predict_videos(models, data_dir, config.data.test_subset)
    predictions = localize.predictions_to_activitynet(
        inference.detect_videos(test_outputs, settings, feature_rate), classes)

    # ---- Predictions and the SavedModel first: a failed evaluation loses no trained model.
    localize.write_predictions(os.path.join(workdir, "predictions.json"), predictions)
    export.export_two_stream(models, os.path.join(workdir, "saved_model"),
                             feature_dims=manifest["feature_dims"], classes=classes,
                             feature_rate=feature_rate, settings=settings)

    excluded = (evaluation.THUMOS14_BAD_TEST_VIDEOS
                if config.detection.drop_bad_test_videos else ())

    def evaluate():
        ground_truth = evaluation.load_ground_truth(
            os.path.join(data_dir, "ground_truth.json"), config.data.test_subset)
        by_rule = inference.detection_by_rule(
            test_outputs, ground_truth, settings, config.detection.other_rules,
            feature_rate=feature_rate, classes=classes, protocol=config.detection.protocol,
            exclude_videos=excluded)
        return ground_truth, inference.score_test_split(
            test_outputs, predictions, ground_truth, theta=config.detection.theta,
            protocol=config.detection.protocol, exclude_videos=excluded,
            extra={"variant": config.variant, "seed": config.train.seed, "selection": chosen,
                   "resumed": bool(resumed), "detection_rule": config.detection.rule,
                   "detection_by_rule": by_rule})

    ground_truth, metrics = inference.evaluate_written_run(
        evaluate, workdir=workdir, data_dir=data_dir, subset=config.data.test_subset,
        protocol=config.detection.protocol)

    # ---- metrics.json, attention vs ground truth of a few held-out videos, the run report.
    timelines = (inference.attention_timelines(models, data_dir, config.data.train_subset,
                                               selection_videos[:4], feature_rate)
                 if selection_videos else {})
    experiment.write_results(workdir, trainer, metrics,
                             (test_outputs, predictions, ground_truth, classes, feature_rate),
                             timelines)
    print(f"[tsrnet] {config.variant} seed {config.train.seed}: done in {time.time() - started:.0f} s"
          f" → {workdir}", file=sys.stderr)
    return metrics


def main(argv):
    del argv
    if FLAGS.logical_cpus:
        from tfwsar import train_lib  # pylint: disable=import-outside-toplevel
        train_lib.use_logical_cpus(FLAGS.logical_cpus)
    base = config_from_flags()
    variants = VARIANTS if FLAGS.variant == "all" else tuple(
        (FLAGS.variant or base.variant).split(","))
    for variant in variants:
        if variant not in VARIANTS:
            raise app.UsageError(f"--variant {variant}: expected one of {VARIANTS} or 'all'")
    root = FLAGS.workdir or os.path.join("workdir", "tsrnet")
    from tfwsar import reporting  # pylint: disable=import-outside-toplevel
    from tfwsar.errors import DataError  # pylint: disable=import-outside-toplevel
    from tfwsar.train_lib import ClusterError  # pylint: disable=import-outside-toplevel

    rows = []
    for variant in variants:
        variant_dir = root if len(variants) == 1 else os.path.join(root, variant)
        per_seed = []
        for seed_index in range(FLAGS.seeds):
            config = dataclasses.replace(
                base, variant=variant,
                train=dataclasses.replace(base.train, seed=base.train.seed + seed_index))
            seed_dir = variant_dir if seed_index == 0 else os.path.join(variant_dir, f"seed_{seed_index}")
            try:
                per_seed.append(run(config, seed_dir))
            except (DataError, ClusterError) as error:  # one line, no traceback
                print(f"error: {error}", file=sys.stderr)
                sys.exit(1)
        if FLAGS.seeds > 1:
            reporting.write_json(os.path.join(variant_dir, "metrics_seeds.json"),
                                 reporting.seeds_summary(per_seed))
        rows.append((variant if FLAGS.seeds == 1 else f"{variant} (seed {base.train.seed})",
                     per_seed[0]))
    thumos = base.detection.protocol == "thumos14"
    print()
    print(reporting.run_summary(
        rows, data_dir=base.data.data_dir, root=root,
        contents="metrics.json, predictions.json, saved_model/, checkpoints/, selection/, "
                 "train/ + eval/ (TensorBoard), config.json",
        paper_classification=reporting.PAPER_THUMOS14_CLASSIFICATION if thumos else None,
        paper_detection=(reporting.PAPER_THUMOS14_DETECTION if thumos
                         else reporting.PAPER_ACTIVITYNET_DETECTION)))


if __name__ == "__main__":
    from tfwsar import console  # pylint: disable=import-outside-toplevel
    define_flags()
    console.run(main)  # absl.app.run with a quiet terminal

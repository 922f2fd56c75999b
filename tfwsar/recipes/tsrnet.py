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

from absl import app, flags

from tfwsar import experiment

VARIANTS = ("two_stream", "srnet", "tsrnet", "tsrnet_no_fc2")


@dataclasses.dataclass(frozen=True)
class DataConfig(experiment.DataConfig):
    """The shared data settings (`experiment.DataConfig`) and the trimmed clips of the transfer."""

    trimmed_dir: str = ""  # converted trimmed dataset (UCF101 classes of data_dir)
    trimmed_num_segments: int = 16


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
    """The command-line flags (`experiment.define_flags` and TSRNet's own), only when run as a
    program."""
    experiment.define_flags("tsrnet")
    flags.DEFINE_string("trimmed", None, "converted trimmed (UCF101) dataset directory")
    flags.DEFINE_string("variant", None, f"one of {VARIANTS}, a comma list, or 'all'")


def run(config, workdir):
    """Trains one variant with one seed into `workdir`; returns its metrics document."""
    # Heavy imports here, not at module import (no import-time work).
    from tfwsar import export, inference, losses
    from tfwsar.data import pipeline, records
    from tfwsar.errors import DataError
    from tfwsar.methods import tsrnet
    from tfwsar.models.tsrnet import pooling_for_variant

    # ---- Data: the converted dataset (or the embedded default) and, for the transfer, trimmed
    # clips of the same classes. Checked before anything is written: bad input leaves no workdir.
    data = experiment.open_data(config.data)
    trimmed_dir = config.data.trimmed_dir or data.trimmed_directory
    transfer = config.variant in losses.KNOWLEDGE_TRANSFER_VARIANTS
    if transfer and not trimmed_dir:
        raise DataError(f"variant {config.variant} transfers from trimmed clips: give --trimmed "
                        f"(a UCF101 dataset converted with --classes-of {data.directory})")
    if transfer and records.read_manifest(trimmed_dir)["classes"] != data.classes:
        raise DataError(f"{trimmed_dir}: classes differ from {data.directory}'s; convert it with "
                        f"--classes-of {data.directory}")
    context = experiment.start_run(config, workdir, data, label=f"tsrnet {config.variant}")
    untrimmed_batches = experiment.training_batches(config, data, context)

    def training_batches(first_batch):
        """The training stream from batch `first_batch` on: untrimmed, or (untrimmed, trimmed)."""
        if not transfer:
            return untrimmed_batches(first_batch)
        trimmed = pipeline.training_dataset(
            trimmed_dir, ["training"], num_segments=config.data.trimmed_num_segments,
            batch_size=config.train.batch_size, seed=config.train.seed + 1,
            first_batch=first_batch)
        return pipeline.paired_dataset(untrimmed_batches(first_batch), trimmed)

    # ---- Model: one network and one SGD per stream (own learning rates); the TSRNet step.
    with context.strategy.scope():
        models = tsrnet.build_networks(data.feature_dims, len(data.classes), config.model,
                                       pooling=pooling_for_variant(config.variant))
        optimizers = tsrnet.build_optimizers(config.train)
    trainer, resumed = experiment.make_trainer(config, context, training_batches, models,
                                               optimizers)
    step_fn = tsrnet.make_step_fn(config, models, optimizers,
                                  context.strategy.num_replicas_in_sync)

    # ---- Training with model selection on the held-out training videos (video-level labels).
    chosen = experiment.train_with_selection(config, data, context, trainer, step_fn, models)

    # ---- The test split with the chosen weights: predictions.json and the SavedModel, then
    # metrics.json; attention against ground truth of a few held-out videos; report.html.
    test_outputs = inference.predict_videos(models, data.directory, config.data.test_subset)
    timelines = (inference.attention_timelines(models, data.directory, config.data.train_subset,
                                               context.selection_videos[:4], data.feature_rate)
                 if context.selection_videos else {})
    return experiment.finish_run(
        config, data, context, trainer, test_outputs,
        export=lambda path, settings: export.export_two_stream(
            models, path, feature_dims=data.feature_dims, classes=data.classes,
            feature_rate=data.feature_rate, settings=settings),
        extra={"variant": config.variant, "seed": config.train.seed, "selection": chosen,
               "resumed": bool(resumed), "detection_rule": config.detection.rule},
        timelines=timelines)


def main(argv):
    del argv
    from tfwsar import reporting  # pylint: disable=import-outside-toplevel

    base = experiment.config_from_flags(get_config, (("trimmed", "data.trimmed_dir"),))
    variants = VARIANTS if FLAGS.variant == "all" else tuple(
        (FLAGS.variant or base.variant).split(","))
    for variant in variants:
        if variant not in VARIANTS:
            raise app.UsageError(f"--variant {variant}: expected one of {VARIANTS} or 'all'")
    root = FLAGS.workdir or os.path.join("workdir", "tsrnet")
    rows = []
    for variant in variants:
        variant_dir = root if len(variants) == 1 else os.path.join(root, variant)
        per_seed = experiment.run_seeds(
            lambda config, workdir, variant=variant: run(
                dataclasses.replace(config, variant=variant), workdir), base, variant_dir)
        rows.append((variant if FLAGS.seeds == 1 else f"{variant} (seed {base.train.seed})",
                     per_seed[0]))
    thumos = base.detection.protocol == "thumos14"
    experiment.print_summary(
        base, root, rows,
        "metrics.json, predictions.json, saved_model/, checkpoints/, selection/, "
        "train/ + eval/ (TensorBoard), config.json, report.html",
        paper_classification=reporting.PAPER_THUMOS14_CLASSIFICATION if thumos else None,
        paper_detection=(reporting.PAPER_THUMOS14_DETECTION if thumos
                         else reporting.PAPER_ACTIVITYNET_DETECTION))


if __name__ == "__main__":
    from tfwsar import console  # pylint: disable=import-outside-toplevel
    define_flags()
    console.run(main)  # absl.app.run with a quiet terminal

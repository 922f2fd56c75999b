"""One run of any method module, top to bottom: data → train → select → test → export → report.

A method module (`tfwsar/methods/<name>.py`) is the unit of a method: its networks, their
optimizers, its training step and what it produces for a video. It provides

    PAPER                                   the citation line
    ModelConfig                             a frozen dataclass: its model and loss settings
    PAPER_TRAINING                          the paper's optimiser settings (a dict)
    build_networks(feature_dims, num_classes, config) -> {name: keras.Model}   (built)
    build_optimizers(config, learning_rate, weight_decay) -> {name: optimizer}  (same names)
    make_step_fn(networks, optimizers, config, *, global_batch_size, num_replicas) -> step_fn
    video_outputs(networks, batch) -> {"class_scores" [B, C], "cas" [B, T, C],
                                       "attention" [B, T] (optional)}

and `run(method, config, workdir)` does everything else the same way for every method: the
converted data (or the embedded default), the held-out training videos that choose the checkpoint,
the one training loop (`train_lib`), the test-split detections by a named rule of
`tfwsar.localize` (`config.detection.rule`; a method's own published rule or the shared ones),
predictions.json and the SavedModel BEFORE evaluation (a failed evaluation loses no model),
metrics.json, TensorBoard and report.html. The workdir is the same contract as TSRNet's.

Recipes (`tfwsar/recipes/wtalc.py`, ...) are a preset (`get_config`) and `main`.
"""

import dataclasses
import os
import sys
import time

from absl import flags

from tfwsar import config as config_lib


@dataclasses.dataclass(frozen=True)
class DataConfig:
    data_dir: str = ""  # converted dataset; "" = the embedded default named by `embedded`
    embedded: str = "thumos14"  # thumos14 | activitynet (tfwsar.data.synthetic)
    train_subset: str = "validation"  # THUMOS14 trains on its validation videos
    test_subset: str = "test"
    validation_fraction: float = 0.2  # of the training videos, for model selection only
    num_segments: int = 200  # T of training batches
    sampling: str = "uniform"
    similar_pairs: int = 0  # batches start with this many same-class pairs (W-TALC)


@dataclasses.dataclass(frozen=True)
class LoopConfig:
    """The settings of the training loop every method shares (`train_lib`); each recipe's
    `TrainConfig` extends it with its optimiser's."""

    seed: int = 0
    deterministic: bool = True
    strategy: str = "auto"  # auto | default | mirrored | multi_worker
    steps_per_execution: int = 10
    log_every: int = 100
    eval_every: int = 100
    checkpoint_every: int = 200
    profile_steps: str = ""  # "start,stop" global steps to trace with the TF profiler


@dataclasses.dataclass(frozen=True)
class TrainConfig(LoopConfig):
    steps: int = 600
    batch_size: int = 16
    learning_rate: float = 1e-4
    weight_decay: float = 0.0


@dataclasses.dataclass(frozen=True)
class DetectionConfig:
    """The detection rule and its settings (`tfwsar.inference.DetectionSettings`)."""

    rule: str = "tsrnet"  # tfwsar.localize.RULES
    theta: float = 0.5  # θ of the stream fusion (methods with two streams)
    thresholds: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)  # rule "tsrnet"
    relative_thresholds: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    smoothing: int = 1  # segments of the moving average (sequence rules)
    max_gap: int = 0  # segments (sequence rules)
    class_threshold: float = 0.1
    top_k: int = 2
    nms_tiou: float = 0.6
    drop_bad_test_videos: bool = False  # THUMOS14 test 0000270 / 0001496 (known-wrong labels)
    protocol: str = "thumos14"  # thumos14: tIoU 0.1…0.9 | activitynet: 0.5:0.05:0.95
    other_rules: tuple[str, ...] = ()  # also scored, into metrics.json "detection_by_rule"


def make_config_class(model_config_class):
    """The run configuration of a method: data, its `ModelConfig`, train, detection."""

    @dataclasses.dataclass(frozen=True)
    class Config:
        method: str = ""
        data: DataConfig = DataConfig()
        model: model_config_class = model_config_class()
        train: TrainConfig = TrainConfig()
        detection: DetectionConfig = DetectionConfig()

    return Config


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A method recipe (`python -m tfwsar.recipes.<name>`): the method module and its defaults.

    Attributes:
      method: the method module. name: its recipe name (workdir, logs).
      rule: its detection rule (its paper's own where tfwsar.localize has it).
      similar_pairs: same-class pairs at the start of every batch (W-TALC).
      paper_detection: the paper's THUMOS14 mAP row ({"0.1": fraction, ...}) printed beside ours.
      learning_rate: Adam's rate for the embedded default (sized for minutes of CPU; the "paper"
        preset takes the paper's).
      embedded_model: `ModelConfig` settings for the embedded data (no `data_dir`, not "paper"):
        e.g. narrower layers where the paper's are sized for 2048-d I3D features; real data and
        the "paper" preset keep the paper's model.
    """

    method: object
    name: str
    rule: str
    similar_pairs: int = 0
    paper_detection: dict = None
    learning_rate: float = 1e-3
    embedded_model: dict = None

    def get_config(self, preset="default", data_dir=""):
        """The run configuration for `preset` ("default", "paper", "activitynet": `preset_config`)."""
        model = self.method.ModelConfig()
        if not data_dir and preset != "paper":
            model = dataclasses.replace(model, **(self.embedded_model or {}))
        config = make_config_class(self.method.ModelConfig)(
            method=self.name, data=DataConfig(similar_pairs=self.similar_pairs), model=model,
            train=TrainConfig(learning_rate=self.learning_rate),
            detection=DetectionConfig(rule=self.rule))
        return preset_config(config, self.method.PAPER_TRAINING, preset, data_dir)

    def run(self, config, workdir):
        """One seed into `workdir`; returns its metrics document."""
        return run(self.method, config, workdir)

    def main(self):
        """The recipe's command line: flags, a quiet terminal, `main`."""
        from tfwsar import console  # pylint: disable=import-outside-toplevel

        define_flags(self.name)
        console.run(main(self.method, self.get_config, self.name, self.paper_detection))


def preset_config(config, paper_training, preset, data_dir=""):
    """A method's run configuration for a preset.

    "default": `config` as given, sized for the embedded THUMOS14-shaped default (minutes on CPU).
    "paper": the method paper's training settings (`paper_training`: optimizer, learning_rate,
    weight_decay, batch_size, num_segments, steps, similar_pairs) on THUMOS14.
    "activitynet": ActivityNet1.3 (train on "training", test on "validation", tIoU 0.5:0.05:0.95,
    the long-action detection rule `localize.ACTIVITYNET_DETECTION`); with a `data_dir` the
    "paper" settings with T = 200, without it the embedded ActivityNet default, T = 128.
    """
    if preset == "default":
        return config
    if preset == "paper":
        train = dataclasses.replace(
            config.train, steps=paper_training["steps"], batch_size=paper_training["batch_size"],
            learning_rate=paper_training["learning_rate"],
            weight_decay=paper_training.get("weight_decay", 0.0), log_every=500, eval_every=1000,
            checkpoint_every=1000)
        data = dataclasses.replace(config.data, num_segments=paper_training["num_segments"],
                                   similar_pairs=paper_training.get("similar_pairs", 0))
        return dataclasses.replace(config, train=train, data=data)
    if preset == "activitynet":
        return activitynet_preset(
            preset_config(config, paper_training, "paper") if data_dir else config, data_dir)
    raise ValueError(f"unknown preset {preset!r}; expected 'default', 'paper' or 'activitynet'")


def activitynet_preset(config, data_dir=""):
    """`config` on ActivityNet1.3: train on "training", test on "validation" (its test labels
    are withheld), tIoU 0.5:0.05:0.95, the long-action rule `localize.ACTIVITYNET_DETECTION`, and
    T = 200 on real data (`data_dir`) or the embedded ActivityNet default with T = 128."""
    from tfwsar import localize  # pylint: disable=import-outside-toplevel

    data = dataclasses.replace(config.data, embedded="activitynet", train_subset="training",
                               test_subset="validation", num_segments=200 if data_dir else 128)
    return dataclasses.replace(config, data=data, detection=dataclasses.replace(
        config.detection, protocol="activitynet", **localize.ACTIVITYNET_DETECTION))


def write_results(workdir, trainer, metrics, report_data, timelines=None):
    """The end of every run: metrics.json, TensorBoard `attention/<video>` images from
    `timelines` ({video: RGB image}), the trainer closed, report.html.

    `report_data`: (test outputs, predictions, ground truth, classes, feature rate).
    """
    from tfwsar import reporting, run_report  # pylint: disable=import-outside-toplevel

    reporting.write_json(os.path.join(workdir, "metrics.json"), metrics)
    for video, image in (timelines or {}).items():
        trainer.write_image(f"attention/{video}", image, step=int(trainer.step.numpy()))
    trainer.close()
    run_report.save_report_data(workdir, *report_data)
    run_report.write_report(workdir)


def detection_settings(detection):
    """`DetectionConfig` → `inference.DetectionSettings`."""
    from tfwsar import inference  # pylint: disable=import-outside-toplevel

    return inference.DetectionSettings(
        theta=detection.theta, thresholds=tuple(detection.thresholds),
        class_threshold=detection.class_threshold, top_k=detection.top_k,
        nms_tiou=detection.nms_tiou, rule=detection.rule,
        relative_thresholds=tuple(detection.relative_thresholds), smoothing=detection.smoothing,
        max_gap=detection.max_gap)


def run(method, config, workdir):
    """Trains `method` (a module, see the module docstring) with `config` into `workdir`.

    Returns:
      the metrics.json document.
    """
    # Heavy imports here, not at module import (no import-time work).
    import tensorflow as tf

    from tfwsar import evaluation, export, inference, localize, train_lib
    from tfwsar.data import pipeline, records, synthetic

    started = time.time()
    name = config.method
    # ---- Data: checked before anything is written (bad input leaves no workdir behind).
    data_dir = config.data.data_dir or str(synthetic.ensure_embedded_dataset(config.data.embedded)[0])
    manifest = records.read_manifest(data_dir)
    classes, feature_rate = manifest["classes"], manifest["feature_rate"]
    ground_truth_path = os.path.join(data_dir, "ground_truth.json")
    evaluation.load_ground_truth(ground_truth_path, config.data.test_subset)

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
        return pipeline.training_dataset(
            data_dir, [config.data.train_subset], num_segments=config.data.num_segments,
            batch_size=config.train.batch_size, seed=config.train.seed, videos=train_videos,
            sampling=config.data.sampling, similar_pairs=config.data.similar_pairs,
            first_batch=first_batch)

    print(f"[{name}] {len(train_videos)} training videos, {len(selection_videos)} held out for "
          f"selection, {len(classes)} classes, {strategy.num_replicas_in_sync} replicas, "
          f"data {data_dir}", file=sys.stderr)

    # ---- Model: the method's networks and optimizers.
    with strategy.scope():
        networks = method.build_networks(manifest["feature_dims"], len(classes), config.model)
        optimizers = method.build_optimizers(config.model, config.train.learning_rate,
                                             config.train.weight_decay)
    train_lib.build_optimizers(
        strategy, [(optimizers[key], networks[key].trainable_variables) for key in networks])
    trainer = train_lib.Trainer(
        workdir, strategy, training_batches,
        {**networks, **{f"{key}_optimizer": optimizer for key, optimizer in optimizers.items()}},
        steps_per_execution=config.train.steps_per_execution)
    resumed = trainer.restore_or_initialize()
    trainer.write_text("config", config_lib.to_json(config))
    step_fn = method.make_step_fn(networks, optimizers, config.model,
                                  global_batch_size=config.train.batch_size,
                                  num_replicas=strategy.num_replicas_in_sync)

    # ---- Training, with model selection on the held-out training videos (labels only).
    def predict(subset, videos=None):
        return inference.predict_method_videos(method, networks, data_dir, subset, videos=videos)

    selection = inference.BestWeights(workdir, networks, metric="fused classification mAP")
    select = inference.selection_evaluator(networks, selection, data_dir, config.data.train_subset,
                                           selection_videos, config.detection.theta,
                                           predict=predict)
    profile = (tuple(int(v) for v in config.train.profile_steps.split(","))
               if config.train.profile_steps else None)
    trainer.train(step_fn, config.train.steps, log_every=config.train.log_every,
                  checkpoint_every=config.train.checkpoint_every,
                  summary_every=min(100, config.train.log_every), profile_steps=profile,
                  eval_fn=select if selection_videos else None,
                  eval_every=config.train.eval_every if selection_videos else None)
    chosen = selection.restore()

    # ---- Test split: detections, then predictions.json and the SavedModel, then evaluation.
    settings = detection_settings(config.detection)
    test_outputs = predict(config.data.test_subset)
    predictions = localize.predictions_to_activitynet(
        inference.detect_videos(test_outputs, settings, feature_rate), classes)
    localize.write_predictions(os.path.join(workdir, "predictions.json"), predictions)
    export.export_method(method, networks, os.path.join(workdir, "saved_model"),
                         feature_dims=manifest["feature_dims"], classes=classes,
                         feature_rate=feature_rate)

    excluded = (evaluation.THUMOS14_BAD_TEST_VIDEOS
                if config.detection.drop_bad_test_videos else ())

    def evaluate():
        ground_truth = evaluation.load_ground_truth(ground_truth_path, config.data.test_subset)
        by_rule = inference.detection_by_rule(
            test_outputs, ground_truth, settings, config.detection.other_rules,
            feature_rate=feature_rate, classes=classes, protocol=config.detection.protocol,
            exclude_videos=excluded)
        return ground_truth, inference.score_test_split(
            test_outputs, predictions, ground_truth, theta=config.detection.theta,
            protocol=config.detection.protocol, exclude_videos=excluded,
            extra={"method": name, "seed": config.train.seed, "selection": chosen,
                   "resumed": bool(resumed), "detection_rule": config.detection.rule,
                   "detection_by_rule": by_rule})

    ground_truth, metrics = inference.evaluate_written_run(
        evaluate, workdir=workdir, data_dir=data_dir, subset=config.data.test_subset,
        protocol=config.detection.protocol)
    write_results(workdir, trainer, metrics,
                  (test_outputs, predictions, ground_truth, classes, feature_rate))
    print(f"[{name}] seed {config.train.seed}: done in {time.time() - started:.0f} s → {workdir}",
          file=sys.stderr)
    del tf
    return metrics


# ---------------------------------------------------------------------------------------------
# The command line shared by the method recipes


FLAGS = flags.FLAGS


def define_flags(name):
    """The flags of `python -m tfwsar.recipes.<name>` (defined only when run as a program)."""
    flags.DEFINE_string("data", None, "converted dataset directory (default: embedded)")
    flags.DEFINE_string("workdir", None, f"run directory (default: ./workdir/{name})")
    flags.DEFINE_integer("steps", None, "training steps")
    flags.DEFINE_integer("seeds", 1, "repeat the run with this many seeds (mean ± std)")
    flags.DEFINE_string("preset", "default", "default | paper | activitynet")
    flags.DEFINE_string("rule", None, "detection rule (tfwsar.localize.RULES)")
    flags.DEFINE_string("profile_steps", None, "start,stop steps to trace with the TF profiler")
    flags.DEFINE_string("strategy", None, "auto | default | mirrored | multi_worker")
    flags.DEFINE_integer("logical_cpus", 0, "split the CPU into N logical devices (try multi-replica)")
    flags.DEFINE_float("validation_fraction", None, "training videos held out for model selection")
    flags.DEFINE_multi_string("set", [], "override any setting: --set train.batch_size=8")


def main(method, get_config, name, paper_detection=None):
    """`main(argv)` of a method recipe: flags → config → `run` per seed → the printed tables.

    `paper_detection`: the paper's THUMOS14 mAP row ({"0.1": %, ...}) printed beside ours.
    """

    def recipe_main(argv):
        del argv
        from tfwsar import reporting, train_lib  # pylint: disable=import-outside-toplevel
        from tfwsar.errors import DataError  # pylint: disable=import-outside-toplevel

        if FLAGS.logical_cpus:
            train_lib.use_logical_cpus(FLAGS.logical_cpus)
        base = get_config(FLAGS.preset, data_dir=FLAGS.data or "")
        assignments = [f"{key}={getattr(FLAGS, flag)}" for flag, key in (
            ("data", "data.data_dir"), ("steps", "train.steps"), ("rule", "detection.rule"),
            ("profile_steps", "train.profile_steps"), ("strategy", "train.strategy"),
            ("validation_fraction", "data.validation_fraction")) if getattr(FLAGS, flag) is not None]
        base = config_lib.override(base, assignments + FLAGS.set)
        root = FLAGS.workdir or os.path.join("workdir", name)
        per_seed = []
        for seed_index in range(FLAGS.seeds):
            config = dataclasses.replace(base, train=dataclasses.replace(
                base.train, seed=base.train.seed + seed_index))
            seed_dir = root if seed_index == 0 else os.path.join(root, f"seed_{seed_index}")
            try:
                per_seed.append(run(method, config, seed_dir))
            except (DataError, train_lib.ClusterError) as error:  # one line, no traceback
                print(f"error: {error}", file=sys.stderr)
                sys.exit(1)
        if FLAGS.seeds > 1:
            reporting.write_json(os.path.join(root, "metrics_seeds.json"),
                                 reporting.seeds_summary(per_seed))
        thumos = base.detection.protocol == "thumos14"
        print()
        print(reporting.run_summary(
            [(name if FLAGS.seeds == 1 else f"{name} (seed {base.train.seed})", per_seed[0])],
            data_dir=base.data.data_dir, root=root,
            contents="metrics.json, predictions.json, saved_model/, checkpoints/, selection/, "
                     "train/ + eval/ (TensorBoard), config.json, report.html",
            paper_classification=None, paper_detection=paper_detection if thumos else None,
            paper_name=f"paper {name} (THUMOS14, real)"))

    return recipe_main

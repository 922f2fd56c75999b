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

`run` is six phases that every recipe's run calls in the same order, so that a method that does
not fit the interface above still shares everything around its own part:

    open_data            the converted dataset (or the embedded default), checked before writing
    start_run            determinism, strategy, workdir (chief only), config.json, held-out split
    training_batches     the training stream as a function of the first batch (resumable)
    make_trainer         `train_lib.Trainer` over the networks, their optimizers and other state
    train_with_selection training, checkpoints chosen on the held-out training videos
    finish_run           detections → predictions.json → SavedModel → metrics.json → report.html

TSRNet (`tfwsar/methods/tsrnet.py`: its two stream networks, their SGD, its step) adds a paired
trimmed stream to the training batches; convex clustering (`tfwsar/recipes/convex_clustering.py`)
runs its visible alternation — train, collect D, fit Q, train with L_cc — between `make_trainer`
and its own end, and builds TSRNet's stream networks.
"""

import dataclasses
import os
import sys
import time

from absl import app, flags

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
    # "fixed": every batch has T = num_segments; "longest": its longest video's T, at most
    # num_segments. sort_window > 0: batches of similar lengths (tfwsar.data.pipeline).
    batch_length: str = "fixed"
    sort_window: int = 0


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


# ---------------------------------------------------------------------------------------------
# The phases of a run. Every recipe's `run` calls them in this order: open_data → start_run →
# (its networks) → make_trainer → train_with_selection → (its test outputs) → finish_run.


@dataclasses.dataclass(frozen=True)
class Data:
    """A run's converted dataset (`open_data`), read and checked before anything is written.

    Attributes:
      directory: the converted dataset. trimmed_directory: the embedded default's trimmed clips
        ("" for real data: the recipe's own setting says where they are).
      classes, feature_rate, feature_dims: from its manifest.
      test_ground_truth: the test subset's `evaluation.GroundTruth`.
    """

    directory: str
    trimmed_directory: str
    classes: list
    feature_rate: float
    feature_dims: dict
    test_ground_truth: object


@dataclasses.dataclass(frozen=True)
class RunContext:
    """A started run (`start_run`): where it writes and which training videos it learns from.

    Attributes:
      label: the name in its log lines. strategy: the `tf.distribute` strategy.
      workdir: the directory this process writes (the chief's, else a temporary copy).
      train_videos, selection_videos: the training subset split for model selection.
      started: `time.time()` at the start.
    """

    label: str
    strategy: object
    workdir: str
    train_videos: list
    selection_videos: list
    started: float


def open_data(data_config):
    """The converted dataset of `data_config` (a `DataConfig`), or the embedded default it names.

    Reads the manifest and the test subset's ground truth (once, for the run's evaluation), so bad
    input is one error before the workdir exists.
    """
    from tfwsar import evaluation  # pylint: disable=import-outside-toplevel
    from tfwsar.data import records, synthetic  # pylint: disable=import-outside-toplevel

    directory, trimmed_directory = data_config.data_dir, ""
    if not directory:
        directory, trimmed_directory = (
            str(path) for path in synthetic.ensure_embedded_dataset(data_config.embedded))
    manifest = records.read_manifest(directory)
    test_ground_truth = evaluation.load_ground_truth(
        os.path.join(directory, "ground_truth.json"), data_config.test_subset)
    return Data(directory=directory, trimmed_directory=trimmed_directory,
                classes=manifest["classes"], feature_rate=manifest["feature_rate"],
                feature_dims=manifest["feature_dims"], test_ground_truth=test_ground_truth)


def start_run(config, workdir, data, label):
    """The start of every run: seeded determinism, the distribution strategy, the workdir (only
    the chief writes `workdir`; any other worker a temporary copy, removed when it exits),
    config.json, and the held-out training videos that choose the checkpoint. Returns a
    `RunContext`."""
    from tfwsar import inference, train_lib  # pylint: disable=import-outside-toplevel

    started = time.time()
    if config.train.deterministic:
        train_lib.enable_determinism(config.train.seed)
    strategy = train_lib.make_strategy(config.train.strategy)
    workdir = train_lib.worker_workdir(strategy, workdir)
    os.makedirs(workdir, exist_ok=True)
    config_lib.write_json(config, os.path.join(workdir, "config.json"))
    train_videos, selection_videos = inference.split_training_videos(
        data.directory, config.data.train_subset, config.data.validation_fraction,
        config.train.seed)
    print(f"[{label}] {len(train_videos)} training videos, {len(selection_videos)} held out for "
          f"selection, {len(data.classes)} classes, {strategy.num_replicas_in_sync} replicas, "
          f"data {data.directory}", file=sys.stderr)
    return RunContext(label=label, strategy=strategy, workdir=workdir, train_videos=train_videos,
               selection_videos=selection_videos, started=started)


def training_batches(config, data, context):
    """`batches(first_batch)`: the run's training stream from batch `first_batch` on (the Trainer
    passes its step): `config.data`'s subset, T, sampling, pairs and batch lengths, the run's
    training videos, `config.train`'s batch size and seed (`pipeline.training_dataset`)."""
    from tfwsar.data import pipeline  # pylint: disable=import-outside-toplevel

    def batches(first_batch):
        return pipeline.training_dataset(
            data.directory, [config.data.train_subset], num_segments=config.data.num_segments,
            batch_size=config.train.batch_size, seed=config.train.seed,
            videos=context.train_videos,
            sampling=config.data.sampling, similar_pairs=config.data.similar_pairs,
            first_batch=first_batch, batch_length=config.data.batch_length,
            sort_window=config.data.sort_window)

    return batches


def make_trainer(config, context, batches, networks, optimizers, state=None):
    """The `train_lib.Trainer` of `networks` (optimizer `optimizers[name]` per network) and any
    other checkpointed `state` ({name: variable}), restored from the workdir's last checkpoint.

    Returns:
      (trainer, resumed): `resumed` is true when a checkpoint was restored.
    """
    from tfwsar import train_lib  # pylint: disable=import-outside-toplevel

    train_lib.build_optimizers(
        context.strategy,
        [(optimizers[name], networks[name].trainable_variables) for name in networks])
    trainer = train_lib.Trainer(
        context.workdir, context.strategy, batches,
        {**networks, **{f"{name}_optimizer": optimizer for name, optimizer in optimizers.items()},
         **(state or {})},
        steps_per_execution=config.train.steps_per_execution)
    resumed = trainer.restore_or_initialize()
    trainer.write_text("config", config_lib.to_json(config))
    return trainer, resumed


def train_with_selection(config, data, context, trainer, step_fn, networks, *, predict=None,
                         end_step=None, selection_dir=None, on_log=None):
    """Trains to `end_step` (default `config.train.steps`), offering the weights every
    `eval_every` steps to a model selection on the held-out training videos (video-level labels
    only; `inference.BestWeights` in `selection_dir`, default the workdir), then restores the best.

    `predict(subset, videos=...) -> [VideoOutputs]` runs the method (default: two stream networks,
    `inference.predict_videos`).

    Returns:
      the selection record ({"step", "score", "metric"}), or None without held-out videos.
    """
    from tfwsar import inference  # pylint: disable=import-outside-toplevel

    selection = inference.BestWeights(selection_dir or context.workdir, networks,
                                      metric="fused classification mAP")
    select = inference.selection_evaluator(networks, selection, data.directory,
                                           config.data.train_subset, context.selection_videos,
                                           config.detection.theta, predict=predict)
    profile = (tuple(int(v) for v in config.train.profile_steps.split(","))
               if config.train.profile_steps else None)
    trainer.train(step_fn, end_step or config.train.steps, log_every=config.train.log_every,
                  checkpoint_every=config.train.checkpoint_every,
                  summary_every=min(100, config.train.log_every), on_log=on_log,
                  profile_steps=profile, eval_fn=select if context.selection_videos else None,
                  eval_every=config.train.eval_every if context.selection_videos else None)
    return selection.restore()


def finish_run(config, data, context, trainer, test_outputs, *, export, extra, timelines=None):
    """The end of a run: the test videos' detections by `config.detection.rule`, predictions.json
    and the SavedModel (`export(path, settings)`) BEFORE evaluation (a failed evaluation loses no
    model: `inference.evaluate_written_run`), the metrics with `extra` and every rule of
    `config.detection.other_rules`, metrics.json, the `timelines` images, report.html.

    Returns:
      the metrics.json document.
    """
    from tfwsar import evaluation, inference, localize  # pylint: disable=import-outside-toplevel

    settings = detection_settings(config.detection)
    predictions = localize.predictions_to_activitynet(
        inference.detect_videos(test_outputs, settings, data.feature_rate), data.classes)
    localize.write_predictions(os.path.join(context.workdir, "predictions.json"), predictions)
    export(os.path.join(context.workdir, "saved_model"), settings)

    excluded = (evaluation.THUMOS14_BAD_TEST_VIDEOS
                if config.detection.drop_bad_test_videos else ())

    def evaluate():
        by_rule = inference.detection_by_rule(
            test_outputs, data.test_ground_truth, settings, config.detection.other_rules,
            feature_rate=data.feature_rate, classes=data.classes,
            protocol=config.detection.protocol, exclude_videos=excluded)
        return inference.score_test_split(
            test_outputs, predictions, data.test_ground_truth, theta=config.detection.theta,
            protocol=config.detection.protocol, exclude_videos=excluded,
            extra={**extra, "detection_by_rule": by_rule})

    metrics = inference.evaluate_written_run(
        evaluate, workdir=context.workdir, data_dir=data.directory, subset=config.data.test_subset,
        protocol=config.detection.protocol)
    write_results(context.workdir, trainer, metrics,
                  (test_outputs, predictions, data.test_ground_truth, data.classes,
                   data.feature_rate),
                  timelines)
    elapsed = time.time() - context.started
    print(f"[{context.label}] seed {config.train.seed}: done in {elapsed:.0f} s → {context.workdir}",
          file=sys.stderr)
    return metrics


def run(method, config, workdir):
    """Trains `method` (a module, see the module docstring) with `config` into `workdir`.

    Returns:
      the metrics.json document.
    """
    from tfwsar import export, inference  # pylint: disable=import-outside-toplevel

    data = open_data(config.data)
    context = start_run(config, workdir, data, label=config.method)

    # ---- Model: the method's networks and optimizers.
    with context.strategy.scope():
        networks = method.build_networks(data.feature_dims, len(data.classes), config.model)
        optimizers = method.build_optimizers(config.model, config.train.learning_rate,
                                             config.train.weight_decay)
    trainer, resumed = make_trainer(config, context, training_batches(config, data, context),
                                    networks, optimizers)
    step_fn = method.make_step_fn(networks, optimizers, config.model,
                                  global_batch_size=config.train.batch_size,
                                  num_replicas=context.strategy.num_replicas_in_sync)

    # ---- Training with model selection on the held-out training videos, then the test split.
    def predict(subset, videos=None):
        return inference.predict_method_videos(method, networks, data.directory, subset,
                                               videos=videos)

    chosen = train_with_selection(config, data, context, trainer, step_fn, networks,
                                  predict=predict)
    return finish_run(
        config, data, context, trainer, predict(config.data.test_subset),
        export=lambda path, settings: export.export_method(
            method, networks, path, feature_dims=data.feature_dims, classes=data.classes,
            feature_rate=data.feature_rate),
        extra={"method": config.method, "seed": config.train.seed, "selection": chosen,
               "resumed": bool(resumed), "detection_rule": config.detection.rule})


# ---------------------------------------------------------------------------------------------
# The command line shared by the method recipes


FLAGS = flags.FLAGS

# Flags every recipe has that set one configuration key: (flag, key).
FLAG_KEYS = (("data", "data.data_dir"), ("steps", "train.steps"), ("rule", "detection.rule"),
             ("profile_steps", "train.profile_steps"), ("strategy", "train.strategy"),
             ("validation_fraction", "data.validation_fraction"))


def define_flags(name, presets="default | paper | activitynet", steps_help="training steps"):
    """The flags every `python -m tfwsar.recipes.<name>` has (defined only when run as a program:
    absl refuses a name defined twice in one process, e.g. the test suite). A recipe defines its
    own on top (TSRNet's --variant, convex clustering's --rounds)."""
    flags.DEFINE_string("data", None, "converted dataset directory (default: embedded)")
    flags.DEFINE_string("workdir", None, f"run directory (default: ./workdir/{name})")
    flags.DEFINE_integer("steps", None, steps_help)
    flags.DEFINE_integer("seeds", 1, "repeat the run with this many seeds (mean ± std)")
    flags.DEFINE_string("preset", "default", presets)
    flags.DEFINE_string("rule", None, "detection rule (tfwsar.localize.RULES)")
    flags.DEFINE_string("profile_steps", None, "start,stop steps to trace with the TF profiler")
    flags.DEFINE_string("strategy", None, "auto | default | mirrored | multi_worker")
    flags.DEFINE_integer("logical_cpus", 0, "split the CPU into N logical devices (try multi-replica)")
    flags.DEFINE_float("validation_fraction", None, "training videos held out for model selection")
    flags.DEFINE_multi_string("set", [], "override any setting: --set train.batch_size=8")


def config_from_flags(get_config, flag_keys=()):
    """`get_config(--preset, data_dir=--data)` with every given flag of `FLAG_KEYS + flag_keys`
    and every `--set key=value` applied (`config.override`). Also splits the CPU into
    --logical_cpus devices, which must happen before TensorFlow uses it."""
    if FLAGS.logical_cpus:
        from tfwsar import train_lib  # pylint: disable=import-outside-toplevel

        train_lib.use_logical_cpus(FLAGS.logical_cpus)
    assignments = [f"{key}={getattr(FLAGS, flag)}" for flag, key in FLAG_KEYS + tuple(flag_keys)
                   if getattr(FLAGS, flag) is not None]
    try:
        return config_lib.override(get_config(FLAGS.preset, data_dir=FLAGS.data or ""),
                                   assignments + FLAGS.set)
    except ValueError as error:  # an unknown preset or key, a value that does not parse
        raise app.UsageError(str(error)) from None


def run_seeds(run_fn, base, root):
    """`run_fn(config, workdir)` for seeds base.train.seed, +1, … (`--seeds`): seed k > 0 into
    `root/seed_k`; with several, metrics_seeds.json (mean ± std) in `root`. A data or cluster error
    is one line and exit status 1.

    Returns:
      the metrics documents, one per seed.
    """
    from tfwsar import reporting, train_lib  # pylint: disable=import-outside-toplevel
    from tfwsar.errors import DataError  # pylint: disable=import-outside-toplevel

    per_seed = []
    for seed_index in range(FLAGS.seeds):
        config = dataclasses.replace(base, train=dataclasses.replace(
            base.train, seed=base.train.seed + seed_index))
        seed_dir = root if seed_index == 0 else os.path.join(root, f"seed_{seed_index}")
        try:
            per_seed.append(run_fn(config, seed_dir))
        except (DataError, train_lib.ClusterError) as error:  # one line, no traceback
            print(f"error: {error}", file=sys.stderr)
            sys.exit(1)
    if FLAGS.seeds > 1 and is_chief(base):
        reporting.write_json(os.path.join(root, "metrics_seeds.json"),
                             reporting.seeds_summary(per_seed))
    return per_seed


def is_chief(config):
    """False in a non-chief worker of a multi-worker run (it writes no run files, prints no
    summary: the chief's workdir holds the run)."""
    from tfwsar import train_lib  # pylint: disable=import-outside-toplevel

    return train_lib.is_chief(train_lib.make_strategy(config.train.strategy))


def print_summary(base, root, rows, contents, **paper_rows):
    """The end of a recipe's command: the paper-shaped tables of `rows` ([(name, metrics)]) and
    where everything is (`reporting.run_summary`; a non-chief worker says the chief has it)."""
    from tfwsar import reporting  # pylint: disable=import-outside-toplevel

    print()
    print(reporting.run_summary(rows, data_dir=base.data.data_dir, root=root, contents=contents,
                                chief=is_chief(base), **paper_rows))


def main(method, get_config, name, paper_detection=None):
    """`main(argv)` of a method recipe: flags → config → `run` per seed → the printed tables.

    `paper_detection`: the paper's THUMOS14 mAP row ({"0.1": %, ...}) printed beside ours.
    """

    def recipe_main(argv):
        del argv
        base = config_from_flags(get_config)
        root = FLAGS.workdir or os.path.join("workdir", name)
        per_seed = run_seeds(lambda config, workdir: run(method, config, workdir), base, root)
        thumos = base.detection.protocol == "thumos14"
        print_summary(
            base, root, [(name if FLAGS.seeds == 1 else f"{name} (seed {base.train.seed})",
                          per_seed[0])],
            "metrics.json, predictions.json, saved_model/, checkpoints/, selection/, "
            "train/ + eval/ (TensorBoard), config.json, report.html",
            paper_classification=None, paper_detection=paper_detection if thumos else None,
            paper_name=f"paper {name} (THUMOS14, real)")

    return recipe_main

"""The one custom training loop that every method feeds a `step_fn`.

A method supplies `step_fn(batch) -> dict[str, scalar tensor]`. It runs once per replica, on the
replica's share of a global batch. It computes the losses, takes their gradients and applies them
with its own optimizer(s). TSRNet has two streams, each with its own optimizer and learning rate.
This module does the rest:

* picks the `tf.distribute` strategy (`make_strategy`), and can split the CPU into logical devices
  so that multi-replica training can be tried on a laptop (`use_logical_cpus`);
* builds the Keras optimizers inside the strategy scope before the first step (`build_optimizers`);
* runs `strategy.run(step_fn, ...)` inside one `tf.function`, optionally several steps per call and
  optionally with XLA. It SUMs the outputs across replicas and returns numpy floats to the host;
* saves and restores checkpoints in `workdir/checkpoints`: models, optimizers, the Keras dropout
  seed states (which `tf.train.Checkpoint` misses on its own), the tf.data iterator, and the
  `step`, `round` and `phase` counters;
* writes TensorBoard summaries to `workdir/train`, evaluation results to `workdir/eval`, logs one
  line every `log_every` steps, and can profile a window of steps.

How the global batch and the replicas fit together
--------------------------------------------------
The dataset given to `Trainer` yields GLOBAL batches: a recipe that trains with batch 16 batches by
16, whatever the number of replicas. Inside the compiled step, replica r of n gets rows
`[r*B//n, (r+1)*B//n)` of every batched tensor in the element, so each replica sees B/n examples.
In a nested element such as `(untrimmed_batch, trimmed_batch)`, each tensor is cut along its own
first dimension. Rank-0 tensors go to every replica unchanged. After each replica has applied its
gradients, the optimizer SUMs the gradients across replicas (Keras does this in `apply_gradients`).
For those summed gradients to equal the gradient of the global-batch loss, `step_fn` must scale
its losses as follows:

* a per-example term (one value per video, e.g. the classification loss) is averaged over the
  GLOBAL batch: `tf.nn.compute_average_loss(per_example_loss)`. This divides the replica's sum by
  `per_replica_batch * num_replicas`. Pass `global_batch_size=` if replicas can get unequal
  shares, i.e. when B is not divisible by n;
* a batch-level term, computed once from the replica's whole share (e.g. an MMD between the
  trimmed and untrimmed features, or a weight penalty), is divided by the number of replicas:
  `tf.nn.scale_regularization_loss(term)` or `term / ctx.num_replicas_in_sync`. Summed over
  replicas, this gives the mean of the per-replica values. For a weight penalty that is the term
  itself. For an MMD it is the mean of n per-shard estimates, which is not the MMD of the whole
  batch;
* a scalar that goes to the logs is scaled the same way. The loop SUMS every value `step_fn`
  returns across replicas, so the logged value is the global-batch value. (A raw per-replica mean
  would come out n times too large.) Learning rates need no scaling and should not be returned:
  the loop reads them from the optimizers it was given and writes them as `learning_rate/<key>`.

With one replica (the default strategy) all of this reduces to the ordinary single-device loss.

In Keras 3.15 under MirroredStrategy, a Dropout layer draws the SAME mask on every replica: its
seed state is one mirrored variable, and the replica id is not mixed into it. The rows differ from
replica to replica, so training is still correct, but the masks of different replicas are
correlated. A model for which this matters can fold
`tf.distribute.get_replica_context().replica_id_in_sync_group` into its own dropout seed.

The input position: a step, not an iterator
-------------------------------------------
`Trainer` takes either a function `dataset_fn(first_batch) -> tf.data.Dataset` or a dataset.

* A function (what the recipes pass, built on `tfwsar.data.pipeline.training_dataset`): the
  stream is a pure function of the seed, so the Trainer builds it at the current step when training
  starts or a checkpoint is restored, and nothing of the input goes into the checkpoint. Its size
  is the models' and optimizers' state, whatever the number or length of the videos.
* A dataset: its iterator is checkpointed with the rest. That is exact, but a `shuffle` buffer,
  prefetched and in-flight batches are part of the iterator's state, so the checkpoint grows with
  the buffer (a full shuffle puts the whole training set in every checkpoint). Fine for small
  in-memory data and tests; use a function for real datasets.

The loop iterates with a plain iterator on the host and cuts the global batch per replica itself
(above), not with `strategy.experimental_distribute_dataset`, whose `DistributedIterator` TF 2.17's
`tf.train.Checkpoint` rejects (tensorflow/tensorflow#56372). Under MultiWorkerMirroredStrategy every
worker runs the same seeded pipeline, reads the same global batch and keeps its replicas' rows.
This reads the input once per worker, which costs little for precomputed video features.

Several workers: who writes, and a lost worker
----------------------------------------------
Every worker runs the same recipe; only the chief's files are the run's. A recipe writes into
`worker_workdir(strategy, workdir)`: the chief's `workdir`, or for another worker a temporary
copy of it that is removed at exit (so all workers restore the chief's checkpoint), and
`is_chief(strategy)` tells the two apart. `Trainer.restore_or_initialize` checks that every worker
starts from the same step. When a worker dies, the coordination service's heartbeat timeout
aborts the collectives of the others, and `train` raises `ClusterError` naming the checkpoint
to resume from instead of hanging.

Phases (the convex-clustering alternation) without a second loop
----------------------------------------------------------------
`Trainer.train(step_fn, num_steps)` trains until the GLOBAL step reaches `num_steps`. If the step
is already there, it does nothing. A recipe therefore writes its schedule as one visible loop,
and a restarted run skips the parts already done::

    trainer = train_lib.Trainer(workdir, strategy, dataset,
                                {"model": model, "optimizer": optimizer, "q": q_variable})
    trainer.restore_or_initialize()
    trainer.train(plain_step, num_steps=warmup_steps)                  # (1) no L_cc
    while int(trainer.round.numpy()) < num_rounds:
        if int(trainer.phase.numpy()) == 0:
            database = collect_database(model, videos)                    # (2) no gradients
            q_variable.assign(fit_representativeness(database))           # (3) on the host
            trainer.phase.assign(1)
            trainer.save()
        round_index = int(trainer.round.numpy())
        trainer.train(clustering_step, num_steps=warmup_steps + (round_index + 1) * round_steps)
        trainer.round.assign_add(1)                                       # (4) done: next round
        trainer.phase.assign(0)
        trainer.save()

`q_variable` is a non-trainable `tf.Variable` created in `strategy.scope()`. Assigning it between
calls does not retrace the compiled step, because the step reads the variable and does not
capture its value.
"""

import atexit
import dataclasses
import glob
import json
import math
import os
import shutil
import sys
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf
import tqdm

CHECKPOINT_DIRECTORY = "checkpoints"
TRAIN_SUMMARY_DIRECTORY = "train"
EVAL_SUMMARY_DIRECTORY = "eval"
_RESERVED_CHECKPOINT_KEYS = ("step", "round", "phase", "iterator", "keras_seed_states")


# --------------------------------------------------------------------------------------------
# Devices, strategies, determinism
# --------------------------------------------------------------------------------------------


def use_logical_cpus(num_devices):
    """Splits the first physical CPU into `num_devices` logical CPU devices.

    With several logical CPUs, `make_strategy("auto")` returns a MirroredStrategy over them, so
    multi-replica training (batch cutting, gradient summing) can be tried without GPUs. The CPU
    cores are shared, so this is no faster. Call it before anything touches TF devices, i.e.
    before creating a tensor, a variable, a dataset or a strategy. After that TF refuses to
    change the device configuration.

    Args:
      num_devices: number of logical CPU devices (>= 1).

    Raises:
      RuntimeError: TF has already set up its devices with a different number of logical CPUs.
    """
    if num_devices < 1:
        raise ValueError(f"use_logical_cpus needs num_devices >= 1, got {num_devices}")
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(num_devices)])
    except RuntimeError as error:
        current = len(tf.config.list_logical_devices("CPU"))
        if current == num_devices:
            return
        raise RuntimeError(
            f"use_logical_cpus({num_devices}) must run before TensorFlow initialises its devices "
            f"(it already has {current} logical CPU device(s)); call it first thing in main(), "
            f"before building a dataset, a model or a strategy") from error


def make_strategy(kind="auto"):
    """Returns the `tf.distribute.Strategy` to train with.

    Args:
      kind: "auto" picks MultiWorkerMirroredStrategy when the TF_CONFIG environment variable is
        set, MirroredStrategy when several GPUs are visible (or, without GPUs, several logical
        CPUs, see `use_logical_cpus`), else the default single-device strategy.
        "default", "mirrored" and "multi_worker" force one of these. "mirrored" mirrors over all
        GPUs, or over all logical CPUs when there is no GPU.

    Returns:
      A strategy. `strategy.num_replicas_in_sync` is the number of replicas. A process gets one
      MirroredStrategy per device list and one MultiWorkerMirroredStrategy: asked again (the
      next variant or seed of a recipe), the same object comes back. A second MirroredStrategy
      over the same devices restarts the collective instance keys, and its first all-reduce then
      meets the previous strategy's state for that key ("Shape mismatch in the collective
      instance" as soon as the models differ; measured with TF 2.17.1).
    """
    if kind not in ("auto", "default", "mirrored", "multi_worker"):
        raise ValueError(
            f"unknown strategy kind {kind!r}; expected auto, default, mirrored or multi_worker")
    if kind == "auto":
        if os.environ.get("TF_CONFIG"):
            kind = "multi_worker"
        elif len(_mirrored_devices()) > 1:
            kind = "mirrored"
        else:
            kind = "default"
    if kind == "multi_worker":
        key = (kind, os.environ.get("TF_CONFIG", ""))
        if key not in _STRATEGIES:
            _STRATEGIES[key] = tf.distribute.MultiWorkerMirroredStrategy()
        return _STRATEGIES[key]
    if kind == "mirrored":
        key = (kind, tuple(_mirrored_devices()))
        if key not in _STRATEGIES:
            _STRATEGIES[key] = tf.distribute.MirroredStrategy(devices=list(key[1]))
        return _STRATEGIES[key]
    return tf.distribute.get_strategy()


_STRATEGIES = {}  # (kind, devices or TF_CONFIG) -> the process's strategy (see make_strategy)


def _mirrored_devices():
    """Names of the logical GPUs, or of the logical CPUs when there is no GPU."""
    gpus = tf.config.list_logical_devices("GPU")
    if gpus:
        return [device.name for device in gpus]
    return [device.name for device in tf.config.list_logical_devices("CPU")]


WORKER_DIRECTORY_PREFIX = "tfwsar-worker-"
_NOT_COPIED_TO_WORKERS = (TRAIN_SUMMARY_DIRECTORY, EVAL_SUMMARY_DIRECTORY)


def worker_workdir(strategy, workdir):
    """The directory this process writes its run into: `workdir` on the chief, else a private copy.

    Under MultiWorkerMirroredStrategy every worker runs the whole recipe (the same code path, so
    the same collectives in the same order), but only the chief's files are the run's. A non-chief
    worker gets a temporary directory, `$TMPDIR/tfwsar-worker-<pid>-*`, removed when the process
    exits (after an error too); its checkpoints, summaries, model selection, metrics,
    predictions, SavedModel and reports go there. A worker killed outright (SIGKILL) cannot remove
    its own: the next call on that host removes those of processes that no longer exist.

    Resuming: the temporary directory starts as a copy of `workdir` as it is at this moment (its
    checkpoints and model selection; not the TensorBoard event files), so every worker restores
    the chief's last checkpoint and chooses from the same selection record. This needs the chief's
    `workdir` readable at the same path on every worker — one host, a shared filesystem, or a copy
    made before restarting; `Trainer.restore_or_initialize` refuses to go on when workers restored
    different steps. The copy is taken before this worker joins any collective, and the chief
    writes nothing of its state until every worker has joined the first training step, so the
    copy is consistent.

    Returns:
      `workdir` (single process, chief) or the temporary directory's path (other workers).
    """
    if is_chief(strategy):
        return os.fspath(workdir)
    _remove_directories_of_dead_workers()
    temporary = tempfile.mkdtemp(prefix=f"{WORKER_DIRECTORY_PREFIX}{os.getpid()}-")
    atexit.register(shutil.rmtree, temporary, ignore_errors=True)
    if os.path.isdir(workdir):
        _copy_present_files(workdir, temporary, skip=_NOT_COPIED_TO_WORKERS)
    return temporary


def _remove_directories_of_dead_workers():
    for path in glob.glob(os.path.join(tempfile.gettempdir(), f"{WORKER_DIRECTORY_PREFIX}*-*")):
        pid = os.path.basename(path)[len(WORKER_DIRECTORY_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and not _process_exists(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def _process_exists(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _copy_present_files(source, destination, skip=()):
    """Copies the tree `source` into `destination`, except top-level `skip`; a file that vanishes
    meanwhile (an atomic write's temporary) is left out."""
    for root, directories, names in os.walk(source):
        if root == source:
            directories[:] = [name for name in directories if name not in skip]
        target = os.path.join(destination, os.path.relpath(root, source))
        os.makedirs(target, exist_ok=True)
        for name in names:
            try:
                shutil.copy2(os.path.join(root, name), os.path.join(target, name))
            except FileNotFoundError:
                continue


def _num_workers(strategy):
    """Number of worker processes (chief included) of a multi-worker strategy; 1 otherwise."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return 1
    cluster = resolver.cluster_spec().as_dict()
    return sum(len(cluster.get(job, ())) for job in ("chief", "worker"))


def enable_determinism(seed):
    """Makes training repeatable: seeds Python, NumPy, TF and Keras, and makes TF ops deterministic.

    Calls `keras.utils.set_random_seed(seed)` and `tf.config.experimental.enable_op_determinism()`.
    Deterministic ops can be slower, and a few ops (some GPU scatter kernels) then raise
    instead of running. A tf.data shuffle without its own seed draws from the global seed set here.
    """
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


# --------------------------------------------------------------------------------------------
# Optimizers
# --------------------------------------------------------------------------------------------


def sgd_with_step_decay(learning_rate, decay_every, factor=0.1, momentum=0.9, name=None):
    """SGD with momentum whose learning rate drops by `factor` every `decay_every` updates.

    TSRNet setting: momentum 0.9, lr ÷10 every 5,000 iterations (1e-4 RGB, 5e-4 flow):
    `lr(i) = learning_rate · factor^floor(i / decay_every)`, with i = `optimizer.iterations`
    (the number of updates already applied). Create it inside `strategy.scope()`.

    Args:
      learning_rate: initial learning rate.
      decay_every: number of updates between drops.
      factor: multiplier applied at each drop (0.1 = divide by 10).
      momentum: SGD momentum.
      name: optimizer name (distinguishes two optimizers in checkpoints and logs).

    Returns:
      A `keras.optimizers.SGD` with a staircase `ExponentialDecay` schedule.
    """
    schedule = keras.optimizers.schedules.ExponentialDecay(
        initial_learning_rate=learning_rate, decay_steps=decay_every, decay_rate=factor,
        staircase=True)
    kwargs = {"name": name} if name else {}
    return keras.optimizers.SGD(learning_rate=schedule, momentum=momentum, **kwargs)


def build_optimizers(strategy, pairs):
    """Creates every optimizer's slot variables inside the strategy scope, before the first step.

    Keras 3 creates optimizer slots lazily in the first `apply_gradients`. Under MirroredStrategy
    that first call inside `tf.function` fails ("You must feed a value for placeholder tensor
    'cond/...'"). Building the optimizers up front avoids this. It also means the slots exist
    when a checkpoint is restored, so the restore has something to fill.

    Args:
      strategy: the training strategy.
      pairs: iterable of `(optimizer, variables)`, e.g.
        `[(rgb_optimizer, rgb_model.trainable_variables), (flow_optimizer, ...)]`.

    Raises:
      ValueError: an optimizer was created outside `strategy.scope()`, so its variables are not
        mirrored. Create optimizers inside the scope.
    """
    with strategy.scope():
        for optimizer, variables in pairs:
            if not strategy.extended.variable_created_in_scope(_tf_variable(optimizer.iterations)):
                raise ValueError(
                    f"optimizer {optimizer.name!r} was created outside strategy.scope(); create "
                    f"models, optimizers and variables inside `with strategy.scope():`")
            if not optimizer.built:
                optimizer.build(list(variables))


def _tf_variable(variable):
    """The tf.Variable under a Keras variable (or the variable itself)."""
    return getattr(variable, "value", variable) if isinstance(variable, keras.Variable) else variable


# --------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Window:
    """Means of the step outputs over the steps since the last log (or summary) line."""

    totals: dict = dataclasses.field(default_factory=dict)
    steps: int = 0
    started: float = dataclasses.field(default_factory=time.perf_counter)

    def add(self, means, num_steps):
        for key, value in means.items():
            self.totals[key] = self.totals.get(key, 0.0) + value * num_steps
        self.steps += num_steps

    def means(self):
        return {key: total / self.steps for key, total in self.totals.items()}

    def steps_per_second(self):
        return self.steps / max(time.perf_counter() - self.started, 1e-9)


class Trainer:
    """Training state (checkpointed) plus the loop that advances it.

    Attributes:
      step: int64 `tf.Variable`, the number of training steps done so far (global, over all
        `train` calls and restarts).
      round: int64 `tf.Variable` for methods that alternate phases (convex clustering's rounds).
      phase: int64 `tf.Variable`, the phase within a round. The loop never changes `round` or
        `phase`: recipes `assign` them and call `save()`.
      iterator: the iterator over the training batches (see the `dataset` argument).
      strategy, workdir, num_replicas.

    Args:
      workdir: run directory. Checkpoints go to `workdir/checkpoints`, summaries to
        `workdir/train` (and `workdir/eval`).
      strategy: from `make_strategy`. Models, optimizers and variables must have been created in
        `strategy.scope()`.
      dataset: GLOBAL batches, as `dataset_fn(first_batch) -> tf.data.Dataset` (the stream from
        batch `first_batch` on; the Trainer calls it with the step it starts from and checkpoints
        nothing of the input) or as a `tf.data.Dataset` (its iterator is checkpointed, with any
        shuffle buffer in it; see the module docstring). Repeat it and batch with
        `drop_remainder=True`. Under multi-worker training every worker must produce the same
        batches (seed the shuffle).
      trackables: dict name -> anything `tf.train.Checkpoint` accepts (Keras models and
        optimizers, tf.Variables). Models must be built and optimizers built (`build_optimizers`)
        so that their variables exist when a checkpoint is restored.
      steps_per_execution: number of steps per compiled call. More steps per call means fewer
        host round trips. Logging, summaries and checkpoints still fall on their exact steps,
        because calls are cut short at those boundaries.
      jit_compile: compile `step_fn` with XLA. Off by default: XLA fails under MirroredStrategy on
        logical CPU devices. The step then gets its batch without string tensors (the `video`
        ids): XLA takes none.
      max_to_keep: number of checkpoints kept.
    """

    def __init__(self, workdir, strategy, dataset, trackables, *, steps_per_execution=1,
                 jit_compile=False, max_to_keep=3):
        if steps_per_execution < 1:
            raise ValueError(f"steps_per_execution must be >= 1, got {steps_per_execution}")
        self.workdir = os.fspath(workdir)
        self.strategy = strategy
        self.num_replicas = strategy.num_replicas_in_sync
        self.steps_per_execution = int(steps_per_execution)
        self.jit_compile = bool(jit_compile)
        self._trackables = {name: _tf_variable(value) for name, value in dict(trackables).items()}
        self._check_trackables()
        self._dataset_fn = dataset if callable(dataset) else None
        self._check_batch_divisible(dataset(0) if self._dataset_fn else dataset)
        self._is_chief = is_chief(strategy)

        with strategy.scope():
            self.step = _counter("step")
            self.round = _counter("round")
            self.phase = _counter("phase")
        input_state = {}
        self._iterator = None
        if self._dataset_fn is None:
            self._iterator = iter(dataset)
            input_state = {"iterator": self._iterator}
        self._checkpoint = tf.train.Checkpoint(
            step=self.step, round=self.round, phase=self.phase, **input_state,
            keras_seed_states=_keras_seed_states(self._trackables), **self._trackables)
        self._checkpoint_directory = os.path.join(self.workdir, CHECKPOINT_DIRECTORY)
        self._manager = tf.train.CheckpointManager(
            self._checkpoint, self._checkpoint_directory, max_to_keep=max_to_keep)
        self._last_saved_step = None
        self._compiled = {}
        self._writers = {}

    # ---------------------------------------------------------------- validation

    def _check_trackables(self):
        for name, value in self._trackables.items():
            if name in _RESERVED_CHECKPOINT_KEYS:
                raise ValueError(f"trackable name {name!r} is reserved for the loop's own state "
                                 f"({', '.join(_RESERVED_CHECKPOINT_KEYS)})")
            if isinstance(value, keras.optimizers.Optimizer) and not value.built:
                raise ValueError(
                    f"optimizer {name!r} is not built; call train_lib.build_optimizers(strategy, "
                    f"[(optimizer, model.trainable_variables), ...]) before creating the Trainer")
            if isinstance(value, keras.Layer) and not value.built:
                raise ValueError(
                    f"model {name!r} is not built; call it on a batch (or give it an Input) before "
                    f"creating the Trainer, so its variables exist when a checkpoint is restored")

    def _check_batch_divisible(self, dataset):
        for spec in tf.nest.flatten(dataset.element_spec):
            shape = getattr(spec, "shape", None)
            if shape is None or shape.rank in (None, 0) or shape[0] is None:
                continue
            if shape[0] % self.num_replicas:
                raise ValueError(
                    f"global batch {shape[0]} is not divisible by {self.num_replicas} replicas; "
                    f"replicas would get unequal shares and tf.nn.compute_average_loss's default "
                    f"scaling would be wrong. Choose a batch size divisible by the replica count")

    # ---------------------------------------------------------------- checkpoints

    def restore_or_initialize(self):
        """Restores the latest checkpoint in `workdir/checkpoints` if there is one.

        Restores every trackable, step/round/phase, and the input position (the iterator's state,
        or for a `dataset_fn` the stream rebuilt at the restored step). Without a checkpoint
        everything keeps its freshly initialised value.

        Returns:
          True if a checkpoint was restored, False for a fresh run.
        """
        latest = self._manager.latest_checkpoint
        if latest is None:
            self._check_every_worker_starts_at_the_same_step()
            return False
        self._checkpoint.restore(latest).assert_existing_objects_matched()
        self._last_saved_step = int(self.step.numpy())
        if self._dataset_fn is not None:  # the stream restarts at the restored step
            self._iterator = None
            self._compiled = {}
        _print(f"restored {latest} (step {self._last_saved_step}, round "
               f"{int(self.round.numpy())}, phase {int(self.phase.numpy())})")
        self._check_every_worker_starts_at_the_same_step()
        return True

    def _check_every_worker_starts_at_the_same_step(self):
        """Under multi-worker training, raises unless every worker restored the same step (one
        all-gather). A worker that restored another checkpoint, or none, would pair its collectives
        with other steps of the other workers and train a diverging copy of the models."""
        if _num_workers(self.strategy) == 1:
            return
        local = tf.constant([int(self.step.numpy())], tf.int64)

        @tf.function
        def gather():
            return self.strategy.run(
                lambda: tf.distribute.get_replica_context().all_gather(local, axis=0))

        steps = sorted({int(step) for step in
                        np.ravel(self.strategy.experimental_local_results(gather())[0])})
        if len(steps) > 1:
            raise ClusterError(
                f"the workers start from different steps {steps} (this one from "
                f"{int(self.step.numpy())}, workdir {self.workdir}): every worker must restore the "
                f"chief's last checkpoint. Give every worker the chief's workdir at the same path "
                f"(one host or a shared filesystem) or copy it there before starting them again "
                f"(see train_lib.worker_workdir)")

    def save(self):
        """Writes a checkpoint now, named by the current step. Returns its path.

        Between phases, call this after assigning variables and `phase`/`round`. If a checkpoint
        for the same step exists, it is overwritten, so the newest state at that step wins.
        Under multi-worker training only the chief keeps its checkpoint. The other workers write
        to a temporary directory and delete it, because saving is a collective operation. It is
        made inside the worker's workdir (itself temporary, `worker_workdir`), so that a worker
        killed while saving leaves nothing else behind.
        """
        step = int(self.step.numpy())
        if self._is_chief:
            path = self._manager.save(checkpoint_number=step)
        else:
            os.makedirs(self.workdir, exist_ok=True)
            temporary = tempfile.mkdtemp(prefix="worker-checkpoint-", dir=self.workdir)
            try:
                path = self._checkpoint.write(os.path.join(temporary, "ckpt"))
            finally:
                shutil.rmtree(temporary, ignore_errors=True)
        self._last_saved_step = step
        return path

    @property
    def iterator(self):
        """The iterator over the training batches (built at the current step on first use)."""
        if self._iterator is None:
            self._iterator = iter(self._dataset_fn(int(self.step.numpy())))
        return self._iterator

    @property
    def latest_checkpoint(self):
        """Path prefix of the newest checkpoint in `workdir/checkpoints`, or None."""
        return self._manager.latest_checkpoint

    # ---------------------------------------------------------------- summaries

    def summary_writer(self, name=TRAIN_SUMMARY_DIRECTORY):
        """The `tf.summary` writer for `workdir/<name>` (a no-op writer on non-chief workers)."""
        if name not in self._writers:
            if self._is_chief:
                self._writers[name] = tf.summary.create_file_writer(os.path.join(self.workdir, name))
            else:
                self._writers[name] = tf.summary.create_noop_writer()
        return self._writers[name]

    def write_scalars(self, scalars, step=None, writer=TRAIN_SUMMARY_DIRECTORY):
        """Writes `{tag: float}` as TensorBoard scalars at `step` (default: the current step)."""
        step = int(self.step.numpy()) if step is None else int(step)
        with self.summary_writer(writer).as_default():
            for tag, value in scalars.items():
                tf.summary.scalar(tag, float(value), step=step)

    def write_text(self, name, text, step=0):
        """Writes a text summary (TensorBoard renders it as Markdown), e.g. the resolved config.

        A dict or list is written as indented JSON in a code block.
        """
        if not isinstance(text, str):
            text = "```\n" + json.dumps(text, indent=2, sort_keys=True, default=str) + "\n```"
        with self.summary_writer().as_default():
            tf.summary.text(name, text, step=int(step))
        self.summary_writer().flush()

    def write_image(self, name, rgb, step=None):
        """Writes one image summary, e.g. an attention-vs-ground-truth timeline.

        Args:
          name: tag.
          rgb: uint8 array [H, W, 3].
          step: summary step (default: the current training step).
        """
        rgb = np.asarray(rgb)
        if rgb.ndim != 3 or rgb.shape[-1] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"write_image({name!r}) needs a uint8 [H, W, 3] array, "
                             f"got {rgb.dtype} {list(rgb.shape)}")
        step = int(self.step.numpy()) if step is None else int(step)
        with self.summary_writer().as_default():
            tf.summary.image(name, rgb[np.newaxis], step=step)
        self.summary_writer().flush()

    def learning_rates(self):
        """`{"learning_rate/<key>": float}` for every Keras optimizer among the trackables.

        Each value is the learning rate the optimizer's next update will use.
        """
        rates = {}
        for name, value in self._trackables.items():
            if isinstance(value, keras.optimizers.Optimizer):
                rates[f"learning_rate/{name}"] = float(np.asarray(value.learning_rate))
        return rates

    def close(self):
        """Flushes and closes the summary writers."""
        for writer in self._writers.values():
            writer.flush()
            writer.close()
        self._writers = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    # ---------------------------------------------------------------- the compiled step

    def _compiled_function(self, step_fn):
        """`tf.function(num_steps) -> {name: mean over those steps of the replica-summed outputs}`.

        There is one compiled function per `step_fn`. It is traced once, so assigning a variable
        between calls does not retrace it.
        """
        if step_fn in self._compiled:
            return self._compiled[step_fn]
        strategy = self.strategy
        replica_fn = step_fn
        if self.jit_compile:
            jitted = tf.function(step_fn, jit_compile=True)
            replica_fn = lambda batch: jitted(_without_strings(batch))  # noqa: E731
        num_replicas = self.num_replicas
        iterator = self.iterator  # built here, eagerly, at the current step

        def one_step():
            batch = next(iterator)
            per_replica = strategy.run(_on_replica_shard(replica_fn, num_replicas), args=(batch,))
            if not isinstance(per_replica, dict):
                raise TypeError(f"step_fn must return a dict of scalar tensors, got "
                                f"{type(per_replica).__name__}")
            outputs = {}
            for key, value in per_replica.items():
                summed = strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)
                if summed.shape.rank != 0:
                    raise ValueError(f"step_fn output {key!r} must be a scalar, got shape "
                                     f"{summed.shape}")
                outputs[key] = tf.cast(summed, tf.float32)
            # The increment must wait for the batch: if the iterator runs out, the step stays.
            with tf.control_dependencies(tf.nest.flatten(batch) + list(outputs.values())):
                self.step.assign_add(1)
            return outputs

        if self.steps_per_execution == 1:
            def train_function(num_steps):
                del num_steps  # always 1
                return one_step()
        else:
            def train_function(num_steps):
                # The first step is taken outside the loop, so the loop knows which keys to sum.
                totals = one_step()
                for _ in tf.range(num_steps - 1):
                    outputs = one_step()
                    totals = {key: totals[key] + outputs[key] for key in totals}
                return {key: total / tf.cast(num_steps, tf.float32)
                        for key, total in totals.items()}

        compiled = tf.function(train_function)
        self._compiled[step_fn] = compiled
        return compiled

    # ---------------------------------------------------------------- the loop

    def train(self, step_fn, num_steps, *, log_every=100, checkpoint_every=1000, summary_every=100,
              on_log=None, profile_steps=None, eval_fn=None, eval_every=None):
        """Runs `step_fn` until the global step reaches `num_steps`, then saves a checkpoint.

        If the step is already at or past `num_steps`, this does nothing. A later call with a
        larger `num_steps` continues from where this one stopped, with the same or another
        `step_fn`.

        Args:
          step_fn: `step_fn(batch) -> {name: scalar tensor}`, run per replica on its share of the
            global batch (see the module docstring for how to scale losses). It computes
            gradients and applies them with its optimizers. It must not create variables.
            Each distinct `step_fn` object is traced once and cached, so pass the same function
            (not a new lambda) to every call that should reuse the compiled step.
          num_steps: global step at which to stop.
          log_every: print one line to stderr (and call `on_log`) every this many steps. The line
            shows the mean of each output since the previous line, and steps/s.
          checkpoint_every: save a checkpoint every this many steps. One is also saved at the end.
          summary_every: write TensorBoard scalars to `workdir/train` every this many steps: the
            mean of each output since the previous write, `learning_rate/<key>` for each
            optimizer, and `steps_per_second`.
          on_log: optional `on_log(step: int, metrics: dict[str, float])`, called with each log
            line's values.
          profile_steps: optional `(start, stop)` global steps. The TF profiler records the steps
            after `start` up to `stop` into `workdir/train/plugins/profile` (viewed with
            tensorboard-plugin-profile).
          eval_fn: optional `eval_fn(step: int) -> dict[str, float]`, run on the host every
            `eval_every` steps and at the end. Its values are logged and written to
            `workdir/eval`.
          eval_every: see `eval_fn` (required with it).

        Returns:
          `{"step": final step, <output>: mean over the last log window, ...}`, plus
          `eval/<name>` for the last evaluation.

        Raises:
          FloatingPointError: a returned value is NaN or infinite (the message names it and the step).
          ValueError: the dataset ran out before `num_steps` (repeat it).
        """
        if eval_fn is not None and not eval_every:
            raise ValueError("eval_fn needs eval_every")
        start_step = int(self.step.numpy())
        num_steps = int(num_steps)
        if start_step >= num_steps:
            _print(f"step {start_step} >= num_steps {num_steps}: nothing to train")
            return {"step": start_step}

        compiled = self._compiled_function(step_fn)
        intervals = {"log": log_every, "summary": summary_every, "checkpoint": checkpoint_every,
                     "eval": eval_every if eval_fn is not None else None}
        profile_start, profile_stop = profile_steps if profile_steps else (None, None)
        profiling = False
        log_window, summary_window = _Window(), _Window()
        bar = _step_bar(start_step, num_steps)
        last_log, last_eval = {}, {}
        step = start_step
        try:
            while step < num_steps:
                if profile_start is not None and not profiling and profile_start <= step < profile_stop:
                    profiling = self._start_profiler()
                boundaries = [num_steps] + [
                    _next_multiple(step, every) for every in intervals.values() if every]
                if profile_start is not None:
                    boundaries += [b for b in (profile_start, profile_stop) if b > step]
                call_steps = min(self.steps_per_execution, min(boundaries) - step)

                try:
                    if profiling:
                        with tf.profiler.experimental.Trace("train", step_num=step, _r=1):
                            means = compiled(tf.constant(call_steps, tf.int32))
                    else:
                        means = compiled(tf.constant(call_steps, tf.int32))
                except tf.errors.OutOfRangeError as error:
                    raise ValueError(
                        f"the training dataset ran out at step {int(self.step.numpy())} before "
                        f"num_steps={num_steps}; repeat it (dataset.repeat())") from error
                except _LOST_WORKER_ERRORS as error:
                    if _num_workers(self.strategy) == 1:
                        raise
                    raise ClusterError(self._lost_worker_message(error)) from error
                means = {key: float(value) for key, value in means.items()}
                step = int(self.step.numpy())
                for key, value in means.items():
                    if not math.isfinite(value):
                        raise FloatingPointError(f"{key} is {value} at step {step}")
                log_window.add(means, call_steps)
                summary_window.add(means, call_steps)
                bar.update(step - bar.n)

                if profiling and step >= profile_stop:
                    tf.profiler.experimental.stop()
                    profiling = False
                if _due(step, summary_every, num_steps):
                    self.write_scalars({**summary_window.means(), **self.learning_rates(),
                                        "steps_per_second": summary_window.steps_per_second()},
                                       step=step)
                    summary_window = _Window()
                if _due(step, log_every, num_steps):
                    last_log = log_window.means()
                    _print(_log_line(step, num_steps, last_log, log_window.steps_per_second()))
                    if on_log is not None:
                        on_log(step, dict(last_log))
                    log_window = _Window()
                if eval_fn is not None and _due(step, eval_every, num_steps):
                    last_eval = {key: float(value) for key, value in eval_fn(step).items()}
                    self.write_scalars(last_eval, step=step, writer=EVAL_SUMMARY_DIRECTORY)
                    _print(f"eval at step {step}: " + _format_values(last_eval))
                if _due(step, checkpoint_every, num_steps):
                    self.save()
        finally:
            bar.close()
            if profiling:
                tf.profiler.experimental.stop()
            for writer in self._writers.values():
                writer.flush()
        if self._last_saved_step != step:
            self.save()
        return {"step": step, **last_log, **{f"eval/{key}": value for key, value in last_eval.items()}}

    def _lost_worker_message(self, error):
        if self._is_chief:
            latest = self._manager.latest_checkpoint
            resume = (f"The run's last checkpoint is {latest}" if latest
                      else "No checkpoint was written yet")
        else:
            resume = "The run's last checkpoint is the chief's newest, in its workdir"
        return (f"training stopped at step {int(self.step.numpy())}: another worker of this "
                f"{_num_workers(self.strategy)}-worker run failed or became unreachable, and the "
                f"collectives were aborted instead of waiting for it ({_error_summary(error)}). "
                f"{resume}; start every worker again with the same command to resume from it")

    def _start_profiler(self):
        if not self._is_chief:
            return False
        tf.profiler.experimental.start(os.path.join(self.workdir, TRAIN_SUMMARY_DIRECTORY))
        return True


# --------------------------------------------------------------------------------------------
# Helpers of the loop
# --------------------------------------------------------------------------------------------


def _on_replica_shard(step_fn, num_replicas):
    """Wraps `step_fn` so that it receives this replica's rows of the global batch."""
    if num_replicas == 1:
        return step_fn

    def sharded_step(batch):
        context = tf.distribute.get_replica_context()
        replica = context.replica_id_in_sync_group

        def shard(tensor):
            if tensor.shape.rank == 0:
                return tensor
            size = tf.shape(tensor, out_type=tf.int32)[0]
            begin = (replica * size) // num_replicas
            end = ((replica + 1) * size) // num_replicas
            return tensor[begin:end]

        return step_fn(tf.nest.map_structure(shard, batch))

    return sharded_step


def _without_strings(element):
    """The element without its string tensors (video ids), which XLA cannot take as arguments:
    string entries of its dicts are left out, everything else is kept as it is."""
    if isinstance(element, dict):
        return {key: _without_strings(value) for key, value in element.items()
                if getattr(value, "dtype", None) != tf.string}
    if isinstance(element, (tuple, list)):
        return type(element)(_without_strings(value) for value in element)
    return element


def _keras_seed_states(trackables):
    """`{name: [tf.Variable]}`: the Keras layer variables that `tf.train.Checkpoint` would miss.

    Keras 3 layers hold their `SeedGenerator`s (Dropout, noise layers) as plain Python
    attributes. `tf.train.Checkpoint` does not track those, so the seed states would not be
    saved, and a resumed run would draw different dropout masks. Those states are the layer's
    `variables` that are not among its `weights`, and they are checkpointed here explicitly.
    """
    states = {}
    for name, value in trackables.items():
        if isinstance(value, keras.Layer):
            weight_ids = {id(weight) for weight in value.weights}
            extra = [_tf_variable(variable) for variable in value.variables
                     if id(variable) not in weight_ids]
            if extra:
                states[name] = extra
    return states


class ClusterError(RuntimeError):
    """A multi-worker run cannot go on: a worker was lost (killed, crashed or unreachable) in the
    middle of training, or the workers restored different checkpoints.

    TensorFlow's coordination service notices a worker that stops sending heartbeats (10 s by
    default) and aborts the collectives of the others, which then raise instead of waiting.
    """


# What an aborted collective raises: Unavailable (a peer is down or its heartbeat timed out),
# FailedPrecondition (a peer restarted), DeadlineExceeded (a collective timeout), Aborted.
_LOST_WORKER_ERRORS = (tf.errors.UnavailableError, tf.errors.FailedPreconditionError,
                       tf.errors.DeadlineExceededError, tf.errors.AbortedError)


def _error_summary(error):
    """The line of a TF error that says why (e.g. "Collective ops is aborted by: ... heartbeat
    timeout ..."), without the graph trace around it."""
    lines = [line.strip() for line in str(getattr(error, "message", error)).splitlines()
             if line.strip()]
    reason = next((line for line in lines if "aborted by" in line), lines[-1] if lines else "")
    return reason[:300]


def _counter(name):
    return tf.Variable(0, dtype=tf.int64, trainable=False, name=name,
                       aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)


def is_chief(strategy):
    """True unless this process is a non-chief worker of a multi-worker strategy.

    The chief is task `chief` 0, or `worker` 0 when the cluster has no `chief` job. Only the chief
    writes the run's files (see `worker_workdir`).
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    cluster = resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in cluster


def _next_multiple(step, every):
    return (step // every + 1) * every


def _due(step, every, num_steps):
    return step == num_steps or bool(every) and step % every == 0


def _format_values(values):
    return "  ".join(f"{key} {value:.4g}" for key, value in values.items())


def _log_line(step, num_steps, means, steps_per_second):
    width = len(str(num_steps))
    return (f"step {step:>{width}}/{num_steps}  {_format_values(means)}  "
            f"({steps_per_second:.2f} steps/s)")


def _step_bar(start_step, num_steps):
    """A progress bar over the training steps when stderr is a terminal; elsewhere (CI logs, files)
    a disabled one, and the log lines alone tell the progress."""
    return tqdm.tqdm(total=num_steps, initial=start_step, desc="[train_lib] steps", unit="step",
                     file=sys.stderr, disable=not sys.stderr.isatty(), dynamic_ncols=True,
                     leave=False)


def _print(message):
    """A log line on stderr, above the progress bar when there is one."""
    tqdm.tqdm.write(f"[train_lib] {message}", file=sys.stderr)
    sys.stderr.flush()

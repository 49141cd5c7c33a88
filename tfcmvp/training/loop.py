"""The steps that pretraining and finetuning runs share around ``model.fit``.

* :func:`start_strategy`: devices, the tf.distribute strategy, the batch split.
* :func:`save_run_config`: WORKDIR/config.yaml, warning about changes since
  the last start.
* :func:`compile_with_checkpoint`: optimizer (loss-scaled under
  mixed_float16), compile, and the restored :class:`TrainingCheckpoint`.
* :func:`resume_point`: where the restored checkpoint stopped.
* :func:`fit_with_resume`: ``model.fit`` from there to the last epoch,
  finishing an interrupted epoch first, with checkpoints and TensorBoard.
"""

from __future__ import annotations

import dataclasses
import logging
import pathlib
from typing import Optional, Sequence

import keras
import tensorflow as tf

from tfcmvp.config import config_differences, load_saved_config, save_config
from tfcmvp.errors import ConfigError, RunRefusedError
from tfcmvp.training.callbacks import CheckpointCallback, TrainingCheckpoint
from tfcmvp.training.strategy import configure_devices, make_strategy, per_replica_batch_size

logger = logging.getLogger(__name__)


def start_strategy(config) -> tf.distribute.Strategy:
    """The strategy of ``config.runtime``, after configuring the devices; checks
    that ``config.train.global_batch_size`` splits evenly over its replicas."""
    # First: logical devices can only be configured before TF initialises them.
    configure_devices(config.runtime)
    strategy = make_strategy(config.runtime)
    replicas = strategy.num_replicas_in_sync
    per_replica = per_replica_batch_size(config.train.global_batch_size, replicas)
    logger.info(
        "global batch %d = %d replica(s) x %d",
        config.train.global_batch_size,
        replicas,
        per_replica,
    )
    warn_unverified_determinism(config, replicas)
    return strategy


_determinism_warned = False


def warn_unverified_determinism(config, num_replicas: int) -> None:
    """Warns (once per process) when ``train.deterministic`` asks for bit-identical
    runs where that was not verified: several replicas on GPUs or workers.

    One device and MirroredStrategy over virtual CPUs were measured
    bit-identical; GPU all-reduce (NCCL) and multi-worker collectives were
    not checked, and their summation order is theirs to choose.
    """
    global _determinism_warned
    if (
        not config.train.deterministic
        or num_replicas < 2
        or config.runtime.virtual_cpus >= 2
        or _determinism_warned
    ):
        return
    _determinism_warned = True
    logger.warning(
        "train.deterministic with %d replicas (runtime.strategy=%s): bit-identical runs are "
        "verified on one device and on virtual CPUs only; here the cross-device sums may "
        "differ in the last bits from run to run",
        num_replicas,
        config.runtime.strategy,
    )


def set_precision_policy(train) -> None:
    """Sets Keras' global dtype policy from ``train.mixed_precision`` (None: float32).

    Raises ``ValueError`` for mixed_float16 on a machine without a GPU:
    TensorFlow has no CPU kernels for float16 3-D pooling, which would
    otherwise fail deep inside the first step; bfloat16 runs on CPUs.
    """
    policy = train.mixed_precision or "float32"
    if policy == "mixed_float16" and not tf.config.list_logical_devices("GPU"):
        raise ConfigError(
            "train.mixed_precision=mixed_float16 needs a GPU (TensorFlow has no CPU kernel for "
            "float16 MaxPool3D); on a CPU use train.mixed_precision=mixed_bfloat16 or null"
        )
    keras.mixed_precision.set_dtype_policy(policy)


def save_run_config(config, path: pathlib.Path) -> None:
    """Writes the resolved config (a PretrainConfig or FinetuneConfig), logging
    what changed since the last start."""
    if path.is_file():
        try:
            previous = load_saved_config(path, root=type(config))
        except ValueError as error:  # an older tfcmvp's config: not fatal
            logger.warning("cannot read the previous %s (%s); overwriting it", path, error)
        else:
            changes = config_differences(previous, config)
            if changes:
                logger.warning(
                    "config changed since the last start in %s: %s", path.parent, "; ".join(changes)
                )
    save_config(config, path)


def compile_with_checkpoint(
    model: keras.Model, optimizer, train, directory, write_directory=None
) -> tuple[keras.optimizers.Optimizer, TrainingCheckpoint]:
    """Compiles the built `model` with `optimizer` and restores the newest
    checkpoint in `directory`, if any; call it in the strategy's scope.

    Args:
      model: the built model.
      optimizer: the optimizer; wrapped in a LossScaleOptimizer when
        ``train.mixed_precision`` is mixed_float16.
      train: the run's ``config.train`` (mixed_precision, keep_checkpoints).
      directory: the checkpoint folder.
      write_directory: see :class:`TrainingCheckpoint`.

    Returns:
      (the optimizer the model uses, the restored or fresh checkpoint).
    """
    if train.mixed_precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    # XLA is off: the steps gather keys across replicas and sum gradients in
    # the optimizer, which is tested without XLA.
    model.compile(optimizer=optimizer, jit_compile=False)
    optimizer.build(model.trainable_variables)
    checkpoint = TrainingCheckpoint(
        directory,
        model,
        optimizer,
        max_to_keep=train.keep_checkpoints,
        write_directory=write_directory,
    )
    checkpoint.restore()
    return optimizer, checkpoint


@dataclasses.dataclass(frozen=True)
class ResumePoint:
    """Where a restored checkpoint stopped (all 0 for a fresh run).

    Attributes:
      epoch: epochs completed.
      step_in_epoch: steps done in the next epoch (0 at an epoch boundary).
      step: the optimizer step.
    """

    epoch: int
    step_in_epoch: int
    step: int

    def data_seed(self, seed: int) -> int:
        """The input pipeline's seed for a (re)start from here: a fresh sample
        stream each time, since the pipeline's per-sample seeds count from 0
        and reusing the seed would replay the samples of the first steps."""
        return seed + 1_000_003 * self.step


def resume_point(checkpoint: TrainingCheckpoint, steps_per_epoch: int) -> ResumePoint:
    """The counters of `checkpoint` (restored or fresh), checked against
    `steps_per_epoch`; logs where a resumed run continues."""
    point = ResumePoint(
        epoch=int(checkpoint.epoch.numpy()),
        step_in_epoch=int(checkpoint.step_in_epoch.numpy()),
        step=int(checkpoint.optimizer.iterations.numpy()),
    )
    if point.step_in_epoch >= steps_per_epoch:
        raise RunRefusedError(
            f"the checkpoint in {checkpoint.directory} stopped at step {point.step_in_epoch} of "
            f"epoch {point.epoch + 1}, but an epoch now has only {steps_per_epoch} steps "
            f"(did train.steps_per_epoch or the data change?)"
        )
    if point.step:
        logger.info(
            "resuming at epoch %d, step %d of %d (optimizer step %d)",
            point.epoch + 1,
            point.step_in_epoch,
            steps_per_epoch,
            point.step,
        )
    return point


def fit_with_resume(
    model: keras.Model,
    dataset: tf.data.Dataset,
    *,
    epochs: int,
    steps_per_epoch: int,
    checkpoint: TrainingCheckpoint,
    every_steps: Optional[int] = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    tensorboard_dir=None,
    later_callbacks: Sequence[keras.callbacks.Callback] = (),
    verbose="auto",
) -> None:
    """Trains from where `checkpoint` stopped up to `epochs`, saving to it.

    An interrupted epoch is finished first with its remaining steps (its
    metric sums restored, so its history row covers the whole epoch); the
    other epochs follow in a second `fit`.

    Args:
      model: the compiled model whose weights `checkpoint` holds.
      dataset: global batches, repeated forever.
      epochs: the last epoch (1-based) to train.
      steps_per_epoch: optimizer steps per epoch.
      checkpoint: the restored (or fresh) checkpoint, saved after every epoch.
      every_steps: also save it every this many optimizer steps (None: per epoch only).
      callbacks: run before the checkpoint callback (the NaN/Inf stop first,
        then the ones that write epoch results, so a kill in between redoes
        the epoch).
      tensorboard_dir: write TensorBoard logs here (after the checkpoint
        callback; None: none), see :func:`tensorboard_callback`.
      later_callbacks: run after the checkpoint (and TensorBoard) callback.
      verbose: Keras `fit` verbosity.
    """
    epoch = int(checkpoint.epoch.numpy())
    step_in_epoch = int(checkpoint.step_in_epoch.numpy())
    run_callbacks = [
        *callbacks,
        CheckpointCallback(
            checkpoint,
            every_steps=every_steps,
            resume_step_in_epoch=step_in_epoch,
            resume_metric_values=checkpoint.metric_values() if step_in_epoch else None,
        ),
    ]
    tensorboard = None if tensorboard_dir is None else tensorboard_callback(tensorboard_dir)
    if tensorboard is not None:
        run_callbacks.append(tensorboard)
    run_callbacks.extend(later_callbacks)
    if step_in_epoch:
        # Finish the interrupted epoch with its remaining steps first.
        model.fit(
            dataset,
            initial_epoch=epoch,
            epochs=epoch + 1,
            steps_per_epoch=steps_per_epoch - step_in_epoch,
            callbacks=run_callbacks,
            shuffle=False,
            verbose=verbose,
        )
        epoch += 1
    if epoch < epochs:
        model.fit(
            dataset,
            initial_epoch=epoch,
            epochs=epochs,
            steps_per_epoch=steps_per_epoch,
            callbacks=run_callbacks,
            shuffle=False,
            verbose=verbose,
        )


def tensorboard_callback(log_dir) -> Optional[keras.callbacks.Callback]:
    """keras.callbacks.TensorBoard writing epoch scalars to `log_dir`, or None.

    TensorFlow 2.21 no longer installs the `tensorboard` package that
    `tf.summary` writes through; without it the run goes on without event
    files (history.csv and history.png hold the same curves).
    """
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        logger.warning(
            "no TensorBoard logs: the tensorboard package is not installed "
            "(pip install tensorboard); history.csv / history.png have the curves"
        )
        return None
    return keras.callbacks.TensorBoard(str(log_dir), write_graph=False)

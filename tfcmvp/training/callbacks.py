"""Callbacks of a pretraining (and finetuning) run: NaN/Inf stop, checkpoints
with resume, per-epoch network weights; history.csv and history.png (written by
:mod:`tfcmvp.training.history`, whose names are importable here too).

Checkpoint contract (``WORKDIR/checkpoints``, :class:`TrainingCheckpoint`):
model weights, optimizer state (slots and `iterations`, which also drives the
learning-rate schedule), the counters ``epoch`` (epochs completed) and
``step_in_epoch`` (steps done in the current epoch), and the running sums of
the metrics, so that a run resumed mid-epoch still reports the whole epoch's
means in history.csv. The input pipeline is not checkpointed: a resumed epoch
draws fresh random samples for its remaining steps.
"""

from __future__ import annotations

import logging
import math
import os
import pathlib
from typing import Optional, Sequence

import keras
import tensorflow as tf

from tfcmvp.errors import RunRefusedError
from tfcmvp.training.history import (  # noqa: F401 (importable here, where callers find them)
    HISTORY_COLUMNS,
    HISTORY_PANELS,
    HistoryCSV,
    HistoryPlot,
    plot_history,
    read_history,
    write_history,
)

logger = logging.getLogger(__name__)

# Logged values checked for NaN / Inf after every step, most specific first so
# that the message names the loss that went bad rather than their sum.
WATCHED_LOSSES = ("context_loss", "motion_loss", "loss")


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or Inf; training stopped without saving the bad state."""


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Raises :class:`NonFiniteLossError` as soon as a watched loss is NaN/Inf.

    Place it first in the callback list: raising inside ``on_train_batch_end``
    ends `fit` before later callbacks (checkpoints) can save the bad weights.
    The logged values are running means over the epoch, so one bad step makes
    them non-finite at once.
    """

    def __init__(self, watched: Sequence[str] = WATCHED_LOSSES):
        super().__init__()
        self.watched = tuple(watched)
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        for key in self.watched:
            if logs is None or key not in logs:
                continue
            value = float(logs[key])
            if not math.isfinite(value):
                step = int(self.model.optimizer.iterations.numpy())
                raise NonFiniteLossError(
                    f"{key} is {value} at step {step} (epoch {self._epoch + 1}, batch "
                    f"{batch + 1}); stopped without saving this state. The last checkpoint "
                    f"holds the state before it. Lower the learning rate or check the data."
                )


class TrainingCheckpoint:
    """Model + optimizer + counters + metric sums in a `tf.train.CheckpointManager`.

    Build the model and the optimizer (their variables must exist) before
    :meth:`restore`, so that every value is restored at once instead of
    deferred.

    Args:
      directory: checkpoint folder (created); restored from, and written to.
      model: the built keras.Model (its `metrics` are saved too).
      optimizer: the built optimizer.
      max_to_keep: newest checkpoints kept.
      write_directory: write here instead (a scratch folder for the non-chief
        workers of a multi-worker run: every worker must take part in a save,
        only the chief's copy is kept).
    """

    def __init__(
        self, directory, model: keras.Model, optimizer, max_to_keep: int = 3, write_directory=None
    ):
        self.directory = pathlib.Path(directory)
        self.write_directory = pathlib.Path(write_directory or directory)
        self.model = model
        self.optimizer = optimizer
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.step_in_epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="step_in_epoch")
        metric_variables = {
            f"{metric.name}_{i}": variable
            for metric in model.metrics
            for i, variable in enumerate(metric.variables)
        }
        self.metric_variables = metric_variables
        self.checkpoint = tf.train.Checkpoint(
            model=model,
            optimizer=optimizer,
            epoch=self.epoch,
            step_in_epoch=self.step_in_epoch,
            metrics=tf.train.Checkpoint(**metric_variables),
        )
        self.manager = tf.train.CheckpointManager(
            self.checkpoint,
            str(self.write_directory),
            max_to_keep=max_to_keep,
            checkpoint_name="ckpt",
        )

    @property
    def latest(self) -> Optional[str]:
        """Path prefix of the newest checkpoint in `directory`, or None."""
        return tf.train.latest_checkpoint(str(self.directory))

    def restore(self) -> bool:
        """Restores the newest checkpoint if there is one; True if restored."""
        path = self.latest
        if path is None:
            return False
        # Everything saved must find its variable, with its shape: a mismatch
        # means the config (architecture) changed since the checkpoint was written.
        try:
            self.checkpoint.restore(path).assert_existing_objects_matched()
        except (AssertionError, ValueError) as error:
            raise RunRefusedError(
                f"checkpoint {path} does not match the model built from the config (did the "
                f"model section change since it was written?): {error}"
            ) from error
        logger.info(
            "restored %s (%s, optimizer step %d)",
            path,
            describe_position(int(self.epoch.numpy()), int(self.step_in_epoch.numpy())),
            int(self.optimizer.iterations.numpy()),
        )
        return True

    def metric_values(self) -> dict:
        """Current values of the saved metric variables (NumPy)."""
        return {name: v.numpy() for name, v in self.metric_variables.items()}

    def assign_metric_values(self, values: dict) -> None:
        for name, value in values.items():
            self.metric_variables[name].assign(value)

    def save(self, epoch: int, step_in_epoch: int) -> str:
        """Saves with the given counters; returns the checkpoint path."""
        self.epoch.assign(epoch)
        self.step_in_epoch.assign(step_in_epoch)
        path = self.manager.save(checkpoint_number=int(self.optimizer.iterations.numpy()))
        # DEBUG: one line per epoch (or per `every_steps`) would crowd the progress
        # lines at the default level; the restore line says where a run resumes.
        logger.debug("saved %s (%s)", path, describe_position(epoch, step_in_epoch))
        return path


def describe_position(epoch: int, step_in_epoch: int) -> str:
    """The checkpoint counters in Keras' 1-based epoch numbers ("Epoch E/N").

    ``epoch`` counts finished epochs, so a save at an epoch boundary is the end
    of epoch ``epoch`` and a save mid-epoch is inside epoch ``epoch + 1``; the
    numbers then match Keras' progress lines and history.csv's epoch column.
    """
    if step_in_epoch:
        return f"epoch {epoch + 1}, step {step_in_epoch}"
    if epoch:
        return f"end of epoch {epoch}"
    return "before epoch 1"


class CheckpointCallback(keras.callbacks.Callback):
    """Saves a :class:`TrainingCheckpoint` after every epoch and every N steps.

    Args:
      checkpoint: the TrainingCheckpoint (restored or fresh).
      every_steps: also save when the optimizer step is a multiple of this
        (None: per epoch only).
      resume_step_in_epoch: steps of the first epoch that ran before a resume
        (0 for a fresh start or an epoch boundary); counts continue from it.
      resume_metric_values: the restored metric sums, put back after `fit`
        resets the metrics at the start of the resumed epoch, so the epoch's
        means include the steps before the interruption.
    """

    def __init__(
        self,
        checkpoint: TrainingCheckpoint,
        every_steps: Optional[int] = None,
        resume_step_in_epoch: int = 0,
        resume_metric_values: Optional[dict] = None,
    ):
        super().__init__()
        self.checkpoint = checkpoint
        self.every_steps = every_steps
        self.resume_step_in_epoch = resume_step_in_epoch
        self.resume_metric_values = resume_metric_values
        self._offset = 0
        self._steps_done = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._offset, self.resume_step_in_epoch = self.resume_step_in_epoch, 0
        self._steps_done = self._offset
        if self._offset and self.resume_metric_values:
            self.checkpoint.assign_metric_values(self.resume_metric_values)
        self.resume_metric_values = None
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self._steps_done = self._offset + batch + 1
        if batch + 1 == self.params.get("steps"):
            return  # the epoch's last step: on_epoch_end saves it as a finished epoch
        step = int(self.model.optimizer.iterations.numpy())
        if self.every_steps and step % self.every_steps == 0:
            self.checkpoint.save(self._epoch, self._steps_done)

    def on_epoch_end(self, epoch, logs=None):
        self.checkpoint.save(epoch + 1, 0)


class SaveNetworkWeights(keras.callbacks.Callback):
    """After every epoch, writes each network's weights to DIR/<name>.weights.h5.

    Args:
      directory: output folder (created).
      networks: {file stem: keras.Model}, e.g. ``PretrainModel.networks()``.
        The export step rebuilds each network from the config and loads the
        file with `load_weights`.
    """

    def __init__(self, directory, networks: dict):
        super().__init__()
        self.directory = pathlib.Path(directory)
        self.networks = networks

    def on_epoch_end(self, epoch, logs=None):
        save_network_weights(self.directory, self.networks)


def save_network_weights(directory, networks: dict) -> dict:
    """Writes DIR/<name>.weights.h5 for every network, atomically; returns the paths."""
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, network in networks.items():
        path = directory / f"{name}.weights.h5"
        tmp = directory / f"{name}.tmp.weights.h5"
        network.save_weights(str(tmp))
        os.replace(tmp, path)
        paths[name] = path
    return paths

"""The task interface that :func:`tfcmvp.training.runner.run_task` drives.

A task (pretraining, finetuning) says what is trained on what: it finds its
data, builds its model, optimizer and training dataset, names the networks
saved after every epoch, adds its own callbacks and files, and turns the
finished run into its result. The runner owns everything around that:
strategy, workdir lock, precision, provenance, checkpoint and resume,
config.yaml, history, TensorBoard and the `fit` calls.
"""

from __future__ import annotations

import abc
import dataclasses
import logging
import pathlib
from typing import Callable, Sequence

import keras
import tensorflow as tf

from tfcmvp.errors import ConfigError
from tfcmvp.training.callbacks import (
    HISTORY_COLUMNS,
    HISTORY_PANELS,
    WATCHED_LOSSES,
    TrainingCheckpoint,
    read_history,
)
from tfcmvp.training.loop import ResumePoint
from tfcmvp.training.workdir import HISTORY_CSV

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class RunState:
    """What the runner hands to :meth:`Task.finish` once the epochs are done.

    Attributes:
      workdir: the run folder.
      model: the trained model.
      checkpoint: its (restored, then saved) checkpoint.
      start: where this call started (:class:`ResumePoint`).
      steps_per_epoch: optimizer steps per epoch.
      num_replicas: replicas of the strategy.
      chief: this process writes the run's files.
      weights: {name: .weights.h5 path} written at the end (chief only).
    """

    workdir: pathlib.Path
    model: keras.Model
    checkpoint: TrainingCheckpoint
    start: ResumePoint
    steps_per_epoch: int
    num_replicas: int
    chief: bool
    weights: dict

    def result_fields(self) -> dict:
        """The fields every task's result has (``workdir``, ``history``: the rows of
        history.csv, ``checkpoint``: the newest one's path prefix, ``initial_epoch``,
        ``initial_step``, ``steps_per_epoch``, ``num_replicas``), as keyword arguments."""
        return {
            "workdir": self.workdir,
            "history": read_history(self.workdir / HISTORY_CSV),
            "checkpoint": self.checkpoint.latest,
            "initial_epoch": self.start.epoch,
            "initial_step": self.start.step,
            "steps_per_epoch": self.steps_per_epoch,
            "num_replicas": self.num_replicas,
        }


class Task(abc.ABC):
    """One kind of training run; subclasses implement the abstract methods.

    Attributes:
      config: the run's config (``train``, ``runtime`` sections and the task's own).
      data_dir: the extraction output folder it trains on.
      watched_losses: logs the NaN/Inf stop watches.
      history_columns / history_panels: history.csv's columns and history.png's panels.
      done_message: logged when the workdir already holds every epoch.
    """

    watched_losses: Sequence[str] = WATCHED_LOSSES
    history_columns: Sequence[str] = HISTORY_COLUMNS
    history_panels: Sequence = HISTORY_PANELS
    done_message = "nothing to train"

    def __init__(self, config, data_dir):
        self.config = config
        self.data_dir = data_dir

    def check_start(self, workdir: pathlib.Path) -> None:
        """Refuses a run that cannot start (before the strategy starts); default: none."""
        return None

    @abc.abstractmethod
    def prepare(self) -> int:
        """Finds the data (and logs it); returns the optimizer steps per epoch."""

    @abc.abstractmethod
    def check_resume(self, workdir: pathlib.Path, chief: bool, allow_data_change: bool):
        """The provenance record to write (see :mod:`tfcmvp.training.provenance`),
        or a refusal naming what differs from the run in `workdir`."""

    @abc.abstractmethod
    def build_model(self, steps_per_epoch: int) -> keras.Model:
        """The built model (in the strategy's scope), with any pretrained weights."""

    @abc.abstractmethod
    def build_optimizer(self, steps_per_epoch: int) -> keras.optimizers.Optimizer:
        """The optimizer and its schedule."""

    @abc.abstractmethod
    def build_train_data(self, data_seed: int) -> tf.data.Dataset:
        """Global batches of the model's inputs, repeated forever."""

    @abc.abstractmethod
    def network_weights(self, model: keras.Model) -> dict:
        """{name: network} saved as WORKDIR/weights/<name>.weights.h5 after every epoch."""

    def write_start_files(self, workdir: pathlib.Path) -> None:
        """Writes the task's own files once every check passed (chief only); default: none."""
        return None

    def epoch_callbacks(self, model: keras.Model) -> list:
        """Callbacks run after the NaN/Inf stop and before the history; default: none."""
        return []

    @abc.abstractmethod
    def finish(self, state: RunState):
        """The task's result of the finished run (its last files written by the chief)."""


def steps_per_epoch(train, count_videos: Callable[[], int], videos: str, hint: str = "") -> int:
    """``train.steps_per_epoch``, or the videos an epoch can use // ``train.global_batch_size``
    when it is null.

    Args:
      train: the run's ``train`` section.
      count_videos: counts the usable training videos (called only when needed: it
        scans the shards).
      videos: what they are, for the log and the error ("usable training videos").
      hint: appended to the error's advice.

    Raises:
      ConfigError: fewer videos than one global batch.
    """
    if train.steps_per_epoch is not None:
        return train.steps_per_epoch
    usable = count_videos()
    steps = usable // train.global_batch_size
    if steps < 1:
        raise ConfigError(
            f"only {usable} {videos} for train.global_batch_size={train.global_batch_size}: "
            f"lower the batch or set train.steps_per_epoch{hint}"
        )
    logger.info(
        "%d %s // global batch %d = %d steps per epoch",
        usable,
        videos,
        train.global_batch_size,
        steps,
    )
    return steps


def manifest_summary(manifest: dict) -> str:
    """One line per split: what the extraction run wrote and what it lost."""
    lines = [
        f"schema v{manifest.get('schema_version')}, layout {manifest.get('layout')}, "
        f"{manifest.get('num_classes')} classes, created {manifest.get('created')}"
    ]
    for name, split in sorted(manifest.get("splits", {}).items()):
        lines.append(
            f"{name}: {split.get('written')} videos written of {split.get('listed')} listed "
            f"({split.get('failed')} failed, {split.get('short')} short, "
            f"{split.get('all_intra')} all-intra), {split.get('frames')} frames, "
            f"{len(split.get('shards', []))} shards"
        )
    return "; ".join(lines)

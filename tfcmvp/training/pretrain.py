"""Pretraining as a library call: ``pretrain(config, data_dir, workdir)``.

Reads the training shards of an extraction run (``DATA_DIR/train-*.tfrecord.gz``
beside its ``manifest.json``), builds the model under the configured
tf.distribute strategy and trains it with ``model.fit``. Everything the run
produces goes to WORKDIR:

    config.yaml                 the resolved config (every field)
    provenance.json             the data it trains on (path, manifest.json SHA-256)
    checkpoints/                tf.train checkpoints: model, optimizer, counters
    history.csv, history.png    one row / point per epoch
    tensorboard/                TensorBoard event files
    weights/{v,i,m}_network.weights.h5   the three backbones, for export

One run at a time: the run holds WORKDIR/.tfcmvp.lock (:mod:`tfcmvp.workdir_lock`),
and a second one started on the same WORKDIR stops at once naming the first.
Starting again with the same WORKDIR resumes from the newest checkpoint, at
the epoch and step where it was written (epoch ends, and every
``train.checkpoint_every_steps`` steps). Raising ``train.epochs`` and starting
again continues a finished run (the cosine schedule is then stretched to the
new length from the current step on). A WORKDIR written before some model
options existed resumes only with their old values (:func:`check_resumable_model`).
A resume on other data, or with a config key other than ``train.epochs``,
checkpointing, ``runtime.*`` and input-pipeline keys changed, is refused with
the difference named (:mod:`tfcmvp.training.provenance` has the rule).

Multi-worker runs (``runtime.strategy: multi_worker``) start the same call on
every worker with a shared WORKDIR: the chief writes the files above, the
other workers take part in each checkpoint through a scratch folder
(``WORKDIR/scratch-worker-N``, removed at the end).
"""

from __future__ import annotations

import dataclasses
import logging
import pathlib
from typing import Optional, Sequence

import keras
import tensorflow as tf

from tfcmvp import manifest as manifest_lib
from tfcmvp.config import (
    LEGACY_MODEL_DEFAULTS,
    ConfigError,
    DataConfig,
    PretrainConfig,
    read_config_file,
)
from tfcmvp.data import pretrain_dataset, reader, sampling
from tfcmvp.errors import InvalidDataError, RunRefusedError
from tfcmvp.manifest import find_shards, read_manifest
from tfcmvp.training import provenance
from tfcmvp.training.optimizer import build_optimizer
from tfcmvp.training.pretrain_model import INPUT_KEYS, PretrainModel
from tfcmvp.training.runner import run_task
from tfcmvp.training.task import RunState, Task, manifest_summary, steps_per_epoch
from tfcmvp.training.workdir import CHECKPOINT_DIR, CONFIG_NAME, HISTORY_CSV, WEIGHTS_DIR  # noqa: F401 (HISTORY_CSV, WEIGHTS_DIR: importable here)

logger = logging.getLogger(__name__)

TRAIN_SHARDS = manifest_lib.SHARD_GLOB.format(split="train")


@dataclasses.dataclass
class PretrainResult:
    """What a call to :func:`pretrain` did and wrote.

    Attributes:
      workdir: the run folder.
      history: the rows of history.csv (all epochs so far, across resumes).
      checkpoint: path prefix of the newest checkpoint (None if none).
      weights: {network name: .weights.h5 path}.
      initial_epoch: epochs that were already done when this call started.
      initial_step: optimizer step this call started from (0 = fresh run).
      steps_per_epoch: optimizer steps per epoch.
      num_replicas: replicas of the strategy.
    """

    workdir: pathlib.Path
    history: list
    checkpoint: Optional[str]
    weights: dict
    initial_epoch: int
    initial_step: int
    steps_per_epoch: int
    num_replicas: int


# Model options (of LEGACY_MODEL_DEFAULTS) that change what restored weights compute;
# the others only initialise weights, which a resumed run restores.
RESTORED_MODEL_KEYS = ("memory_fusion", "memory_bias", "context_pooling", "motion_stem")


def check_resumable_model(config: PretrainConfig, workdir) -> None:
    """Refuses to resume an older tfcmvp's WORKDIR with a network it was not trained as.

    That code saved WORKDIR/config.yaml without the model options of
    :data:`tfcmvp.config.LEGACY_MODEL_DEFAULTS`, and its checkpoints hold a
    network built with their legacy values. If WORKDIR has a checkpoint and
    `config` sets one of :data:`RESTORED_MODEL_KEYS` differently, raises
    ValueError naming the keys and the ``--set`` overrides that resume the
    run as it was: the motion network stem and the context pooling change no
    weight's shape, so the checkpoint restore alone would not notice.
    """
    workdir = pathlib.Path(workdir)
    path = workdir / CONFIG_NAME
    if not path.is_file() or tf.train.latest_checkpoint(str(workdir / CHECKPOINT_DIR)) is None:
        return
    try:
        saved = read_config_file(path).get("model") or {}
    except ConfigError:
        return  # unreadable: save_run_config warns and overwrites it
    if not isinstance(saved, dict):
        return
    changed = [
        key
        for key in RESTORED_MODEL_KEYS
        if key not in saved and getattr(config.model, key) != LEGACY_MODEL_DEFAULTS[key]
    ]
    if changed:
        now = ", ".join(f"model.{key}={getattr(config.model, key)!r}" for key in changed)
        fix = " ".join(
            f"--set model.{key}={str(LEGACY_MODEL_DEFAULTS[key]).lower()}" for key in changed
        )
        raise RunRefusedError(
            f"{path} was written before the options {', '.join('model.' + k for k in changed)} "
            f"existed, so the checkpoints in {workdir / CHECKPOINT_DIR} were trained with their "
            f"old values; the config asks for {now}. Resume with {fix} (or start a new WORKDIR)"
        )


def find_train_shards(data_dir) -> list[str]:
    """Sorted ``train-*.tfrecord.gz`` files of an extraction output folder.

    Raises FileNotFoundError naming the folder when there are none.
    """
    return find_shards(data_dir, "train", description="training")


def count_usable_videos(files, data: DataConfig) -> int:
    """Videos that can give a pretraining sample under `data`, logging the others.

    Raises ValueError when none can (with the reasons).
    """
    min_frames = sampling.min_frames(data)
    scan = reader.scan_records(files, on_corrupt=data.on_corrupt)
    skipped = scan.skipped(min_frames)
    usable = len(scan) - sum(len(ids) for ids in skipped.values())
    for reason, ids in skipped.items():
        if ids:
            logger.warning(
                "skipping %d of %d videos with %s, e.g. %s",
                len(ids),
                len(scan),
                reason,
                ", ".join(ids[:5]),
            )
    if usable == 0:
        raise InvalidDataError(
            f"none of the {len(scan)} videos in {len(files)} shard(s) ({files[0]} ...) can give "
            f"a pretraining sample: " + "; ".join(f"{len(v)} {r}" for r, v in skipped.items())
        )
    return usable


def resolve_steps_per_epoch(config: PretrainConfig, files) -> int:
    """``train.steps_per_epoch``, or usable videos // global batch when it is null."""
    return steps_per_epoch(
        config.train,
        lambda: count_usable_videos(files, config.data),
        "usable training videos",
        " (videos are then revisited within an epoch)",
    )


def make_train_dataset(config: PretrainConfig, files, data_seed: int) -> tf.data.Dataset:
    """Global batches of the model's inputs, repeated forever.

    Batches hold the *global* batch: `fit` distributes the dataset over the
    replicas, each getting global / replicas consecutive videos. Labels and
    video ids are dropped here (they are not inputs, and string tensors
    cannot be placed on GPUs).
    """
    dataset = pretrain_dataset(
        files,
        config.train.global_batch_size,
        config.data,
        seed=data_seed,
        deterministic=config.train.deterministic,
        repeat=True,
        drop_remainder=True,
        count_skipped=config.train.steps_per_epoch is not None,
    )
    return dataset.map(lambda batch: {key: batch[key] for key in INPUT_KEYS})


def pretrain(
    config: PretrainConfig,
    data_dir,
    workdir,
    *,
    verbose="auto",
    callbacks: Sequence[keras.callbacks.Callback] = (),
    allow_data_change: bool = False,
) -> PretrainResult:
    """Pretrains (or resumes pretraining) on the shards in `data_dir` into `workdir`.

    Args:
      config: the run (see :mod:`tfcmvp.config`).
      data_dir: output folder of the extraction job (train-*.tfrecord.gz).
      workdir: run folder (created); an existing one is resumed.
      verbose: Keras `fit` verbosity ("auto", 0 silent, 1 progress bar, 2 one line
        per epoch).
      callbacks: more Keras callbacks, run after the built-in ones (so after
        the step's or epoch's checkpoint has been written).
      allow_data_change: resume `workdir` on data whose manifest.json differs
        from the one it was trained on (recorded in WORKDIR/provenance.json;
        see :mod:`tfcmvp.training.provenance`).

    Raises:
      NonFiniteLossError: a loss became NaN/Inf (nothing saved after it).
      FileNotFoundError: no training shards in `data_dir`.
      ValueError: batch not divisible by the replicas, no usable video, a
        checkpoint that does not fit the model of the config, or a resume on
        other data or with a config key that may not change
        (:mod:`tfcmvp.training.provenance`).
      tfcmvp.workdir_lock.WorkdirBusyError: another run holds `workdir`.

    A refused call (any of the errors above but the first) leaves `workdir`
    as it was.

    With ``train.deterministic`` two calls with the same config, data and
    seed give bit-identical histories and weights on one device (see
    :class:`tfcmvp.config.TrainConfig`).
    """
    task = PretrainTask(config, data_dir)
    return run_task(
        task,
        workdir,
        verbose=verbose,
        callbacks=callbacks,
        allow_data_change=allow_data_change,
    )


class PretrainTask(Task):
    """Pretraining as a :class:`~tfcmvp.training.task.Task`: PretrainModel on the
    training shards of `data_dir`; saves the three backbones after every epoch."""

    def __init__(self, config: PretrainConfig, data_dir):
        super().__init__(config, data_dir)
        self.files: list = []

    def prepare(self) -> int:
        self.files = find_train_shards(self.data_dir)
        manifest = read_manifest(self.data_dir)
        if manifest is None:
            logger.warning(
                "%s has no %s (not a finished extraction run?)",
                self.data_dir,
                manifest_lib.MANIFEST_NAME,
            )
        else:
            logger.info("data %s: %s", self.data_dir, manifest_summary(manifest))
        logger.info("%d training shard(s) in %s", len(self.files), self.data_dir)
        return resolve_steps_per_epoch(self.config, self.files)

    def check_resume(self, workdir, chief, allow_data_change):
        check_resumable_model(self.config, workdir)  # before config.yaml is overwritten
        # The same run on the same data, or a refusal naming the difference.
        return provenance.check_resume(
            workdir,
            self.config,
            self.data_dir,
            config_name=CONFIG_NAME,
            checkpoint_dir=CHECKPOINT_DIR,
            allow_data_change=allow_data_change,
        )

    def build_model(self, steps_per_epoch: int) -> PretrainModel:
        motion_only = round(self.config.loss.motion_only_epochs * steps_per_epoch)
        model = PretrainModel.from_pretrain_config(self.config, motion_only_steps=motion_only)
        model.build()
        return model

    def build_optimizer(self, steps_per_epoch: int):
        return build_optimizer(self.config, steps_per_epoch)

    def build_train_data(self, data_seed: int) -> tf.data.Dataset:
        return make_train_dataset(self.config, self.files, data_seed)

    def network_weights(self, model: PretrainModel) -> dict:
        return model.networks()

    def finish(self, state: RunState) -> PretrainResult:
        return PretrainResult(weights=state.weights, **state.result_fields())

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

import contextlib
import dataclasses
import logging
import pathlib
import shutil
from typing import Optional, Sequence

import keras
import tensorflow as tf

from tfcmvp import manifest as manifest_lib
from tfcmvp import workdir_lock
from tfcmvp.config import (
    LEGACY_MODEL_DEFAULTS,
    ConfigError,
    DataConfig,
    PretrainConfig,
    read_config_file,
)
from tfcmvp.manifest import find_shards, read_manifest
from tfcmvp.training import callbacks as cb
from tfcmvp.training import provenance
from tfcmvp.training.loop import (
    compile_with_checkpoint,
    fit_with_resume,
    resume_point,
    save_run_config,
    set_precision_policy,
    start_strategy,
)
from tfcmvp.training.optimizer import build_optimizer
from tfcmvp.training.pretrain_model import INPUT_KEYS, PretrainModel
from tfcmvp.training.strategy import is_chief, op_determinism, worker_name

logger = logging.getLogger(__name__)

TRAIN_SHARDS = manifest_lib.SHARD_GLOB.format(split="train")
CONFIG_NAME = "config.yaml"
CHECKPOINT_DIR = "checkpoints"
HISTORY_CSV = "history.csv"
HISTORY_PNG = "history.png"
TENSORBOARD_DIR = "tensorboard"
WEIGHTS_DIR = "weights"


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
    run as it was: the M-Network stem and the context pooling change no
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
        raise ValueError(
            f"{path} was written before the options {', '.join('model.' + k for k in changed)} "
            f"existed, so the checkpoints in {workdir / CHECKPOINT_DIR} were trained with their "
            f"old values; the config asks for {now}. Resume with {fix} (or start a new WORKDIR)"
        )


def find_train_shards(data_dir) -> list[str]:
    """Sorted ``train-*.tfrecord.gz`` files of an extraction output folder.

    Raises FileNotFoundError naming the folder when there are none.
    """
    return find_shards(data_dir, "train", description="training")


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


def count_usable_videos(files, data: DataConfig) -> int:
    """Videos that can give a pretraining sample under `data`, logging the others.

    Raises ValueError when none can (with the reasons).
    """
    from tfcmvp.data import reader, sampling

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
        raise ValueError(
            f"none of the {len(scan)} videos in {len(files)} shard(s) ({files[0]} ...) can give "
            f"a pretraining sample: " + "; ".join(f"{len(v)} {r}" for r, v in skipped.items())
        )
    return usable


def resolve_steps_per_epoch(config: PretrainConfig, files) -> int:
    """``train.steps_per_epoch``, or usable videos // global batch when it is null."""
    if config.train.steps_per_epoch is not None:
        return config.train.steps_per_epoch
    usable = count_usable_videos(files, config.data)
    steps = usable // config.train.global_batch_size
    if steps < 1:
        raise ValueError(
            f"only {usable} usable training videos for train.global_batch_size="
            f"{config.train.global_batch_size}: lower the batch or set train.steps_per_epoch "
            f"(videos are then revisited within an epoch)"
        )
    logger.info(
        "%d usable training videos // global batch %d = %d steps per epoch",
        usable,
        config.train.global_batch_size,
        steps,
    )
    return steps


def make_train_dataset(config: PretrainConfig, files, data_seed: int) -> tf.data.Dataset:
    """Global batches of the model's inputs, repeated forever.

    Batches hold the *global* batch: `fit` distributes the dataset over the
    replicas, each getting global / replicas consecutive videos. Labels and
    video ids are dropped here (they are not inputs, and string tensors
    cannot be placed on GPUs).
    """
    from tfcmvp.data import pretrain_dataset

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
    # Op determinism is process-wide: on (or off) for this run only, and
    # before the run's first op. The workdir lock is taken inside, once the
    # strategy says whether this process is the chief; the stack releases it.
    with op_determinism(config.train.deterministic), contextlib.ExitStack() as held:
        return _pretrain(
            config,
            data_dir,
            workdir,
            verbose=verbose,
            callbacks=callbacks,
            held=held,
            allow_data_change=allow_data_change,
        )


def _pretrain(
    config: PretrainConfig,
    data_dir,
    workdir,
    *,
    verbose,
    callbacks: Sequence[keras.callbacks.Callback],
    held: contextlib.ExitStack,
    allow_data_change: bool = False,
) -> PretrainResult:
    """:func:`pretrain` inside its op-determinism setting; the workdir lock goes on `held`.

    Every check that can refuse a (resumed) run comes before the first write
    into WORKDIR, so that a refused run leaves it as it was.
    """
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    strategy = start_strategy(config)
    chief = is_chief(strategy)
    # One run per WORKDIR; the other workers of a multi-worker run share the chief's.
    held.enter_context(workdir_lock.hold(workdir, enabled=chief))
    set_precision_policy(config.train)  # before anything is written: it can refuse

    files = find_train_shards(data_dir)
    manifest = read_manifest(data_dir)
    if manifest is None:
        logger.warning(
            "%s has no %s (not a finished extraction run?)", data_dir, manifest_lib.MANIFEST_NAME
        )
    else:
        logger.info("data %s: %s", data_dir, manifest_summary(manifest))
    logger.info("%d training shard(s) in %s", len(files), data_dir)
    steps_per_epoch = resolve_steps_per_epoch(config, files)

    check_resumable_model(config, workdir)  # before config.yaml is overwritten
    # The same run on the same data, or a refusal naming the difference.
    record = provenance.check_resume(
        workdir,
        config,
        data_dir,
        config_name=CONFIG_NAME,
        checkpoint_dir=CHECKPOINT_DIR,
        allow_data_change=allow_data_change,
    )
    keras.utils.set_random_seed(config.train.seed)

    with strategy.scope():
        model = PretrainModel.from_pretrain_config(
            config, motion_only_steps=round(config.loss.motion_only_epochs * steps_per_epoch)
        )
        model.build()
        optimizer = build_optimizer(config, steps_per_epoch)
        # Every worker saves (sync-on-read metric sums are reduced across
        # workers when saved); the non-chief workers into a scratch folder.
        scratch = None if chief else workdir / f"scratch-{worker_name(strategy)}"
        optimizer, checkpoint = compile_with_checkpoint(
            model, optimizer, config.train, workdir / CHECKPOINT_DIR, write_directory=scratch
        )

    # The checkpoint restore (a changed architecture) and resume_point (a changed
    # epoch length) can still refuse: config.yaml is written only after them.
    start = resume_point(checkpoint, steps_per_epoch)
    if chief:
        save_run_config(config, workdir / CONFIG_NAME)
        provenance.write_provenance(workdir, record)
    model.summary(print_fn=logger.debug)  # the layer table only at --log_level DEBUG

    networks = model.networks()
    if start.epoch < config.train.epochs:
        dataset = make_train_dataset(config, files, data_seed=start.data_seed(config.train.seed))
        run_callbacks = [cb.StopOnNonFiniteLoss()]  # first: it must stop before anything saves
        if chief:
            run_callbacks += [
                cb.HistoryCSV(workdir / HISTORY_CSV),  # before the checkpoint: a kill in
                cb.HistoryPlot(workdir / HISTORY_CSV, workdir / HISTORY_PNG),  # between redoes
                cb.SaveNetworkWeights(workdir / WEIGHTS_DIR, networks),  # the epoch
            ]
        fit_with_resume(
            model,
            dataset,
            epochs=config.train.epochs,
            steps_per_epoch=steps_per_epoch,
            checkpoint=checkpoint,
            every_steps=config.train.checkpoint_every_steps,
            callbacks=run_callbacks,
            tensorboard_dir=workdir / TENSORBOARD_DIR if chief else None,
            later_callbacks=callbacks,
            verbose=verbose,
        )
    else:
        logger.info(
            "%s already holds %d epochs (train.epochs=%d): nothing to train",
            workdir,
            start.epoch,
            config.train.epochs,
        )

    weights = {}
    if chief:
        weights = cb.save_network_weights(workdir / WEIGHTS_DIR, networks)
    elif scratch is not None:
        shutil.rmtree(scratch, ignore_errors=True)
    return PretrainResult(
        workdir=workdir,
        history=cb.read_history(workdir / HISTORY_CSV),
        checkpoint=checkpoint.latest,
        weights=weights,
        initial_epoch=start.epoch,
        initial_step=start.step,
        steps_per_epoch=steps_per_epoch,
        num_replicas=strategy.num_replicas_in_sync,
    )

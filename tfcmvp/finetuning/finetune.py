"""Finetuning as a library call: ``finetune(config, data_dir, workdir, model_dir | random_init)``.

Trains an action classifier (:class:`VideoClassifier`) on the training shards
of an extraction run (``DATA_DIR/train-*.tfrecord.gz``, class names in
``DATA_DIR/labels.txt``), starting from the V-Network of a tfcmvp export
(``model_dir``; only the V-Network weights are transferred) or from random
weights (``random_init=True``, the "scratch" rows of paper Tables 2, 3 and 6).
It tests on ``DATA_DIR/test-*.tfrecord.gz`` with the 10-clip protocol after
the epochs of ``test.eval_epochs`` and after the last one. WORKDIR receives:

    config.yaml                 the resolved FinetuneConfig (every field)
    source.json                 the pretrained model (or random init) the run started from
    provenance.json             its data (path, manifest.json SHA-256) and start (export
                                fingerprint): a resume with others is refused
    checkpoints/                tf.train checkpoints: model, optimizer, counters
    history.csv, history.png    one row / point per epoch: loss, ce_loss, acc, lr and,
                                after tested epochs, val_top1 / val_top5 (fractions)
    tensorboard/                TensorBoard event files (if tensorboard is installed)
    weights/classifier.weights.h5   the VideoClassifier's weights after every epoch
    results.json                {"top1": %, "top5": %, "epochs", "model", "data",
                                "random_init", ...}
    test_predictions.csv        per test video: label, prediction, probabilities
    saved_model/                SavedModel: classify (clips -> logits, probabilities),
                                embed, features (tfcmvp.export contract, network "classifier")

Starting again with the same WORKDIR resumes from the newest checkpoint, as
pretraining does (one run at a time: WORKDIR/.tfcmvp.lock, see
:mod:`tfcmvp.workdir_lock`); a finished run is tested and exported again.

Multi-worker runs (``runtime.strategy: multi_worker``) start the same call on
every worker with a shared WORKDIR: the chief writes the files above, the
other workers take part in each checkpoint through a scratch folder
(``WORKDIR/scratch-worker-N``, removed at the end) and run the test too (its
result goes into every worker's epoch logs).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import pathlib
import shutil
from typing import Optional, Sequence

import keras
import tensorflow as tf

from tfcmvp import manifest as manifest_lib
from tfcmvp import workdir_lock
from tfcmvp.config import dump_config
from tfcmvp.data import features
from tfcmvp.finetuning import callbacks as ft_callbacks
from tfcmvp.finetuning.classifier import VideoClassifier, load_backbone_weights
from tfcmvp.finetuning.config import FinetuneConfig, check_architecture
from tfcmvp.finetuning.evaluate import EvalResult, evaluate_classifier
from tfcmvp.finetuning.optimizer import build_finetune_optimizer
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
from tfcmvp.training.pretrain import (
    CHECKPOINT_DIR,
    CONFIG_NAME,
    HISTORY_CSV,
    HISTORY_PNG,
    TENSORBOARD_DIR,
    WEIGHTS_DIR,
    manifest_summary,
)
from tfcmvp.training.strategy import is_chief, op_determinism, worker_name

logger = logging.getLogger(__name__)

RESULTS_NAME = "results.json"
SOURCE_NAME = "source.json"
PREDICTIONS_NAME = "test_predictions.csv"
SAVED_MODEL_DIR = "saved_model"
WEIGHTS_STEM = "classifier"  # WORKDIR/weights/classifier.weights.h5
WATCHED_LOSSES = ("ce_loss", "motion_loss", "loss")  # most specific first


@dataclasses.dataclass
class FinetuneResult:
    """What a call to :func:`finetune` did and wrote.

    Attributes:
      workdir: the run folder.
      results: the content of results.json.
      test: the final test (:class:`EvalResult`: accuracies, per-video probabilities).
      history: the rows of history.csv (all epochs so far, across resumes).
      checkpoint: path prefix of the newest checkpoint (None if none).
      saved_model: the exported SavedModel folder.
      class_names: the classes, in label order.
      initial_epoch: epochs already done when this call started.
      initial_step: optimizer step this call started from (0 = fresh run).
      steps_per_epoch: optimizer steps per epoch.
      num_replicas: replicas of the strategy.
    """

    workdir: pathlib.Path
    results: dict
    test: EvalResult
    history: list
    checkpoint: Optional[str]
    saved_model: pathlib.Path
    class_names: list
    initial_epoch: int
    initial_step: int
    steps_per_epoch: int
    num_replicas: int


# ---------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------


def read_class_names(data_dir) -> list[str]:
    """The class names of ``DATA_DIR/labels.txt``, one per line, in label order."""
    path = pathlib.Path(data_dir) / manifest_lib.LABELS_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: finetuning needs the class names that the "
            f"extraction job writes beside the shards"
        )
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    names = [name for name in names if name]
    if len(names) < 2:
        raise ValueError(f"{path} lists {len(names)} class(es); a classifier needs >= 2")
    return names


def resolve_steps_per_epoch(config: FinetuneConfig, files) -> int:
    """``train.steps_per_epoch``, or training videos // global batch when it is null."""
    if config.train.steps_per_epoch is not None:
        return config.train.steps_per_epoch
    from tfcmvp.data import reader

    scan = reader.scan_records(files, on_corrupt=config.data.on_corrupt)
    usable = int((scan.num_frames >= 1).sum())  # finetune_dataset keeps every non-empty video
    steps = usable // config.train.global_batch_size
    if steps < 1:
        raise ValueError(
            f"only {usable} training videos for train.global_batch_size="
            f"{config.train.global_batch_size}: lower the batch or set train.steps_per_epoch"
        )
    logger.info(
        "%d training videos // global batch %d = %d steps per epoch",
        usable,
        config.train.global_batch_size,
        steps,
    )
    return steps


def make_train_dataset(config: FinetuneConfig, files, data_seed: int) -> tf.data.Dataset:
    """Global batches of the model's inputs, repeated forever (strings dropped:
    they are not inputs and cannot be placed on GPUs)."""
    from tfcmvp.data import finetune_dataset

    keys = (features.CLIP, features.LABEL) + ((features.MOTION,) if config.motion_aux else ())
    dataset = finetune_dataset(
        files,
        config.train.global_batch_size,
        config.data,
        with_motion=config.motion_aux,
        seed=data_seed,
        deterministic=config.train.deterministic,
        repeat=True,
        drop_remainder=True,
    )
    return dataset.map(lambda batch: {key: batch[key] for key in keys})


# ---------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------


def finetune(
    config: FinetuneConfig,
    data_dir,
    workdir,
    model_dir=None,
    *,
    random_init: bool = False,
    verbose="auto",
    callbacks: Sequence[keras.callbacks.Callback] = (),
    allow_data_change: bool = False,
) -> FinetuneResult:
    """Finetunes (or resumes finetuning) a classifier, tests it and exports it.

    Args:
      config: the run (see :mod:`tfcmvp.finetuning.config`). With `model_dir`
        its architecture fields must match the export (load it with
        ``load_finetune_config(..., model_dir=...)`` to take them from there).
      data_dir: output folder of the extraction job (train-/test-*.tfrecord.gz,
        labels.txt).
      workdir: run folder (created); an existing one is resumed.
      model_dir: a tfcmvp export of a V-Network (``tfcmvp export``) whose
        weights initialise the backbone.
      random_init: start from random weights instead (exactly one of
        `model_dir` and `random_init` must be given).
      verbose: Keras `fit` verbosity ("auto", 0, 1, 2).
      callbacks: more Keras callbacks, run after the built-in ones.
      allow_data_change: resume `workdir` on data whose manifest.json differs
        from the one it was trained on (see :mod:`tfcmvp.training.provenance`).

    Raises:
      NonFiniteLossError: a loss became NaN/Inf (nothing saved after it).
      FileNotFoundError: no shards or no labels.txt in `data_dir`.
      ConfigError: the config's architecture disagrees with `model_dir`.
      ValueError: neither or both of model_dir / random_init, a batch not
        divisible by the replicas, a workdir started from another model, a
        checkpoint that does not fit the model of the config, or a resume on
        other data or with a config key that may not change
        (:mod:`tfcmvp.training.provenance`).
      tfcmvp.workdir_lock.WorkdirBusyError: another run holds `workdir`.

    A refused call (any of the errors above but the first) leaves `workdir`
    as it was.

    With ``train.deterministic`` two calls with the same config, data, start
    and seed give bit-identical histories, weights and test results on one
    device (see :class:`tfcmvp.config.TrainConfig`).
    """
    # Op determinism is process-wide: on (or off) for this run only, and
    # before the run's first op. The workdir lock is taken inside, once the
    # strategy says whether this process is the chief; the stack releases it.
    with op_determinism(config.train.deterministic), contextlib.ExitStack() as held:
        return _finetune(
            config,
            data_dir,
            workdir,
            model_dir,
            random_init=random_init,
            verbose=verbose,
            callbacks=callbacks,
            held=held,
            allow_data_change=allow_data_change,
        )


def _finetune(
    config: FinetuneConfig,
    data_dir,
    workdir,
    model_dir,
    *,
    random_init: bool,
    verbose,
    callbacks: Sequence[keras.callbacks.Callback],
    held: contextlib.ExitStack,
    allow_data_change: bool = False,
) -> FinetuneResult:
    """:func:`finetune` inside its op-determinism setting; the workdir lock goes on `held`.

    Every check that can refuse a (resumed) run comes before the first write
    into WORKDIR, so that a refused run leaves it as it was.
    """
    if (model_dir is None) == (not random_init):
        raise ValueError(
            "finetune needs exactly one of model_dir (a pretrained export) and "
            f"random_init=True, got model_dir={model_dir!r}, "
            f"random_init={random_init!r}"
        )
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    model_dir = None if model_dir is None else pathlib.Path(model_dir).resolve()
    if model_dir is not None:
        check_architecture(config, model_dir)
    strategy = start_strategy(config)
    chief = is_chief(strategy)
    # One run per WORKDIR; the other workers of a multi-worker run share the chief's.
    held.enter_context(workdir_lock.hold(workdir, enabled=chief))
    set_precision_policy(config.train)  # before anything is written: it can refuse

    train_files = find_shards(data_dir, "train")
    test_files = find_shards(data_dir, "test")
    class_names = read_class_names(data_dir)
    manifest = read_manifest(data_dir)
    if manifest is not None:
        logger.info("data %s: %s", data_dir, manifest_summary(manifest))
    logger.info(
        "%d classes; %d train and %d test shard(s) in %s",
        len(class_names),
        len(train_files),
        len(test_files),
        data_dir,
    )
    steps_per_epoch = resolve_steps_per_epoch(config, train_files)

    source = {"model": None if model_dir is None else str(model_dir), "random_init": random_init}
    # Multi-worker runs: every worker runs this with the same WORKDIR; the chief writes
    # the run's files, the others only take part in checkpoints (through a scratch
    # folder, removed at the end) and run the test (for the epoch logs).
    if chief:
        # provenance.json names the export by fingerprint (a moved export resumes);
        # a workdir of an older tfcmvp has only source.json, compared by path.
        if provenance.read_provenance(workdir) is None:
            _check_source(workdir / SOURCE_NAME, source)
        record = provenance.check_resume(
            workdir,
            config,
            data_dir,
            config_name=CONFIG_NAME,
            checkpoint_dir=CHECKPOINT_DIR,
            start=provenance.start_record(model_dir, random_init),
            allow_data_change=allow_data_change,
        )
    keras.utils.set_random_seed(config.train.seed)

    with strategy.scope():
        model = VideoClassifier.from_finetune_config(config, len(class_names))
        model.build()
        if model_dir is not None:
            _load_pretrained(model, model_dir)
        optimizer = build_finetune_optimizer(config, steps_per_epoch)
        scratch = None if chief else workdir / f"scratch-{worker_name(strategy)}"
        optimizer, checkpoint = compile_with_checkpoint(
            model, optimizer, config.train, workdir / CHECKPOINT_DIR, write_directory=scratch
        )

    # The checkpoint restore (a changed architecture) and resume_point (a changed
    # epoch length) can still refuse: the run's files are written only after them.
    start = resume_point(checkpoint, steps_per_epoch)
    if chief:
        _write_json(workdir / SOURCE_NAME, source)
        save_run_config(config, workdir / CONFIG_NAME)
        provenance.write_provenance(workdir, record)
    model.summary(print_fn=logger.debug)  # the layer table only at --log_level DEBUG

    def run_test(network) -> EvalResult:
        return evaluate_classifier(network, config, test_files)

    tester = ft_callbacks.EvaluateAfterEpochs(
        run_test, set(config.test.eval_epochs) | {config.train.epochs}
    )
    if start.epoch < config.train.epochs:
        dataset = make_train_dataset(
            config, train_files, data_seed=start.data_seed(config.train.seed)
        )
        run_callbacks = [
            cb.StopOnNonFiniteLoss(WATCHED_LOSSES),  # first: it must stop before anything saves
            tester,  # before the history: it adds val_top1 / val_top5 to the epoch's logs
        ]
        if chief:
            run_callbacks += [
                cb.HistoryCSV(workdir / HISTORY_CSV, ft_callbacks.FINETUNE_COLUMNS),
                cb.HistoryPlot(
                    workdir / HISTORY_CSV, workdir / HISTORY_PNG, ft_callbacks.FINETUNE_PANELS
                ),
                cb.SaveNetworkWeights(workdir / WEIGHTS_DIR, {WEIGHTS_STEM: model}),
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
            "%s already holds %d epochs (train.epochs=%d): testing and exporting only",
            workdir,
            start.epoch,
            config.train.epochs,
        )

    if chief:
        cb.save_network_weights(workdir / WEIGHTS_DIR, {WEIGHTS_STEM: model})
    if tester.last is not None and tester.last[0] == config.train.epochs:
        test = tester.last[1]
    else:
        test = run_test(model)
    epochs_done = int(checkpoint.epoch.numpy())
    results = {
        "top1": test.top1,
        "top5": test.top5,
        "epochs": epochs_done,
        "model": source["model"],
        "data": str(pathlib.Path(data_dir).resolve()),
        "random_init": random_init,
        "num_test_videos": test.num_videos,
        "num_classes": len(class_names),
        "num_clips": config.test.num_clips,
        "backbone": config.model.backbone,
        "motion_aux_weight": config.train.motion_aux_weight,
    }
    logger.info(
        "test after %d epochs: top-1 %.2f%%, top-5 %.2f%% (%d videos, %d clips each)",
        epochs_done,
        test.top1,
        test.top5,
        test.num_videos,
        config.test.num_clips,
    )
    saved_model = workdir / SAVED_MODEL_DIR
    if chief:
        test.write_predictions(workdir / PREDICTIONS_NAME, class_names)
        _write_json(workdir / RESULTS_NAME, results)
        saved_model = export_classifier(
            model,
            config,
            saved_model,
            class_names,
            source={
                "kind": "finetuned",
                "workdir": str(workdir.resolve()),
                "epoch": epochs_done,
                **source,
            },
        )
    elif scratch is not None:
        shutil.rmtree(scratch, ignore_errors=True)
    return FinetuneResult(
        workdir=workdir,
        results=results,
        test=test,
        history=cb.read_history(workdir / HISTORY_CSV),
        checkpoint=checkpoint.latest,
        saved_model=saved_model,
        class_names=class_names,
        initial_epoch=start.epoch,
        initial_step=start.step,
        steps_per_epoch=steps_per_epoch,
        num_replicas=strategy.num_replicas_in_sync,
    )


def _load_pretrained(model: VideoClassifier, model_dir: pathlib.Path) -> None:
    """Copies the export's V-Network weights into the classifier's backbone."""
    from tfcmvp.export import load_keras_network

    network = load_keras_network(model_dir)
    load_backbone_weights(model.backbone, network, source=str(model_dir))
    logger.info("V-Network weights loaded from %s", model_dir)


# ---------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------


def export_classifier(
    model: VideoClassifier,
    config: FinetuneConfig,
    output_dir,
    class_names: Sequence[str],
    source: dict,
) -> pathlib.Path:
    """Writes the finetuned classifier as a tfcmvp export (network "classifier").

    Signatures: ``classify`` (clips -> {"logits", "probabilities"}, the
    softmax of the logits) plus the ``embed`` / ``features`` of its V-Network.
    """
    from tfcmvp.export import CLASSIFY, export_network
    from tfcmvp.export.contract import make_export_info, video_input_contract

    def classify(clips):  # [N, T, S, S, 3]
        logits = tf.cast(model(clips, training=False), tf.float32)  # [N, K]
        return {"logits": logits, "probabilities": tf.nn.softmax(logits, axis=-1)}

    data = config.data
    input_spec = video_input_contract(data.clip_len, data.clip_stride, data.crop_size)
    input_spec["resize_short"] = config.test.resize_short  # the geometry it was tested with
    info = make_export_info(
        network="classifier",
        backbone=config.model.backbone,
        input_spec=input_spec,
        source=source,
        num_classes=len(class_names),
        class_names=list(class_names),
    )
    # embed / features come from the V-Network; assets/network.weights.h5 holds
    # its weights (the classifier's are in the SavedModel's variables and in
    # WORKDIR/weights/classifier.weights.h5).
    return export_network(
        model.backbone,
        output_dir,
        info,
        dump_config(config),
        extra_signatures={CLASSIFY: classify},
        overwrite=True,
    )


# ---------------------------------------------------------------------------
# Workdir files
# ---------------------------------------------------------------------------


def _write_json(path: pathlib.Path, value: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


def _check_source(path: pathlib.Path, source: dict) -> None:
    """Refuses a workdir with checkpoints whose source.json names another start
    (the caller writes source.json once every check has passed)."""
    if path.is_file() and tf.train.latest_checkpoint(str(path.parent / CHECKPOINT_DIR)):
        previous = json.loads(path.read_text(encoding="utf-8"))
        if previous != source:
            raise ValueError(
                f"{path.parent} holds a run started from {previous}, not {source}: use another "
                f"workdir (resuming would mix two initialisations)"
            )

"""Finetuning as a library call: ``finetune(config, data_dir, workdir, model_dir | random_init)``.

Trains an action classifier (:class:`VideoClassifier`) on the training shards
of an extraction run (``DATA_DIR/train-*.tfrecord.gz``, class names in
``DATA_DIR/labels.txt``), starting from the video network of a tfcmvp export
(``model_dir``; only the video network weights are transferred) or from random
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

import dataclasses
import json
import logging
import pathlib
from typing import Optional, Sequence

import keras
import tensorflow as tf

from tfcmvp.errors import RunRefusedError
from tfcmvp.export import load_keras_network
from tfcmvp.finetuning import callbacks as ft_callbacks
from tfcmvp.finetuning.classifier import VideoClassifier, load_backbone_weights
from tfcmvp.finetuning.config import FinetuneConfig, check_architecture
from tfcmvp.finetuning.evaluate import EvalResult, evaluate_classifier
from tfcmvp.finetuning.export import export_classifier
from tfcmvp.finetuning.inputs import (  # noqa: F401 (importable here, where callers find them)
    make_train_dataset,
    read_class_names,
    resolve_steps_per_epoch,
)
from tfcmvp.finetuning.optimizer import build_finetune_optimizer
from tfcmvp.manifest import find_shards, read_manifest
from tfcmvp.training import provenance
from tfcmvp.training.runner import run_task
from tfcmvp.training.task import RunState, Task, manifest_summary
from tfcmvp.training.workdir import CHECKPOINT_DIR, CONFIG_NAME

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
      model_dir: a tfcmvp export of a video network (``tfcmvp export``) whose
        weights initialise the classifier's video network.
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
    if (model_dir is None) == (not random_init):
        raise ValueError(
            "finetune needs exactly one of model_dir (a pretrained export) and "
            f"random_init=True, got model_dir={model_dir!r}, "
            f"random_init={random_init!r}"
        )
    model_dir = None if model_dir is None else pathlib.Path(model_dir).resolve()
    task = FinetuneTask(config, data_dir, model_dir, random_init)
    return run_task(
        task,
        workdir,
        verbose=verbose,
        callbacks=callbacks,
        allow_data_change=allow_data_change,
    )


class FinetuneTask(Task):
    """Finetuning as a :class:`~tfcmvp.training.task.Task`: a VideoClassifier from
    `model_dir`'s video network (or random weights), tested after the epochs of
    ``test.eval_epochs`` and the last, then exported.

    Multi-worker runs: every worker runs it with the same WORKDIR; the chief
    writes the run's files, the others only take part in checkpoints and run
    the test (for the epoch logs).
    """

    watched_losses = WATCHED_LOSSES
    history_columns = ft_callbacks.FINETUNE_COLUMNS
    history_panels = ft_callbacks.FINETUNE_PANELS
    done_message = "testing and exporting only"

    def __init__(self, config: FinetuneConfig, data_dir, model_dir, random_init: bool):
        super().__init__(config, data_dir)
        self.model_dir = model_dir
        self.random_init = random_init
        self.source = {
            "model": None if model_dir is None else str(model_dir),
            "random_init": random_init,
        }
        self.train_files: list = []
        self.test_files: list = []
        self.class_names: list = []
        self.tester = None

    def check_start(self, workdir) -> None:
        if self.model_dir is not None:
            check_architecture(self.config, self.model_dir)

    def prepare(self) -> int:
        data_dir = self.data_dir
        self.train_files = find_shards(data_dir, "train")
        self.test_files = find_shards(data_dir, "test")
        self.class_names = read_class_names(data_dir)
        manifest = read_manifest(data_dir)
        if manifest is not None:
            logger.info("data %s: %s", data_dir, manifest_summary(manifest))
        logger.info(
            "%d classes; %d train and %d test shard(s) in %s",
            len(self.class_names),
            len(self.train_files),
            len(self.test_files),
            data_dir,
        )
        return resolve_steps_per_epoch(self.config, self.train_files)

    def check_resume(self, workdir, chief, allow_data_change):
        if not chief:
            return None
        # provenance.json names the export by fingerprint (a moved export resumes);
        # a workdir of an older tfcmvp has only source.json, compared by path.
        if provenance.read_provenance(workdir) is None:
            _check_source(workdir / SOURCE_NAME, self.source)
        return provenance.check_resume(
            workdir,
            self.config,
            self.data_dir,
            config_name=CONFIG_NAME,
            checkpoint_dir=CHECKPOINT_DIR,
            start=provenance.start_record(self.model_dir, self.random_init),
            allow_data_change=allow_data_change,
        )

    def build_model(self, steps_per_epoch: int) -> VideoClassifier:
        model = VideoClassifier.from_finetune_config(self.config, len(self.class_names))
        model.build()
        if self.model_dir is not None:
            _load_pretrained(model, self.model_dir)
        return model

    def build_optimizer(self, steps_per_epoch: int):
        return build_finetune_optimizer(self.config, steps_per_epoch)

    def build_train_data(self, data_seed: int) -> tf.data.Dataset:
        return make_train_dataset(self.config, self.train_files, data_seed)

    def network_weights(self, model: VideoClassifier) -> dict:
        return {WEIGHTS_STEM: model}

    def write_start_files(self, workdir) -> None:
        _write_json(workdir / SOURCE_NAME, self.source)

    def epoch_callbacks(self, model: VideoClassifier) -> list:
        # Before the history: it adds val_top1 / val_top5 to the epoch's logs.
        epochs = set(self.config.test.eval_epochs) | {self.config.train.epochs}
        self.tester = ft_callbacks.EvaluateAfterEpochs(self.run_test, epochs)
        return [self.tester]

    def run_test(self, network) -> EvalResult:
        return evaluate_classifier(network, self.config, self.test_files)

    def finish(self, state: RunState) -> FinetuneResult:
        last = self.tester.last
        if last is not None and last[0] == self.config.train.epochs:
            test = last[1]
        else:
            test = self.run_test(state.model)
        results = self.results(test, int(state.checkpoint.epoch.numpy()))
        saved_model = state.workdir / SAVED_MODEL_DIR
        if state.chief:
            saved_model = self.write_results(state, test, results)
        return FinetuneResult(
            results=results,
            test=test,
            saved_model=saved_model,
            class_names=self.class_names,
            **state.result_fields(),
        )

    def results(self, test: EvalResult, epochs_done: int) -> dict:
        """The content of results.json (and logs the test)."""
        config = self.config
        logger.info(
            "test after %d epochs: top-1 %.2f%%, top-5 %.2f%% (%d videos, %d clips each)",
            epochs_done,
            test.top1,
            test.top5,
            test.num_videos,
            config.test.num_clips,
        )
        return {
            "top1": test.top1,
            "top5": test.top5,
            "epochs": epochs_done,
            "model": self.source["model"],
            "data": str(pathlib.Path(self.data_dir).resolve()),
            "random_init": self.random_init,
            "num_test_videos": test.num_videos,
            "num_classes": len(self.class_names),
            "num_clips": config.test.num_clips,
            "backbone": config.model.video_network,
            "motion_aux_weight": config.train.motion_aux_weight,
        }

    def write_results(self, state: RunState, test: EvalResult, results: dict) -> pathlib.Path:
        """test_predictions.csv, results.json and the SavedModel (chief only)."""
        workdir = state.workdir
        test.write_predictions(workdir / PREDICTIONS_NAME, self.class_names)
        _write_json(workdir / RESULTS_NAME, results)
        return export_classifier(
            state.model,
            self.config,
            workdir / SAVED_MODEL_DIR,
            self.class_names,
            source={
                "kind": "finetuned",
                "workdir": str(workdir.resolve()),
                "epoch": results["epochs"],
                **self.source,
            },
        )


def _load_pretrained(model: VideoClassifier, model_dir: pathlib.Path) -> None:
    """Copies the export's video network weights into the classifier's backbone."""
    network = load_keras_network(model_dir)
    load_backbone_weights(model.video_network, network, source=str(model_dir))
    logger.info("Video network weights loaded from %s", model_dir)


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
            raise RunRefusedError(
                f"{path.parent} holds a run started from {previous}, not {source}: use another "
                f"workdir (resuming would mix two initialisations)"
            )

"""The one run skeleton: :func:`run_task` trains a :class:`~tfcmvp.training.task.Task`.

Pretraining and finetuning are tasks; this module owns what every run does
around them, in this order:

1. op determinism (process-wide, for this run only), the WORKDIR folder;
2. the tf.distribute strategy, the WORKDIR lock (:mod:`tfcmvp.workdir_lock`,
   held by the chief), the precision policy;
3. the task finds its data and the steps per epoch, and checks the resume
   (provenance, see :mod:`tfcmvp.training.provenance`);
4. in the strategy's scope: model, optimizer, compile, checkpoint restore;
5. resume point; only then (chief) the task's start files, config.yaml and
   provenance.json: every check that can refuse comes before the first write,
   so a refused run leaves WORKDIR as it was;
6. ``fit`` from the resume point (:func:`tfcmvp.training.loop.fit_with_resume`)
   with the NaN/Inf stop, the task's callbacks, history.csv / history.png,
   the per-epoch network weights, checkpoints and TensorBoard;
7. the final weights, then the task's :meth:`~Task.finish` gives the result.

Multi-worker runs start the same call on every worker with a shared WORKDIR:
the chief writes the files, the other workers take part in each checkpoint
through a scratch folder (``WORKDIR/scratch-worker-N``, removed at the end).
"""

from __future__ import annotations

import contextlib
import logging
import pathlib
import shutil
from typing import Sequence

import keras

from tfcmvp import workdir_lock
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
from tfcmvp.training.strategy import is_chief, op_determinism, worker_name
from tfcmvp.training.task import RunState, Task
from tfcmvp.training.workdir import (
    CHECKPOINT_DIR,
    CONFIG_NAME,
    HISTORY_CSV,
    HISTORY_PNG,
    TENSORBOARD_DIR,
    WEIGHTS_DIR,
)

logger = logging.getLogger(__name__)


def run_task(
    task: Task,
    workdir,
    *,
    verbose="auto",
    callbacks: Sequence[keras.callbacks.Callback] = (),
    allow_data_change: bool = False,
):
    """Trains (or resumes) `task` in `workdir`; returns ``task.finish(...)``.

    Args:
      task: what to train.
      workdir: run folder (created); an existing one is resumed.
      verbose: Keras `fit` verbosity ("auto", 0, 1, 2).
      callbacks: more Keras callbacks, run after the built-in ones (so after
        the step's or epoch's checkpoint has been written).
      allow_data_change: passed to the task's resume check.
    """
    # Op determinism is process-wide: on (or off) for this run only, and
    # before the run's first op. The workdir lock is taken inside, once the
    # strategy says whether this process is the chief; the stack releases it.
    with op_determinism(task.config.train.deterministic), contextlib.ExitStack() as held:
        workdir = pathlib.Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        task.check_start(workdir)
        strategy = start_strategy(task.config)
        chief = is_chief(strategy)
        # One run per WORKDIR; the other workers of a multi-worker run share the chief's.
        held.enter_context(workdir_lock.hold(workdir, enabled=chief))
        set_precision_policy(task.config.train)  # before anything is written: it can refuse
        return _run(task, workdir, strategy, chief, verbose, callbacks, allow_data_change)


def _run(task: Task, workdir, strategy, chief: bool, verbose, callbacks, allow_data_change):
    """:func:`run_task` from the data on, under the lock."""
    config = task.config
    steps_per_epoch = task.prepare()
    record = task.check_resume(workdir, chief, allow_data_change)
    keras.utils.set_random_seed(config.train.seed)

    with strategy.scope():
        model = task.build_model(steps_per_epoch)
        optimizer = task.build_optimizer(steps_per_epoch)
        # Every worker saves (sync-on-read metric sums are reduced across
        # workers when saved); the non-chief workers into a scratch folder.
        scratch = None if chief else workdir / f"scratch-{worker_name(strategy)}"
        optimizer, checkpoint = compile_with_checkpoint(
            model, optimizer, config.train, workdir / CHECKPOINT_DIR, write_directory=scratch
        )

    # The checkpoint restore (a changed architecture) and resume_point (a changed
    # epoch length) can still refuse: the run's files are written only after them.
    start = resume_point(checkpoint, steps_per_epoch)
    if chief:
        task.write_start_files(workdir)
        save_run_config(config, workdir / CONFIG_NAME)
        provenance.write_provenance(workdir, record)
    model.summary(print_fn=logger.debug)  # the layer table only at --log_level DEBUG

    # Built even when nothing is left to train: a task's finish may read them.
    run_callbacks = _epoch_callbacks(task, model, task.epoch_callbacks(model), workdir, chief)
    if start.epoch < config.train.epochs:
        fit_with_resume(
            model,
            task.build_train_data(start.data_seed(config.train.seed)),
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
        logger.info("%s already holds %d epochs: %s", workdir, start.epoch, task.done_message)
    weights = {}
    if chief:
        weights = cb.save_network_weights(workdir / WEIGHTS_DIR, task.network_weights(model))
    state = RunState(
        workdir=workdir,
        model=model,
        checkpoint=checkpoint,
        start=start,
        steps_per_epoch=steps_per_epoch,
        num_replicas=strategy.num_replicas_in_sync,
        chief=chief,
        weights=weights,
    )
    result = task.finish(state)
    if scratch is not None:
        shutil.rmtree(scratch, ignore_errors=True)
    return result


def _epoch_callbacks(task: Task, model, task_callbacks, workdir: pathlib.Path, chief: bool) -> list:
    """The callbacks before the checkpoint's, in their order."""
    run_callbacks = [cb.StopOnNonFiniteLoss(task.watched_losses)]  # first: it must stop
    run_callbacks += task_callbacks  # before anything saves; then the task's (a test)
    if chief:
        run_callbacks += [
            cb.HistoryCSV(workdir / HISTORY_CSV, task.history_columns),  # before the
            cb.HistoryPlot(  # checkpoint: a kill in between redoes the epoch
                workdir / HISTORY_CSV, workdir / HISTORY_PNG, task.history_panels
            ),
            cb.SaveNetworkWeights(workdir / WEIGHTS_DIR, task.network_weights(model)),
        ]
    return run_callbacks

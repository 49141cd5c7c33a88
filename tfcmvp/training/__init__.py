"""Pretraining: the model with its train step, optimizer, schedule, strategy and callbacks.

* :func:`pretrain` (``pretrain.py``): the library entry, config + data + workdir.
* :class:`PretrainModel` (``pretrain_model.py``): V/I/M networks, predictor,
  heads; custom ``train_step`` / ``test_step`` run by ``model.fit``.
* ``step.py``: the train / test step (loss scaling contract, metrics) shared
  by PretrainModel and the finetuning VideoClassifier.
* ``optimizer.py`` / ``schedule.py``: SGD with replica-summed global-norm
  clipping; linear warm-up then cosine.
* ``strategy.py``: default / mirrored / multi-worker / virtual-CPU strategies.
* ``callbacks.py``: NaN/Inf stop, checkpoints and resume, history.csv/png.
"""

from tfcmvp.training.callbacks import NonFiniteLossError, TrainingCheckpoint, read_history
from tfcmvp.training.optimizer import ReplicaSumSGD, build_optimizer
from tfcmvp.training.pretrain import PretrainResult, pretrain
from tfcmvp.training.pretrain_model import (
    PretrainModel,
    build_iframe_network,
    build_motion_network,
    build_video_network,
)
from tfcmvp.training.schedule import WarmupCosine
from tfcmvp.training.strategy import configure_devices, make_strategy, per_replica_batch_size

__all__ = [
    "NonFiniteLossError",
    "PretrainModel",
    "PretrainResult",
    "ReplicaSumSGD",
    "TrainingCheckpoint",
    "WarmupCosine",
    "build_iframe_network",
    "build_motion_network",
    "build_optimizer",
    "build_video_network",
    "configure_devices",
    "make_strategy",
    "per_replica_batch_size",
    "pretrain",
    "read_history",
]

"""A finetuning run's inputs: the class names of a data folder, the steps per
epoch and the training batches.

Split from :mod:`tfcmvp.finetuning.finetune`, which still exports these names.
"""

from __future__ import annotations

import logging
import pathlib

import tensorflow as tf

from tfcmvp import manifest as manifest_lib
from tfcmvp.data import finetune_dataset, keys, reader
from tfcmvp.errors import DataNotFoundError, InvalidDataError
from tfcmvp.finetuning.config import FinetuneConfig
from tfcmvp.training.task import steps_per_epoch

logger = logging.getLogger(__name__)


def read_class_names(data_dir) -> list[str]:
    """The class names of ``DATA_DIR/labels.txt``, one per line, in label order."""
    path = pathlib.Path(data_dir) / manifest_lib.LABELS_NAME
    if not path.is_file():
        raise DataNotFoundError(
            f"{path} is missing: finetuning needs the class names that the "
            f"extraction job writes beside the shards"
        )
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    names = [name for name in names if name]
    if len(names) < 2:
        raise InvalidDataError(f"{path} lists {len(names)} class(es); a classifier needs >= 2")
    return names


def resolve_steps_per_epoch(config: FinetuneConfig, files) -> int:
    """``train.steps_per_epoch``, or training videos // global batch when it is null."""

    def count_videos() -> int:  # finetune_dataset keeps every non-empty video
        scan = reader.scan_records(files, on_corrupt=config.data.on_corrupt)
        return int((scan.num_frames >= 1).sum())

    return steps_per_epoch(config.train, count_videos, "training videos")


def make_train_dataset(config: FinetuneConfig, files, data_seed: int) -> tf.data.Dataset:
    """Global batches of the model's inputs, repeated forever (strings dropped:
    they are not inputs and cannot be placed on GPUs)."""
    needed = (keys.CLIP, keys.LABEL) + ((keys.MOTION,) if config.motion_aux else ())
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
    return dataset.map(lambda batch: {key: batch[key] for key in needed})

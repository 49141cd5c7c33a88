"""tf.data input pipelines: TFRecord shards -> training and evaluation batches.

* :func:`pretrain_dataset`: clip, I-frame, target + negative motion clips.
* :func:`finetune_dataset`: an augmented clip and its label (+ motion target).
* :func:`eval_dataset`: every video once, ``num_clips`` centre-cropped clips.

Each takes the data section of the run's config as it is
(:class:`tfcmvp.config.DataConfig`; finetuning a ``FinetuneDataConfig``;
None = the defaults): windows, augmentation, shuffle buffer, cache and what a
damaged shard does are its fields, documented there once.

Modules: ``reader`` (files -> parsed records -> decoded frames),
``sampling`` (window index arithmetic), ``augment`` (dict -> dict ops),
``pipeline`` (the shared tf.data skeleton: interleave, filter, shuffle,
repeat, seeded parallel map, batch, prefetch), ``pretrain`` / ``finetune`` /
``evaluation`` (what a sample is), ``keys`` (names of the yielded
tensors), ``synthetic`` (records with known content for tests).

Every stage is TensorFlow ops (no ``py_function``); randomness is stateless
and keyed by ``seed`` and the sample's position in the stream, so a seeded,
``deterministic=True`` pipeline yields the same batches on every run.
"""

from tfcmvp.data.evaluation import MODALITIES, eval_dataset
from tfcmvp.data.finetune import finetune_dataset
from tfcmvp.data.pretrain import pretrain_dataset
from tfcmvp.data.reader import RecordScan, resolve_files, scan_records

__all__ = [
    "MODALITIES",
    "RecordScan",
    "eval_dataset",
    "finetune_dataset",
    "pretrain_dataset",
    "resolve_files",
    "scan_records",
]

"""Shared pieces of tests/test_finetune*.py: the tiny finetuning config and labelled shards.

The tiny architecture is training_support's (C3D of width 4 on 8 x 32 x 32
clips), so the exports of export_support fit it; the test protocol uses 2
clips per video with the paper's resize ratio (128 / 112 of 32 = 37).
"""

import pathlib

from tfcmvp.finetuning.config import FinetuneConfig, load_finetune_config

from training_support import TINY_OVERRIDES

FINETUNE_TINY = TINY_OVERRIDES + (
    "test.resize_short=37",
    "test.num_clips=2",
    "test.batch_size=4",
    "test.eval_epochs=[1]",
)
CLASSES = ("left", "right", "still")
NUM_TRAIN = 8
NUM_TEST = 6
NUM_FRAMES = 30


def tiny_finetune_config(*overrides: str) -> FinetuneConfig:
    """The tiny finetuning config with further ``section.field=value`` overrides."""
    return load_finetune_config(None, list(FINETUNE_TINY) + list(overrides))


def write_labelled_shards(
    directory,
    num_train: int = NUM_TRAIN,
    num_test: int = NUM_TEST,
    num_frames: int = NUM_FRAMES,
    uniform_train: bool = False,
) -> pathlib.Path:
    """An extraction-like folder: train-/test-*.tfrecord.gz of painted videos, labels.txt
    and the manifest.json that lists the shards.

    Video i has ``num_frames + i`` frames and label ``i % 3``. With
    `uniform_train` every training video has ``num_frames`` frames and label
    0: painted videos of one length are identical, so a training sample then
    depends only on its position in the stream, not on the video order.
    """
    from tfcmvp.data import synthetic

    directory = pathlib.Path(directory)
    for split, count in (("train", num_train), ("test", num_test)):
        same = uniform_train and split == "train"
        records = [
            synthetic.painted_record(
                f"{split}{i:02d}",
                num_frames + (0 if same else i),
                label=0 if same else i % len(CLASSES),
                label_name=CLASSES[0 if same else i % len(CLASSES)],
                split=split,
            )
            for i in range(count)
        ]
        synthetic.write_shards(records, str(directory / split), num_shards=2)
    (directory / "labels.txt").write_text("".join(f"{name}\n" for name in CLASSES))
    from tfcmvp import verify

    verify.write_manifest(directory)
    return directory

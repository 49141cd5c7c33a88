"""Shared pieces of the tests/test_training_*.py files: tiny configs and shards.

The tiny model (widths 4, 32x32 crops, 8-frame clips, one hard negative) keeps
a whole pretraining run within seconds on a CPU; the records are the painted
synthetic videos of `tfcmvp.data.synthetic` written with `tfcmvp.schema`.
"""

import contextlib
import json
import pathlib
import subprocess

import keras
import numpy as np

from tfcmvp import config as cfg
from tfcmvp.cli import pretrain_cmd

import harness

TESTS_DIR = pathlib.Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent

# Smallest sizes the networks accept: C3D needs T divisible by 8 and
# 16-pixel cells; R3D-10 maps 8 x 32 x 32 motion to a 1 x 2 x 2 grid (N = 4).
TINY_OVERRIDES = (
    "data.clip_len=8",
    "data.clip_stride=2",
    "data.num_negatives=1",
    "data.crop_size=32",
    "data.shuffle_buffer=8",
    "data.blur=null",
    "model.video_width=4",
    "model.iframe_width=4",
    "model.motion_width=4",
    "model.predictor_width=16",
    "model.num_heads=2",
    "model.ffn_width=16",
    "model.encoder_layers=1",
    "model.decoder_layers=1",
    "model.head_hidden=32",
    "model.head_out=16",
    "train.global_batch_size=4",
    "train.steps_per_epoch=3",
    "train.epochs=2",
    "train.deterministic=true",
    "optimizer.warmup_epochs=1",
)
NUM_VIDEOS = 8
NUM_FRAMES = 40  # >= the 25 frames one tiny sample spans


def tiny_config(*overrides: str) -> cfg.PretrainConfig:
    """The tiny config with further ``section.field=value`` overrides."""
    return cfg.load_config(None, list(TINY_OVERRIDES) + list(overrides))


def write_painted_shards(
    directory, num_videos: int = NUM_VIDEOS, num_frames: int = NUM_FRAMES
) -> list:
    """``directory/train-0000i-of-00002.tfrecord.gz`` of painted videos, and the
    ``manifest.json`` that lists them (the readers refuse shards without one)."""
    from tfcmvp import verify
    from tfcmvp.data import synthetic

    records = [
        synthetic.painted_record(f"v{i:02d}", num_frames, label=i % 2) for i in range(num_videos)
    ]
    paths = synthetic.write_shards(records, str(pathlib.Path(directory) / "train"), num_shards=2)
    verify.write_manifest(directory)
    return paths


def run_pretrain(data, workdir, *flags, overrides=TINY_OVERRIDES) -> int:
    """``tfcmvp pretrain --data data --workdir workdir flags`` in this process with the
    config overrides ``overrides`` (default: the tiny config) as ``--set`` flags.
    Returns the exit status."""
    sets = harness.set_flags(overrides)
    return harness.run_command(
        pretrain_cmd, "pretrain", "--data", data, "--workdir", workdir, *flags, *sets
    )


class Interrupted(Exception):
    """Raised by :class:`InterruptAt`: the run stopped as if its process were killed."""


class InterruptAt(keras.callbacks.Callback):
    """Stops the run after optimizer step ``step`` (and its checkpoint), as a kill would."""

    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) == self.step:
            raise Interrupted(f"stopped at step {self.step}")


@contextlib.contextmanager
def without_grappler():
    """Turns TensorFlow's graph optimiser off for the block, then restores it.

    Grappler spends several seconds on the first call of a train step and
    gains nothing on these tiny models; the computation is the same.
    """
    import tensorflow as tf

    previous = tf.config.optimizer.get_experimental_options()
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
    try:
        yield
    finally:
        tf.config.optimizer.set_experimental_options(
            {"disable_meta_optimizer": previous.get("disable_meta_optimizer", False)}
        )


def start_weights_run(
    runner, overrides, tmp_path, name, workdir_name=None, extra_env=None
) -> subprocess.Popen:
    """Starts ``tests/scripts/weights_run.py`` with the arguments ``runner`` (a sequence,
    e.g. ``("pretrain", "--no-grappler")``) in a fresh Python with the repository importable.

    The run gets the tiny config with ``overrides`` (a sequence of ``section.field=value``),
    the shards of ``tmp_path/data``, the workdir ``tmp_path/name`` (or
    ``tmp_path/workdir_name`` when several processes share one) and writes
    ``tmp_path/name.json`` / ``.npz``. ``extra_env`` adds environment variables
    (e.g. ``TF_CONFIG``).
    """
    args = [
        *runner,
        "--data",
        tmp_path / "data",
        "--workdir",
        tmp_path / (workdir_name or name),
        "--out",
        tmp_path / name,
    ]
    for override in overrides:
        args += ["--override", override]
    return harness.start_script("weights_run.py", *args, extra_env=extra_env)


def finish_weights_run(process: subprocess.Popen, tmp_path, name) -> tuple:
    """Waits for a :func:`start_weights_run` process; ``(info, weights before, weights after)``.

    Fails the test with the end of the process's output when it did not exit 0.
    """
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output[-4000:]
    info = json.loads((tmp_path / f"{name}.json").read_text())
    arrays = np.load(tmp_path / f"{name}.npz")
    count = len(arrays.files) // 2
    before = [arrays[f"before_{i}"] for i in range(count)]
    after = [arrays[f"after_{i}"] for i in range(count)]
    return info, before, after

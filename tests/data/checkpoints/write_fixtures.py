"""Writes the checkpoint fixtures of tests/test_training_checkpoint_compat.py.

Run from the repository root (``PYTHONPATH=$PWD python
tests/data/checkpoints/write_fixtures.py``). It trains the tiny config of
tests/training_support.py for two steps, three times:

* ``pretrain/``: pretraining (Transformer predictor, InfoNCE motion loss);
* ``pretrain_value/``: pretraining with the ConvGRU predictor and the mse
  value head (the other branch layout);
* ``finetune/``: finetuning from random weights with the motion regulariser.

Each folder keeps the run's config.yaml and its checkpoints/; ``outputs.npz``
holds the model's inference outputs (``training=False``) on the batch of
``inputs.npz``, the checkpoint's variable names (``checkpoint_names``) and,
for finetuning, the dataset names inside weights/classifier.weights.h5
(``h5_names``, the file itself is left out to keep the fixtures small).
The files in the repository were written by the code of the commit that
added this script, before the motion branch became one layer: they guard
that checkpoints of that layout still load. Rerunning the script overwrites
them with the current code's.
"""

import pathlib
import shutil
import sys
import tempfile

import keras
import numpy as np
import tensorflow as tf

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # tests/, for the support modules

from tfcmvp.finetuning.finetune import finetune  # noqa: E402
from tfcmvp.training.pretrain import pretrain  # noqa: E402

from finetune_support import tiny_finetune_config, write_labelled_shards  # noqa: E402
from training_support import tiny_config, write_painted_shards  # noqa: E402

# Two optimizer steps, the newest checkpoint only, and networks of width 2 (the
# tiny config's 4 would make the fixtures four times as large).
SMALL = (
    "train.steps_per_epoch=1",
    "train.epochs=2",
    "train.keep_checkpoints=1",
    "model.video_width=2",
    "model.iframe_width=2",
    "model.motion_width=2",
)
PRETRAIN_RUNS = {
    "pretrain": (),
    "pretrain_value": ("model.predictor=convgru", "loss.motion_loss=mse"),
}
FINETUNE_OVERRIDES = ("train.motion_aux_weight=0.5",)
BATCH = 2


def make_inputs(seed: int = 0) -> dict:
    """A tiny batch of the tiny config's shapes, stored compactly as integers."""
    rng = np.random.default_rng(seed)
    return {
        "clip": rng.integers(0, 256, (BATCH, 8, 32, 32, 3), dtype=np.uint8),
        "iframe": rng.integers(0, 256, (BATCH, 32, 32, 3), dtype=np.uint8),
        "motion": rng.integers(-8, 9, (BATCH, 2, 8, 32, 32, 2), dtype=np.int8),
    }


def as_model_inputs(stored) -> dict:
    """The float32 model inputs of :func:`make_inputs`' (or inputs.npz's) integers."""
    return {
        "clip": tf.constant(stored["clip"].astype(np.float32) / 127.5 - 1.0),
        "iframe": tf.constant(stored["iframe"].astype(np.float32) / 127.5 - 1.0),
        "motion": tf.constant(stored["motion"].astype(np.float32) / 4.0),
    }


class KeepModel(keras.callbacks.Callback):
    """Keeps the model that `fit` trained (the run's own, with its weights)."""

    model_seen = None

    def set_model(self, model):
        super().set_model(model)
        KeepModel.model_seen = model


def keep_run(workdir: pathlib.Path, target: pathlib.Path) -> None:
    """Copies config.yaml and checkpoints/ into `target`."""
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    shutil.copy(workdir / "config.yaml", target / "config.yaml")
    shutil.copytree(workdir / "checkpoints", target / "checkpoints")


def h5_names(path) -> list:
    """The dataset paths inside a .weights.h5 file, sorted."""
    import h5py

    names = []
    with h5py.File(path, "r") as file:
        file.visititems(lambda name, obj: names.append(name) if hasattr(obj, "shape") else None)
    return sorted(names)


def save_outputs(target: pathlib.Path, outputs: dict, **extra) -> None:
    """outputs.npz: `outputs` as float32 arrays, the checkpoint's names and `extra`."""
    prefix = tf.train.latest_checkpoint(str(target / "checkpoints"))
    names = [name for name, _ in tf.train.list_variables(prefix)]
    arrays = {key: np.asarray(value, np.float32) for key, value in outputs.items()}
    arrays.update({key: np.array(value) for key, value in extra.items()})
    np.savez_compressed(target / "outputs.npz", checkpoint_names=np.array(names), **arrays)


def main() -> None:
    inputs = make_inputs()
    np.savez_compressed(HERE / "inputs.npz", **inputs)
    batch = as_model_inputs(inputs)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        write_painted_shards(tmp / "painted")
        for name, overrides in PRETRAIN_RUNS.items():
            config = tiny_config(*SMALL, *overrides)
            pretrain(config, tmp / "painted", tmp / name, verbose=0, callbacks=[KeepModel()])
            keep_run(tmp / name, HERE / name)
            save_outputs(HERE / name, KeepModel.model_seen(batch, training=False))

        write_labelled_shards(tmp / "labelled")
        config = tiny_finetune_config(*SMALL, *FINETUNE_OVERRIDES)
        finetune(
            config,
            tmp / "labelled",
            tmp / "finetune",
            random_init=True,
            verbose=0,
            callbacks=[KeepModel()],
        )
        keep_run(tmp / "finetune", HERE / "finetune")
        save_outputs(
            HERE / "finetune",
            KeepModel.model_seen.forward(batch, training=False),
            h5_names=h5_names(tmp / "finetune" / "weights" / "classifier.weights.h5"),
        )


if __name__ == "__main__":
    main()

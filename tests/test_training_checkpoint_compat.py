"""Checkpoints written by earlier code still load and compute the same outputs.

The fixtures in tests/data/checkpoints/ (see write_fixtures.py there) were
written by the code before the motion branch became one layer
(:class:`tfcmvp.models.motion_branch.MotionBranch`): a pretraining run with
the Transformer predictor, one with the ConvGRU predictor and the mse value
head, and a finetuning run with the motion regulariser. Each test restores
one with today's code, as a resumed run does, and compares the model's
inference outputs on the stored batch with the stored ones; the names inside
a checkpoint (and a classifier .weights.h5) written today must be the old
ones, so that either code reads the other's files.
"""

import pathlib
import shutil
import sys

import numpy as np
import pytest
import tensorflow as tf

from tfcmvp.config import PretrainConfig, load_saved_config
from tfcmvp.finetuning.classifier import VideoClassifier
from tfcmvp.finetuning.config import FinetuneConfig
from tfcmvp.finetuning.finetune import export_classifier
from tfcmvp.finetuning.optimizer import build_finetune_optimizer
from tfcmvp.training.callbacks import TrainingCheckpoint, save_network_weights
from tfcmvp.training.loop import compile_with_checkpoint
from tfcmvp.training.optimizer import build_optimizer
from tfcmvp.training.pretrain_model import PretrainModel

FIXTURES = pathlib.Path(__file__).resolve().parent / "data" / "checkpoints"
sys.path.insert(0, str(FIXTURES))
from write_fixtures import as_model_inputs, h5_names  # noqa: E402

TOLERANCE = 1e-6
CLASSES = ("left", "right", "still")  # finetune_support's: the classifier has 3 outputs


def _copy_fixture(name: str, tmp_path) -> pathlib.Path:
    """A writable copy of the fixture run `name` (restoring must not touch the repository)."""
    target = tmp_path / name
    shutil.copytree(FIXTURES / name, target)
    return target


def _restore_pretrain(name: str, tmp_path):
    """(model, optimizer, config) of fixture `name`, restored the way a resumed run does."""
    run = _copy_fixture(name, tmp_path)
    config = load_saved_config(run / "config.yaml", root=PretrainConfig)
    model = PretrainModel.from_pretrain_config(config)
    model.build()
    optimizer, _ = compile_with_checkpoint(
        model, build_optimizer(config, 1), config.train, run / "checkpoints"
    )
    return model, optimizer, config


def _restore_finetune(tmp_path):
    run = _copy_fixture("finetune", tmp_path)
    config = load_saved_config(run / "config.yaml", root=FinetuneConfig)
    model = VideoClassifier.from_finetune_config(config, len(CLASSES))
    model.build()
    optimizer, _ = compile_with_checkpoint(
        model, build_finetune_optimizer(config, 1), config.train, run / "checkpoints"
    )
    return model, optimizer, config


def _batch() -> dict:
    return as_model_inputs(np.load(FIXTURES / "inputs.npz"))


def _expected(name: str):
    return np.load(FIXTURES / name / "outputs.npz")


def _assert_outputs(outputs: dict, expected) -> None:
    for key, value in outputs.items():
        np.testing.assert_allclose(
            np.asarray(value), expected[key], atol=TOLERANCE, rtol=0, err_msg=key
        )


def _checkpoint_names(model, optimizer, directory) -> list:
    """The variable names of a checkpoint of `model` written today into `directory`."""
    checkpoint = TrainingCheckpoint(directory, model, optimizer)
    path = checkpoint.save(epoch=0, step_in_epoch=0)
    return [name for name, _ in tf.train.list_variables(path)]


@pytest.mark.parametrize("name", ["pretrain", "pretrain_value"])
def test_pretraining_checkpoint_restores_to_the_same_outputs(name, tmp_path):
    model, _, _ = _restore_pretrain(name, tmp_path)
    outputs = model(_batch(), training=False)
    expected = _expected(name)
    assert sorted(outputs) == sorted(k for k in expected.files if k != "checkpoint_names")
    _assert_outputs(outputs, expected)


@pytest.mark.parametrize("name", ["pretrain", "pretrain_value"])
def test_pretraining_checkpoint_names_are_unchanged(name, tmp_path):
    model, optimizer, _ = _restore_pretrain(name, tmp_path)
    names = _checkpoint_names(model, optimizer, tmp_path / "new")
    assert names == list(_expected(name)["checkpoint_names"])


def test_finetuning_checkpoint_restores_to_the_same_outputs(tmp_path):
    model, _, _ = _restore_finetune(tmp_path)
    outputs = model.forward(_batch(), training=False)
    expected = _expected("finetune")
    assert sorted(outputs) == ["logits", "motion_keys", "motion_query"]
    _assert_outputs(outputs, expected)


def test_finetuning_checkpoint_and_weights_file_names_are_unchanged(tmp_path):
    model, optimizer, _ = _restore_finetune(tmp_path)
    names = _checkpoint_names(model, optimizer, tmp_path / "new")
    assert names == list(_expected("finetune")["checkpoint_names"])
    model.save_weights(str(tmp_path / "classifier.weights.h5"))
    assert h5_names(tmp_path / "classifier.weights.h5") == list(_expected("finetune")["h5_names"])


def test_finetuning_export_of_a_restored_checkpoint_classifies_as_before(tmp_path):
    model, _, config = _restore_finetune(tmp_path)
    output = export_classifier(
        model, config, tmp_path / "saved_model", CLASSES, source={"kind": "finetuned"}
    )
    loaded = tf.saved_model.load(str(output))
    got = loaded.signatures["classify"](clips=_batch()["clip"])
    np.testing.assert_allclose(
        got["logits"].numpy(), _expected("finetune")["logits"], atol=1e-5, rtol=0
    )


def test_pretraining_export_of_a_restored_checkpoint_gives_the_v_network_features(tmp_path):
    from tfcmvp.config import save_config
    from tfcmvp.export import export_pretrained

    model, _, config = _restore_pretrain("pretrain", tmp_path)
    workdir = tmp_path / "workdir"
    workdir.mkdir()
    save_config(config, workdir / "config.yaml")
    save_network_weights(workdir / "weights", model.networks())
    output = export_pretrained(workdir, tmp_path / "export", "video")
    clips = _batch()["clip"]
    loaded = tf.saved_model.load(str(output))
    got = loaded.signatures["features"](clips=clips)
    want = model.v_network(clips, training=False)["features"].numpy()
    (value,) = got.values()
    np.testing.assert_allclose(value.numpy(), want, atol=1e-5, rtol=0)

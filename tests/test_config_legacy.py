"""Saved configs of the code before the authors' model options: read with the old values.

A resolved config.yaml written before ``model.memory_fusion``, ``memory_bias``,
``context_pooling``, ``motion_stem``, ``zero_init_residual`` and ``init``
existed lacks those keys; its weights belong to the network of the old values
(``tfcmvp.config.LEGACY_MODEL_DEFAULTS``).
"""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf
import yaml

from tfcmvp import config as cfg
from tfcmvp.export import contract as ct
from tfcmvp.export import export_random_init, load_keras_network
from tfcmvp.training.pretrain import CHECKPOINT_DIR, CONFIG_NAME, check_resumable_model
from tfcmvp.training.pretrain_model import PretrainModel

from training_support import tiny_config

NEW_KEYS = (
    "memory_fusion",
    "memory_bias",
    "context_pooling",
    "motion_stem",
    "zero_init_residual",
    "init",
)


def old_config_dict(*overrides: str) -> dict:
    """A resolved config as the code before these options wrote it: every field but them."""
    values = cfg.config_to_dict(tiny_config(*overrides))
    for key in NEW_KEYS:
        del values["model"][key]
    return values


def write_yaml(path, values) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(values, sort_keys=False), encoding="utf-8")


def test_legacy_defaults_name_every_new_option_and_its_old_value():
    assert set(cfg.LEGACY_MODEL_DEFAULTS) == set(NEW_KEYS)
    fields = {f.name for f in dataclasses.fields(cfg.ModelConfig)}
    assert set(NEW_KEYS) <= fields
    defaults = cfg.ModelConfig()
    # Each is a real change of default (otherwise it needs no legacy value).
    assert all(getattr(defaults, key) != value for key, value in cfg.LEGACY_MODEL_DEFAULTS.items())
    assert cfg.LEGACY_MODEL_DEFAULTS == {
        "memory_fusion": "concat",
        "memory_bias": True,
        "context_pooling": "layer4",
        "motion_stem": "strided",
        "zero_init_residual": False,
        "init": "keras",
    }


def test_an_old_saved_config_loads_with_the_legacy_values_and_builds_the_old_network(tmp_path):
    path = tmp_path / "config.yaml"
    write_yaml(path, old_config_dict("model.video_network=r3d_10", "data.clip_len=16"))
    saved = cfg.load_saved_config(path)
    for key, value in cfg.LEGACY_MODEL_DEFAULTS.items():
        assert getattr(saved.model, key) == value, key
    assert saved.model.video_network == "r3d_10" and saved.data.clip_len == 16
    # A config file read as a config (not as a saved run) takes today's defaults.
    assert cfg.load_config(path).model.memory_fusion == "add"
    model = PretrainModel.from_pretrain_config(saved)
    model.build()
    # The old memory: concat of 32 + 32 channels with a bias; the old strided motion network stem.
    assert [tuple(w.shape) for w in model.memory.weights] == [(64, 16), (16,)]
    assert model.motion_network.get_layer("stem_conv").strides == (1, 2, 2)
    assert model.clip_head.hidden.kernel.shape == (32, 32)  # layer4 pooling


def test_saved_values_win_over_the_legacy_values(tmp_path):
    values = old_config_dict()
    values["model"]["motion_stem"] = "authors"
    path = tmp_path / "config.yaml"
    write_yaml(path, values)
    saved = cfg.load_saved_config(path)
    assert saved.model.motion_stem == "authors" and saved.model.memory_fusion == "concat"
    with_legacy = cfg.with_legacy_model_defaults({"model": {"init": "authors"}})
    assert with_legacy["model"]["init"] == "authors"
    assert with_legacy["model"]["memory_bias"] is True


def make_checkpoint(workdir):
    tf.train.Checkpoint(step=tf.Variable(1)).save(str(workdir / CHECKPOINT_DIR / "ckpt"))


def test_resuming_an_old_workdir_with_other_architecture_values_is_refused(tmp_path):
    workdir = tmp_path / "run"
    write_yaml(workdir / CONFIG_NAME, old_config_dict())
    today = tiny_config()
    check_resumable_model(today, workdir)  # no checkpoint yet: nothing to disagree with
    make_checkpoint(workdir)
    with pytest.raises(ValueError) as error:
        check_resumable_model(today, workdir)
    message = str(error.value)
    assert "model.memory_fusion='add'" in message and "model.motion_stem='authors'" in message
    assert (
        "--set model.memory_fusion=concat --set model.memory_bias=true "
        "--set model.context_pooling=layer4 --set model.motion_stem=strided"
    ) in message
    assert "zero_init_residual" not in message  # initialisation: restored weights replace it
    # The suggested overrides resume it.
    check_resumable_model(
        tiny_config(
            "model.memory_fusion=concat",
            "model.memory_bias=true",
            "model.context_pooling=layer4",
            "model.motion_stem=strided",
        ),
        workdir,
    )
    # A config saved by today's code has every key: nothing to check here.
    cfg.save_config(tiny_config("model.motion_stem=strided"), workdir / CONFIG_NAME)
    check_resumable_model(today, workdir)


def test_an_old_motion_export_reloads_with_its_strided_stem(tmp_path):
    config = tiny_config(
        *(f"model.{key}={str(value).lower()}" for key, value in cfg.LEGACY_MODEL_DEFAULTS.items())
    )
    path = export_random_init(config, tmp_path / "motion", "motion", seed=3)
    write_yaml(path / ct.ASSETS_DIR / ct.CONFIG_NAME, old_config_dict())  # as old code wrote it
    model = load_keras_network(path)
    assert model.get_layer("stem_conv").strides == (1, 2, 2)
    assert "stem_pool" not in [layer.name for layer in model.layers]
    motion = np.random.default_rng(0).uniform(-1, 1, (2, 8, 32, 32, 2)).astype(np.float32)
    loaded = tf.saved_model.load(str(path))
    np.testing.assert_allclose(
        loaded.signatures["embed"](clips=tf.constant(motion))["embedding"].numpy(),
        model(motion, training=False)["features"].numpy().mean(axis=(1, 2, 3)),
        atol=1e-5,
    )

"""Renamed config keys: the old names still read, with one deprecation warning each.

``model.backbone`` is ``model.video_network`` (``backbone_width`` -> ``video_width``,
``backbone_blocks`` -> ``video_blocks``, ``iframe_backbone`` -> ``iframe_network``,
``motion_backbone`` -> ``motion_network``): in a YAML file and its ``base:`` chain,
in ``--set``, in the saved config.yaml of an older run or export. Old and new name
together is an error naming both; configs are written with the new names only.
"""

import dataclasses
import logging
import pathlib

import pytest
import yaml

from tfcmvp import config as cfg
from tfcmvp import config_schema
from tfcmvp.export import contract as ct
from tfcmvp.export import (
    export_pretrained,
    load_keras_network,
    read_export_config_text,
    read_export_info,
)
from tfcmvp.export.describe import config_lines
from tfcmvp.finetuning.config import (
    FinetuneConfig,
    export_architecture,
    load_finetune_config,
    with_export_architecture,
)
from tfcmvp.training.loop import save_run_config
from tfcmvp.training.pretrain import CONFIG_NAME

from export_support import fake_workdir
from training_support import tiny_config

TEST_DATA = pathlib.Path(__file__).resolve().parent / "data"
OLD_KEYS_FILE = TEST_DATA / "configs" / "old_keys.yaml"
OLD_CHECKPOINT_CONFIG = TEST_DATA / "checkpoints" / "pretrain" / "config.yaml"

# (old name, new name, a value other than the default) of every renamed model key.
RENAMED = [
    ("backbone", "video_network", "r3d_26"),
    ("backbone_width", "video_width", 16),
    ("backbone_blocks", "video_blocks", [1, 2, 1, 1]),
    ("iframe_backbone", "iframe_network", "r2d_10"),
    ("motion_backbone", "motion_network", "r3d_10"),
]
# video_blocks must be null for C3D, the default video network.
NEEDS_RESNET = {"backbone_blocks": {"video_network": "r3d_26"}}


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch, caplog):
    """Each test sees its own warnings (they are logged once per key and source
    per process), captured from the config loader."""
    monkeypatch.setattr(config_schema, "_warned_renames", set())
    caplog.set_level(logging.WARNING, logger="tfcmvp.config_schema")


def rename_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "is deprecated" in r.getMessage()]


def write(path, values) -> pathlib.Path:
    path.write_text(yaml.safe_dump(values, sort_keys=False), encoding="utf-8")
    return path


def model_section(name: str, value, old: str) -> dict:
    return {**NEEDS_RESNET.get(old, {}), name: value}


def test_the_renames_are_declared_once_on_the_model_section():
    fields = {f.name for f in dataclasses.fields(cfg.ModelConfig)}
    assert dict(cfg.ModelConfig.RENAMED_KEYS) == {old: new for old, new, _ in RENAMED}
    assert {new for _, new, _ in RENAMED} <= fields
    assert not {old for old, _, _ in RENAMED} & fields
    assert not any("backbone" in key for key in cfg.field_docs())


@pytest.mark.parametrize("old,new,value", RENAMED)
def test_an_old_key_in_a_file_reads_as_the_new_key(old, new, value, tmp_path, caplog):
    old_file = write(tmp_path / "old.yaml", {"model": model_section(old, value, old)})
    new_file = write(tmp_path / "new.yaml", {"model": model_section(new, value, old)})
    loaded = cfg.load_config(old_file)
    assert loaded == cfg.load_config(new_file)
    assert getattr(loaded.model, new) == (tuple(value) if isinstance(value, list) else value)
    # One warning although the values are checked twice (the file, then with overrides).
    assert rename_warnings(caplog) == [
        f"{old_file}: config key model.{old} is deprecated; read as its new name model.{new} "
        f"(rename it)"
    ]


@pytest.mark.parametrize("old,new,value", RENAMED)
def test_an_old_key_in_set_reads_as_the_new_key(old, new, value, caplog):
    before = [f"model.{k}={v}" for k, v in NEEDS_RESNET.get(old, {}).items()]
    flat = str(value)  # YAML: a name, a number or a flow list
    assert cfg.load_config(None, before + [f"model.{old}={flat}"]) == cfg.load_config(
        None, before + [f"model.{new}={flat}"]
    )
    (message,) = rename_warnings(caplog)
    assert message.startswith(f"--set 'model.{old}={flat}': config key model.{old} ")
    assert f"new name model.{new}" in message


def test_an_old_key_in_a_finetuning_config_reads_as_the_new_key(tmp_path, caplog):
    path = write(tmp_path / "f.yaml", {"model": {"backbone_width": 8}})
    assert load_finetune_config(path, ["model.iframe_backbone=r2d_10"]) == load_finetune_config(
        None, ["model.video_width=8"]
    )
    assert len(rename_warnings(caplog)) == 2


def test_a_set_section_mapping_may_use_old_keys(caplog):
    loaded = cfg.load_config(None, ["model={backbone: r3d_26, backbone_width: 8}"])
    assert (loaded.model.video_network, loaded.model.video_width) == ("r3d_26", 8)
    assert len(rename_warnings(caplog)) == 2


def test_set_wins_over_the_file_whichever_name_each_uses(tmp_path):
    old_file = write(tmp_path / "old.yaml", {"model": {"backbone_width": 8}})
    new_file = write(tmp_path / "new.yaml", {"model": {"video_width": 8}})
    assert cfg.load_config(old_file, ["model.video_width=4"]).model.video_width == 4
    assert cfg.load_config(new_file, ["model.backbone_width=4"]).model.video_width == 4


def test_a_file_wins_over_its_base_whichever_name_each_uses(tmp_path):
    write(tmp_path / "base_old.yaml", {"model": {"backbone_width": 8}})
    write(tmp_path / "base_new.yaml", {"model": {"video_width": 8}})
    top_new = write(
        tmp_path / "top_new.yaml", {"base": "base_old.yaml", "model": {"video_width": 4}}
    )
    top_old = write(
        tmp_path / "top_old.yaml", {"base": "base_new.yaml", "model": {"backbone_width": 4}}
    )
    assert cfg.load_config(top_new).model.video_width == 4
    assert cfg.load_config(top_old).model.video_width == 4


def test_old_and_new_name_in_one_file_is_an_error_naming_both(tmp_path):
    path = write(tmp_path / "both.yaml", {"model": {"backbone_width": 8, "video_width": 16}})
    with pytest.raises(cfg.ConfigError) as error:
        cfg.load_config(path)
    message = str(error.value)
    assert str(path) in message
    assert "model.backbone_width" in message and "model.video_width" in message


def test_old_and_new_name_in_set_is_an_error_naming_both():
    with pytest.raises(cfg.ConfigError) as error:
        cfg.load_config(None, ["model.backbone=r3d_26", "model.video_network=c3d"])
    message = str(error.value)
    assert "--set 'model.backbone=r3d_26'" in message
    assert "--set 'model.video_network=c3d'" in message
    assert "both model.backbone and model.video_network" in message
    # The same key set twice under one name stays the last one wins.
    assert (
        cfg.load_config(None, ["model.video_width=8", "model.video_width=4"]).model.video_width == 4
    )


def test_old_and_new_name_in_a_dict_is_an_error_naming_both():
    with pytest.raises(cfg.ConfigError, match=r"src: both model.backbone and model.video_network"):
        cfg.config_from_dict({"model": {"backbone": "c3d", "video_network": "c3d"}}, "src")


def test_a_dump_writes_only_the_new_names(tmp_path, caplog):
    loaded = cfg.load_config(OLD_KEYS_FILE)
    text = cfg.dump_config(loaded)
    assert "backbone" not in text
    model = yaml.safe_load(text)["model"]
    assert (model["video_network"], model["video_width"], model["video_blocks"]) == (
        "r3d_26",
        16,
        [1, 1, 1, 1],
    )
    assert (model["iframe_network"], model["motion_network"]) == ("r2d_10", "r3d_10")
    # Saved and read back: the same config, and nothing deprecated in it.
    caplog.clear()
    assert cfg.load_saved_config(cfg.save_config(loaded, tmp_path / "config.yaml")) == loaded
    assert rename_warnings(caplog) == []


def test_the_old_layout_file_and_its_base_load_to_the_config_they_described(caplog):
    loaded = cfg.load_config(OLD_KEYS_FILE)
    defaults = cfg.PretrainConfig()
    expected = dataclasses.replace(
        defaults,
        model=dataclasses.replace(
            defaults.model,
            video_network="r3d_26",
            video_blocks=(1, 1, 1, 1),
            video_width=16,
            iframe_width=8,
        ),
        train=dataclasses.replace(defaults.train, epochs=7, global_batch_size=32),
    )
    assert loaded == expected, cfg.config_differences(expected, loaded)
    warned = rename_warnings(caplog)
    base = OLD_KEYS_FILE.parent / "old_keys_base.yaml"
    assert sorted(warned) == sorted(
        [
            f"{base}: config key model.backbone is deprecated; read as its new name "
            "model.video_network (rename it)",
            f"{base}: config key model.backbone_blocks is deprecated; read as its new name "
            "model.video_blocks (rename it)",
            f"{base}: config key model.iframe_backbone is deprecated; read as its new name "
            "model.iframe_network (rename it)",
            f"{OLD_KEYS_FILE}: config key model.backbone_width is deprecated; read as its new "
            "name model.video_width (rename it)",
            f"{OLD_KEYS_FILE}: config key model.motion_backbone is deprecated; read as its new "
            "name model.motion_network (rename it)",
        ]
    )


def old_saved_text(config) -> str:
    """The resolved config as the code before the rename saved it (old key names)."""
    values = cfg.config_to_dict(config)
    new_to_old = {new: old for old, new, _ in RENAMED}
    values["model"] = {new_to_old.get(k, k): v for k, v in values["model"].items()}
    return yaml.safe_dump(values, sort_keys=False)


def test_a_saved_config_with_old_names_reads_as_the_config_it_saved(tmp_path, caplog):
    config = tiny_config("model.video_network=r3d_10", "data.clip_len=16")
    path = tmp_path / "config.yaml"
    path.write_text(old_saved_text(config), encoding="utf-8")
    assert "backbone_width" in path.read_text()
    assert cfg.load_saved_config(path) == config
    assert cfg.load_saved_config(path) == config  # read again (a resume reads it twice) ...
    warned = rename_warnings(caplog)
    assert len(warned) == len(RENAMED)  # ... one warning per key all the same
    assert all(message.startswith(f"{path}: config key model.") for message in warned)


def test_the_kept_checkpoint_config_reads_as_before():
    """The config.yaml of tests/data/checkpoints/pretrain, written by an older layout."""
    saved = cfg.load_saved_config(OLD_CHECKPOINT_CONFIG)
    assert "backbone_width: 2" in OLD_CHECKPOINT_CONFIG.read_text()
    assert (saved.model.video_network, saved.model.video_width, saved.model.video_blocks) == (
        "c3d",
        2,
        None,
    )
    assert (saved.model.iframe_width, saved.model.motion_width) == (2, 2)


def test_a_resumed_old_workdir_rewrites_its_config_with_the_new_names(tmp_path, caplog):
    config = tiny_config()
    path = tmp_path / "config.yaml"
    path.write_text(old_saved_text(config), encoding="utf-8")
    save_run_config(config, path)
    assert not any("config changed" in r.getMessage() for r in caplog.records)
    assert "backbone" not in path.read_text()
    assert cfg.load_saved_config(path) == config


def test_finetuning_architecture_values_may_use_old_names(caplog):
    architecture = {"model.video_network": "r3d_26", "model.video_blocks": [1, 1, 1, 1]}
    values = with_export_architecture(
        {"model": {"backbone": "r3d_26"}}, architecture, "f.yaml", "M"
    )
    assert values["model"] == {"video_network": "r3d_26", "video_blocks": [1, 1, 1, 1]}
    with pytest.raises(cfg.ConfigError, match=r"f.yaml: model.video_network='c3d' disagrees"):
        with_export_architecture({"model": {"backbone": "c3d"}}, architecture, "f.yaml", "M")
    assert cfg.build_config(FinetuneConfig, values, "f.yaml").model.video_blocks == (1, 1, 1, 1)


def test_an_old_workdir_exports_and_an_old_export_is_finetuned_and_described(tmp_path, caplog):
    workdir = tmp_path / "run"
    config, _ = fake_workdir(workdir)
    (workdir / CONFIG_NAME).write_text(old_saved_text(config), encoding="utf-8")  # old run
    model_dir = export_pretrained(workdir, tmp_path / "video", "video")
    assert any(str(workdir / CONFIG_NAME) in message for message in rename_warnings(caplog))
    assert "backbone_width" not in read_export_config_text(model_dir)  # written anew
    architecture = export_architecture(model_dir)
    assert architecture["model.video_width"] == config.model.video_width
    lines = config_lines(read_export_info(model_dir), read_export_config_text(model_dir))
    # An export written before the rename: its config.yaml has the old names.
    (model_dir / ct.ASSETS_DIR / ct.CONFIG_NAME).write_text(old_saved_text(config))
    assert export_architecture(model_dir) == architecture
    assert config_lines(read_export_info(model_dir), read_export_config_text(model_dir)) == lines
    assert "model.video_network: c3d" in lines
    network = load_keras_network(model_dir)
    assert network.count_params() > 0

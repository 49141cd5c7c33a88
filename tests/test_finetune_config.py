"""FinetuneConfig: the paper's settings, the YAML configs, overrides and their errors."""

import dataclasses
import pathlib

import pytest

from tfcmvp import config as cfg
from tfcmvp.finetuning.config import (
    ConfigError,
    FinetuneConfig,
    apply_finetune_overrides,
    finetune_config_from_dict,
    load_finetune_config,
    with_export_architecture,
)

from harness import run_config_file_test

CONFIG_DIR = pathlib.Path(__file__).resolve().parents[1] / "configs"


def test_defaults_are_the_papers_ucf101_settings():
    c = FinetuneConfig()
    assert (c.optimizer.base_lr_per_sample, c.optimizer.weight_decay) == (1e-4, 3e-3)
    assert c.optimizer.weight_decay_mode == "coupled"  # PyTorch's SGD, as the authors'
    assert (c.train.global_batch_size, c.train.epochs) == (8, 120)
    assert c.peak_learning_rate == pytest.approx(8e-4)  # lr = 1e-4 x B
    assert (c.optimizer.warmup_epochs, c.optimizer.final_learning_rate) == (0.0, 0.0)
    assert c.classifier.dropout == 0.3
    assert (c.test.num_clips, c.test.resize_short) == (10, 128)
    assert c.train.motion_aux_weight == 0.0 and not c.motion_aux
    # The pretraining sections are reused: same model, same sampling defaults.
    assert c.model == cfg.ModelConfig() and c.runtime == cfg.RuntimeConfig()
    assert isinstance(c.data, cfg.DataConfig) and c.data.clip_len == 16
    assert c.data.rotate_degrees == 10.0  # the authors' finetuning rotation


def test_ucf101_and_hmdb51_configs():
    ucf = load_finetune_config(CONFIG_DIR / "finetune_ucf101.yaml")
    assert ucf == FinetuneConfig()  # the file spells out the defaults
    hmdb = load_finetune_config(CONFIG_DIR / "finetune_hmdb51.yaml")
    assert (hmdb.optimizer.base_lr_per_sample, hmdb.optimizer.weight_decay) == (2e-4, 2e-3)
    assert hmdb.optimizer.weight_decay_mode == "coupled"
    assert hmdb.peak_learning_rate == pytest.approx(1.6e-3)  # lr = 2e-4 x B
    assert dataclasses.replace(hmdb, optimizer=ucf.optimizer) == ucf
    for name in ("finetune_ucf101.yaml", "finetune_hmdb51.yaml"):
        header = (CONFIG_DIR / name).read_text().split("\n\n")[0]
        assert "tfcmvp finetune" in header and "GPU" in header


def test_authors_options_and_the_regulariser_are_overrides():
    c = load_finetune_config(
        CONFIG_DIR / "finetune_ucf101.yaml",
        [
            "optimizer.warmup_epochs=10",
            "optimizer.final_learning_rate=1.0e-6",
            "train.motion_aux_weight=0.2",
            "data.rotate_degrees=0",
        ],
    )
    assert (c.optimizer.warmup_epochs, c.optimizer.final_learning_rate) == (10.0, 1e-6)
    assert c.motion_aux and c.train.motion_aux_weight == 0.2 and c.data.rotate_degrees == 0.0


def test_round_trip_through_yaml(tmp_path):
    c = load_finetune_config(
        None,
        [
            "train.motion_aux_weight=0.2",
            "data.blur=null",
            "test.eval_epochs=[2, 4]",
            "model.video_network=r3d_26",
            "model.video_blocks=[1, 1, 1, 1]",
        ],
    )
    run_config_file_test(c, tmp_path / "config.yaml", load=load_finetune_config)
    assert finetune_config_from_dict(cfg.config_to_dict(c)) == c


def test_unknown_keys_are_named(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  motion_aux_wieght: 0.2\n")
    with pytest.raises(
        ConfigError,
        match=rf"{path}: unknown config key "
        r"'train.motion_aux_wieght'; did you mean "
        r"train.motion_aux_weight",
    ):
        load_finetune_config(path)
    with pytest.raises(
        ConfigError,
        match=r"--set 'classifier.drop_out=0.5': unknown config key "
        r"'classifier.drop_out'; did you mean "
        r"classifier.dropout",
    ):
        load_finetune_config(None, ["classifier.drop_out=0.5"])
    # A pretraining-only section is unknown here.
    with pytest.raises(ConfigError, match=r"unknown config key 'loss'"):
        load_finetune_config(None, ["loss.alpha=0.5"])
    with pytest.raises(ConfigError, match=r"train.epochs is a value, not a section"):
        apply_finetune_overrides({}, ["train.epochs.max=3"])
    with pytest.raises(ConfigError, match=r"test is a section; set one of its fields"):
        apply_finetune_overrides({}, ["test=3"])


@pytest.mark.parametrize(
    "override, message",
    [
        ("classifier.dropout=1.0", r"classifier.dropout=1.0 must lie in \[0, 1\)"),
        ("train.motion_aux_weight=-0.1", r"train.motion_aux_weight=-0.1 must be >= 0"),
        (
            "optimizer.final_learning_rate=0.01",
            r"optimizer.final_learning_rate=0.01 must lie in "
            r"\[0, peak learning rate",
        ),
        ("test.num_clips=0", r"test.num_clips=0 must be >= 1"),
        ("test.resize_short=100", r"test.resize_short=100 must be >= data.crop_size = 112"),
        ("data.rotate_degrees=180", r"data.rotate_degrees=180.0 must lie in \[0, 180\)"),
        ("classifier.dropout=high", r"classifier.dropout='high' is not a valid float"),
    ],
)
def test_bad_values_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_finetune_config(None, [override])


def test_regulariser_needs_the_transformer_predictor():
    with pytest.raises(
        ConfigError,
        match=r"model.predictor='convgru' must be 'transformer' with "
        r"train.motion_aux_weight > 0",
    ):
        load_finetune_config(None, ["train.motion_aux_weight=0.2", "model.predictor=convgru"])
    load_finetune_config(None, ["model.predictor=convgru"])  # unused without the regulariser


ARCHITECTURE = {
    "model.video_network": "r3d_26",
    "model.video_width": 32,
    "model.video_blocks": [1, 1, 1, 1],
    "data.clip_len": 8,
    "data.crop_size": 64,
    "data.clip_stride": 2,
}


def test_export_architecture_fills_unset_fields():
    values = with_export_architecture({"train": {"epochs": 3}}, ARCHITECTURE, "f.yaml", "M")
    c = finetune_config_from_dict(values)
    assert (c.model.video_network, c.model.video_width, c.model.video_blocks) == (
        "r3d_26",
        32,
        (1, 1, 1, 1),
    )
    assert (c.data.clip_len, c.data.crop_size, c.data.clip_stride, c.train.epochs) == (8, 64, 2, 3)
    # Equal values may be repeated; the stride may differ.
    values = with_export_architecture(
        {
            "model": {"video_network": "r3d_26", "video_blocks": (1, 1, 1, 1)},
            "data": {"clip_stride": 4},
        },
        ARCHITECTURE,
        "f.yaml",
        "M",
    )
    assert finetune_config_from_dict(values).data.clip_stride == 4


def test_export_architecture_mismatch_names_field_and_both_values():
    with pytest.raises(
        ConfigError,
        match=r"f.yaml: model.video_blocks=\[2, 2, 2, 2\] "
        r"disagrees with the pretrained model M "
        r"\(model.video_blocks=\[1, 1, 1, 1\]\)",
    ):
        with_export_architecture(
            {"model": {"video_blocks": [2, 2, 2, 2]}}, ARCHITECTURE, "f.yaml", "M"
        )


def test_tiny_config_is_small_and_fits_the_tiny_pretraining():
    path = CONFIG_DIR / "finetune_tiny_cpu.yaml"
    c = load_finetune_config(path)
    assert c.data.crop_size <= 64 and c.model.video_width <= 16
    assert "tfcmvp finetune" in path.read_text().split("\n\n")[0]
    # The quickstart finetunes the tiny pretraining's export with this config.
    pretrain = cfg.load_config(CONFIG_DIR / "pretrain_tiny_cpu.yaml")
    for key in (
        "model.video_network",
        "model.video_width",
        "model.video_blocks",
        "data.clip_len",
        "data.crop_size",
        "data.clip_stride",
    ):
        section, name = key.split(".")
        assert getattr(getattr(c, section), name) == getattr(getattr(pretrain, section), name), key

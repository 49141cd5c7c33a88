"""tfcmvp.config: paper defaults, YAML loading, overrides, errors naming the key."""

import dataclasses
import pathlib

import pytest

from tfcmvp import config as cfg

from harness import run_config_file_test

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO_ROOT / "configs"


def test_defaults_are_the_paper_settings():
    c = cfg.PretrainConfig()
    # Sampling (paper Sec. 4.1, method facts).
    assert (c.data.clip_len, c.data.clip_stride) == (16, 4)
    assert (c.data.motion_len, c.data.motion_gap, c.data.num_negatives) == (8, 3, 3)
    assert c.data.period == "future"
    assert (c.data.crop_size, c.data.min_crop_area) == (112, 0.2)
    assert (c.data.mv_clip, c.data.mv_div) == (10.0, 10.0)
    # Networks.
    assert (c.model.video_network, c.model.iframe_network, c.model.motion_network) == (
        "c3d",
        "r2d_10",
        "r3d_10",
    )
    assert c.model.predictor == "transformer"
    assert (
        c.model.encoder_layers,
        c.model.decoder_layers,
        c.model.predictor_width,
        c.model.num_heads,
        c.model.ffn_width,
        c.model.dropout,
    ) == (2, 4, 512, 8, 512, 0.1)
    assert (c.model.head_hidden, c.model.head_out) == (2048, 512)
    # Objective.
    assert (c.loss.temperature, c.loss.alpha, c.loss.motion_loss) == (0.1, 0.5, "infonce")
    assert c.loss.scale == 2.0  # the authors' loss_m + loss_i at alpha 0.5
    # Optimisation.
    assert (c.optimizer.momentum, c.optimizer.nesterov) == (0.9, True)
    assert c.optimizer.weight_decay == 5e-3
    assert c.optimizer.weight_decay_mode == "coupled"  # PyTorch's SGD, as the authors'
    assert c.optimizer.base_lr_per_sample == 5e-4
    assert (c.optimizer.warmup_epochs, c.optimizer.clipnorm) == (5.0, 15.0)
    assert (c.train.epochs, c.train.global_batch_size) == (120, 64)
    assert c.train.sync_bn is True
    assert c.peak_learning_rate == pytest.approx(0.032)  # 5e-4 x 64
    assert c.runtime.strategy == "default"


def test_every_field_is_documented():
    docs = cfg.field_docs()
    assert len(docs) > 40
    undocumented = [key for key, doc in docs.items() if not doc.strip()]
    assert undocumented == []


def test_yaml_file_overrides_defaults(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(
        "model:\n  video_network: r3d_26\ntrain:\n  epochs: 7\n  steps_per_epoch: 12\n"
        "optimizer:\n  clipnorm: null\n  base_lr_per_sample: 1\n"
    )
    c = cfg.load_config(path)
    assert c.model.video_network == "r3d_26"
    assert c.train.epochs == 7 and c.train.steps_per_epoch == 12
    assert c.optimizer.clipnorm is None
    # An int where a float is expected becomes a float.
    assert c.optimizer.base_lr_per_sample == 1.0 and isinstance(
        c.optimizer.base_lr_per_sample, float
    )
    assert c.train.global_batch_size == 64  # untouched default


def test_overrides_are_yaml_typed(tmp_path):
    c = cfg.load_config(
        None,
        [
            "train.epochs=9",
            "loss.alpha=0",
            "model.predictor=convgru",
            "train.sync_bn=false",
            "train.steps_per_epoch=null",
            "optimizer.weight_decay=1e-3",
            "model.video_network=r3d_26",
            "model.video_blocks=[1, 1, 1, 1]",
            "data.period=current",
        ],
    )
    assert c.train.epochs == 9 and isinstance(c.train.epochs, int)
    assert c.loss.alpha == 0.0 and isinstance(c.loss.alpha, float)
    assert c.model.predictor == "convgru"
    assert c.train.sync_bn is False
    assert c.train.steps_per_epoch is None
    assert c.optimizer.weight_decay == pytest.approx(1e-3)
    assert c.model.video_blocks == (1, 1, 1, 1)
    assert c.data.period == "current"


def test_overrides_win_over_the_file(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("train:\n  epochs: 7\n")
    assert cfg.load_config(path, ["train.epochs=11"]).train.epochs == 11


def test_unknown_key_in_file_names_key_file_and_suggestion(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  epoch: 3\n")
    with pytest.raises(cfg.ConfigError) as info:
        cfg.load_config(path)
    message = str(info.value)
    assert "'train.epoch'" in message
    assert str(path) in message
    assert "train.epochs" in message  # the closest valid key


def test_unknown_section_in_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("optimiser:\n  momentum: 0.8\n")
    with pytest.raises(cfg.ConfigError, match=r"unknown config key 'optimiser'.*optimizer"):
        cfg.load_config(path)


def test_unknown_key_in_override_names_key_and_suggestion():
    with pytest.raises(cfg.ConfigError) as info:
        cfg.load_config(None, ["loss.temprature=0.2"])
    message = str(info.value)
    assert "--set" in message and "'loss.temprature'" in message
    assert "loss.temperature" in message


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.epochs=three", r"train\.epochs='three' is not a valid int"),
        ("model.predictor=gru", r"model\.predictor='gru'"),
        ("train.sync_bn=1", r"train\.sync_bn=1 is not a valid bool"),
        ("loss.alpha=1.5", r"loss\.alpha=1\.5 must lie in \[0, 1\]"),
        ("loss.scale=0.0", r"loss\.scale=0\.0 must be > 0"),
        ("optimizer.weight_decay_mode=l2", r"optimizer\.weight_decay_mode='l2'"),
        ("train.epochs=5", "warmup_epochs"),  # warm-up (5) as long as the run
        ("train.epochs", "KEY=VALUE"),
        ("train=3", "is a section"),
        ("train.epochs.x=3", "is a value, not a section"),
    ],
)
def test_bad_values_name_key_and_value(override, message):
    with pytest.raises(cfg.ConfigError, match=message):
        cfg.load_config(None, [override])


def test_save_and_load_round_trip(tmp_path):
    original = cfg.load_config(
        None,
        [
            "model.video_network=r2plus1d_26",
            "model.video_blocks=[1, 2, 1, 1]",
            "train.checkpoint_every_steps=50",
            "train.mixed_precision=mixed_bfloat16",
            "runtime.virtual_cpus=2",
            "optimizer.warmup_epochs=2.5",
        ],
    )
    path = run_config_file_test(original, tmp_path / "out" / "config.yaml")
    assert cfg.config_differences(original, cfg.load_config(path)) == []
    # The saved file lists every field, defaults included.
    text = path.read_text()
    assert "clip_stride: 4" in text and "head_hidden: 2048" in text


def test_config_differences_lists_changed_fields():
    a = cfg.PretrainConfig()
    b = cfg.load_config(None, ["train.epochs=130", "loss.alpha=1"])
    assert cfg.config_differences(a, b) == ["loss.alpha: 0.5 -> 1.0", "train.epochs: 120 -> 130"]


def test_base_file_is_merged_under_the_file(tmp_path):
    (tmp_path / "common").mkdir()
    (tmp_path / "common" / "base.yaml").write_text(
        "train:\n  epochs: 50\n  global_batch_size: 32\nmodel:\n  video_network: r3d_26\n"
    )
    (tmp_path / "child.yaml").write_text("base: common/base.yaml\ntrain:\n  epochs: 60\n")
    (tmp_path / "grandchild.yaml").write_text("base: child.yaml\nloss:\n  alpha: 1\n")
    c = cfg.load_config(tmp_path / "grandchild.yaml")
    assert c.train.epochs == 60  # child wins over base
    assert c.train.global_batch_size == 32  # from base, sibling key kept
    assert c.model.video_network == "r3d_26"
    assert c.loss.alpha == 1.0


def test_base_cycle_and_missing_base_are_errors(tmp_path):
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(cfg.ConfigError, match="cycle"):
        cfg.load_config(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("base: missing.yaml\n")
    with pytest.raises(cfg.ConfigError, match="missing.yaml"):
        cfg.load_config(tmp_path / "c.yaml")


def test_ablations_are_config_values():
    for override, attribute, value in [
        ("data.period=current", ("data", "period"), "current"),
        ("loss.motion_loss=mse", ("loss", "motion_loss"), "mse"),
        ("loss.motion_loss=ce", ("loss", "motion_loss"), "ce"),
        ("model.predictor=convgru", ("model", "predictor"), "convgru"),
        ("loss.alpha=0", ("loss", "alpha"), 0.0),
        ("loss.alpha=1", ("loss", "alpha"), 1.0),
    ]:
        c = cfg.load_config(None, [override])
        assert getattr(getattr(c, attribute[0]), attribute[1]) == value


PAPER_CONFIGS = {
    # file: (video network, global batch, epochs)
    "pretrain_ucf101_c3d.yaml": ("c3d", 64, 120),
    "pretrain_ucf101_r2plus1d26.yaml": ("r2plus1d_26", 64, 120),
    "pretrain_ucf101_r3d26.yaml": ("r3d_26", 64, 120),
    "pretrain_k400_c3d.yaml": ("c3d", 512, 120),
    "pretrain_k400_r2plus1d26.yaml": ("r2plus1d_26", 512, 120),
    "pretrain_k400_r3d26.yaml": ("r3d_26", 512, 120),
}


@pytest.mark.parametrize("name", sorted(PAPER_CONFIGS))
def test_paper_configs_load_with_paper_values(name):
    path = CONFIG_DIR / name
    c = cfg.load_config(path)
    video_network, batch, epochs = PAPER_CONFIGS[name]
    assert (c.model.video_network, c.train.global_batch_size, c.train.epochs) == (
        video_network,
        batch,
        epochs,
    )
    assert c.data == cfg.DataConfig() and c.loss == cfg.LossConfig()
    assert c.optimizer == cfg.OptimizerConfig()
    assert c.runtime.strategy in ("mirrored", "multi_worker")
    header = path.read_text().split("\n\n")[0]
    assert "tfcmvp pretrain" in header  # says how to run it
    assert "GPU" in header  # and on what


def test_tiny_config_is_small_and_explicit():
    path = CONFIG_DIR / "pretrain_tiny_cpu.yaml"
    text = path.read_text()
    assert "epochs:" in text
    c = cfg.load_config(path)
    assert c.data.crop_size <= 64
    assert c.model.predictor_width <= 128 and c.model.head_hidden <= 256
    assert "tfcmvp pretrain" in text.split("\n\n")[0]


def test_long_tiny_config_is_the_tiny_one_in_grey_for_six_times_the_steps():
    # Its header documents exactly these two departures, with the measured reason.
    tiny = cfg.load_config(CONFIG_DIR / "pretrain_tiny_cpu.yaml")
    long = cfg.load_config(CONFIG_DIR / "pretrain_tiny_cpu_long.yaml")
    assert long.train.epochs == 6 * tiny.train.epochs
    assert long.data.color_jitter.grayscale_prob == 1.0
    changed = cfg.config_changes(cfg.config_to_dict(tiny), cfg.config_to_dict(long))
    assert {key for key, _, _ in changed} == {"train.epochs", "data.color_jitter.grayscale_prob"}


def test_dataclasses_are_frozen():
    c = cfg.PretrainConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.train.epochs = 3


def test_yaml_1_1_exponent_floats_are_read_as_floats(tmp_path):
    # PyYAML reads "1e-3" (no dot) as a string; float fields accept it.
    path = tmp_path / "run.yaml"
    path.write_text("optimizer:\n  weight_decay: 1e-3\n")
    assert cfg.load_config(path).optimizer.weight_decay == pytest.approx(1e-3)


def test_optional_sections_switch_off_and_back_on():
    off = cfg.load_config(None, ["data.color_jitter=null", "data.blur.prob=0.2"])
    assert off.data.color_jitter is None
    assert off.data.blur == cfg.BlurConfig(prob=0.2)
    # Setting a field of a switched-off section turns it on with defaults elsewhere.
    on = cfg.load_config(None, ["data.color_jitter=null", "data.color_jitter.hue=0.2"])
    assert on.data.color_jitter == cfg.ColorJitterConfig(hue=0.2)
    with pytest.raises(cfg.ConfigError, match=r"'data\.blur\.sigma'.*data\.blur\.sigma_min"):
        cfg.load_config(None, ["data.blur.sigma=1"])


def test_a_section_value_check_names_the_full_key():
    """The data sections check their own values; the error carries the dotted key."""
    with pytest.raises(cfg.ConfigError, match=r"data\.blur\.kernel_size=4 must be an odd int"):
        cfg.load_config(None, ["data.blur.kernel_size=4"])
    with pytest.raises(cfg.ConfigError, match=r"data\.iframe_color_jitter\.hue=0\.7"):
        cfg.load_config(None, ["data.iframe_color_jitter.hue=0.7"])
    with pytest.raises(cfg.ConfigError, match=r"clip_stride=0 must be an int >= 1"):
        cfg.DataConfig(clip_stride=0)


def test_config_differences_name_a_section_switched_off_as_one_key():
    """A section that is null on one side differs as one key (it used to raise KeyError)."""
    on = cfg.load_config(None, [])
    off = cfg.load_config(None, ["data.blur=null"])
    changes = cfg.config_differences(on, off)
    assert len(changes) == 1 and changes[0].startswith("data.blur: {")
    assert changes[0].endswith("-> None")

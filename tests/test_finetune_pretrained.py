"""Finetuning from a pretrained export: architecture from the export, weights transferred,
config errors that name the field, and the ``tfcmvp finetune`` command end to end.

The export is written by tfcmvp.export from a fake pretraining workdir
(tests/export_support.py): the tiny video network with trained-looking weights.
"""

import json
import logging

import numpy as np
import pytest

from tfcmvp.cli import finetune_cmd
from tfcmvp.config import ConfigError
from tfcmvp.export import export_pretrained, load_keras_network
from tfcmvp.finetuning.classifier import VideoClassifier
from tfcmvp.finetuning.config import check_architecture, load_finetune_config
from tfcmvp.finetuning.finetune import _load_pretrained
from tfcmvp.training.callbacks import read_history

from export_support import fake_workdir
from finetune_support import FINETUNE_TINY, tiny_finetune_config, write_labelled_shards
from harness import run_command, set_flags
from training_support import without_grappler

# The tiny run without the architecture keys, which come from the export.
ARCHITECTURE = ("data.clip_len", "data.crop_size", "model.video_width")
NOT_ARCHITECTURE = tuple(o for o in FINETUNE_TINY if o.split("=")[0] not in ARCHITECTURE)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """(export folder, the fake run's video network) of a tiny pretraining run."""
    workdir = tmp_path_factory.mktemp("pretrain")
    _, models = fake_workdir(workdir)
    model_dir = export_pretrained(workdir, tmp_path_factory.mktemp("models") / "video", "video")
    return model_dir, models["video"]


def test_architecture_comes_from_the_export(pretrained):
    model_dir, _ = pretrained
    config = load_finetune_config(None, NOT_ARCHITECTURE, model_dir=model_dir)
    assert (config.model.video_network, config.model.video_width, config.model.video_blocks) == (
        "c3d",
        4,
        None,
    )
    assert (config.data.clip_len, config.data.crop_size, config.data.clip_stride) == (8, 32, 2)
    check_architecture(config, model_dir)  # agrees
    # Repeating the export's values is fine; a stride of one's own is allowed.
    same = load_finetune_config(None, FINETUNE_TINY + ("data.clip_stride=3",), model_dir=model_dir)
    assert same.data.clip_stride == 3 and same.model == config.model


@pytest.mark.parametrize(
    "override, field",
    [
        ("model.video_network=r3d_26", "model.video_network"),
        ("model.video_width=8", "model.video_width"),
        ("data.clip_len=16", "data.clip_len"),
        ("data.crop_size=64", "data.crop_size"),
    ],
)
def test_architecture_mismatch_names_the_field(pretrained, override, field):
    model_dir, _ = pretrained
    with pytest.raises(
        ConfigError,
        match=rf"{field}=.* disagrees with the pretrained model "
        rf".*\({field}=",
    ):
        load_finetune_config(None, NOT_ARCHITECTURE + (override,), model_dir=model_dir)


def test_architecture_mismatch_in_a_file_names_file_and_field(pretrained, tmp_path):
    model_dir, _ = pretrained
    path = tmp_path / "ft.yaml"
    path.write_text("data:\n  clip_len: 16\n")
    with pytest.raises(
        ConfigError,
        match=rf"{path}: data.clip_len=16 disagrees .*"
        rf"data.clip_len=8",
    ):
        load_finetune_config(path, model_dir=model_dir)
    # The library entry checks a config built without the export, too.
    with pytest.raises(ConfigError, match="data.clip_len=16 in the finetuning config disagrees"):
        check_architecture(tiny_finetune_config("data.clip_len=16"), model_dir)


def test_only_video_exports_can_be_finetuned(tmp_path):
    workdir = tmp_path / "pretrain"
    fake_workdir(workdir)
    model_dir = export_pretrained(workdir, tmp_path / "iframe", "iframe")
    with pytest.raises(ConfigError, match="network 'video'.*network='iframe'"):
        load_finetune_config(None, NOT_ARCHITECTURE, model_dir=model_dir)


def test_pretrained_backbone_weights_equal_the_exports(pretrained):
    model_dir, trained = pretrained
    config = load_finetune_config(None, NOT_ARCHITECTURE, model_dir=model_dir)
    model = VideoClassifier.from_finetune_config(config, 3)
    model.build()
    _load_pretrained(model, model_dir)
    exported = load_keras_network(model_dir)
    assert len(model.video_network.weights) == len(exported.weights) == len(trained.weights)
    for mine, theirs, original in zip(
        model.video_network.weights, exported.weights, trained.weights
    ):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
        np.testing.assert_array_equal(mine.numpy(), original.numpy())  # the trained values
    clips = np.random.default_rng(0).normal(size=(2, 8, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(
        model.video_network(clips, training=False)["features"],
        trained(clips, training=False)["features"],
        rtol=1e-5,
        atol=1e-6,
    )


def cli(argv):
    """``tfcmvp finetune argv`` in this process: the exit status."""
    return run_command(finetune_cmd, "finetune", *argv)


@pytest.mark.slow
def test_cli_finetunes_the_export(pretrained, tmp_path):
    model_dir, _ = pretrained
    data = write_labelled_shards(tmp_path / "data")
    workdir = tmp_path / "run"
    # With the motion regulariser: its graph-mode step (the model tests run it eagerly).
    sets = set_flags(
        NOT_ARCHITECTURE
        + (
            "train.epochs=1",
            "train.steps_per_epoch=1",
            "optimizer.warmup_epochs=0",
            "train.motion_aux_weight=0.2",
        )
    )
    with without_grappler():
        code = cli(
            ["--model", model_dir, "--data", data, "--workdir", workdir, "--verbose", 0, *sets]
        )
    assert code == 0
    results = json.loads((workdir / "results.json").read_text())
    assert results["model"] == str(model_dir.resolve()) and results["random_init"] is False
    assert results["epochs"] == 1 and 0 <= results["top1"] <= results["top5"] <= 100
    assert results["motion_aux_weight"] == 0.2
    (row,) = read_history(workdir / "history.csv")
    assert np.isfinite(row["motion_loss"]) and 0 <= row["motion_acc"] <= 1
    assert row["loss"] == pytest.approx(row["ce_loss"] + 0.2 * row["motion_loss"], rel=1e-5)
    info = json.loads((workdir / "saved_model/assets/tfcmvp_export.json").read_text())
    assert info["source"]["model"] == str(model_dir.resolve())
    assert (info["backbone"], info["input"]["shape"]) == ("c3d", [8, 32, 32, 3])
    assert info["input"]["resize_short"] == 37  # test.resize_short of the run


@pytest.mark.parametrize(
    "override, messages",
    [
        (
            "train.motion_aux_wieght=0.2",
            # the unknown key, and the suggestion
            ["unknown config key 'train.motion_aux_wieght'", "train.motion_aux_weight"],
        ),
        ("model.video_width=16", ["model.video_width=16 disagrees"]),
    ],
)
def test_cli_config_errors_return_2(pretrained, tmp_path, caplog, override, messages):
    model_dir, _ = pretrained
    argv = ["--model", model_dir, "--data", tmp_path, "--workdir", tmp_path / "run"]
    with caplog.at_level(logging.ERROR):
        assert cli([*argv, "--set", override]) == 2
    for message in messages:
        assert message in caplog.text


def test_cli_model_and_random_init_exclude_each_other(pretrained):
    model_dir, _ = pretrained
    with pytest.raises(SystemExit):
        cli(["--model", model_dir, "--random_init", "--data", "d", "--workdir", "w"])


def test_cli_list_keys_shows_the_values_taken_from_the_export(pretrained, capsys):
    """--list_keys needs no --data or --workdir; with --model it shows the architecture
    read from the export; without --list_keys a missing flag is argparse's usage error."""
    model_dir, _ = pretrained
    assert cli(["--list_keys", "--model", str(model_dir), "--set", "train.epochs=7"]) == 0
    lines = capsys.readouterr().out.splitlines()
    by_key = {
        line.split(" = ")[0].strip(): line.split(" = ", 1)[1].split("  # ")[0] for line in lines
    }
    assert by_key["train.epochs"] == "7"
    assert (by_key["model.video_network"], by_key["data.clip_len"]) == ('"c3d"', "8")
    assert by_key["train.motion_aux_weight"] == "0.0"
    for argv, missing in [
        (["--random_init", "--workdir", "w"], "--data"),
        (["--data", "d", "--workdir", "w"], "--model --random_init"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            cli(argv)
        assert exit_info.value.code == 2 and missing in capsys.readouterr().err

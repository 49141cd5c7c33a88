"""tfcmvp export / describe: the command line, error messages and overwriting.

Exports come from a fake pretraining workdir (tests/export_support.py), as in
tests/test_export.py.
"""

import logging
import shutil

import keras
import pytest
import tensorflow as tf

from tfcmvp import config as cfg
from tfcmvp.cli import describe_cmd, export_cmd
from tfcmvp.data.augment import IMAGENET_MEAN, IMAGENET_STD
from tfcmvp.export import (
    ExportError,
    NotAnExportError,
    describe_export,
    export_pretrained,
    export_random_init,
    read_export_info,
)

from export_support import EPOCHS
from harness import run_command
from training_support import tiny_config

# --------------------------------------------------------------------------- errors


def test_not_an_export_is_an_error_naming_the_folder(tmp_path, caplog):
    missing = tmp_path / "nowhere"
    with pytest.raises(NotAnExportError, match=f"export folder {missing} does not exist"):
        read_export_info(missing)
    with pytest.raises(
        FileNotFoundError,
        match=f"{tmp_path} is not a tfcmvp export: it has no "
        r"saved_model.pb",
    ):
        read_export_info(tmp_path)
    plain = tmp_path / "plain"
    module = tf.Module()
    module.f = tf.function(
        lambda x: {"y": x * 2.0}, input_signature=[tf.TensorSpec([None], tf.float32)]
    )
    tf.saved_model.save(module, str(plain))
    with pytest.raises(NotAnExportError, match="is a SavedModel but not a tfcmvp export"):
        describe_export(plain)
    caplog.set_level(logging.ERROR)
    assert run_command(describe_cmd, "describe", str(plain)) == 2
    assert f"{plain} is a SavedModel but not a tfcmvp export" in caplog.text


def test_missing_weights_name_the_file(workdir, tmp_path, caplog):
    run = tmp_path / "run"
    shutil.copytree(workdir[0], run)
    (run / "weights" / "m_network.weights.h5").unlink()
    with pytest.raises(
        FileNotFoundError,
        match="no trained weights: run tfcmvp pretrain first "
        r"\(.*m_network.weights.h5 is missing\)",
    ):
        export_pretrained(run, tmp_path / "out", "motion")
    caplog.set_level(logging.ERROR)
    argv = ("--workdir", run, "--output", tmp_path / "out", "--network", "motion")
    assert run_command(export_cmd, "export", *argv) == 2
    assert "no trained weights: run tfcmvp pretrain first" in caplog.text
    assert not (tmp_path / "out").exists()


@pytest.mark.filterwarnings("ignore:Skipping nested container")  # Keras, on the bad file
def test_weights_that_do_not_fit_the_config_name_the_file(workdir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(workdir[0], run)
    cfg.save_config(tiny_config("model.iframe_width=8"), run / "config.yaml")
    with pytest.raises(ExportError, match=r"i_network.weights.h5 does not fit"):
        export_pretrained(run, tmp_path / "out", "iframe")


def test_existing_output_needs_overwrite(workdir, tmp_path):
    out = tmp_path / "model"
    export_random_init(workdir[1], out, "iframe", seed=1)
    before = read_export_info(out)["source"]["seed"]
    with pytest.raises(FileExistsError, match=f"export folder {out} already exists"):
        export_random_init(workdir[1], out, "iframe", seed=2)
    export_random_init(workdir[1], out, "iframe", seed=2, overwrite=True)
    assert (before, read_export_info(out)["source"]["seed"]) == (1, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temporary folders left


# --------------------------------------------------------------------------- describe + CLI


def test_describe_prints_the_contract_signatures_and_provenance(workdir, exports):
    text = describe_export(exports["video"])
    for expected in [
        f"tfcmvp export {exports['video'].resolve()}",
        "network: video (backbone c3d), format v1",
        f"source: pretrained in {workdir[0].resolve()} (epoch {EPOCHS})",
        "shape: [N, 8, 32, 32, 3] float32",
        "frames: 8 at stride 2 (spanning 15 frames)",
        "size: 32x32, 3 channels",
        f"mean (RGB): {list(IMAGENET_MEAN)}, std (RGB): {list(IMAGENET_STD)}",
        "embed: clips float32 [None, 8, 32, 32, 3] -> embedding float32 [None, 32]",
        "features: clips float32 [None, 8, 32, 32, 3] -> features float32 [None, 1, 2, 2, 32]",
        "serving_default: clips float32 [None, 8, 32, 32, 3] -> embedding float32 [None, 32]"
        "  (= embed)",
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}",
        "model.video_network: c3d",
        "model.video_width: 4",
        "data.clip_stride: 2",
        "loss.alpha: 0.5",
        "train.epochs: 2",
        "assets/network.weights.h5",
    ]:
        assert expected in text, f"{expected!r} missing from:\n{text}"
    motion = describe_export(exports["motion"])
    assert "vector scaling: clamp to +-10 px, divide by 10" in motion
    assert "value range: [-1, 1]" in motion
    assert "frames: one image per example" in describe_export(exports["iframe"])


def test_cli_export_from_workdir_prints_a_summary(workdir, tmp_path, capsys):
    out = tmp_path / "iframe_model"
    argv = ("--workdir", workdir[0], "--output", out, "--network", "iframe")
    assert run_command(export_cmd, "export", *argv) == 0
    printed = capsys.readouterr().out
    assert f"to {out.resolve()}" in printed
    assert "signatures: embed (serving_default), features" in printed
    assert "input: clips float32 [N, 32, 32, 3]" in printed
    assert "embedding dim: 32 (features [N, 1, 1, 32])" in printed
    assert read_export_info(out)["source"]["kind"] == "pretrained"
    assert run_command(describe_cmd, "describe", str(out)) == 0
    assert "network: iframe (backbone r2d_10)" in capsys.readouterr().out


def test_cli_export_random_init_from_a_config_file(tmp_path, capsys):
    config_file = cfg.save_config(tiny_config(), tmp_path / "tiny.yaml")
    out = tmp_path / "scratch"
    argv = ("--config", config_file, "--random_init", "--set", "data.clip_len=16")
    assert run_command(export_cmd, "export", *argv, "--output", out, "--seed", 7) == 0
    assert "random init (seed 7)" in capsys.readouterr().out
    info = read_export_info(out)
    assert info["input"]["shape"] == [16, 32, 32, 3]
    assert info["source"] == {
        "kind": "random_init",
        "workdir": None,
        "epoch": None,
        "seed": 7,
        "config": str(config_file.resolve()),
    }
    assert cfg.load_config(out / "assets" / "config.yaml").data.clip_len == 16


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--output", "o"], "pass --workdir (a pretraining run) or --random_init"),
        (["--workdir", "w", "--random_init", "--output", "o"], "exclude each other"),
        (["--workdir", "w", "--seed", "3", "--output", "o"], "--seed only go with --random_init"),
        (["--random_init", "--set", "model.nope=1", "--output", "o"], "model.nope"),
    ],
)
def test_cli_export_usage_errors(argv, message, caplog):
    caplog.set_level(logging.ERROR)
    assert run_command(export_cmd, "export", *argv) == 2
    assert message in caplog.text

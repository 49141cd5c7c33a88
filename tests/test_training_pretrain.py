"""End-to-end pretraining on painted TFRecords: outputs, NaN stop, errors.

Resuming a killed run is tested in test_training_resume.py.
"""

import numpy as np
import pytest
import tensorflow as tf

from tfcmvp import config as cfg
from tfcmvp.training import callbacks as cb
from tfcmvp.training.pretrain import (HISTORY_CSV, find_train_shards, pretrain,
                                      resolve_steps_per_epoch)
from tfcmvp.training.pretrain_model import build_v_network
from training_support import tiny_config, without_grappler, write_painted_shards

B = 4  # tiny global batch
STEPS = 3  # tiny steps per epoch
PEAK = 5e-4 * B


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("shards")
    write_painted_shards(directory)
    return directory


def checkpoint_value(path, name):
    return tf.train.load_checkpoint(path).get_tensor(f"{name}/.ATTRIBUTES/VARIABLE_VALUE")


@pytest.mark.slow
def test_run_writes_history_checkpoints_config_and_weights(data_dir, tmp_path):
    workdir = tmp_path / "run"
    config = tiny_config()
    with without_grappler():
        result = pretrain(config, data_dir, workdir, verbose=0)

    assert (result.initial_epoch, result.initial_step, result.steps_per_epoch) == (0, 0, STEPS)
    assert result.num_replicas == 1
    rows = cb.read_history(workdir / HISTORY_CSV)
    assert rows == result.history
    assert [r["epoch"] for r in rows] == [1, 2]
    assert [r["step"] for r in rows] == [3, 6]
    for row in rows:
        for key in ("loss", "context_loss", "motion_loss", "context_acc", "motion_acc", "lr"):
            assert np.isfinite(row[key]), key
        assert 0.0 <= row["context_acc"] <= 1.0 and 0.0 <= row["motion_acc"] <= 1.0
        # loss = 0.5 context + 0.5 motion, averaged over the same videos.
        assert row["loss"] == pytest.approx(0.5 * (row["context_loss"] + row["motion_loss"]),
                                            rel=1e-5)
    # lr is the epoch's mean rate: warm-up peak x (1, 2, 3) / 3, then the cosine
    # over steps 3-5: peak x (1, 0.75, 0.25); both average to 2/3 of the peak.
    assert rows[0]["lr"] == pytest.approx(PEAK * 2 / 3, rel=1e-5)
    assert rows[1]["lr"] == pytest.approx(PEAK * 2 / 3, rel=1e-5)

    checkpoints = sorted(p.name for p in (workdir / "checkpoints").glob("ckpt-*.index"))
    assert checkpoints == ["ckpt-3.index", "ckpt-6.index"]  # one per epoch
    assert result.checkpoint.endswith("ckpt-6")
    assert int(checkpoint_value(result.checkpoint, "epoch")) == 2
    assert int(checkpoint_value(result.checkpoint, "step_in_epoch")) == 0
    assert int(checkpoint_value(result.checkpoint, "optimizer/_iterations")) == 6
    assert cfg.load_config(workdir / "config.yaml") == config
    assert (workdir / "history.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The V-Network weights load into a network rebuilt from the config.
    assert sorted(result.weights) == ["i_network", "m_network", "v_network"]
    v_network = build_v_network(config.model, config.data)
    v_network.load_weights(result.weights["v_network"])
    assert len(v_network.weights) > 10


@pytest.mark.slow
def test_nan_loss_stops_with_step_and_loss_named(data_dir, tmp_path):
    workdir = tmp_path / "run"
    # An absurd learning rate without clipping: the weights overflow after the
    # first update, so the second step's losses are NaN / Inf.
    config = tiny_config("optimizer.base_lr_per_sample=1.0e30", "optimizer.clipnorm=null",
                         "optimizer.weight_decay=null")
    with without_grappler():
        with pytest.raises(cb.NonFiniteLossError) as info:
            pretrain(config, data_dir, workdir, verbose=0)
    message = str(info.value)
    assert "at step" in message and "epoch 1" in message
    assert any(f"{name} is" in message for name in ("context_loss", "motion_loss", "loss"))
    # Nothing was saved after the bad step: no checkpoint, no history row.
    assert tf.train.latest_checkpoint(workdir / "checkpoints") is None
    assert cb.read_history(workdir / HISTORY_CSV) == []


def test_missing_shards_are_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no training shards train-\*\.tfrecord\.gz in "):
        find_train_shards(tmp_path)
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        pretrain(tiny_config(), tmp_path, tmp_path / "run", verbose=0)


def test_steps_per_epoch_from_usable_videos(tmp_path):
    # 8 long videos and 3 too short for a sample (25 frames needed): 8 // 4 = 2 steps.
    write_painted_shards(tmp_path, num_videos=8)
    from tfcmvp.data import synthetic
    synthetic.write_shards([synthetic.painted_record(f"short{i}", 20) for i in range(3)],
                           str(tmp_path / "train-short"))
    files = find_train_shards(tmp_path)
    assert len(files) == 3
    assert resolve_steps_per_epoch(tiny_config("train.steps_per_epoch=null"), files) == 2
    assert resolve_steps_per_epoch(tiny_config("train.steps_per_epoch=7"), files) == 7
    with pytest.raises(ValueError, match=r"only 8 usable training videos for "
                                         r"train\.global_batch_size=16"):
        resolve_steps_per_epoch(
            tiny_config("train.steps_per_epoch=null", "train.global_batch_size=16"), files)


def test_cli_reports_config_errors_and_lists_keys(tmp_path, caplog, capsys):
    import argparse

    from tfcmvp.cli import pretrain_cmd

    parser = argparse.ArgumentParser()
    pretrain_cmd.add_parser(parser.add_subparsers())
    args = parser.parse_args(["pretrain", "--data", str(tmp_path), "--workdir",
                              str(tmp_path / "run"), "--set", "train.epoch=3"])
    assert args.run(args) == 2
    assert "'train.epoch'" in caplog.text and "train.epochs" in caplog.text

    args = parser.parse_args(["pretrain", "--data", str(tmp_path), "--workdir",
                              str(tmp_path / "run"), "--list_keys"])
    assert args.run(args) == 0
    listed = capsys.readouterr().out
    assert "train.epochs: training epochs" in listed
    assert "loss.alpha:" in listed

    args = parser.parse_args(["pretrain", "--data", str(tmp_path / "empty"), "--workdir",
                              str(tmp_path / "run")])
    assert args.run(args) == 2
    assert "no training shards" in caplog.text

"""End-to-end pretraining on painted TFRecords: outputs, resume after a kill, errors.

One tiny 2-epoch run (module fixture) is inspected, then copied and continued:
started again with 3 epochs it resumes at epoch 3, is killed mid-epoch right
after a step checkpoint, and the same command finishes it from that step.
"""

import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcmvp import config as cfg
from tfcmvp.cli import pretrain_cmd
from tfcmvp.training import callbacks as cb
from tfcmvp.training.pretrain import (
    HISTORY_CSV,
    find_train_shards,
    pretrain,
    resolve_steps_per_epoch,
)
from tfcmvp.training.pretrain_model import build_video_network

from harness import run_command
from training_support import (
    REPO_ROOT,
    InterruptAt,
    Interrupted,
    run_pretrain,
    tiny_config,
    without_grappler,
    write_painted_shards,
)

REPO_CONFIGS = REPO_ROOT / "configs"

B = 4  # tiny global batch
STEPS = 3  # tiny steps per epoch
PEAK = 5e-4 * B
CHECKPOINT_EVERY = "train.checkpoint_every_steps=2"


def value(path, name):
    """A saved variable of a tf.train checkpoint."""
    return tf.train.load_checkpoint(path).get_tensor(f"{name}/.ATTRIBUTES/VARIABLE_VALUE")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("shards")
    write_painted_shards(directory)
    return directory


@pytest.fixture(scope="module")
def first_run(data_dir, tmp_path_factory):
    """A finished 2-epoch run with step checkpoints every 2 steps."""
    workdir = tmp_path_factory.mktemp("first") / "run"
    config = tiny_config(CHECKPOINT_EVERY)
    with without_grappler():
        result = pretrain(config, data_dir, workdir, verbose=0)
    return config, result


@pytest.mark.slow
def test_first_run_starts_at_step_zero_on_one_replica(first_run):
    _, result = first_run
    assert (result.initial_epoch, result.initial_step, result.steps_per_epoch) == (0, 0, STEPS)
    assert result.num_replicas == 1


@pytest.mark.slow
def test_history_csv_has_one_row_of_finite_metrics_per_epoch(first_run):
    _, result = first_run
    rows = cb.read_history(result.workdir / HISTORY_CSV)
    assert rows == result.history
    assert [r["epoch"] for r in rows] == [1, 2]
    assert [r["step"] for r in rows] == [3, 6]
    for row in rows:
        for key in ("loss", "context_loss", "motion_loss", "context_acc", "motion_acc", "lr"):
            assert np.isfinite(row[key]), key
        assert 0.0 <= row["context_acc"] <= 1.0 and 0.0 <= row["motion_acc"] <= 1.0
        # loss = scale x (0.5 context + 0.5 motion), averaged over the same videos
        # (loss.scale 2: the authors' loss_i + loss_m).
        assert row["loss"] == pytest.approx(row["context_loss"] + row["motion_loss"], rel=1e-5)


@pytest.mark.slow
def test_history_lr_is_the_mean_rate_of_the_epoch(first_run):
    _, result = first_run
    rows = result.history
    # lr is the epoch's mean rate: warm-up peak x (1, 2, 3) / 3, then the cosine
    # over steps 3-5: peak x (1, 0.75, 0.25); both average to 2/3 of the peak.
    assert rows[0]["lr"] == pytest.approx(PEAK * 2 / 3, rel=1e-5)
    assert rows[1]["lr"] == pytest.approx(PEAK * 2 / 3, rel=1e-5)


@pytest.mark.slow
def test_step_and_epoch_checkpoints_keep_the_last_three(first_run):
    _, result = first_run
    workdir = result.workdir
    # Saved at steps 2 (mid-epoch), 3 and 6 (epoch ends) and 4 (mid-epoch); 3 kept.
    checkpoints = sorted(p.name for p in (workdir / "checkpoints").glob("ckpt-*.index"))
    assert checkpoints == ["ckpt-3.index", "ckpt-4.index", "ckpt-6.index"]
    assert (
        int(value(workdir / "checkpoints/ckpt-4", "epoch")),
        int(value(workdir / "checkpoints/ckpt-4", "step_in_epoch")),
    ) == (1, 1)
    assert result.checkpoint.endswith("ckpt-6")
    assert (
        int(value(result.checkpoint, "epoch")),
        int(value(result.checkpoint, "step_in_epoch")),
    ) == (2, 0)


@pytest.mark.slow
def test_last_checkpoint_holds_the_optimizer_step_and_slots(first_run):
    _, result = first_run
    assert int(value(result.checkpoint, "optimizer/_iterations")) == 6
    # The optimizer's slots are saved with it (restoring them: test_training_callbacks.py).
    slots = [
        n
        for n, _ in tf.train.list_variables(result.checkpoint)
        if n.startswith("optimizer/_variables/")
    ]
    assert len(slots) > 100


@pytest.mark.slow
def test_workdir_holds_the_run_config(first_run):
    config, result = first_run
    assert cfg.load_config(result.workdir / "config.yaml") == config


@pytest.mark.slow
def test_workdir_holds_the_history_plot(first_run):
    _, result = first_run
    assert (result.workdir / "history.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_saved_weights_load_into_a_network_rebuilt_from_the_config(first_run):
    config, result = first_run
    assert sorted(result.weights) == ["i_network", "m_network", "v_network"]
    v_network = build_video_network(config.model, config.data)
    v_network.load_weights(result.weights["v_network"])
    assert len(v_network.weights) > 10


@pytest.mark.slow
def test_restart_resumes_at_epoch_then_mid_epoch(first_run, data_dir, tmp_path):
    _, first = first_run
    workdir = tmp_path / "run"
    shutil.copytree(first.workdir, workdir)
    first_rows = cb.read_history(workdir / HISTORY_CSV)
    three_epochs = tiny_config(CHECKPOINT_EVERY, "train.epochs=3")

    # Started again with 3 epochs: resumes at epoch 3 with the restored step
    # count; killed after step 8 (saved: epoch 3 with 2 of its 3 steps done).
    with without_grappler(), pytest.raises(Interrupted):
        pretrain(three_epochs, data_dir, workdir, verbose=0, callbacks=[InterruptAt(8)])
    latest = tf.train.latest_checkpoint(workdir / "checkpoints")
    assert latest.endswith("ckpt-8")
    assert (int(value(latest, "epoch")), int(value(latest, "step_in_epoch"))) == (2, 2)
    assert int(value(latest, "metrics/loss_1")) == 2 * B  # videos averaged so far in epoch 3
    assert cb.read_history(workdir / HISTORY_CSV) == first_rows  # epoch 3 unfinished

    # The same command again: restores step 8 and runs the last step of epoch 3.
    with without_grappler():
        resumed = pretrain(three_epochs, data_dir, workdir, verbose=0)
    assert (resumed.initial_epoch, resumed.initial_step) == (2, 8)
    rows = cb.read_history(workdir / HISTORY_CSV)
    assert [r["epoch"] for r in rows] == [1, 2, 3]  # exactly one new row
    assert rows[:2] == first_rows
    assert rows[2]["step"] == 9 and np.isfinite(rows[2]["loss"])
    # Epoch 3's means cover all its 3 steps: the sums of the steps before the
    # kill were restored.
    assert resumed.checkpoint.endswith("ckpt-9")
    assert int(value(resumed.checkpoint, "metrics/loss_1")) == STEPS * B
    assert int(value(resumed.checkpoint, "optimizer/_iterations")) == 9

    # Nothing left to do: no new row, no new checkpoint.
    done = pretrain(three_epochs, data_dir, workdir, verbose=0)
    assert done.initial_epoch == 3 and len(done.history) == 3
    assert done.checkpoint == resumed.checkpoint


def test_missing_shards_are_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no training shards train-\*\.tfrecord\.gz in "):
        find_train_shards(tmp_path)
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        pretrain(tiny_config(), tmp_path, tmp_path / "run", verbose=0)


def test_steps_per_epoch_from_usable_videos(tmp_path):
    # 8 long videos and 3 too short for a sample (25 frames needed): 8 // 4 = 2 steps.
    write_painted_shards(tmp_path, num_videos=8)
    from tfcmvp.data import synthetic

    synthetic.write_shards(
        [synthetic.painted_record(f"short{i}", 20) for i in range(3)], str(tmp_path / "train-short")
    )
    from tfcmvp import verify

    verify.write_manifest(tmp_path)  # the extra shard is part of this data set
    files = find_train_shards(tmp_path)
    assert len(files) == 3
    assert resolve_steps_per_epoch(tiny_config("train.steps_per_epoch=null"), files) == 2
    assert resolve_steps_per_epoch(tiny_config("train.steps_per_epoch=7"), files) == 7
    with pytest.raises(
        ValueError,
        match=r"only 8 usable training videos for "
        r"train\.global_batch_size=16",
    ):
        resolve_steps_per_epoch(
            tiny_config("train.steps_per_epoch=null", "train.global_batch_size=16"), files
        )


def test_cli_reports_an_unknown_config_key_and_the_suggestion(tmp_path, caplog):
    assert run_pretrain(tmp_path, tmp_path / "run", overrides=["train.epoch=3"]) == 2
    assert "'train.epoch'" in caplog.text and "train.epochs" in caplog.text


def test_cli_list_keys_shows_the_effective_values(capsys):
    # --list_keys alone: the effective values (here of the tiny config plus --set).
    config = REPO_CONFIGS / "pretrain_tiny_cpu.yaml"
    argv = ["--list_keys", "--config", config, "--set", "loss.alpha=0.25"]
    assert run_command(pretrain_cmd, "pretrain", *argv) == 0
    listed = capsys.readouterr().out.splitlines()
    by_key = {line.split(" = ")[0].strip(): line.split(" = ", 1)[1] for line in listed}
    assert by_key["train.epochs"] == "14  # training epochs"
    assert by_key["loss.alpha"].startswith("0.25  # ")
    assert by_key["data.cache"].startswith('"memory"  # ')
    assert by_key["data.crop_ratio"].startswith("[0.75, 1.3333333333333333]  # ")


def test_cli_without_list_keys_requires_data(tmp_path, capsys):
    # Without --list_keys, --data and --workdir are required (argparse's usage error).
    with pytest.raises(SystemExit) as exit_info:
        run_command(pretrain_cmd, "pretrain", "--workdir", tmp_path / "run")
    assert exit_info.value.code == 2
    assert "the following arguments are required: --data" in capsys.readouterr().err


def test_cli_reports_a_folder_without_shards(tmp_path, caplog):
    assert run_pretrain(tmp_path / "empty", tmp_path / "run", overrides=()) == 2
    assert "no training shards" in caplog.text


@pytest.mark.skipif(bool(tf.config.list_physical_devices("GPU")), reason="the check is for CPUs")
def test_mixed_float16_on_a_cpu_is_refused_before_anything_is_written(data_dir, tmp_path):
    config = tiny_config(
        "train.epochs=1",
        "train.steps_per_epoch=1",
        "optimizer.warmup_epochs=0",
        "train.mixed_precision=mixed_float16",
    )
    with pytest.raises(ValueError, match="needs a GPU.*mixed_bfloat16"):
        pretrain(config, data_dir, tmp_path / "run", verbose=0)
    assert not list((tmp_path / "run").iterdir())


def test_one_step_in_mixed_bfloat16(data_dir, tmp_path):
    """bfloat16 compute (the CPU's mixed precision): finite losses, float32 variables."""
    config = tiny_config(
        "train.epochs=1",
        "train.steps_per_epoch=1",
        "optimizer.warmup_epochs=0",
        "train.mixed_precision=mixed_bfloat16",
    )
    try:
        with without_grappler():
            result = pretrain(config, data_dir, tmp_path / "run", verbose=0)
        assert keras.mixed_precision.dtype_policy().name == "mixed_bfloat16"
    finally:
        keras.mixed_precision.set_dtype_policy("float32")  # the policy is process-wide
    (row,) = result.history
    assert all(np.isfinite(row[key]) for key in ("loss", "context_loss", "motion_loss"))
    v_network = build_video_network(config.model, config.data)
    v_network.load_weights(str(tmp_path / "run" / "weights" / "v_network.weights.h5"))
    assert {w.dtype for w in v_network.weights} == {"float32"}

"""Callbacks: history.csv across resumes, NaN/Inf stop, checkpoint round trip, plot."""

import math
import types

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcmvp.training import callbacks as cb
from tfcmvp.training.optimizer import build_optimizer
from tfcmvp.training.pretrain import HISTORY_CSV, pretrain
from tfcmvp.training.pretrain_model import PretrainModel

from training_support import tiny_config, without_grappler, write_painted_shards


def stub_model(step):
    """Just what the callbacks read from a model: the optimizer's step counter."""
    return types.SimpleNamespace(
        optimizer=types.SimpleNamespace(iterations=tf.Variable(step, dtype=tf.int64))
    )


def finish_epoch(callback, epoch, step, **logs):
    callback.set_model(stub_model(step))
    callback.on_epoch_begin(epoch)
    callback.on_epoch_end(epoch, logs)


def test_history_rows_are_kept_across_resumes_without_duplicates(tmp_path):
    path = tmp_path / "history.csv"
    run = cb.HistoryCSV(path)
    finish_epoch(
        run,
        0,
        10,
        loss=3.0,
        context_loss=2.0,
        motion_loss=4.0,
        context_acc=0.1,
        motion_acc=0.2,
        lr=0.5,
    )
    finish_epoch(
        run,
        1,
        20,
        loss=2.0,
        context_loss=1.5,
        motion_loss=2.5,
        context_acc=0.3,
        motion_acc=0.4,
        lr=0.25,
    )
    # Killed after writing epoch 2's row but before its checkpoint: the resumed
    # run redoes epoch 2 (index 1) and its row replaces the old one.
    resumed = cb.HistoryCSV(path)
    finish_epoch(
        resumed,
        1,
        20,
        loss=1.9,
        context_loss=1.4,
        motion_loss=2.4,
        context_acc=0.3,
        motion_acc=0.5,
        lr=0.25,
    )
    finish_epoch(
        resumed,
        2,
        30,
        loss=1.0,
        context_loss=0.5,
        motion_loss=1.5,
        context_acc=0.9,
        motion_acc=0.8,
        lr=0.0,
        val_loss=1.2,
    )
    rows = cb.read_history(path)
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert [r["step"] for r in rows] == [10, 20, 30]
    assert rows[1]["loss"] == 1.9
    assert rows[2]["val_loss"] == 1.2 and "val_loss" not in rows[0]
    header = path.read_text().splitlines()[0].split(",")
    assert header[:8] == [
        "epoch",
        "step",
        "loss",
        "context_loss",
        "motion_loss",
        "context_acc",
        "motion_acc",
        "lr",
    ]
    assert header[-1] == "val_loss"


def test_non_finite_loss_stops_naming_step_and_loss():
    callback = cb.StopOnNonFiniteLoss()
    callback.set_model(stub_model(41))
    callback.on_epoch_begin(2)
    callback.on_train_batch_end(3, {"loss": 1.0, "context_loss": 1.0, "motion_loss": 1.0})
    with pytest.raises(
        cb.NonFiniteLossError, match=r"motion_loss is nan at step 41 \(epoch 3, batch 5\)"
    ):
        callback.on_train_batch_end(
            4, {"loss": math.nan, "context_loss": 0.5, "motion_loss": math.nan}
        )
    with pytest.raises(cb.NonFiniteLossError, match="context_loss is inf"):
        callback.on_train_batch_end(
            4, {"loss": math.inf, "context_loss": math.inf, "motion_loss": 2.0}
        )


def test_plot_history_writes_a_png(tmp_path):
    rows = [
        {
            "epoch": e,
            "loss": 3.0 / e,
            "context_loss": 2.0 / e,
            "motion_loss": 4.0 / e,
            "context_acc": 0.1 * e,
            "motion_acc": 0.05 * e,
            "val_loss": 3.5 / e,
        }
        for e in (1, 2, 3)
    ]
    cb.plot_history(rows, tmp_path / "history.png")
    assert (tmp_path / "history.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def trained_model(steps, seed=0):
    keras.utils.set_random_seed(seed)
    config = tiny_config("train.epochs=4", "optimizer.warmup_epochs=0")
    model = PretrainModel.from_pretrain_config(config)
    model.build()
    optimizer = build_optimizer(config, steps_per_epoch=3)
    model.compile(optimizer=optimizer, run_eagerly=True)
    optimizer.build(model.trainable_variables)
    if steps:
        rng = np.random.default_rng(seed)
        batches = {
            "clip": rng.normal(size=(steps, 4, 8, 32, 32, 3)).astype("float32"),
            "iframe": rng.normal(size=(steps, 4, 32, 32, 3)).astype("float32"),
            "motion": rng.uniform(-1, 1, size=(steps, 4, 2, 8, 32, 32, 2)).astype("float32"),
        }
        model.fit(tf.data.Dataset.from_tensor_slices(batches), epochs=1, shuffle=False, verbose=0)
    return config, model, optimizer


def test_checkpoint_restores_weights_optimizer_slots_counters_and_metric_sums(tmp_path):
    _, model, optimizer = trained_model(steps=2)
    saved = cb.TrainingCheckpoint(tmp_path, model, optimizer)
    assert saved.restore() is False  # nothing there yet
    path = saved.save(epoch=1, step_in_epoch=2)
    assert path.endswith("ckpt-2")  # numbered by optimizer step

    _, fresh, fresh_optimizer = trained_model(steps=0, seed=1)
    restored = cb.TrainingCheckpoint(tmp_path, fresh, fresh_optimizer)
    assert restored.restore() is True
    assert (int(restored.epoch.numpy()), int(restored.step_in_epoch.numpy())) == (1, 2)
    assert int(fresh_optimizer.iterations.numpy()) == 2
    for a, b in zip(model.weights, fresh.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    # Every optimizer variable (iterations, momentum slots) comes back.
    assert len(optimizer.variables) == len(fresh_optimizer.variables) > 100
    for a, b in zip(optimizer.variables, fresh_optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    assert any(np.any(v.numpy() != 0) for v in fresh_optimizer.variables if "momentum" in v.path)
    assert restored.metric_values().keys() == saved.metric_values().keys()
    for name, v in saved.metric_values().items():
        np.testing.assert_array_equal(v, restored.metric_values()[name], err_msg=name)
    assert restored.metric_values()["loss_1"] == 8  # 2 steps x 4 videos


def test_checkpoint_of_another_architecture_is_an_error(tmp_path):
    _, model, optimizer = trained_model(steps=0)
    cb.TrainingCheckpoint(tmp_path, model, optimizer).save(0, 0)
    config = tiny_config("model.head_out=8")
    other = PretrainModel.from_pretrain_config(config)
    other.build()
    other_optimizer = build_optimizer(config, steps_per_epoch=3)
    other_optimizer.build(other.trainable_variables)
    with pytest.raises(ValueError, match="does not match the model built from the config"):
        cb.TrainingCheckpoint(tmp_path, other, other_optimizer).restore()


@pytest.mark.slow
def test_nan_loss_stops_the_run_before_anything_is_saved(tmp_path):
    write_painted_shards(tmp_path / "data")
    workdir = tmp_path / "run"
    # An absurd learning rate without clipping: the weights overflow after the
    # first update, so the losses of a following step are NaN / Inf.
    config = tiny_config(
        "optimizer.base_lr_per_sample=1.0e30",
        "optimizer.clipnorm=null",
        "optimizer.weight_decay=null",
    )
    with without_grappler(), pytest.raises(cb.NonFiniteLossError) as info:
        pretrain(config, tmp_path / "data", workdir, verbose=0)
    message = str(info.value)
    assert "at step" in message and "(epoch 1, batch" in message
    assert any(f"{name} is" in message for name in ("context_loss", "motion_loss", "loss"))
    # Nothing was saved after the bad step: no checkpoint, no history row.
    assert tf.train.latest_checkpoint(workdir / "checkpoints") is None
    assert cb.read_history(workdir / HISTORY_CSV) == []

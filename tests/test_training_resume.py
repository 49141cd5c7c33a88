"""A killed pretraining run, started again with the same command, resumes where it stopped.

One sequence, three processes' worth of work: (1) a run is killed mid-epoch
right after a step checkpoint, (2) the same command finishes the run from that
step, (3) the command with one more epoch continues from the epoch boundary.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcmvp.training import callbacks as cb
from tfcmvp.training.pretrain import HISTORY_CSV, pretrain
from training_support import tiny_config, without_grappler, write_painted_shards

B = 4  # tiny global batch
STEPS = 3  # tiny steps per epoch


class Interrupted(Exception):
    pass


class InterruptAt(keras.callbacks.Callback):
    """Simulates a killed process after optimizer step `step` (and its checkpoint)."""

    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) == self.step:
            raise Interrupted(f"stopped at step {self.step}")


def value(path, name):
    return tf.train.load_checkpoint(path).get_tensor(f"{name}/.ATTRIBUTES/VARIABLE_VALUE")


@pytest.mark.slow
def test_killed_run_resumes_mid_epoch_then_extends(tmp_path):
    write_painted_shards(tmp_path / "data")
    workdir = tmp_path / "run"
    config = tiny_config("train.checkpoint_every_steps=2")

    # (1) Killed after step 5. Saved: step 2 (epoch 1, 2 steps done), step 3 (end of
    # epoch 1), step 4 (epoch 2, 1 step done); step 5 is lost.
    with without_grappler(), pytest.raises(Interrupted):
        pretrain(config, tmp_path / "data", workdir, verbose=0, callbacks=[InterruptAt(5)])
    latest = tf.train.latest_checkpoint(workdir / "checkpoints")
    assert latest.endswith("ckpt-4")
    assert (int(value(latest, "epoch")), int(value(latest, "step_in_epoch"))) == (1, 1)
    assert int(value(latest, "metrics/loss_1")) == B  # videos averaged so far in epoch 2
    # The optimizer's own variables (iterations, one momentum slot per weight)
    # are saved; tests/test_training_callbacks.py checks they restore exactly.
    slots = [name for name, _ in tf.train.list_variables(latest)
             if name.startswith("optimizer/_variables/")]
    assert len(slots) > 100
    first_rows = cb.read_history(workdir / HISTORY_CSV)
    assert [r["epoch"] for r in first_rows] == [1]

    # (2) The same command: restores step 4 and runs the 2 remaining steps of epoch 2.
    with without_grappler():
        resumed = pretrain(config, tmp_path / "data", workdir, verbose=0)
    assert (resumed.initial_epoch, resumed.initial_step) == (1, 4)
    rows = cb.read_history(workdir / HISTORY_CSV)
    assert [r["epoch"] for r in rows] == [1, 2]
    assert rows[0] == first_rows[0]
    assert rows[1]["step"] == 6 and np.isfinite(rows[1]["loss"])
    assert resumed.checkpoint.endswith("ckpt-6")
    # Epoch 2's means cover all its 3 steps: the sums of the step before the
    # interruption were restored.
    assert int(value(resumed.checkpoint, "metrics/loss_1")) == STEPS * B
    assert (int(value(resumed.checkpoint, "epoch")),
            int(value(resumed.checkpoint, "step_in_epoch"))) == (2, 0)

    # (3) One more epoch: resumes at epoch 3 with the restored step count and
    # adds exactly one history row.
    with without_grappler():
        extended = pretrain(tiny_config("train.checkpoint_every_steps=2", "train.epochs=3"),
                            tmp_path / "data", workdir, verbose=0)
    assert (extended.initial_epoch, extended.initial_step) == (2, 6)
    rows_after = cb.read_history(workdir / HISTORY_CSV)
    assert [r["epoch"] for r in rows_after] == [1, 2, 3]
    assert rows_after[:2] == rows
    assert rows_after[2]["step"] == 9
    assert int(value(extended.checkpoint, "optimizer/_iterations")) == 9

    # Nothing left to do: no new row, no new checkpoint.
    done = pretrain(tiny_config("train.checkpoint_every_steps=2", "train.epochs=3"),
                    tmp_path / "data", workdir, verbose=0)
    assert done.initial_epoch == 3 and len(done.history) == 3
    assert done.checkpoint == extended.checkpoint

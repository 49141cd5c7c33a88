"""train.deterministic: two runs of one config, data and seed are bit-identical.

Each run is a subprocess (a fresh TensorFlow, as two `tfcmvp pretrain`
commands are) of the library entry with its default one-device strategy.
The runs of a test start together and compete for the cores, as the runs of
a seed sweep do: that is when parallel tf.data stages finish elements out of
order. The training videos differ in length, so a video visited at another
position gives another sample (painted videos of one length are identical).

A third run with another seed must differ, or the equalities would hold for
a run that ignored its inputs. (Measured while writing this: with
train.deterministic=false the two same-seed runs of the pretraining test
differed in 2 of 2 tries.) MirroredStrategy over two logical CPUs is
checked the same way.
"""

import csv
import logging

import numpy as np
import pytest

from finetune_support import write_labelled_shards
from training_support import finish_weights_run, start_weights_run, tiny_config

# tests/scripts/weights_run.py: the whole model's weights; grappler on, as in a real run
# (the two-replica test turns it off: its first-call optimisation of the two-replica
# step takes longer than the training).
PRETRAIN_RUNNER = ("pretrain",)

FINETUNE_RUNNER = ("finetune",)

# Every video gives a sample (40 + i frames), 3 steps of 4 videos per epoch.
NUM_FRAMES = 40


def without_timing(history):
    """History rows without the wall-clock column."""
    return [{key: value for key, value in row.items() if key != "seconds"} for row in history]


def assert_same_arrays(first, second):
    assert len(first) == len(second)
    for index, (a, b) in enumerate(zip(first, second)):
        np.testing.assert_array_equal(a, b, err_msg=f"weight {index}")


def assert_some_array_differs(first, second):
    assert any(not np.array_equal(a, b) for a, b in zip(first, second))


def same_seed_twice_and_another(runner, tmp_path) -> dict:
    """Three concurrent runs of `runner` on the same shards: "first" and "second" with
    the same seed, "other_seed" with seed 1; their (info, before, after) results."""
    write_labelled_shards(tmp_path / "data", num_frames=NUM_FRAMES)
    names = {"first": (), "second": (), "other_seed": ("train.seed=1",)}
    runs = {
        name: start_weights_run(runner, overrides, tmp_path, name)
        for name, overrides in names.items()
    }
    return {name: finish_weights_run(run, tmp_path, name) for name, run in runs.items()}


@pytest.mark.slow
def test_pretraining_twice_gives_identical_history_and_weights(tmp_path):
    results = same_seed_twice_and_another(PRETRAIN_RUNNER, tmp_path)
    info1, before1, after1 = results["first"]
    info2, before2, after2 = results["second"]
    other, other_before, other_after = results["other_seed"]

    # Op determinism is on during the run and back off after it.
    assert info1["op_determinism_in_run"] and not info1["op_determinism_after"]
    assert len(info1["history"]) == 2
    assert without_timing(info1["history"]) == without_timing(info2["history"])
    assert_same_arrays(before1, before2)
    assert_same_arrays(after1, after2)
    # The weights moved, so equal weights after training say something.
    assert_some_array_differs(before1, after1)

    assert without_timing(other["history"]) != without_timing(info1["history"])
    assert_some_array_differs(other_before, before1)
    assert_some_array_differs(other_after, after1)


@pytest.mark.slow
def test_finetuning_twice_gives_identical_history_weights_and_test(tmp_path):
    results = same_seed_twice_and_another(FINETUNE_RUNNER, tmp_path)
    info1, before1, after1 = results["first"]
    info2, before2, after2 = results["second"]
    other, _, other_after = results["other_seed"]

    assert info1["op_determinism_in_run"] and not info1["op_determinism_after"]
    assert len(info1["history"]) == 2
    # The rows include the test after epoch 1 and after the last epoch.
    assert "val_top1" in info1["history"][0]
    assert without_timing(info1["history"]) == without_timing(info2["history"])
    assert_same_arrays(before1, before2)
    assert_same_arrays(after1, after2)
    assert_some_array_differs(before1, after1)
    for key in ("top1", "top5"):
        assert info1["results"][key] == info2["results"][key]
    predictions = [
        list(csv.DictReader((tmp_path / name / "test_predictions.csv").open()))
        for name in ("first", "second")
    ]
    assert predictions[0] == predictions[1]

    assert without_timing(other["history"]) != without_timing(info1["history"])
    assert_some_array_differs(other_after, after1)


@pytest.mark.slow
def test_pretraining_on_two_virtual_cpus_twice_is_identical(tmp_path):
    # MirroredStrategy over logical CPUs: the multi-replica code path (SyncBN,
    # key gathering, gradient sums across replicas) is deterministic as well.
    write_labelled_shards(tmp_path / "data", num_frames=NUM_FRAMES)
    overrides = (
        "runtime.virtual_cpus=2",
        "train.sync_bn=true",
        "train.epochs=1",
        "optimizer.warmup_epochs=0",
    )
    runs = {
        name: start_weights_run((*PRETRAIN_RUNNER, "--no-grappler"), overrides, tmp_path, name)
        for name in ("first", "second")
    }
    (info1, _, after1), (info2, _, after2) = (
        finish_weights_run(run, tmp_path, name) for name, run in runs.items()
    )
    assert info1["replicas"] == 2
    assert without_timing(info1["history"]) == without_timing(info2["history"])
    assert_same_arrays(after1, after2)


def test_unverified_multi_replica_determinism_warns_once(caplog, monkeypatch):
    from tfcmvp.training import loop

    monkeypatch.setattr(loop, "_determinism_warned", False)
    deterministic = tiny_config()  # the tiny test config asks for determinism
    with caplog.at_level(logging.WARNING, logger=loop.__name__):
        loop.warn_unverified_determinism(deterministic, 1)  # one device: verified
        loop.warn_unverified_determinism(tiny_config("runtime.virtual_cpus=2"), 2)  # verified
        loop.warn_unverified_determinism(tiny_config("train.deterministic=false"), 4)
        assert not caplog.records
        loop.warn_unverified_determinism(deterministic, 4)
        loop.warn_unverified_determinism(deterministic, 4)
    assert len(caplog.records) == 1
    assert "train.deterministic with 4 replicas" in caplog.records[0].getMessage()


def test_op_determinism_is_restored_after_the_block():
    from tensorflow.python.framework import config as tf_config

    from tfcmvp.training.strategy import op_determinism

    before = tf_config.is_op_determinism_enabled()
    with op_determinism(not before):
        assert tf_config.is_op_determinism_enabled() == (not before)
        with op_determinism(before):
            assert tf_config.is_op_determinism_enabled() == before
        assert tf_config.is_op_determinism_enabled() == (not before)
    assert tf_config.is_op_determinism_enabled() == before
    with pytest.raises(RuntimeError, match="inside"):
        with op_determinism(True):
            raise RuntimeError("inside")
    assert tf_config.is_op_determinism_enabled() == before

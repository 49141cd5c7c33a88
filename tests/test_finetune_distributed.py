"""One finetuning step on 2 replicas (2 logical CPUs) equals 1 replica.

Each run is a subprocess (logical CPUs must be configured before TensorFlow
initialises its devices) of the whole library entry, including the test
after the epoch under the strategy. Both runs see the same 4 videos in their
one step; SyncBN makes the forward pass the same, and the loss scaling (per-
video loss summed over the local batch and divided by the global batch,
once; gradients summed over replicas) makes the update the same. A loss
divided by the replicas twice, or never, would halve or double it.

The motion regulariser adds J_M to the same per-video loss (its composition
is checked in test_finetune_model.py); its key gathering across replicas is
the pretraining one (tests/test_training_distributed.py). Tracing it under
the strategy would take this test from ~45 s to ~2 min on 2 cores.
"""

import csv

import numpy as np
import pytest

from finetune_support import write_labelled_shards
from training_support import finish_weights_run, start_weights_run

# tests/scripts/weights_run.py: the whole model's weights, grappler off.
RUNNER = ("finetune", "--no-grappler")

ONE_STEP = (
    "train.epochs=1",
    "train.steps_per_epoch=1",
    "optimizer.warmup_epochs=0",
    "optimizer.base_lr_per_sample=0.025",  # lr 0.1 at global batch 4: a visible update
    "classifier.dropout=0",
    "train.sync_bn=true",
)


@pytest.mark.slow
def test_two_replicas_match_one_replica(tmp_path):
    # Identical training videos: under MirroredStrategy Keras' fit visits the
    # videos in another order than on one device (and from run to run), which
    # would compare different batches; samples of identical videos depend
    # only on their position in the stream.
    write_labelled_shards(tmp_path / "data", uniform_train=True)
    one = start_weights_run(RUNNER, ONE_STEP, tmp_path, "one")
    two = start_weights_run(RUNNER, ONE_STEP + ("runtime.virtual_cpus=2",), tmp_path, "two")
    info1, before1, after1 = finish_weights_run(one, tmp_path, "one")
    info2, before2, after2 = finish_weights_run(two, tmp_path, "two")

    assert (info1["replicas"], info2["replicas"]) == (1, 2)
    for b1, b2 in zip(before1, before2):  # same seed, same initial weights
        np.testing.assert_array_equal(b1, b2)
    # First-step losses (before the update): float32 sums in another order and
    # SyncBN's statistics leave ~1e-4 relative.
    for key in ("loss", "ce_loss", "acc", "lr"):
        assert info2["row"][key] == pytest.approx(info1["row"][key], rel=1e-3, abs=1e-6), key
    # Every weight's update agrees to 1 % of its size (a gradient scaled by 2 or
    # 1/2 would be off by 100 % or 50 %); untrained variables stay equal.
    updated = 0
    for b1, a1, a2 in zip(before1, after1, after2):
        update = np.max(np.abs(a1 - b1))
        updated += update > 0
        assert np.max(np.abs(a2 - a1)) <= 1e-2 * update + 1e-7
    assert updated > len(before1) // 2
    # The test after the epoch ran under both strategies on (nearly) the same weights.
    rows = [
        list(csv.DictReader((tmp_path / name / "test_predictions.csv").open()))
        for name in ("one", "two")
    ]
    assert [r["video_id"] for r in rows[0]] == [r["video_id"] for r in rows[1]]
    for r1, r2 in zip(*rows):
        assert float(r2["label_probability"]) == pytest.approx(
            float(r1["label_probability"]), abs=1e-3
        )


@pytest.mark.slow
def test_two_workers_finetune_one_model_and_test_it(tmp_path):
    """runtime.strategy=multi_worker with two local TF_CONFIG workers: one finetuned
    model (same weights on both), the 10-clip test after the epoch on every video, and
    the run's files from the chief only."""
    import json

    from test_training_distributed import free_ports

    write_labelled_shards(tmp_path / "data")
    cluster = [f"localhost:{port}" for port in free_ports(2)]
    runs = [
        start_weights_run(
            RUNNER,
            ONE_STEP + ("runtime.strategy=multi_worker",),
            tmp_path,
            f"worker{index}",
            workdir_name="run",
            extra_env={
                "TF_CONFIG": json.dumps(
                    {"cluster": {"worker": cluster}, "task": {"type": "worker", "index": index}}
                )
            },
        )
        for index in range(2)
    ]
    (info0, before0, after0), (info1, _, after1) = [
        finish_weights_run(run, tmp_path, f"worker{index}") for index, run in enumerate(runs)
    ]
    assert info0["replicas"] == info1["replicas"] == 2
    for a0, a1 in zip(after0, after1):
        np.testing.assert_array_equal(a0, a1)
    assert max(np.max(np.abs(a - b)) for a, b in zip(after0, before0)) > 0
    assert info0["results"] == info1["results"]
    rows = list(csv.DictReader((tmp_path / "run" / "test_predictions.csv").open()))
    assert len(rows) == info0["results"]["num_test_videos"] > 0
    assert not list((tmp_path / "run").glob("scratch-*"))

"""The full train step on 2 replicas (2 logical CPUs) equals 1 replica on the same global batch.

Each run is a subprocess: logical CPUs must be configured before TensorFlow
initialises its devices. Both pretraining runs see the same 4 videos in one
step (2 per replica on the mirrored run); SyncBN and all-gathered keys make
the forward pass the same, and the loss scaling (sum / global batch, once;
gradients summed over replicas) makes the update the same: a loss divided by
the number of replicas twice, or never, would halve or double it. (The
loss-level check is tests/test_losses_distributed.py.)

Gradient clipping is checked on its own, on a small model where the clip is
certainly active: ReplicaSumSGD clips the replica-summed gradient like one
replica would, where stock Keras SGD clips each replica's part.
"""

import json

import numpy as np
import pytest

from harness import run_script
from training_support import finish_weights_run, start_weights_run, write_painted_shards

# tests/scripts/weights_run.py: the video network's weights (names, trainable), grappler off.
RUNNER = ("pretrain", "--video-network-only", "--no-grappler")

ONE_STEP = (
    "train.epochs=1",
    "train.steps_per_epoch=1",
    "optimizer.warmup_epochs=0",
    "optimizer.base_lr_per_sample=0.025",  # lr 0.1 at global batch 4: a visible update
    "optimizer.clipnorm=null",  # an active clip would hide a wrongly scaled gradient
    "model.dropout=0",
    "train.sync_bn=true",
)


@pytest.mark.slow
def test_two_replicas_match_one_replica_on_the_same_global_batch(tmp_path):
    write_painted_shards(tmp_path / "data")
    # Both at once: two processes for the two cores.
    one = start_weights_run(RUNNER, ONE_STEP, tmp_path, "one")
    two = start_weights_run(RUNNER, ONE_STEP + ("runtime.virtual_cpus=2",), tmp_path, "two")
    info1, before1, after1 = finish_weights_run(one, tmp_path, "one")
    info2, before2, after2 = finish_weights_run(two, tmp_path, "two")

    assert (info1["replicas"], info2["replicas"]) == (1, 2)
    # Same initial weights (same seed), so the comparison is of one step.
    for b1, b2 in zip(before1, before2):
        np.testing.assert_array_equal(b1, b2)
    # First-step losses and pretext accuracies (computed before the update).
    # Float32 sums in another order, SyncBN's E[x^2] - E[x]^2 and 1 / tau = 10
    # leave ~1e-4 relative; a mismatched positive would change them by O(1).
    for key in ("loss", "context_loss", "motion_loss", "context_acc", "motion_acc", "lr"):
        assert info2["row"][key] == pytest.approx(info1["row"][key], rel=1e-3, abs=1e-6), key
    # The update of every weight and SyncBN moving statistic agrees with one
    # replica's; a gradient scaled by 2 or 1/2 would be off by 100 % or 50 % of it.
    # The moving statistics come from the forward pass alone: element-wise to
    # 1 % of their update (measured: 2e-5).
    # The trainable weights to 20 % of their update in norm, per tensor, and not
    # element-wise: the one-replica run normalises with the fused BN kernel, the
    # two-replica run with Keras's synchronised moments, about 1e-5 apart, and a
    # pre-activation that close to 0 falls on the other side of a ReLU in one of
    # the runs, which changes the gradient of its layer, and of every layer below,
    # by what flows through that one position (this step: two such positions at
    # conv3a, 1.7 % on conv1a_bn/beta). Measured on 15 first steps (5 seeds x 3
    # batches), the worst tensor was 0.02-0.5 % off in norm in 12 and 1.2-5.1 %
    # (8 % element-wise) in 3; a gradient scaled by 2 or 1/2 stays >= 45 % off.
    assert info1["names"] == info2["names"]
    for name, trainable, b1, a1, a2 in zip(
        info1["names"], info1["trainable"], before1, after1, after2
    ):
        if trainable:
            update = np.linalg.norm(a1 - b1)
            assert update > 0, name
            assert np.linalg.norm(a2 - a1) <= 0.2 * update, name
        else:
            update = np.max(np.abs(a1 - b1))
            assert update > 0, name
            assert np.max(np.abs(a2 - a1)) <= 1e-2 * update + 1e-7, name


def free_ports(count: int) -> list:
    import socket

    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("localhost", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


@pytest.mark.slow
def test_two_workers_train_one_model(tmp_path):
    """runtime.strategy=multi_worker: two processes on this machine (a TF_CONFIG cluster of
    two workers, one CPU replica each) train one model through Keras fit.

    Keras 3.15's multi-worker fit needs two workarounds (tfcmvp.training.prebuilt and
    step.update_metrics); without them the first step fails. The workers must end with
    the same weights (gradients all-reduced), the chief alone writes the run's files and
    the other worker's checkpoint scratch folder is gone.
    """
    write_painted_shards(tmp_path / "data")
    cluster = [f"localhost:{port}" for port in free_ports(2)]
    runs = []
    for index in range(2):
        tf_config = json.dumps(
            {"cluster": {"worker": cluster}, "task": {"type": "worker", "index": index}}
        )
        runs.append(
            start_weights_run(
                RUNNER,
                ONE_STEP + ("runtime.strategy=multi_worker", "train.steps_per_epoch=2"),
                tmp_path,
                f"worker{index}",
                workdir_name="run",
                extra_env={"TF_CONFIG": tf_config},
            )
        )
    (info0, before0, after0), (info1, before1, after1) = [
        finish_weights_run(run, tmp_path, f"worker{index}") for index, run in enumerate(runs)
    ]

    assert info0["replicas"] == info1["replicas"] == 2
    for b0, b1, a0, a1 in zip(before0, before1, after0, after1):
        np.testing.assert_array_equal(b0, b1)  # same seed
        np.testing.assert_array_equal(a0, a1)  # one model
    assert max(np.max(np.abs(a - b)) for a, b in zip(after0, before0)) > 0
    assert info0["row"]["step"] == 2 and np.isfinite(info0["row"]["loss"])
    workdir = tmp_path / "run"
    names = sorted(p.name for p in workdir.iterdir())
    assert names == [
        "checkpoints",
        "config.yaml",
        "history.csv",
        "history.png",
        "provenance.json",
        "tensorboard",
        "weights",
    ], names  # no scratch-worker-1 left
    assert (workdir / "weights" / "v_network.weights.h5").exists()


@pytest.mark.slow
def test_clipping_applies_to_the_replica_summed_gradient():
    found = run_script("clip_on_two_replicas.py")
    assert found["norm"] > 2.0 and found["part_norm"] > 1.0  # the clip (1.0) is active
    assert found["ours"] < 1e-6  # 2 replicas == 1 replica
    assert found["stock"] > 1e-2  # per-replica clipping moves the weights differently

"""1 replica vs MirroredStrategy on 2 logical CPUs: same loss, same gradients.

Logical devices can only be configured before TensorFlow initialises, so the
distributed computation runs in a fresh Python process (this file, run as a
script) that writes its results to an .npz file; the tests here compare them.

The worker builds tiny linear "encoders" for the four embeddings (clip query,
I-frame key, predicted motion, motion keys), computes one training step's
loss and gradients with the package's contract - per-example losses from the
loss functions, `replica_mean(per_example, global_batch)` per replica,
gradients summed over replicas as MirroredStrategy's optimizers do - and the
same with no strategy on the same global batch.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys

import numpy as np
import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]

D_IN, D_EMB, POSITIONS, CLIPS = 6, 5, 3, 2
# (case name, alpha, rows of the global batch held by replica 0 and 1)
CASES = [
    ("context", 0.0, (2, 2)),
    ("motion", 1.0, (2, 2)),
    ("joint", 0.5, (2, 2)),
    ("joint_uneven", 0.5, (3, 2)),  # MirroredStrategy allows unequal local batches
]
WEIGHTS = ("w_clip", "w_iframe", "w_pred", "w_motion")


def _worker(out_path: str) -> None:
    """Runs in the subprocess: 2 logical CPUs, both computations, saves .npz."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
    )

    sys.path.insert(0, str(REPO_ROOT))
    from tfcmvp.losses import context_infonce, joint_loss, motion_infonce, replica_mean

    rng = np.random.default_rng(7)
    init = {name: rng.normal(size=(D_IN, D_EMB)).astype(np.float32) for name in WEIGHTS}
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        mirrored = {name: tf.Variable(value, name=name) for name, value in init.items()}
    single = {name: tf.Variable(value, name=name) for name, value in init.items()}

    def step(weights, batch, alpha, global_batch):
        x_clip, x_iframe, x_pred, x_motion = batch
        with tf.GradientTape() as tape:
            clip = x_clip @ weights["w_clip"]  # [B, D]
            iframe = x_iframe @ weights["w_iframe"]  # [B, D]
            pred = tf.einsum("bnc,cd->bnd", x_pred, weights["w_pred"])  # [B, N, D]
            motion = tf.einsum("bknc,cd->bknd", x_motion, weights["w_motion"])  # [B, K, N, D]
            context_loss, context_correct = context_infonce(clip, iframe)  # [B]
            motion_loss, motion_correct = motion_infonce(pred, motion)  # [B, N]
            per_video = joint_loss(context_loss, tf.reduce_mean(motion_loss, axis=1), alpha)  # [B]
            loss = replica_mean(per_video, global_batch)
        grads = tape.gradient(loss, [weights[name] for name in WEIGHTS])
        # None (no path from the loss) becomes zeros so the checks below report it.
        grads = [
            tf.zeros_like(weights[name]) if grad is None else grad
            for name, grad in zip(WEIGHTS, grads)
        ]
        return loss, grads, per_video, context_correct, motion_correct

    results = {}
    for name, alpha, split in CASES:
        total = sum(split)
        batch = (
            rng.normal(size=(total, D_IN)).astype(np.float32),
            rng.normal(size=(total, D_IN)).astype(np.float32),
            rng.normal(size=(total, POSITIONS, D_IN)).astype(np.float32),
            rng.normal(size=(total, CLIPS, POSITIONS, D_IN)).astype(np.float32),
        )

        loss, grads, per_video, _, _ = tf.function(step)(
            single, tuple(tf.constant(x) for x in batch), alpha, total
        )
        results[f"{name}/single/loss"] = loss.numpy()
        results[f"{name}/single/per_video"] = per_video.numpy()
        for weight, grad in zip(WEIGHTS, grads):
            results[f"{name}/single/{weight}"] = grad.numpy()

        starts = np.cumsum((0,) + split)

        def local_rows(context, starts=starts, batch=batch):
            r = context.replica_id_in_sync_group
            return tuple(tf.constant(x[starts[r] : starts[r + 1]]) for x in batch)

        local = strategy.experimental_distribute_values_from_function(local_rows)

        @tf.function
        def distributed_step(local, alpha=alpha, total=total):
            return strategy.run(step, args=(mirrored, local, alpha, total))

        loss, grads, per_video, _, _ = distributed_step(local)
        # Optimisers under MirroredStrategy sum the replicas' gradients.
        results[f"{name}/mirrored/loss"] = strategy.reduce("SUM", loss, axis=None).numpy()
        results[f"{name}/mirrored/per_video"] = np.concatenate(
            [t.numpy() for t in strategy.experimental_local_results(per_video)]
        )
        results[f"{name}/mirrored/replicas"] = np.array(strategy.num_replicas_in_sync)
        for weight, grad in zip(WEIGHTS, grads):
            results[f"{name}/mirrored/{weight}"] = strategy.reduce("SUM", grad, axis=None).numpy()
    np.savez(out_path, **results)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("distributed") / "results.npz"
    proc = subprocess.run(
        [sys.executable, __file__, str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO_ROOT,
    )
    if proc.returncode != 0:
        pytest.fail(f"distributed worker failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    with np.load(out) as data:
        return dict(data)


@pytest.mark.parametrize("case", [c[0] for c in CASES])
def test_two_replicas_ran(results, case):
    assert int(results[f"{case}/mirrored/replicas"]) == 2


@pytest.mark.parametrize("case", [c[0] for c in CASES])
def test_loss_matches_single_replica(results, case):
    single = results[f"{case}/single/per_video"]
    np.testing.assert_allclose(results[f"{case}/mirrored/per_video"], single, atol=1e-5)
    # The summed replica losses are the global-batch mean, as with one replica.
    np.testing.assert_allclose(results[f"{case}/mirrored/loss"], single.mean(), atol=1e-5)
    np.testing.assert_allclose(results[f"{case}/single/loss"], single.mean(), atol=1e-6)


@pytest.mark.parametrize("case", [c[0] for c in CASES])
@pytest.mark.parametrize("weight", WEIGHTS)
def test_gradients_match_single_replica(results, case, weight):
    np.testing.assert_allclose(
        results[f"{case}/mirrored/{weight}"], results[f"{case}/single/{weight}"], atol=1e-5
    )


@pytest.mark.parametrize(
    "case, used",
    [
        ("context", ("w_clip", "w_iframe")),
        ("motion", ("w_pred", "w_motion")),
        ("joint", WEIGHTS),
    ],
)
def test_gradients_reach_every_encoder_in_use(results, case, used):
    for weight in WEIGHTS:
        grad = results[f"{case}/mirrored/{weight}"]
        if weight in used:
            assert np.abs(grad).max() > 1e-3, f"{case}: no gradient reached {weight}"
        else:  # alpha 0 / 1 switch the other task off entirely
            assert np.abs(grad).max() == 0.0, f"{case}: unexpected gradient on {weight}"


if __name__ == "__main__":
    _worker(sys.argv[1])

"""tfcmvp.losses against independent NumPy references and known answers.

The cross-replica behaviour (2 logical CPUs) is in test_losses_distributed.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from tfcmvp.losses import (
    DEFAULT_TEMPERATURE,
    context_infonce,
    joint_loss,
    motion_infonce,
    motion_mse,
    motion_quantized_ce,
    pool_motion_targets,
    quantize_motion,
    replica_mean,
)

# ---------------------------------------------------------------- references (float64)


def _logsumexp(x):
    m = x.max()
    return m + np.log(np.exp(x - m).sum())


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def ref_context(query, key, tau):
    """Eq. 1 written out per query: loss [B], correct [B]."""
    q, k = _unit(query.astype(np.float64)), _unit(key.astype(np.float64))
    losses, correct = [], []
    for i in range(len(q)):
        logits = np.array([q[i] @ k[j] for j in range(len(k))]) / tau
        losses.append(_logsumexp(logits) - logits[i])
        correct.append(float(np.argmax(logits) == i))
    return np.array(losses), np.array(correct)


def ref_motion(pred, keys, tau):
    """Eq. 2 written out per (video, position) query: loss [B, N], correct [B, N]."""
    p, k = _unit(pred.astype(np.float64)), _unit(keys.astype(np.float64))
    b_count, k_count, n_count, _ = k.shape
    loss = np.zeros((b_count, n_count))
    correct = np.zeros((b_count, n_count))
    for b in range(b_count):
        for n in range(n_count):
            logits = np.einsum("d,gkld->gkl", p[b, n], k) / tau  # every key of every clip
            loss[b, n] = _logsumexp(logits.ravel()) - logits[b, 0, n]
            best = np.unravel_index(np.argmax(logits), logits.shape)
            correct[b, n] = float(best == (b, 0, n))
    return loss, correct


def ref_quantize(v, bins, low, high):
    out = np.empty(np.shape(v), np.int64)
    for idx, x in np.ndenumerate(np.asarray(v, np.float64)):
        x = min(max(x, low), high)
        out[idx] = min(int(math.floor((x - low) / (high - low) * bins)), bins - 1)
    return out


def ref_pool(motion, grid):
    """Mean of every cell by explicit loops, (t, y, x) flattening."""
    b_count, t, h, w, _ = motion.shape
    t3, h3, w3 = grid
    ft, fh, fw = t // t3, h // h3, w // w3
    out = np.zeros((b_count, t3 * h3 * w3, 2))
    for b in range(b_count):
        for i in range(t3):
            for y in range(h3):
                for x in range(w3):
                    cell = motion[
                        b, i * ft : (i + 1) * ft, y * fh : (y + 1) * fh, x * fw : (x + 1) * fw
                    ]
                    out[b, (i * h3 + y) * w3 + x] = cell.reshape(-1, 2).mean(axis=0)
    return out


def numeric_grad(fn, x, h=1e-6):
    """Central differences of scalar fn at float64 array x."""
    x = x.astype(np.float64)
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[idx] += h
        down[idx] -= h
        grad[idx] = (fn(up) - fn(down)) / (2 * h)
    return grad


def _rand(rng, *shape):
    # Deliberately not unit length: the losses normalise inside.
    return (rng.normal(size=shape) * rng.uniform(0.5, 3.0)).astype(np.float32)


# ---------------------------------------------------------------- context (Eq. 1)


@pytest.mark.parametrize("batch, depth, tau", [(1, 4, 0.1), (3, 5, 0.1), (8, 16, 0.1), (5, 7, 0.5)])
def test_context_matches_reference(batch, depth, tau):
    rng = np.random.default_rng(batch * 100 + depth)
    query, key = _rand(rng, batch, depth), _rand(rng, batch, depth)
    loss, correct = context_infonce(tf.constant(query), tf.constant(key), temperature=tau)
    want_loss, want_correct = ref_context(query, key, tau)
    assert loss.shape == (batch,) and correct.shape == (batch,)
    assert loss.dtype == tf.float32 and correct.dtype == tf.float32
    np.testing.assert_allclose(loss.numpy(), want_loss, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(correct.numpy(), want_correct)


def test_context_single_video_has_zero_loss():
    loss, correct = context_infonce(tf.constant([[1.0, -2.0]]), tf.constant([[-3.0, 0.5]]))
    np.testing.assert_allclose(loss.numpy(), [0.0], atol=1e-7)
    np.testing.assert_array_equal(correct.numpy(), [1.0])


@pytest.mark.parametrize("batch, tau", [(2, 0.1), (4, 0.1), (6, 0.2)])
def test_context_aligned_one_hot_known_answer(batch, tau):
    # Scaled one-hot embeddings: cos = 1 with the own key, 0 with every other,
    # so every loss is -log(e^(1/tau) / (e^(1/tau) + B - 1)).
    eye = np.eye(batch, batch + 2, dtype=np.float32)
    loss, correct = context_infonce(tf.constant(3.0 * eye), tf.constant(0.5 * eye), temperature=tau)
    want = math.log(1.0 + (batch - 1) * math.exp(-1.0 / tau))
    # float32 logsumexp - logit of ~1/tau: absolute error ~1e-6.
    np.testing.assert_allclose(loss.numpy(), np.full(batch, want), rtol=1e-5, atol=2e-6)
    np.testing.assert_array_equal(correct.numpy(), np.ones(batch))


def test_context_accuracy_on_constructed_inputs():
    keys = np.eye(4, dtype=np.float32)
    # Queries 1 and 2 point at each other's I-frame; 0 and 3 at their own.
    query = keys[[0, 2, 1, 3]] + 0.1 * np.ones((4, 4), np.float32)
    _, correct = context_infonce(tf.constant(query), tf.constant(keys))
    np.testing.assert_array_equal(correct.numpy(), [1.0, 0.0, 0.0, 1.0])


def test_context_gradient_matches_analytic():
    # dL/dq_hat = (softmax - onehot) k_hat / tau, then through the normalisation
    # (I - q_hat q_hat^T) / |q|; symmetrically for the keys, summed over queries.
    rng = np.random.default_rng(3)
    query, key, tau = _rand(rng, 3, 4), _rand(rng, 3, 4), 0.1
    q = tf.Variable(query)
    k = tf.Variable(key)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(context_infonce(q, k, temperature=tau)[0])
    grad_q, grad_k = tape.gradient(loss, [q, k])

    qd, kd = query.astype(np.float64), key.astype(np.float64)
    qh, kh = _unit(qd), _unit(kd)
    logits = qh @ kh.T / tau
    soft = np.exp(logits - logits.max(1, keepdims=True))
    soft /= soft.sum(1, keepdims=True)
    delta = (soft - np.eye(3)) / tau
    d_qh, d_kh = delta @ kh, delta.T @ qh

    def through_norm(x, xh, d):
        return np.stack(
            [
                (np.eye(4) - np.outer(xh[i], xh[i])) @ d[i] / np.linalg.norm(x[i])
                for i in range(len(x))
            ]
        )

    np.testing.assert_allclose(grad_q.numpy(), through_norm(qd, qh, d_qh), atol=1e-5)
    np.testing.assert_allclose(grad_k.numpy(), through_norm(kd, kh, d_kh), atol=1e-5)


def test_context_gradient_reaches_key_encoder():
    rng = np.random.default_rng(4)
    x_clip, x_iframe = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    w_q, w_k = rng.normal(size=(3, 5)), rng.normal(size=(3, 5))
    wq_var, wk_var = tf.Variable(w_q, dtype=tf.float32), tf.Variable(w_k, dtype=tf.float32)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(
            context_infonce(
                tf.constant(x_clip, tf.float32) @ wq_var, tf.constant(x_iframe, tf.float32) @ wk_var
            )[0]
        )
    grad_k = tape.gradient(loss, wk_var).numpy()
    want = numeric_grad(lambda w: ref_context(x_clip @ w_q, x_iframe @ w, 0.1)[0].mean(), w_k)
    assert np.abs(grad_k).max() > 1e-2
    np.testing.assert_allclose(grad_k, want, atol=1e-4)


# ---------------------------------------------------------------- motion (Eq. 2)


@pytest.mark.parametrize(
    "batch, clips, positions, depth",
    [(1, 1, 1, 4), (1, 4, 1, 3), (2, 4, 3, 8), (3, 2, 5, 6), (2, 4, 49, 8)],
)
def test_motion_matches_reference(batch, clips, positions, depth):
    rng = np.random.default_rng(batch * 1000 + clips * 100 + positions)
    pred, keys = _rand(rng, batch, positions, depth), _rand(rng, batch, clips, positions, depth)
    loss, correct = motion_infonce(tf.constant(pred), tf.constant(keys))
    want_loss, want_correct = ref_motion(pred, keys, DEFAULT_TEMPERATURE)
    assert loss.shape == (batch, positions) and correct.shape == (batch, positions)
    np.testing.assert_allclose(loss.numpy(), want_loss, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(correct.numpy(), want_correct)


def test_motion_single_key_has_zero_loss():
    loss, correct = motion_infonce(tf.ones([1, 1, 3]), -tf.ones([1, 1, 1, 3]))
    np.testing.assert_allclose(loss.numpy(), [[0.0]], atol=1e-7)
    np.testing.assert_array_equal(correct.numpy(), [[1.0]])


@pytest.mark.parametrize(
    "batch, clips, positions, tau", [(2, 2, 3, 0.1), (1, 4, 4, 0.1), (3, 1, 2, 0.3)]
)
def test_motion_aligned_one_hot_known_answer(batch, clips, positions, tau):
    # Every key position of every clip gets its own axis; the prediction equals
    # the target clip's key: loss = log(1 + (B K N - 1) e^(-1/tau)).
    total = batch * clips * positions
    keys = 2.0 * np.eye(total, dtype=np.float32).reshape(batch, clips, positions, total)
    pred = 0.3 * keys[:, 0]
    loss, correct = motion_infonce(tf.constant(pred), tf.constant(keys), temperature=tau)
    want = math.log(1.0 + (total - 1) * math.exp(-1.0 / tau))
    np.testing.assert_allclose(
        loss.numpy(), np.full((batch, positions), want), rtol=1e-5, atol=2e-6
    )
    np.testing.assert_array_equal(correct.numpy(), np.ones((batch, positions)))


def test_motion_accuracy_only_counts_same_video_position_and_target_clip():
    batch, clips, positions = 2, 3, 2
    total = batch * clips * positions
    keys = np.eye(total, dtype=np.float32).reshape(batch, clips, positions, total)
    pred = keys[:, 0].copy()  # all correct ...
    pred[0, 1] = keys[0, 1, 1]  # ... except: the same position of a hard negative,
    pred[1, 0] = keys[1, 0, 1]  # another position of the target clip,
    pred[1, 1] = keys[0, 0, 1]  # the same position of another video's target.
    _, correct = motion_infonce(tf.constant(pred), tf.constant(keys))
    np.testing.assert_array_equal(correct.numpy(), [[1.0, 0.0], [0.0, 0.0]])


def test_motion_gradient_matches_finite_differences():
    rng = np.random.default_rng(5)
    pred, keys = _rand(rng, 2, 2, 3), _rand(rng, 2, 2, 2, 3)
    p, k = tf.Variable(pred), tf.Variable(keys)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(motion_infonce(p, k)[0])
    grad_p, grad_k = tape.gradient(loss, [p, k])
    want_p = numeric_grad(lambda x: ref_motion(x, keys, 0.1)[0].mean(), pred)
    want_k = numeric_grad(lambda x: ref_motion(pred, x, 0.1)[0].mean(), keys)
    assert np.abs(grad_k.numpy()).max() > 1e-2  # the motion key encoder trains too
    np.testing.assert_allclose(grad_p.numpy(), want_p, atol=1e-4)
    np.testing.assert_allclose(grad_k.numpy(), want_k, atol=1e-4)


def test_motion_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="pred"):
        motion_infonce(tf.zeros([2, 3, 4]), tf.zeros([2, 4, 5, 4]))
    with pytest.raises(ValueError, match=r"\[B, K, N, D\]"):
        motion_infonce(tf.zeros([2, 3, 4]), tf.zeros([2, 3, 4]))


# ---------------------------------------------------------------- shared properties


@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16])
def test_mixed_precision_inputs_computed_in_float32(dtype):
    rng = np.random.default_rng(6)
    query, key = _rand(rng, 4, 8), _rand(rng, 4, 8)
    pred, keys = _rand(rng, 2, 3, 8), _rand(rng, 2, 2, 3, 8)
    low = [tf.constant(x, dtype) for x in (query, key, pred, keys)]
    # Reference: the same rounded values, in float64.
    rounded = [x.numpy().astype(np.float64) for x in (tf.cast(t, tf.float32) for t in low)]
    c_loss, _ = context_infonce(low[0], low[1])
    m_loss, _ = motion_infonce(low[2], low[3])
    assert c_loss.dtype == tf.float32 and m_loss.dtype == tf.float32
    want_context = ref_context(rounded[0], rounded[1], 0.1)[0]
    want_motion = ref_motion(rounded[2], rounded[3], 0.1)[0]
    np.testing.assert_allclose(c_loss.numpy(), want_context, atol=1e-4)
    np.testing.assert_allclose(m_loss.numpy(), want_motion, atol=1e-4)


def test_extreme_similarities_stay_finite():
    # tau small enough that exp(logit) overflows float32: logsumexp must not.
    eye = np.eye(3, dtype=np.float32)
    loss, _ = context_infonce(tf.constant(eye), tf.constant(eye[[1, 0, 2]]), temperature=1e-3)
    np.testing.assert_allclose(loss.numpy(), [1000.0, 1000.0, 0.0], rtol=1e-5)


def test_graph_and_xla_with_unknown_batch_match_eager():
    rng = np.random.default_rng(8)
    query, key = _rand(rng, 3, 8), _rand(rng, 3, 8)
    pred, keys = _rand(rng, 3, 4, 8), _rand(rng, 3, 2, 4, 8)

    @tf.function(
        jit_compile=True,
        input_signature=[
            tf.TensorSpec([None, 8]),
            tf.TensorSpec([None, 8]),
            tf.TensorSpec([None, 4, 8]),
            tf.TensorSpec([None, 2, 4, 8]),
        ],
    )
    def compiled(q, k, p, m):
        return context_infonce(q, k) + motion_infonce(p, m)

    got = compiled(query, key, pred, keys)
    want = context_infonce(tf.constant(query), tf.constant(key)) + motion_infonce(
        tf.constant(pred), tf.constant(keys)
    )
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-5, atol=1e-5)


def test_single_device_strategy_is_the_local_batch():
    rng = np.random.default_rng(9)
    query, key = _rand(rng, 3, 5), _rand(rng, 3, 5)
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    loss, _ = strategy.run(context_infonce, args=(tf.constant(query), tf.constant(key)))
    np.testing.assert_allclose(loss.numpy(), ref_context(query, key, 0.1)[0], rtol=1e-5, atol=1e-5)


def test_numpy_and_float64_inputs_are_accepted():
    query = np.array([[1.0, 0.0], [0.0, 2.0]])  # float64 NumPy
    loss, correct = context_infonce(query, query)
    want = math.log(1 + math.exp(-10.0))  # two orthogonal videos, tau = 0.1
    np.testing.assert_allclose(loss.numpy(), [want, want], rtol=1e-5, atol=2e-6)
    assert loss.dtype == tf.float32
    np.testing.assert_array_equal(correct.numpy(), [1.0, 1.0])
    loss, _ = motion_infonce(query[:, None, :], query[:, None, None, :])
    assert loss.shape == (2, 1) and loss.dtype == tf.float32


@pytest.mark.parametrize("tau", [0.0, -0.1])
def test_temperature_must_be_positive(tau):
    with pytest.raises(ValueError, match="temperature"):
        context_infonce(tf.ones([2, 3]), tf.ones([2, 3]), temperature=tau)
    with pytest.raises(ValueError, match="temperature"):
        motion_infonce(tf.ones([2, 1, 3]), tf.ones([2, 1, 1, 3]), temperature=tau)


def test_context_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="same"):
        context_infonce(tf.ones([2, 3]), tf.ones([2, 4]))
    with pytest.raises(ValueError, match=r"\[B, D\]"):
        context_infonce(tf.ones([2, 3, 1]), tf.ones([2, 3, 1]))


# ---------------------------------------------------------------- joint loss and scaling


def test_joint_loss_weights_the_two_tasks():
    context, motion = tf.constant([1.0, 3.0]), tf.constant([5.0, 7.0])
    np.testing.assert_allclose(joint_loss(context, motion).numpy(), [3.0, 5.0])
    np.testing.assert_allclose(joint_loss(context, motion, 0.25).numpy(), [2.0, 4.0])
    np.testing.assert_allclose(joint_loss(context, motion, 0.0).numpy(), [1.0, 3.0])
    np.testing.assert_allclose(joint_loss(context, motion, 1.0).numpy(), [5.0, 7.0])
    # The authors' loss_m + loss_i is twice the alpha = 0.5 objective.
    np.testing.assert_allclose(
        2 * joint_loss(context, motion, 0.5).numpy(), (context + motion).numpy()
    )
    for alpha in (-0.1, 1.5):
        with pytest.raises(ValueError, match="alpha"):
            joint_loss(context, motion, alpha)


def test_joint_loss_scale_multiplies_the_objective():
    context, motion = tf.constant([1.0, 3.0]), tf.constant([5.0, 7.0])
    # scale 2 at alpha 0.5 is the authors' loss_m + loss_i.
    np.testing.assert_allclose(joint_loss(context, motion, 0.5, 2.0).numpy(), [6.0, 10.0])
    np.testing.assert_allclose(
        joint_loss(context, motion, 0.25, 3.0).numpy(),
        3.0 * (0.75 * np.array([1.0, 3.0]) + 0.25 * np.array([5.0, 7.0])),
    )
    np.testing.assert_allclose(joint_loss(context, motion, 0.25).numpy(), [2.0, 4.0])  # scale 1
    for scale in (0.0, -2.0):
        with pytest.raises(ValueError, match="scale"):
            joint_loss(context, motion, 0.5, scale)


def test_replica_mean_divides_by_the_global_batch():
    np.testing.assert_allclose(replica_mean(tf.constant([1.0, 2.0, 3.0]), 6).numpy(), 1.0)
    # Positions are averaged per video first: videos count once each.
    per_position = tf.constant([[1.0, 3.0], [5.0, 7.0]])
    np.testing.assert_allclose(replica_mean(per_position, 4).numpy(), (2.0 + 6.0) / 4)
    np.testing.assert_allclose(replica_mean(per_position, tf.constant(2)).numpy(), 4.0)
    with pytest.raises(ValueError, match="global_batch_size"):
        replica_mean(tf.constant([1.0]), 0)
    with pytest.raises(ValueError, match="scalar"):
        replica_mean(tf.constant(1.0), 2)


# ---------------------------------------------------------------- ablations (Table 1)


@pytest.mark.parametrize(
    "shape, grid",
    [((2, 8, 16, 16, 2), (1, 2, 2)), ((1, 4, 6, 9, 2), (2, 3, 3)), ((1, 2, 3, 3, 2), (2, 3, 3))],
)
def test_pool_motion_targets_matches_reference(shape, grid):
    motion = np.random.default_rng(10).normal(size=shape).astype(np.float32)
    got = pool_motion_targets(tf.constant(motion), grid)
    assert got.shape == (shape[0], grid[0] * grid[1] * grid[2], 2)
    np.testing.assert_allclose(got.numpy(), ref_pool(motion, grid), atol=1e-6)


def test_pool_motion_targets_flattens_t_y_x():
    # Cell (t, y, x) of a 2x3x4 grid holds the constant vector (j, -j) with
    # j = (t * 3 + y) * 4 + x; pooled position j must return it.
    t3, h3, w3 = 2, 3, 4
    j = np.arange(t3 * h3 * w3, dtype=np.float32).reshape(t3, h3, w3)
    cells = np.repeat(np.repeat(np.repeat(j, 2, 0), 5, 1), 3, 2)  # [4, 15, 12]
    motion = np.stack([cells, -cells], -1)[None]  # [1, 4, 15, 12, 2]
    got = pool_motion_targets(tf.constant(motion), (t3, h3, w3)).numpy()
    np.testing.assert_allclose(got[0], np.stack([j.ravel(), -j.ravel()], -1))


def test_pool_motion_targets_rejects_bad_grids():
    with pytest.raises(ValueError, match="multiple"):
        pool_motion_targets(tf.zeros([1, 8, 112, 112, 2]), (1, 5, 7))
    with pytest.raises(ValueError, match="grid"):
        pool_motion_targets(tf.zeros([1, 8, 112, 112, 2]), (7, 7))
    with pytest.raises(ValueError, match=r"\[B, T, H, W, 2\]"):
        pool_motion_targets(tf.zeros([1, 8, 112, 112]), (1, 7, 7))


@pytest.mark.parametrize("bins", [5, 4])
def test_quantize_motion_known_classes(bins):
    values = [-7.0, -1.0, -0.61, -0.59, 0.0, 0.19, 0.21, 0.99, 1.0, 5.0]
    got = quantize_motion(tf.constant(values), bins, (-1.0, 1.0)).numpy()
    want = {5: [0, 0, 0, 1, 2, 2, 3, 4, 4, 4], 4: [0, 0, 0, 0, 2, 2, 2, 3, 3, 3]}[bins]
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got, ref_quantize(values, bins, -1.0, 1.0))


def test_quantize_motion_rejects_bad_settings():
    with pytest.raises(ValueError, match="bins"):
        quantize_motion(tf.zeros([2]), 1, (-1.0, 1.0))
    with pytest.raises(ValueError, match="value_range"):
        quantize_motion(tf.zeros([2]), 5, (1.0, -1.0))


def test_motion_mse_matches_reference():
    rng = np.random.default_rng(11)
    pred, target = rng.uniform(-1, 1, (3, 4, 2)), rng.uniform(-1, 1, (3, 4, 2))
    pred[0, 0] = target[0, 0] + [0.01, -0.01]  # near enough to share bins
    pred = pred.astype(np.float32)
    target = target.astype(np.float32)
    loss, correct = motion_mse(tf.constant(pred), tf.constant(target), bins=9, value_range=(-1, 1))
    np.testing.assert_allclose(loss.numpy(), ((pred - target) ** 2).mean(-1), rtol=1e-6)
    same = ref_quantize(pred, 9, -1, 1) == ref_quantize(target, 9, -1, 1)
    np.testing.assert_array_equal(correct.numpy(), same.all(-1).astype(np.float32))
    assert correct.numpy()[0, 0] == 1.0


def test_motion_mse_pools_dense_targets_and_has_the_analytic_gradient():
    rng = np.random.default_rng(12)
    dense = rng.normal(size=(2, 4, 6, 6, 2)).astype(np.float32)
    pred = rng.normal(size=(2, 2 * 3 * 3, 2)).astype(np.float32)
    pooled = ref_pool(dense, (2, 3, 3))
    p = tf.Variable(pred)
    with tf.GradientTape() as tape:
        loss, _ = motion_mse(p, tf.constant(dense), bins=5, value_range=(-2, 2), grid=(2, 3, 3))
        total = tf.reduce_sum(loss)
    np.testing.assert_allclose(loss.numpy(), ((pred - pooled) ** 2).mean(-1), rtol=1e-5, atol=1e-6)
    # d/dp of mean over 2 components of (p - t)^2 is (p - t).
    np.testing.assert_allclose(tape.gradient(total, p).numpy(), pred - pooled, atol=1e-5)
    with pytest.raises(ValueError, match="grid"):
        motion_mse(p, tf.constant(dense), bins=5, value_range=(-2, 2))


def _ref_ce(logits, target, bins, low, high):
    classes = ref_quantize(target, bins, low, high)
    lg = logits.astype(np.float64)
    loss = np.zeros(target.shape[:2])
    correct = np.zeros(target.shape[:2])
    for b, n in np.ndindex(*target.shape[:2]):
        parts = [_logsumexp(lg[b, n, c]) - lg[b, n, c, classes[b, n, c]] for c in range(2)]
        loss[b, n] = np.mean(parts)
        correct[b, n] = float(all(np.argmax(lg[b, n, c]) == classes[b, n, c] for c in range(2)))
    return loss, correct


@pytest.mark.parametrize("batch, positions, bins", [(1, 1, 3), (2, 5, 7), (3, 4, 16)])
def test_motion_quantized_ce_matches_reference(batch, positions, bins):
    rng = np.random.default_rng(bins)
    logits = (3 * rng.normal(size=(batch, positions, 2, bins))).astype(np.float32)
    target = rng.uniform(-1.3, 1.3, (batch, positions, 2)).astype(np.float32)
    loss, correct = motion_quantized_ce(tf.constant(logits), tf.constant(target), bins, (-1.0, 1.0))
    want_loss, want_correct = _ref_ce(logits, target, bins, -1.0, 1.0)
    np.testing.assert_allclose(loss.numpy(), want_loss, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(correct.numpy(), want_correct)


def test_motion_quantized_ce_accuracy_and_gradient_on_constructed_inputs():
    bins = 5  # classes over (-1, 1): target (0.0, 0.9) -> (2, 4)
    logits = np.zeros((1, 2, 2, bins), np.float32)
    logits[0, 0, 0, 2] = logits[0, 0, 1, 4] = 4.0  # both components right
    logits[0, 1, 0, 2] = logits[0, 1, 1, 3] = 4.0  # y wrong
    target = np.array([[[0.0, 0.9], [0.0, 0.9]]], np.float32)
    l_var = tf.Variable(logits)
    with tf.GradientTape() as tape:
        loss, correct = motion_quantized_ce(l_var, tf.constant(target), bins, (-1.0, 1.0))
        total = tf.reduce_sum(loss)
    np.testing.assert_array_equal(correct.numpy(), [[1.0, 0.0]])
    # Gradient of the component-mean cross-entropy: (softmax - onehot) / 2.
    soft = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    onehot = np.zeros_like(logits)
    onehot[0, :, 0, 2] = onehot[0, :, 1, 4] = 1.0
    np.testing.assert_allclose(tape.gradient(total, l_var).numpy(), (soft - onehot) / 2, atol=1e-6)


def test_motion_quantized_ce_dense_targets_and_shape_errors():
    rng = np.random.default_rng(13)
    dense = rng.uniform(-1, 1, (2, 2, 4, 4, 2)).astype(np.float32)
    logits = rng.normal(size=(2, 4, 2, 6)).astype(np.float32)
    loss, _ = motion_quantized_ce(
        tf.constant(logits), tf.constant(dense), 6, (-1, 1), grid=(1, 2, 2)
    )
    want, _ = _ref_ce(logits, ref_pool(dense, (1, 2, 2)), 6, -1.0, 1.0)
    np.testing.assert_allclose(loss.numpy(), want, rtol=1e-5)
    with pytest.raises(ValueError, match=r"\[B, N, 2, 5\]"):
        motion_quantized_ce(tf.constant(logits), tf.constant(dense), 5, (-1, 1), grid=(1, 2, 2))

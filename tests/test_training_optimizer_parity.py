"""Our optimizer against written-out NumPy re-implementations of the updates it promises.

Coupled mode (the default) must be the authors' update: PyTorch's
``clip_grad_norm_`` then ``torch.optim.SGD(lr, momentum, weight_decay,
nesterov)``. Decoupled mode must be the stock Keras SGD it replaced. Every run
goes through ``build_optimizer`` with a warm-up + cosine schedule, so the rate
changes at every step (where Keras' and PyTorch's momentum forms part), and
the problem's gradients are large in some steps and small in others, so the
clip is active in some steps only. The problem is linear regression on a
4-example batch, which can also be split over 2 replicas.
"""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcmvp import config as cfg
from tfcmvp.training.optimizer import ReplicaSumSGD, build_optimizer

from harness import run_checkpoint_test, run_script, run_serialization_test

STEPS = 20
BATCH = 4
PEAK = 0.2  # 0.05 x batch 4
WARMUP = 5
CLIP = 2.0  # clips 7 to 11 of the 20 steps of each seeded problem below
DECAY = 0.05  # large, so that a decay applied the wrong way is far above 1e-6
TOLERANCE = 1e-6


# 4 epochs of 5 steps: 5 warm-up steps up to 0.05 x 4 = 0.2, then 15 of cosine.
OVERRIDES = (
    "train.epochs=4",
    f"train.global_batch_size={BATCH}",
    "train.steps_per_epoch=5",
    "optimizer.base_lr_per_sample=0.05",
    "optimizer.warmup_epochs=1",
    f"optimizer.clipnorm={CLIP}",
    f"optimizer.weight_decay={DECAY}",
    "optimizer.momentum=0.9",
)


def config(*overrides):
    return cfg.load_config(None, [*OVERRIDES, *overrides])


def learning_rates():
    """The schedule written out: linear warm-up counting step + 1, then cosine to 0."""
    return [
        PEAK * (s + 1) / WARMUP
        if s < WARMUP
        else PEAK * (1 + math.cos(math.pi * (s - WARMUP) / (STEPS - WARMUP))) / 2
        for s in range(STEPS)
    ]


def problem(seed=0):
    """Initial weights [W (3, 2), b (2,)] and STEPS batches (x [4, 3], y [4, 2]).

    Every third batch has targets 30x larger: its gradient norm is far above
    the clip; of the others, some pass unclipped."""
    rng = np.random.default_rng(seed)
    weights = [rng.normal(size=(3, 2)).astype(np.float32), rng.normal(size=(2,)).astype(np.float32)]
    xs = rng.normal(size=(STEPS, BATCH, 3)).astype(np.float32)
    ys = 0.1 * rng.normal(size=(STEPS, BATCH, 2)).astype(np.float32)
    ys[::3] *= 30.0
    return weights, xs, ys


def gradients(weights, x, y):
    """d/dw of the batch mean of 0.5 ||x W + b - y||^2."""
    w, b = weights
    residual = x @ w + b - y  # [B, 2]
    return [x.T @ residual / len(x), residual.sum(axis=0) / len(x)]


def loss_fn(weights, x, y, global_batch):
    """This replica's share: sum over its examples / global batch (tfcmvp.losses.scaling)."""
    w, b = weights
    x, y = tf.constant(x), tf.constant(y)  # a NumPy x @ w would read w as an array
    return tf.reduce_sum(0.5 * tf.square(tf.matmul(x, w) + b - y)) / global_batch


def torch_sgd(weights, xs, ys, lrs, momentum, nesterov, weight_decay, max_norm):
    """``clip_grad_norm_(params, max_norm)`` then ``torch.optim.SGD.step()`` (dampening 0),
    in float64; returns the weights after every step and the clip factors."""
    weights = [w.astype(np.float64) for w in weights]
    buffers = [None] * len(weights)
    history, factors = [], []
    for x, y, lr in zip(xs, ys, lrs):
        grads = gradients(weights, x.astype(np.float64), y.astype(np.float64))
        total_norm = math.sqrt(sum(float(np.sum(g * g)) for g in grads))
        factor = min(max_norm / (total_norm + 1e-6), 1.0)
        factors.append(factor)
        for i, (w, g) in enumerate(zip(weights, grads)):
            d = g * factor + weight_decay * w
            if momentum:
                buffers[i] = d.copy() if buffers[i] is None else momentum * buffers[i] + d
                d = d + momentum * buffers[i] if nesterov else buffers[i]
            weights[i] = w - lr * d
        history.append([w.copy() for w in weights])
    return history, factors


def keras_sgd(weights, xs, ys, lrs, momentum, nesterov, weight_decay, max_norm):
    """Stock Keras 3 SGD with decoupled decay and global-norm clip, in float64."""
    weights = [w.astype(np.float64) for w in weights]
    velocity = [np.zeros_like(w) for w in weights]
    history = []
    for x, y, lr in zip(xs, ys, lrs):
        grads = gradients(weights, x.astype(np.float64), y.astype(np.float64))
        total_norm = math.sqrt(sum(float(np.sum(g * g)) for g in grads))
        grads = [g * min(1.0, max_norm / total_norm) for g in grads]
        for i, g in enumerate(grads):
            w = weights[i] - lr * weight_decay * weights[i]  # decay first, on its own
            velocity[i] = momentum * velocity[i] - lr * g
            step = momentum * velocity[i] - lr * g if nesterov else velocity[i]
            weights[i] = w + step
        history.append([w.copy() for w in weights])
    return history


def run_ours(optimizer, weights, xs, ys, wrap=None):
    """Our optimizer (optionally wrapped, e.g. loss-scaled) on the same batches,
    one replica; returns the weights after every step."""
    variables = [keras.Variable(w) for w in weights]
    if wrap is not None:
        optimizer = wrap(optimizer)
    history = []
    for x, y in zip(xs, ys):
        with tf.GradientTape() as tape:
            loss = optimizer.scale_loss(loss_fn(variables, x, y, BATCH))
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables))
        history.append([v.numpy() for v in variables])
    return history


def assert_same_trajectory(ours, reference):
    assert len(ours) == len(reference) == STEPS
    for step, (a, b) in enumerate(zip(ours, reference)):
        for u, v in zip(a, b):
            np.testing.assert_allclose(u, v, rtol=0, atol=TOLERANCE, err_msg=f"step {step}")


def test_the_problem_clips_some_steps_only():
    weights, xs, ys = problem()
    _, factors = torch_sgd(weights, xs, ys, learning_rates(), 0.9, True, DECAY, CLIP)
    clipped = sum(f < 1.0 for f in factors)
    assert 5 <= clipped <= STEPS - 5, factors
    assert min(factors) < 0.3  # some gradients are several times the limit


def test_schedule_written_out_is_the_optimizers():
    optimizer = build_optimizer(config(), steps_per_epoch=5)
    rates = [float(optimizer._learning_rate(s)) for s in range(STEPS)]
    np.testing.assert_allclose(rates, learning_rates(), rtol=1e-6, atol=1e-8)  # float32
    assert len(set(np.round(rates, 8))) > 15  # the rate moves nearly every step


@pytest.mark.parametrize("nesterov", [True, False])
def test_coupled_mode_is_torch_sgd_after_clip_grad_norm(nesterov):
    optimizer = build_optimizer(
        config(f"optimizer.nesterov={str(nesterov).lower()}"), steps_per_epoch=5
    )
    assert optimizer.weight_decay_mode == "coupled"  # the default
    weights, xs, ys = problem()
    reference, _ = torch_sgd(weights, xs, ys, learning_rates(), 0.9, nesterov, DECAY, CLIP)
    assert_same_trajectory(run_ours(optimizer, weights, xs, ys), reference)


def test_coupled_mode_without_momentum_or_decay_is_plain_clipped_sgd():
    optimizer = build_optimizer(
        config("optimizer.momentum=0.0", "optimizer.nesterov=false", "optimizer.weight_decay=null"),
        steps_per_epoch=5,
    )
    weights, xs, ys = problem(seed=1)
    reference, _ = torch_sgd(weights, xs, ys, learning_rates(), 0.0, False, 0.0, CLIP)
    assert_same_trajectory(run_ours(optimizer, weights, xs, ys), reference)


def test_coupled_mode_under_dynamic_loss_scaling():
    # mixed_float16 wraps the optimizer in Keras' LossScaleOptimizer: the loss
    # is multiplied by 2^15 and the gradients divided by it before our step.
    optimizer = build_optimizer(config(), steps_per_epoch=5)
    weights, xs, ys = problem(seed=2)
    reference, _ = torch_sgd(weights, xs, ys, learning_rates(), 0.9, True, DECAY, CLIP)
    ours = run_ours(optimizer, weights, xs, ys, wrap=keras.optimizers.LossScaleOptimizer)
    assert_same_trajectory(ours, reference)
    assert int(optimizer.iterations.numpy()) == STEPS  # no step skipped


def test_decoupled_mode_is_keras_sgd_with_decay_w_minus_lr_wd_w():
    optimizer = build_optimizer(config("optimizer.weight_decay_mode=decoupled"), steps_per_epoch=5)
    weights, xs, ys = problem()
    reference = keras_sgd(weights, xs, ys, learning_rates(), 0.9, True, DECAY, CLIP)
    assert_same_trajectory(run_ours(optimizer, weights, xs, ys), reference)


def test_the_modes_differ_by_far_more_than_the_tolerance():
    # Without decay the two modes differ only in the momentum form (the rate
    # inside or outside the buffer), which a changing rate separates; with
    # decay, coupled decays about 1 / (1 - 0.9) = 10x harder.
    weights, xs, ys = problem()
    lrs = learning_rates()
    torch_no_decay, _ = torch_sgd(weights, xs, ys, lrs, 0.9, True, 0.0, CLIP)
    keras_no_decay = keras_sgd(weights, xs, ys, lrs, 0.9, True, 0.0, CLIP)
    gap = max(float(np.max(np.abs(a - b))) for a, b in zip(torch_no_decay[-1], keras_no_decay[-1]))
    assert gap > 1e-3
    # Decay alone: zero gradients, constant rate 0.1, 20 steps.
    coupled = decoupled = 1.0
    buffer = 0.0
    for _ in range(STEPS):
        buffer = 0.9 * buffer + DECAY * coupled
        coupled -= 0.1 * (DECAY * coupled + 0.9 * buffer)
        decoupled -= 0.1 * DECAY * decoupled
    assert (1 - coupled) > 5 * (1 - decoupled)


def test_mode_is_in_the_optimizer_config_and_checked():
    optimizer = build_optimizer(config("optimizer.weight_decay_mode=decoupled"), steps_per_epoch=5)
    clone = run_serialization_test(optimizer)
    assert clone.weight_decay_mode == "decoupled"
    assert clone.weight_decay == pytest.approx(DECAY)
    with pytest.raises(ValueError, match="weight_decay_mode must be one of"):
        ReplicaSumSGD(weight_decay_mode="adamw")
    with pytest.raises(cfg.ConfigError, match="weight_decay_mode"):
        config("optimizer.weight_decay_mode=l2")


def test_checkpoints_have_the_same_layout_in_both_modes(tmp_path):
    # Optimizer variables are checkpointed by index: iterations, then one
    # momentum slot per variable, the same in both modes and as before the
    # coupled mode existed, so a decoupled run's checkpoint restores into
    # either mode (tfcmvp.training.callbacks.TrainingCheckpoint's check).
    weights, xs, ys = problem()
    written = build_optimizer(config("optimizer.weight_decay_mode=decoupled"), 5)
    run_ours(written, weights, xs[:3], ys[:3])
    restored = build_optimizer(config(), 5)
    restored.build([keras.Variable(w) for w in weights])
    run_checkpoint_test(written, restored, tmp_path / "ckpt")
    assert int(restored.iterations.numpy()) == 3
    names = [v.name for v in restored.variables]
    assert names[0] == "iteration" and all(n.endswith("_momentum") for n in names[1:])
    assert len(names) == 3


# ------------------------------------------------------------- two replicas


@pytest.mark.slow
def test_coupled_mode_on_two_replicas_is_torch_sgd_on_the_global_batch(tmp_path):
    weights, xs, ys = problem(seed=3)
    np.savez(tmp_path / "data.npz", w=weights[0], b=weights[1], xs=xs, ys=ys)
    found = run_script("sgd_on_two_replicas.py", tmp_path / "data.npz", *OVERRIDES)
    assert found["replicas"] == 2
    reference, factors = torch_sgd(weights, xs, ys, learning_rates(), 0.9, True, DECAY, CLIP)
    assert any(f < 1.0 for f in factors) and any(f == 1.0 for f in factors)
    ours = [[np.asarray(w, np.float32) for w in step] for step in found["history"]]
    assert_same_trajectory(ours, reference)

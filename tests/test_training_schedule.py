"""Warm-up + cosine learning rate and the optimizer built from the config."""

import math

import keras
import numpy as np
import pytest

from tfcmvp import config as cfg
from tfcmvp.training.optimizer import ReplicaSumSGD, build_optimizer
from tfcmvp.training.schedule import WarmupCosine

from harness import run_serialization_test


def test_known_values():
    # peak 0.032 (5e-4 x 64), 10 warm-up steps, 110 steps in total.
    schedule = WarmupCosine(0.032, warmup_steps=10, total_steps=110)
    expected = {
        0: 0.0032,  # (0 + 1) / 10 of the peak: the first step already trains
        4: 0.016,
        9: 0.032,  # last warm-up step reaches the peak
        10: 0.032,  # cosine starts at the peak
        35: 0.032 * (1 + math.cos(math.pi / 4)) / 2,  # a quarter of the cosine
        60: 0.016,  # half-way
        109: 0.032 * (1 + math.cos(math.pi * 99 / 100)) / 2,  # last step, small but > 0
        110: 0.0,
        500: 0.0,  # past the end it stays at 0
    }
    for step, value in expected.items():
        assert float(schedule(step)) == pytest.approx(value, rel=1e-5, abs=1e-9), step
    assert float(schedule(109)) > 0


def test_no_warmup_starts_at_peak_and_is_monotone():
    schedule = WarmupCosine(1.0, warmup_steps=0, total_steps=8)
    values = np.array([float(schedule(s)) for s in range(8)])
    np.testing.assert_allclose(values, (1 + np.cos(np.pi * np.arange(8) / 8)) / 2, rtol=1e-5)
    assert np.all(np.diff(values) < 0)


def test_invalid_schedules_name_the_values():
    with pytest.raises(ValueError, match="warmup_steps=10, total_steps=10"):
        WarmupCosine(0.1, warmup_steps=10, total_steps=10)
    with pytest.raises(ValueError, match="peak_learning_rate"):
        WarmupCosine(0.0, warmup_steps=0, total_steps=10)


def test_config_round_trip():
    schedule = WarmupCosine(0.5, 3, 30)
    run_serialization_test(schedule, call=lambda s: [float(s(step)) for step in range(31)])


def test_optimizer_from_paper_config():
    config = cfg.load_config(None, ["train.epochs=120", "train.global_batch_size=64"])
    optimizer = build_optimizer(config, steps_per_epoch=100)
    assert isinstance(optimizer, ReplicaSumSGD)
    assert isinstance(optimizer, keras.optimizers.SGD)
    assert optimizer.momentum == 0.9 and optimizer.nesterov is True
    assert optimizer.weight_decay == pytest.approx(5e-3)
    assert optimizer.weight_decay_mode == "coupled"  # PyTorch's, as the authors'
    assert optimizer.global_clipnorm == 15.0
    schedule = optimizer._learning_rate  # the schedule object itself
    assert isinstance(schedule, WarmupCosine)
    assert (schedule.peak_learning_rate, schedule.warmup_steps, schedule.total_steps) == (
        pytest.approx(0.032),
        500,
        12000,
    )
    # The optimizer reads the schedule at its own step counter.
    assert float(optimizer.learning_rate) == pytest.approx(0.032 / 500)


def test_optimizer_update_is_nesterov_sgd_with_decoupled_decay_and_clip():
    # One variable, two steps, against a NumPy re-implementation of Keras SGD:
    # w -= lr * wd * w;  m = mu * m - lr * g;  w += mu * m - lr * g (Nesterov).
    config = cfg.load_config(
        None,
        [
            "train.epochs=2",
            "train.global_batch_size=2",
            "optimizer.base_lr_per_sample=0.05",
            "optimizer.warmup_epochs=0",
            "optimizer.clipnorm=1.0",
            "optimizer.weight_decay=0.1",
            "optimizer.weight_decay_mode=decoupled",
        ],
    )  # coupled: test_training_optimizer_parity.py
    optimizer = build_optimizer(config, steps_per_epoch=2)  # peak 0.1, 4 steps of cosine
    w = keras.Variable(np.array([1.0, -2.0], np.float32))
    grads = [np.array([3.0, 4.0], np.float32), np.array([0.3, 0.4], np.float32)]
    ref_w, ref_m = np.array([1.0, -2.0]), np.zeros(2)
    for step, g in enumerate(grads):
        lr = 0.1 * (1 + math.cos(math.pi * step / 4)) / 2
        g_clipped = g * min(1.0, 1.0 / np.linalg.norm(g))
        ref_w = ref_w - lr * 0.1 * ref_w
        ref_m = 0.9 * ref_m - lr * g_clipped
        ref_w = ref_w + 0.9 * ref_m - lr * g_clipped
        optimizer.apply_gradients([(g, w)])
        np.testing.assert_allclose(w.numpy(), ref_w, rtol=1e-5)

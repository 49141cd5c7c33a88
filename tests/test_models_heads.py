"""MLP and motion-value heads; fused BatchNorm against NumPy."""

import keras
import numpy as np
import pytest

from tfcmvp.models.fused_batch_norm import FusedBatchNormalization
from tfcmvp.models.heads import MLPHead, MotionValueHead

from harness import run_script, run_serialization_test


def _bn_train(x, gamma, beta, eps):
    axes = tuple(range(x.ndim - 1))
    return (x - x.mean(axis=axes)) / np.sqrt(x.var(axis=axes) + eps) * gamma + beta


def test_mlp_head_matches_numpy_in_training_mode():
    head = MLPHead(hidden_units=16, output_units=6)
    x = np.random.default_rng(0).standard_normal((5, 10)).astype(np.float32)
    out = head(x, training=True).numpy()
    hidden = x @ head.hidden.get_weights()[0]
    gamma, beta = head.hidden_norm.gamma.numpy(), head.hidden_norm.beta.numpy()
    hidden = np.maximum(_bn_train(hidden, gamma, beta, 1e-5), 0.0)
    proj = hidden @ head.output_dense.get_weights()[0]
    proj = _bn_train(proj, head.output_norm.gamma.numpy(), head.output_norm.beta.numpy(), 1e-5)
    expected = proj / np.linalg.norm(proj, axis=-1, keepdims=True)
    np.testing.assert_allclose(out, expected, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(out, axis=-1), np.ones(5), atol=1e-6)


def test_mlp_head_is_pointwise_with_batch_norm_over_all_positions():
    head = MLPHead(hidden_units=16, output_units=6)
    x = np.random.default_rng(1).standard_normal((3, 7, 10)).astype(np.float32)  # [B, N, C]
    out = head(x, training=True).numpy()
    flat = head(x.reshape(21, 10), training=True).numpy()
    assert out.shape == (3, 7, 6)
    np.testing.assert_allclose(out.reshape(21, 6), flat, atol=1e-6)
    # Inference uses the moving statistics: one position no longer depends on the others.
    single = head(x[:1, :1], training=False).numpy()
    np.testing.assert_allclose(head(x, training=False).numpy()[:1, :1], single, atol=1e-6)


def test_motion_value_head_is_a_float32_linear_readout():
    head = MotionValueHead(num_outputs=2)
    x = np.random.default_rng(2).standard_normal((2, 49, 8)).astype(np.float32)
    out = head(x).numpy()
    kernel, bias = head.readout.get_weights()
    np.testing.assert_allclose(out, x @ kernel + bias, atol=1e-5)
    assert out.shape == (2, 49, 2) and out.dtype == np.float32
    with pytest.raises(ValueError, match="got 0"):
        MotionValueHead(0)


@pytest.mark.parametrize(
    "make_head", [lambda: MLPHead(16, 8, sync_bn=True), lambda: MotionValueHead(5)]
)
def test_head_configs_round_trip(make_head):
    x = np.random.default_rng(3).standard_normal((4, 12)).astype(np.float32)
    run_serialization_test(make_head(), x)


def test_mlp_head_sync_bn_synchronizes_its_hidden_norm():
    assert MLPHead(16, 8, sync_bn=True).hidden_norm.synchronized
    assert not MLPHead(16, 8).hidden_norm.synchronized


def test_fused_batch_norm_matches_numpy_and_updates_moving_stats_unbiased():
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((2, 3, 4, 5, 6)) * 3 + 1).astype(np.float32)  # [B, T, H, W, C]
    layer = FusedBatchNormalization(momentum=0.9, epsilon=1e-5)
    layer.build(x.shape)
    layer.gamma.assign(rng.random(6).astype(np.float32) + 0.5)
    layer.beta.assign(rng.standard_normal(6).astype(np.float32))
    out = layer(x, training=True).numpy()
    gamma, beta = layer.gamma.numpy(), layer.beta.numpy()
    np.testing.assert_allclose(out, _bn_train(x, gamma, beta, 1e-5), atol=1e-4)
    axes = (0, 1, 2, 3)
    np.testing.assert_allclose(layer.moving_mean.numpy(), 0.1 * x.mean(axis=axes), rtol=1e-5)
    np.testing.assert_allclose(
        layer.moving_variance.numpy(), 0.9 + 0.1 * x.var(axis=axes, ddof=1), rtol=1e-5
    )
    mean, var = layer.moving_mean.numpy(), layer.moving_variance.numpy()
    expected = (x - mean) / np.sqrt(var + 1e-5) * gamma + beta
    np.testing.assert_allclose(layer(x, training=False).numpy(), expected, atol=1e-4)


def test_fused_batch_norm_falls_back_for_other_ranks_and_fuses_sync_on_one_replica():
    """A rank-3 input takes Keras's path; a synchronised layer on one replica takes the
    fused kernel and still matches Keras's synchronised BN, biased moving variance
    included (the 2-replica case is tests/test_training_distributed.py)."""
    rng = np.random.default_rng(5)
    for shape, synchronized, fuses in [
        ((4, 3, 6), False, False),
        ((2, 4, 4, 6), True, True),
        ((2, 3, 4, 4, 6), True, True),
    ]:
        x = rng.standard_normal(shape).astype(np.float32) * 2 + 1
        fused = FusedBatchNormalization(synchronized=synchronized, momentum=0.9, epsilon=1e-5)
        plain = keras.layers.BatchNormalization(
            synchronized=synchronized, momentum=0.9, epsilon=1e-5
        )
        assert fused._can_fuse(x, None) == fuses
        np.testing.assert_allclose(fused(x, training=True), plain(x, training=True), atol=1e-5)
        np.testing.assert_allclose(
            fused.moving_mean.numpy(), plain.moving_mean.numpy(), rtol=1e-5, atol=1e-7
        )
        np.testing.assert_allclose(
            fused.moving_variance.numpy(), plain.moving_variance.numpy(), rtol=1e-5
        )
        np.testing.assert_allclose(fused(x, training=False), plain(x, training=False), atol=1e-5)
    run_serialization_test(FusedBatchNormalization(momentum=0.9))
    assert keras.saving.get_registered_name(FusedBatchNormalization) == (
        "tfcmvp>FusedBatchNormalization"
    )


@pytest.mark.slow
def test_synchronized_batch_norm_is_not_fused_on_two_replicas():
    found = run_script("fused_batch_norm_on_two_replicas.py")
    assert found == {"two": [False, False], "one": True}

"""ConvGRU predictor against a NumPy reference of the DPC rollout."""

import keras
import numpy as np
import pytest

from tfcmvp.models.predictor_convgru import ConvGRUCell, ConvGRUPredictor

from harness import run_serialization_test


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _conv_same(x, kernel, bias):
    """2-D "same" convolution, x [B, H, W, C], kernel [k, k, C, O] (odd k)."""
    k = kernel.shape[0]
    pad = k // 2
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    height, width = x.shape[1:3]
    out = np.zeros(x.shape[:3] + (kernel.shape[-1],))
    for dy in range(k):
        for dx in range(k):
            out += padded[:, dy : dy + height, dx : dx + width] @ kernel[dy, dx]
    return out + bias


def _cell_ref(cell, x, h):
    gates = _sigmoid(_conv_same(np.concatenate([x, h], -1), *cell.gates.get_weights()))
    update, reset = gates[..., : cell.width], gates[..., cell.width :]
    candidate = np.tanh(
        _conv_same(np.concatenate([x, reset * h], -1), *cell.candidate.get_weights())
    )
    return (1.0 - update) * h + update * candidate


def _dense(layer, x):
    kernel, bias = layer.get_weights()
    return x @ kernel + bias


def test_cell_matches_numpy_gru_equations():
    cell = ConvGRUCell(width=3, kernel_size=3)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 5, 3)).astype(np.float32)
    h = rng.standard_normal((2, 4, 5, 3)).astype(np.float32)
    np.testing.assert_allclose(cell(x, h).numpy(), _cell_ref(cell, x, h), atol=1e-5)


def test_predictor_rollout_matches_numpy_reference():
    # Backbone map 2 x 4 x 4 -> target grid 3 x 2 x 2 (space resampled, time rolled out).
    predictor = ConvGRUPredictor(
        target_grid=(3, 2, 2), width=4, kernel_size=3, interpolation="trilinear"
    )
    rng = np.random.default_rng(1)
    features = rng.random((2, 2, 4, 4, 6), np.float32)  # [B, T1, H1, W1, C1]
    out = predictor(features).numpy()
    assert out.shape == (2, 12, 4)
    # 4 -> 2 with half-pixel linear weights is the mean of each 2x2 block.
    pooled = features.reshape(2, 2, 2, 2, 2, 2, 6).mean(axis=(3, 5))  # [B, T1, 2, 2, C1]
    x = np.maximum(_dense(predictor.input_projection, pooled), 0.0)
    h = np.zeros((2, 2, 2, 4))
    for step in range(2):
        h = _cell_ref(predictor.cell, x[:, step], h)
    predictions = []
    for _ in range(3):
        p = _dense(
            predictor.prediction_output, np.maximum(_dense(predictor.prediction_hidden, h), 0.0)
        )
        predictions.append(p)
        h = _cell_ref(predictor.cell, np.maximum(p, 0.0), h)
    expected = np.stack(predictions, axis=1).reshape(2, 12, 4)  # (t, y, x) order
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_predictor_config_round_trip_and_functional_use():
    predictor = ConvGRUPredictor(
        target_grid=(1, 7, 7), width=8, kernel_size=1, interpolation="nearest"
    )
    inputs = keras.Input((2, 4, 4, 16))
    assert tuple(predictor(inputs).shape) == (None, 49, 8)
    features = np.random.default_rng(2).random((2, 2, 4, 4, 16), np.float32)
    clone = run_serialization_test(predictor, features)
    assert clone.get_config()["target_grid"] == [1, 7, 7]


def test_bad_target_grid_is_reported():
    with pytest.raises(ValueError, match=r"\(1, 7\)"):
        ConvGRUPredictor(target_grid=(1, 7))

"""Predictor memory and grid resampling against NumPy / tf.image references."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcmvp.models.memory import PredictorMemory
from tfcmvp.models.resample import interpolation_matrix, resample_grid

from harness import run_serialization_test


def test_nearest_matrix_is_pytorch_nearest():
    # torch interpolate(mode="nearest"): source = floor(o * in / out).
    matrix = interpolation_matrix(4, 7, "nearest")
    np.testing.assert_array_equal(matrix.argmax(axis=1), [0, 0, 1, 1, 2, 2, 3])
    np.testing.assert_array_equal(matrix.sum(axis=1), np.ones(7))


def test_trilinear_matrix_is_half_pixel_linear():
    expected = np.array([[1.0, 0.0], [0.75, 0.25], [0.25, 0.75], [0.0, 1.0]], np.float32)
    np.testing.assert_allclose(interpolation_matrix(2, 4, "trilinear"), expected)
    np.testing.assert_array_equal(interpolation_matrix(5, 5, "trilinear"), np.eye(5))
    with pytest.raises(ValueError, match="'cubic'"):
        interpolation_matrix(2, 4, "cubic")


def test_trilinear_resample_matches_tf_image_resize_per_frame():
    x = np.random.default_rng(0).random((2, 3, 4, 5, 6), np.float32)  # [B, T, H, W, C]
    out = resample_grid(tf.constant(x), (3, 7, 9), "trilinear").numpy()
    frames = tf.image.resize(x.reshape(6, 4, 5, 6), (7, 9), method="bilinear").numpy()
    np.testing.assert_allclose(out, frames.reshape(2, 3, 7, 9, 6), atol=1e-5)


def test_resample_in_time_and_space_is_separable_interpolation():
    x = np.random.default_rng(1).random((1, 2, 4, 4, 3), np.float32)
    out = resample_grid(tf.constant(x), (4, 7, 7), "nearest").numpy()
    t_index = [0, 0, 1, 1]
    s_index = [0, 0, 1, 1, 2, 2, 3]
    expected = x[:, t_index][:, :, s_index][:, :, :, s_index]
    np.testing.assert_array_equal(out, expected)


def numpy_fold_and_upsample(layer3, layer4):
    """The authors' memory steps in NumPy: layer3 steps 2t and 2t+1 side by side on
    channels (torch.cat([x[:, :, 0::2], x[:, :, 1::2]], dim=1)), layer4 repeated by
    PyTorch-nearest from 2x4x4 to 2x7x7."""
    folded = np.concatenate([layer3[:, 0::2], layer3[:, 1::2]], axis=-1)
    index = [0, 0, 1, 1, 2, 2, 3]
    return folded, layer4[:, :, index][:, :, :, index]


def test_add_fusion_is_the_authors_memory():
    rng = np.random.default_rng(5)
    layer3 = rng.normal(size=(2, 4, 7, 7, 3)).astype(np.float32)  # [B, T, H, W, C3]
    layer4 = rng.normal(size=(2, 2, 4, 4, 6)).astype(np.float32)  # [B, T, H, W, 2 C3]
    memory = PredictorMemory(width=5, time_fold=2)  # defaults: add, no bias, nearest
    assert (memory.fusion, memory.use_bias, memory.interpolation) == ("add", False, "nearest")
    tokens = memory([layer3, layer4]).numpy()
    (kernel,) = memory.projection.get_weights()  # bias-free: the kernel is the only weight
    assert kernel.shape == (6, 5)
    folded, upsampled = numpy_fold_and_upsample(layer3, layer4)
    fused = folded + upsampled  # [2, 2, 7, 7, 6]
    np.testing.assert_allclose(memory.fuse([layer3, layer4]).numpy(), fused, rtol=1e-6)
    expected = fused.reshape(2, 98, 6) @ kernel  # (t, y, x) order, no bias
    assert tokens.shape == (2, 98, 5)
    np.testing.assert_allclose(tokens, expected, rtol=1e-5, atol=1e-6)
    # Token 50 is t=1, y=0, x=1: layer3 steps 2 and 3 there plus layer4 (1, 0, 0).
    np.testing.assert_allclose(
        memory.fuse([layer3, layer4]).numpy()[0, 1, 0, 1],
        np.concatenate([layer3[0, 2, 0, 1], layer3[0, 3, 0, 1]]) + layer4[0, 1, 0, 0],
        rtol=1e-6,
    )
    assert memory.fused_channels([layer3.shape, layer4.shape]) == 6


def test_add_fusion_needs_equal_channels_and_names_the_shapes():
    memory = PredictorMemory(width=4, time_fold=2, fusion="add")
    with pytest.raises(ValueError, match=r"\(2, 4, 7, 7, 3\).*has 6.*\(2, 2, 4, 4, 5\) has 5"):
        memory([np.zeros((2, 4, 7, 7, 3), np.float32), np.zeros((2, 2, 4, 4, 5), np.float32)])
    with pytest.raises(ValueError, match="'sum'"):
        PredictorMemory(width=4, fusion="sum")


def test_concat_fusion_folds_and_upsamples_like_before():
    rng = np.random.default_rng(2)
    layer3 = rng.random((2, 4, 7, 7, 3), np.float32)  # [B, T, H, W, C3]
    layer4 = rng.random((2, 2, 4, 4, 5), np.float32)  # [B, T, H, W, C4]
    memory = PredictorMemory(
        width=11, time_fold=2, interpolation="nearest", fusion="concat", use_bias=True
    )
    memory([layer3, layer4])
    memory.projection.set_weights([np.eye(11, dtype=np.float32), np.zeros(11, np.float32)])
    tokens = memory([layer3, layer4]).numpy()
    # Reference: folded layer3 and upsampled layer4 side by side on channels,
    # flattened in (t, y, x) order.
    folded, upsampled = numpy_fold_and_upsample(layer3, layer4)  # [2, 2, 7, 7, 6 / 5]
    expected = np.concatenate([folded, upsampled], axis=-1).reshape(2, 98, 11)
    assert tokens.shape == (2, 98, 11)
    np.testing.assert_allclose(tokens, expected, rtol=1e-6)
    # Token 50 is t=1, y=0, x=1 and holds layer3 steps 2 and 3 there.
    np.testing.assert_allclose(tokens[0, 50, :3], layer3[0, 2, 0, 1])
    np.testing.assert_allclose(tokens[0, 50, 3:6], layer3[0, 3, 0, 1])


@pytest.mark.parametrize("fusion", ["add", "concat"])
def test_single_stage_memory_is_a_linear_map_of_the_flattened_grid(fusion):
    conv5 = np.random.default_rng(3).random((2, 2, 7, 7, 8), np.float32)
    memory = PredictorMemory(width=4, time_fold=1, fusion=fusion, use_bias=True)
    tokens = memory(conv5).numpy()
    kernel, bias = memory.projection.get_weights()
    np.testing.assert_allclose(
        tokens, conv5.reshape(2, 98, 8) @ kernel + bias, rtol=1e-5, atol=1e-6
    )
    assert memory.compute_output_shape((None, 2, 7, 7, 8)) == (None, 98, 4)
    # One map (C3D's conv5): the fused map is the map itself, whatever the fusion.
    np.testing.assert_array_equal(memory.fuse(conv5), conv5)
    assert memory.fused_channels((None, 2, 7, 7, 8)) == 8


def test_memory_in_a_functional_model_and_config_round_trip():
    layer3 = keras.Input((4, 4, 4, 6))
    layer4 = keras.Input((2, 2, 2, 10))
    memory = PredictorMemory(
        width=8,
        time_fold=2,
        interpolation="trilinear",
        fusion="concat",
        use_bias=True,
        init="keras",
    )
    symbolic = memory([layer3, layer4])
    assert tuple(symbolic.shape) == (None, 32, 8)
    rng = np.random.default_rng(4)
    inputs = [rng.random((2, 4, 4, 4, 6), np.float32), rng.random((2, 2, 2, 2, 10), np.float32)]
    clone = run_serialization_test(memory, inputs)
    assert (clone.fusion, clone.use_bias, clone.init) == ("concat", True, "keras")
    assert clone.projection.kernel.shape == (12 + 10, 8)


def test_memory_rejects_a_time_axis_not_divisible_by_the_fold():
    memory = PredictorMemory(width=4, time_fold=2)
    with pytest.raises(ValueError, match="T=3 .*time_fold=2"):
        memory(np.zeros((1, 3, 2, 2, 4), np.float32))
    with pytest.raises(ValueError, match="'bicubic'"):
        PredictorMemory(width=4, interpolation="bicubic")

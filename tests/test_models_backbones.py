"""Backbones: output grids, parameter counts, padding alignment, stems, zero-init residual,
config round trip."""

import re

import keras
import numpy as np
import pytest

from tfcmvp.models import backbones
from tfcmvp.models.backbones import build_backbone, memory_spec
from tfcmvp.models.conv_bn import SymmetricZeroPadding, conv, r2plus1d_mid_channels
from tfcmvp.models.fused_batch_norm import FusedBatchNormalization

from harness import run_serialization_test


def _shapes(outputs):
    return {name: tuple(tensor.shape) for name, tensor in outputs.items()}


def _trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def _symbolic(model, shape):
    return _shapes(model.compute_output_spec(keras.KerasTensor(shape)))


def test_tiny_r2plus1d_26_grids_on_64px_clips():
    model = build_backbone("r2plus1d_26", input_shape=(16, 64, 64, 3), width=8, blocks=(1, 1, 1, 1))
    out = model(np.random.default_rng(0).random((2, 16, 64, 64, 3), np.float32))
    assert _shapes(out) == {
        "stem": (2, 16, 16, 16, 8),
        "layer1": (2, 16, 16, 16, 32),
        "layer2": (2, 8, 8, 8, 64),
        "layer3": (2, 4, 4, 4, 128),
        "layer4": (2, 2, 2, 2, 256),
        "features": (2, 2, 2, 2, 256),
    }
    np.testing.assert_array_equal(out["features"], out["layer4"])


def test_tiny_c3d_and_m_network_and_i_network_grids():
    video = build_backbone("c3d", input_shape=(16, 64, 64, 3), width=8)
    motion = build_backbone("r3d_10", input_shape=(8, 64, 64, 2), width=8)
    image = build_backbone("r2d_10", input_shape=(64, 64, 3), width=8)
    rng = np.random.default_rng(1)
    assert tuple(video(rng.random((2, 16, 64, 64, 3), np.float32))["features"].shape) == (
        2,
        2,
        4,
        4,
        64,
    )
    assert tuple(motion(rng.random((2, 8, 64, 64, 2), np.float32))["features"].shape) == (
        2,
        1,
        4,
        4,
        64,
    )
    assert tuple(image(rng.random((2, 64, 64, 3), np.float32))["features"].shape) == (2, 2, 2, 64)


def test_paper_size_grids_and_parameter_counts():
    expected = {
        "c3d": (
            (2, 16, 112, 112, 3),
            27_658_688,
            {
                "conv4": (2, 4, 14, 14, 512),
                "conv5": (2, 2, 7, 7, 512),
                "features": (2, 2, 7, 7, 512),
            },
        ),
        "r3d_26": (
            (2, 16, 112, 112, 3),
            26_498_752,
            {"layer3": (2, 4, 7, 7, 1024), "features": (2, 2, 4, 4, 2048)},
        ),
        "r2plus1d_26": (
            (2, 16, 112, 112, 3),
            26_507_471,
            {"layer3": (2, 4, 7, 7, 1024), "features": (2, 2, 4, 4, 2048)},
        ),
        "r3d_10": (
            (2, 8, 112, 112, 2),
            14_352_384,
            {
                "stem": (2, 8, 56, 56, 64),
                "layer3": (2, 2, 14, 14, 256),
                "features": (2, 1, 7, 7, 512),
            },
        ),
        "r2d_10": (
            (2, 112, 112, 3),
            4_905_792,
            {"layer3": (2, 7, 7, 256), "features": (2, 4, 4, 512)},
        ),
    }
    for name, (shape, params, grids) in expected.items():
        model = build_backbone(name)
        shapes = _symbolic(model, shape)
        assert {key: shapes[key] for key in grids} == grids, name
        assert _trainable(model) == params, name


def test_m_network_forward_gives_49_target_positions():
    model = build_backbone("r3d_10")
    out = model(np.zeros((1, 8, 112, 112, 2), np.float32))
    assert tuple(out["features"].shape) == (1, 1, 7, 7, 512)


@pytest.mark.parametrize(
    "stem, conv_shape, strides, pooled",
    [
        ("authors", (None, 8, 112, 112, 64), (1, 1, 1), True),
        ("strided", (None, 8, 56, 56, 64), (1, 2, 2), False),
    ],
)
def test_m_network_stems_reach_the_same_1x7x7_grid(stem, conv_shape, strides, pooled):
    model = build_backbone("r3d_10", stem=stem)
    conv_layer = model.get_layer("stem_conv")
    assert conv_layer.kernel_size == (3, 7, 7) and conv_layer.strides == strides
    assert tuple(conv_layer.output.shape) == conv_shape
    assert any(layer.name == "stem_pool" for layer in model.layers) == pooled
    shapes = _symbolic(model, (2, 8, 112, 112, 2))
    assert shapes["stem"] == (2, 8, 56, 56, 64)
    assert shapes["features"] == (2, 1, 7, 7, 512)
    assert _trainable(model) == 14_352_384  # same weights either way
    with pytest.raises(ValueError, match="'pooled'"):
        build_backbone("r3d_10", stem="pooled")


def test_authors_m_network_stem_is_a_stride_1_conv_then_a_3x3_stride_2_max_pool():
    # Against NumPy: one 1x7x7-impulse-response channel, BN at init, ReLU, then
    # PyTorch's MaxPool3d((1, 3, 3), (1, 2, 2), padding (0, 1, 1)).
    model = build_backbone("r3d_10", input_shape=(1, 8, 8, 2), width=4)
    x = np.random.default_rng(7).normal(size=(1, 1, 8, 8, 2)).astype(np.float32)
    conv_out = keras.Model(model.input, model.get_layer("stem_conv_relu").output)(x).numpy()
    stem = model(x, training=False)["stem"].numpy()
    padded = np.pad(conv_out, ((0, 0), (0, 0), (1, 1), (1, 1), (0, 0)), constant_values=-np.inf)
    expected = np.stack(
        [
            np.stack(
                [
                    padded[:, :, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3].max(axis=(2, 3))
                    for j in range(4)
                ],
                axis=2,
            )
            for i in range(4)
        ],
        axis=2,
    )
    assert conv_out.shape == (1, 1, 8, 8, 4) and stem.shape == (1, 1, 4, 4, 4)
    np.testing.assert_allclose(stem, expected, rtol=1e-6)


# Last BN of each residual branch: BasicBlock conv2 (its temporal half when
# factorised), Bottleneck conv3.
RESIDUAL_NETS = [
    ("r3d_10", dict(input_shape=(8, 32, 32, 2), width=4), "_conv2_bn"),
    ("r2d_10", dict(input_shape=(32, 32, 3), width=4), "_conv2_bn"),
    ("r3d_26", dict(input_shape=(8, 32, 32, 3), width=4, blocks=(1, 2, 1, 1)), "_conv3_bn"),
    ("r2plus1d_26", dict(input_shape=(8, 32, 32, 3), width=4, blocks=(1, 2, 1, 1)), "_conv3_bn"),
]


@pytest.mark.parametrize("name, kwargs, last_bn", RESIDUAL_NETS)
def test_zero_init_residual_zeroes_the_last_bn_of_every_block(name, kwargs, last_bn):
    model = build_backbone(name, **kwargs)  # zero_init_residual=True by default
    norms = {
        layer.name: layer.gamma.numpy()
        for layer in model.layers
        if isinstance(layer, keras.layers.BatchNormalization)
    }
    blocks = {
        match.group(1) for match in map(re.compile(r"(layer\d+_block\d+)_").match, norms) if match
    }
    zeroed = sorted(n for n, gamma in norms.items() if np.all(gamma == 0.0))
    assert zeroed == sorted(block + last_bn for block in blocks)
    assert len(zeroed) == sum(kwargs.get("blocks", (1, 1, 1, 1)))
    assert all(np.all(gamma == 1.0) for n, gamma in norms.items() if n not in zeroed)
    plain = build_backbone(name, zero_init_residual=False, **kwargs)
    assert all(
        np.all(layer.gamma.numpy() == 1.0)
        for layer in plain.layers
        if isinstance(layer, keras.layers.BatchNormalization)
    )


def test_factorised_basic_block_zeroes_its_temporal_bn():
    from tfcmvp.models.resnet3d import build_resnet3d

    model = build_resnet3d(
        input_shape=(4, 16, 16, 3), block="basic", blocks=(1, 1, 1, 1), width=4, factorized=True
    )
    gamma = {
        layer.name: layer.gamma.numpy()
        for layer in model.layers
        if isinstance(layer, keras.layers.BatchNormalization)
    }
    assert np.all(gamma["layer1_block1_conv2_temporal_bn"] == 0.0)
    assert np.all(gamma["layer1_block1_conv2_spatial_bn"] == 1.0)


def test_zero_init_blocks_start_as_their_shortcut():
    # layer1 of R3D-10 has an identity shortcut: at init (inference-mode BN with
    # mean 0, variance 1) its output is relu(stem) = stem exactly.
    model = build_backbone("r3d_10", input_shape=(8, 32, 32, 2), width=4)
    out = model(
        np.random.default_rng(3).normal(size=(2, 8, 32, 32, 2)).astype(np.float32), training=False
    )
    np.testing.assert_array_equal(out["layer1"], out["stem"])


def test_r2plus1d_mid_channels_match_tran_et_al():
    assert r2plus1d_mid_channels(3, 64, 3, 7) == 83  # stem: 3*49*3*64 // (49*3 + 3*64)
    assert r2plus1d_mid_channels(64, 64, 3, 3) == 144  # 27*64*64 // (9*64 + 3*64)
    assert r2plus1d_mid_channels(128, 256, 3, 3) == 27 * 128 * 256 // (9 * 128 + 3 * 256)


def test_r2plus1d_factorisation_layers_and_parameter_parity():
    r3d = build_backbone("r3d_26", input_shape=(16, 32, 32, 3), width=8)
    r21d = build_backbone("r2plus1d_26", input_shape=(16, 32, 32, 3), width=8)
    spatial = r21d.get_layer("layer2_block1_conv2_spatial")
    temporal = r21d.get_layer("layer2_block1_conv2_temporal")
    assert spatial.kernel_size == (1, 3, 3) and spatial.strides == (1, 2, 2)
    assert temporal.kernel_size == (3, 1, 1) and temporal.strides == (2, 1, 1)
    assert r3d.get_layer("layer2_block1_conv2").kernel_size == (3, 3, 3)
    # Tran et al.'s mid width keeps the parameter count of the full 3-D convs.
    full = build_backbone("r3d_26")
    factorised = build_backbone("r2plus1d_26")
    assert abs(_trainable(factorised) / _trainable(full) - 1.0) < 1e-3


def test_strided_conv_pads_symmetrically_like_pytorch():
    # An impulse at index 2: a stride-2 3-tap conv with PyTorch padding 1 sees it
    # only at output 1 (window [1, 3]); Keras "same" (pad 0 before) would see it at
    # output 0 (window [0, 2]) too. This keeps the 1x1 shortcut aligned.
    inputs = keras.Input((8, 8, 8, 1))
    model = keras.Model(inputs, conv(inputs, 1, (3, 3, 3), (2, 2, 2), name="probe"))
    model.get_layer("probe").set_weights([np.ones((3, 3, 3, 1, 1), np.float32)])
    x = np.zeros((1, 8, 8, 8, 1), np.float32)
    x[0, 2, 2, 2, 0] = 1.0
    out = model(x).numpy()[0, ..., 0]
    expected = np.zeros((4, 4, 4), np.float32)
    expected[1, 1, 1] = 1.0
    np.testing.assert_array_equal(out, expected)
    # Stride 1 keeps "same" and needs no padding layer.
    model_s1 = keras.Model(inputs, conv(inputs, 1, (3, 3, 3), (1, 1, 1), name="same"))
    assert not any(isinstance(layer, SymmetricZeroPadding) for layer in model_s1.layers)


def test_strided_conv_padding_is_a_padv2_op_that_grappler_leaves_alone():
    """The pad before a strided conv is PadV2 (a Pad op there makes grappler's remapper
    fail on the gradient graph), pads like ZeroPadding3D, and survives a config round trip."""
    import tensorflow as tf

    layer = SymmetricZeroPadding(((1, 1), (0, 2), (1, 0)))
    x = np.random.default_rng(0).normal(size=(2, 3, 4, 5, 2)).astype(np.float32)
    expected = keras.layers.ZeroPadding3D(((1, 1), (0, 2), (1, 0)))(x)
    np.testing.assert_array_equal(layer(x), expected)
    assert layer.compute_output_shape((None, 3, 4, None, 2)) == (None, 5, 6, None, 2)
    assert run_serialization_test(layer, x).padding == layer.padding
    net = build_backbone("r3d_10", input_shape=(8, 16, 16, 2), width=4)
    graph = (
        tf.function(lambda t: net(t, training=True))
        .get_concrete_function(tf.TensorSpec([1, 8, 16, 16, 2]))
        .graph
    )
    fed_by = [
        op.inputs[0].op.type for op in graph.get_operations() if op.type in ("Conv2D", "Conv3D")
    ]
    assert "PadV2" in fed_by and "Pad" not in fed_by  # (the stem's max-pool pad stays Pad)


def test_backbone_config_round_trip_gives_identical_outputs():
    model = build_backbone("r3d_26", input_shape=(8, 32, 32, 3), width=4, blocks=(1, 1, 1, 1))
    x = np.random.default_rng(2).random((2, 8, 32, 32, 3), np.float32)
    run_serialization_test(model, x)


def test_c3d_without_batch_norm_is_the_original_biased_c3d():
    model = build_backbone("c3d", input_shape=(16, 32, 32, 3), width=4, batch_norm=False)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv3D)]
    assert len(convs) == 8 and all(layer.use_bias for layer in convs)
    assert [layer.filters for layer in convs] == [4, 8, 16, 16, 32, 32, 32, 32]
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers)


def test_sync_bn_reaches_every_batch_norm():
    for name, shape in [
        ("r2plus1d_26", (8, 32, 32, 3)),
        ("c3d", (16, 32, 32, 3)),
        ("r2d_10", (32, 32, 3)),
    ]:
        kwargs = {"blocks": (1, 1, 1, 1)} if name != "c3d" else {}
        model = build_backbone(name, input_shape=shape, width=4, sync_bn=True, **kwargs)
        norms = [
            layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)
        ]
        assert norms and all(layer.synchronized for layer in norms), name
        plain = build_backbone(name, input_shape=shape, width=4, **kwargs)
        assert all(
            isinstance(layer, FusedBatchNormalization) and not layer.synchronized
            for layer in plain.layers
            if isinstance(layer, keras.layers.BatchNormalization)
        )


def test_registry_rejects_unknown_names_and_gives_memory_specs():
    with pytest.raises(ValueError, match="'r3d_18'"):
        build_backbone("r3d_18")
    with pytest.raises(TypeError):
        build_backbone("c3d", depth=3)
    with pytest.raises(ValueError, match="'r2d_10' has no predictor memory"):
        memory_spec("r2d_10")
    assert memory_spec("c3d") == backbones.MemorySpec(stages=("conv5",), time_fold=1)
    assert memory_spec("r2plus1d_26") == backbones.MemorySpec(("layer3", "layer4"), 2)
    assert set(backbones.MEMORY_SPECS) <= set(backbones.BACKBONES)


def test_bad_input_shape_is_reported_with_the_value():
    with pytest.raises(ValueError, match=r"\(112, 112, 3\)"):
        build_backbone("r3d_26", input_shape=(112, 112, 3))

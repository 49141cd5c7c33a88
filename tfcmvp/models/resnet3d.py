"""3-D ResNets: R3D-26 and R(2+1)D-26 (video network), R3D-10 (motion network).

Layout is channels-last, input [B, T, H, W, C]. Every model returns a dict:
"stem", "layer1" ... "layer4" (stage outputs) and "features" (the last stage).

Stem: a 3x7x7 conv (or its (2+1)D pair 1x7x7 then 3x1x1), stride
`stem_spatial_stride` in space and `stem_temporal_stride` (1 in the paper:
no temporal stride) in time, BN, ReLU, then optionally a 1x3x3 max pool of
stride (1, 2, 2). Stage 1 keeps the resolution; stages 2-4 halve time and
space. `zero_init_residual` (default, the authors'): see resnet_blocks.py.

Output grids at the paper's input sizes:
  R3D-26 / R(2+1)D-26 on [B, 16, 112, 112, 3] (stride-2 stem conv + max pool):
    layer3 [B, 4, 7, 7, 1024], layer4 = features [B, 2, 4, 4, 2048].
  R3D-10 on [B, 8, 112, 112, 2]:
    stem [B, 8, 56, 56, 64], layer3 [B, 2, 14, 14, 256],
    layer4 = features [B, 1, 7, 7, 512]: 49 motion targets.
The video network's stem pool is what makes layer3 4x7x7 and layer4 2x4x4, the
grids of the authors' predictor memory. The motion network's stem halves space
once, not twice, so that its output is the 1x7x7 target grid; two ways
(`r3d_10(stem=...)`, ``ModelConfig.motion_stem``):
  "authors"  stride-1 conv at full resolution, then the 1x3x3 max pool of stride
             (1, 2, 2): the authors' code (``first_stride=1``); 4x the stem's
             conv compute.
  "strided"  stride-(1, 2, 2) conv and no pool: same output grid and weights.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from tfcmvp.models.resnet_blocks import residual_stages, spatiotemporal_conv_bn

# How the motion network's stem halves space (module docstring).
MOTION_STEMS = ("authors", "strided")


def build_resnet3d(
    *,
    input_shape: Sequence[int | None],
    block: str,
    blocks: Sequence[int],
    width: int = 64,
    factorized: bool = False,
    stem_pool: bool = True,
    stem_spatial_stride: int = 2,
    stem_temporal_stride: int = 1,
    sync_bn: bool = False,
    zero_init_residual: bool = True,
    name: str = "resnet3d",
    input_name: str = "video",
) -> keras.Model:
    """Build a 3-D ResNet as a functional model with a dict of stage outputs.

    Args:
      input_shape: (T, H, W, C) of one clip.
      block: "basic" or "bottleneck" (expansion 4).
      blocks: blocks per stage, e.g. (2, 2, 2, 2).
      width: channels of the stem and of stage 1's planes; stage i has width * 2**i planes.
      factorized: R(2+1)D: every t x d x d conv becomes spatial 1 x d x d then temporal t x 1 x 1.
      stem_pool: 1x3x3 max pool of stride (1, 2, 2) after the stem.
      stem_spatial_stride: spatial stride of the stem conv (2, or 1 for the
        authors' motion network).
      stem_temporal_stride: temporal stride of the stem conv.
      sync_bn: synchronise BatchNorm statistics across replicas.
      zero_init_residual: the last BN of every residual block starts at gamma 0.
      name: model name.
      input_name: name of the Input layer.
    """
    input_shape = tuple(input_shape)
    if len(input_shape) != 4:
        raise ValueError(f"{name}: input_shape must be (T, H, W, C), got {input_shape!r}")
    inputs = keras.Input(shape=input_shape, name=input_name)  # [B, T, H, W, C]
    stem_strides = (stem_temporal_stride, stem_spatial_stride, stem_spatial_stride)
    x = spatiotemporal_conv_bn(
        inputs, width, (3, 7, 7), stem_strides, "stem_conv", sync_bn, factorized
    )  # [B, T/st, H/ss, W/ss, width]
    if stem_pool:
        # Zero padding equals PyTorch's -inf padding here: the input is post-ReLU.
        x = keras.layers.ZeroPadding3D(padding=((0, 0), (1, 1), (1, 1)), name="stem_pool_pad")(x)
        x = keras.layers.MaxPooling3D(
            pool_size=(1, 3, 3), strides=(1, 2, 2), padding="valid", name="stem_pool"
        )(x)  # [B, T/st, H/2ss, W/2ss, width]
    outputs = {"stem": x}
    x, stages = residual_stages(
        x,
        block,
        blocks,
        width,
        first_strides=(1, 1, 1),
        later_strides=(2, 2, 2),
        sync_bn=sync_bn,
        factorized=factorized,
        zero_init_residual=zero_init_residual,
    )
    outputs.update(stages)
    outputs["features"] = x
    return keras.Model(inputs, outputs, name=name)


def _bottleneck_26(
    factorized: bool, input_shape, width, blocks, sync_bn, zero_init_residual, name
) -> keras.Model:
    """The 26-layer recipe of R3D-26 and R(2+1)D-26: bottleneck blocks, stem max pool."""
    return build_resnet3d(
        input_shape=input_shape,
        block="bottleneck",
        blocks=blocks,
        width=width,
        factorized=factorized,
        stem_pool=True,
        sync_bn=sync_bn,
        zero_init_residual=zero_init_residual,
        name=name,
    )


def r3d_26(
    input_shape: Sequence[int | None] = (16, 112, 112, 3),
    width: int = 64,
    blocks: Sequence[int] = (2, 2, 2, 2),
    sync_bn: bool = False,
    zero_init_residual: bool = True,
    name: str = "r3d_26",
) -> keras.Model:
    """R3D-26 video network: bottleneck blocks (2, 2, 2, 2), full 3x3x3 convs, stem max pool."""
    return _bottleneck_26(False, input_shape, width, blocks, sync_bn, zero_init_residual, name)


def r2plus1d_26(
    input_shape: Sequence[int | None] = (16, 112, 112, 3),
    width: int = 64,
    blocks: Sequence[int] = (2, 2, 2, 2),
    sync_bn: bool = False,
    zero_init_residual: bool = True,
    name: str = "r2plus1d_26",
) -> keras.Model:
    """R(2+1)D-26 video network: R3D-26 with every 3-D conv factorised into (2+1)D."""
    return _bottleneck_26(True, input_shape, width, blocks, sync_bn, zero_init_residual, name)


def r3d_10(
    input_shape: Sequence[int | None] = (8, 112, 112, 2),
    width: int = 64,
    blocks: Sequence[int] = (1, 1, 1, 1),
    stem: str = "authors",
    sync_bn: bool = False,
    zero_init_residual: bool = True,
    name: str = "r3d_10",
) -> keras.Model:
    """R3D-10 motion network: BasicBlocks (1, 1, 1, 1) on 2-channel motion-vector maps.

    `stem`: "authors" (stride-1 conv + max pool) or "strided" (stride-2 conv, no
    pool); either way 8 x 112 x 112 maps give a 1 x 7 x 7 x 512 output.
    """
    if stem not in MOTION_STEMS:
        raise ValueError(f"{name}: unknown stem {stem!r}; expected one of {MOTION_STEMS}")
    authors = stem == "authors"
    return build_resnet3d(
        input_shape=input_shape,
        block="basic",
        blocks=blocks,
        width=width,
        factorized=False,
        stem_pool=authors,
        stem_spatial_stride=1 if authors else 2,
        sync_bn=sync_bn,
        zero_init_residual=zero_init_residual,
        name=name,
        input_name="motion",
    )

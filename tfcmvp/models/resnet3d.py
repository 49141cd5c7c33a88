"""3-D ResNets: R3D-26 and R(2+1)D-26 (V-Network), R3D-10 (M-Network).

Layout is channels-last, input [B, T, H, W, C]. Every model returns a dict:
"stem", "layer1" ... "layer4" (stage outputs) and "features" (the last stage).

Stem: a 3x7x7 conv (or its (2+1)D pair 1x7x7 then 3x1x1), stride 2 in space
and `stem_temporal_stride` (1 in the paper: no temporal stride) in time, BN,
ReLU, then optionally a 1x3x3 max pool of stride (1, 2, 2). Stage 1 keeps
the resolution; stages 2-4 halve time and space.

Output grids at the paper's input sizes:
  R3D-26 / R(2+1)D-26 on [B, 16, 112, 112, 3] (stem max pool):
    layer3 [B, 4, 7, 7, 1024], layer4 = features [B, 2, 4, 4, 2048].
  R3D-10 on [B, 8, 112, 112, 2] (no stem max pool):
    layer3 [B, 2, 14, 14, 256], layer4 = features [B, 1, 7, 7, 512].
The V-Network's stem pool is what makes layer3 4x7x7 and layer4 2x4x4, the
grids of the authors' predictor memory; the M-Network has no pool so its
output is the 1x7x7 target grid.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from tfcmvp.models.resnet_blocks import residual_stages, spatiotemporal_conv_bn


def build_resnet3d(*, input_shape: Sequence[int | None], block: str, blocks: Sequence[int],
                   width: int = 64, factorized: bool = False, stem_pool: bool = True,
                   stem_temporal_stride: int = 1, sync_bn: bool = False, name: str = "resnet3d",
                   input_name: str = "video") -> keras.Model:
    """Build a 3-D ResNet as a functional model with a dict of stage outputs.

    Args:
      input_shape: (T, H, W, C) of one clip.
      block: "basic" or "bottleneck" (expansion 4).
      blocks: blocks per stage, e.g. (2, 2, 2, 2).
      width: channels of the stem and of stage 1's planes; stage i has width * 2**i planes.
      factorized: R(2+1)D: every t x d x d conv becomes spatial 1 x d x d then temporal t x 1 x 1.
      stem_pool: 1x3x3 max pool of stride (1, 2, 2) after the stem.
      stem_temporal_stride: temporal stride of the stem conv.
      sync_bn: synchronise BatchNorm statistics across replicas.
      name: model name.
      input_name: name of the Input layer.
    """
    input_shape = tuple(input_shape)
    if len(input_shape) != 4:
        raise ValueError(f"{name}: input_shape must be (T, H, W, C), got {input_shape!r}")
    inputs = keras.Input(shape=input_shape, name=input_name)  # [B, T, H, W, C]
    x = spatiotemporal_conv_bn(inputs, width, (3, 7, 7), (stem_temporal_stride, 2, 2), "stem_conv",
                               sync_bn, factorized)  # [B, T/s, H/2, W/2, width]
    if stem_pool:
        # Zero padding equals PyTorch's -inf padding here: the input is post-ReLU.
        x = keras.layers.ZeroPadding3D(padding=((0, 0), (1, 1), (1, 1)), name="stem_pool_pad")(x)
        x = keras.layers.MaxPooling3D(pool_size=(1, 3, 3), strides=(1, 2, 2), padding="valid",
                                      name="stem_pool")(x)  # [B, T/s, H/4, W/4, width]
    outputs = {"stem": x}
    x, stages = residual_stages(x, block, blocks, width, first_strides=(1, 1, 1),
                                later_strides=(2, 2, 2), sync_bn=sync_bn, factorized=factorized)
    outputs.update(stages)
    outputs["features"] = x
    return keras.Model(inputs, outputs, name=name)


def r3d_26(input_shape: Sequence[int | None] = (16, 112, 112, 3), width: int = 64,
           blocks: Sequence[int] = (2, 2, 2, 2), sync_bn: bool = False,
           name: str = "r3d_26") -> keras.Model:
    """R3D-26 V-Network: bottleneck blocks (2, 2, 2, 2), full 3x3x3 convs, stem max pool."""
    return build_resnet3d(input_shape=input_shape, block="bottleneck", blocks=blocks, width=width,
                          factorized=False, stem_pool=True, sync_bn=sync_bn, name=name)


def r2plus1d_26(input_shape: Sequence[int | None] = (16, 112, 112, 3), width: int = 64,
                blocks: Sequence[int] = (2, 2, 2, 2), sync_bn: bool = False,
                name: str = "r2plus1d_26") -> keras.Model:
    """R(2+1)D-26 V-Network: R3D-26 with every 3-D conv factorised into (2+1)D."""
    return build_resnet3d(input_shape=input_shape, block="bottleneck", blocks=blocks, width=width,
                          factorized=True, stem_pool=True, sync_bn=sync_bn, name=name)


def r3d_10(input_shape: Sequence[int | None] = (8, 112, 112, 2), width: int = 64,
           blocks: Sequence[int] = (1, 1, 1, 1), stem_pool: bool = False, sync_bn: bool = False,
           name: str = "r3d_10") -> keras.Model:
    """R3D-10 M-Network: BasicBlocks (1, 1, 1, 1) on 2-channel motion-vector maps.

    Without the stem pool, 8 x 112 x 112 maps give a 1 x 7 x 7 x 512 output.
    """
    return build_resnet3d(input_shape=input_shape, block="basic", blocks=blocks, width=width,
                          factorized=False, stem_pool=stem_pool, sync_bn=sync_bn, name=name,
                          input_name="motion")

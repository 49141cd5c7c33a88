"""2-D ResNet: R2D-10, the I-frame network (input [B, H, W, C], channels-last).

Stem: 7x7 conv stride 2, BN, ReLU, 3x3 max pool stride 2; then BasicBlock
stages, stage 1 at stride 1 and later stages at stride 2. On a 112 x 112
I-frame: layer3 [B, 7, 7, 256], layer4 = features [B, 4, 4, 512].
`zero_init_residual` (default, the authors'): see resnet_blocks.py.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from tfcmvp.models.conv_bn import conv_bn
from tfcmvp.models.resnet_blocks import residual_stages


def build_resnet2d(
    *,
    input_shape: Sequence[int | None],
    block: str,
    blocks: Sequence[int],
    width: int = 64,
    stem_pool: bool = True,
    sync_bn: bool = False,
    zero_init_residual: bool = True,
    name: str = "resnet2d",
    input_name: str = "image",
) -> keras.Model:
    """Build a 2-D ResNet returning a dict "stem", "layer1" ..., "features".

    Args:
      input_shape: (H, W, C) of one image.
      block: "basic" or "bottleneck".
      blocks: blocks per stage.
      width: stem channels and stage 1 planes; stage i has width * 2**i planes.
      stem_pool: 3x3 max pool of stride 2 after the stem.
      sync_bn: synchronise BatchNorm statistics across replicas.
      zero_init_residual: the last BN of every residual block starts at gamma 0.
      name: model name.
      input_name: name of the Input layer.
    """
    input_shape = tuple(input_shape)
    if len(input_shape) != 3:
        raise ValueError(f"{name}: input_shape must be (H, W, C), got {input_shape!r}")
    inputs = keras.Input(shape=input_shape, name=input_name)  # [B, H, W, C]
    x = conv_bn(inputs, width, (7, 7), (2, 2), "stem_conv", sync_bn)  # [B, H/2, W/2, width]
    if stem_pool:
        # Zero padding equals PyTorch's -inf padding here: the input is post-ReLU.
        x = keras.layers.ZeroPadding2D(padding=((1, 1), (1, 1)), name="stem_pool_pad")(x)
        x = keras.layers.MaxPooling2D(
            pool_size=(3, 3), strides=(2, 2), padding="valid", name="stem_pool"
        )(x)  # [B, H/4, W/4, width]
    outputs = {"stem": x}
    x, stages = residual_stages(
        x,
        block,
        blocks,
        width,
        first_strides=(1, 1),
        later_strides=(2, 2),
        sync_bn=sync_bn,
        zero_init_residual=zero_init_residual,
    )
    outputs.update(stages)
    outputs["features"] = x
    return keras.Model(inputs, outputs, name=name)


def r2d_10(
    input_shape: Sequence[int | None] = (112, 112, 3),
    width: int = 64,
    blocks: Sequence[int] = (1, 1, 1, 1),
    sync_bn: bool = False,
    zero_init_residual: bool = True,
    name: str = "r2d_10",
) -> keras.Model:
    """R2D-10 I-frame network: BasicBlocks (1, 1, 1, 1) with the standard stem pool."""
    return build_resnet2d(
        input_shape=input_shape,
        block="basic",
        blocks=blocks,
        width=width,
        stem_pool=True,
        sync_bn=sync_bn,
        zero_init_residual=zero_init_residual,
        name=name,
    )

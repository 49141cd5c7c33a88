"""Residual blocks for the 2-D and 3-D ResNets (functional-graph helpers).

Both blocks take the rank from the input: [B, H, W, C] gives 2-D convs,
[B, T, H, W, C] 3-D convs. With `factorized=True` (3-D only) every 3x3x3
conv becomes the R(2+1)D pair: a spatial 1x3x3 conv to M channels, BN, ReLU,
then a temporal 3x1x1 conv, where M (Tran et al. 2018) keeps the parameter
count of the full 3x3x3 conv. The spatial conv carries the spatial stride and
the temporal conv the temporal stride.

Zero-init residual (`zero_init_residual=True`, the authors' ResNets): the
last BatchNorm of every residual branch (BasicBlock: after the second conv,
its temporal half when factorised; Bottleneck: after the third conv) starts
with gamma = 0, so every block starts as its shortcut. Shortcut BNs keep 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from tfcmvp.models.conv_bn import conv_bn, r2plus1d_mid_channels


def spatiotemporal_conv_bn(
    x,
    filters: int,
    kernel_size: Sequence[int],
    strides: Sequence[int],
    name: str,
    sync_bn: bool,
    factorized: bool,
    relu: bool = True,
    zero_gamma: bool = False,
):
    """A full conv -> BN (-> ReLU), or for `factorized` its (2+1)D version.

    Layer names: `name` (full) or `name + "_spatial"` / `name + "_temporal"`.
    `zero_gamma` zero-initialises the scale of the last BN (the temporal one).
    """
    if not factorized:
        return conv_bn(
            x, filters, kernel_size, strides, name, sync_bn, relu=relu, zero_gamma=zero_gamma
        )
    if len(kernel_size) != 3:
        raise ValueError(
            f"{name!r}: the (2+1)D factorisation needs a 3-D kernel, "
            f"got kernel_size={tuple(kernel_size)}"
        )
    kernel_t, kernel_h, kernel_w = kernel_size
    stride_t, stride_h, stride_w = strides
    mid = r2plus1d_mid_channels(int(x.shape[-1]), filters, kernel_t, max(kernel_h, kernel_w))
    x = conv_bn(
        x,
        mid,
        (1, kernel_h, kernel_w),
        (1, stride_h, stride_w),
        name + "_spatial",
        sync_bn,
        relu=True,
    )
    return conv_bn(
        x,
        filters,
        (kernel_t, 1, 1),
        (stride_t, 1, 1),
        name + "_temporal",
        sync_bn,
        relu=relu,
        zero_gamma=zero_gamma,
    )


def _shortcut(x, out_channels: int, strides: tuple[int, ...], name: str, sync_bn: bool):
    """Identity, or a strided 1x1(x1) projection + BN when the shape changes."""
    if all(s == 1 for s in strides) and int(x.shape[-1]) == out_channels:
        return x
    ones = (1,) * len(strides)
    return conv_bn(x, out_channels, ones, strides, name + "_shortcut", sync_bn, relu=False)


def basic_block(
    x,
    planes: int,
    strides: Sequence[int],
    name: str,
    sync_bn: bool,
    factorized: bool = False,
    zero_init_residual: bool = False,
):
    """ResNet BasicBlock: two 3x3(x3) convs; output channels = `planes`."""
    rank = len(x.shape) - 2
    strides = tuple(int(s) for s in strides)
    kernel = (3,) * rank
    shortcut = _shortcut(x, planes, strides, name, sync_bn)
    y = spatiotemporal_conv_bn(x, planes, kernel, strides, name + "_conv1", sync_bn, factorized)
    y = spatiotemporal_conv_bn(
        y,
        planes,
        kernel,
        (1,) * rank,
        name + "_conv2",
        sync_bn,
        factorized,
        relu=False,
        zero_gamma=zero_init_residual,
    )
    y = keras.layers.Add(name=name + "_add")([y, shortcut])
    return keras.layers.ReLU(name=name + "_out")(y)


def bottleneck_block(
    x,
    planes: int,
    strides: Sequence[int],
    name: str,
    sync_bn: bool,
    factorized: bool = False,
    zero_init_residual: bool = False,
    expansion: int = 4,
):
    """ResNet Bottleneck: 1x1 -> 3x3 (strided) -> 1x1; output channels = planes * expansion."""
    rank = len(x.shape) - 2
    strides = tuple(int(s) for s in strides)
    ones = (1,) * rank
    out_channels = planes * expansion
    shortcut = _shortcut(x, out_channels, strides, name, sync_bn)
    y = conv_bn(x, planes, ones, ones, name + "_conv1", sync_bn)
    y = spatiotemporal_conv_bn(
        y, planes, (3,) * rank, strides, name + "_conv2", sync_bn, factorized
    )
    y = conv_bn(
        y,
        out_channels,
        ones,
        ones,
        name + "_conv3",
        sync_bn,
        relu=False,
        zero_gamma=zero_init_residual,
    )
    y = keras.layers.Add(name=name + "_add")([y, shortcut])
    return keras.layers.ReLU(name=name + "_out")(y)


BLOCKS = {"basic": basic_block, "bottleneck": bottleneck_block}


def residual_stages(
    x,
    block: str,
    blocks: Sequence[int],
    width: int,
    first_strides: Sequence[int],
    later_strides: Sequence[int],
    sync_bn: bool,
    factorized: bool = False,
    zero_init_residual: bool = False,
):
    """Stack the residual stages "layer1", "layer2", ...

    Stage i has `blocks[i]` blocks of `width * 2**i` planes; its first block
    strides by `first_strides` (stage 1) or `later_strides` (later stages).
    `zero_init_residual`: every block's last BN starts at gamma 0.

    Returns:
      (output of the last stage, dict stage name -> stage output).
    """
    if block not in BLOCKS:
        raise ValueError(f"unknown residual block {block!r}; expected one of {sorted(BLOCKS)}")
    if not blocks or any(int(n) < 1 for n in blocks):
        raise ValueError(f"blocks must be a non-empty sequence of positive ints, got {blocks!r}")
    block_fn = BLOCKS[block]
    stages = {}
    for stage, num_blocks in enumerate(blocks):
        planes = width * 2**stage
        stage_name = f"layer{stage + 1}"
        for index in range(int(num_blocks)):
            if index > 0:
                strides = (1,) * len(first_strides)
            else:
                strides = first_strides if stage == 0 else later_strides
            x = block_fn(
                x,
                planes,
                strides,
                f"{stage_name}_block{index + 1}",
                sync_bn,
                factorized=factorized,
                zero_init_residual=zero_init_residual,
            )
        stages[stage_name] = x
    return x, stages

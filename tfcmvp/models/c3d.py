"""C3D (Tran et al. 2015) as a video network, input [B, T, H, W, C].

Eight 3x3x3 convs of 64, 128, 256, 256, 512, 512, 512, 512 channels (scaled
by width / 64) in five groups; max pools (1,2,2) after conv1 and (2,2,2)
after conv2, conv3 and conv4. The original pool5 and fc6-fc8 are left out:
the features are conv5b's map, [B, 2, 7, 7, 512] for a 16 x 112 x 112 clip,
which is the 2x7x7 grid the motion predictor reads.

BatchNorm: the self-supervised C3D of VCOP, PRP, VCP and DSM puts BN after
every conv, which lets it train from scratch with SGD at the paper's
learning rates; `batch_norm=True` (default) follows them (convs then have no
bias). `batch_norm=False` gives the original C3D with biased convs.

Outputs: "conv1" ... "conv5" (post-ReLU output of the last conv of each
group, before its pool) and "features" (= "conv5").
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from tfcmvp.models.conv_bn import conv_bn, conv_initializer

# (group name, number of convs, channel multiple of width, pool after the group)
_GROUPS = (
    ("conv1", 1, 1, (1, 2, 2)),
    ("conv2", 1, 2, (2, 2, 2)),
    ("conv3", 2, 4, (2, 2, 2)),
    ("conv4", 2, 8, (2, 2, 2)),
    ("conv5", 2, 8, None),
)


def c3d(
    input_shape: Sequence[int | None] = (16, 112, 112, 3),
    width: int = 64,
    batch_norm: bool = True,
    sync_bn: bool = False,
    name: str = "c3d",
) -> keras.Model:
    """Build C3D; returns a functional model with a dict of group outputs.

    Args:
      input_shape: (T, H, W, C) of one clip.
      width: channels of conv1 (64 in C3D); the others scale with it.
      batch_norm: BN after every conv (self-supervised C3D) or not (original C3D).
      sync_bn: synchronise BatchNorm statistics across replicas.
      name: model name.
    """
    input_shape = tuple(input_shape)
    if len(input_shape) != 4:
        raise ValueError(f"{name}: input_shape must be (T, H, W, C), got {input_shape!r}")
    inputs = keras.Input(shape=input_shape, name="video")  # [B, T, H, W, C]
    x = inputs
    outputs = {}
    for group, num_convs, multiple, pool in _GROUPS:
        for index in range(num_convs):
            layer_name = f"{group}{'ab'[index]}"
            if batch_norm:
                x = conv_bn(x, width * multiple, (3, 3, 3), (1, 1, 1), layer_name, sync_bn)
            else:
                x = keras.layers.Conv3D(
                    width * multiple,
                    3,
                    padding="same",
                    activation="relu",
                    kernel_initializer=conv_initializer(),
                    name=layer_name,
                )(x)
        outputs[group] = x
        if pool is not None:
            x = keras.layers.MaxPooling3D(
                pool_size=pool, strides=pool, padding="valid", name=f"pool{group[-1]}"
            )(x)
    outputs["features"] = x  # [B, T/8, H/16, W/16, 8 * width]
    return keras.Model(inputs, outputs, name=name)

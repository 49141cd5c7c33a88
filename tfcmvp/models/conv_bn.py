"""Convolution + BatchNorm building blocks shared by the backbones.

The backbones are functional Keras models made of stock layers (Conv3D,
Conv2D, BatchNormalization, ReLU, Add, MaxPooling): stock layers serialise
without custom code and run on the fast channels-last oneDNN/cuDNN kernels.
These helpers add those layers to a functional graph.

Padding follows the PyTorch reference networks: a kernel of size k is padded
by (k - 1) // 2 on both sides. For stride 1 that is Keras "same"; for strided
convolutions Keras "same" pads asymmetrically (0 before, 1 after on even
sizes), which shifts the sampling grid by one input pixel relative to the
1x1 strided shortcut, so strided convolutions get an explicit symmetric
zero padding (:class:`SymmetricZeroPadding`) followed by a "valid" convolution.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import tensorflow as tf  # the TF backend's ops: the models are TF-only

from tfcmvp.models.fused_batch_norm import FusedBatchNormalization

# PyTorch BatchNorm defaults (momentum 0.1 of the new value == Keras 0.9 of the
# old one; eps 1e-5), as in the reference networks.
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


def conv_initializer() -> keras.initializers.Initializer:
    """He-normal with fan_out, the usual initialisation of ResNets and C3D."""
    return keras.initializers.VarianceScaling(
        scale=2.0, mode="fan_out", distribution="untruncated_normal"
    )


def batch_norm(
    sync_bn: bool, name: str, zero_gamma: bool = False
) -> keras.layers.BatchNormalization:
    """BatchNorm over the channel (last) axis; `sync_bn` averages statistics
    over all replicas of a tf.distribute strategy (SyncBN in the paper).

    Without sync_bn the fused kernel runs (see fused_batch_norm.py).
    `zero_gamma` starts the scale at 0 instead of 1 (zero-init residual: the
    last BN of a residual branch, so that every block starts as the identity)."""
    return FusedBatchNormalization(
        axis=-1,
        momentum=BN_MOMENTUM,
        epsilon=BN_EPSILON,
        synchronized=sync_bn,
        gamma_initializer="zeros" if zero_gamma else "ones",
        name=name,
    )


@keras.saving.register_keras_serializable(package="tfcmvp")
class SymmetricZeroPadding(keras.layers.Layer):
    """Zero padding of the spatial / temporal axes of [B, ..., C] maps, as one PadV2 op.

    Computes what keras.layers.ZeroPadding2D/3D compute. Those emit a ``Pad``
    op, which TensorFlow's grappler remapper fuses into the following strided
    convolution and then fails on the gradient's ShapeN that still reads it
    ("remapper failed: ... fanout ... exist for missing node ..._pad"): an
    error line in every training log and no remapper fusion in that graph.
    ``PadV2`` with a zero constant is the same computation and is not fused.

    Args:
      padding: ((before, after), ...) per axis between batch and channels.
    """

    def __init__(self, padding, **kwargs):
        super().__init__(**kwargs)
        self.padding = tuple((int(a), int(b)) for a, b in padding)

    def call(self, inputs):
        paddings = [[0, 0], *[list(p) for p in self.padding], [0, 0]]
        return tf.raw_ops.PadV2(
            input=inputs, paddings=paddings, constant_values=tf.zeros([], inputs.dtype)
        )

    def compute_output_shape(self, input_shape):
        inner = [
            None if size is None else size + before + after
            for size, (before, after) in zip(input_shape[1:-1], self.padding)
        ]
        return (input_shape[0], *inner, input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "padding": [list(p) for p in self.padding]}


def symmetric_padding(kernel_size: Sequence[int]) -> tuple[tuple[int, int], ...]:
    """((k - 1) // 2, (k - 1) // 2) per axis: PyTorch's `padding=k // 2` for odd k."""
    return tuple(((k - 1) // 2, (k - 1) // 2) for k in kernel_size)


def conv(
    x,
    filters: int,
    kernel_size: Sequence[int],
    strides: Sequence[int],
    name: str,
    use_bias: bool = False,
):
    """Conv2D or Conv3D (by the rank of `kernel_size`) with symmetric padding.

    Args:
      x: functional tensor, [B, H, W, C] (2-D) or [B, T, H, W, C] (3-D).
      filters: output channels.
      kernel_size: (kh, kw) or (kt, kh, kw).
      strides: same rank as `kernel_size`.
      name: layer name; a padding layer, if needed, is called `name + "_pad"`.
      use_bias: False when a BatchNorm follows.
    """
    kernel_size = tuple(int(k) for k in kernel_size)
    strides = tuple(int(s) for s in strides)
    if len(kernel_size) not in (2, 3) or len(strides) != len(kernel_size):
        raise ValueError(
            f"conv {name!r}: kernel_size {kernel_size} and strides {strides} "
            "must both have 2 or 3 entries"
        )
    conv_cls = keras.layers.Conv3D if len(kernel_size) == 3 else keras.layers.Conv2D
    padding = symmetric_padding(kernel_size)
    needs_pad = any(s > 1 for s in strides) and any(p for p, _ in padding)
    if needs_pad:
        x = SymmetricZeroPadding(padding, name=name + "_pad")(x)
    return conv_cls(
        filters,
        kernel_size,
        strides=strides,
        padding="valid" if needs_pad else "same",
        use_bias=use_bias,
        kernel_initializer=conv_initializer(),
        name=name,
    )(x)


def conv_bn(
    x,
    filters: int,
    kernel_size: Sequence[int],
    strides: Sequence[int],
    name: str,
    sync_bn: bool,
    relu: bool = True,
    zero_gamma: bool = False,
):
    """conv -> BN (-> ReLU). Layers are named `name`, `name + "_bn"`, `name + "_relu"`.

    `zero_gamma`: the BN scale starts at 0 (see :func:`batch_norm`)."""
    x = conv(x, filters, kernel_size, strides, name=name)
    x = batch_norm(sync_bn, name=name + "_bn", zero_gamma=zero_gamma)(x)
    if relu:
        x = keras.layers.ReLU(name=name + "_relu")(x)
    return x


def r2plus1d_mid_channels(in_channels: int, out_channels: int, kernel_t: int, kernel_s: int) -> int:
    """Channels between the spatial and the temporal conv of a (2+1)D factorisation.

    Tran et al. (CVPR 2018, Sec. 3.5): M = floor(t d^2 N_in N_out / (d^2 N_in + t N_out)),
    chosen so the factorised pair has the parameter count of the full t x d x d conv.
    """
    numerator = kernel_t * kernel_s * kernel_s * in_channels * out_channels
    return numerator // (kernel_s * kernel_s * in_channels + kernel_t * out_channels)

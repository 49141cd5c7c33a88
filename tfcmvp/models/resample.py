"""Resample a [B, T, H, W, C] map to another (T, H, W) grid.

Each axis is resampled by a fixed interpolation matrix built in NumPy from
the static sizes, applied as an einsum (a small matmul): exact, differentiable
and dtype-agnostic, with no gather.

Modes (both match torch.nn.functional.interpolate):
  "nearest": source index floor(o * in / out) (PyTorch's default "nearest").
  "trilinear": half-pixel centres, source (o + 0.5) * in / out - 0.5 clamped
    at 0, linear between the two neighbours (align_corners=False; the same as
    tf.image.resize "bilinear" per axis).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from keras import ops

INTERPOLATIONS = ("nearest", "trilinear")


def interpolation_matrix(in_size: int, out_size: int, interpolation: str) -> np.ndarray:
    """[out_size, in_size] float32 matrix A with out = A @ in along one axis."""
    if interpolation not in INTERPOLATIONS:
        raise ValueError(
            f"unknown interpolation {interpolation!r}; expected one of {INTERPOLATIONS}"
        )
    if in_size < 1 or out_size < 1:
        raise ValueError(f"cannot resample an axis of size {in_size} to size {out_size}")
    matrix = np.zeros((out_size, in_size), np.float32)
    scale = in_size / out_size
    for out_index in range(out_size):
        if interpolation == "nearest":
            matrix[out_index, min(int(np.floor(out_index * scale)), in_size - 1)] = 1.0
            continue
        source = max((out_index + 0.5) * scale - 0.5, 0.0)
        low = min(int(np.floor(source)), in_size - 1)
        high = min(low + 1, in_size - 1)
        frac = source - low
        matrix[out_index, low] += 1.0 - frac
        matrix[out_index, high] += frac
    return matrix


def resample_grid(x, size: Sequence[int], interpolation: str):
    """Resample x [B, T, H, W, C] (static T, H, W) to [B, *size, C].

    Axes whose size does not change are left untouched (no op at all).
    """
    in_size = tuple(x.shape[1:4])
    size = tuple(int(s) for s in size)
    if len(size) != 3 or any(s is None for s in in_size):
        raise ValueError(
            f"resample_grid needs a static [B, T, H, W, C] input and a (T, H, W) "
            f"size, got input shape {tuple(x.shape)} and size {size}"
        )
    for axis, letter in enumerate("thw"):
        if in_size[axis] == size[axis]:
            continue
        matrix = ops.convert_to_tensor(
            interpolation_matrix(in_size[axis], size[axis], interpolation), dtype=x.dtype
        )
        spec = "bthwc".replace(letter, "o")
        x = ops.einsum(f"o{letter},bthwc->{spec}", matrix, x)
    return x  # [B, size[0], size[1], size[2], C]

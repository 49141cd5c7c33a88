"""Motion-value targets of the value-prediction ablations (paper Table 1).

Instead of matching features, the MSE and cross-entropy ablations predict the
motion vector itself at each of the predictor's N = T3 * H3 * W3 query
positions. The target of a position is the mean motion vector over the cell
of the dense motion map that the position covers.
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf


def pool_motion_targets(motion: tf.Tensor, grid: Sequence[int]) -> tf.Tensor:
    """Average-pools dense motion maps to the predictor's query grid.

    Args:
      motion: [B, T, H, W, 2] motion-vector maps (x, y); T, H, W must be
        known statically and be multiples of the grid.
      grid: (T3, H3, W3), the motion feature grid, e.g. (1, 7, 7) for 8
        frames at 112 x 112.

    Returns:
      [B, T3 * H3 * W3, 2] float32, positions flattened in (t, y, x) order
      (index t * H3 * W3 + y * W3 + x), the order of the predictor's queries
      and of the motion network's flattened output. Cells are plain means, so holes
      and I-frames (zero vectors) pull a cell's mean towards zero.
    """
    motion = tf.convert_to_tensor(motion)
    if motion.shape.rank != 5 or motion.shape[-1] != 2:
        raise ValueError(f"pool_motion_targets expects motion [B, T, H, W, 2], got {motion.shape}")
    if len(grid) != 3 or any(int(cells) < 1 for cells in grid):
        raise ValueError(f"pool_motion_targets: grid must be (T3, H3, W3), got {grid!r}")
    sizes = motion.shape[1:4]
    if any(size is None for size in sizes):
        raise ValueError(f"pool_motion_targets needs static T, H, W, got motion {motion.shape}")
    if any(size % cells for size, cells in zip(sizes, grid)):
        raise ValueError(
            f"pool_motion_targets: motion [T, H, W] = {list(sizes)} is not a multiple of "
            f"grid {list(grid)}"
        )
    t3, h3, w3 = (int(g) for g in grid)
    ft, fh, fw = sizes[0] // t3, sizes[1] // h3, sizes[2] // w3
    motion = tf.cast(motion, tf.float32)
    cells = tf.reshape(motion, [-1, t3, ft, h3, fh, w3, fw, 2])  # [B, T3, ft, H3, fh, W3, fw, 2]
    pooled = tf.reduce_mean(cells, axis=[2, 4, 6])  # [B, T3, H3, W3, 2]
    return tf.reshape(pooled, [-1, t3 * h3 * w3, 2])  # [B, N, 2]


def as_position_targets(target: tf.Tensor, grid: Sequence[int] | None, name: str) -> tf.Tensor:
    """[B, N, 2] targets as given, or [B, T, H, W, 2] maps pooled to `grid`."""
    target = tf.convert_to_tensor(target)
    if target.shape.rank == 5:
        if grid is None:
            raise ValueError(f"{name}: dense motion target {target.shape} needs grid=(T3, H3, W3)")
        return pool_motion_targets(target, grid)
    if target.shape.rank != 3 or target.shape[-1] != 2:
        raise ValueError(f"{name}: target must be [B, N, 2] or [B, T, H, W, 2], got {target.shape}")
    return tf.cast(target, tf.float32)

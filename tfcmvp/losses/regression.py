"""The MSE ablation (paper Table 1, "Future MSE"): regress motion vector values.

The predictor outputs an (x, y) motion vector per query position instead of
an embedding; the target is the pooled motion of the position's cell
(`tfcmvp.losses.targets.pool_motion_targets`).
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

from tfcmvp.losses.quantized import quantize_motion
from tfcmvp.losses.targets import as_position_targets


def motion_mse(
    pred_values: tf.Tensor,
    target_motion: tf.Tensor,
    *,
    bins: int,
    value_range: Sequence[float],
    grid: Sequence[int] | None = None,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Per-position squared error of predicted motion vectors.

    Args:
      pred_values: [B, N, 2] predicted (x, y) motion per query position.
      target_motion: [B, N, 2] pooled targets, or [B, T, H, W, 2] dense maps
        pooled here with `grid` (see `pool_motion_targets`).
      bins, value_range: the quantisation used only for the accuracy (see
        `quantize_motion`), so that the MSE and cross-entropy ablations report
        the same top-1 measure.
      grid: (T3, H3, W3), required for dense targets.

    Returns:
      `(loss, correct)`, both [B, N] float32: the squared error averaged over
      the two components, and 1.0 where both predicted components fall in the
      target's quantisation bin.
    """
    target = as_position_targets(target_motion, grid, "motion_mse")  # [B, N, 2]
    pred = tf.cast(tf.convert_to_tensor(pred_values), tf.float32)  # [B, N, 2]
    if not pred.shape.is_compatible_with(target.shape):
        raise ValueError(f"motion_mse: pred_values {pred.shape} vs targets {target.shape}")
    loss = tf.reduce_mean(tf.square(pred - target), axis=-1)  # [B, N]
    same_bin = tf.equal(
        quantize_motion(pred, bins, value_range), quantize_motion(target, bins, value_range)
    )  # [B, N, 2]
    correct = tf.cast(tf.reduce_all(same_bin, axis=-1), tf.float32)  # [B, N]
    return loss, correct

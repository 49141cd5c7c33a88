"""Quantised motion ranges and the cross-entropy ablation (paper Table 1, "Cross-Ent.").

Quantisation: each motion component (x and y separately) is clipped to
`value_range = (low, high)` and cut into `bins` equal-width classes:

    class = min(floor((clip(v, low, high) - low) / (high - low) * bins), bins - 1)

so `low` falls in class 0, `high` in class bins - 1, and values outside the
range in the end classes. Use an odd number of bins to give zero motion a
class of its own centred on 0 (with an even number zero sits on a boundary
and goes to class bins / 2). The value range is in the units of the motion
targets (the authors clamp vectors to +-10 px and divide by 10, i.e. (-1, 1)).
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

from tfcmvp.losses.targets import as_position_targets


def check_quantization(bins: int, value_range: Sequence[float]) -> tuple[float, float]:
    """Validates the quantisation and returns (low, high) as floats."""
    if not isinstance(bins, int) or bins < 2:
        raise ValueError(f"bins must be an integer >= 2, got {bins!r}")
    if len(value_range) != 2 or not float(value_range[0]) < float(value_range[1]):
        raise ValueError(f"value_range must be (low, high) with low < high, got {value_range!r}")
    return float(value_range[0]), float(value_range[1])


def quantize_motion(values: tf.Tensor, bins: int, value_range: Sequence[float]) -> tf.Tensor:
    """Class index (int32, same shape as `values`) of each motion component."""
    low, high = check_quantization(bins, value_range)
    values = tf.clip_by_value(tf.cast(values, tf.float32), low, high)
    classes = tf.floor((values - low) * (bins / (high - low)))
    return tf.minimum(tf.cast(classes, tf.int32), bins - 1)


def motion_quantized_ce(
    logits: tf.Tensor,
    target_values: tf.Tensor,
    bins: int,
    value_range: Sequence[float],
    grid: Sequence[int] | None = None,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Per-position cross-entropy over quantised motion ranges.

    Args:
      logits: [B, N, 2, bins] class scores for the x and y component of each
        query position.
      target_values: [B, N, 2] pooled motion targets, or [B, T, H, W, 2]
        dense maps pooled with `grid` (see `pool_motion_targets`).
      bins, value_range: the quantisation (module docstring).
      grid: (T3, H3, W3), required for dense targets.

    Returns:
      `(loss, correct)`, both [B, N] float32: cross-entropy averaged over the
      two components, and 1.0 where the arg-max class of both components is
      the target class.
    """
    check_quantization(bins, value_range)
    logits = tf.convert_to_tensor(logits)
    if logits.shape.rank != 4 or logits.shape[2] != 2 or logits.shape[3] != bins:
        raise ValueError(
            f"motion_quantized_ce expects logits [B, N, 2, {bins}], got {logits.shape}"
        )
    target = as_position_targets(target_values, grid, "motion_quantized_ce")  # [B, N, 2]
    if not logits.shape[:3].is_compatible_with(target.shape):
        raise ValueError(f"motion_quantized_ce: logits {logits.shape} vs targets {target.shape}")
    logits = tf.cast(logits, tf.float32)  # [B, N, 2, bins]
    classes = quantize_motion(target, bins, value_range)  # [B, N, 2]
    loss = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=classes, logits=logits
    )  # [B, N, 2]
    predicted = tf.argmax(logits, axis=-1, output_type=tf.int32)  # [B, N, 2]
    correct = tf.reduce_all(tf.equal(predicted, classes), axis=-1)  # [B, N]
    return tf.reduce_mean(loss, axis=-1), tf.cast(correct, tf.float32)

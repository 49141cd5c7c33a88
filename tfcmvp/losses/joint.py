"""Joint objective (paper Eq. 3): J = (1 - alpha) * J_I + alpha * J_M."""

from __future__ import annotations

import tensorflow as tf

DEFAULT_ALPHA = 0.5  # paper: context and motion weighted equally


def joint_loss(context_loss: tf.Tensor, motion_loss: tf.Tensor,
               alpha: float = DEFAULT_ALPHA) -> tf.Tensor:
    """(1 - alpha) * context_loss + alpha * motion_loss, in float32.

    The two losses may be scalars or per-video [B] values (reduce the motion
    loss [B, N] over positions first). alpha = 0 trains context only, 1 motion
    only. The authors' code optimises loss_m + loss_i, which is 2 x this at
    alpha = 0.5: the same optimum, with gradients (and so the effective
    learning rate) twice as large.
    """
    if isinstance(alpha, (int, float)) and not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha!r}")
    context_loss = tf.cast(context_loss, tf.float32)
    motion_loss = tf.cast(motion_loss, tf.float32)
    return (1.0 - alpha) * context_loss + alpha * motion_loss

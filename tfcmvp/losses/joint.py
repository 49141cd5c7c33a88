"""Joint objective (paper Eq. 3): J = scale x ((1 - alpha) * J_I + alpha * J_M)."""

from __future__ import annotations

import tensorflow as tf

DEFAULT_ALPHA = 0.5  # paper: context and motion weighted equally


def joint_loss(
    context_loss: tf.Tensor,
    motion_loss: tf.Tensor,
    alpha: float = DEFAULT_ALPHA,
    scale: float = 1.0,
) -> tf.Tensor:
    """scale * ((1 - alpha) * context_loss + alpha * motion_loss), in float32.

    The two losses may be scalars or per-video [B] values (reduce the motion
    loss [B, N] over positions first). alpha = 0 trains context only, 1 motion
    only. scale = 1 is Eq. 3 as printed. The authors' code minimises
    loss_m + loss_i, which is scale = 2 at alpha = 0.5: the same optimum, with
    gradients (and so the SGD step at a given learning rate) twice as large;
    ``loss.scale`` (default 2) reproduces their step at their rate.
    """
    if isinstance(alpha, (int, float)) and not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha!r}")
    if isinstance(scale, (int, float)) and not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale!r}")
    context_loss = tf.cast(context_loss, tf.float32)
    motion_loss = tf.cast(motion_loss, tf.float32)
    return scale * ((1.0 - alpha) * context_loss + alpha * motion_loss)

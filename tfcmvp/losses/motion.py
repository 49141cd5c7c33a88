"""Motion prediction loss (paper Eq. 2): pointwise InfoNCE over motion features.

Every predicted position v^_ij (video i, flattened (t, y, x) position j) is a
query. The keys are every position of every motion clip of every video of the
global batch: per video K clips, the target clip (k = 0, the future motion
after the RGB clip) followed by K - 1 hard negatives (other windows of the
same video). The only positive is the same video, same position, target clip;
other positions of the target clip, every position of the hard negatives and
everything from other videos are negatives. With 16 videos per replica, 4
replicas, K = 4 and N = 49 the logits are 784 x 12,544 per replica.
"""

from __future__ import annotations

import tensorflow as tf

from tfcmvp.losses.gather import gather_global_batch
from tfcmvp.losses.infonce import DEFAULT_TEMPERATURE, checked_inputs, infonce, l2_normalize


def motion_infonce(
    pred: tf.Tensor, motion_keys: tf.Tensor, temperature: float = DEFAULT_TEMPERATURE
) -> tuple[tf.Tensor, tf.Tensor]:
    """Per-position pointwise InfoNCE loss and top-1 hit.

    Args:
      pred: [B, N, D] predicted motion embeddings (motion predictor + head),
        position j in flattened (t, y, x) order.
      motion_keys: [B, K, N, D] motion-clip embeddings (motion network + head);
        clip 0 is the target, clips 1..K-1 hard negatives. K = 1 gives the
        loss without hard negatives.
      temperature: tau of Eq. 2.

    Inputs are cast to float32 and L2-normalised here. Keys are gathered over
    replicas as in `context_infonce`, differentiably (the motion network trains
    through this loss).

    Returns:
      `(loss, correct)`, both [B, N] float32. The mean over all B * N
      positions is J_M of Eq. 2.
    """
    expected = "pred [B, N, D] and motion_keys [B, K, N, D]"
    pred, motion_keys = checked_inputs(
        "motion_infonce", temperature, pred, motion_keys, (3, 4), expected
    )
    if (
        pred.shape.rank is not None
        and motion_keys.shape.rank is not None
        and not (
            pred.shape.is_compatible_with(
                [motion_keys.shape[0], motion_keys.shape[2], motion_keys.shape[3]]
            )
        )
    ):
        raise ValueError(
            f"motion_infonce: pred {pred.shape} must be [B, N, D] of motion_keys "
            f"{motion_keys.shape} = [B, K, N, D]"
        )
    shape = tf.shape(motion_keys)
    batch, clips, positions, depth = shape[0], shape[1], shape[2], shape[3]
    queries = tf.reshape(l2_normalize(pred), [-1, depth])  # [B * N, D], row b * N + n
    keys, offset = gather_global_batch(l2_normalize(motion_keys))  # [B_global, K, N, D]
    keys = tf.reshape(keys, [-1, depth])  # [B_global * K * N, D], row (g * K + k) * N + n
    # Positive of query (b, n): global video offset + b, clip 0, position n.
    video = offset + tf.range(batch, dtype=tf.int32)  # [B]
    positives = video[:, None] * (clips * positions) + tf.range(positions)[None, :]  # [B, N]
    loss, correct = infonce(queries, keys, tf.reshape(positives, [-1]), temperature)  # [B * N]
    return tf.reshape(loss, [batch, positions]), tf.reshape(correct, [batch, positions])

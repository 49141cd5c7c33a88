"""Reducing per-example losses to the value each replica differentiates.

Contract (also in the package docstring): loss functions return per-example
values; the train step turns them into one scalar per replica with
`replica_mean(per_example, global_batch_size)` = sum over the local batch /
global batch. MirroredStrategy (and TPUStrategy) *sum* gradients over
replicas, so dividing by the global batch here, once, makes the applied
gradient the gradient of the global-batch mean, equal to one replica running
the whole batch. Do not average again anywhere else.

On top of this the objective carries ``loss.scale`` (default 2,
:func:`tfcmvp.losses.joint_loss`): the authors minimise loss_m + loss_i,
twice Eq. 3 at alpha = 0.5, so scale 2 gives their step at their learning
rate (5e-4 x B).

Key encoders get their exact gradient, the authors' do not. The keys are
all-gathered and the gather's gradient flows back to the replica that owns
each key; with the division above the I-frame and motion networks receive the exact
gradient of the global-batch loss, like every other weight. In the authors'
distributed code the key-path gradients are summed to their owner and
divided by the world size W, and DDP then averages the parameter gradients
once more, so their I-frame and motion networks get 1/W of the exact gradient (1/4 on
UCF101, 1/32 on Kinetics-400); their video network's gradient is exact. We keep
the exact gradient and do not emulate that factor: it depends on the number
of GPUs, so it is no property of the method.
"""

from __future__ import annotations

import tensorflow as tf


def replica_mean(per_example: tf.Tensor, global_batch_size) -> tf.Tensor:
    """Sum of this replica's per-example losses divided by the global batch.

    Args:
      per_example: [B, ...] float loss (or metric) values, axis 0 the local
        batch; any further axes (e.g. the N positions of the motion loss) are
        averaged first, so each video counts once.
      global_batch_size: the number of videos over all replicas (Python int or
        scalar tensor), e.g. `local_batch * strategy.num_replicas_in_sync`.

    Returns:
      float32 scalar. Summed over replicas it is the mean over the global
      batch; with one replica it is the plain mean.
    """
    if isinstance(global_batch_size, int) and global_batch_size <= 0:
        raise ValueError(f"global_batch_size must be positive, got {global_batch_size}")
    per_example = tf.cast(tf.convert_to_tensor(per_example), tf.float32)
    if per_example.shape.rank is None:
        raise ValueError("replica_mean needs a per_example tensor of known rank [B, ...]")
    if per_example.shape.rank == 0:
        raise ValueError("replica_mean expects per-example values [B, ...], got a scalar")
    if per_example.shape.rank > 1:
        position_axes = list(range(1, per_example.shape.rank))
        per_example = tf.reduce_mean(per_example, axis=position_axes)  # [B]
    return tf.reduce_sum(per_example) / tf.cast(global_batch_size, tf.float32)

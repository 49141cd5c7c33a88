"""Gathering contrastive keys across the replicas of a `tf.distribute` strategy.

Both InfoNCE losses compare every local query with the keys of the *global*
batch. Inside a replica context with more than one replica the keys are
all-gathered along the batch axis; elsewhere the local batch is the global
batch. The gather is differentiable: in TF 2.21
`ReplicaContext.all_gather` carries a custom gradient that all-reduces
(sums) the upstream gradient over replicas and hands each replica the slice
of the rows it owns, so a key encoder on replica r receives the gradient of
every replica's loss with respect to its keys (checked by
tests/test_losses_distributed.py).
"""

from __future__ import annotations

import tensorflow as tf


def gather_global_batch(values: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """All-gathers `values` [B, ...] over replicas along axis 0.

    Returns `(gathered, offset)`: `gathered` is [B_global, ...] in replica
    order (replica 0's rows first) and `offset` is an int32 scalar, the row of
    `gathered` that holds this replica's first row. Replicas may hold different
    local batch sizes (MirroredStrategy allows it; TPUStrategy requires equal
    ones), so the offset is the sum of the batch sizes of the replicas before
    this one, not `replica_id * B`.

    Without a strategy, with one replica, or in a cross-replica context (where
    tensors are not split per replica), `values` is returned unchanged with
    offset 0.
    """
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return values, tf.constant(0, tf.int32)
    gathered = context.all_gather(values, axis=0)  # [B_global, ...]
    # The batch size of every replica, gathered the same way, gives the offset.
    local_size = tf.shape(values, out_type=tf.int32)[:1]  # [1]
    sizes = context.all_gather(local_size, axis=0)  # [R]
    # A mask instead of sizes[:replica_id] keeps shapes static (XLA / TPU).
    before = tf.range(context.num_replicas_in_sync) < context.replica_id_in_sync_group  # [R]
    offset = tf.reduce_sum(tf.where(before, sizes, tf.zeros_like(sizes)))
    return gathered, offset

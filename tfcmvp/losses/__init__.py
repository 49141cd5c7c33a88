"""Losses of context and motion decoupling (paper Eq. 1-3) and the Table 1 ablations.

Pure tensor functions: TF ops only, graph- and XLA-safe (no TPU-only ops, no
Python control flow on tensor values), float32 inside even when the inputs are
float16 / bfloat16 (mixed precision).

Loss-scaling contract (distribution)
------------------------------------
Every loss returns *per-example* values, `(loss, correct)`: [B] for context
matching, [B, N] per position for motion. Nothing here averages over the
batch. The train step reduces each replica's values exactly once:

    per_replica_loss = replica_mean(per_example, global_batch_size)
                     = sum over the local batch / global batch size

(positions are averaged within a video first). MirroredStrategy and
TPUStrategy *sum* the gradients of the replicas, so this division by the
global batch - equivalently, averaging over the local batch and dividing by
`num_replicas_in_sync` - makes the applied gradient that of the mean over the
global batch, identical to one replica running the whole batch
(tests/test_losses_distributed.py checks it on 2 logical CPUs). Do not
divide by the number of replicas anywhere else.

The contrastive losses gather their keys from all replicas with
`ReplicaContext.all_gather`; its gradient flows back to the replica that owns
each key, so key encoders train through the loss (no stop-gradient, no
momentum encoder, as in the authors' code).

Total objective (Eq. 3): `joint_loss(J_I, J_M, alpha)` =
(1 - alpha) J_I + alpha J_M, alpha = 0.5 by default; the authors' code uses
loss_m + loss_i, twice this at alpha = 0.5.
"""

from tfcmvp.losses.context import context_infonce
from tfcmvp.losses.gather import gather_global_batch
from tfcmvp.losses.infonce import DEFAULT_TEMPERATURE, infonce
from tfcmvp.losses.joint import DEFAULT_ALPHA, joint_loss
from tfcmvp.losses.motion import motion_infonce
from tfcmvp.losses.quantized import motion_quantized_ce, quantize_motion
from tfcmvp.losses.regression import motion_mse
from tfcmvp.losses.scaling import replica_mean
from tfcmvp.losses.targets import pool_motion_targets

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_TEMPERATURE",
    "context_infonce",
    "gather_global_batch",
    "infonce",
    "joint_loss",
    "motion_infonce",
    "motion_mse",
    "motion_quantized_ce",
    "pool_motion_targets",
    "quantize_motion",
    "replica_mean",
]

"""The optimizer of pretraining and finetuning: SGD + Nesterov, decoupled weight
decay, global-norm clipping of the replica-summed gradient, warm-up + cosine
learning rate."""

from __future__ import annotations

import keras
import tensorflow as tf

from tfcmvp.training.schedule import WarmupCosine


@keras.saving.register_keras_serializable(package="tfcmvp")
class ReplicaSumSGD(keras.optimizers.SGD):
    """keras.optimizers.SGD whose `global_clipnorm` clips the *summed* gradient.

    Stock Keras 3 clips each replica's gradient before summing them over
    replicas (`_clip_gradients` runs before `_all_reduce_sum_gradients`), so
    under MirroredStrategy with R replicas a norm limit of 15 lets the applied
    gradient reach up to 15 R, and the result depends on how the batch is
    split. The paper clips the gradient of the global batch (as PyTorch DDP
    does after its all-reduce). Here the sum over replicas happens first, in
    `_clip_gradients`, and the later sum is skipped, so the gradient is still
    summed exactly once and a run on R replicas matches one replica on the same
    global batch (tests/test_training_distributed.py checks it with clipping
    active).
    """

    def _clip_gradients(self, grads):
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            grads = context.all_reduce(tf.distribute.ReduceOp.SUM, list(grads))
        return super()._clip_gradients(grads)

    def _all_reduce_sum_gradients(self, grads_and_vars):
        return list(grads_and_vars)  # already summed in _clip_gradients


def build_optimizer(config, steps_per_epoch: int,
                    final_learning_rate: float = 0.0) -> ReplicaSumSGD:
    """SGD of ``config.optimizer`` with the warm-up + cosine schedule.

    `config` is a PretrainConfig or a FinetuneConfig. The peak rate is
    ``base_lr_per_sample x train.global_batch_size`` (paper: lr = 5e-4 x B
    for pretraining, 1e-4 x B for finetuning on UCF101); warm-up and total
    steps are the configured epochs times `steps_per_epoch`; the cosine ends
    at `final_learning_rate`.
    """
    opt = config.optimizer
    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
    schedule = WarmupCosine(
        peak_learning_rate=config.peak_learning_rate,
        warmup_steps=int(round(opt.warmup_epochs * steps_per_epoch)),
        total_steps=config.train.epochs * steps_per_epoch,
        final_learning_rate=final_learning_rate)
    return ReplicaSumSGD(
        learning_rate=schedule,
        momentum=opt.momentum,
        nesterov=opt.nesterov,
        weight_decay=opt.weight_decay,
        global_clipnorm=opt.clipnorm)

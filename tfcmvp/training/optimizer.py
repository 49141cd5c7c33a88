"""The optimizer of pretraining and finetuning: SGD with (Nesterov) momentum,
weight decay coupled to the gradient as in PyTorch (or decoupled as in Keras),
global-norm clipping of the replica-summed gradient, warm-up + cosine learning
rate."""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from tfcmvp.training.schedule import WarmupCosine

WEIGHT_DECAY_MODES = ("coupled", "decoupled")

# torch.nn.utils.clip_grad_norm_ scales by max_norm / (total_norm + 1e-6).
TORCH_CLIP_EPSILON = 1e-6


@keras.saving.register_keras_serializable(package="tfcmvp")
class ReplicaSumSGD(keras.optimizers.SGD):
    """SGD whose update is the authors' PyTorch update, or Keras SGD's.

    ``weight_decay_mode="coupled"`` (default) applies, per step, exactly what
    ``torch.nn.utils.clip_grad_norm_`` followed by ``torch.optim.SGD(lr,
    momentum, weight_decay, nesterov)`` does (no dampening)::

        g = g * min(1, clip / (||g|| + 1e-6))   # global norm over all variables
        g = g + weight_decay * w                # after the clip, before momentum
        buf = momentum * buf + g                # buf = g at the first step
        d = g + momentum * buf if nesterov else buf
        w = w - lr * d

    The momentum buffer holds gradients, not steps: the rate multiplies it
    when it is applied. Keras' SGD instead keeps ``m = momentum * m - lr * g``,
    which folds each step's rate into the buffer; under a schedule that moves
    the rate every step (warm-up + cosine) the two differ
    (tests/test_training_optimizer_parity.py compares 20 steps with a NumPy
    re-implementation of PyTorch's SGD).

    ``weight_decay_mode="decoupled"`` is the update before coupled decay
    existed, stock Keras SGD: ``w -= lr * weight_decay * w`` before the step,
    the Keras velocity above, Keras' global-norm clip (no epsilon). At
    momentum 0.9 coupled decay is about 1 / (1 - 0.9) = 10x stronger at the
    same ``weight_decay``.

    Both modes keep one slot per variable (``momentums``, named
    ``<variable>_momentum``) in the same order, so checkpoints have the same
    layout and load in either mode. The slot means different things, though:
    Keras' velocity (rate included, negative) in decoupled mode, PyTorch's
    buffer in coupled mode. Resume a run written before coupled decay existed
    with ``weight_decay_mode="decoupled"``.

    Clipping in both modes applies to the *summed* gradient. Stock Keras 3
    clips each replica's gradient before summing them over replicas
    (`_clip_gradients` runs before `_all_reduce_sum_gradients`), so under
    MirroredStrategy with R replicas a norm limit of 15 lets the applied
    gradient reach up to 15 R, and the result depends on how the batch is
    split. The paper clips the gradient of the global batch (as PyTorch DDP
    does after its all-reduce). Here the sum over replicas happens first, in
    `_clip_gradients`, and the later sum is skipped, so the gradient is still
    summed exactly once and a run on R replicas matches one replica on the
    same global batch (tests/test_training_distributed.py checks it with
    clipping active). Coupled decay is added to that summed, clipped gradient
    in `update_step`, which runs once per variable copy with the same values
    on every replica.

    Args:
      weight_decay_mode: "coupled" or "decoupled", as above.
      *args, **kwargs: keras.optimizers.SGD's (learning_rate, momentum,
        nesterov, weight_decay, global_clipnorm, ...).
    """

    def __init__(self, *args, weight_decay_mode: str = "coupled", **kwargs):
        if weight_decay_mode not in WEIGHT_DECAY_MODES:
            raise ValueError(
                f"weight_decay_mode must be one of {WEIGHT_DECAY_MODES}, got {weight_decay_mode!r}"
            )
        super().__init__(*args, **kwargs)
        self.weight_decay_mode = weight_decay_mode

    @property
    def coupled(self) -> bool:
        """True when the update is PyTorch's (coupled weight decay)."""
        return self.weight_decay_mode == "coupled"

    def _clip_gradients(self, grads):
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            grads = context.all_reduce(tf.distribute.ReduceOp.SUM, list(grads))
        if self.coupled and self.global_clipnorm and self.global_clipnorm > 0:
            return _clip_by_global_norm_like_torch(list(grads), self.global_clipnorm)
        return super()._clip_gradients(grads)

    def _all_reduce_sum_gradients(self, grads_and_vars):
        return list(grads_and_vars)  # already summed in _clip_gradients

    def _apply_weight_decay(self, variables):
        # Keras calls this before update_step for the decoupled decay; coupled
        # decay is part of the gradient, added in update_step.
        if not self.coupled:
            super()._apply_weight_decay(variables)

    def update_step(self, gradient, variable, learning_rate):
        """One variable's step (``variable`` is this device's copy, ``gradient``
        already summed over replicas and clipped)."""
        if not self.coupled:
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        if isinstance(gradient, tf.IndexedSlices):
            # The decay touches every row, so the step is dense (as in PyTorch).
            gradient = tf.convert_to_tensor(gradient)
        gradient = ops.cast(gradient, dtype)
        learning_rate = ops.cast(learning_rate, dtype)
        if self.weight_decay is not None and self._use_weight_decay(variable):
            gradient = gradient + ops.cast(self.weight_decay, dtype) * variable
        if self.momentum != 0:
            momentum = ops.cast(self.momentum, dtype)
            buffer = self.momentums[self._get_variable_index(variable)]
            # A zero buffer makes the first step buf = g, as PyTorch's clone.
            new_buffer = momentum * buffer + gradient
            self.assign(buffer, new_buffer)
            direction = gradient + momentum * new_buffer if self.nesterov else new_buffer
        else:
            direction = gradient
        self.assign_sub(variable, learning_rate * direction)

    def get_config(self):
        config = super().get_config()
        config["weight_decay_mode"] = self.weight_decay_mode
        return config


def _clip_by_global_norm_like_torch(grads, max_norm):
    """``torch.nn.utils.clip_grad_norm_``: scales every gradient by
    ``min(1, max_norm / (global_norm + 1e-6))``. A non-finite norm makes the
    gradients NaN (as in PyTorch, and Keras' clip), which the loss-scale
    optimizer and the NaN stop then catch."""
    norm = tf.linalg.global_norm(grads)
    scale = tf.minimum(tf.cast(max_norm, norm.dtype) / (norm + TORCH_CLIP_EPSILON), 1.0)
    clipped = []
    for g in grads:
        if g is None:
            clipped.append(None)
        elif isinstance(g, tf.IndexedSlices):
            clipped.append(
                tf.IndexedSlices(g.values * tf.cast(scale, g.dtype), g.indices, g.dense_shape)
            )
        else:
            clipped.append(g * tf.cast(scale, g.dtype))
    return clipped


def build_optimizer(
    config, steps_per_epoch: int, final_learning_rate: float = 0.0
) -> ReplicaSumSGD:
    """SGD of ``config.optimizer`` with the warm-up + cosine schedule.

    `config` is a PretrainConfig or a FinetuneConfig. The peak rate is
    ``base_lr_per_sample x train.global_batch_size`` (paper: lr = 5e-4 x B
    for pretraining, 1e-4 x B for finetuning on UCF101); warm-up and total
    steps are the configured epochs times `steps_per_epoch`; the cosine ends
    at `final_learning_rate`. ``optimizer.weight_decay_mode`` picks PyTorch's
    coupled update (the authors') or Keras' decoupled one (see
    :class:`ReplicaSumSGD`).
    """
    opt = config.optimizer
    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
    schedule = WarmupCosine(
        peak_learning_rate=config.peak_learning_rate,
        warmup_steps=int(round(opt.warmup_epochs * steps_per_epoch)),
        total_steps=config.train.epochs * steps_per_epoch,
        final_learning_rate=final_learning_rate,
    )
    return ReplicaSumSGD(
        learning_rate=schedule,
        momentum=opt.momentum,
        nesterov=opt.nesterov,
        weight_decay=opt.weight_decay,
        global_clipnorm=opt.clipnorm,
        weight_decay_mode=opt.weight_decay_mode,
    )

"""Learning-rate schedule: linear warm-up, then cosine to a final rate (0 by default).

The paper scales the peak rate with the global batch (lr = 5e-4 x B), warms
up for 5 epochs (authors' code) and anneals with a cosine rule to 0 at the
end of training. Finetuning uses the same rule; the authors' finetuning code
ends at 1e-6 instead of 0 (``optimizer.final_learning_rate``). Steps are
optimizer steps (`optimizer.iterations`, 0-based: the value *before* the
update it is used for).
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tfcmvp")
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """With d = peak - final:

    lr(step) = final + d * (step + 1) / warmup_steps         for step < warmup_steps,
               final + d * (1 + cos(pi * p)) / 2, p = (step - warmup_steps)
                                                     / (total_steps - warmup_steps)  after,

    i.e. PyTorch's ``CosineAnnealingLR(eta_min=final)`` after a linear warm-up.
    Warm-up counts `step + 1` so that the first update already moves the
    weights (a rate of exactly 0 would waste it) and the last warm-up step
    reaches the peak; the cosine then starts at the peak and would reach
    `final` at `step = total_steps`, one past the last step, so every step
    trains. Steps past `total_steps` keep the rate at `final`.

    Args:
      peak_learning_rate: rate at the end of warm-up (> 0).
      warmup_steps: steps of linear warm-up (>= 0, < total_steps).
      total_steps: steps of the whole run (epochs x steps per epoch).
      final_learning_rate: rate the cosine reaches at `total_steps`
        (0 <= final < peak; pretraining: 0).
    """

    def __init__(
        self,
        peak_learning_rate: float,
        warmup_steps: int,
        total_steps: int,
        final_learning_rate: float = 0.0,
    ):
        if not peak_learning_rate > 0:
            raise ValueError(f"peak_learning_rate must be > 0, got {peak_learning_rate!r}")
        if not 0.0 <= final_learning_rate < peak_learning_rate:
            raise ValueError(
                f"need 0 <= final_learning_rate < peak_learning_rate, got "
                f"{final_learning_rate!r} and {peak_learning_rate!r}"
            )
        if not 0 <= warmup_steps < total_steps:
            raise ValueError(
                f"need 0 <= warmup_steps < total_steps, got warmup_steps={warmup_steps}, "
                f"total_steps={total_steps} (is the warm-up longer than the run?)"
            )
        self.peak_learning_rate = float(peak_learning_rate)
        self.warmup_steps = int(warmup_steps)
        self.total_steps = int(total_steps)
        self.final_learning_rate = float(final_learning_rate)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        # The span the warm-up and the cosine cover above the final rate.
        span = tf.constant(self.peak_learning_rate - self.final_learning_rate, tf.float32)
        warmup = tf.constant(float(self.warmup_steps), tf.float32)
        # max(., 1) only keeps the unused branch finite when warmup_steps = 0.
        warm = span * (step + 1.0) / tf.maximum(warmup, 1.0)
        progress = (step - warmup) / float(self.total_steps - self.warmup_steps)
        progress = tf.clip_by_value(progress, 0.0, 1.0)
        cosine = span * 0.5 * (1.0 + tf.cos(math.pi * progress))
        return self.final_learning_rate + tf.where(step < warmup, warm, cosine)

    def get_config(self):
        return {
            "peak_learning_rate": self.peak_learning_rate,
            "warmup_steps": self.warmup_steps,
            "total_steps": self.total_steps,
            "final_learning_rate": self.final_learning_rate,
        }

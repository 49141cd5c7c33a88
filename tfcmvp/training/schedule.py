"""Learning-rate schedule of pretraining: linear warm-up, then cosine to zero.

The paper scales the peak rate with the global batch (lr = 5e-4 x B), warms
up for 5 epochs (authors' code) and anneals with a cosine rule to 0 at the
end of training. Steps are optimizer steps (`optimizer.iterations`, 0-based:
the value *before* the update it is used for).
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tfcmvp")
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """lr(step) = peak * (step + 1) / warmup_steps          for step < warmup_steps,
                  peak * (1 + cos(pi * p)) / 2, p = (step - warmup_steps)
                                                   / (total_steps - warmup_steps)  after.

    Warm-up counts `step + 1` so that the first update already moves the
    weights (a rate of exactly 0 would waste it) and the last warm-up step
    reaches the peak; the cosine then starts at the peak and would reach 0 at
    `step = total_steps`, one past the last step, so every step trains.
    Steps past `total_steps` keep the rate at 0.

    Args:
      peak_learning_rate: rate at the end of warm-up (> 0).
      warmup_steps: steps of linear warm-up (>= 0, < total_steps).
      total_steps: steps of the whole run (epochs x steps per epoch).
    """

    def __init__(self, peak_learning_rate: float, warmup_steps: int, total_steps: int):
        if not peak_learning_rate > 0:
            raise ValueError(f"peak_learning_rate must be > 0, got {peak_learning_rate!r}")
        if not 0 <= warmup_steps < total_steps:
            raise ValueError(
                f"need 0 <= warmup_steps < total_steps, got warmup_steps={warmup_steps}, "
                f"total_steps={total_steps} (is the warm-up longer than the run?)")
        self.peak_learning_rate = float(peak_learning_rate)
        self.warmup_steps = int(warmup_steps)
        self.total_steps = int(total_steps)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        peak = tf.constant(self.peak_learning_rate, tf.float32)
        warmup = tf.constant(float(self.warmup_steps), tf.float32)
        # max(., 1) only keeps the unused branch finite when warmup_steps = 0.
        warm = peak * (step + 1.0) / tf.maximum(warmup, 1.0)
        progress = (step - warmup) / float(self.total_steps - self.warmup_steps)
        progress = tf.clip_by_value(progress, 0.0, 1.0)
        cosine = peak * 0.5 * (1.0 + tf.cos(math.pi * progress))
        return tf.where(step < warmup, warm, cosine)

    def get_config(self):
        return {
            "peak_learning_rate": self.peak_learning_rate,
            "warmup_steps": self.warmup_steps,
            "total_steps": self.total_steps,
        }

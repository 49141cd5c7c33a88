"""The finetuning optimizer: the pretraining SGD (ReplicaSumSGD) with a warm-up +
cosine schedule that ends at ``optimizer.final_learning_rate`` instead of 0."""

from __future__ import annotations

import keras

from tfcmvp.finetuning.config import FinetuneConfig
from tfcmvp.training.optimizer import ReplicaSumSGD
from tfcmvp.training.schedule import WarmupCosine


@keras.saving.register_keras_serializable(package="tfcmvp")
class WarmupCosineToFinal(WarmupCosine):
    """:class:`WarmupCosine` shifted to end at `final_learning_rate`:

        lr(step) = final + WarmupCosine(peak - final)(step),

    i.e. the cosine annealing of PyTorch's ``CosineAnnealingLR(eta_min=final)``
    after a linear warm-up from about `final` to `peak`. Steps past
    `total_steps` keep the rate at `final`. With final = 0 it is WarmupCosine.

    Args:
      peak_learning_rate: rate at the end of warm-up.
      warmup_steps: steps of linear warm-up (>= 0, < total_steps).
      total_steps: steps of the whole run.
      final_learning_rate: rate the cosine reaches at `total_steps` (0 <= final < peak).
    """

    def __init__(self, peak_learning_rate: float, warmup_steps: int, total_steps: int,
                 final_learning_rate: float = 0.0):
        if not 0.0 <= final_learning_rate < peak_learning_rate:
            raise ValueError(f"need 0 <= final_learning_rate < peak_learning_rate, got "
                             f"{final_learning_rate!r} and {peak_learning_rate!r}")
        super().__init__(peak_learning_rate - final_learning_rate, warmup_steps, total_steps)
        self.final_learning_rate = float(final_learning_rate)

    def __call__(self, step):
        return self.final_learning_rate + super().__call__(step)

    def get_config(self):
        config = super().get_config()
        config["peak_learning_rate"] = self.peak_learning_rate + self.final_learning_rate
        config["final_learning_rate"] = self.final_learning_rate
        return config


def build_finetune_optimizer(config: FinetuneConfig, steps_per_epoch: int) -> ReplicaSumSGD:
    """SGD of ``config.optimizer``; peak rate ``base_lr_per_sample x global batch``
    (paper: 1e-4 x B on UCF101), warm-up and cosine over ``train.epochs`` x
    `steps_per_epoch` optimizer steps, ending at ``final_learning_rate``."""
    opt = config.optimizer
    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
    schedule = WarmupCosineToFinal(
        peak_learning_rate=config.peak_learning_rate,
        warmup_steps=int(round(opt.warmup_epochs * steps_per_epoch)),
        total_steps=config.train.epochs * steps_per_epoch,
        final_learning_rate=opt.final_learning_rate)
    return ReplicaSumSGD(
        learning_rate=schedule,
        momentum=opt.momentum,
        nesterov=opt.nesterov,
        weight_decay=opt.weight_decay,
        global_clipnorm=opt.clipnorm)

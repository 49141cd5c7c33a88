"""The finetuning optimizer: the pretraining SGD (ReplicaSumSGD: by default the
authors' PyTorch update, weight decay coupled to the gradient) and warm-up +
cosine schedule, ending at ``optimizer.final_learning_rate`` instead of 0."""

from __future__ import annotations

from tfcmvp.finetuning.config import FinetuneConfig
from tfcmvp.training.optimizer import ReplicaSumSGD, build_optimizer
from tfcmvp.training.schedule import WarmupCosine

# The schedule with a final rate is WarmupCosine itself; the name stays for
# tfcmvp.finetuning's public API.
WarmupCosineToFinal = WarmupCosine


def build_finetune_optimizer(config: FinetuneConfig, steps_per_epoch: int) -> ReplicaSumSGD:
    """:func:`tfcmvp.training.optimizer.build_optimizer` for a finetuning config:
    peak rate ``base_lr_per_sample x global batch`` (paper: 1e-4 x B on
    UCF101), ending at ``optimizer.final_learning_rate``; weight decay as
    ``optimizer.weight_decay_mode`` says (default coupled, paper: 3e-3 on
    UCF101, 2e-3 on HMDB51)."""
    return build_optimizer(
        config, steps_per_epoch, final_learning_rate=config.optimizer.final_learning_rate
    )

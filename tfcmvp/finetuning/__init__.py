"""Supervised finetuning of a pretrained (or random) video network for action recognition.

* :func:`finetune` (``finetune.py``): the library entry, config + data +
  workdir + pretrained export (or random init) -> trained, tested, exported
  classifier.
* :class:`FinetuneConfig` (``config.py``): the run's typed config, the paper's
  finetuning settings as defaults; :func:`load_finetune_config` reads YAML,
  ``--set`` overrides and a pretrained export's architecture.
* :class:`VideoClassifier` (``classifier.py``): video network + pool + dropout +
  Dense, optionally regularised by motion prediction (paper Table 6).
* ``evaluate.py``: the 10-clip test (softmax averaged over clips, top-1/top-5).
* ``optimizer.py``: SGD with warm-up + cosine to a final rate.
* ``callbacks.py``: the test after chosen epochs, history.png.
"""

from tfcmvp.finetuning.classifier import VideoClassifier, load_backbone_weights
from tfcmvp.finetuning.config import (
    ARCHITECTURE_KEYS,
    ClassifierConfig,
    EvaluationConfig,
    FinetuneConfig,
    FinetuneDataConfig,
    FinetuneOptimizerConfig,
    FinetuneTrainConfig,
    apply_finetune_overrides,
    check_architecture,
    finetune_config_from_dict,
    load_finetune_config,
)
from tfcmvp.finetuning.evaluate import EvalResult, evaluate_classifier, evaluate_clips
from tfcmvp.finetuning.finetune import FinetuneResult, finetune
from tfcmvp.finetuning.optimizer import WarmupCosineToFinal, build_finetune_optimizer

__all__ = [
    "ARCHITECTURE_KEYS",
    "ClassifierConfig",
    "EvalResult",
    "EvaluationConfig",
    "FinetuneConfig",
    "FinetuneDataConfig",
    "FinetuneOptimizerConfig",
    "FinetuneResult",
    "FinetuneTrainConfig",
    "VideoClassifier",
    "WarmupCosineToFinal",
    "apply_finetune_overrides",
    "build_finetune_optimizer",
    "check_architecture",
    "evaluate_classifier",
    "evaluate_clips",
    "finetune",
    "finetune_config_from_dict",
    "load_backbone_weights",
    "load_finetune_config",
]

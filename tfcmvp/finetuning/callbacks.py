"""Callbacks of a finetuning run: the test after chosen epochs, and the columns and
panels of history.csv / history.png.

Checkpoints, the NaN/Inf stop, history.csv and history.png are the pretraining
callbacks (:mod:`tfcmvp.training.callbacks`), given the finetuning columns
and panels below.
"""

from __future__ import annotations

import logging
from typing import Callable, Collection, Optional

import keras

from tfcmvp.finetuning.evaluate import EvalResult

logger = logging.getLogger(__name__)

# history.csv: these first, then any other logged value in sorted order.
FINETUNE_COLUMNS = (
    "epoch",
    "step",
    "loss",
    "ce_loss",
    "motion_loss",
    "acc",
    "motion_acc",
    "val_top1",
    "val_top5",
    "lr",
    "seconds",
)
# history.png: (title, [(column, scale)]) per panel. Accuracies are stored as
# fractions (like the pretext accuracies of pretraining) and drawn in percent.
FINETUNE_PANELS = (
    ("loss", (("loss", 1.0), ("ce_loss", 1.0), ("motion_loss", 1.0))),
    (
        "accuracy (%)",
        (("acc", 100.0), ("val_top1", 100.0), ("val_top5", 100.0), ("motion_acc", 100.0)),
    ),
)


class EvaluateAfterEpochs(keras.callbacks.Callback):
    """Runs the test protocol after the chosen epochs and logs ``val_top1`` /
    ``val_top5`` (fractions) into the epoch's logs.

    Place it before the history callback, which then writes the values into
    the epoch's row of history.csv (Keras hands every callback the same logs).

    Args:
      evaluate: model -> :class:`EvalResult` (the 10-clip test on the test split).
      epochs: 1-based epochs after which to test.
    """

    def __init__(self, evaluate: Callable[[keras.Model], EvalResult], epochs: Collection[int]):
        super().__init__()
        self.evaluate = evaluate
        self.epochs = frozenset(int(e) for e in epochs)
        self.last: Optional[tuple[int, EvalResult]] = None  # (1-based epoch, result)

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 not in self.epochs:
            return
        result = self.evaluate(self.model)
        self.last = (epoch + 1, result)
        logger.info(
            "epoch %d: test top-1 %.2f%%, top-5 %.2f%% on %d videos",
            epoch + 1,
            result.top1,
            result.top5,
            result.num_videos,
        )
        if logs is not None:
            logs["val_top1"] = result.top1 / 100.0
            logs["val_top5"] = result.top5 / 100.0

"""Callbacks of a finetuning run: the test after chosen epochs, and history.png.

Checkpoints, the NaN/Inf stop and history.csv are the pretraining callbacks
(:mod:`tfcmvp.training.callbacks`); these two add what finetuning reports.
"""

from __future__ import annotations

import logging
import os
import pathlib
from typing import Callable, Collection, Optional, Sequence

import keras

from tfcmvp.finetuning.evaluate import EvalResult
from tfcmvp.training.callbacks import HistoryPlot, read_history

logger = logging.getLogger(__name__)

# history.png: (title, [(column, scale)]) per panel. Accuracies are stored as
# fractions (like the pretext accuracies of pretraining) and drawn in percent.
FINETUNE_PANELS = (
    ("loss", (("loss", 1.0), ("ce_loss", 1.0), ("motion_loss", 1.0))),
    ("accuracy (%)", (("acc", 100.0), ("val_top1", 100.0), ("val_top5", 100.0),
                      ("motion_acc", 100.0))),
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
        logger.info("epoch %d: test top-1 %.2f%%, top-5 %.2f%% on %d videos", epoch + 1,
                    result.top1, result.top5, result.num_videos)
        if logs is not None:
            logs["val_top1"] = result.top1 / 100.0
            logs["val_top5"] = result.top5 / 100.0


class FinetuneHistoryPlot(HistoryPlot):
    """Redraws history.png (losses; train accuracy, test top-1/top-5) from history.csv."""

    def on_epoch_end(self, epoch, logs=None):
        plot_finetune_history(read_history(self.csv_path), self.png_path)


def plot_finetune_history(rows: Sequence[dict], png_path,
                          panels=FINETUNE_PANELS) -> Optional[pathlib.Path]:
    """Draws `panels` of the history rows vs epoch into a PNG (Agg, no display).

    Columns a row lacks are left out (e.g. test accuracy on epochs without a
    test); returns the path, or None when there are no rows.
    """
    # The object-oriented Figure API with an Agg canvas touches no global
    # pyplot state.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not rows:
        return None
    figure = Figure(figsize=(5 * len(panels), 4), dpi=100)
    FigureCanvasAgg(figure)
    for index, (title, columns) in enumerate(panels):
        axes = figure.add_subplot(1, len(panels), index + 1)
        for name, scale in columns:
            points = [(row["epoch"], scale * row[name]) for row in rows if name in row]
            if points:
                axes.plot(*zip(*points), "--" if name.startswith("val_") else "-", marker="o",
                          markersize=3, label=name)
        axes.set_xlabel("epoch")
        axes.set_title(title)
        axes.grid(alpha=0.3)
        if axes.get_legend_handles_labels()[0]:
            axes.legend(fontsize=8)
    figure.tight_layout()
    png_path = pathlib.Path(png_path)
    tmp = png_path.with_name(png_path.name + ".tmp.png")
    figure.savefig(tmp)
    os.replace(tmp, png_path)
    return png_path

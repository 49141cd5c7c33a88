"""A run's history: ``history.csv`` (one row per epoch, kept across resumes) and
``history.png`` (its curves), the callbacks that write them and their reader.

Split from :mod:`tfcmvp.training.callbacks`, which still exports these names.
"""

from __future__ import annotations

import csv
import os
import pathlib
import time
from typing import Iterable, Optional, Sequence

import keras
import numpy as np

# Columns history.csv always has, in this order; other logged values follow.
HISTORY_COLUMNS = (
    "epoch",
    "step",
    "loss",
    "context_loss",
    "motion_loss",
    "context_acc",
    "motion_acc",
    "lr",
    "seconds",
)
# history.png: (title, [(column, scale)]) per panel; "val_" columns are dashed.
HISTORY_PANELS = (
    (
        "loss",
        tuple(
            (prefix + key, 1.0)
            for key in ("loss", "context_loss", "motion_loss")
            for prefix in ("", "val_")
        ),
    ),
    (
        "pretext top-1 accuracy",
        tuple(
            (prefix + key, 1.0) for key in ("context_acc", "motion_acc") for prefix in ("", "val_")
        ),
    ),
)


class HistoryCSV(keras.callbacks.Callback):
    """One row per finished epoch in a CSV file, kept across resumes.

    Rows are keyed by the 1-based epoch number: finishing epoch e drops any
    rows for epochs >= e (left by a run that was killed after writing its row
    but before its checkpoint) and appends the new one, so a resumed run never
    duplicates an epoch. The file is rewritten whole and replaced atomically.
    Columns: `columns` (:data:`HISTORY_COLUMNS` for pretraining), then any
    other logged value (e.g. validation metrics) in sorted order.
    """

    def __init__(self, path, columns: Sequence[str] = HISTORY_COLUMNS):
        super().__init__()
        self.path = pathlib.Path(path)
        self.columns = tuple(columns)
        self._start = time.monotonic()

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        row = {key: _to_float(value) for key, value in (logs or {}).items()}
        row["epoch"] = epoch + 1
        row["step"] = int(self.model.optimizer.iterations.numpy())
        row["seconds"] = round(time.monotonic() - self._start, 3)
        rows = [r for r in read_history(self.path) if int(r["epoch"]) < epoch + 1]
        rows.append(row)
        write_history(self.path, rows, self.columns)


def read_history(path) -> list[dict]:
    """Rows of a history.csv as dicts of floats ("epoch" and "step" as int)."""
    path = pathlib.Path(path)
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as f:
        rows = []
        for raw in csv.DictReader(f):
            row = {}
            for key, value in raw.items():
                if value in ("", None):
                    continue
                row[key] = int(float(value)) if key in ("epoch", "step") else float(value)
            rows.append(row)
    return rows


def write_history(path, rows: Iterable[dict], columns: Sequence[str] = HISTORY_COLUMNS) -> None:
    """Writes history rows to a CSV file, atomically: `columns` first, then any
    other key of the rows in sorted order; a value a row lacks is left empty."""
    rows = list(rows)
    extra = sorted({key for row in rows for key in row} - set(columns))
    columns = list(columns) + extra
    path = pathlib.Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({key: row.get(key, "") for key in columns})
    os.replace(tmp, path)


def _to_float(value) -> float:
    return float(np.asarray(value))


class HistoryPlot(keras.callbacks.Callback):
    """Redraws a PNG of history.csv's `panels` vs epoch (see :func:`plot_history`)."""

    def __init__(self, csv_path, png_path, panels=HISTORY_PANELS):
        super().__init__()
        self.csv_path = pathlib.Path(csv_path)
        self.png_path = pathlib.Path(png_path)
        self.panels = panels

    def on_epoch_end(self, epoch, logs=None):
        plot_history(read_history(self.csv_path), self.png_path, self.panels)


def plot_history(rows: Sequence[dict], png_path, panels=HISTORY_PANELS) -> Optional[pathlib.Path]:
    """Draws `panels` of the history rows vs epoch into a PNG (Agg, no display).

    `panels` holds (title, [(column, scale)]) per panel (default: losses and
    pretext top-1 accuracies); "val_" columns are dashed. Columns a row lacks
    are left out (e.g. test accuracy on epochs without a test); returns the
    path, or None when there are no rows.
    """
    # The object-oriented Figure API with an Agg canvas touches no global
    # pyplot state, so it is safe in a process that also runs other plots.
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
                axes.plot(
                    *zip(*points),
                    "--" if name.startswith("val_") else "-",
                    marker="o",
                    markersize=3,
                    label=name,
                )
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

"""``tfcmvp search --png``: the query and its results as one picture.

Columns: the query, then its results in rank order (captioned with rank,
cosine similarity and file name). Rows: first frames; for ``--by motion``
a second row with each video's motion-vector map
(:mod:`tfcmvp.search.thumbnails`), since that is what the ranking looked at.
A video without a stored thumbnail gets an empty panel.
"""

from __future__ import annotations

import io
import os
import pathlib

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from tfcmvp.retrieval.report import frame_panel
from tfcmvp.search import thumbnails as thumbs_lib
from tfcmvp.search.query import SearchResult

QUERY_COLOR = "0.3"


def _panel(ax, image, caption: str, border) -> None:
    if image is not None:
        ax.imshow(image, interpolation="nearest")
    else:
        ax.set_facecolor("0.92")
        ax.text(0.5, 0.5, "no picture", ha="center", va="center", fontsize=6, color="0.5")
    frame_panel(ax, border, caption, linewidth=3, fontsize=6)


def _name(path: str, width: int = 24) -> str:
    name = os.path.basename(path)  # no spaces to break at: cut the middle
    return (
        name if len(name) <= width else name[: width // 2 - 1] + "..." + name[-(width // 2 - 2) :]
    )


def plot_search(png, result: SearchResult, query_pictures: dict, *, dpi: int = 100):
    """Saves the grid of `result` to `png`; returns the matplotlib Figure.

    ``query_pictures``: ``{"frame": uint8 [h, w, 3], "motion": ...}`` of the
    query (missing kinds are drawn empty).
    """
    kinds = ("frame", "motion") if result.by == "motion" else ("frame",)
    columns = 1 + len(result.rows)
    fig = Figure(figsize=(1.45 * columns, 1.25 * len(kinds) + 0.35), dpi=dpi)
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(kinds), columns, squeeze=False)  # [kinds, 1 + k]
    for line, kind in enumerate(kinds):
        label = "" if line else f"query\n{_name(result.query)}"
        _panel(axes[line, 0], query_pictures.get(kind), label, QUERY_COLOR)
        for rank, (row, score) in enumerate(zip(result.rows, result.scores), start=1):
            image = thumbs_lib.read_thumbnail(result.index.thumbnail(int(row), kind))
            caption = (
                ""
                if line
                else f"#{rank} {float(score):.3f}\n{_name(result.index.entries[int(row)].path)}"
            )
            _panel(axes[line, rank], image, caption, None)
    if len(kinds) > 1:
        axes[1, 0].set_ylabel("motion", fontsize=7)
        axes[0, 0].set_ylabel("first frame", fontsize=7)
    fig.suptitle(
        f"tfcmvp search --by {result.by} ({result.network} network)"
        + (", query excluded from its results" if result.query_row is not None else ""),
        fontsize=8,
    )
    fig.tight_layout()
    png = pathlib.Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    tmp = png.with_name(png.name + ".tmp")
    fig.savefig(tmp, format="png", dpi=dpi)
    os.replace(tmp, png)  # never half a file at PNG
    return fig


def query_pictures(path, with_motion: bool, mv_cell: int = 8) -> dict:
    """The query's pictures as arrays (empty dict when it cannot be decoded)."""
    try:
        data = thumbs_lib.video_thumbnails(path, with_motion, mv_cell=mv_cell)
    except Exception:  # noqa: BLE001 - the ranking stands; the panel is drawn empty
        return {}
    return {k: np.asarray(Image.open(io.BytesIO(v)).convert("RGB")) for k, v in data.items()}

"""The Figure-1-style picture of one compressed video: :func:`plot_video`.

Three rows of panels (decoded frames, the I-frames the stream stores in full,
the motion vectors it stores for the other frames), a colour-wheel legend and
a strip of every frame's picture type. Colours, statistics and the choice of
frames are :mod:`tfcmvp.inspection`'s.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Optional

import numpy as np
from matplotlib.figure import Figure  # a bare Figure renders with Agg, pyplot untouched

from tfcmvp.codec import DEFAULT_MV_CELL, CompressedVideo, read_video
from tfcmvp.inspection import choose_frames, colour_wheel, flow_colours, motion_stats

ROW_NAMES = ("decoded frames", "stored I-frames", "motion vectors")
# Picture type -> colour of the GOP strip.
PALETTE = {"I": (0.75, 0.05, 0.05), "P": (0.55, 0.7, 0.9), "B": (0.45, 0.75, 0.45)}


@dataclasses.dataclass
class _VectorView:
    """The shown frames' vectors and how they are drawn (colour scale, arrows)."""

    vectors: np.ndarray  # [N, Hc, Wc, 2] of the shown frames
    scale: float  # |v| in px drawn at full brightness
    extent: tuple  # imshow extent of the vector raster, in pixels
    gain: float  # arrow magnification
    centres: tuple  # (x, y) pixel centres of the arrow cells


def _vector_view(video: CompressedVideo, shown, mv_cell: int, arrow_step: int) -> _VectorView:
    vectors = video.motion_vectors[shown]  # [N, Hc, Wc, 2]
    magnitude = np.hypot(vectors[..., 0], vectors[..., 1])
    moving = magnitude[magnitude > 0]
    # Full brightness at the 95th percentile: a few outliers would darken everything else.
    scale = float(np.percentile(moving, 95)) if len(moving) else 1.0
    scale = max(scale, 0.5)
    cells_y, cells_x = vectors.shape[1:3]
    extent = (-0.5, cells_x * mv_cell - 0.5, cells_y * mv_cell - 0.5, -0.5)
    # Arrows: magnified so that the largest shown vector spans about 1.5 arrow spacings.
    gain = 1.5 * arrow_step * mv_cell / scale
    ay, ax = np.mgrid[0:cells_y:arrow_step, 0:cells_x:arrow_step]
    centres = (ax * mv_cell + (mv_cell - 1) / 2.0, ay * mv_cell + (mv_cell - 1) / 2.0)
    return _VectorView(vectors, scale, extent, gain, centres)


def _panels(fig, grid, column: int) -> list:
    panels = [fig.add_subplot(grid[row, column]) for row in range(3)]
    for panel in panels:
        panel.set_xticks([])
        panel.set_yticks([])
        for spine in panel.spines.values():
            spine.set_linewidth(0.5)
            spine.set_color("#888888")
    return panels


def _draw_stored(panel, image: np.ndarray, kind: str) -> None:
    """Row (b): the I-frame as stored, or a faded predicted frame with its type."""
    if kind == "I":
        panel.imshow(image, interpolation="nearest")
        for spine in panel.spines.values():
            spine.set_color("#b00000")
            spine.set_linewidth(1.5)
        return
    grey = image.mean(axis=-1, keepdims=True).repeat(3, axis=-1) / 255.0
    panel.imshow(0.82 + 0.18 * grey, interpolation="nearest")
    _note(panel, f"{kind}-frame\nnot stored", "#555555")


def _note(panel, text: str, color: str) -> None:
    """``text`` in the middle of ``panel``, over whatever it shows."""
    panel.text(
        0.5, 0.5, text, transform=panel.transAxes, ha="center", va="center", fontsize=8, color=color
    )


def _draw_vectors(panel, view: _VectorView, column: int, kind: str, arrow_step: int) -> None:
    """Row (c): flow colours, and arrows on every ``arrow_step``-th cell of a predicted frame."""
    panel.imshow(
        flow_colours(view.vectors[column], view.scale), extent=view.extent, interpolation="nearest"
    )
    if kind == "I":
        _note(panel, "I-frame:\nno vectors", "#bbbbbb")
        return
    v = view.vectors[column, ::arrow_step, ::arrow_step]  # [hy, hx, 2]
    keep = np.hypot(v[..., 0], v[..., 1]) > 0
    centres_x, centres_y = view.centres
    panel.quiver(
        centres_x[keep],
        centres_y[keep],
        v[..., 0][keep] * view.gain,
        v[..., 1][keep] * view.gain,
        angles="xy",
        scale_units="xy",
        scale=1.0,
        color="white",
        width=0.012,
        headwidth=3.5,
        headlength=4,
        edgecolor="black",
        linewidth=0.3,
    )


def _draw_column(fig, grid, video, view: _VectorView, column: int, index: int, arrow_step):
    kind = video.frame_types[index]
    image = video.frames[index]  # [H, W, 3]
    panels = _panels(fig, grid, column)
    panels[0].imshow(image, interpolation="nearest")
    panels[0].set_title(
        f"frame {index} ({kind})", fontsize=8, color="#b00000" if kind == "I" else "black"
    )
    _draw_stored(panels[1], image, kind)
    _draw_vectors(panels[2], view, column, kind, arrow_step)
    extent = view.extent
    panels[2].set_xlim(extent[0], min(extent[1], video.width - 0.5))
    panels[2].set_ylim(min(extent[2], video.height - 0.5), extent[3])
    if column == 0:
        for panel, name in zip(panels, ROW_NAMES):
            panel.set_ylabel(name, fontsize=8)


def _draw_legend(fig, grid, columns: int, video, view: _VectorView) -> None:
    """The colour wheel and the video's facts, in the extra column."""
    legend = fig.add_subplot(grid[2, columns])
    legend.imshow(colour_wheel(), extent=(-1, 1, 1, -1))
    for angle, label in ((0, "right"), (90, "up"), (180, "left"), (270, "down")):
        x, y = 1.25 * math.cos(math.radians(angle)), -1.25 * math.sin(math.radians(angle))
        legend.text(x, y, label, ha="center", va="center", fontsize=6)
    legend.set_xlim(-1.6, 1.6)
    legend.set_ylim(1.6, -1.6)
    legend.set_axis_off()
    legend.set_title(f"direction\nbrightness: |v| (full at {view.scale:.1f} px)", fontsize=7)
    info = fig.add_subplot(grid[0:2, columns])
    info.set_axis_off()
    stats = motion_stats(video)
    info.text(
        0.05,
        0.95,
        f"{video.codec}\n{video.width}x{video.height}\n{video.fps:.2f} fps\n"
        f"{video.num_frames} frames\n"
        f"I {video.frame_types.count('I')}  P {video.frame_types.count('P')}  "
        f"B {video.frame_types.count('B')}\n\n"
        f"vectors on {100 * stats.covered:.0f} %\nof cells; mean |v|\n"
        f"{stats.mean_magnitude:.2f} px\n\narrows x{view.gain:.1f}",
        transform=info.transAxes,
        ha="left",
        va="top",
        fontsize=7,
        family="monospace",
    )


def _draw_gop_strip(fig, grid, columns: int, video, shown) -> None:
    """One coloured tick per frame, the shown frames marked."""
    strip = fig.add_subplot(grid[3, :columns])
    colours = np.array([[PALETTE[t] for t in video.frame_types]])  # [1, T, 3]
    strip.imshow(
        colours,
        aspect="auto",
        interpolation="nearest",
        extent=(-0.5, video.num_frames - 0.5, 0.5, -0.5),
    )
    for index in shown:
        strip.plot([index], [0], marker="v", color="black", markersize=3)
    strip.set_yticks([])
    strip.set_xlim(-0.5, video.num_frames - 0.5)
    strip.tick_params(axis="x", labelsize=6, length=2, pad=1)
    strip.set_ylabel("GOP", fontsize=7, rotation=0, ha="right", va="center")
    for offset, letter in enumerate("IPB"):
        strip.text(
            1.004 + 0.012 * offset,
            0.5,
            letter,
            transform=strip.transAxes,
            fontsize=7,
            va="center",
            ha="left",
            weight="bold",
            color=PALETTE[letter],
        )


def plot_video(
    path,
    png_path,
    *,
    columns: int = 8,
    start: Optional[int] = None,
    stride: Optional[int] = None,
    mv_cell: int = DEFAULT_MV_CELL,
    panel_width: float = 1.8,
    dpi: int = 100,
    arrow_step: int = 2,
) -> tuple:
    """Draw the decoded frames, the I-frames and the motion vectors of one video (PNG).

    Rows: (a) the decoded frames; (b) what the stream stores in full: the
    I-frames (predicted frames are shown faded, with their type); (c) the
    motion vectors of each frame as HSV flow colours (hue = direction,
    brightness = magnitude, the colour wheel on the right is the legend) with
    arrows on every ``arrow_step``-th cell, magnified for visibility. A strip at
    the bottom shows the picture type of every frame of the video and marks
    the frames shown.

    Args:
      path: the video file.
      png_path: output PNG.
      columns: frames shown (see :func:`choose_frames` for which).
      start, stride: first frame and spacing; None chooses automatically.
      mv_cell: motion-vector raster cell in pixels.
      panel_width: width of one frame panel in inches.
      dpi: resolution.
      arrow_step: draw an arrow on every this many cells in x and y.

    Returns:
      ``(width, height)`` of the PNG in pixels: ``width = round((columns + 1)
      * panel_width * dpi)``, ``height = round((3 * panel_width * H / W +
      1.25) * dpi)`` for an H x W video.

    Raises:
      tfcmvp.codec.VideoError: the file cannot be read.
    """
    video = read_video(path, rgb=True, mv_cell=mv_cell)
    shown = choose_frames(video.frame_types, columns, start, stride)
    aspect = video.height / video.width
    width_px = int(round((columns + 1) * panel_width * dpi))
    height_px = int(round((3 * panel_width * aspect + 1.25) * dpi))
    fig = Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
    # Rows of panels, then the GOP strip; one extra column for the legend.
    grid = fig.add_gridspec(
        4,
        columns + 1,
        height_ratios=[panel_width * aspect] * 3 + [0.18],
        left=0.05,
        right=0.995,
        top=1 - 0.55 / (height_px / dpi),
        bottom=0.35 / (height_px / dpi),
        wspace=0.04,
        hspace=0.12,
    )
    view = _vector_view(video, shown, mv_cell, arrow_step)
    for column, index in enumerate(shown):
        _draw_column(fig, grid, video, view, column, index, arrow_step)
    _draw_legend(fig, grid, columns, video, view)
    _draw_gop_strip(fig, grid, columns, video, shown)
    fig.suptitle(
        f"{os.path.basename(os.fspath(path))}: decoded stream (a) vs compressed stream "
        f"(b: I-frames, c: motion vectors)",
        fontsize=9,
        y=1 - 0.12 / (height_px / dpi),
        va="top",
    )
    fig.savefig(png_path, dpi=dpi)
    return width_px, height_px

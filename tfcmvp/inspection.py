"""Looking inside one compressed video: a text report and a Figure-1-style picture.

:func:`describe_video` reports what the rest of the pipeline relies on (codec,
size, frame rate, the GOP structure against the CoViAR layout, and how much of
the frame the motion vectors cover); :func:`plot_video` draws, like Figure 1
of the paper, the decoded frames, the I-frames the compressed stream stores in
full, and the motion vectors it stores for the other frames.
"""

from __future__ import annotations

import dataclasses
import math
import os
import textwrap
from typing import Optional, Sequence

import numpy as np

from tfcmvp.codec import DEFAULT_MV_CELL, CompressedVideo, check_gop, read_video

# Cells whose vector is shorter than this (px) count as "no motion".
_MOVING = 0.25
# Lines of run-length GOP summary shown before eliding the rest.
_SUMMARY_LINES = 6


@dataclasses.dataclass(frozen=True)
class MotionStats:
    """Motion-vector statistics over the predicted (P and B) frames.

    Attributes:
      predicted_frames: number of P and B frames.
      covered: fraction of their cells with a non-zero vector.
      moving: fraction of their cells with ``|v| >= 0.25`` px.
      mean_magnitude: mean ``|v|`` (px per reference distance) over covered cells.
      p99_magnitude: 99th percentile of ``|v|`` over covered cells.
      mean_vector: mean ``(vx, vy)`` over covered cells (global drift).
    """

    predicted_frames: int
    covered: float
    moving: float
    mean_magnitude: float
    p99_magnitude: float
    mean_vector: tuple


def motion_stats(video: CompressedVideo) -> MotionStats:
    """:class:`MotionStats` of ``video`` (zeros when it has no predicted frame)."""
    predicted = np.array([t != "I" for t in video.frame_types])
    vectors = video.motion_vectors[predicted].reshape(-1, 2)  # [N, 2] (x, y)
    if not len(vectors):
        return MotionStats(0, 0.0, 0.0, 0.0, 0.0, (0.0, 0.0))
    magnitude = np.hypot(vectors[:, 0], vectors[:, 1])  # [N]
    covered = np.any(vectors != 0, axis=1)
    on = magnitude[covered]
    return MotionStats(
        predicted_frames=int(predicted.sum()),
        covered=float(covered.mean()),
        moving=float((magnitude >= _MOVING).mean()),
        mean_magnitude=float(on.mean()) if len(on) else 0.0,
        p99_magnitude=float(np.percentile(on, 99)) if len(on) else 0.0,
        mean_vector=tuple(float(v) for v in vectors[covered].mean(0)) if len(on) else (0.0, 0.0),
    )


def describe_video(path, mv_cell: int = DEFAULT_MV_CELL, gop: int = 12) -> str:
    """A text report on one video.

    Args:
      path: the video file.
      mv_cell: raster cell (px) for the motion-vector statistics.
      gop: the I-frame spacing to check the stream against (12: CoViAR).

    Returns:
      Several lines: codec, size, frame rate, frame count, picture-type
      counts, the GOP pattern as a run-length summary (one "|"-group per
      GOP) with its deviations from "I every ``gop``, no B", and the
      motion-vector statistics of :func:`motion_stats`.

    Raises:
      tfcmvp.codec.VideoError: the file cannot be read (names file and cause).
    """
    video = read_video(path, mv_cell=mv_cell)
    report = check_gop(video.frame_types, gop)
    stats = motion_stats(video)
    counts = {letter: video.frame_types.count(letter) for letter in "IPB"}
    iframes = [int(i) for i in video.iframe_indices]
    spacing = sorted(set(np.diff(iframes).tolist())) if len(iframes) > 1 else []
    cells_y, cells_x = video.motion_vectors.shape[1:3]

    lines = [
        f"file:        {os.fspath(path)}",
        f"codec:       {video.codec}, {video.width}x{video.height}, {video.fps:.3f} fps, "
        f"{video.num_frames} frames ({video.num_frames / video.fps:.2f} s)",
        f"frame types: I {counts['I']}, P {counts['P']}, B {counts['B']}; "
        f"I-frames at {_short_list(iframes)}"
        + (f" (spacing {', '.join(map(str, spacing))})" if spacing else ""),
        f"pattern:     {_ellipsis(video.frame_types, 72)}",
        "GOP summary:",
    ]
    lines += _wrapped(report.summary, _SUMMARY_LINES)
    layout = f"the CoViAR layout (an I-frame every {gop}, P between, no B)"
    if report.ok:
        lines.append(f"GOP check:   matches {layout}")
    else:
        lines.append(f"GOP check:   departs from {layout}:")
        lines += [f"  - {deviation}" for deviation in report.deviations]
    if video.one_past_reference:
        lines.append("one-frame vectors: yes (every vector spans exactly one frame)")
    else:
        lines.append(
            "one-frame vectors: no (B-frames or several reference frames: vectors may "
            "span 2+ frames; re-encode for CoViAR-style input)"
        )
    lines += [
        f"motion vectors ({mv_cell}-px cells, {cells_x}x{cells_y} per frame, "
        f"{stats.predicted_frames} predicted frames):",
        f"  cells with a vector: {100 * stats.covered:.1f} %   moving (|v| >= {_MOVING} px): "
        f"{100 * stats.moving:.1f} %",
        f"  mean |v| {stats.mean_magnitude:.2f} px, 99th percentile {stats.p99_magnitude:.2f} px, "
        f"mean vector ({stats.mean_vector[0]:+.2f}, {stats.mean_vector[1]:+.2f}) px "
        "(x right, y down)",
    ]
    return "\n".join(lines)


def _short_list(values: Sequence[int], limit: int = 8) -> str:
    if not values:
        return "none"
    shown = ", ".join(str(v) for v in values[:limit])
    return shown + (f", ... ({len(values)} in all)" if len(values) > limit else "")


def _ellipsis(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} frames)"


def _wrapped(summary: str, max_lines: int) -> list:
    lines = textwrap.wrap(summary, width=96, break_on_hyphens=False)
    if len(lines) > max_lines:
        lines = lines[:max_lines] + [f"... ({len(summary.split('|'))} GOPs in all)"]
    return ["  " + line for line in lines]


# ---------------------------------------------------------------------------
# Figure.


def flow_colours(vectors: np.ndarray, max_magnitude: float) -> np.ndarray:
    """HSV flow colouring: hue = direction, value = magnitude; float RGB ``[..., 3]`` in [0, 1].

    Args:
      vectors: float ``[..., 2]`` (x right, y down) in px.
      max_magnitude: the magnitude shown at full brightness (larger clips).

    Hue follows the direction on screen, counter-clockwise from "right" =
    red through "up" (y < 0) = yellow-green, "left" = cyan, "down" = blue-
    magenta; zero vectors are black.
    """
    vx, vy = vectors[..., 0], vectors[..., 1]
    hue = (np.arctan2(-vy, vx) / (2 * np.pi)) % 1.0  # screen angle, y down
    value = np.clip(np.hypot(vx, vy) / max(max_magnitude, 1e-6), 0.0, 1.0)
    return _hsv_to_rgb(hue, np.ones_like(hue), value)


def _hsv_to_rgb(h, s, v):
    # matplotlib.colors.hsv_to_rgb, without importing matplotlib here.
    i = np.floor(h * 6.0).astype(np.int64) % 6
    f = h * 6.0 - np.floor(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    r = np.choose(i, [v, q, p, p, t, v])
    g = np.choose(i, [t, v, v, q, p, p])
    b = np.choose(i, [p, p, t, v, v, q])
    return np.stack([r, g, b], axis=-1)


def colour_wheel(size: int = 101) -> np.ndarray:
    """RGBA ``[size, size, 4]`` legend of :func:`flow_colours` (transparent outside the disc)."""
    half = (size - 1) / 2.0
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    vectors = np.stack([(xx - half) / half, (yy - half) / half], axis=-1)  # [size, size, 2]
    rgb = flow_colours(vectors, 1.0)
    inside = np.hypot(vectors[..., 0], vectors[..., 1]) <= 1.0
    return np.concatenate([rgb, inside[..., None].astype(np.float64)], axis=-1)


def choose_frames(
    frame_types: str, columns: int, start: Optional[int] = None, stride: Optional[int] = None
) -> list:
    """Display indices of the frames to show.

    Defaults: a stride of a quarter of the typical I-frame spacing, so that
    the row spans two GOPs and shows two I-frames (with a single I-frame:
    the row spreads over the whole video), but never so long that the row
    runs past the end; the row starts at the second I-frame when it still
    fits there, else at the first.
    """
    total = len(frame_types)
    iframes = [i for i, t in enumerate(frame_types) if t == "I"]
    if stride is None:
        spread = max(1, (total - 1) // max(columns - 1, 1))  # the row spans the video
        spacing = int(np.median(np.diff(iframes))) if len(iframes) > 1 else 4 * spread
        stride = max(1, min(spacing // 4, spread))
    if start is None:
        span = (columns - 1) * stride
        fitting = [i for i in iframes if i + span < total]
        start = fitting[1] if len(fitting) > 1 else (fitting[0] if fitting else 0)
    if not 0 <= start < total:
        raise ValueError(f"start={start} lies outside the video's {total} frames")
    return [i for i in range(start, total, stride)][:columns]


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
    # A bare Figure renders with Agg and leaves pyplot's global state alone.
    from matplotlib.figure import Figure

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
    centres_x, centres_y = ax * mv_cell + (mv_cell - 1) / 2.0, ay * mv_cell + (mv_cell - 1) / 2.0
    row_names = ("decoded frames", "stored I-frames", "motion vectors")

    for column, index in enumerate(shown):
        kind = video.frame_types[index]
        image = video.frames[index]  # [H, W, 3]
        panels = [fig.add_subplot(grid[row, column]) for row in range(3)]
        for panel in panels:
            panel.set_xticks([])
            panel.set_yticks([])
            for spine in panel.spines.values():
                spine.set_linewidth(0.5)
                spine.set_color("#888888")
        panels[0].imshow(image, interpolation="nearest")
        panels[0].set_title(
            f"frame {index} ({kind})", fontsize=8, color="#b00000" if kind == "I" else "black"
        )
        if kind == "I":
            panels[1].imshow(image, interpolation="nearest")
            for spine in panels[1].spines.values():
                spine.set_color("#b00000")
                spine.set_linewidth(1.5)
        else:
            grey = image.mean(axis=-1, keepdims=True).repeat(3, axis=-1) / 255.0
            panels[1].imshow(0.82 + 0.18 * grey, interpolation="nearest")
            panels[1].text(
                0.5,
                0.5,
                f"{kind}-frame\nnot stored",
                transform=panels[1].transAxes,
                ha="center",
                va="center",
                fontsize=8,
                color="#555555",
            )
        panels[2].imshow(
            flow_colours(vectors[column], scale), extent=extent, interpolation="nearest"
        )
        if kind == "I":
            panels[2].text(
                0.5,
                0.5,
                "I-frame:\nno vectors",
                transform=panels[2].transAxes,
                ha="center",
                va="center",
                fontsize=8,
                color="#bbbbbb",
            )
        else:
            v = vectors[column, ::arrow_step, ::arrow_step]  # [hy, hx, 2]
            keep = np.hypot(v[..., 0], v[..., 1]) > 0
            panels[2].quiver(
                centres_x[keep],
                centres_y[keep],
                v[..., 0][keep] * gain,
                v[..., 1][keep] * gain,
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
        panels[2].set_xlim(extent[0], min(extent[1], video.width - 0.5))
        panels[2].set_ylim(min(extent[2], video.height - 0.5), extent[3])
        if column == 0:
            for panel, name in zip(panels, row_names):
                panel.set_ylabel(name, fontsize=8)

    # Legend: the colour wheel.
    legend = fig.add_subplot(grid[2, columns])
    legend.imshow(colour_wheel(), extent=(-1, 1, 1, -1))
    for angle, label in ((0, "right"), (90, "up"), (180, "left"), (270, "down")):
        x, y = 1.25 * math.cos(math.radians(angle)), -1.25 * math.sin(math.radians(angle))
        legend.text(x, y, label, ha="center", va="center", fontsize=6)
    legend.set_xlim(-1.6, 1.6)
    legend.set_ylim(1.6, -1.6)
    legend.set_axis_off()
    legend.set_title(f"direction\nbrightness: |v| (full at {scale:.1f} px)", fontsize=7)
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
        f"{stats.mean_magnitude:.2f} px\n\narrows x{gain:.1f}",
        transform=info.transAxes,
        ha="left",
        va="top",
        fontsize=7,
        family="monospace",
    )

    # GOP strip: one coloured tick per frame.
    strip = fig.add_subplot(grid[3, :columns])
    palette = {"I": (0.75, 0.05, 0.05), "P": (0.55, 0.7, 0.9), "B": (0.45, 0.75, 0.45)}
    colours = np.array([[palette[t] for t in video.frame_types]])  # [1, T, 3]
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
            color=palette[letter],
        )
    fig.suptitle(
        f"{os.path.basename(os.fspath(path))}: decoded stream (a) vs compressed stream "
        f"(b: I-frames, c: motion vectors)",
        fontsize=9,
        y=1 - 0.12 / (height_px / dpi),
        va="top",
    )
    fig.savefig(png_path, dpi=dpi)
    return width_px, height_px

"""Looking inside one compressed video: a text report and a Figure-1-style picture.

:func:`describe_video` reports what the rest of the pipeline relies on (codec,
size, frame rate, the GOP structure against the CoViAR layout, and how much of
the frame the motion vectors cover); :func:`tfcmvp.inspection_figure.plot_video` draws, like
Figure 1 of the paper, the decoded frames, the I-frames the compressed stream
stores in full, and the motion vectors it stores for the other frames, with
this module's colours (:func:`flow_colours`) and frame choice
(:func:`choose_frames`).
"""

from __future__ import annotations

import dataclasses
import os
import textwrap
from typing import Optional, Sequence

import numpy as np

from tfcmvp.codec import DEFAULT_MV_CELL, CompressedVideo, check_gop, read_video
from tfcmvp.errors import ConfigError

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
        raise ConfigError(f"start={start} lies outside the video's {total} frames")
    return [i for i in range(start, total, stride)][:columns]

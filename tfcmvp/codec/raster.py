"""Motion-vector blocks -> a dense grid of cells: :func:`rasterize_blocks`.

A decoder exports one vector per predicted block (16x16 .. 8x8 on FFmpeg 8).
Each block covers a ``w x h`` rectangle; the grid divides the frame into
``c x c`` cells (the last row/column is cut by the frame edge when H or W is
not a multiple of c). A cell gets the area-weighted mean of the vectors of
all blocks that overlap it, counting only the part of each block inside the
frame; a cell no block covers (intra blocks, I-frames) gets zero. Two vectors
on the same block (bi-prediction) are two equal-area coverages, so the cell
gets their mean.

The computation is vectorised over all blocks of many frames at once: each
block spans at most ``Ky x Kx`` cells, the per-cell overlaps are separable
(``overlap_y * overlap_x``), and ``np.bincount`` sums weights and weighted
vectors per cell. There is no Python loop over vectors or frames.
"""

from __future__ import annotations

import numpy as np

# FFmpeg's AVMotionVector as PyAV's MotionVectors.to_ndarray() returns it.
MOTION_VECTOR_DTYPE = np.dtype(
    [
        ("source", "<i4"),
        ("w", "u1"),
        ("h", "u1"),
        ("src_x", "<i2"),
        ("src_y", "<i2"),
        ("dst_x", "<i2"),
        ("dst_y", "<i2"),
        ("flags", "<u8"),
        ("motion_x", "<i4"),
        ("motion_y", "<i4"),
        ("motion_scale", "<u2"),
    ],
    align=True,
)


def grid_shape(height: int, width: int, cell: int) -> tuple:
    """``(ceil(height / cell), ceil(width / cell))``."""
    return (-(-int(height) // cell), -(-int(width) // cell))


def _axis_overlaps(start, stop, cell, num_cells):
    """Per-block cell indices and overlap lengths along one axis.

    Args:
      start, stop: int64 ``[N]`` block extent, already clipped to the frame
        (``stop > start``).
    Returns:
      index int64 ``[N, K]`` cell indices (clamped to a valid cell where the
      overlap is zero) and overlap int64 ``[N, K]`` in pixels.
    """
    first = start // cell  # [N]
    span = (stop - 1) // cell - first + 1  # [N] cells touched
    offsets = np.arange(int(span.max()), dtype=np.int64)  # [K]
    index = first[:, None] + offsets  # [N, K]
    overlap = np.minimum(stop[:, None], (index + 1) * cell) - np.maximum(
        start[:, None], index * cell
    )  # [N, K]
    overlap = np.maximum(overlap, 0)
    return np.minimum(index, num_cells - 1), overlap


def rasterize_blocks(
    frame_index,
    left,
    top,
    width,
    height,
    vx,
    vy,
    num_frames: int,
    frame_height: int,
    frame_width: int,
    cell: int,
) -> np.ndarray:
    """Area-weighted mean of block vectors per grid cell.

    Args:
      frame_index: int ``[N]`` frame (0 .. num_frames-1) of each block.
      left, top: int ``[N]`` top-left corner of each block in pixels (may lie
        outside the frame).
      width, height: int ``[N]`` block size in pixels.
      vx, vy: float ``[N]`` the block's vector (x, y) in pixels.
      num_frames: T, number of frames of the output.
      frame_height, frame_width: frame size in pixels.
      cell: c, the grid cell size in pixels.

    Returns:
      float32 ``[T, ceil(H/c), ceil(W/c), 2]``, x then y; zero where no block
      covers a cell.
    """
    if cell < 1:
        raise ValueError(f"cell must be a positive number of pixels, got {cell!r}")
    rows, cols = grid_shape(frame_height, frame_width, cell)
    out = np.zeros((num_frames, rows, cols, 2), np.float32)  # [T, Hc, Wc, 2]
    frame_index = np.asarray(frame_index, np.int64)
    if frame_index.size == 0:
        return out
    if frame_index.min() < 0 or frame_index.max() >= num_frames:
        raise ValueError(
            f"frame_index must lie in [0, {num_frames}), got "
            f"[{frame_index.min()}, {frame_index.max()}]"
        )
    left = np.asarray(left, np.int64)
    top = np.asarray(top, np.int64)
    x0 = np.clip(left, 0, frame_width)
    x1 = np.clip(left + np.asarray(width, np.int64), 0, frame_width)
    y0 = np.clip(top, 0, frame_height)
    y1 = np.clip(top + np.asarray(height, np.int64), 0, frame_height)
    # Blocks wholly outside the frame (or empty) cover nothing.
    inside = (x1 > x0) & (y1 > y0)
    if not inside.all():
        frame_index, x0, x1, y0, y1 = (a[inside] for a in (frame_index, x0, x1, y0, y1))
        vx = np.asarray(vx)[inside]
        vy = np.asarray(vy)[inside]
        if frame_index.size == 0:
            return out
    col_index, col_overlap = _axis_overlaps(x0, x1, cell, cols)  # [N, Kx]
    row_index, row_overlap = _axis_overlaps(y0, y1, cell, rows)  # [N, Ky]

    weight = (row_overlap[:, :, None] * col_overlap[:, None, :]).astype(np.float64)  # [N, Ky, Kx]
    flat = (frame_index[:, None, None] * rows + row_index[:, :, None]) * cols + col_index[
        :, None, :
    ]  # [N, Ky, Kx]
    flat = flat.ravel()
    size = num_frames * rows * cols
    area = np.bincount(flat, weight.ravel(), minlength=size)  # [T*Hc*Wc]
    sum_x = np.bincount(flat, (weight * np.asarray(vx, np.float64)[:, None, None]).ravel(), size)
    sum_y = np.bincount(flat, (weight * np.asarray(vy, np.float64)[:, None, None]).ravel(), size)
    covered = area > 0
    mean = out.reshape(size, 2)  # view of out: [T*Hc*Wc, 2]
    mean[covered, 0] = sum_x[covered] / area[covered]
    mean[covered, 1] = sum_y[covered] / area[covered]
    return out


def forward_motion(vectors: np.ndarray):
    """FFmpeg ``AVMotionVector`` records -> forward motion (vx, vy) in pixels.

    FFmpeg defines ``src = dst + motion / motion_scale``: the block at ``dst``
    in this frame was predicted from ``src`` in the reference. For a past
    reference (``source < 0``) the content moved from src to dst, so the
    forward motion into this frame is ``dst - src = -motion / scale``. For a
    future reference (``source > 0``) the content moves from dst (here) to
    src (later): ``src - dst = +motion / scale``, i.e. ``dst - src`` negated.

    Args:
      vectors: structured array with fields source, motion_x, motion_y,
        motion_scale (as from ``MotionVectors.to_ndarray()``).
    Returns:
      float64 ``[N]`` vx, vy.
    """
    scale = np.maximum(vectors["motion_scale"], 1).astype(np.float64)  # [N]
    direction = np.where(vectors["source"] > 0, 1.0, -1.0)  # [N]
    factor = direction / scale
    return vectors["motion_x"] * factor, vectors["motion_y"] * factor


def rasterize_vectors(
    vectors: np.ndarray,
    frame_index: np.ndarray,
    num_frames: int,
    frame_height: int,
    frame_width: int,
    cell: int,
) -> np.ndarray:
    """Rasterises FFmpeg motion-vector records of several frames.

    Each record's block is ``w x h`` centred on ``(dst_x, dst_y)``.

    Args:
      vectors: structured ``[N]`` array with the ``AVMotionVector`` fields.
      frame_index: int ``[N]`` frame of each record.
    Returns:
      float32 ``[T, ceil(H/c), ceil(W/c), 2]`` forward motion, x then y.
    """
    vx, vy = forward_motion(vectors)
    w = vectors["w"].astype(np.int64)
    h = vectors["h"].astype(np.int64)
    left = vectors["dst_x"].astype(np.int64) - w // 2
    top = vectors["dst_y"].astype(np.int64) - h // 2
    return rasterize_blocks(
        frame_index, left, top, w, h, vx, vy, num_frames, frame_height, frame_width, cell
    )

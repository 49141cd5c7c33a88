"""Motion-vector blocks -> a dense grid of cells: :func:`rasterize_blocks`.

A decoder exports one vector per predicted block (16x16 .. 8x8 on FFmpeg 8).
Each block covers a ``w x h`` rectangle; the grid divides the frame into
``c x c`` cells (the last row/column is cut by the frame edge when H or W is
not a multiple of c). A cell gets the area-weighted mean of the vectors of
all blocks that overlap it, counting only the part of each block inside the
frame; a cell no block covers (intra blocks, I-frames) gets zero. Two vectors
on the same block (bi-prediction) are two equal-area coverages, so the cell
gets their mean.

The computation is vectorised over all blocks of many frames at once; there
is no Python loop over vectors or frames. Two paths give the same result:

* grid-aligned blocks (every edge on a cell edge: codec macroblocks and
  partitions on the default 8-px grid): each (block, cell) pair weighs the
  same, blocks of one shape expand to their cells by fixed index offsets,
  and where no two blocks share a cell (I/P frames) each cell simply takes
  its block's vector; otherwise ``np.bincount`` sums and counts per cell;
* any other blocks: each block spans at most ``Ky x Kx`` cells, the
  per-cell overlaps are separable (``overlap_y * overlap_x``), and
  ``np.bincount`` sums area weights and weighted vectors per cell.
"""

from __future__ import annotations

from typing import Optional

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


def _grid_aligned(left, top, width, height, cell) -> bool:
    """True when every block edge lies on a cell edge (the usual case)."""
    if cell & (cell - 1) == 0:  # power of two: one mask over all four
        return not ((left | top | width | height) & (cell - 1)).any()
    return not (
        np.bitwise_or.reduce(left % cell)
        | np.bitwise_or.reduce(top % cell)
        | np.bitwise_or.reduce(width % cell)
        | np.bitwise_or.reduce(height % cell)
    )


def _fits_int32(dtype) -> bool:
    """Whether every value of an array of this dtype fits in int32."""
    return (dtype.kind == "i" and dtype.itemsize <= 4) or (
        dtype.kind == "u" and dtype.itemsize <= 2
    )


def _rasterize_aligned(frame_index, left, top, width, height, vx, vy, rows, cols, cell, mean):
    """Writes the per-cell mean of grid-aligned blocks into ``mean`` ``[T*Hc*Wc, 2]``.

    Every block covering a cell covers all of its in-frame part, so the
    area-weighted mean is the plain mean and each (block, cell) pair weighs 1.
    A block of ``ky x kx`` cells expands to the cells ``(row0 + dy, col0 +
    dx)``; all blocks expand to the largest shape at once, with the offsets
    past a smaller block's extent (and cells past the grid edge) clamped onto
    a cell the same block does cover. Arrays keep the few offsets as leading
    axes and the N blocks last: NumPy loops over a trailing axis of 2 run about
    ten times slower.

    Where no two blocks share a cell (I and P frames), each cell takes its
    block's vector in one scatter (writing a block's vector twice to its own
    cell changes nothing). Otherwise (bi-predicted blocks) the clamped
    duplicates weigh zero and ``np.bincount`` sums and counts per cell.
    """
    size = mean.shape[0]
    row0 = top // cell  # [N] first cell of each block
    col0 = left // cell
    ky = height // cell  # [N] cells spanned
    kx = width // cell
    ky_max, kx_max = int(ky.max()), int(kx.max())
    if ky_max <= 0 or kx_max <= 0:
        return  # only empty blocks: nothing is covered
    dy = np.arange(ky_max, dtype=row0.dtype)[:, None]  # [Ky, 1]
    dx = np.arange(kx_max, dtype=col0.dtype)[:, None]  # [Kx, 1]
    row = row0 + (dy if int(ky.min()) == ky_max else np.minimum(dy, ky - 1))  # [Ky, N]
    col = col0 + (dx if int(kx.min()) == kx_max else np.minimum(dx, kx - 1))  # [Kx, N]
    # Blocks that reach past the grid (coded size > frame size) or start before
    # it, and empty blocks (whose clamped offset would be -1): indices need clipping.
    beyond = bool(
        row0.min() < 0
        or col0.min() < 0
        or (row0 + ky).max() > rows
        or (col0 + kx).max() > cols
        or ky.min() < 1
        or kx.min() < 1
    )
    if beyond:
        row = np.clip(row, 0, rows - 1)
        col = np.clip(col, 0, cols - 1)
    flat = (frame_index * rows + row)[:, None, :] * cols + col[None, :, :]  # [Ky, Kx, N]

    # Exact (block, cell) pairs: inside the block and inside the grid.
    row_ok = dy < ky  # [Ky, N]
    col_ok = dx < kx  # [Kx, N]
    if beyond:
        row_ok &= (row0 + dy >= 0) & (row0 + dy < rows)
        col_ok &= (col0 + dx >= 0) & (col0 + dx < cols)
    pairs = int((row_ok.sum(0, dtype=np.int64) * col_ok.sum(0, dtype=np.int64)).sum())
    # Clamping lands on a cell of the same block only for blocks with at
    # least one cell inside the grid; otherwise take the exact path.
    every_block_inside = bool(row_ok.any(0).all() and col_ok.any(0).all())
    if every_block_inside:
        covered = np.count_nonzero(np.bincount(flat.ravel(), minlength=size))
        if covered == pairs:  # no two blocks share a cell
            values = np.empty(vx.shape, np.complex64)  # [N] x + iy
            values.real = vx
            values.imag = vy
            mean.view(np.complex64)[:, 0][flat] = values
            return
    # 1 for an exact (block, cell) pair, 0 for a clamped duplicate: [Ky*Kx, N].
    weight = (row_ok[:, None, :] & col_ok[None, :, :]).reshape(-1, vx.shape[0]).astype(np.float64)
    flat = flat.ravel()
    count = np.bincount(flat, weight.ravel(), minlength=size)
    sum_x = np.bincount(flat, (weight * vx).ravel(), minlength=size)
    sum_y = np.bincount(flat, (weight * vy).ravel(), minlength=size)
    inverse = 1.0 / np.maximum(count, 1)  # uncovered cells have zero sums
    np.multiply(sum_x, inverse, out=mean[:, 0], casting="unsafe")
    np.multiply(sum_y, inverse, out=mean[:, 1], casting="unsafe")


def _overlapping_cells(
    frame_index, left, top, width, height, rows, cols, cell, frame_height, frame_width
):
    """Cells of arbitrary blocks, weighted by the in-frame overlap area.

    Returns:
      flat int64 ``[M]``, weight float64 ``[M]`` (pixels), block int64 ``[M]``.
    """
    x0 = np.clip(left, 0, frame_width)
    x1 = np.clip(left + width, 0, frame_width)
    y0 = np.clip(top, 0, frame_height)
    y1 = np.clip(top + height, 0, frame_height)
    # Blocks wholly outside the frame (or empty) cover nothing.
    block = np.flatnonzero((x1 > x0) & (y1 > y0))  # [N']
    if block.size == 0:
        return np.zeros(0, np.int64), np.zeros(0), block
    frame_index, x0, x1, y0, y1 = (a[block] for a in (frame_index, x0, x1, y0, y1))
    col_index, col_overlap = _axis_overlaps(x0, x1, cell, cols)  # [N', Kx]
    row_index, row_overlap = _axis_overlaps(y0, y1, cell, rows)  # [N', Ky]
    weight = (row_overlap[:, :, None] * col_overlap[:, None, :]).astype(np.float64)  # [N', Ky, Kx]
    flat = (frame_index[:, None, None] * rows + row_index[:, :, None]) * cols + col_index[
        :, None, :
    ]  # [N', Ky, Kx]
    block = np.broadcast_to(block[:, None, None], flat.shape)  # [N', Ky, Kx]
    return flat.ravel(), weight.ravel(), block.ravel()


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
    out: Optional[np.ndarray] = None,
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
      out: optional C-contiguous float32 ``[T, ceil(H/c), ceil(W/c), 2]`` to
        write into (any content; it is overwritten), e.g. a slice of a
        larger array, saving a copy.

    Returns:
      float32 ``[T, ceil(H/c), ceil(W/c), 2]``, x then y; zero where no block
      covers a cell (``out`` when given).
    """
    if cell < 1:
        raise ValueError(f"cell must be a positive number of pixels, got {cell!r}")
    rows, cols = grid_shape(frame_height, frame_width, cell)
    out = _zeroed_output(out, (num_frames, rows, cols, 2))
    frame_index = _checked_frame_index(frame_index, num_frames)
    if frame_index.size == 0:
        return out
    size = num_frames * rows * cols
    frame_index, left, top, width, height = _index_arrays(
        size, frame_index, left, top, width, height
    )
    vx = np.asarray(vx, np.float64)
    vy = np.asarray(vy, np.float64)
    mean = out.reshape(size, 2)  # view of out: [T*Hc*Wc, 2]
    if _grid_aligned(left, top, width, height, cell):
        _rasterize_aligned(frame_index, left, top, width, height, vx, vy, rows, cols, cell, mean)
        return out
    flat, weight, block = _overlapping_cells(
        frame_index, left, top, width, height, rows, cols, cell, frame_height, frame_width
    )
    if flat.size:
        _weighted_mean(flat, weight, vx[block], vy[block], mean)
    return out


def _zeroed_output(out: Optional[np.ndarray], shape: tuple) -> np.ndarray:
    """A new zero float32 array of `shape`, or `out` checked and zeroed in place."""
    if out is None:
        return np.zeros(shape, np.float32)  # [T, Hc, Wc, 2]
    if out.shape != shape or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise ValueError(f"out must be C-contiguous float32 {shape}, got {out.dtype} {out.shape}")
    out.fill(0)
    return out


def _checked_frame_index(frame_index, num_frames: int) -> np.ndarray:
    """`frame_index` as an integer array; ValueError if one lies outside [0, num_frames)."""
    frame_index = np.asarray(frame_index)
    if frame_index.dtype.kind not in "iu":
        frame_index = frame_index.astype(np.int64)
    if frame_index.size and (frame_index.min() < 0 or frame_index.max() >= num_frames):
        raise ValueError(
            f"frame_index must lie in [0, {num_frames}), got "
            f"[{frame_index.min()}, {frame_index.max()}]"
        )
    return frame_index


def _index_arrays(size: int, *arrays) -> list:
    """The integer block arrays in one index dtype: 32-bit when no index into a grid of
    `size` cells can overflow (codec vectors: int16 fields), which halves the memory
    traffic of int64 in every later step; else 64-bit."""
    arrays = [np.asarray(a) for a in arrays]
    narrow = size < 2**31 and all(_fits_int32(a.dtype) for a in arrays)
    index_dtype = np.int32 if narrow else np.int64
    return [a.astype(index_dtype, copy=False) for a in arrays]


def _weighted_mean(flat, weight, vx, vy, mean: np.ndarray) -> None:
    """Writes into `mean` ``[cells, 2]`` the `weight`-weighted mean of (vx, vy) per cell
    index in `flat` (one entry per block and overlapped cell)."""
    size = mean.shape[0]
    area = np.bincount(flat, weight, minlength=size)  # [cells]
    sum_x = np.bincount(flat, weight * vx, minlength=size)
    sum_y = np.bincount(flat, weight * vy, minlength=size)
    # Covered cells have area >= 1 px; uncovered ones have zero sums, so
    # dividing by max(area, 1) leaves them zero without a mask.
    inverse = 1.0 / np.maximum(area, 1.0)  # [cells]
    np.multiply(sum_x, inverse, out=mean[:, 0], casting="unsafe")
    np.multiply(sum_y, inverse, out=mean[:, 1], casting="unsafe")


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
    out: Optional[np.ndarray] = None,
) -> np.ndarray:
    """Rasterises FFmpeg motion-vector records of several frames.

    Each record's block is ``w x h`` centred on ``(dst_x, dst_y)``.

    Args:
      vectors: structured ``[N]`` array with the ``AVMotionVector`` fields.
      frame_index: int ``[N]`` frame of each record.
      out: optional array to write into, as for :func:`rasterize_blocks`.
    Returns:
      float32 ``[T, ceil(H/c), ceil(W/c), 2]`` forward motion, x then y.
    """
    vx, vy = forward_motion(vectors)
    # uint8 sizes and int16 positions: int32 holds every result.
    w = vectors["w"].astype(np.int32)
    h = vectors["h"].astype(np.int32)
    left = vectors["dst_x"] - (w >> 1)
    top = vectors["dst_y"] - (h >> 1)
    return rasterize_blocks(
        frame_index,
        left,
        top,
        w,
        h,
        vx,
        vy,
        num_frames,
        frame_height,
        frame_width,
        cell,
        out=out,
    )

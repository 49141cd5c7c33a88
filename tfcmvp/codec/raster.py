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


def _aligned_groups(frame_index, left, top, width, height, vx, vy, rows, cols, cell):
    """Cells of grid-aligned blocks, one group per block shape.

    Every block covering a cell covers the same in-frame part of it, so the
    area-weighted mean is the plain mean and each (block, cell) pair weighs 1.
    Blocks are expanded one shape class at a time (16x16, 16x8, ...: a few
    classes, sorted into contiguous runs once): a block's cells are its
    top-left cell's flat index plus the class's fixed offsets. Cells beyond
    the grid (coded size > frame size) are dropped.

    Returns:
      A list of (flat, x, y): flat int64 cell indices (t*Hc + row)*Wc + col,
      ``[n, k]`` (n blocks of k cells) with x, y ``[n, 1]``, or ``[m]`` pairs
      with x, y ``[m]``; x, y broadcast against flat.
    """
    col0 = left // cell  # [N]
    row0 = top // cell  # [N]
    cells_x = width // cell  # [N]
    cells_y = height // cell  # [N]
    base = (frame_index * rows + row0) * cols + col0  # [N] flat index of the top-left cell
    # Reductions first: per-block masks are needed only when some block hangs
    # over the grid.
    any_beyond = bool(
        col0.min() < 0
        or row0.min() < 0
        or (col0 + cells_x).max() > cols
        or (row0 + cells_y).max() > rows
    )
    span = int(cells_x.max()) + 1
    if cells_x.min() == span - 1 and cells_y.min() == cells_y.max():
        runs = [(int(cells_y[0]), span - 1, slice(None))]  # one shape: no sorting
    else:
        shape_class = cells_y * span + cells_x  # [N]
        order = np.argsort(shape_class, kind="stable")  # [N] blocks grouped by shape
        base, vx, vy, col0, row0 = (a[order] for a in (base, vx, vy, col0, row0))
        per_class = np.bincount(shape_class)
        ends = np.cumsum(per_class)
        runs = [
            (*divmod(int(code), span), slice(int(ends[code] - per_class[code]), int(ends[code])))
            for code in np.flatnonzero(per_class)
        ]
    groups = []
    for ky, kx, run in runs:
        if ky == 0 or kx == 0:  # empty blocks cover nothing
            continue
        row_offset = np.repeat(np.arange(ky), kx)  # [k]
        col_offset = np.tile(np.arange(kx), ky)  # [k]
        offsets = row_offset * cols + col_offset  # [k]
        flat = base[run, None] + offsets  # [n, k]
        x, y = vx[run, None], vy[run, None]  # [n, 1]
        if any_beyond:
            row = row0[run, None] + row_offset  # [n, k]
            col = col0[run, None] + col_offset  # [n, k]
            keep = (row >= 0) & (row < rows) & (col >= 0) & (col < cols)  # [n, k]
            if not keep.all():
                x = np.broadcast_to(x, flat.shape)[keep]  # [m]
                y = np.broadcast_to(y, flat.shape)[keep]
                flat = flat[keep]
        groups.append((flat, x, y))
    return groups


def _aligned_mean(groups, size, mean):
    """Writes the per-cell mean of aligned groups into ``mean`` ``[size, 2]``."""
    flats = [flat.ravel() for flat, _, _ in groups]
    flat_all = flats[0] if len(flats) == 1 else np.concatenate(flats)  # [M]
    count = np.bincount(flat_all, minlength=size)  # [T*Hc*Wc]
    if count.max(initial=0) <= 1:
        # No two blocks share a cell (I/P frames): each cell takes its
        # block's vector directly.
        for flat, x, y in groups:
            mean[flat, 0] = x
            mean[flat, 1] = y
        return
    # Overlaps (bi-predicted blocks): sum and divide by the block count.
    values = [
        (np.broadcast_to(x, flat.shape).ravel(), np.broadcast_to(y, flat.shape).ravel())
        for flat, x, y in groups
    ]
    sum_x = np.bincount(flat_all, np.concatenate([v[0] for v in values]), minlength=size)
    sum_y = np.bincount(flat_all, np.concatenate([v[1] for v in values]), minlength=size)
    inverse = 1.0 / np.maximum(count, 1)  # uncovered cells have zero sums
    np.multiply(sum_x, inverse, out=mean[:, 0], casting="unsafe")
    np.multiply(sum_y, inverse, out=mean[:, 1], casting="unsafe")


def _overlapping_cells(frame_index, left, top, width, height, rows, cols, cell, frame_height,
                       frame_width):
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
    width = np.asarray(width, np.int64)
    height = np.asarray(height, np.int64)
    vx = np.asarray(vx, np.float64)
    vy = np.asarray(vy, np.float64)
    size = num_frames * rows * cols
    mean = out.reshape(size, 2)  # view of out: [T*Hc*Wc, 2]
    if _grid_aligned(left, top, width, height, cell):
        groups = _aligned_groups(frame_index, left, top, width, height, vx, vy, rows, cols, cell)
        if groups:
            _aligned_mean(groups, size, mean)
        return out
    flat, weight, block = _overlapping_cells(
        frame_index, left, top, width, height, rows, cols, cell, frame_height, frame_width
    )
    if flat.size == 0:
        return out
    area = np.bincount(flat, weight, minlength=size)  # [T*Hc*Wc]
    sum_x = np.bincount(flat, weight * vx[block], minlength=size)
    sum_y = np.bincount(flat, weight * vy[block], minlength=size)
    # Covered cells have area >= 1 px; uncovered ones have zero sums, so
    # dividing by max(area, 1) leaves them zero without a mask.
    inverse = 1.0 / np.maximum(area, 1.0)  # [T*Hc*Wc]
    np.multiply(sum_x, inverse, out=mean[:, 0], casting="unsafe")
    np.multiply(sum_y, inverse, out=mean[:, 1], casting="unsafe")
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

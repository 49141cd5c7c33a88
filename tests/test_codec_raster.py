"""Rasterising motion-vector blocks onto the cell grid: known area-weighted means."""

import numpy as np
import pytest

from tfcmvp.codec import raster


def blocks(*rows):
    """(frame, left, top, w, h, vx, vy) rows -> the argument arrays."""
    a = np.array(rows, np.float64).reshape(-1, 7)
    ints = [a[:, i].astype(np.int64) for i in range(5)]
    return ints + [a[:, 5], a[:, 6]]


def rasterize(rows, num_frames=1, height=20, width=20, cell=8, index_dtype=np.int64):
    f, left, top, w, h, vx, vy = blocks(*rows)
    f, left, top, w, h = (a.astype(index_dtype) for a in (f, left, top, w, h))
    return raster.rasterize_blocks(f, left, top, w, h, vx, vy, num_frames, height, width, cell)


def test_grid_shape_rounds_up():
    assert raster.grid_shape(144, 176, 8) == (18, 22)
    assert raster.grid_shape(20, 20, 8) == (3, 3)
    assert raster.grid_shape(121, 161, 16) == (8, 11)


def test_one_aligned_block_fills_its_cells_and_leaves_holes_zero():
    out = rasterize([(0, 0, 0, 16, 16, 2, -1)])
    assert out.shape == (1, 3, 3, 2) and out.dtype == np.float32
    expected = np.zeros((3, 3, 2), np.float32)
    expected[:2, :2] = (2, -1)
    np.testing.assert_array_equal(out[0], expected)


def test_blocks_straddling_cells_are_area_weighted():
    # Two 8x8 blocks offset by 4 px: cell (0, 1) sees 4x4 px of each.
    out = rasterize([(0, 4, 4, 8, 8, 4, 0), (0, 12, 4, 8, 8, 0, 4)])
    np.testing.assert_allclose(out[0, 0, 0], (4, 0))  # only block 1 (4x4 px)
    np.testing.assert_allclose(out[0, 0, 1], (2, 2))  # 16 px of each
    np.testing.assert_allclose(out[0, 0, 2], (0, 4))  # only block 2 (4x4 px)
    np.testing.assert_allclose(out[0, 1, 1], (2, 2))  # the lower halves
    np.testing.assert_array_equal(out[0, 2], 0)  # nothing below y = 12


def test_unequal_overlaps_weight_by_area():
    # Cell (1, 1) = [8, 16)^2: the 16x16 block covers all 64 px with (2, -1),
    # the 8x8 block at (12, 12) covers 16 px with (7, 9).
    out = rasterize([(0, 0, 0, 16, 16, 2, -1), (0, 12, 12, 8, 8, 7, 9)])
    np.testing.assert_allclose(out[0, 1, 1], ((64 * 2 + 16 * 7) / 80, (64 * -1 + 16 * 9) / 80))
    # Cell (2, 2) = [16, 20)^2 lies inside the frame for 4x4 px, all block 2.
    np.testing.assert_allclose(out[0, 2, 2], (7, 9))
    # Cell (1, 2) = x [16, 20), y [8, 16): block 2 covers x 16..20, y 12..16.
    np.testing.assert_allclose(out[0, 1, 2], (7, 9))


def test_blocks_at_the_frame_edge_count_only_their_inside_part():
    # Cell (2, 2) of a 20x20 frame is 4x4 px. A 16x16 block at (12, 12) covers
    # all of it; another at (16, -8) covers x 16..20, y 0..8 only, i.e. cell
    # (0, 2) whose in-frame part is 4x8 px. A block wholly outside is ignored.
    out = rasterize(
        [
            (0, 12, 12, 16, 16, 1, 3),
            (0, 16, -8, 16, 16, -5, 5),
            (0, 20, 0, 8, 8, 100, 100),
            (0, -8, -8, 8, 8, 100, 100),
        ]
    )
    np.testing.assert_allclose(out[0, 2, 2], (1, 3))
    np.testing.assert_allclose(out[0, 0, 2], (-5, 5))
    # Cell (1, 2): x 16..20, y 8..16 -> block 1 covers y 12..16 (16 px),
    # block 2 covers y 8..8 (none).
    np.testing.assert_allclose(out[0, 1, 2], (1, 3))
    np.testing.assert_array_equal(out[0, 0, 0], 0)


def test_bi_predicted_block_averages_its_two_vectors():
    out = rasterize([(0, 0, 0, 8, 8, 1, 5), (0, 0, 0, 8, 8, 3, -1)])
    np.testing.assert_allclose(out[0, 0, 0], (2, 2))


def test_frames_are_kept_apart_and_empty_frames_are_zero():
    out = rasterize([(0, 0, 0, 8, 8, 1, 1), (2, 0, 0, 8, 8, -3, 4)], num_frames=3)
    np.testing.assert_allclose(out[0, 0, 0], (1, 1))
    np.testing.assert_array_equal(out[1], 0)
    np.testing.assert_allclose(out[2, 0, 0], (-3, 4))
    empty = rasterize([], num_frames=2)
    assert empty.shape == (2, 3, 3, 2) and not empty.any()


def test_frame_index_out_of_range_is_rejected():
    with pytest.raises(ValueError, match=r"frame_index must lie in \[0, 1\)"):
        rasterize([(1, 0, 0, 8, 8, 1, 1)])


def pixel_reference(rows, num_frames, height, width, cell):
    """Brute force: paint each block's vector per pixel, then average per cell."""
    total = np.zeros((num_frames, height, width, 2))
    count = np.zeros((num_frames, height, width))
    for f, left, top, w, h, vx, vy in rows:
        y0, y1 = max(top, 0), min(top + h, height)
        x0, x1 = max(left, 0), min(left + w, width)
        if y1 > y0 and x1 > x0:
            total[f, y0:y1, x0:x1] += (vx, vy)
            count[f, y0:y1, x0:x1] += 1
    rows_c, cols_c = raster.grid_shape(height, width, cell)
    out = np.zeros((num_frames, rows_c, cols_c, 2))
    for f in range(num_frames):
        for i in range(rows_c):
            for j in range(cols_c):
                ys, xs = slice(i * cell, (i + 1) * cell), slice(j * cell, (j + 1) * cell)
                cell_sum = total[f, ys, xs].sum((0, 1))
                cell_count = count[f, ys, xs].sum()
                if cell_count:
                    out[f, i, j] = cell_sum / cell_count
    return out


@pytest.mark.parametrize("cell", [4, 8, 16])
def test_random_blocks_match_a_per_pixel_reference(cell):
    rng = np.random.default_rng(cell)
    num_frames, height, width = 3, 37, 50
    rows = []
    for _ in range(60):
        w, h = rng.choice([4, 8, 16], size=2)
        rows.append(
            (
                int(rng.integers(num_frames)),
                int(rng.integers(-10, width)),
                int(rng.integers(-10, height)),
                int(w),
                int(h),
                float(rng.normal() * 4),
                float(rng.normal() * 4),
            )
        )
    out = rasterize(rows, num_frames, height, width, cell)
    expected = pixel_reference(rows, num_frames, height, width, cell)
    np.testing.assert_allclose(out, expected, atol=1e-5)


@pytest.mark.parametrize("index_dtype", [np.int64, np.int16])  # 64- and 32-bit index paths
@pytest.mark.parametrize("sizes", [(16,), (8, 16), (8, 16, 24)])
def test_grid_aligned_blocks_match_a_per_pixel_reference(sizes, index_dtype):
    """The fast path for blocks on cell edges: codec macroblocks on an 8-px grid.

    Blocks hang over the bottom/right edge (coded size > frame size) and some
    repeat with another vector (bi-prediction).
    """
    rng = np.random.default_rng(len(sizes))
    num_frames, height, width, cell = 4, 36, 44, 8  # last cell row/col 4 px
    rows = []
    for _ in range(80):
        w, h = rng.choice(sizes, size=2)
        rows.append(
            (
                int(rng.integers(num_frames)),
                8 * int(rng.integers(0, 6)),
                8 * int(rng.integers(0, 5)),
                int(w),
                int(h),
                float(rng.normal() * 4),
                float(rng.normal() * 4),
            )
        )
    rows += [r[:5] + (r[5] + 1.0, r[6] - 2.0) for r in rows[:20]]  # second vectors
    out = rasterize(rows, num_frames, height, width, cell, index_dtype=index_dtype)
    expected = pixel_reference(rows, num_frames, height, width, cell)
    np.testing.assert_allclose(out, expected, atol=1e-5)


@pytest.mark.parametrize("index_dtype", [np.int64, np.int16])
def test_aligned_blocks_outside_the_grid_or_empty_cover_nothing(index_dtype):
    """Blocks wholly above/left of or past the grid, and 0-px blocks, write no cell;
    a mixed 16x16 / 8x8 tiling beside them keeps its exact values."""
    rows = [
        (0, 0, 0, 16, 16, 1.0, 2.0),  # cells (0..1, 0..1)
        (0, 16, 0, 8, 8, 3.0, 4.0),  # cell (0, 2)
        (0, -32, 0, 16, 16, 9.0, 9.0),  # left of the frame
        (0, 0, -16, 16, 16, 9.0, 9.0),  # above the frame
        (0, 48, 0, 16, 16, 9.0, 9.0),  # right of the 20-px frame (cells 0..2)
        (0, 8, 16, 0, 8, 9.0, 9.0),  # empty
    ]
    out = rasterize(rows, index_dtype=index_dtype)
    np.testing.assert_allclose(out, pixel_reference(rows, 1, 20, 20, 8), atol=1e-6)
    expected = np.zeros((3, 3, 2), np.float32)
    expected[:2, :2] = (1, 2)
    expected[0, 2] = (3, 4)
    np.testing.assert_array_equal(out[0], expected)


@pytest.mark.parametrize("index_dtype", [np.int64, np.int16])
def test_empty_aligned_block_at_the_origin_is_ignored(index_dtype):
    """A 0-px block at (0, 0) among in-grid blocks: nothing hangs over the grid, yet the
    empty block must not index cell -1."""
    rows = [(0, 0, 0, 0, 0, 5.0, 5.0), (0, 0, 0, 8, 0, 5.0, 5.0), (0, 8, 8, 8, 8, 1.0, -1.0)]
    out = rasterize(rows, index_dtype=index_dtype)
    expected = np.zeros((1, 3, 3, 2), np.float32)
    expected[0, 1, 1] = (1, -1)
    np.testing.assert_array_equal(out, expected)


def test_p_frame_tiling_of_mixed_shapes_without_overlap_is_exact():
    """16x16, 16x8, 8x16 and 8x8 partitions tiling a frame (H.264 P-frame): every
    cell takes exactly its block's vector (the single-scatter path)."""
    rng = np.random.default_rng(3)
    rows = []
    for top in range(0, 32, 16):
        for left in range(0, 64, 16):
            shape = rng.integers(4)
            parts = {
                0: [(0, 0, 16, 16)],
                1: [(0, 0, 16, 8), (0, 8, 16, 8)],
                2: [(0, 0, 8, 16), (8, 0, 8, 16)],
                3: [(dx, dy, 8, 8) for dy in (0, 8) for dx in (0, 8)],
            }[int(shape)]
            for dx, dy, w, h in parts:
                rows.append((0, left + dx, top + dy, w, h, *rng.normal(size=2)))
    out = rasterize(rows, 1, 32, 64, 8, index_dtype=np.int16)
    for _, left, top, w, h, vx, vy in rows:
        cells = out[0, top // 8 : (top + h) // 8, left // 8 : (left + w) // 8]
        np.testing.assert_allclose(cells, np.broadcast_to(np.float32([vx, vy]), cells.shape))


def test_non_overlapping_tiling_with_overhang_matches_the_reference():
    """A P-frame-like tiling: 16x16 macroblocks, one split into 8x8, the last
    row of blocks hanging below the frame (coded 48 px, frame 36 px)."""
    rng = np.random.default_rng(7)
    rows = []
    for f in range(2):
        for top in (0, 16, 32):
            for left in (0, 16, 32):
                if (top, left) == (16, 16):
                    for dy in (0, 8):
                        for dx in (0, 8):
                            rows.append((f, left + dx, top + dy, 8, 8, *rng.normal(size=2)))
                elif (top, left) != (0, 32):  # one intra macroblock: a hole
                    rows.append((f, left, top, 16, 16, *rng.normal(size=2)))
    out = rasterize(rows, 2, 36, 44, 8)
    np.testing.assert_allclose(out, pixel_reference(rows, 2, 36, 44, 8), atol=1e-6)
    assert not out[:, 0:2, 4:6].any()  # the hole


def test_forward_motion_sign_and_sub_pel_scale():
    v = np.zeros(4, raster.MOTION_VECTOR_DTYPE)
    v["source"] = [-1, 1, -1, -2]
    v["motion_x"] = [8, 8, 3, -6]
    v["motion_y"] = [-4, -4, 1, 2]
    v["motion_scale"] = [4, 4, 2, 4]
    vx, vy = raster.forward_motion(v)
    # Past reference: dst - src = -motion/scale; future reference: negated.
    np.testing.assert_allclose(vx, [-2, 2, -1.5, 1.5])
    np.testing.assert_allclose(vy, [1, -1, -0.5, -0.5])


def test_rasterize_vectors_centres_blocks_on_dst():
    v = np.zeros(2, raster.MOTION_VECTOR_DTYPE)
    v["source"] = -1
    v["w"], v["h"] = [16, 8], [16, 8]
    v["dst_x"], v["dst_y"] = [8, 20], [8, 12]  # blocks [0,16)^2 and x [16,24) y [8,16)
    v["motion_x"], v["motion_y"] = [-8, 4], [4, 0]
    v["motion_scale"] = 4
    out = raster.rasterize_vectors(v, np.zeros(2, np.int64), 1, 24, 24, 8)
    np.testing.assert_allclose(out[0, :2, :2], np.broadcast_to([2, -1], (2, 2, 2)))
    np.testing.assert_allclose(out[0, 1, 2], (-1, 0))
    np.testing.assert_array_equal(out[0, 0, 2], 0)
    np.testing.assert_array_equal(out[0, 2], 0)

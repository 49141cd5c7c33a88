"""Retrieval table, JSON record and the query/results figure."""

import json

import numpy as np
import pytest
from PIL import Image

from tfcmvp.retrieval import format_table, plot_retrieval, write_json
from tfcmvp.retrieval.report import HIT_COLOR, MISS_COLOR


def test_format_table_rows_models_columns_recall():
    table = format_table(
        {
            "cmd-r3d": {"R@1": 41.234, "R@10": 70.0, "R@5": 60.0, "protocol": "vcop"},
            "random-init": {"R@1": 9.0, "R@5": 20.0},
        }
    )
    assert table.splitlines() == [
        "model        protocol   R@1   R@5  R@10",
        "-----------  --------  ----  ----  ----",
        "cmd-r3d      vcop      41.2  60.0  70.0",
        "random-init  -          9.0  20.0     -",
    ]


def test_format_table_without_protocol_and_empty():
    assert format_table({"m": {"R@20": 5.25, "R@1": 100.0}}).splitlines() == [
        "model    R@1  R@20",
        "-----  -----  ----",
        "m      100.0   5.2",
    ]
    with pytest.raises(ValueError, match="no results"):
        format_table({})


def test_write_json_round_trip(tmp_path):
    path = tmp_path / "out" / "ucf101_vcop.json"
    results = {"R@1": 25.0, "R@5": 75.0, "R@10": 75.0, "R@20": 75.0, "R@50": 75.0}
    record = write_json(
        path, results, "vcop", "saved_models/cmd", "ucf101 split 1", num_queries=4, num_gallery=6
    )
    loaded = json.loads(path.read_text())
    assert (
        loaded
        == record
        == {
            "R@1": 25.0,
            "R@5": 75.0,
            "R@10": 75.0,
            "R@20": 75.0,
            "R@50": 75.0,
            "protocol": "vcop",
            "model": "saved_models/cmd",
            "data": "ucf101 split 1",
            "num_queries": 4,
            "num_gallery": 6,
        }
    )
    assert list(loaded) == list(record)
    assert [p.name for p in path.parent.iterdir()] == ["ucf101_vcop.json"]  # no temp left


def test_write_json_rejects_unknown_protocol_and_missing_recall(tmp_path):
    with pytest.raises(ValueError, match="'knn'"):
        write_json(tmp_path / "a.json", {"R@1": 1.0}, "knn", "m", "d", 1, 1)
    with pytest.raises(ValueError, match="no 'R@k' entries"):
        write_json(tmp_path / "a.json", {"top1": 1.0}, "coclr", "m", "d", 1, 1)
    assert not list(tmp_path.iterdir())


def _rgb(hex_color):
    return np.array([int(hex_color[i : i + 2], 16) for i in (1, 3, 5)])


def _border_pixel(image, ax, fig):
    """Pixel on the left border of an axes, halfway up (PNG rows go downward)."""
    box = ax.get_window_extent()
    x = int(round(box.x0)) + 1
    y = int(round(fig.bbox.height - (box.y0 + box.y1) / 2))
    return image[y, x, :3].astype(int)


def test_plot_retrieval_grid_and_hit_colours(tmp_path):
    rng = np.random.default_rng(0)
    blue = np.zeros((12, 16, 3), np.uint8)
    blue[..., 2] = 255
    query_thumbs = np.stack([blue] * 3)  # [3, H, W, 3]
    gallery_thumbs = np.stack([blue] * 8)  # [8, H, W, 3]
    topk = rng.permutation(np.tile(np.arange(8), (3, 1)).T).T[:, :7]  # [3, 7]
    hits = rng.random((3, 7)) < 0.5
    hits[0, :5] = [True, False, True, False, False]
    png = tmp_path / "fig" / "retrieval.png"
    fig = plot_retrieval(
        png,
        query_thumbs,
        gallery_thumbs,
        topk,
        hits,
        query_labels=["a", "b", "c"],
        gallery_labels=list("abcdefgh"),
        scores=np.linspace(1, 0, 21).reshape(3, 7),
        title="cmd / vcop",
        dpi=60,
    )

    # 3 rows x 6 panels: the query, then its top 5.
    assert len(fig.axes) == 18
    xs = sorted({round(ax.get_position().x0, 4) for ax in fig.axes})
    ys = sorted({round(ax.get_position().y0, 4) for ax in fig.axes})
    assert len(xs) == 6 and len(ys) == 3
    image = np.asarray(Image.open(png).convert("RGB"))
    assert image.shape[:2] == (round(fig.bbox.height), round(fig.bbox.width))
    grid = np.array(fig.axes).reshape(3, 6)
    for row in range(3):
        for rank in range(5):
            want = _rgb(HIT_COLOR if hits[row, rank] else MISS_COLOR)
            ax = grid[row, 1 + rank]
            assert ax.spines["left"].get_edgecolor()[:3] == pytest.approx(want / 255, abs=1e-3)
            assert np.abs(_border_pixel(image, ax, fig) - want).max() <= 8, (row, rank)
        # The query panel is neither green nor red.
        query_pixel = _border_pixel(image, grid[row, 0], fig)
        assert np.abs(query_pixel - _rgb(HIT_COLOR)).max() > 50
        assert np.abs(query_pixel - _rgb(MISS_COLOR)).max() > 50
    assert grid[0, 1].get_title() == f"#1 {'abcdefgh'[topk[0, 0]]} (1.00)"
    assert grid[0, 0].get_title() == "query: a"


def test_plot_retrieval_small_gallery_keeps_the_grid(tmp_path):
    thumbs = [np.full((8, 8), 0.5), np.zeros((8, 8, 1))]  # grey and single-channel images
    fig = plot_retrieval(
        tmp_path / "small.png",
        thumbs,
        {0: np.ones((8, 8, 3)), 1: thumbs[0]},
        np.array([[1, 0], [0, 1]]),
        np.array([[True, False], [False, False]]),
    )
    assert (tmp_path / "small.png").stat().st_size > 0
    assert len(fig.axes) == 12
    grid = np.array(fig.axes).reshape(2, 6)
    assert [ax.axison for ax in grid[0]] == [True, True, True, False, False, False]


def test_plot_retrieval_rejects_mismatched_shapes(tmp_path):
    with pytest.raises(ValueError, match=r"hits shape \(1, 2\) != topk_indices shape \(1, 3\)"):
        plot_retrieval(
            tmp_path / "x.png",
            [np.zeros((4, 4))],
            [np.zeros((4, 4))] * 3,
            [[0, 1, 2]],
            [[True, False]],
        )
    with pytest.raises(ValueError, match=r"topk_indices must be \[2, K\]"):
        plot_retrieval(
            tmp_path / "x.png", [np.zeros((4, 4))] * 2, [np.zeros((4, 4))], [[0]], [[True]]
        )

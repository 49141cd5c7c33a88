"""VCOP / CoCLR feature post-processing: known answers on hand-made features."""

import numpy as np
import pytest

from tfcmvp.retrieval import protocols
from tfcmvp.retrieval.protocols import l2_normalize, prepare, video_features


def test_video_features_is_the_mean_of_the_clips():
    clips = np.array(
        [[[1.0, 2.0], [3.0, 4.0]], [[-1.0, 0.0], [1.0, 8.0]]], np.float32
    )  # [V=2, N=2, D=2]
    for protocol in ("vcop", "coclr"):
        out = video_features(clips, protocol)
        np.testing.assert_array_equal(out, [[2.0, 3.0], [0.0, 4.0]])
        assert out.dtype == np.float32 and out.shape == (2, 2)


def test_video_features_ten_clips_matches_numpy_mean():
    clips = np.random.default_rng(0).standard_normal((7, 10, 32)).astype(np.float32)
    np.testing.assert_allclose(video_features(clips), clips.mean(axis=1), rtol=1e-6, atol=1e-6)


def test_video_features_accepts_ragged_clip_counts():
    # CoCLR's sliding windows give a different count per video.
    videos = [np.array([[0.0, 2.0]]), np.array([[1.0, 1.0], [3.0, 1.0], [5.0, 4.0]])]
    np.testing.assert_array_equal(video_features(videos, "coclr"), [[0.0, 2.0], [3.0, 2.0]])


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros((2, 3)), r"\[V, N, D\]"),
        ([np.zeros((2, 3)), np.zeros((0, 3))], "video 1 has no clip features"),
        ([np.zeros((2, 3)), np.zeros((2, 4))], "video 1"),
        ([np.zeros((1, 2)), np.array([[np.nan, 0.0]])], "video 1 has non-finite"),
        ([], "no videos"),
    ],
)
def test_video_features_rejects_bad_input(bad, match):
    with pytest.raises(ValueError, match=match):
        video_features(bad)


def test_unknown_protocol_is_named():
    with pytest.raises(ValueError, match="'simclr'"):
        video_features(np.zeros((1, 1, 2)), "simclr")
    with pytest.raises(ValueError, match="'VCOP'"):
        prepare(np.ones((1, 2)), np.ones((1, 2)), "VCOP")


def test_vcop_prepare_gives_cosine_similarity():
    rng = np.random.default_rng(1)
    query = rng.standard_normal((5, 8)) * 3 + 1
    gallery = rng.standard_normal((9, 8)) * 0.1 - 2
    q, g = prepare(query, gallery, "vcop")
    assert q.dtype == np.float32 and g.dtype == np.float32
    cosine = (query @ gallery.T) / np.outer(
        np.linalg.norm(query, axis=1), np.linalg.norm(gallery, axis=1)
    )
    np.testing.assert_allclose(q @ g.T, cosine, atol=1e-6)


def test_coclr_centres_each_set_by_its_own_mean():
    # Query mean (2, 0), gallery mean (0, 10): each set loses its own offset.
    query = np.array([[3.0, 0.0], [1.0, 0.0]])
    gallery = np.array([[0.0, 13.0], [0.0, 7.0], [4.0, 10.0], [-4.0, 10.0]])
    q, g = prepare(query, gallery, "coclr")
    np.testing.assert_array_equal(q, [[1.0, 0.0], [-1.0, 0.0]])
    np.testing.assert_array_equal(g, [[0.0, 1.0], [0.0, -1.0], [1.0, 0.0], [-1.0, 0.0]])
    # Centring by the gallery mean instead would leave the queries at (3, -10), (1, -10).


def test_zero_norm_rows_become_zero_not_nan():
    query = np.array([[0.0, 0.0], [3.0, 4.0]])
    gallery = np.array([[1.0, 0.0], [0.0, 0.0]])
    q, g = prepare(query, gallery, "vcop")
    f32 = np.float32
    np.testing.assert_array_equal(q, [[0.0, 0.0], [f32(0.6), f32(0.8)]])
    np.testing.assert_array_equal(g, [[1.0, 0.0], [0.0, 0.0]])
    np.testing.assert_array_equal(q @ g.T, [[0.0, 0.0], [f32(0.6), 0.0]])
    # CoCLR: a single gallery video equals its set's mean, so it centres to zero.
    q, g = prepare(query, gallery[:1], "coclr")
    np.testing.assert_array_equal(g, [[0.0, 0.0]])
    assert np.isfinite(q).all()


def test_l2_normalize_survives_tiny_and_huge_float32():
    x = np.array([[1e-30, 1e-30], [3e38, 3e38], [0.0, -2.0]], np.float32)
    out = l2_normalize(x)
    s = np.float32(np.sqrt(0.5))
    np.testing.assert_allclose(out, [[s, s], [s, s], [0.0, -1.0]], rtol=1e-6)


def test_l2_normalize_blocks_do_not_change_the_result(monkeypatch):
    x = np.random.default_rng(2).standard_normal((37, 5)).astype(np.float32)
    whole = l2_normalize(x, center=x.mean(axis=0))
    monkeypatch.setattr(protocols, "_ROW_BLOCK", 4)
    np.testing.assert_array_equal(l2_normalize(x, center=x.mean(axis=0)), whole)


@pytest.mark.parametrize(
    "query, gallery, match",
    [
        (np.ones((2, 3)), np.ones((2, 4)), "feature sizes differ"),
        (np.ones((0, 3)), np.ones((2, 3)), "query features are empty"),
        (np.ones(3), np.ones((2, 3)), r"query features must be \[V, D\]"),
        (np.ones((2, 3)), np.array([[1.0, 1.0, 1.0], [1.0, np.inf, 1.0]]), "gallery .*row 1"),
    ],
)
def test_prepare_rejects_bad_input(query, gallery, match):
    with pytest.raises(ValueError, match=match):
        prepare(query, gallery)


def test_each_protocol_names_its_clip_positions():
    """VCOP: N evenly spaced clips; CoCLR: sliding windows (tfcmvp.data.sampling rules)."""
    from tfcmvp.data.sampling import CLIP_POSITIONS

    assert protocols.clip_positions("vcop") == "vcop"
    assert protocols.clip_positions("coclr") == "sliding"
    assert set(protocols.CLIP_POSITIONS) == set(protocols.PROTOCOLS)
    assert set(protocols.CLIP_POSITIONS.values()) <= set(CLIP_POSITIONS)
    with pytest.raises(ValueError, match="'simclr'"):
        protocols.clip_positions("simclr")

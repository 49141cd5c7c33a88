"""Chunked top-k search against brute force, tie order, clamping and the memory bound."""

import numpy as np
import pytest

from tfcmvp.retrieval import search
from tfcmvp.retrieval.search import topk_search


def brute_force(query, gallery, k):
    scores = query.astype(np.float32) @ gallery.astype(np.float32).T  # [Q, G]
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]  # ties: lower index first
    return np.take_along_axis(scores, order, axis=1), order


def dyadic_data(seed, num_queries=40, num_gallery=300, dim=16):
    """Features on a 1/4 grid in [-2, 2]: every dot product is exact in float32,
    so any blocking of the matmul must reproduce brute force bit for bit.
    A third of the gallery duplicates other rows, forcing ties at the cut-off."""
    rng = np.random.default_rng(seed)
    query = np.round(rng.uniform(-2, 2, (num_queries, dim)) * 4) / 4
    gallery = np.round(rng.uniform(-2, 2, (num_gallery, dim)) * 4) / 4
    dup = rng.choice(num_gallery, num_gallery // 3, replace=False)
    gallery[dup] = gallery[rng.choice(num_gallery, dup.size)]
    # Two queries equal to a gallery row planted four times.
    planted = np.array([10, 150, 200, 299]) * num_gallery // 300
    gallery[planted] = gallery[planted[2]]
    query[:2] = gallery[planted[2]]
    return query.astype(np.float32), gallery.astype(np.float32)


@pytest.mark.parametrize("chunk_size", [1, 7, 64, 299, 300, 1000])
@pytest.mark.parametrize("query_chunk_size", [1, 9, 40])
def test_matches_brute_force_exactly_with_ties(chunk_size, query_chunk_size):
    query, gallery = dyadic_data(seed=0)
    k = 20
    want_scores, want_indices = brute_force(query, gallery, k)
    scores, indices = topk_search(
        query, gallery, k, chunk_size=chunk_size, query_chunk_size=query_chunk_size
    )
    assert scores.dtype == np.float32 and indices.dtype == np.int64
    assert scores.shape == indices.shape == (40, k)
    np.testing.assert_array_equal(indices, want_indices)
    np.testing.assert_array_equal(scores, want_scores)


def test_the_tie_data_really_has_ties_at_the_cut_off():
    # Guards the test above: without ties across the top-k boundary it would
    # not exercise the lower-index-first rule.
    query, gallery = dyadic_data(seed=0)
    full = np.sort(query @ gallery.T, axis=1)[:, ::-1]  # [Q, G] descending
    assert np.sum(full[:, 19] == full[:, 20]) >= 5
    assert np.all(full[:2, 0] == full[:2, 3])  # the planted 4-way tie at rank 1


def test_continuous_data_agrees_with_brute_force():
    rng = np.random.default_rng(1)
    query = rng.standard_normal((64, 48)).astype(np.float32)
    gallery = rng.standard_normal((700, 48)).astype(np.float32)
    want_scores, want_indices = brute_force(query, gallery, 25)
    for chunk_size in (1, 33, 700):
        scores, indices = topk_search(
            query, gallery, 25, chunk_size=chunk_size, query_chunk_size=10
        )
        # Different matmul blockings may round a dot product differently in
        # the last bit, so compare values with a tolerance ...
        np.testing.assert_allclose(scores, want_scores, rtol=0, atol=1e-5)
        # ... and demand the same items except where two scores are that close.
        gaps = np.abs(np.diff(want_scores, axis=1)) < 1e-5  # [Q, k-1]
        near_tie = np.zeros_like(indices, bool)
        near_tie[:, 1:] |= gaps
        near_tie[:, :-1] |= gaps
        assert np.array_equal(indices[~near_tie], want_indices[~near_tie])
        # The returned scores are the dot products of the returned items.
        np.testing.assert_allclose(
            scores, np.einsum("qd,qkd->qk", query, gallery[indices]), atol=1e-5
        )


def test_equal_scores_keep_lower_gallery_index_first_across_chunks():
    gallery = np.array(
        [[0.0, 1.0], [1.0, 0.0], [0.0, 1.0], [2.0, 0.0], [1.0, 0.0], [0.0, 1.0]], np.float32
    )
    query = np.array([[1.0, 0.0], [0.0, 0.0]], np.float32)
    for chunk_size in (1, 2, 4, 6):
        scores, indices = topk_search(query, gallery, 3, chunk_size=chunk_size)
        # Query 0: gallery 3 scores 2, then the tie at 1 between 1 and 4.
        np.testing.assert_array_equal(indices[0], [3, 1, 4])
        np.testing.assert_array_equal(scores[0], [2.0, 1.0, 1.0])
        # Zero query: every score is 0, so the first three indices win.
        np.testing.assert_array_equal(indices[1], [0, 1, 2])
        np.testing.assert_array_equal(scores[1], [0.0, 0.0, 0.0])


def test_k_larger_than_gallery_is_clamped_to_a_full_ranking():
    query, gallery = dyadic_data(seed=2, num_queries=5, num_gallery=12)
    scores, indices = topk_search(query, gallery, 50, chunk_size=5)
    assert indices.shape == scores.shape == (5, 12)
    want_scores, want_indices = brute_force(query, gallery, 12)
    np.testing.assert_array_equal(indices, want_indices)
    # Every row is a permutation of the gallery.
    np.testing.assert_array_equal(np.sort(indices, axis=1), np.tile(np.arange(12), (5, 1)))


def test_score_blocks_never_exceed_the_chunk_sizes(monkeypatch):
    # The memory bound: no similarity block larger than query_chunk x chunk is
    # ever built, and together the blocks cover the [Q, G] matrix exactly once.
    query, gallery = dyadic_data(seed=3, num_queries=23, num_gallery=101)
    seen = []
    real = search._chunk_topk

    def spy(scores, k):
        seen.append(scores.shape)
        return real(scores, k)

    monkeypatch.setattr(search, "_chunk_topk", spy)
    chunked = topk_search(query, gallery, 10, chunk_size=16, query_chunk_size=8)
    assert max(rows for rows, _ in seen) == 8 and max(cols for _, cols in seen) == 16
    assert sum(rows * cols for rows, cols in seen) == 23 * 101
    assert len(seen) == 3 * 7  # ceil(23 / 8) query blocks x ceil(101 / 16) gallery chunks
    monkeypatch.setattr(search, "_chunk_topk", real)
    whole = topk_search(query, gallery, 10, chunk_size=101, query_chunk_size=23)
    np.testing.assert_array_equal(chunked[1], whole[1])
    np.testing.assert_array_equal(chunked[0], whole[0])


def test_float64_input_and_no_queries():
    gallery = np.eye(3)
    scores, indices = topk_search(np.array([[0.0, 0.5, 1.0]]), gallery, 2)
    np.testing.assert_array_equal(indices, [[2, 1]])
    np.testing.assert_array_equal(scores, np.array([[1.0, 0.5]], np.float32))
    scores, indices = topk_search(np.zeros((0, 3)), gallery, 2)
    assert scores.shape == indices.shape == (0, 2)


@pytest.mark.parametrize(
    "query, gallery, kwargs, match",
    [
        (np.ones((2, 3)), np.ones((4, 2)), {}, "feature sizes differ"),
        (np.ones((2, 3)), np.ones((0, 3)), {}, "gallery is empty"),
        (np.ones(3), np.ones((4, 3)), {}, r"query must be \[N, D\]"),
        (np.ones((2, 3)), np.ones((4, 3)), {"k": 0}, "k must be a positive integer, got 0"),
        (np.ones((2, 3)), np.ones((4, 3)), {"chunk_size": 0}, "chunk_size must be"),
        (np.ones((2, 3)), np.ones((4, 3)), {"query_chunk_size": 2.5}, "query_chunk_size must be"),
        (np.ones((2, 3)), np.array([[1.0] * 3] * 3 + [[1.0, np.nan, 1.0]]), {}, "gallery row 3"),
    ],
)
def test_rejects_bad_input(query, gallery, kwargs, match):
    kwargs = {"k": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        topk_search(query, gallery, **kwargs)


@pytest.mark.filterwarnings("ignore:.*encountered in matmul:RuntimeWarning")
def test_nan_from_overflowing_dot_products_is_reported():
    # Finite inputs whose float32 dot product is inf - inf = NaN.
    query = np.array([[1e30, -1e30]], np.float32)
    gallery = np.array([[1e30, 1e30], [0.0, 1.0], [1.0, 0.0]], np.float32)
    with pytest.raises(FloatingPointError, match="NaN"):
        topk_search(query, gallery, 1)

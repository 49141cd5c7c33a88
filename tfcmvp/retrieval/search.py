"""Memory-bounded exact top-k search by dot product (NumPy only).

The full ``[Q, G]`` similarity matrix is never built: queries are taken in
blocks of ``query_chunk_size`` rows and, for each block, the gallery in chunks
of ``chunk_size`` rows. Each ``[bq, bg]`` score block is reduced to its own
top-k by a linear-time selection (``np.partition``), and a running top-k per
query is merged with it. Peak memory is therefore about
``query_chunk_size x chunk_size`` float32 scores (plus a copy for the
selection and a boolean mask), independent of G: with the defaults
(1024 x 16384) about 150 MB on top of the inputs, so a 100,000-video gallery
at D=512 (200 MB of float32 features) is searched in well under 1 GB.
``benchmarks/bench_retrieval_search.py`` measures this.

Ordering contract (deterministic, independent of the chunk sizes):
  results are sorted by decreasing score; equal scores are ordered by
  increasing gallery index (what a stable sort of ``-scores`` gives). The
  same holds at the cut-off: when several gallery items tie for the last
  places, the ones with the lower index are kept. (The reference
  implementations leave tie order unspecified: VCOP ranks with the default,
  unstable ``np.argsort``, CoCLR with ``torch.topk``. Exact ties need
  duplicate or zero-norm features, so published numbers are unaffected.)

The search is exact: for a given pair the score is one float32 dot product,
so results match brute force ``np.argsort(-(q @ g.T), kind="stable")[:, :k]``
wherever the BLAS computes the same dot product bit for bit (always true when
the dot products are exactly representable; otherwise the two can differ only
between items whose scores are within a float32 rounding error).
"""

from __future__ import annotations

import numpy as np

DEFAULT_QUERY_CHUNK_SIZE = 1024
DEFAULT_CHUNK_SIZE = 16384


def _as_float32_matrix(name: str, x) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"{name} must be [N, D], got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.number):
        raise ValueError(f"{name} must be numeric, got dtype {x.dtype}")
    return np.ascontiguousarray(x, dtype=np.float32)


def _check_finite(name: str, x: np.ndarray, rows: int) -> None:
    # In row blocks so the boolean temporary stays small for a large gallery.
    for start in range(0, x.shape[0], rows):
        bad = ~np.isfinite(x[start : start + rows]).all(axis=1)
        if bad.any():
            raise ValueError(f"{name} row {start + int(np.argmax(bad))} is not finite (NaN or Inf)")


def _chunk_topk(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k columns of each row of ``scores`` [b, n], returned in column order.

    Lower columns win ties at the cut-off. Returns ``(values [b, k], columns
    [b, k])``, columns increasing within a row (not sorted by value).
    """
    b, n = scores.shape
    if k >= n:
        cols = np.broadcast_to(np.arange(n), (b, n))
        return scores, cols
    # k-th largest value per row in O(n): everything above it is in, and
    # values equal to it fill the remaining places lowest column first.
    kth = np.partition(scores, n - k, axis=1)[:, n - k]  # [b]
    keep = scores >= kth[:, None]  # [b, n]
    count = keep.sum(axis=1)  # [b]
    if np.any(count < k):
        # Only NaN can make fewer than k values compare >= the k-th largest.
        raise FloatingPointError("similarity scores contain NaN (overflow in the dot product?)")
    tied_rows = np.flatnonzero(count > k)
    if tied_rows.size:
        sub = scores[tied_rows]  # [t, n]
        above = sub > kth[tied_rows, None]  # [t, n]
        at = sub == kth[tied_rows, None]  # [t, n]
        room = k - above.sum(axis=1)  # [t]
        keep[tied_rows] = above | (at & (np.cumsum(at, axis=1) <= room[:, None]))
    # np.nonzero walks row-major: exactly k columns per row, increasing.
    cols = np.nonzero(keep)[1].reshape(b, k)  # [b, k]
    return np.take_along_axis(scores, cols, axis=1), cols


def topk_search(
    query,
    gallery,
    k: int,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    query_chunk_size: int = DEFAULT_QUERY_CHUNK_SIZE,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k gallery items for each query by dot product, in bounded memory.

    For cosine similarity pass the output of
    ``tfcmvp.retrieval.protocols.prepare`` (unit-norm rows).

    Args:
      query: ``[Q, D]`` (cast to float32).
      gallery: ``[G, D]`` (cast to float32).
      k: results per query. A ``k`` larger than G is clamped to G (every
        gallery item is ranked), so the outputs then have G columns.
      chunk_size: gallery rows scored at a time.
      query_chunk_size: query rows scored at a time. Memory is about
        ``query_chunk_size * chunk_size`` floats; the results do not depend on
        either size.

    Returns:
      ``(scores [Q, min(k, G)] float32, indices [Q, min(k, G)] int64)``,
      each row sorted by decreasing score, ties by increasing gallery index.

    Raises:
      ValueError: bad shapes, an empty gallery, k or a chunk size below 1,
        or non-finite input (the message names the array and row).
    """
    query = _as_float32_matrix("query", query)
    gallery = _as_float32_matrix("gallery", gallery)
    if query.shape[1] != gallery.shape[1]:
        raise ValueError(
            f"query and gallery feature sizes differ: {query.shape} vs {gallery.shape}"
        )
    if gallery.shape[0] == 0:
        raise ValueError("gallery is empty: nothing to search")
    for name, value in (
        ("k", k),
        ("chunk_size", chunk_size),
        ("query_chunk_size", query_chunk_size),
    ):
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    _check_finite("query", query, query_chunk_size)
    _check_finite("gallery", gallery, chunk_size)

    num_queries, num_gallery = query.shape[0], gallery.shape[0]
    k = min(int(k), num_gallery)
    top_scores = np.empty((num_queries, k), np.float32)  # [Q, k]
    top_indices = np.empty((num_queries, k), np.int64)  # [Q, k]

    for q0 in range(0, num_queries, query_chunk_size):
        q_block = query[q0 : q0 + query_chunk_size]  # [bq, D]
        best_scores = np.empty((q_block.shape[0], 0), np.float32)  # [bq, <=k]
        best_indices = np.empty((q_block.shape[0], 0), np.int64)  # [bq, <=k]
        for g0 in range(0, num_gallery, chunk_size):
            scores = q_block @ gallery[g0 : g0 + chunk_size].T  # [bq, bg]
            chunk_scores, chunk_cols = _chunk_topk(scores, k)  # [bq, k'] each
            # Running best first: its indices are all lower than this chunk's
            # and each part lists equal scores by increasing index, so a
            # stable sort on -score keeps the lower-index-first tie order.
            merged_scores = np.concatenate([best_scores, chunk_scores], axis=1)  # [bq, <=2k]
            merged_indices = np.concatenate([best_indices, chunk_cols + g0], axis=1)
            order = np.argsort(-merged_scores, axis=1, kind="stable")[:, :k]  # [bq, <=k]
            best_scores = np.take_along_axis(merged_scores, order, axis=1)
            best_indices = np.take_along_axis(merged_indices, order, axis=1)
        top_scores[q0 : q0 + query_chunk_size] = best_scores
        top_indices[q0 : q0 + query_chunk_size] = best_indices
    return top_scores, top_indices

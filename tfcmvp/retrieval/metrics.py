"""Retrieval recall: a query hits at k when any of its top-k gallery videos has its class."""

from __future__ import annotations

import numpy as np

DEFAULT_KS = (1, 5, 10, 20, 50)


def recall_key(k: int) -> str:
    """Result key for recall at ``k``: ``"R@5"``."""
    return f"R@{k}"


def hit_matrix(query_labels, gallery_labels, topk_indices) -> np.ndarray:
    """Whether each retrieved gallery video has the query's class.

    Args:
      query_labels: ``[Q]`` class of each query.
      gallery_labels: ``[G]`` class of each gallery video.
      topk_indices: ``[Q, K]`` gallery indices, best first.

    Returns:
      ``[Q, K]`` bool.
    """
    query_labels = np.asarray(query_labels)
    gallery_labels = np.asarray(gallery_labels)
    topk_indices = np.asarray(topk_indices)
    if query_labels.ndim != 1 or gallery_labels.ndim != 1:
        raise ValueError(
            f"labels must be 1-D, got query {query_labels.shape}, gallery {gallery_labels.shape}"
        )
    if topk_indices.ndim != 2 or topk_indices.shape[0] != query_labels.shape[0]:
        raise ValueError(
            f"topk_indices must be [Q={query_labels.shape[0]}, K], got {topk_indices.shape}"
        )
    if topk_indices.size and (
        topk_indices.min() < 0 or topk_indices.max() >= gallery_labels.shape[0]
    ):
        raise ValueError(
            f"topk_indices out of range for a gallery of {gallery_labels.shape[0]} videos: "
            f"[{topk_indices.min()}, {topk_indices.max()}]"
        )
    return gallery_labels[topk_indices] == query_labels[:, None]  # [Q, K]


def recall_at_k(query_labels, gallery_labels, topk_indices, ks=DEFAULT_KS) -> dict[str, float]:
    """Recall at each k, in percent (0-100).

    A query counts as a hit at k when any of its first k retrieved gallery
    videos has its class. A query whose class has no gallery video can never
    hit and counts as a miss (it stays in the denominator).

    Clamping: a k larger than the gallery size G means "the whole gallery";
    it is evaluated at G, so R@k then equals R@G. This needs ``topk_indices``
    to rank the whole gallery (K == G, which ``topk_search`` returns for any
    k >= G); a k larger than K when K < G is an error, since the ranks past K
    are unknown.

    Args:
      query_labels: ``[Q]`` class of each query (any comparable dtype).
      gallery_labels: ``[G]`` class of each gallery video.
      topk_indices: ``[Q, K]`` gallery indices, best first.
      ks: the cut-offs.

    Returns:
      ``{"R@1": 12.5, "R@5": ...}`` in the order of ``ks``; Python floats.
    """
    hits = hit_matrix(query_labels, gallery_labels, topk_indices)  # [Q, K]
    num_queries, depth = hits.shape
    num_gallery = np.asarray(gallery_labels).shape[0]
    if num_queries == 0:
        raise ValueError("recall is undefined without queries (Q=0)")
    # Rank of the first hit; `depth` (past the end) when there is none.
    first_hit = np.where(hits.any(axis=1), hits.argmax(axis=1), depth)  # [Q]
    results = {}
    for k in ks:
        if int(k) != k or k < 1:
            raise ValueError(f"ks must be positive integers, got {k!r}")
        if k > depth and depth < num_gallery:
            raise ValueError(
                f"R@{k} needs the top {k} results but topk_indices has only {depth} columns "
                f"for a gallery of {num_gallery}; search with k >= {max(ks)}"
            )
        effective = min(int(k), depth)
        results[recall_key(int(k))] = float(100.0 * np.mean(first_hit < effective))
    return results

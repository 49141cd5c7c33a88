"""Nearest-neighbour video retrieval: test videos query the train videos.

NumPy only (no TensorFlow), so every step is testable on hand-made features:

    feats = video_features(clip_feats, protocol)          # [V, N, D] -> [V, D]
    q, g = prepare(test_feats, train_feats, protocol)     # protocol post-processing
    scores, idx = topk_search(q, g, k=50)                 # chunked, memory-bounded
    recall = recall_at_k(test_labels, train_labels, idx)  # {"R@1": ..., "R@50": ...}

Protocols ("vcop" default, "coclr") are described in ``protocols``; the tie
and clamping rules in ``search`` and ``metrics``.
"""

from tfcmvp.retrieval.metrics import DEFAULT_KS, hit_matrix, recall_at_k, recall_key
from tfcmvp.retrieval.protocols import (
    COCLR,
    PROTOCOLS,
    VCOP,
    check_protocol,
    l2_normalize,
    prepare,
    video_features,
)
from tfcmvp.retrieval.report import format_table, plot_retrieval, write_json
from tfcmvp.retrieval.search import topk_search

__all__ = [
    "COCLR",
    "DEFAULT_KS",
    "PROTOCOLS",
    "VCOP",
    "check_protocol",
    "format_table",
    "hit_matrix",
    "l2_normalize",
    "plot_retrieval",
    "prepare",
    "recall_at_k",
    "recall_key",
    "topk_search",
    "video_features",
    "write_json",
]

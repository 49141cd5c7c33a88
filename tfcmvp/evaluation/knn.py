"""Weighted k-nearest-neighbour classification of frozen features (NumPy only).

The recipe of InstDisc (Wu et al., CVPR 2018, ``kNN`` in
zhirongw/lemniscate.pytorch ``test.py``), used since by MoCo, DINO and the
video SSL papers that report kNN accuracy:

1. every feature (train and test) is L2-normalised, so a dot product is the
   cosine similarity;
2. each test video takes its k most similar train videos;
3. a neighbour of similarity ``s`` votes for its class with weight
   ``exp(s / T)`` (T = 0.07): near neighbours count for much more than far
   ones, where a plain majority would count them alike;
4. a class's score is the sum of the weights of its neighbours; the classes
   ranked by score give top-1 and top-5 accuracy.

Settings here: k = 20 and 200 (:data:`DEFAULT_KS`) and T = 0.07
(:data:`DEFAULT_TEMPERATURE`), as in those papers. A k above the number of
train videos is capped at it (every train video votes); callers report the
cap (``k_used``).

Tie rules (deterministic; the references leave them to ``torch.topk``):
neighbours with equal similarity at the k-th place are taken lowest train
index first (:func:`tfcmvp.retrieval.search.topk_search`), and classes with
equal scores are ranked lowest class index first. A class no neighbour
votes for scores 0. With C classes and C <= 5, top-5 is 100 % by
construction.

Memory: the neighbours come from the chunked exact search of retrieval (the
``[Q, G]`` similarity matrix is never built) and the ``[Q, C]`` class scores
are built :data:`QUERY_BLOCK` queries at a time.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from tfcmvp.errors import ConfigError
from tfcmvp.retrieval.protocols import l2_normalize
from tfcmvp.retrieval.search import topk_search

DEFAULT_KS = (20, 200)
DEFAULT_TEMPERATURE = 0.07
TOP = (1, 5)  # accuracies reported: top-1 and top-5
QUERY_BLOCK = 4096  # queries whose [block, C] class scores are held at once


def check_labels(name: str, labels, size: int) -> np.ndarray:
    """``labels`` as int64 ``[size]`` of class indices >= 0, or a ValueError naming ``name``."""
    labels = np.asarray(labels)
    if labels.shape != (size,):
        raise ValueError(
            f"{name} labels must have shape ({size},) (one per video), got {labels.shape}"
        )
    if size and not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{name} labels must be integer class indices, got dtype {labels.dtype}")
    labels = labels.astype(np.int64)
    if size and labels.min() < 0:
        raise ValueError(
            f"{name} labels must be >= 0 (a class index), got {labels.min()} at "
            f"video {int(np.argmin(labels))}"
        )
    return labels


def check_k(k) -> int:
    """``k`` as a positive int, or a ValueError quoting it."""
    if isinstance(k, bool) or int(k) != k or k < 1:
        raise ConfigError(f"k must be a positive integer, got {k!r}")
    return int(k)


def check_ks(ks) -> list:
    """``ks`` as a non-empty list of positive ints, or a ValueError quoting the bad one."""
    ks = [check_k(k) for k in ks]
    if not ks:
        raise ConfigError("ks is empty: give at least one k")
    return ks


def check_temperature(temperature) -> float:
    """``temperature`` as a positive finite float, or a ValueError quoting it."""
    if not np.isfinite(temperature) or temperature <= 0:
        raise ConfigError(f"temperature must be a positive number, got {temperature!r}")
    return float(temperature)


def _votes(
    similarity: np.ndarray,
    neighbours: np.ndarray,
    train_labels: np.ndarray,
    temperature: float,
    num_classes: int,
) -> np.ndarray:
    """Class scores ``[Q, C]`` from the neighbours' similarities and indices ``[Q, k]``."""
    # float64: exp(1 / 0.07) ~ 1.6e6 per neighbour; sums of 200 stay exact enough.
    weights = np.exp(similarity.astype(np.float64) / temperature)  # [Q, k]
    scores = np.zeros((similarity.shape[0], num_classes), np.float64)  # [Q, C]
    rows = np.broadcast_to(np.arange(similarity.shape[0])[:, None], neighbours.shape)  # [Q, k]
    np.add.at(scores, (rows, train_labels[neighbours]), weights)
    return scores


def _num_classes(num_classes, *label_sets) -> int:
    largest = max((int(labels.max()) for labels in label_sets if labels.size), default=-1)
    if num_classes is None:
        return largest + 1
    if largest >= num_classes:
        raise ValueError(f"label {largest} >= num_classes {num_classes}")
    return int(num_classes)


def knn_class_scores(
    test_features,
    train_features,
    train_labels,
    *,
    k: int,
    temperature: float = DEFAULT_TEMPERATURE,
    num_classes: int | None = None,
) -> np.ndarray:
    """Weighted kNN class scores: ``sum over the k nearest of exp(cosine / T)`` per class.

    Args:
      test_features: ``[Q, D]`` (L2-normalised here; zero rows stay zero).
      train_features: ``[G, D]`` (likewise).
      train_labels: ``[G]`` class indices >= 0.
      k: neighbours per test video; capped at G.
      temperature: T of the weights ``exp(similarity / T)``.
      num_classes: columns of the result; None = ``max(train_labels) + 1``.

    Returns:
      float64 ``[Q, num_classes]``: each row sums to the weights of its
      ``min(k, G)`` neighbours.

    Raises:
      ValueError: bad shapes, labels, k, temperature or non-finite features.
    """
    k, temperature = check_k(k), check_temperature(temperature)
    train_features = np.asarray(train_features)
    train_labels = check_labels("train", train_labels, train_features.shape[0])
    num_classes = _num_classes(num_classes, train_labels)
    test, train = l2_normalize(np.asarray(test_features)), l2_normalize(train_features)
    similarity, neighbours = topk_search(test, train, k=k)  # [Q, min(k, G)] each
    return _votes(similarity, neighbours, train_labels, temperature, num_classes)


def rank_classes(scores: np.ndarray, top: int) -> np.ndarray:
    """The ``top`` best classes of each row of ``scores`` ``[Q, C]``, best first.

    Returns ``[Q, min(top, C)]``; equal scores are ranked lowest class index
    first (a stable sort).
    """
    return np.argsort(-scores, axis=1, kind="stable")[:, :top]


def topk_hits(ranked: np.ndarray, labels: np.ndarray, tops: Sequence[int] = TOP) -> dict:
    """``{t: bool [Q]}``: whether the true label is among the first t classes of ``ranked``."""
    return {t: (ranked[:, :t] == labels[:, None]).any(axis=1) for t in tops}


def knn_accuracy(
    test_features,
    test_labels,
    train_features,
    train_labels,
    *,
    ks: Sequence[int] = DEFAULT_KS,
    temperature: float = DEFAULT_TEMPERATURE,
    num_classes: int | None = None,
) -> list:
    """Weighted-kNN top-1 and top-5 accuracy (percent) for each k (see the module docstring).

    Args:
      test_features, test_labels: ``[Q, D]`` features and ``[Q]`` class indices
        of the videos classified.
      train_features, train_labels: ``[G, D]`` and ``[G]`` of the labelled bank.
      ks: neighbour counts; each is capped at G.
      temperature: T of the weights.
      num_classes: None = one more than the largest label of either split.

    Returns:
      One dict per k, in the order given: ``{"k": k, "k_used": min(k, G),
      "top1": %, "top5": %}``. A test video whose class has no train video is
      a miss.

    Raises:
      ValueError: empty or malformed features or labels, a bad k or temperature.
    """
    ks = check_ks(ks)
    temperature = check_temperature(temperature)
    test_features, train_features = np.asarray(test_features), np.asarray(train_features)
    for name, features in (("test", test_features), ("train", train_features)):
        if features.ndim != 2 or features.shape[0] == 0:
            raise ValueError(f"{name} features must be a non-empty [N, D], got {features.shape}")
    test_labels = check_labels("test", test_labels, test_features.shape[0])
    train_labels = check_labels("train", train_labels, train_features.shape[0])
    num_classes = _num_classes(num_classes, test_labels, train_labels)
    test, train = l2_normalize(test_features), l2_normalize(train_features)  # once, not per k
    hits = {k: {t: [] for t in TOP} for k in ks}
    for start in range(0, test.shape[0], QUERY_BLOCK):
        block = slice(start, start + QUERY_BLOCK)
        # The k nearest are the first k of the max(ks) nearest (same order, same tie rule).
        similarity, neighbours = topk_search(test[block], train, k=max(ks))  # [b, K] each
        for k in ks:
            scores = _votes(
                similarity[:, :k], neighbours[:, :k], train_labels, temperature, num_classes
            )  # [b, C]
            ranked = rank_classes(scores, max(TOP))
            for t, hit in topk_hits(ranked, test_labels[block]).items():
                hits[k][t].append(hit)
    return [
        dict(
            {"k": k, "k_used": min(k, train.shape[0])},
            **{f"top{t}": 100.0 * float(np.concatenate(hits[k][t]).mean()) for t in TOP},
        )
        for k in ks
    ]

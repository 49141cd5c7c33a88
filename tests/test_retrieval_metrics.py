"""Recall@k on hand-made retrieval problems whose answers are worked out below."""

import numpy as np
import pytest

from tfcmvp.retrieval import hit_matrix, prepare, recall_at_k, topk_search, video_features

# Gallery (train) videos in 2-D, with their classes:
#   g0 ( 1, 0) c0    g1 ( 3, 0) c1    g2 (0, 1) c1
#   g3 (-1, 0) c2    g4 ( 0,-1) c2    g5 (1, 1) c3   <- class 3 has a single video
# g0 and g1 point the same way: their cosine to any query is identical (a tie).
GALLERY = np.array([[1, 0], [3, 0], [0, 1], [-1, 0], [0, -1], [1, 1]], np.float64)
GALLERY_LABELS = np.array([0, 1, 1, 2, 2, 3])
# Queries (test videos). Values are dyadic so clip means below are exact.
#   q0 ( 1, 0)      c1: ranking g0=g1 (1.0), g5 (.71), g2=g4 (0), g3 (-1)
#                       -> [0, 1, 5, 2, 4, 3]; tie g0/g1 broken by index, so
#                       the first hit (g1, class 1) is at rank 2.
#   q1 ( .875, 1)   c3: g5 (.998), g2 (.75), g0=g1 (.66), g3 (-.66), g4 (-.75)
#                       -> [5, 2, 0, 1, 3, 4]; hit at rank 1 (the lone class-3 video).
#   q2 (-1, -.125)  c0: g3 (.99), g4 (.12), g2 (-.12), g5 (-.79), g0=g1 (-.99)
#                       -> [3, 4, 2, 5, 0, 1]; hit (g0) at rank 5.
#   q3 ( 0, 1)      c4: class 4 has no gallery video: a miss at every k.
QUERY = np.array([[1, 0], [0.875, 1], [-1, -0.125], [0, 1]], np.float64)
QUERY_LABELS = np.array([1, 3, 0, 4])
RANKING = [[0, 1, 5, 2, 4, 3], [5, 2, 0, 1, 3, 4], [3, 4, 2, 5, 0, 1], [2, 5, 0, 1, 3, 4]]


def as_clips(videos, num_clips=10):
    """[V, D] -> [V, 10, D] clip features whose mean is exactly the video."""
    offsets = np.where(np.arange(num_clips) % 2 == 0, 0.5, -0.5)[None, :, None]  # [1, N, 1]
    return (videos[:, None, :] + offsets).astype(np.float32)  # [V, N, D]


def test_hand_made_retrieval_end_to_end():
    query = video_features(as_clips(QUERY), "vcop")
    gallery = video_features(as_clips(GALLERY), "vcop")
    np.testing.assert_array_equal(query, QUERY.astype(np.float32))
    q, g = prepare(query, gallery, "vcop")
    _, indices = topk_search(q, g, k=50, chunk_size=4)
    np.testing.assert_array_equal(indices, RANKING)  # k=50 clamped to the 6 gallery videos
    recall = recall_at_k(QUERY_LABELS, GALLERY_LABELS, indices)
    # First hits at ranks 2, 1, 5 and never: R@1 = 1/4, R@5 = 3/4; k >= 6 sees
    # the whole gallery and stays at 3/4 because q3 can never hit.
    assert recall == {"R@1": 25.0, "R@5": 75.0, "R@10": 75.0, "R@20": 75.0, "R@50": 75.0}
    assert list(recall) == ["R@1", "R@5", "R@10", "R@20", "R@50"]
    assert recall_at_k(QUERY_LABELS, GALLERY_LABELS, indices, ks=(1, 2, 4, 5, 6)) == {
        "R@1": 25.0,
        "R@2": 50.0,
        "R@4": 50.0,
        "R@5": 75.0,
        "R@6": 75.0,
    }


def test_vcop_and_coclr_differ_when_centring_moves_the_neighbours():
    # Everything sits near (10, 0): raw cosine is dominated by that offset.
    #   gallery g0 (10, 1) c0, g1 (10, -1) c1
    #   queries q0 (10, -.5) c0, q1 (10, -1.5) c1
    # VCOP: q0 is at -2.9 deg, closer to g1 (-5.7 deg) than g0 (+5.7 deg): a miss;
    #       q1 -> g1: a hit. R@1 = 50.
    # CoCLR: query mean (10, -1), gallery mean (10, 0); centred q0 (0, .5),
    #       q1 (0, -.5), g0 (0, 1), g1 (0, -1): both hit. R@1 = 100.
    gallery = np.array([[10, 1], [10, -1]], np.float32)
    query = np.array([[10, -0.5], [10, -1.5]], np.float32)
    labels = np.array([0, 1])
    recalls = {}
    for protocol in ("vcop", "coclr"):
        q, g = prepare(query, gallery, protocol)
        _, indices = topk_search(q, g, k=1)
        recalls[protocol] = recall_at_k(labels, labels, indices, ks=(1,))
    assert recalls == {"vcop": {"R@1": 50.0}, "coclr": {"R@1": 100.0}}


def test_hit_matrix_and_string_labels():
    hits = hit_matrix(
        np.array(["run", "jump"]),
        np.array(["jump", "run", "run"]),
        np.array([[1, 0, 2], [2, 1, 0]]),
    )
    np.testing.assert_array_equal(hits, [[True, False, True], [False, False, True]])


def test_recall_is_a_percentage_and_counts_classless_queries_as_misses():
    gallery_labels = np.array([0, 0, 1])
    indices = np.array([[0, 1], [2, 0], [0, 2]])
    # Query 0 (c0) hits at 1; query 1 (c0) at 2; query 2 (c7) never.
    recall = recall_at_k([0, 0, 7], gallery_labels, indices, ks=(1, 2))
    assert recall == pytest.approx({"R@1": 100 / 3, "R@2": 200 / 3})
    assert all(isinstance(v, float) and 0.0 <= v <= 100.0 for v in recall.values())


def test_k_past_the_gallery_is_clamped_only_for_a_full_ranking():
    gallery_labels = np.array([5, 6, 7])
    full = np.array([[2, 1, 0], [0, 1, 2]])  # K == G: the whole gallery is ranked
    recall = recall_at_k([5, 9], gallery_labels, full, ks=(2, 3, 50))
    assert recall == {"R@2": 0.0, "R@3": 50.0, "R@50": 50.0}  # R@50 == R@G
    with pytest.raises(ValueError, match="R@5 needs the top 5 results .* only 2 columns"):
        recall_at_k([5, 9], gallery_labels, full[:, :2], ks=(1, 5))


@pytest.mark.parametrize(
    "args, match",
    [
        (([], [1, 2], np.zeros((0, 1), int)), "without queries"),
        (([1], [1, 2], [[2]]), "out of range for a gallery of 2"),
        (([1, 2], [1, 2], [[0]]), r"\[Q=2, K\]"),
        (([[1]], [1, 2], [[0]]), "1-D"),
    ],
)
def test_recall_rejects_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        recall_at_k(*args)


def test_recall_rejects_bad_k():
    with pytest.raises(ValueError, match="positive integers, got 0"):
        recall_at_k([1], [1], [[0]], ks=(0,))

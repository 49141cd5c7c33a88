"""Weighted kNN (tfcmvp.evaluation.knn) against a NumPy reference written out from the recipe."""

import numpy as np
import pytest

from tfcmvp.evaluation import knn


def reference_scores(test, train, train_labels, k, temperature, num_classes):
    """InstDisc's vote, by brute force in float64: cosine similarity of L2-normalised rows,
    the k most similar train rows (stable: lower index first), class score = sum exp(s / T)."""
    test = np.asarray(test, np.float64)
    train = np.asarray(train, np.float64)
    test = test / np.linalg.norm(test, axis=1, keepdims=True)
    train = train / np.linalg.norm(train, axis=1, keepdims=True)
    similarity = test @ train.T  # [Q, G]
    scores = np.zeros((test.shape[0], num_classes))
    for q in range(test.shape[0]):
        for j in np.argsort(-similarity[q], kind="stable")[:k]:
            scores[q, train_labels[j]] += np.exp(similarity[q, j] / temperature)
    return scores


def reference_accuracy(test, test_labels, train, train_labels, k, temperature, num_classes):
    scores = reference_scores(test, train, train_labels, k, temperature, num_classes)
    ranked = np.argsort(-scores, axis=1, kind="stable")
    return {
        f"top{t}": 100.0
        * np.mean([test_labels[q] in ranked[q, :t] for q in range(len(test_labels))])
        for t in (1, 5)
    }


def random_set(seed, num_classes=8, dim=6, train=60, test=25):
    """Class-dependent clusters with enough noise that neighbours of several classes mix."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(num_classes, dim))
    train_labels = rng.integers(0, num_classes, train)
    test_labels = rng.integers(0, num_classes, test)
    train_x = centres[train_labels] + rng.normal(scale=0.9, size=(train, dim))
    test_x = centres[test_labels] + rng.normal(scale=0.9, size=(test, dim))
    return (train_x.astype(np.float32), train_labels, test_x.astype(np.float32), test_labels)


@pytest.mark.parametrize("k", [1, 3, 20, 500])
def test_class_scores_match_the_reference(k):
    train_x, train_y, test_x, _ = random_set(0)
    got = knn.knn_class_scores(test_x, train_x, train_y, k=k, temperature=0.07, num_classes=8)
    expected = reference_scores(test_x, train_x, train_y, min(k, 60), 0.07, 8)
    assert got.shape == (25, 8)
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_accuracy_matches_the_reference_for_each_k():
    train_x, train_y, test_x, test_y = random_set(3)
    results = knn.knn_accuracy(test_x, test_y, train_x, train_y, ks=(1, 5, 20, 200))
    assert [r["k"] for r in results] == [1, 5, 20, 200]
    assert [r["k_used"] for r in results] == [1, 5, 20, 60]  # 200 capped at the 60 train videos
    values = []
    for result in results:
        expected = reference_accuracy(test_x, test_y, train_x, train_y, result["k_used"], 0.07, 8)
        assert result["top1"] == pytest.approx(expected["top1"], abs=1e-9), result
        assert result["top5"] == pytest.approx(expected["top5"], abs=1e-9), result
        values.append((result["top1"], result["top5"]))
    # The set can tell the ks apart and top-1 from top-5 (neither 0 nor 100).
    assert len(set(values)) >= 3
    assert all(0 < top1 < top5 < 100 for top1, top5 in values)


def test_weighting_overrules_the_majority():
    # One very close neighbour of class 0 against two farther ones of class 1 (k = 3).
    query = np.array([[1.0, 0.0]])
    angles = np.arccos([0.99, 0.70, 0.60])  # cosine similarities 0.99, 0.70, 0.60
    train = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    labels = np.array([0, 1, 1])
    scores = knn.knn_class_scores(query, train, labels, k=3, temperature=0.07)
    # Written out: class 0 gets e^(0.99/0.07) ~ 1.39e6, class 1 e^(0.7/0.07) + e^(0.6/0.07)
    # ~ 27,300. A plain majority (every weight 1) would pick class 1.
    np.testing.assert_allclose(
        scores[0], [np.exp(0.99 / 0.07), np.exp(0.70 / 0.07) + np.exp(0.60 / 0.07)], rtol=1e-5
    )
    assert knn.rank_classes(scores, 1)[0, 0] == 0
    # A temperature so high that every weight is ~1 gives the plain majority back.
    flat = knn.knn_class_scores(query, train, labels, k=3, temperature=1e6)
    np.testing.assert_allclose(flat[0], [1.0, 2.0], rtol=1e-5)
    assert knn.rank_classes(flat, 1)[0, 0] == 1
    result = knn.knn_accuracy(query, [0], train, labels, ks=(3,))[0]
    assert result["top1"] == 100.0


def test_ties_go_to_the_lower_index():
    # Two train videos with the same feature: the neighbour cut-off keeps train index 0
    # (class 3); with both in, their classes score alike and class 1 ranks first.
    train = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    labels = np.array([3, 1, 2])
    query = np.array([[2.0, 0.0]])
    one = knn.knn_class_scores(query, train, labels, k=1, num_classes=4)
    np.testing.assert_allclose(one[0], [0.0, 0.0, 0.0, np.exp(1 / 0.07)], rtol=1e-6)
    two = knn.knn_class_scores(query, train, labels, k=2, num_classes=4)
    assert two[0, 1] == two[0, 3] > 0
    assert knn.rank_classes(two, 5)[0].tolist() == [1, 3, 0, 2]  # zero scores by index too


def test_hand_made_accuracy_with_a_known_answer():
    # Six classes on a circle; each query sits between two train videos of different classes.
    angles = np.deg2rad([0, 10, 60, 70, 120, 130, 180, 190, 240, 250, 300, 310])
    train = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    labels = np.array([0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 0])
    # Queries at 3, 64 and 187 deg of true classes 0, 2 and 5 (train angles and classes above).
    # k = 1: the nearest train videos are 0 deg (class 0: hit), 60 deg (class 1; class 2 of
    # 70 deg is not voted for but ranks in the top 5 by index) and 190 deg (class 4; class 5
    # ranks sixth behind 4 and the unvoted 0, 1, 2, 3: a top-5 miss).
    # k = 5: the 187 deg query reaches 250 deg (class 5) after 190, 180, 240 and 130 deg, so
    # class 5 is voted for and enters its top 5; top-1 is unchanged (the 3 and 64 deg queries
    # keep 0 and 1 ahead: e^(cos 3/T) + e^(cos 53/T) > e^(cos 7/T) + e^(cos 57/T) and
    # e^(cos 4/T) + e^(cos 54/T) > e^(cos 6/T) + e^(cos 56/T)).
    query_angles = np.deg2rad([3, 64, 187])
    query = np.stack([np.cos(query_angles), np.sin(query_angles)], axis=1)
    result = knn.knn_accuracy(query, [0, 2, 5], train, labels, ks=(1, 5))
    assert result == [
        {"k": 1, "k_used": 1, "top1": pytest.approx(100 / 3), "top5": pytest.approx(200 / 3)},
        {"k": 5, "k_used": 5, "top1": pytest.approx(100 / 3), "top5": pytest.approx(100.0)},
    ]


def test_blocks_of_queries_give_the_same_result(monkeypatch):
    train_x, train_y, test_x, test_y = random_set(2)
    whole = knn.knn_accuracy(test_x, test_y, train_x, train_y, ks=(5, 20))
    monkeypatch.setattr(knn, "QUERY_BLOCK", 4)
    assert knn.knn_accuracy(test_x, test_y, train_x, train_y, ks=(5, 20)) == whole


def test_a_test_class_without_train_videos_is_a_miss():
    train = np.array([[1.0, 0.0], [0.0, 1.0]])
    result = knn.knn_accuracy(np.array([[1.0, 0.1]]), [7], train, [0, 1], ks=(2,))[0]
    assert result["top1"] == 0.0 and result["top5"] == 0.0  # class 7 scores 0, ranks 8th


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"ks": (0,)}, "k must be a positive integer, got 0"),
        ({"ks": ()}, "ks is empty"),
        ({"temperature": 0.0}, "temperature must be a positive number, got 0.0"),
        ({"train_labels": [0, -1]}, "train labels must be >= 0"),
        ({"train_labels": [0]}, "train labels must have shape (2,)"),
        ({"test_labels": [0.5]}, "test labels must be integer class indices"),
        ({"train_features": np.array([[1.0, np.nan], [0.0, 1.0]])}, "not finite"),
    ],
)
def test_bad_input_is_named(kwargs, message):
    args = {
        "test_features": np.array([[1.0, 0.0]]),
        "test_labels": [0],
        "train_features": np.array([[1.0, 0.0], [0.0, 1.0]]),
        "train_labels": [0, 1],
    }
    args.update(kwargs)
    with pytest.raises(
        ValueError,
    ) as error:
        knn.knn_accuracy(
            args.pop("test_features"),
            args.pop("test_labels"),
            args.pop("train_features"),
            args.pop("train_labels"),
            **args,
        )
    assert message in str(error.value)

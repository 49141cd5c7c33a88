"""Linear probe (tfcmvp.evaluation.linear_probe): known answers, C chosen on the train
split only."""

import sys

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from tfcmvp.evaluation import linear_probe as lp

GRID = (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)


def unit_rows(x):
    """Rows scaled to unit L2 norm, rounded to float32 as the library keeps features, in float64
    for the solver."""
    x = np.asarray(x, np.float64)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32).astype(np.float64)


def noisy_set(seed=11, num_classes=4, dim=5, train=48, test=24, noise=0.7):
    """Overlapping clusters: the fitted classifier depends on C."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(num_classes, dim))
    train_y = np.arange(train) % num_classes
    test_y = np.arange(test) % num_classes
    train_x = centres[train_y] + rng.normal(scale=noise, size=(train, dim))
    test_x = centres[test_y] + rng.normal(scale=noise, size=(test, dim))
    return train_x, train_y, test_x, test_y


def reference_selection(train_x, train_y, grid, folds, seed):
    """The selection written out: for each C, fit on all folds but one, predict the one left
    out, score the out-of-fold top-1; the best C wins, ties to the smaller."""
    x = unit_rows(train_x)
    fold_of = lp.stratified_folds(train_y, folds, seed)
    accuracy = []
    for c in grid:
        predicted = np.empty_like(train_y)
        for fold in range(folds):
            out = fold_of == fold
            model = LogisticRegression(C=c, max_iter=1000).fit(x[~out], train_y[~out])
            predicted[out] = model.predict(x[out])
        accuracy.append(100.0 * np.mean(predicted == train_y))
    best = max(accuracy)
    return min(c for c, a in zip(grid, accuracy) if a == best), accuracy


@pytest.fixture(scope="module")
def selection():
    """The noisy set and the reference's (chosen C, out-of-fold accuracy per C), seed 7."""
    data = noisy_set()
    return data, reference_selection(data[0], data[1], GRID, 3, seed=7)


def test_separable_features_give_100_percent():
    # Four classes, each a tight bundle around its own axis of R^6 (L2 norm is irrelevant).
    rng = np.random.default_rng(0)
    train_y, test_y = np.repeat(np.arange(4), 6), np.repeat(np.arange(4), 3)
    train_x = np.eye(6)[train_y] * rng.uniform(0.5, 3.0, (24, 1)) + rng.normal(0, 0.05, (24, 6))
    test_x = np.eye(6)[test_y] * rng.uniform(0.5, 3.0, (12, 1)) + rng.normal(0, 0.05, (12, 6))
    result = lp.linear_probe(train_x, train_y, test_x, test_y, c_grid=GRID, folds=3, seed=0)
    assert result["top1"] == 100.0 and result["top5"] == 100.0
    assert result["validation_top1"] == [100.0] * len(GRID)
    assert result["chosen_C"] == 0.01  # every C validates at 100: the tie goes to the smallest
    assert result["not_converged"] == []


def test_chosen_c_is_what_train_validation_picks(selection):
    (train_x, train_y, test_x, test_y), (expected_c, expected_accuracy) = selection
    # The data make the choice non-trivial: neither end of the grid, accuracies differ, and
    # the best accuracy is shared by the chosen C and a larger one (the tie rule decides).
    assert GRID[0] < expected_c < GRID[-1]
    assert len(set(expected_accuracy)) > 2
    best = [c for c, a in zip(GRID, expected_accuracy) if a == max(expected_accuracy)]
    assert len(best) == 2 and best[0] == expected_c
    result = lp.linear_probe(train_x, train_y, test_x, test_y, c_grid=GRID, folds=3, seed=7)
    assert result["chosen_C"] == expected_c
    np.testing.assert_allclose(result["validation_top1"], expected_accuracy)
    # Then refitted on the whole train split with that C and scored on the test split.
    model = LogisticRegression(C=expected_c, max_iter=1000).fit(unit_rows(train_x), train_y)
    proba = model.predict_proba(unit_rows(test_x))
    ranked = np.argsort(-proba, axis=1, kind="stable")
    assert result["top1"] == pytest.approx(100.0 * np.mean(ranked[:, 0] == test_y))
    top2 = lp.linear_probe(train_x, train_y, test_x, test_y, c_grid=GRID, folds=3, seed=7)
    assert top2 == result  # deterministic with the seed
    assert {k: result[k] for k in ("C_grid", "folds", "seed", "max_iter")} == {
        "C_grid": list(GRID),
        "folds": 3,
        "seed": 7,
        "max_iter": 1000,
    }


def test_the_test_split_never_picks_c(selection):
    (train_x, train_y, test_x, _), (chosen, _) = selection
    # Test labels made to favour another C: exactly what the whole-train model with that
    # C predicts, so that C would score 100 % on the test split and the chosen one less.
    x_train, x_test = unit_rows(train_x), unit_rows(test_x)
    predictions = {
        c: LogisticRegression(C=c, max_iter=1000).fit(x_train, train_y).predict(x_test)
        for c in GRID
    }
    other = next(
        c for c in reversed(GRID) if not np.array_equal(predictions[c], predictions[chosen])
    )
    rigged = predictions[other]
    test_accuracy = {c: np.mean(predictions[c] == rigged) for c in GRID}
    assert max(test_accuracy, key=test_accuracy.get) != chosen  # the test split would pick other
    result = lp.linear_probe(train_x, train_y, test_x, rigged, c_grid=GRID, folds=3, seed=7)
    assert result["chosen_C"] == chosen
    assert result["top1"] == pytest.approx(100.0 * test_accuracy[chosen]) and result["top1"] < 100
    # And with the test labels scrambled the choice is the same.
    scrambled = np.random.default_rng(0).permutation(rigged)
    assert (
        lp.linear_probe(train_x, train_y, test_x, scrambled, c_grid=GRID, folds=3, seed=7)[
            "chosen_C"
        ]
        == chosen
    )


def test_stratified_folds_spread_every_class_and_follow_the_seed():
    labels = np.array([0] * 7 + [1] * 5 + [2] * 2 + [3] * 9)
    folds = lp.stratified_folds(labels, 3, seed=1)
    assert folds.shape == labels.shape and set(folds.tolist()) == {0, 1, 2}
    sizes = np.bincount(folds, minlength=3)
    assert sizes.max() - sizes.min() <= 1
    for label in range(4):
        per_fold = np.bincount(folds[labels == label], minlength=3)
        assert per_fold.max() - per_fold.min() <= 1, (label, per_fold)
    np.testing.assert_array_equal(folds, lp.stratified_folds(labels, 3, seed=1))
    assert not np.array_equal(folds, lp.stratified_folds(labels, 3, seed=2))


def test_a_class_missing_from_training_ranks_last():
    train_x = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [1.0, 0.1], [0.1, 1.0]])
    train_y = np.array([0, 0, 1, 1, 0, 1])
    # 7 classes in all: class 6 has no train video, so its test video misses top-1 and top-5.
    result = lp.linear_probe(
        train_x,
        train_y,
        np.array([[1.0, 0.05], [0.5, 0.5]]),
        [0, 6],
        c_grid=(1.0,),
        folds=2,
        seed=0,
    )
    assert result["top1"] == 50.0 and result["top5"] == 50.0


def test_missing_scikit_learn_names_the_extra(monkeypatch):
    for name in ("sklearn", "sklearn.linear_model", "sklearn.exceptions"):
        monkeypatch.setitem(sys.modules, name, None)  # import now raises ImportError
    with pytest.raises(lp.MissingDependencyError) as error:
        lp.linear_probe(np.eye(2), [0, 1], np.eye(2), [0, 1])
    assert "pip install 'tfcmvp[eval]'" in str(error.value)
    assert isinstance(error.value, ImportError)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"train_labels": [0, 0, 0, 0]}, "the train split holds one class only (0)"),
        ({"folds": 5}, "folds must be an integer from 2 to the number of train videos (4), got 5"),
        ({"folds": 1}, "folds must be an integer from 2"),
        ({"c_grid": (1.0, 0.0)}, "the C grid must be positive numbers, got (1.0, 0.0)"),
        ({"c_grid": ()}, "the C grid must be positive numbers, got ()"),
        ({"test_features": np.ones((2, 3))}, "train and test feature sizes differ"),
    ],
)
def test_bad_input_is_named(kwargs, message):
    args = {
        "train_features": np.eye(4)[:, :2] + 0.1,
        "train_labels": [0, 1, 0, 1],
        "test_features": np.eye(2),
        "test_labels": [0, 1],
        "folds": 2,
    }
    args.update(kwargs)
    with pytest.raises(ValueError) as error:
        lp.linear_probe(
            args.pop("train_features"),
            args.pop("train_labels"),
            args.pop("test_features"),
            args.pop("test_labels"),
            **args,
        )
    assert message in str(error.value)

"""Linear probe: multinomial logistic regression on frozen, L2-normalised video features.

Solver: scikit-learn's ``LogisticRegression`` (L-BFGS, multinomial
cross-entropy, L2 penalty on the weights, unpenalised bias, at most
:data:`MAX_ITER` iterations), an optional dependency
(``pip install 'tfcmvp[eval]'``, imported only when a probe runs). Why a
library and not our own solver: the problem is convex, so every correct
solver reaches the same optimum, and the value is in a solver that is known
to get there (line search, convergence test, a warning when it stops early);
scikit-learn's is the one the CLIP paper's linear-probe recipe names
(Radford et al. 2021, appendix A.3: L-BFGS logistic regression, 1,000
iterations at most, the L2 strength swept on validation data). A Keras loop
with SGD would need a learning-rate schedule of its own and stop short of
the optimum; a hand-written L-BFGS would be code to maintain and test for a
result scikit-learn already gives.

``C`` is scikit-learn's inverse regularisation strength: the objective is
``C * (sum over videos of the cross-entropy) + ||W||^2 / 2``.

Model selection uses the train split only:

1. the train videos are dealt to ``folds`` stratified folds
   (:func:`stratified_folds`, seeded);
2. for each ``C`` of the grid (:data:`DEFAULT_C_GRID`: 10^-2 .. 10^4 in
   half-decade steps) a model is fitted on all folds but one and predicts
   the one left out, so every train video is predicted once by a model that
   did not see it; the out-of-fold top-1 accuracy scores the ``C``;
3. the best ``C`` wins, ties going to the smaller ``C`` (the stronger
   regularisation);
4. a model with that ``C`` is refitted on the whole train split, and only
   then are the test videos classified (top-1 and top-5).

The test split enters :func:`linear_probe` after the choice is made and is
never passed to :func:`select_c`. The only randomness is the fold assignment,
so a seed fixes the result.

Classes: the class indices of both splits share one space (``num_classes``
columns). A class with no train video gets no model output and ranks below
every trained class (ties by class index), so its test videos are misses.
With C classes and C <= 5, top-5 is 100 % by construction.
"""

from __future__ import annotations

import logging
import warnings
from typing import Sequence

import numpy as np

from tfcmvp.errors import ConfigError, InvalidDataError, TfcmvpError
from tfcmvp.evaluation.knn import TOP, check_labels, rank_classes, topk_hits
from tfcmvp.retrieval.protocols import l2_normalize

logger = logging.getLogger(__name__)

# 10^-2, 10^-1.5, ..., 10^4: from "barely fitted" to "nearly unregularised" for unit-norm
# features of a few hundred to a few thousand train videos.
DEFAULT_C_GRID = tuple(float(10.0 ** (e / 2)) for e in range(-4, 9))
DEFAULT_FOLDS = 3
MAX_ITER = 1000  # L-BFGS iterations per fit (CLIP's recipe)
# BLAS threads during a fit. One: an L-BFGS step is a few modest matrix products, where
# thread hand-offs cost more than they give. Measured on the 2 shared cores of the
# development machine (load ~9): one fit of UCF101's size (9,500 x 512, 101 classes, 23
# iterations) 2.8 s with 1 thread vs 19.9 s with 2; the quickstart's 40 fits 0.2 s vs 17 s.
SOLVER_THREADS = 1
INSTALL_HINT = "pip install 'tfcmvp[eval]'"
_UNSEEN_CLASS_SCORE = -1.0  # below any probability: classes absent from the fitted model


class MissingDependencyError(TfcmvpError, ImportError):
    """scikit-learn is not installed (the ``eval`` extra)."""


def require_sklearn():
    """scikit-learn's ``LogisticRegression`` and ``ConvergenceWarning``, imported now.

    Raises:
      MissingDependencyError: scikit-learn is not installed; the message says
        how to install it.
    """
    try:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression
    except ImportError as error:
        raise MissingDependencyError(
            f"the linear probe needs scikit-learn, which is not installed ({error}); "
            f"install it with: {INSTALL_HINT}"
        ) from error
    return LogisticRegression, ConvergenceWarning


def solver_name() -> str:
    """``"scikit-learn <version> LogisticRegression (lbfgs, L2)"``, for the record."""
    import sklearn

    return f"scikit-learn {sklearn.__version__} LogisticRegression (lbfgs, L2)"


def check_c_grid(c_grid) -> tuple:
    """``c_grid`` as a non-empty tuple of positive finite floats, or a ValueError quoting it."""
    grid = tuple(c_grid)
    if not grid or any(isinstance(c, bool) or not np.isfinite(c) or c <= 0 for c in grid):
        raise ConfigError(f"the C grid must be positive numbers, got {grid!r}")
    return tuple(float(c) for c in grid)


def stratified_folds(labels, folds: int, seed: int) -> np.ndarray:
    """Fold index (0 .. folds-1) of every video, each class spread evenly over the folds.

    The videos of each class (in class order) are shuffled with ``seed`` and
    dealt round-robin, each class starting at the fold after the one where the
    previous class stopped: fold sizes differ by at most one, and a class's
    count in two folds by at most one. The folds depend on the class
    numbering as well as the seed: the same classes numbered otherwise (the
    records' labels vs a labels CSV's sorted names) are folded as if by
    another seed.

    Args:
      labels: ``[N]`` class indices.
      folds: number of folds, 2 .. N.
      seed: the shuffle's seed.

    Returns:
      int64 ``[N]``.
    """
    labels = np.asarray(labels)
    if isinstance(folds, bool) or int(folds) != folds or not 2 <= folds <= labels.size:
        raise ConfigError(
            f"folds must be an integer from 2 to the number of train videos "
            f"({labels.size}), got {folds!r}"
        )
    rng = np.random.default_rng(seed)
    assignment = np.empty(labels.size, np.int64)
    next_fold = 0
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        assignment[members] = (next_fold + np.arange(members.size)) % folds
        next_fold = (next_fold + members.size) % folds
    return assignment


def _fit(
    features: np.ndarray, labels: np.ndarray, c: float, max_iter: int, record: list, what: str
):
    """A LogisticRegression fitted on ``features`` [N, D]; non-convergence appended to
    ``record``."""
    logistic_regression, convergence_warning = require_sklearn()
    from threadpoolctl import threadpool_limits  # a dependency of scikit-learn

    model = logistic_regression(C=c, max_iter=max_iter)
    with warnings.catch_warnings(record=True) as caught, threadpool_limits(SOLVER_THREADS):
        warnings.simplefilter("always", convergence_warning)
        model.fit(features, labels)
    for warning in caught:
        if issubclass(warning.category, convergence_warning):
            record.append(what)
        else:  # not ours to swallow
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    return model


def class_scores(model, features: np.ndarray, num_classes: int) -> np.ndarray:
    """Probabilities ``[N, num_classes]`` of a fitted model; classes it never saw score -1."""
    scores = np.full((features.shape[0], num_classes), _UNSEEN_CLASS_SCORE)  # [N, C]
    scores[:, model.classes_] = model.predict_proba(features)  # [N, classes seen]
    return scores


def _check_train(features, labels) -> tuple:
    features = np.asarray(features)
    if features.ndim != 2 or features.shape[0] == 0:
        raise ValueError(f"train features must be a non-empty [N, D], got {features.shape}")
    labels = check_labels("train", labels, features.shape[0])
    if np.unique(labels).size < 2:
        raise InvalidDataError(
            f"the train split holds one class only ({int(labels[0])}): a "
            f"classifier needs at least two"
        )
    return features, labels


def select_c(
    features,
    labels,
    *,
    c_grid: Sequence[float] = DEFAULT_C_GRID,
    folds: int = DEFAULT_FOLDS,
    seed: int = 0,
    max_iter: int = MAX_ITER,
    not_converged: list | None = None,
) -> tuple:
    """The ``C`` of the grid with the best out-of-fold top-1 on these (train) videos.

    Args:
      features: ``[N, D]`` L2-normalised train features.
      labels: ``[N]`` class indices.
      c_grid: candidate values of ``C``.
      folds: stratified folds (:func:`stratified_folds`).
      seed: seed of the fold assignment.
      max_iter: L-BFGS iterations per fit.
      not_converged: a list that collects ``"C=<c> fold <f>"`` for fits that
        stopped at ``max_iter``.

    Returns:
      ``(chosen C, [out-of-fold top-1 % per C of the grid])``; ties go to the
      smaller ``C``.
    """
    features, labels = _check_train(features, labels)
    grid = check_c_grid(c_grid)
    record = not_converged if not_converged is not None else []
    fold_of = stratified_folds(labels, folds, seed)
    accuracies = []
    for c in grid:
        correct = 0
        for fold in range(folds):
            held_out = fold_of == fold
            if np.unique(labels[~held_out]).size < 2:
                raise InvalidDataError(
                    f"fold {fold} of the train split leaves one class to fit; "
                    f"use fewer folds or more train videos"
                )
            model = _fit(
                features[~held_out], labels[~held_out], c, max_iter, record, f"C={c:g} fold {fold}"
            )
            correct += int(np.sum(model.predict(features[held_out]) == labels[held_out]))
        accuracies.append(100.0 * correct / labels.size)
    best = max(accuracies)
    chosen = min(c for c, accuracy in zip(grid, accuracies) if accuracy == best)
    return chosen, accuracies


def _check_test(test_features, test_labels, train_shape) -> tuple:
    """(features, labels) of the test split as arrays, checked against the train features."""
    test_features = np.asarray(test_features)
    if test_features.ndim != 2 or test_features.shape[0] == 0:
        raise ValueError(f"test features must be a non-empty [Q, D], got {test_features.shape}")
    if test_features.shape[1] != train_shape[1]:
        raise ValueError(
            f"train and test feature sizes differ: {train_shape} vs {test_features.shape}"
        )
    test_labels = check_labels("test", test_labels, test_features.shape[0])
    return test_features, test_labels


def _warn_not_converged(not_converged: list, max_iter: int, fits: int) -> None:
    logger.warning(
        "L-BFGS stopped at max_iter=%d before converging in %d of %d fits (%s)",
        max_iter,
        len(not_converged),
        fits,
        ", ".join(not_converged[:5]) + (", ..." if len(not_converged) > 5 else ""),
    )


def linear_probe(
    train_features,
    train_labels,
    test_features,
    test_labels,
    *,
    c_grid: Sequence[float] = DEFAULT_C_GRID,
    folds: int = DEFAULT_FOLDS,
    seed: int = 0,
    max_iter: int = MAX_ITER,
    num_classes: int | None = None,
) -> dict:
    """Linear-probe top-1 and top-5 (percent) with ``C`` chosen on the train split.

    Features are L2-normalised here (zero rows stay zero). See the module
    docstring for the selection.

    Args:
      train_features, train_labels: ``[N, D]`` and ``[N]``: the classifier's
        training set, also the only data model selection sees.
      test_features, test_labels: ``[Q, D]`` and ``[Q]``: scored once, by the
        refitted model.
      c_grid, folds, seed, max_iter: see :func:`select_c`.
      num_classes: None = one more than the largest label of either split.

    Returns:
      ``{"C_grid", "folds", "seed", "max_iter", "validation_top1" (per C),
      "chosen_C", "top1", "top5", "not_converged" (fits that stopped at
      max_iter), "solver"}``.

    Raises:
      MissingDependencyError: scikit-learn is not installed.
      ValueError: malformed inputs, fewer than two train classes, bad folds
        or grid.
    """
    require_sklearn()  # before any work
    train_features, train_labels = _check_train(train_features, train_labels)
    test_features, test_labels = _check_test(test_features, test_labels, train_features.shape)
    if num_classes is None:
        num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    grid = check_c_grid(c_grid)
    # float64 for the solver: given float32, scikit-learn's L-BFGS works in float32 and its
    # answer moves by more than its tolerance (the features themselves are float32, as cached).
    train = l2_normalize(train_features).astype(np.float64)  # [N, D]
    test = l2_normalize(test_features).astype(np.float64)  # [Q, D]

    not_converged = []
    chosen, accuracies = select_c(
        train,
        train_labels,
        c_grid=grid,
        folds=folds,
        seed=seed,
        max_iter=max_iter,
        not_converged=not_converged,
    )
    # Selection is over; the test split is used from here on only.
    model = _fit(train, train_labels, chosen, max_iter, not_converged, f"C={chosen:g} refit")
    ranked = rank_classes(class_scores(model, test, num_classes), max(TOP))
    hits = topk_hits(ranked, test_labels)
    if not_converged:
        _warn_not_converged(not_converged, max_iter, len(grid) * folds + 1)
    result = {
        "C_grid": list(grid),
        "folds": int(folds),
        "seed": int(seed),
        "max_iter": int(max_iter),
        "validation_top1": accuracies,
        "chosen_C": chosen,
    }
    result.update({f"top{t}": 100.0 * float(hits[t].mean()) for t in TOP})
    result.update(not_converged=not_converged, solver=solver_name())
    return result

"""kNN and linear-probe evaluation of an export: features -> methods -> table and JSON.

    record = evaluate_export("exports/v_net", "data/ucf101", ProbeSettings(seed=1),
                             output="results/evaluate.json")
    print(format_table(record))

The features are those of retrieval's VCOP protocol, from the same cache
(:func:`tfcmvp.retrieval.features.extract_features`): a video's feature is
the mean of the export's ``embed`` output over 10 clips with evenly spaced
centres, then L2-normalised. The train split is the labelled bank of the kNN
and the classifier's training set (and its model selection's only data); the
test split is what both classify. Labels are the records' class labels, or
one label kind of a labels CSV (:mod:`tfcmvp.retrieval.labels`), e.g. the
synthetic data's ``scene``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
from typing import Optional, Sequence

import numpy as np

from tfcmvp.errors import ConfigError, InvalidDataError
from tfcmvp.evaluation import knn as knn_lib
from tfcmvp.evaluation import linear_probe as linear_lib
from tfcmvp.retrieval import features as features_lib
from tfcmvp.retrieval.evaluate import data_description, extract_named, labelled_splits
from tfcmvp.retrieval.report import model_name

POSITIONS = "vcop"  # retrieval's default protocol: N clips with evenly spaced centres
DEFAULT_CLIPS = 10
RECORD_LABEL = "class"  # label_kind when the records' own class labels are used
# Ends the error naming a video without a label.
_NEEDS_LABELS = "kNN and the linear probe need labelled videos (or --labels)"


def _num_classes(train_labels: np.ndarray, test_labels: np.ndarray) -> int:
    return int(max(train_labels.max(), test_labels.max())) + 1


def _checked_sets(train_features, train_labels, test_features, test_labels) -> tuple:
    """The two sets as arrays, their labels checked; ValueError when one is empty."""
    train_features, test_features = np.asarray(train_features), np.asarray(test_features)
    train_labels = knn_lib.check_labels("train", train_labels, train_features.shape[0])
    test_labels = knn_lib.check_labels("test", test_labels, test_features.shape[0])
    if not train_labels.size or not test_labels.size:
        raise InvalidDataError(
            f"need train and test videos, got {train_labels.size} train and {test_labels.size} test"
        )
    return train_features, train_labels, test_features, test_labels


def _knn_entry(train: tuple, test: tuple, ks, temperature: float, num_classes: int) -> dict:
    """The record's ``knn`` entry: (features, labels) of the bank and the queries."""
    return {
        "temperature": knn_lib.check_temperature(temperature),
        "results": knn_lib.knn_accuracy(
            test[0],
            test[1],
            train[0],
            train[1],
            ks=ks,
            temperature=temperature,
            num_classes=num_classes,
        ),
    }


@dataclasses.dataclass(frozen=True)
class ProbeSettings:
    """Which methods run on the features, and their settings.

    Attributes:
      knn, linear: which methods run (at least one).
      ks, temperature: :func:`tfcmvp.evaluation.knn.knn_accuracy`.
      c_grid, folds, seed, max_iter: :func:`tfcmvp.evaluation.linear_probe.linear_probe`.
    """

    knn: bool = True
    linear: bool = True
    ks: Sequence[int] = knn_lib.DEFAULT_KS
    temperature: float = knn_lib.DEFAULT_TEMPERATURE
    c_grid: Sequence[float] = linear_lib.DEFAULT_C_GRID
    folds: int = linear_lib.DEFAULT_FOLDS
    seed: int = 0
    max_iter: int = linear_lib.MAX_ITER

    def check(self) -> None:
        """ConfigError (or MissingDependencyError) for bad settings, before any work."""
        if not (self.knn or self.linear):
            raise ConfigError("no method chosen: ask for knn, linear or both")
        if self.linear:
            linear_lib.require_sklearn()
            linear_lib.check_c_grid(self.c_grid)
        if self.knn:
            knn_lib.check_ks(self.ks)
            knn_lib.check_temperature(self.temperature)


def evaluate_features(
    train_features,
    train_labels,
    test_features,
    test_labels,
    probe: Optional[ProbeSettings] = None,
) -> dict:
    """Both methods on given video features (NumPy in, dict out; no model, no files).

    Args:
      train_features, train_labels: ``[N, D]``, ``[N]``: the labelled bank.
      test_features, test_labels: ``[Q, D]``, ``[Q]``: the videos classified.
      probe: the methods and their settings (None: :class:`ProbeSettings`' defaults).

    Returns:
      ``{"num_train", "num_test", "num_classes", "seed", "knn": {...} or None,
      "linear": {...} or None}``.
    """
    probe = ProbeSettings() if probe is None else probe
    if not (probe.knn or probe.linear):
        raise ConfigError("no method chosen: ask for knn, linear or both")
    train_features, train_labels, test_features, test_labels = _checked_sets(
        train_features, train_labels, test_features, test_labels
    )
    num_classes = _num_classes(train_labels, test_labels)
    result = {
        "num_train": int(train_labels.size),
        "num_test": int(test_labels.size),
        "num_classes": num_classes,
        "seed": int(probe.seed),
        "knn": None,
        "linear": None,
    }
    if probe.linear:
        linear_lib.require_sklearn()  # fail before the kNN's work, not after
    if probe.knn:
        result["knn"] = _knn_entry(
            (train_features, train_labels),
            (test_features, test_labels),
            probe.ks,
            probe.temperature,
            num_classes,
        )
    if probe.linear:
        result["linear"] = linear_lib.linear_probe(
            train_features,
            train_labels,
            test_features,
            test_labels,
            c_grid=probe.c_grid,
            folds=probe.folds,
            seed=probe.seed,
            max_iter=probe.max_iter,
            num_classes=num_classes,
        )
    return result


def _description(model_dir, data_dir, extracted, labels) -> dict:
    """The record's model, data, label kind and features entries."""
    data = data_description(data_dir, extracted)
    if labels is not None:
        data["labels"] = {"file": labels.path, "column": labels.column}
    return {
        "model": str(model_dir),
        "name": model_name(model_dir),
        "data": data,
        "label_kind": labels.column if labels is not None else RECORD_LABEL,
        "features": {
            "clips": extracted.options.num_clips,
            "positions": POSITIONS,
            "video_feature": "mean of the clip embeddings, L2-normalised",
            "from_cache": bool(extracted.from_cache),
        },
    }


def evaluate_export(
    model_dir,
    data_dir,
    probe: Optional[ProbeSettings] = None,
    *,
    clips: int = DEFAULT_CLIPS,
    labels=None,
    cache_dir=None,
    use_cache: bool = True,
    batch_size: Optional[int] = None,
    output=None,
    progress: Optional[bool] = None,
) -> dict:
    """kNN and/or linear-probe accuracy of an exported network (see the module docstring).

    Args:
      model_dir: ``tfcmvp export`` folder (video, I-frame or motion network, or a classifier).
      data_dir: extraction output with ``train-*`` (labelled bank) and
        ``test-*`` shards.
      probe: the methods and their settings (None: :class:`ProbeSettings`' defaults).
      clips: clips per video, averaged into its feature.
      labels: a :class:`tfcmvp.retrieval.labels.LabelTable` to score by
        instead of the records' class labels.
      cache_dir, use_cache, batch_size, progress: as for retrieval
        (:func:`tfcmvp.retrieval.features.extract_features`); without
        ``cache_dir`` the cache is ``DATA/.tfcmvp_cache``, or
        ``.tfcmvp_cache`` beside ``output`` when DATA is read-only.
      output: optional JSON path (written atomically, parents created).

    Returns:
      The record (also written to ``output``): the result of
      :func:`evaluate_features` plus ``"model"``, ``"name"``, ``"data"`` (as
      retrieval describes it, with ``"labels"`` when a CSV was used),
      ``"label_kind"`` and ``"features"`` (clips, positions, whether from
      the cache).

    Raises:
      FileNotFoundError, ValueError: as for retrieval (missing export or
        shards, an export the pipeline cannot feed, a damaged or changed data
        folder), plus unlabelled videos and bad method settings;
      MissingDependencyError: ``linear`` without scikit-learn (before any work).
    """
    probe = ProbeSettings() if probe is None else probe
    probe.check()
    extracted = extract_named(
        model_dir,
        data_dir,
        output,
        clips=clips,
        positions=POSITIONS,
        batch_size=batch_size or features_lib.DEFAULT_BATCH_SIZE,
        cache_dir=cache_dir,
        use_cache=use_cache,
        progress=progress,
    )
    test, train = labelled_splits(data_dir, extracted, labels, needs=_NEEDS_LABELS)
    result = evaluate_features(train.features, train.labels, test.features, test.labels, probe)
    record = _description(model_dir, data_dir, extracted, labels)
    record.update(result)
    if output is not None:
        write_json(output, record)
    return record


def write_json(path, record: dict) -> None:
    """Writes ``record`` to ``path`` (parents created; written then renamed, never half a file)."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def format_table(record: dict) -> str:
    """The printed result: one row per method and setting, top-1 and top-5 in percent.

    Every number shown is in ``record`` (the JSON): ``k`` and ``k_used`` of
    each kNN row, ``chosen_C`` and the two accuracies.
    """
    header = ("method", "setting", "top-1", "top-5")
    rows = []
    for entry in (record.get("knn") or {}).get("results", []):
        setting = f"k={entry['k']}" + (
            f" (capped: {entry['k_used']})" if entry["k_used"] != entry["k"] else ""
        )
        rows.append(("kNN", setting, f"{entry['top1']:.1f}", f"{entry['top5']:.1f}"))
    linear = record.get("linear")
    if linear:
        rows.append(
            (
                "linear",
                f"C={linear['chosen_C']:g}",
                f"{linear['top1']:.1f}",
                f"{linear['top5']:.1f}",
            )
        )
    if not rows:
        raise ValueError("the record holds no kNN or linear result")
    widths = [max(len(line[i]) for line in (header, *rows)) for i in range(len(header))]

    def fmt(line):  # text left-aligned, numbers right-aligned
        return "  ".join(
            cell.ljust(w) if i < 2 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(line, widths))
        ).rstrip()

    return "\n".join([fmt(header), "  ".join("-" * w for w in widths)] + [fmt(r) for r in rows])


def format_settings(record: dict) -> str:
    """The lines under the table: what was classified, by which labels, with which settings."""
    kind = (
        "(the records' class labels)"
        if record["label_kind"] == RECORD_LABEL
        else f"by {record['label_kind']}"
    )
    lines = [
        f"{record['num_train']} train videos (kNN bank, classifier training set), "
        f"{record['num_test']} test videos, {record['num_classes']} classes {kind}"
    ]
    if record.get("knn"):
        lines.append(
            f"kNN: weights exp(cosine / {record['knn']['temperature']:g}), k capped at "
            f"the number of train videos"
        )
    linear = record.get("linear")
    if linear:
        grid = linear["C_grid"]
        lines.append(
            f"linear: C chosen from {len(grid)} values {min(grid):g}..{max(grid):g} by "
            f"{linear['folds']}-fold validation on the train split (seed "
            f"{linear['seed']}), out-of-fold top-1 {max(linear['validation_top1']):.1f}"
        )
        if len(grid) > 1 and linear["chosen_C"] in (min(grid), max(grid)):
            edge = "largest" if linear["chosen_C"] == max(grid) else "smallest"
            lines.append(
                f"linear: the chosen C is the grid's {edge}; a wider --c_grid may validate better"
            )
        if linear["not_converged"]:
            lines.append(
                f"linear: {len(linear['not_converged'])} fit(s) stopped at "
                f"max_iter={linear['max_iter']} (listed in the JSON)"
            )
    if record["num_classes"] <= 5:
        lines.append(f"top-5 of {record['num_classes']} classes is 100 by construction")
    return "\n".join(lines)

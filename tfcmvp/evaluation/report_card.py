"""One report card: every evaluation of several exports on one data set, one table.

    card = report_card({"joint": "models/joint", "scratch": "models/scratch"},
                       "data/ucf101", ReportSettings(seeds=(0, 1, 2)),
                       output="results/report.json", png="results/report.png")
    print(format_report(card))

Per model (an export folder, named by the user):

- retrieval R@1 under both protocols (:func:`tfcmvp.retrieval.evaluate.evaluate_retrieval`,
  ``"vcop"`` and ``"coclr"``);
- weighted kNN top-1 at k = 20 (k = 200 also in the JSON) and the linear
  probe's top-1 (:func:`tfcmvp.evaluation.run.evaluate_export`), on the same
  cached features as ``vcop`` retrieval, so the second method extracts nothing;
- optionally a short finetune (:func:`tfcmvp.finetuning.finetune.finetune`,
  video network exports only), top-1 on the test split.

Retrieval and kNN are deterministic: one value. The linear probe (its fold
split) and the finetune (its seed) are random: they run once per seed, and
the card shows the mean and the range (min-max) over the seeds.

When the data folder is UCF101 or HMDB51 split 1 (:func:`tfcmvp.paper_numbers.paper_dataset`)
and a video network export's backbone is one of the paper's, the paper's published
numbers (:mod:`tfcmvp.paper_numbers`) stand beside ours: retrieval R@1 under
the ``vcop`` column (the paper's protocol: 10 clips, mean, cosine) for a
pretrained export, finetune top-1 for both a pretrained (the paper's
UCF101-pretrained column) and a random-init export (its scratch column).
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import pathlib
from typing import Mapping, Optional, Sequence

from tfcmvp import paper_numbers
from tfcmvp.errors import ConfigError
from tfcmvp.evaluation import knn as knn_lib
from tfcmvp.evaluation import linear_probe as linear_lib
from tfcmvp.evaluation.report_model import (
    PROTOCOLS,
    ReportSettings,
    evaluate_model,
    paper_entries,
    summarise,
)
from tfcmvp.evaluation.report_table import METRICS, TABLE_K, format_report, plot_report
from tfcmvp.evaluation.run import write_json
from tfcmvp.export import contract
from tfcmvp.manifest import find_shards, read_manifest
from tfcmvp.retrieval import features as features_lib

# One model's evaluations live in report_model, the card's columns and renderings in
# report_table; their names are importable from here too.
__all__ = [
    "METRICS",
    "PROTOCOLS",
    "REPORT_VERSION",
    "ReportSettings",
    "TABLE_K",
    "check_seeds",
    "evaluate_model",
    "format_report",
    "paper_entries",
    "parse_models",
    "plot_report",
    "report_card",
    "summarise",
]

logger = logging.getLogger(__name__)

REPORT_VERSION = 1
RANDOM_METRICS = ("linear_top1", "finetune_top1")  # one value per seed


def parse_models(specs: Sequence[str]) -> dict:
    """``["NAME=DIR", ...]`` -> ``{NAME: Path(DIR)}`` (in the given order).

    Raises ValueError with a one-line message naming the bad entry: no ``=``,
    an empty name or folder, a name given twice, or a folder that is not an
    export (no ``saved_model.pb`` or ``assets/tfcmvp_export.json``).
    """
    if not specs:
        raise ConfigError("no model given: pass --models NAME=DIR [NAME=DIR ...]")
    models = {}
    for spec in specs:
        name, sep, folder = str(spec).partition("=")
        name, folder = name.strip(), folder.strip()
        if not sep or not name or not folder:
            raise ConfigError(
                f"--models entry {spec!r} is not NAME=DIR (a name for the table, '=', an "
                f"export folder)"
            )
        if name in models:
            raise ConfigError(f"--models: the name {name!r} is given twice; names must differ")
        path = pathlib.Path(folder)
        info = path / contract.ASSETS_DIR / contract.INFO_NAME
        if not path.is_dir():
            raise ConfigError(f"--models {name}={folder}: no such folder")
        if not (path / "saved_model.pb").is_file() or not info.is_file():
            raise ConfigError(
                f"--models {name}={folder}: not an export folder (no saved_model.pb or "
                f"{contract.ASSETS_DIR}/{contract.INFO_NAME}; `tfcmvp export` writes one)"
            )
        models[name] = path
    return models


def check_seeds(seeds: Sequence[int]) -> list:
    """The seeds as distinct ints (at least one), else ValueError."""
    seeds = list(seeds)
    if not seeds or any(isinstance(s, bool) or int(s) != s for s in seeds):
        raise ConfigError(f"seeds must be one or more integers, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds must differ, got {seeds!r}")
    return [int(s) for s in seeds]


def _check_settings(models, settings: ReportSettings) -> ReportSettings:
    """`settings` with its seeds and ks checked, before any work; ConfigError naming the bad
    setting."""
    if not models:
        raise ConfigError("no model to report on")
    seeds = check_seeds(settings.seeds)
    ks = knn_lib.check_ks(settings.ks)
    if TABLE_K not in ks:
        raise ConfigError(f"ks must include k={TABLE_K} (the table's kNN column), got {ks}")
    linear_lib.require_sklearn()  # before any extraction, not after
    linear_lib.check_c_grid(settings.c_grid)
    if settings.finetune_config is not None and settings.finetune_dir is None:
        raise ConfigError("a finetune needs finetune_dir (where its runs are written)")
    return dataclasses.replace(settings, seeds=seeds, ks=ks)


def _settings_entry(settings: ReportSettings) -> dict:
    """The card's ``settings``: what every model was evaluated with."""
    return {
        "clips": settings.clips,
        "retrieval_protocols": list(PROTOCOLS),
        "knn": {"ks": settings.ks, "temperature": knn_lib.DEFAULT_TEMPERATURE, "table_k": TABLE_K},
        "linear": {
            "folds": settings.folds,
            "C_grid": list(settings.c_grid),
            "max_iter": linear_lib.MAX_ITER,
            "solver": linear_lib.solver_name(),
        },
        "finetune": None
        if settings.finetune_config is None
        else {
            "config": str(settings.finetune_config),
            "overrides": list(settings.finetune_overrides),
            "dir": str(settings.finetune_dir),
        },
        "batch_size": settings.batch_size or features_lib.DEFAULT_BATCH_SIZE,
        "random_metrics": list(RANDOM_METRICS),
    }


def _data_entry(data_dir, manifest: Optional[dict], described: dict) -> dict:
    """The card's ``data``: the folder, its fingerprint and what retrieval says of it."""
    shards = {split: find_shards(data_dir, split) for split in features_lib.SPLITS}
    return {
        "dir": str(data_dir),
        "fingerprint": features_lib.data_fingerprint(data_dir, shards),
        "layout": described.get("layout"),
        "num_classes": described.get("num_classes"),
        "split": ((manifest or {}).get("options") or {}).get("split"),
        "paper_dataset": paper_numbers.paper_dataset(manifest),
        "queries": "test",
        "gallery": "train",
    }


def report_card(
    models: Mapping[str, object],
    data_dir,
    settings: Optional[ReportSettings] = None,
    *,
    output=None,
    png=None,
) -> dict:
    """Every evaluation of every model on one data set (see the module docstring).

    Args:
      models: ``{name: export folder}`` (:func:`parse_models` reads ``NAME=DIR``).
      data_dir: extraction output with ``train-*`` (gallery, kNN bank,
        classifier training set) and ``test-*`` shards.
      settings: what every model is evaluated with (seeds, labels, clips, kNN
        and linear-probe settings, the finetune, the feature cache):
        :class:`ReportSettings` (None: its defaults).
      output: optional JSON path (written atomically).
      png: optional figure path (:func:`plot_report`).

    Returns:
      ``{"report_version", "created", "data", "labels", "seeds", "settings",
      "models": {name: {"dir", "fingerprint", "network", "backbone", "source",
      "metrics": {key: summary}, "paper": {key: paper number}, "details"}}}``,
      a summary being :func:`summarise`'s dict, values in percent.

    Raises:
      ValueError, FileNotFoundError: bad settings (before any work), and what
        retrieval, the evaluation and the finetune raise (naming the model).
    """
    settings = _check_settings(models, ReportSettings() if settings is None else settings)
    manifest = read_manifest(data_dir)
    entries = {
        name: evaluate_model(name, model_dir, data_dir, settings, manifest)
        for name, model_dir in models.items()
    }
    labels = settings.labels
    card = {
        "report_version": REPORT_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "data": _data_entry(data_dir, manifest, next(iter(entries.values()))["details"]["data"]),
        "labels": None if labels is None else {"file": labels.path, "column": labels.column},
        "seeds": settings.seeds,
        "settings": _settings_entry(settings),
        "models": entries,
    }
    _write(card, output, png)
    return card


def _write(card: dict, output, png) -> None:
    if output is not None:
        write_json(output, card)
        logger.info("wrote %s", output)
    if png is not None:
        plot_report(card, png)
        logger.info("wrote %s", png)

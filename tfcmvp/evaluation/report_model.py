"""One model's entry of the report card: retrieval, kNN, linear probe, finetune, paper.

See :mod:`tfcmvp.evaluation.report_card` for what the card holds and why;
:func:`evaluate_model` makes one model's ``metrics`` and ``details``.
"""

from __future__ import annotations

import dataclasses
import logging
import pathlib
from typing import Optional, Sequence

from tfcmvp import paper_numbers
from tfcmvp.evaluation import knn as knn_lib
from tfcmvp.evaluation import linear_probe as linear_lib
from tfcmvp.evaluation.report_table import TABLE_K
from tfcmvp.evaluation.run import ProbeSettings, evaluate_export
from tfcmvp.finetuning.config import load_finetune_config
from tfcmvp.finetuning.finetune import finetune
from tfcmvp.retrieval import features as features_lib
from tfcmvp.retrieval.evaluate import evaluate_retrieval

logger = logging.getLogger("tfcmvp.evaluation.report_card")

PROTOCOLS = ("vcop", "coclr")
# Which record metric a paper number stands beside.
PAPER_COLUMNS = {"retrieval_R@1": "retrieval_vcop_R@1", "finetune_top1": "finetune_top1"}


@dataclasses.dataclass(frozen=True)
class ReportSettings:
    """What every model of a report card is evaluated with.

    Attributes:
      seeds: the seeds of the random methods (linear probe folds, finetune).
      labels: a :class:`tfcmvp.retrieval.labels.LabelTable` to score
        retrieval, kNN and the linear probe by instead of the records' class
        labels (the finetune always learns the records' class labels).
      clips: clips per video of the ``vcop`` features (retrieval, kNN, linear).
      ks, folds, c_grid: kNN neighbour counts (must include
        :data:`~tfcmvp.evaluation.report_table.TABLE_K`), linear-probe folds and C grid.
      finetune_config: a finetune YAML (e.g. ``configs/finetune_tiny_cpu.yaml``);
        None = no finetune. Its architecture is taken from each export.
      finetune_overrides: ``key=value`` overrides of it (``train.seed`` is set
        per seed).
      finetune_dir: folder of the finetune runs (``NAME/seed<k>`` each; an
        existing run is resumed); required with ``finetune_config``.
      cache_dir, use_cache, batch_size, progress: the feature cache and
        extraction (:func:`tfcmvp.retrieval.features.extract_features`).
    """

    seeds: Sequence[int] = (0,)
    labels: object = None
    clips: int = 10
    ks: Sequence[int] = knn_lib.DEFAULT_KS
    folds: int = linear_lib.DEFAULT_FOLDS
    c_grid: Sequence[float] = linear_lib.DEFAULT_C_GRID
    finetune_config: object = None
    finetune_overrides: Sequence[str] = ()
    finetune_dir: object = None
    cache_dir: object = None
    use_cache: bool = True
    batch_size: Optional[int] = None
    progress: Optional[bool] = None


def summarise(values: Sequence[float], seeds: Optional[Sequence[int]] = None) -> dict:
    """``{"values", "mean", "min", "max", "seeds"}`` of one metric (``seeds`` None:
    a deterministic method, one value)."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("no values to summarise")
    return {
        "values": values,
        "mean": sum(values) / len(values),
        "min": min(values),
        "max": max(values),
        "seeds": None if seeds is None else list(seeds),
    }


def _init_kind(info: dict) -> Optional[str]:
    """The paper's column for an export: scratch (random init) or pretrained (on UCF101:
    the only pretraining data with published retrieval numbers); None for others."""
    kind = (info.get("source") or {}).get("kind")
    if kind == "random_init":
        return paper_numbers.SCRATCH
    if kind == "pretrained":
        return paper_numbers.PRETRAINED_UCF101
    return None  # a finetuned classifier: no comparable number


def paper_entries(info: dict, manifest: Optional[dict]) -> dict:
    """``{record metric: PaperNumber record}`` for an export on a data folder, or ``{}``
    when the data set, the network (video network only), the backbone or the
    initialisation has no published number."""
    dataset = paper_numbers.paper_dataset(manifest)
    init = _init_kind(info)
    if dataset is None or init is None or info.get("network") != "video":
        return {}
    entries = {}
    for metric, column in PAPER_COLUMNS.items():
        number = paper_numbers.lookup(metric, dataset, info.get("backbone"), init)
        if number is not None:
            entries[column] = number.as_record()
    return entries


def _top1_at(knn_record: dict, k: int) -> dict:
    for entry in knn_record["results"]:
        if entry["k"] == k:
            return entry
    raise ValueError(f"the kNN record has no k={k}")


def _finetune(model_dir, data_dir, workdir, config_path, overrides, seed: int) -> dict:
    config = load_finetune_config(
        config_path, [f"train.seed={seed}", *overrides], model_dir=model_dir
    )
    result = finetune(config, data_dir, workdir, model_dir=model_dir, verbose=0)
    return {
        "seed": seed,
        "workdir": str(workdir),
        "top1": float(result.results["top1"]),
        "top5": float(result.results["top5"]),
        "epochs": result.results.get("epochs"),
    }


def _add_retrieval(metrics, details, name, model_dir, data_dir, shared: dict) -> None:
    """Retrieval R@1 under both protocols into ``metrics`` (and its record into ``details``)."""
    for protocol in PROTOCOLS:
        logger.info("%s: retrieval (%s)", name, protocol)
        record = evaluate_retrieval(model_dir, data_dir, protocol=protocol, **shared)
        details["retrieval"][protocol] = {
            k: v for k, v in record.items() if k.startswith("R@") or k.startswith("num_")
        }
        metrics[f"retrieval_{protocol}_R@1"] = summarise([record["R@1"]])
        details["data"] = record["data"]  # as retrieval describes it (both protocols alike)


def _add_probes(metrics, details, name, model_dir, data_dir, settings, shared) -> None:
    """kNN once (deterministic) and the linear probe per seed, into ``metrics``/``details``."""
    seeds = settings.seeds
    # The features come from the cache the vcop retrieval filled (same clips and positions).
    for i, seed in enumerate(seeds):
        logger.info("%s: %slinear probe (seed %d)", name, "kNN and " if i == 0 else "", seed)
        probe = ProbeSettings(
            knn=(i == 0),
            linear=True,
            ks=settings.ks,
            c_grid=settings.c_grid,
            folds=settings.folds,
            seed=seed,
        )
        record = evaluate_export(model_dir, data_dir, probe, **shared)
        if i == 0:
            details["knn"] = record["knn"]
            details["classification"] = {
                key: record[key] for key in ("num_train", "num_test", "num_classes", "label_kind")
            }
            entry = _top1_at(record["knn"], TABLE_K)
            metrics["knn_top1"] = summarise([entry["top1"]])
            details["knn_k_used"] = entry["k_used"]
        linear = record["linear"]
        details["linear"].append(
            {
                "seed": seed,
                "top1": linear["top1"],
                "top5": linear["top5"],
                "chosen_C": linear["chosen_C"],
                "not_converged": len(linear["not_converged"]),
            }
        )
    metrics["linear_top1"] = summarise([e["top1"] for e in details["linear"]], seeds)


def _add_finetune(metrics, details, name, info, model_dir, data_dir, settings) -> None:
    """A finetune per seed (video network exports only) into ``metrics``/``details``."""
    if info.get("network") != "video":
        details["finetune"] = {"skipped": f"a {info.get('network')} export, not a video network"}
        return
    results = []
    for seed in settings.seeds:
        logger.info("%s: finetune (seed %d)", name, seed)
        workdir = pathlib.Path(settings.finetune_dir) / name / f"seed{seed}"
        results.append(
            _finetune(
                model_dir,
                data_dir,
                workdir,
                settings.finetune_config,
                settings.finetune_overrides,
                seed,
            )
        )
    details["finetune"] = {"label_kind": "class", "runs": results}
    metrics["finetune_top1"] = summarise([r["top1"] for r in results], settings.seeds)


def evaluate_model(
    name: str,
    model_dir,
    data_dir,
    settings: ReportSettings,
    manifest: Optional[dict] = None,
) -> dict:
    """One model's entry of the card (see
    :func:`tfcmvp.evaluation.report_card.report_card`); `manifest`: the data
    folder's, for the paper's numbers."""
    info = features_lib.read_export(model_dir)
    shared = dict(
        clips=settings.clips,
        labels=settings.labels,
        cache_dir=settings.cache_dir,
        use_cache=settings.use_cache,
        batch_size=settings.batch_size or features_lib.DEFAULT_BATCH_SIZE,
        progress=settings.progress,
    )
    metrics, details = {}, {"retrieval": {}, "linear": [], "finetune": None}
    _add_retrieval(metrics, details, name, model_dir, data_dir, shared)
    _add_probes(metrics, details, name, model_dir, data_dir, settings, shared)
    if settings.finetune_config is not None:
        _add_finetune(metrics, details, name, info, model_dir, data_dir, settings)

    return {
        "dir": str(model_dir),
        "fingerprint": features_lib.model_fingerprint(model_dir),
        "network": info.get("network"),
        "backbone": info.get("backbone"),
        "embedding_dim": info.get("embedding_dim"),
        "input_shape": (info.get("input") or {}).get("shape"),
        "source": info.get("source"),
        "metrics": metrics,
        "paper": paper_entries(info, manifest),
        "details": details,
    }

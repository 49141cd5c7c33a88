"""One report card: every evaluation of several exports on one data set, one table.

    card = report_card({"joint": "models/joint", "scratch": "models/scratch"},
                       "data/ucf101", seeds=(0, 1, 2), output="results/report.json",
                       png="results/report.png")
    print(format_report(card))

Per model (an export folder, named by the user):

- retrieval R@1 under both protocols (:func:`tfcmvp.retrieval.evaluate.evaluate_retrieval`,
  ``"vcop"`` and ``"coclr"``);
- weighted kNN top-1 at k = 20 (k = 200 also in the JSON) and the linear
  probe's top-1 (:func:`tfcmvp.evaluation.run.evaluate_export`), on the same
  cached features as ``vcop`` retrieval, so the second method extracts nothing;
- optionally a short finetune (:func:`tfcmvp.finetuning.finetune.finetune`,
  V-Network exports only), top-1 on the test split.

Retrieval and kNN are deterministic: one value. The linear probe (its fold
split) and the finetune (its seed) are random: they run once per seed, and
the card shows the mean and the range (min-max) over the seeds.

When the data folder is UCF101 or HMDB51 split 1 (:func:`tfcmvp.paper_numbers.paper_dataset`)
and a V-Network export's backbone is one of the paper's, the paper's published
numbers (:mod:`tfcmvp.paper_numbers`) stand beside ours: retrieval R@1 under
the ``vcop`` column (the paper's protocol: 10 clips, mean, cosine) for a
pretrained export, finetune top-1 for both a pretrained (the paper's
UCF101-pretrained column) and a random-init export (its scratch column).
"""

from __future__ import annotations

import datetime
import logging
import pathlib
from typing import Mapping, Optional, Sequence

from tfcmvp import paper_numbers
from tfcmvp.evaluation import knn as knn_lib
from tfcmvp.evaluation import linear_probe as linear_lib
from tfcmvp.quickstart_report import spread

logger = logging.getLogger(__name__)

REPORT_VERSION = 1
TABLE_K = 20  # the kNN column: k = 20 (InstDisc's and pytorchvideo's headline k)
PROTOCOLS = ("vcop", "coclr")
# Metric keys of the record, in table order, with their column titles.
METRICS = {
    "retrieval_vcop_R@1": "R@1 (vcop)",
    "retrieval_coclr_R@1": "R@1 (coclr)",
    "knn_top1": f"kNN top-1 (k={TABLE_K})",
    "linear_top1": "linear top-1",
    "finetune_top1": "finetune top-1",
}
RANDOM_METRICS = ("linear_top1", "finetune_top1")  # one value per seed
# Which record metric a paper number stands beside.
PAPER_COLUMNS = {"retrieval_R@1": "retrieval_vcop_R@1", "finetune_top1": "finetune_top1"}


def parse_models(specs: Sequence[str]) -> dict:
    """``["NAME=DIR", ...]`` -> ``{NAME: Path(DIR)}`` (in the given order).

    Raises ValueError with a one-line message naming the bad entry: no ``=``,
    an empty name or folder, a name given twice, or a folder that is not an
    export (no ``saved_model.pb`` or ``assets/tfcmvp_export.json``).
    """
    from tfcmvp.export import contract

    if not specs:
        raise ValueError("no model given: pass --models NAME=DIR [NAME=DIR ...]")
    models = {}
    for spec in specs:
        name, sep, folder = str(spec).partition("=")
        name, folder = name.strip(), folder.strip()
        if not sep or not name or not folder:
            raise ValueError(
                f"--models entry {spec!r} is not NAME=DIR (a name for the table, '=', an "
                f"export folder)"
            )
        if name in models:
            raise ValueError(f"--models: the name {name!r} is given twice; names must differ")
        path = pathlib.Path(folder)
        info = path / contract.ASSETS_DIR / contract.INFO_NAME
        if not path.is_dir():
            raise ValueError(f"--models {name}={folder}: no such folder")
        if not (path / "saved_model.pb").is_file() or not info.is_file():
            raise ValueError(
                f"--models {name}={folder}: not an export folder (no saved_model.pb or "
                f"{contract.ASSETS_DIR}/{contract.INFO_NAME}; `tfcmvp export` writes one)"
            )
        models[name] = path
    return models


def check_seeds(seeds: Sequence[int]) -> list:
    """The seeds as distinct ints (at least one), else ValueError."""
    seeds = list(seeds)
    if not seeds or any(isinstance(s, bool) or int(s) != s for s in seeds):
        raise ValueError(f"seeds must be one or more integers, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must differ, got {seeds!r}")
    return [int(s) for s in seeds]


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
    when the data set, the network (V-Network only), the backbone or the
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
    from tfcmvp.finetuning.config import load_finetune_config
    from tfcmvp.finetuning.finetune import finetune

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


def evaluate_model(
    name: str,
    model_dir,
    data_dir,
    *,
    seeds: Sequence[int],
    labels=None,
    clips: int = 10,
    ks: Sequence[int] = knn_lib.DEFAULT_KS,
    folds: int = linear_lib.DEFAULT_FOLDS,
    c_grid: Sequence[float] = linear_lib.DEFAULT_C_GRID,
    finetune_config=None,
    finetune_overrides: Sequence[str] = (),
    finetune_dir=None,
    cache_dir=None,
    use_cache: bool = True,
    batch_size: Optional[int] = None,
    progress: Optional[bool] = None,
    manifest: Optional[dict] = None,
) -> dict:
    """One model's entry of the card (see :func:`report_card` for the arguments)."""
    from tfcmvp.evaluation.run import evaluate_export
    from tfcmvp.retrieval import features as features_lib
    from tfcmvp.retrieval.evaluate import evaluate_retrieval

    info = features_lib.read_export(model_dir)
    batch_size = batch_size or features_lib.DEFAULT_BATCH_SIZE
    shared = dict(
        clips=clips,
        labels=labels,
        cache_dir=cache_dir,
        use_cache=use_cache,
        batch_size=batch_size,
        progress=progress,
    )
    metrics, details = {}, {"retrieval": {}, "linear": [], "finetune": None}
    for protocol in PROTOCOLS:
        logger.info("%s: retrieval (%s)", name, protocol)
        record = evaluate_retrieval(model_dir, data_dir, protocol=protocol, **shared)
        details["retrieval"][protocol] = {
            k: v for k, v in record.items() if k.startswith("R@") or k.startswith("num_")
        }
        metrics[f"retrieval_{protocol}_R@1"] = summarise([record["R@1"]])
        details["data"] = record["data"]  # as retrieval describes it (both protocols alike)

    # kNN once (deterministic), the linear probe per seed; the features come from the
    # cache the vcop retrieval filled (same clips and positions).
    for i, seed in enumerate(seeds):
        logger.info("%s: %slinear probe (seed %d)", name, "kNN and " if i == 0 else "", seed)
        record = evaluate_export(
            model_dir,
            data_dir,
            knn=(i == 0),
            linear=True,
            ks=ks,
            c_grid=c_grid,
            folds=folds,
            seed=seed,
            **shared,
        )
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

    if finetune_config is not None:
        if info.get("network") != "video":
            details["finetune"] = {"skipped": f"a {info.get('network')} export, not a V-Network"}
        else:
            runs = []
            for seed in seeds:
                logger.info("%s: finetune (seed %d)", name, seed)
                workdir = pathlib.Path(finetune_dir) / name / f"seed{seed}"
                runs.append(
                    _finetune(
                        model_dir, data_dir, workdir, finetune_config, finetune_overrides, seed
                    )
                )
            details["finetune"] = {"label_kind": "class", "runs": runs}
            metrics["finetune_top1"] = summarise([r["top1"] for r in runs], seeds)

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


def report_card(
    models: Mapping[str, object],
    data_dir,
    *,
    seeds: Sequence[int] = (0,),
    labels=None,
    clips: int = 10,
    ks: Sequence[int] = knn_lib.DEFAULT_KS,
    folds: int = linear_lib.DEFAULT_FOLDS,
    c_grid: Sequence[float] = linear_lib.DEFAULT_C_GRID,
    finetune_config=None,
    finetune_overrides: Sequence[str] = (),
    finetune_dir=None,
    cache_dir=None,
    use_cache: bool = True,
    batch_size: Optional[int] = None,
    progress: Optional[bool] = None,
    output=None,
    png=None,
) -> dict:
    """Every evaluation of every model on one data set (see the module docstring).

    Args:
      models: ``{name: export folder}`` (:func:`parse_models` reads ``NAME=DIR``).
      data_dir: extraction output with ``train-*`` (gallery, kNN bank,
        classifier training set) and ``test-*`` shards.
      seeds: the seeds of the random methods (linear probe folds, finetune).
      labels: a :class:`tfcmvp.retrieval.labels.LabelTable` to score
        retrieval, kNN and the linear probe by instead of the records' class
        labels (the finetune always learns the records' class labels).
      clips: clips per video of the ``vcop`` features (retrieval, kNN, linear).
      ks, folds, c_grid: kNN neighbour counts (must include
        :data:`TABLE_K`), linear-probe folds and C grid.
      finetune_config: a finetune YAML (e.g. ``configs/finetune_tiny_cpu.yaml``);
        None = no finetune. Its architecture is taken from each export.
      finetune_overrides: ``key=value`` overrides of it (``train.seed`` is set
        per seed).
      finetune_dir: folder of the finetune runs (``NAME/seed<k>`` each; an
        existing run is resumed); required with ``finetune_config``.
      cache_dir, use_cache, batch_size, progress: the feature cache and
        extraction (:func:`tfcmvp.retrieval.features.extract_features`).
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
    from tfcmvp.evaluation.run import write_json
    from tfcmvp.manifest import find_shards, read_manifest
    from tfcmvp.retrieval.features import DEFAULT_BATCH_SIZE, SPLITS, data_fingerprint

    if not models:
        raise ValueError("no model to report on")
    seeds = check_seeds(seeds)
    ks = knn_lib.check_ks(ks)
    if TABLE_K not in ks:
        raise ValueError(f"ks must include k={TABLE_K} (the table's kNN column), got {ks}")
    linear_lib.require_sklearn()  # before any extraction, not after
    linear_lib.check_c_grid(c_grid)
    if finetune_config is not None and finetune_dir is None:
        raise ValueError("a finetune needs finetune_dir (where its runs are written)")
    manifest = read_manifest(data_dir)
    entries = {}
    for name, model_dir in models.items():
        entries[name] = evaluate_model(
            name,
            model_dir,
            data_dir,
            seeds=seeds,
            labels=labels,
            clips=clips,
            ks=ks,
            folds=folds,
            c_grid=c_grid,
            finetune_config=finetune_config,
            finetune_overrides=finetune_overrides,
            finetune_dir=finetune_dir,
            cache_dir=cache_dir,
            use_cache=use_cache,
            batch_size=batch_size,
            progress=progress,
            manifest=manifest,
        )
    first = next(iter(entries.values()))["details"]["data"]
    shards = {split: find_shards(data_dir, split) for split in SPLITS}
    card = {
        "report_version": REPORT_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "data": {
            "dir": str(data_dir),
            "fingerprint": data_fingerprint(data_dir, shards),
            "layout": first.get("layout"),
            "num_classes": first.get("num_classes"),
            "split": ((manifest or {}).get("options") or {}).get("split"),
            "paper_dataset": paper_numbers.paper_dataset(manifest),
            "queries": "test",
            "gallery": "train",
        },
        "labels": None if labels is None else {"file": labels.path, "column": labels.column},
        "seeds": seeds,
        "settings": {
            "clips": clips,
            "retrieval_protocols": list(PROTOCOLS),
            "knn": {"ks": ks, "temperature": knn_lib.DEFAULT_TEMPERATURE, "table_k": TABLE_K},
            "linear": {
                "folds": folds,
                "C_grid": list(c_grid),
                "max_iter": linear_lib.MAX_ITER,
                "solver": linear_lib.solver_name(),
            },
            "finetune": None
            if finetune_config is None
            else {
                "config": str(finetune_config),
                "overrides": list(finetune_overrides),
                "dir": str(finetune_dir),
            },
            "batch_size": batch_size or DEFAULT_BATCH_SIZE,
            "random_metrics": list(RANDOM_METRICS),
        },
        "models": entries,
    }
    if output is not None:
        write_json(output, card)
        logger.info("wrote %s", output)
    if png is not None:
        plot_report(card, png)
        logger.info("wrote %s", png)
    return card


def _cell(summary: Optional[dict]) -> str:
    return "-" if summary is None else spread(summary["values"])


def _paper_title(info_backbone: str, entries: dict) -> str:
    backbone = paper_numbers.BACKBONES.get(info_backbone, info_backbone)
    inits = {entry["init"] for entry in entries.values()}
    init = "scratch" if inits == {paper_numbers.SCRATCH} else "pretrained on UCF101"
    return f"  paper ({backbone}, {init})"


def format_report(card: dict) -> str:
    """The printed card: one row per model (and one under it with the paper's numbers,
    when there are any), percent, ``mean (min-max)`` over seeds for the random
    methods; then what the columns are."""
    header = ("model", *METRICS.values())
    rows = []
    for name, entry in card["models"].items():
        rows.append((name, *(_cell(entry["metrics"].get(key)) for key in METRICS)))
        if entry.get("paper"):
            rows.append(
                (
                    _paper_title(entry["backbone"], entry["paper"]),
                    *(
                        f"{entry['paper'][key]['value']:.1f}" if key in entry["paper"] else ""
                        for key in METRICS
                    ),
                )
            )
    widths = [max(len(line[i]) for line in (header, *rows)) for i in range(len(header))]

    def fmt(line):  # the name left-aligned, numbers right-aligned
        return "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(line, widths))
        ).rstrip()

    seeds = card["seeds"]
    seed_text = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {', '.join(map(str, seeds))}"
    data = card["data"]
    kind = (
        f"by {card['labels']['column']}" if card.get("labels") else "by the records' class labels"
    )
    lines = [fmt(header), "  ".join("-" * w for w in widths), *(fmt(r) for r in rows), ""]
    lines.append(
        f"data: {data['dir']} ({data['layout']} layout, {data['num_classes']} classes; test "
        f"videos query / are classified from the train videos), scored {kind}; percent"
    )
    random = "linear and finetune" if card["settings"]["finetune"] else "linear"
    lines.append(
        f"{random}: {seed_text} (mean (min-max) when several); retrieval and kNN are deterministic"
    )
    if card["settings"]["finetune"]:
        lines.append("finetune: learns and is scored by the records' class labels")
    if any(entry.get("paper") for entry in card["models"].values()):
        lines.append(
            "paper: Huang et al. CVPR 2021 at full size (Table 9: retrieval R@1, 10 clips, "
            "pretrained on UCF101; Table 2: finetune top-1); sources in the JSON"
        )
    return "\n".join(lines)


def plot_report(card: dict, path) -> None:
    """Grouped bars: one group per metric, one bar per model (its mean), the range over
    seeds as an error bar, the paper's number as a black diamond on the model's bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = list(card["models"])
    keys = [key for key in METRICS if any(key in e["metrics"] for e in card["models"].values())]
    width = 0.8 / len(names)
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(keys) * max(1, len(names) / 2), 3.8))
    centres = np.arange(len(keys))
    paper_drawn = False
    for i, name in enumerate(names):
        entry = card["models"][name]
        x = centres - 0.4 + width * (i + 0.5)
        summaries = [entry["metrics"].get(key) for key in keys]
        means = [np.nan if s is None else s["mean"] for s in summaries]
        ax.bar(x, means, width, label=name)
        for xi, summary in zip(x, summaries):
            if summary is None or summary["seeds"] is None:
                continue  # deterministic: no range to draw
            # max(0, ...): the mean of equal values can differ from them in the last bit
            low = max(0.0, summary["mean"] - summary["min"])
            high = max(0.0, summary["max"] - summary["mean"])
            ax.errorbar(xi, summary["mean"], yerr=[[low], [high]], color="k", capsize=3)
        for xi, key in zip(x, keys):
            if key in entry.get("paper", {}):
                ax.plot(
                    xi,
                    entry["paper"][key]["value"],
                    "kD",
                    markersize=5,
                    label=None if paper_drawn else "paper",
                )
                paper_drawn = True
    ax.set_xticks(centres)
    ax.set_xticklabels([METRICS[key] for key in keys], fontsize=8)
    ax.set_ylabel("percent")
    ax.set_ylim(0, 100)
    labels = card.get("labels")
    ax.set_title(
        f"report card: {pathlib.Path(card['data']['dir']).name}"
        + (f", by {labels['column']}" if labels else "")
        + "; error bars: min-max over seeds",
        fontsize=10,
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)

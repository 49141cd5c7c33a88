"""The quickstart's printed tables (:mod:`tfcmvp.quickstart` collects the data)."""

from __future__ import annotations

import csv
import json
import pathlib
from typing import Dict, Optional, Sequence

from tfcmvp.quickstart_settings import FINETUNED, LABEL_KINDS, ROWS, SCRATCH

TABLE_KS = (1, 5)  # recalls kept per label kind
ROW_TITLES = {
    "scratch": "random init",
    "context": "context only",
    "motion": "motion only",
    "joint": "joint (paper)",
}


def spread(values: Sequence[float], scale: float = 1.0, digits: int = 1) -> str:
    """``"mean (min-max)"`` of `values` (just the value when there is one)."""
    if not values:
        return "-"
    values = [v * scale for v in values]
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def chance_recall_at_1(labels_csv, kind: str) -> float:
    """Expected R@1 (%) of a random ranking: the mean share of the gallery
    (train videos) that has the query's `kind` label, over the test queries."""
    with open(labels_csv, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    gallery = [r[kind] for r in rows if r["split"] == "train"]
    queries = [r[kind] for r in rows if r["split"] == "test"]
    if not gallery or not queries:
        return float("nan")
    return 100.0 * mean([gallery.count(q) / len(gallery) for q in queries])


def format_results(results: Dict) -> str:
    """The ablation table (retrieval R@1 by motion and by scene, per pretext
    objective, over seeds), the finetune line and where the artifacts are."""
    seeds = results["seeds"]
    ablation = results["ablation"]
    labels = results["artifacts"]["labels"]
    chance = {kind: chance_recall_at_1(labels, kind) for kind in ("motion", "scene")}
    seed_text = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {seeds[0]}-{seeds[-1]}"
    lines = [
        f"retrieval R@1 (%), video network, mean over {len(seeds)} pretraining "
        f"{seed_text} (min-max); chance: motion {chance['motion']:.1f}, "
        f"scene {chance['scene']:.1f}",
        f"{'pretraining':<15}{'by motion':>20}{'by scene':>20}{'context acc':>20}"
        f"{'motion acc':>20}",
    ]
    for row, entry in ablation.items():
        lines.append(
            f"{ROW_TITLES.get(row, row):<15}{spread(entry['motion_R@1']):>20}"
            f"{spread(entry['scene_R@1']):>20}"
            f"{spread(entry.get('context_acc', []), 100):>20}"
            f"{spread(entry.get('motion_acc', []), 100):>20}"
        )
    lines.append("(context acc / motion acc: pretext top-1 in the last epoch, %)")
    scratch = ablation.get("scratch")
    joint = ablation.get("joint")
    if scratch and joint:
        lines.append(
            "joint - random init: R@1 by motion "
            f"{mean(joint['motion_R@1']) - mean(scratch['motion_R@1']):+.1f}, "
            f"by scene {mean(joint['scene_R@1']) - mean(scratch['scene_R@1']):+.1f} "
            "(percentage points)"
        )
    finetune = results.get("finetune") or {}
    if finetune:
        lines.append("")
        lines.append(
            f"finetune top-1 by motion (seed {seeds[0]}): "
            + ", ".join(
                f"{ROW_TITLES.get(row, row)} {value['top1']:.1f}" for row, value in finetune.items()
            )
        )
    card = results.get("report_card")
    if card:  # full size only: the pretrained-vs-scratch card (tfcmvp report)
        from tfcmvp.evaluation.report_card import format_report

        names = list(card["models"])
        kind = card["labels"]["column"] if card.get("labels") else "class"
        lines.append("")
        lines.append(
            f"report card of the seed-{seeds[0]} exports, {' vs '.join(names)} (random init), "
            f"by {kind} (tfcmvp report; its finetune is the line above)"
        )
        lines.append(format_report(card))
    lines.append("")
    lines.append("artifacts:")
    for name, path in results["artifacts"].items():
        lines.append(f"  {name:<13}{path}")
    if "seconds" in results:
        lines.append(f"total time: {results['seconds'] / 60:.1f} min")
    return "\n".join(lines)


def count_rows(csv_path: pathlib.Path) -> int:
    """Data rows of a CSV file with a header."""
    with open(csv_path) as handle:
        return max(sum(1 for _ in handle) - 1, 0)


def read_last_row(csv_path: pathlib.Path) -> Optional[Dict[str, str]]:
    """The last row of a CSV file as a dict, or None (no file, no rows)."""
    if not csv_path.is_file():
        return None
    with open(csv_path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return rows[-1] if rows else None


def collect(quickstart) -> Dict:
    """Reads every stage's output of a :class:`tfcmvp.quickstart.Quickstart` into one dict
    (the quickstart's tables)."""
    manifest = json.loads((quickstart.records_dir / "manifest.json").read_text())
    seeds = quickstart.settings.seeds
    ablation = {}
    for row in (SCRATCH, *ROWS):
        entry = {}
        for kind in LABEL_KINDS:
            for k in TABLE_KS:
                entry[f"{kind}_R@{k}"] = [
                    json.loads(quickstart.retrieval_json(row, s, kind).read_text())[f"R@{k}"]
                    for s in seeds
                ]
        if row != SCRATCH:
            last = [read_last_row(quickstart.pretrain_dir(row, s) / "history.csv") for s in seeds]
            for name in ("context_acc", "motion_acc", "context_loss", "motion_loss"):
                entry[name] = [float(r[name]) for r in last if r and name in r]
        ablation[row] = entry
    finetuned = {
        row: {
            k: v
            for k, v in json.loads(
                (quickstart.finetune_dir(row) / "results.json").read_text()
            ).items()
            if k in ("top1", "top5")
        }
        for row in FINETUNED
    }
    return {
        "workdir": str(quickstart.workdir),
        "settings": quickstart.settings.as_record(),
        "seeds": seeds,
        "records": {
            split: {
                k: v for k, v in counts.items() if k in ("listed", "written", "failed", "short")
            }
            for split, counts in manifest["splits"].items()
        },
        "ablation": ablation,
        "finetune": finetuned,
        "report_card": (
            json.loads(quickstart.report_json.read_text())
            if quickstart.settings.report_card
            else None
        ),
        "artifacts": {
            "records": str(quickstart.records_dir),
            "labels": str(quickstart.labels_csv),
            "pretrain": str(quickstart.workdir / "pretrain"),
            "saved_models": str(quickstart.workdir / "models"),
            "retrieval": str(quickstart.workdir / "retrieval"),
            "finetune": str(quickstart.workdir / "finetune"),
            **(
                {"report_card": str(quickstart.report_json)}
                if quickstart.settings.report_card
                else {}
            ),
        },
    }

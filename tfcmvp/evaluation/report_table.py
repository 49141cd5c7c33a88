"""The report card's columns and its two renderings: the printed table and the bar chart.

The card itself (a dict, also written as JSON) is made by
:func:`tfcmvp.evaluation.report_card.report_card`.
"""

from __future__ import annotations

import pathlib
from typing import Optional

from tfcmvp import paper_numbers
from tfcmvp.quickstart_report import spread

TABLE_K = 20  # the kNN column: k = 20 (InstDisc's and pytorchvideo's headline k)
# Metric keys of the record, in table order, with their column titles.
METRICS = {
    "retrieval_vcop_R@1": "R@1 (vcop)",
    "retrieval_coclr_R@1": "R@1 (coclr)",
    "knn_top1": f"kNN top-1 (k={TABLE_K})",
    "linear_top1": "linear top-1",
    "finetune_top1": "finetune top-1",
}


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

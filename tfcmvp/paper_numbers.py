"""The paper's published numbers that ``tfcmvp report`` sets beside ours.

Source: Huang et al., "Self-supervised Video Representation Learning by
Context and Motion Decoupling", CVPR 2021 (text in the repository's
``shared/paper``). Only numbers measured on UCF101 or HMDB51 **split 1** with
one of the three video backbones are kept, and only the two kinds the report
card also measures:

- ``finetune_top1``: action recognition top-1 (%) after finetuning on the
  data set, 10 clips per test video (Table 2: from scratch, pretrained on
  UCF101, pretrained on Kinetics-400);
- ``retrieval_R@1``: test videos query the train videos by the video network's
  features, 10 clips per video averaged, R@1 (%) (Table 9: pretrained on
  UCF101; the same protocol as our ``vcop`` one: evenly spaced clips, mean,
  cosine similarity).

Every entry names its table, row and column, so a reader can check it
against the paper. The numbers are for the paper's full-size networks
(112 x 112 input, 16 frames, width 64): a tiny network of the same backbone
name is compared with them only as a reference point.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

# Keys of the manifest's "layout" (tfcmvp.manifest) the paper reports on, with
# their class counts: a data folder matches only with both, on split 1.
DATASETS = {"ucf101": 101, "hmdb51": 51}
PAPER_SPLIT = 1
BACKBONES = {"c3d": "C3D", "r3d_26": "R3D-26", "r2plus1d_26": "R(2+1)D-26"}
# How the model was initialised before finetuning / retrieval.
SCRATCH = "scratch"
PRETRAINED_UCF101 = "ucf101"
PRETRAINED_K400 = "kinetics400"
METRICS = ("finetune_top1", "retrieval_R@1")

PAPER = "Huang et al., CVPR 2021"
_DATASET_TITLES = {"ucf101": "UCF101", "hmdb51": "HMDB51"}
_INIT_TITLES = {SCRATCH: "Scratch", PRETRAINED_UCF101: "UCF", PRETRAINED_K400: "K400"}


@dataclasses.dataclass(frozen=True)
class PaperNumber:
    """One published number.

    Attributes:
      value: the number as printed (percent).
      metric: one of :data:`METRICS`.
      dataset: ``"ucf101"`` or ``"hmdb51"`` (split 1).
      backbone: the export JSON's backbone name (``c3d``, ``r3d_26``, ``r2plus1d_26``).
      init: :data:`SCRATCH`, :data:`PRETRAINED_UCF101` or :data:`PRETRAINED_K400`.
      source: table, row and column of the paper it is copied from.
    """

    value: float
    metric: str
    dataset: str
    backbone: str
    init: str
    source: str

    def as_record(self) -> dict:
        return dataclasses.asdict(self)


def _table2() -> list:
    # Table 2 (action recognition top-1): columns Scratch / UCF / K400 per data set.
    rows = {
        "c3d": {"ucf101": (60.5, 78.6, 83.4), "hmdb51": (29.2, 46.9, 52.9)},
        "r2plus1d_26": {"ucf101": (65.0, 79.7, 85.7), "hmdb51": (32.5, 48.6, 54.0)},
        "r3d_26": {"ucf101": (58.0, 76.6, 83.7), "hmdb51": (28.9, 47.2, 55.2)},
    }
    numbers = []
    for backbone, per_dataset in rows.items():
        for dataset, values in per_dataset.items():
            for init, value in zip((SCRATCH, PRETRAINED_UCF101, PRETRAINED_K400), values):
                numbers.append(
                    PaperNumber(
                        value,
                        "finetune_top1",
                        dataset,
                        backbone,
                        init,
                        f"{PAPER}, Table 2, row {BACKBONES[backbone]}, column "
                        f"{_DATASET_TITLES[dataset]} {_INIT_TITLES[init]}",
                    )
                )
    return numbers


def _table9() -> list:
    # Table 9 (retrieval, pretrained on UCF101): R@1 of the rows "Ours (<backbone>)".
    rows = {
        "c3d": {"ucf101": 41.7, "hmdb51": 16.8},
        "r2plus1d_26": {"ucf101": 38.4, "hmdb51": 14.3},
        "r3d_26": {"ucf101": 38.9, "hmdb51": 15.2},
    }
    return [
        PaperNumber(
            value,
            "retrieval_R@1",
            dataset,
            backbone,
            PRETRAINED_UCF101,
            f"{PAPER}, Table 9, row Ours ({BACKBONES[backbone]}), column "
            f"{_DATASET_TITLES[dataset]} R@1",
        )
        for backbone, per_dataset in rows.items()
        for dataset, value in per_dataset.items()
    ]


NUMBERS = tuple(_table2() + _table9())


def lookup(metric: str, dataset: str, backbone: str, init: str) -> Optional[PaperNumber]:
    """The published number for this combination, or None when the paper has none."""
    for number in NUMBERS:
        if (number.metric, number.dataset, number.backbone, number.init) == (
            metric,
            dataset,
            backbone,
            init,
        ):
            return number
    return None


def paper_dataset(manifest: Optional[dict]) -> Optional[str]:
    """``"ucf101"`` / ``"hmdb51"`` when a data folder's manifest is that data set's
    split 1 (layout, class count and the extraction's ``split`` option all agree),
    else None: only then are the paper's numbers comparable."""
    if not manifest:
        return None
    layout = manifest.get("layout")
    if layout not in DATASETS or manifest.get("num_classes") != DATASETS[layout]:
        return None
    if (manifest.get("options") or {}).get("split") != PAPER_SPLIT:
        return None
    return layout

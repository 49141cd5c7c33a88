"""Kinetics annotation CSVs -> :class:`Annotation` rows, the invalid ones apart.

The file formats and the rules (split from the ``split`` column or the file
name, what counts as a duplicate or out of range) are described in
:mod:`tfcmvp.kinetics`, which matches these annotations to downloaded videos.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import posixpath
import re
from typing import Dict, List, Mapping, Optional, Tuple

from tfcmvp.errors import DataNotFoundError
from tfcmvp.splits import SplitFileError

# Split names of the annotation files -> Kinetics split.
_SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validate": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}
KINETICS_SPLITS = ("train", "val", "test")
_REQUIRED = ("youtube_id", "time_start", "time_end")


@dataclasses.dataclass(frozen=True)
class Annotation:
    """One row of an annotation CSV: a labelled window of a YouTube video."""

    youtube_id: str
    start: float  # seconds
    end: float
    label: str  # "" when the file has none (test)
    split: str  # "train", "val" or "test"
    source: str  # the annotation file
    line: int

    @property
    def key(self) -> Tuple[str, float, float]:
        """What makes two annotations the same video."""
        return self.youtube_id, self.start, self.end

    @property
    def clip_stem(self) -> str:
        """File stem of the trimmed clip: ``<youtube_id>_<start:06d>_<end:06d>``."""
        return f"{self.youtube_id}_{int(self.start):06d}_{int(self.end):06d}"


@dataclasses.dataclass(frozen=True)
class Rejected:
    """An annotation that goes neither to the manifest nor to the missing list."""

    annotation: Annotation
    reason: str  # "duplicate" or "out_of_range"
    detail: str


def _split_of_file(source: str) -> Optional[str]:
    """The Kinetics split a file name names (``kinetics_400_validate.csv`` -> "val")."""
    words = re.split(r"[^a-z]+", posixpath.basename(source).lower())
    found = {_SPLIT_ALIASES[w] for w in words if w in _SPLIT_ALIASES}
    return found.pop() if len(found) == 1 else None


def _seconds(text: str) -> Optional[float]:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value == value and abs(value) != float("inf") else None  # no NaN / inf


def is_annotation_file(text: str) -> bool:
    """True when a CSV's header has the annotation columns (youtube_id, time_start,
    time_end)."""
    header = next(csv.reader(io.StringIO(text)), [])
    return all(column in [h.strip() for h in header] for column in _REQUIRED)


def read_annotations(texts: Mapping[str, str]) -> Tuple[List[Annotation], List[Rejected]]:
    """Parses annotation CSVs: the valid annotations, and the rejected ones.

    Args:
      texts: file path -> content, for each annotation file (see
        :func:`is_annotation_file`); read in train, val, test order, so a
        duplicate is the later listing.

    Raises:
      SplitFileError: a file lacks a required column, a row's split is
        unknown, or a file gives no split (no ``split`` column and a name
        that names none).
    """
    order = {name: i for i, name in enumerate(KINETICS_SPLITS)}
    sources = sorted(texts, key=lambda s: (order.get(_split_of_file(s) or "", 3), s))
    valid: List[Annotation] = []
    rejected: List[Rejected] = []
    first: Dict[Tuple[str, float, float], Annotation] = {}
    for source in sources:
        reader = csv.DictReader(io.StringIO(texts[source]))
        reader.fieldnames = [name.strip() for name in reader.fieldnames or []]
        missing = [c for c in _REQUIRED if c not in reader.fieldnames]
        if missing:
            raise SplitFileError(
                source, f"missing column(s) {missing}; header is {reader.fieldnames}", 1
            )
        file_split = _split_of_file(source)
        for row in reader:
            annotation, problem = _annotation(row, source, reader.line_num, file_split)
            if problem:
                rejected.append(Rejected(annotation, "out_of_range", problem))
                continue
            if annotation.key in first:
                earlier = first[annotation.key]
                rejected.append(
                    Rejected(
                        annotation, "duplicate", f"first listed at {earlier.source}:{earlier.line}"
                    )
                )
                continue
            first[annotation.key] = annotation
            valid.append(annotation)
    return valid, rejected


def _annotation(row: dict, source: str, number: int, file_split: Optional[str]) -> tuple:
    """(Annotation, what is out of range or None) of one CSV row; SplitFileError when the
    row's split is unknown or neither the row nor the file name gives one."""
    given = (row.get("split") or "").strip().lower()
    split = _SPLIT_ALIASES.get(given) if given else file_split
    if split is None:
        what = f"split {given!r} is not one of" if given else "no split column, and the"
        raise SplitFileError(
            source,
            f"{what} file name names none of {sorted(_SPLIT_ALIASES)}",
            number,
        )
    texts_ = [(row.get(c) or "").strip() for c in ("time_start", "time_end")]
    start, end = (_seconds(t) for t in texts_)
    youtube_id = (row.get("youtube_id") or "").strip()
    annotation = Annotation(
        youtube_id,
        start if start is not None else float("nan"),
        end if end is not None else float("nan"),
        (row.get("label") or "").strip(),
        split,
        source,
        number,
    )
    problem = None
    if not youtube_id:
        problem = "empty youtube_id"
    elif start is None or end is None:
        problem = f"time_start/time_end {texts_} are not numbers of seconds"
    elif start < 0:
        problem = f"time_start {start:g} is negative"
    elif end <= start:
        problem = f"time_end {end:g} <= time_start {start:g}"
    return annotation, problem


def read_annotation_folder(folder: str) -> Dict[str, str]:
    """The annotation CSVs of ``folder`` (other CSVs are skipped), path -> text.

    Raises FileNotFoundError when the folder is missing and SplitFileError
    when it holds no annotation CSV.
    """
    if not os.path.isdir(folder):
        raise DataNotFoundError(f"--annotations {folder}: no such folder")
    texts = {}
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if name.lower().endswith(".csv") and os.path.isfile(path):
            with open(path, encoding="utf-8-sig") as handle:  # some exports carry a BOM
                text = handle.read()
            if is_annotation_file(text):
                texts[path] = text
    if not texts:
        raise SplitFileError(
            folder, f"no annotation CSV (a header with {', '.join(_REQUIRED)}) in this folder"
        )
    return texts

"""Kinetics-400 annotations + a folder of downloads -> the extraction's CSV manifest.

Annotations: the official CSVs (``train.csv``, ``validate.csv`` or
``val.csv``, ``test.csv``; the crawler's ``kinetics_400_train.csv`` names
work too), with the columns ``label,youtube_id,time_start,time_end,split``
(some releases add ``is_cc``, which is ignored; the test file may have no
``label``). ``time_start``/``time_end`` are seconds into the YouTube video;
the ``split`` column says "train", "val"/"validate" or "test" and, when it is
absent, the file name does.

Videos are found in the layouts the common downloaders write, by file stem
(any of :data:`VIDEO_EXTENSIONS`), anywhere under the videos folder:

* trimmed clips ``<youtube_id>_<start:06d>_<end:06d>.mp4`` in per-class
  folders (the ActivityNet crawler; a folder is the label with spaces or with
  underscores) or flat (the CVDF mirror's ``train/``, ``val/`` folders);
* untrimmed downloads ``<youtube_id>.mp4``: the manifest then carries the
  annotated window in its ``start,end`` columns and the extraction decodes
  only that range (``tfcmvp.codec.decode.read_video(start=, end=)``).

A trimmed clip is preferred to an untrimmed download of the same video.

Splits: the TFRecord schema knows "train" and "test". Kinetics papers report
on the validation set (the test labels came out later), so ``val`` goes to the
manifest's "test" split; ``test`` is left out unless asked for (it would join
"test" too). :data:`SPLIT_MAP` is the mapping.

Ledger: what could not go into the manifest is counted, never dropped
silently: listed videos with no file (per split and per class, and one CSV
line each), duplicate annotations (same ``youtube_id`` and window, or the
same file as an earlier entry) and out-of-range ones (a time that is not a
number, a negative start, ``time_end <= time_start``).
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import io
import json
import os
import posixpath
import re
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from tfcmvp.splits import SplitFileError, VideoEntry

VIDEO_EXTENSIONS = (".mp4", ".webm", ".mkv", ".avi", ".mov")
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
SPLIT_MAP = {"train": "train", "val": "test", "test": "test"}  # Kinetics -> manifest split
DEFAULT_INCLUDE = ("train", "val")
_REQUIRED = ("youtube_id", "time_start", "time_end")
MANIFEST_COLUMNS = ("path", "label", "split", "start", "end")
MISSING_COLUMNS = ("youtube_id", "time_start", "time_end", "label", "split", "source", "line")
LAYOUTS = ("trimmed_class_folder", "trimmed", "untrimmed")


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


@dataclasses.dataclass(frozen=True)
class ManifestRow:
    """A line of the manifest: ``start``/``end`` None for a trimmed clip."""

    path: str
    label: str
    split: str  # "train" or "test"
    start: Optional[float] = None
    end: Optional[float] = None


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
            number = reader.line_num
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


def _folder_key(name: str) -> str:
    """A class folder name compared with a label: case, spaces/underscores and quotes
    do not matter ("petting animal (not cat)" == "petting_animal_(not_cat)")."""
    return re.sub(r"[\s_]+", "_", name.strip().strip("\"'").lower())


class VideoIndex:
    """The video files under a folder, by file stem, for :meth:`find`."""

    def __init__(self, paths: Iterable[str]):
        """``paths``: "/"-separated paths relative to the videos folder."""
        self._by_stem: Dict[str, List[str]] = collections.defaultdict(list)
        for path in sorted(paths):
            stem, ext = posixpath.splitext(posixpath.basename(path))
            if ext.lower() in VIDEO_EXTENSIONS:
                self._by_stem[stem].append(path)

    @classmethod
    def from_folder(cls, videos_dir: str) -> "VideoIndex":
        """Lists every file under ``videos_dir`` (following symbolic links)."""
        if not os.path.isdir(videos_dir):
            raise FileNotFoundError(f"--videos {videos_dir}: no such folder")
        paths = []
        for folder, _, names in os.walk(videos_dir, followlinks=True):
            relative = os.path.relpath(folder, videos_dir)
            for name in names:
                path = name if relative == "." else os.path.join(relative, name)
                paths.append(path.replace(os.sep, "/"))
        return cls(paths)

    def find(self, annotation: Annotation) -> Optional[Tuple[str, str]]:
        """``(path, layout)`` of the file for ``annotation`` (layout: one of
        :data:`LAYOUTS`), or None. A trimmed clip in its class folder wins over
        one elsewhere, and any trimmed clip over an untrimmed download."""
        clips = self._by_stem.get(annotation.clip_stem)
        if clips:
            label = _folder_key(annotation.label)
            for path in clips:
                folder = posixpath.basename(posixpath.dirname(path))
                if label and _folder_key(folder) == label:
                    return path, "trimmed_class_folder"
            return clips[0], "trimmed"
        downloads = self._by_stem.get(annotation.youtube_id)
        if downloads:
            return downloads[0], "untrimmed"
        return None


@dataclasses.dataclass
class ImportResult:
    """The manifest rows and the ledger of :func:`import_kinetics`."""

    rows: List[ManifestRow]
    missing: List[Annotation]
    rejected: List[Rejected]
    listed: Dict[str, int]  # valid annotations per Kinetics split (included or not)
    found: Dict[str, int]  # manifest rows per included Kinetics split
    include: Tuple[str, ...]
    layouts: Dict[str, int]
    sources: List[str]

    def ledger(self) -> Dict:
        """The counts as a JSON-ready dict (see the module docstring)."""
        missing = collections.Counter(a.split for a in self.missing)
        per_class: Dict[str, Dict[str, int]] = {}
        for annotation in self.missing:
            classes = per_class.setdefault(annotation.split, {})
            name = annotation.label or "(no label)"
            classes[name] = classes.get(name, 0) + 1
        reasons = collections.Counter(r.reason for r in self.rejected)
        return {
            "annotation_files": self.sources,
            "include": list(self.include),
            "split_map": {name: SPLIT_MAP[name] for name in self.include},
            "listed": dict(self.listed),
            "found": dict(self.found),
            "missing": {name: missing[name] for name in self.include},
            "missing_per_class": {
                name: dict(sorted(per_class.get(name, {}).items())) for name in self.include
            },
            "layouts": dict(self.layouts),
            "duplicates": reasons["duplicate"],
            "out_of_range": reasons["out_of_range"],
            "rejected": [
                {
                    "source": r.annotation.source,
                    "line": r.annotation.line,
                    "youtube_id": r.annotation.youtube_id,
                    "split": r.annotation.split,
                    "reason": r.reason,
                    "detail": r.detail,
                }
                for r in self.rejected
            ],
        }


def import_kinetics(
    texts: Mapping[str, str],
    index: VideoIndex,
    include: Sequence[str] = DEFAULT_INCLUDE,
) -> ImportResult:
    """Matches the annotations of ``texts`` with the files of ``index``.

    Args:
      texts: annotation file path -> content.
      index: the videos folder's files.
      include: Kinetics splits to put in the manifest ("train", "val",
        "test"); mapped by :data:`SPLIT_MAP`.
    """
    unknown = [name for name in include if name not in KINETICS_SPLITS]
    if unknown or not include:
        raise ValueError(f"include must name some of {KINETICS_SPLITS}, got {list(include)}")
    annotations, rejected = read_annotations(texts)
    listed = {name: 0 for name in KINETICS_SPLITS}
    for annotation in annotations:
        listed[annotation.split] += 1
    rows: List[ManifestRow] = []
    missing: List[Annotation] = []
    layouts = {name: 0 for name in LAYOUTS}
    found = {name: 0 for name in include}
    used: Dict[str, Annotation] = {}  # manifest video id -> its annotation
    ordered = sorted(annotations, key=lambda a: KINETICS_SPLITS.index(a.split))  # stable
    for annotation in ordered:
        if annotation.split not in include:
            continue
        hit = index.find(annotation)
        if hit is None:
            missing.append(annotation)
            continue
        path, layout = hit
        window = (annotation.start, annotation.end) if layout == "untrimmed" else (None, None)
        video_id = VideoEntry(path, -1, annotation.label, "", *window).video_id
        if video_id in used:  # e.g. two windows whose clip names round to the same seconds
            earlier = used[video_id]
            rejected.append(
                Rejected(
                    annotation,
                    "duplicate",
                    f"same file {path} as {earlier.source}:{earlier.line}",
                )
            )
            continue
        used[video_id] = annotation
        layouts[layout] += 1
        found[annotation.split] += 1
        rows.append(ManifestRow(path, annotation.label, SPLIT_MAP[annotation.split], *window))
    return ImportResult(
        rows=rows,
        missing=missing,
        rejected=rejected,
        listed=listed,
        found=found,
        include=tuple(include),
        layouts=layouts,
        sources=sorted(texts),
    )


def _seconds_text(value: Optional[float]) -> str:
    return "" if value is None else format(value, ".10g")


def manifest_text(rows: Sequence[ManifestRow]) -> str:
    """The CSV manifest (``path,label,split,start,end``) that ``beam_jobs.extract
    --manifest`` reads."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(MANIFEST_COLUMNS)
    for row in rows:
        writer.writerow(
            [row.path, row.label, row.split, _seconds_text(row.start), _seconds_text(row.end)]
        )
    return out.getvalue()


def missing_text(missing: Sequence[Annotation]) -> str:
    """The CSV of listed videos with no file, one line per annotation."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(MISSING_COLUMNS)
    for a in missing:
        writer.writerow(
            [a.youtube_id, format(a.start, "g"), format(a.end, "g"), a.label, a.split]
            + [a.source, a.line]
        )
    return out.getvalue()


def ledger_paths(output: str) -> Tuple[str, str]:
    """``(LIST.missing.csv, LIST.ledger.json)`` beside the manifest ``LIST.csv``."""
    stem = output[:-4] if output.lower().endswith(".csv") else output
    return f"{stem}.missing.csv", f"{stem}.ledger.json"


def read_annotation_folder(folder: str) -> Dict[str, str]:
    """The annotation CSVs of ``folder`` (other CSVs are skipped), path -> text.

    Raises FileNotFoundError when the folder is missing and SplitFileError
    when it holds no annotation CSV.
    """
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"--annotations {folder}: no such folder")
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


def write_outputs(result: ImportResult, output: str) -> List[str]:
    """Writes the manifest, the missing list and the ledger; returns their paths."""
    missing_path, ledger_path = ledger_paths(output)
    folder = os.path.dirname(os.path.abspath(output))
    os.makedirs(folder, exist_ok=True)
    for path, text in (
        (output, manifest_text(result.rows)),
        (missing_path, missing_text(result.missing)),
        (ledger_path, json.dumps(result.ledger(), indent=2, sort_keys=False) + "\n"),
    ):
        with open(path, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
    return [output, missing_path, ledger_path]

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

from tfcmvp.errors import ConfigError, DataNotFoundError
from tfcmvp.kinetics_annotations import (
    KINETICS_SPLITS,
    Annotation,
    Rejected,
    is_annotation_file,
    read_annotation_folder,
    read_annotations,
)
from tfcmvp.splits import VideoEntry

# Reading the annotation files lives in kinetics_annotations; importable from here too.
__all__ = [
    "DEFAULT_INCLUDE",
    "KINETICS_SPLITS",
    "LAYOUTS",
    "MANIFEST_COLUMNS",
    "MISSING_COLUMNS",
    "SPLIT_MAP",
    "VIDEO_EXTENSIONS",
    "Annotation",
    "ImportResult",
    "ManifestRow",
    "Rejected",
    "VideoIndex",
    "import_kinetics",
    "is_annotation_file",
    "ledger_paths",
    "manifest_text",
    "missing_text",
    "read_annotation_folder",
    "read_annotations",
    "write_outputs",
]

VIDEO_EXTENSIONS = (".mp4", ".webm", ".mkv", ".avi", ".mov")
SPLIT_MAP = {"train": "train", "val": "test", "test": "test"}  # Kinetics -> manifest split
DEFAULT_INCLUDE = ("train", "val")
MANIFEST_COLUMNS = ("path", "label", "split", "start", "end")
MISSING_COLUMNS = ("youtube_id", "time_start", "time_end", "label", "split", "source", "line")
LAYOUTS = ("trimmed_class_folder", "trimmed", "untrimmed")


@dataclasses.dataclass(frozen=True)
class ManifestRow:
    """A line of the manifest: ``start``/``end`` None for a trimmed clip."""

    path: str
    label: str
    split: str  # "train" or "test"
    start: Optional[float] = None
    end: Optional[float] = None


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
            raise DataNotFoundError(f"--videos {videos_dir}: no such folder")
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
        raise ConfigError(f"include must name some of {KINETICS_SPLITS}, got {list(include)}")
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

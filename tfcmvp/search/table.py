"""The index folder of ``tfcmvp index``: its files, its table of videos, reading it back.

``INDEX/`` holds:

``index.json``
    ``format`` ("tfcmvp-index"), ``version``, per network (``video``,
    ``iframe``, ``motion``) the export it was embedded with (``model_dir``,
    ``export_fingerprint``: SHA-256 of its graph, variable index and JSON,
    ``embedding_dim``, ``backbone``), the last run's counts, versions and time.
``videos.csv``
    one row per indexed video (``pandas.read_csv``): ``row`` (its row in
    every embedding matrix), ``id`` (16 hex digits of the SHA-256 of its
    absolute path: the thumbnails' file name), ``path`` (absolute),
    ``size`` (bytes), ``mtime`` (seconds), ``fingerprint`` (see
    :func:`content_fingerprint`), ``num_frames`` and ``fps``, and one
    ``<network>_export`` column per network: the first 16 hex digits of the
    export fingerprint the row was embedded with.
``<network>.npy``
    float32 ``[V, D]`` per network: row i is the mean of video i's clip
    embeddings (10 clips at retrieval's VCOP positions, as ``tfcmvp
    retrieval`` and ``tfcmvp embed`` compute them), not normalised.
``thumbs/<id>.jpg``, ``thumbs/<id>.motion.jpg``
    the video's first frame, and (an index with a motion network) a coloured
    map of the motion vectors of one clip (:mod:`tfcmvp.search.thumbnails`).
``failed.jsonl``
    the last run's videos that could not be indexed (``tfcmvp embed``'s lines).

The folder is written beside its place and swapped in with one rename
(:func:`tfcmvp.outputs.swap_in`), so a killed run leaves the previous index
whole. NumPy only: no TensorFlow here.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import os
import pathlib
from typing import Dict, List, Optional

import numpy as np

from tfcmvp.errors import DataError, InvalidDataError

FORMAT = "tfcmvp-index"
VERSION = 1
INFO_NAME = "index.json"
TABLE_NAME = "videos.csv"
FAILED_NAME = "failed.jsonl"
THUMBS_DIR = "thumbs"
NETWORKS = ("video", "iframe", "motion")
# What `tfcmvp search --by` asks for, and the network that answers it: a network's
# name, or "context", the first name of --by iframe (the I-frame network's embedding).
BY_NETWORK = {"video": "video", "iframe": "iframe", "motion": "motion", "context": "iframe"}
FINGERPRINT_BYTES = 1 << 20  # hashed from each end of a file
_FIXED_COLUMNS = ("row", "id", "path", "size", "mtime", "fingerprint", "num_frames", "fps")


class NotAnIndexError(DataError, FileNotFoundError):
    """A folder that ``tfcmvp index`` did not write; the message names it and why."""


def embeddings_name(network: str) -> str:
    return f"{network}.npy"


def video_id(path) -> str:
    """16 hex digits of the SHA-256 of the absolute path (thumbnail file names)."""
    return hashlib.sha256(os.path.abspath(path).encode("utf-8", "surrogateescape")).hexdigest()[:16]


def content_fingerprint(path, size: Optional[int] = None) -> str:
    """SHA-256 (hex) of the size and the first and last MB of a file.

    Cheap for any file size, and changed by any re-encode, truncation or
    append in practice; an edit that keeps the size and touches only the
    middle of a file larger than 2 MB goes unseen (a full hash would read
    every byte of a collection on every run).
    """
    size = os.path.getsize(path) if size is None else size
    digest = hashlib.sha256(f"{size}\0".encode())
    with open(path, "rb") as handle:
        digest.update(handle.read(FINGERPRINT_BYTES))
        if size > FINGERPRINT_BYTES:
            handle.seek(max(FINGERPRINT_BYTES, size - FINGERPRINT_BYTES))
            digest.update(handle.read(FINGERPRINT_BYTES))
    return digest.hexdigest()


@dataclasses.dataclass
class VideoEntry:
    """One row of ``videos.csv`` (without its row number)."""

    path: str  # absolute
    size: int
    mtime: float
    fingerprint: str
    num_frames: int = 0
    fps: float = 0.0
    exports: Dict[str, str] = dataclasses.field(default_factory=dict)  # network -> fingerprint[:16]

    @property
    def id(self) -> str:
        return video_id(self.path)


def table_columns(networks) -> tuple:
    return _FIXED_COLUMNS + tuple(f"{n}_export" for n in networks)


def write_table(path, entries: List[VideoEntry], networks) -> None:
    """``videos.csv`` of `entries` in row order."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(table_columns(networks))
        for row, entry in enumerate(entries):
            writer.writerow(
                [
                    row,
                    entry.id,
                    entry.path,
                    entry.size,
                    repr(float(entry.mtime)),
                    entry.fingerprint,
                    entry.num_frames,
                    round(float(entry.fps), 6),
                ]
                + [entry.exports.get(n, "") for n in networks]
            )


def read_table(path, networks) -> List[VideoEntry]:
    """The entries of ``videos.csv``, in row order; ValueError naming the file if malformed."""
    entries = []
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = set(table_columns(networks)) - set(reader.fieldnames or ())
        if missing:
            raise InvalidDataError(f"{path}: columns {sorted(missing)} are missing")
        for number, row in enumerate(reader):
            if int(row["row"]) != number:
                raise InvalidDataError(
                    f"{path}: line {number + 2} has row {row['row']}, not {number}"
                )
            entries.append(
                VideoEntry(
                    path=row["path"],
                    size=int(row["size"]),
                    mtime=float(row["mtime"]),
                    fingerprint=row["fingerprint"],
                    num_frames=int(row["num_frames"]),
                    fps=float(row["fps"]),
                    exports={n: row[f"{n}_export"] for n in networks},
                )
            )
    return entries


def index_problem(folder) -> Optional[str]:
    """Why `folder` is not an index ``tfcmvp index`` wrote, or None when it is one."""
    folder = pathlib.Path(folder)
    if folder.is_symlink():
        return "it is a symbolic link"
    if not folder.is_dir():
        return "it is a file, not a folder" if folder.exists() else "it does not exist"
    info_path = folder / INFO_NAME
    if not info_path.is_file():
        return f"it holds no {INFO_NAME}, so `tfcmvp index` did not write it"
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        return f"its {INFO_NAME} cannot be read: {error}"
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        return f"its {INFO_NAME} is not a tfcmvp index description (format {FORMAT!r})"
    if info.get("version") != VERSION:
        return f"its {INFO_NAME} has version {info.get('version')!r}; this tfcmvp reads {VERSION}"
    allowed = {INFO_NAME, TABLE_NAME, FAILED_NAME, THUMBS_DIR}
    allowed |= {embeddings_name(n) for n in info.get("networks", {})}
    foreign = sorted(p.name for p in folder.iterdir() if p.name not in allowed)
    if foreign:
        return f"besides an index it holds {', '.join(foreign[:3])}"
    return None


@dataclasses.dataclass
class Index:
    """An index read back by :func:`load_index`."""

    folder: pathlib.Path
    info: dict
    entries: List[VideoEntry]

    @property
    def networks(self) -> tuple:
        return tuple(n for n in NETWORKS if n in self.info["networks"])

    def embeddings(self, network: str, mmap: bool = True) -> np.ndarray:
        """float32 ``[V, D]`` of `network` (memory-mapped by default: nothing read until used)."""
        matrix = np.load(self.folder / embeddings_name(network), mmap_mode="r" if mmap else None)
        if matrix.ndim != 2 or matrix.shape[0] != len(self.entries):
            raise InvalidDataError(
                f"{self.folder / embeddings_name(network)}: shape {matrix.shape}, expected "
                f"[{len(self.entries)}, D] (one row per line of {TABLE_NAME})"
            )
        return matrix

    def thumbnail(self, row: int, kind: str = "frame") -> Optional[pathlib.Path]:
        """The JPEG of video `row` (``kind`` "frame" or "motion"), None when there is none."""
        return thumbnail_path(self.folder, self.entries[row].id, kind, existing=True)


def thumbnail_path(folder, vid: str, kind: str, existing: bool = False) -> Optional[pathlib.Path]:
    suffix = {"frame": ".jpg", "motion": ".motion.jpg"}[kind]
    path = pathlib.Path(folder) / THUMBS_DIR / f"{vid}{suffix}"
    return path if not existing or path.is_file() else None


def load_index(folder) -> Index:
    """Reads an index folder. Raises :class:`NotAnIndexError` naming it and the cause."""
    problem = index_problem(folder)
    if problem:
        raise NotAnIndexError(f"--index {folder} is not a tfcmvp index: {problem}")
    folder = pathlib.Path(folder)
    info = json.loads((folder / INFO_NAME).read_text(encoding="utf-8"))
    networks = [n for n in NETWORKS if n in info["networks"]]
    return Index(folder, info, read_table(folder / TABLE_NAME, networks))

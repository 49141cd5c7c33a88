"""Dataset split files -> the list of videos to extract, with labels.

Three layouts are understood:

* UCF101: ``classInd.txt`` ("1 ApplyEyeMakeup", 1-based), ``trainlistNN.txt``
  ("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1") and ``testlistNN.txt``
  ("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi", label from the folder).
* HMDB51: one ``<class>_test_splitN.txt`` per class, "video.avi N" per line
  with N = 1 train, 2 test, 0 unused; the video is ``<class>/video.avi``.
  Classes are numbered in alphabetical order.
* A CSV manifest with the columns ``path,label,split`` (label: class name,
  may be empty for unlabelled videos; split: "train" or "test"). Classes are
  numbered in alphabetical order. Optional columns ``start,end`` (seconds,
  both empty or both given, ``0 <= start < end``) keep only that window of
  the video (``tfcmvp kinetics`` writes them for untrimmed downloads).

Entries are paths relative to the videos folder. :func:`path_problem` says
why an entry may not be opened: an absolute path (``/etc/x``, ``C:/x``,
``gs://b/x``) unless absolute paths are explicitly allowed, or a ``..`` that
leads outside the videos folder. The check is on the text alone (symbolic
links inside the videos folder are followed when the file is opened); the
extraction job lists such entries as failed rather than opening them.

The parsers work on file *texts* (a mapping from file path to content) so
that they neither touch the file system nor care whether the files live on
local disk or in a bucket; :func:`parse_split_files` picks the layout.
Every error is a :class:`SplitFileError` naming the file and the line.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import posixpath
import re
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from tfcmvp.errors import ConfigError, DataError, InvalidDataError

SPLITS = ("train", "test")  # the split names the TFRecord schema knows

_UCF_CLASSIND = "classInd.txt"
_DRIVE = re.compile(r"^[A-Za-z]:/")  # C:/videos/x.avi (backslashes are already "/")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")  # gs://, s3://, file://
_HMDB_SUFFIX = re.compile(r"^(?P<cls>.+)_test_split(?P<n>\d+)\.txt$")
_HMDB_ROLE = {"1": "train", "2": "test", "0": None}  # 0: not used in this split


class SplitFileError(DataError, ValueError):
    """A split file is missing or malformed; the message names file and line."""

    def __init__(self, source: str, message: str, line: Optional[int] = None):
        self.source = str(source)
        self.line = line
        where = self.source if line is None else f"{self.source}:{line}"
        super().__init__(f"{where}: {message}")


class EntryPathError(DataError, ValueError):
    """A listed video's path may not be opened (see :func:`path_problem`)."""


@dataclasses.dataclass(frozen=True)
class VideoEntry:
    """One video of one split.

    Attributes:
      path: path relative to the videos folder, "/"-separated; also the
        video id stored in the records.
      label: 0-based class index (order of ``SplitSet.class_names``), -1 if none.
      label_name: class name, "" if none.
      split: "train" or "test".
      start, end: the window to keep, in seconds from the start of the video
        (frames whose time is in ``[start, end)``), or both None for the
        whole video; from the optional ``start,end`` columns of a CSV
        manifest (an untrimmed Kinetics download and its annotated window).
    """

    path: str
    label: int
    label_name: str
    split: str
    start: Optional[float] = None
    end: Optional[float] = None

    @property
    def video_id(self) -> str:
        """The id stored in the records: ``path``, or for a window
        ``path#t=START,END`` (W3C media-fragment syntax), so that two windows of
        one file are two videos."""
        if self.start is None:
            return self.path
        return f"{self.path}#t={self.start:g},{self.end:g}"


@dataclasses.dataclass
class SplitSet:
    """The parsed split: class names (index = label) and the listed videos."""

    layout: str  # "ucf101", "hmdb51" or "csv"
    class_names: List[str]
    entries: List[VideoEntry]
    sources: List[str]  # the files that were read, for the manifest

    def listed(self) -> Dict[str, int]:
        """Number of listed videos per split name (every split of ``SPLITS``)."""
        counts = {name: 0 for name in SPLITS}
        for entry in self.entries:
            counts[entry.split] += 1
        return counts


def _lines(text: str):
    """(1-based line number, stripped line) for every non-blank line."""
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if line:
            yield number, line


def _basename_map(texts: Mapping[str, str]) -> Dict[str, str]:
    return {posixpath.basename(path.replace("\\", "/")): path for path in texts}


def detect_layout(file_names: Sequence[str], split: int = 1) -> str:
    """ "ucf101" or "hmdb51" from the names of the files in a splits folder.

    Raises ``ValueError`` when neither (or both) layouts are recognised.
    """
    names = {posixpath.basename(n.replace("\\", "/")) for n in file_names}
    ucf = _UCF_CLASSIND in names
    hmdb = any(_HMDB_SUFFIX.match(n) for n in names)
    if ucf and hmdb:
        raise InvalidDataError(
            f"split files of both UCF101 ({_UCF_CLASSIND}) and HMDB51 (*_test_splitN.txt) "
            f"layouts found; keep one layout per folder"
        )
    if ucf:
        return "ucf101"
    if hmdb:
        return "hmdb51"
    raise InvalidDataError(
        f"no split files recognised among {sorted(names)[:10]}: expected UCF101 "
        f"({_UCF_CLASSIND}, trainlist{split:02d}.txt, testlist{split:02d}.txt) or HMDB51 "
        f"(<class>_test_split{split}.txt)"
    )


def _check_unique(
    entries: List[VideoEntry],
    where: Dict[str, Tuple[str, int]],
    entry: VideoEntry,
    source: str,
    line: int,
) -> None:
    if entry.video_id in where:
        first_source, first_line = where[entry.video_id]
        raise SplitFileError(
            source, f"video {entry.video_id!r} already listed at {first_source}:{first_line}", line
        )
    where[entry.video_id] = (source, line)
    entries.append(entry)


def _ucf_class_names(text: str, class_source: str) -> List[str]:
    """classInd.txt: "index name", 1-based, contiguous."""
    class_names: List[str] = []
    for number, line in _lines(text):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise SplitFileError(class_source, f"expected '<index> <class>', got {line!r}", number)
        index = int(parts[0])
        if index != len(class_names) + 1:
            raise SplitFileError(
                class_source,
                f"class index {index} out of order (expected {len(class_names) + 1})",
                number,
            )
        class_names.append(parts[1])
    if not class_names:
        raise SplitFileError(class_source, "no classes listed")
    return class_names


def _ucf_folder_labeller(class_names: List[str], class_source: str):
    """``label_of_folder(path, source, number)``: the class of a video from its folder."""
    exact = {name: i for i, name in enumerate(class_names)}
    # UCF101's own files spell "HandstandPushups" and "HandStandPushups": match case-insensitively.
    folded = {name.lower(): i for i, name in enumerate(class_names)}

    def label_of_folder(path: str, source: str, number: int) -> int:
        folder = path.split("/")[0] if "/" in path else ""
        if folder in exact:
            return exact[folder]
        if folder.lower() in folded:
            return folded[folder.lower()]
        raise SplitFileError(
            source,
            f"video {path!r} is not in a class folder of {class_source} "
            f"(expected '<class>/<video>')",
            number,
        )

    return label_of_folder


def _check_ucf_line(parts, line: str, split_name: str, label: int, where: tuple) -> None:
    """A train line has ``<class>/<video> <index>``, a test line may; the index must agree
    with the folder's class. ``where``: (class names, classInd file, list file, line number).
    """
    class_names, class_source, source, number = where
    if split_name == "train" and len(parts) != 2:
        raise SplitFileError(source, f"expected '<class>/<video> <index>', got {line!r}", number)
    if len(parts) > 2 or (len(parts) == 2 and not parts[1].isdigit()):
        raise SplitFileError(source, f"expected '<class>/<video> [<index>]', got {line!r}", number)
    if len(parts) == 2:
        given = int(parts[1]) - 1
        if given != label:
            raise SplitFileError(
                source,
                f"class index {parts[1]} disagrees with folder "
                f"{class_names[label]!r} (index {label + 1} in {class_source})",
                number,
            )


def parse_ucf101(texts: Mapping[str, str], split: int = 1) -> SplitSet:
    """Parses UCF101 split files (``classInd.txt``, ``trainlistNN``, ``testlistNN``)."""
    by_name = _basename_map(texts)
    wanted = [_UCF_CLASSIND, f"trainlist{split:02d}.txt", f"testlist{split:02d}.txt"]
    missing = [name for name in wanted if name not in by_name]
    if missing:
        raise SplitFileError(
            posixpath.dirname(next(iter(texts), "")) or ".",
            f"UCF101 split {split}: missing {', '.join(missing)}",
        )
    class_source = by_name[_UCF_CLASSIND]
    class_names = _ucf_class_names(texts[class_source], class_source)
    label_of_folder = _ucf_folder_labeller(class_names, class_source)

    entries: List[VideoEntry] = []
    seen: Dict[str, Tuple[str, int]] = {}
    for split_name, file_name in (("train", wanted[1]), ("test", wanted[2])):
        source = by_name[file_name]
        for number, line in _lines(texts[source]):
            parts = line.split()
            path = parts[0].replace("\\", "/")
            label = label_of_folder(path, source, number)
            where = (class_names, class_source, source, number)
            _check_ucf_line(parts, line, split_name, label, where)
            _check_unique(
                entries,
                seen,
                VideoEntry(path, label, class_names[label], split_name),
                source,
                number,
            )
    return SplitSet(
        "ucf101", class_names, entries, [class_source, by_name[wanted[1]], by_name[wanted[2]]]
    )


def parse_hmdb51(texts: Mapping[str, str], split: int = 1) -> SplitSet:
    """Parses HMDB51 split files (``<class>_test_splitN.txt``, one per class)."""
    per_class: Dict[str, str] = {}
    for path in texts:
        match = _HMDB_SUFFIX.match(posixpath.basename(path.replace("\\", "/")))
        if match and int(match.group("n")) == split:
            per_class[match.group("cls")] = path
    if not per_class:
        raise SplitFileError(
            posixpath.dirname(next(iter(texts), "")) or ".",
            f"HMDB51 split {split}: no <class>_test_split{split}.txt files",
        )
    class_names = sorted(per_class)
    entries: List[VideoEntry] = []
    seen: Dict[str, Tuple[str, int]] = {}
    for label, name in enumerate(class_names):
        source = per_class[name]
        for number, line in _lines(texts[source]):
            parts = line.rsplit(None, 1)  # the role is the last column
            if len(parts) != 2 or parts[1] not in _HMDB_ROLE:
                raise SplitFileError(
                    source,
                    f"expected '<video> <0|1|2>' (1 train, 2 test, 0 unused), got {line!r}",
                    number,
                )
            role = _HMDB_ROLE[parts[1]]
            if role is None:
                continue
            _check_unique(
                entries, seen, VideoEntry(f"{name}/{parts[0]}", label, name, role), source, number
            )
    # Stable order: every train video, then every test video, each in file order.
    entries.sort(key=lambda e: SPLITS.index(e.split))
    return SplitSet("hmdb51", class_names, entries, [per_class[n] for n in class_names])


def _window(row: Mapping[str, str], source: str, number: int):
    """(start, end) in seconds of a manifest row, or (None, None) when both are empty."""
    texts = [(row.get(name) or "").strip() for name in ("start", "end")]
    if not any(texts):
        return None, None
    if not all(texts):
        raise SplitFileError(
            source, f"start and end must both be given or both empty, got {texts}", number
        )
    try:
        start, end = (float(text) for text in texts)
    except ValueError:
        raise SplitFileError(source, f"start/end must be seconds, got {texts}", number) from None
    if not (0 <= start < end) or end == float("inf"):
        raise SplitFileError(source, f"window [{start:g}, {end:g}) s is empty or negative", number)
    return start, end


def parse_manifest_csv(text: str, source: str) -> SplitSet:
    """Parses a CSV with the columns ``path,label,split`` and optionally
    ``start,end`` (header required)."""
    reader = csv.DictReader(io.StringIO(text))
    columns = reader.fieldnames or []
    missing = [c for c in ("path", "label", "split") if c not in columns]
    if missing:
        raise SplitFileError(source, f"missing column(s) {missing}; header is {columns}", 1)
    if ("start" in columns) != ("end" in columns):
        raise SplitFileError(source, f"columns start and end go together; header is {columns}", 1)
    rows = []
    for row in reader:
        number = reader.line_num
        path = (row["path"] or "").strip().replace("\\", "/")
        label_name = (row["label"] or "").strip()
        split_name = (row["split"] or "").strip()
        if not path:
            raise SplitFileError(source, "empty path", number)
        if split_name not in SPLITS:
            raise SplitFileError(source, f"split {split_name!r} is not one of {SPLITS}", number)
        rows.append((number, path, label_name, split_name, _window(row, source, number)))
    class_names = sorted({label for _, _, label, _, _ in rows if label})
    index = {name: i for i, name in enumerate(class_names)}
    entries: List[VideoEntry] = []
    seen: Dict[str, Tuple[str, int]] = {}
    for number, path, label_name, split_name, (start, end) in rows:
        entry = VideoEntry(path, index.get(label_name, -1), label_name, split_name, start, end)
        _check_unique(entries, seen, entry, source, number)
    entries.sort(key=lambda e: SPLITS.index(e.split))
    return SplitSet("csv", class_names, entries, [source])


def is_absolute(path: str) -> bool:
    """True for "/x", "//host/x", "C:/x" and "scheme://x" ("/"-separated paths)."""
    return path.startswith("/") or bool(_DRIVE.match(path)) or bool(_SCHEME.match(path))


def path_problem(path: str, allow_absolute: bool = False) -> Optional[str]:
    """Why the listed ``path`` may not be opened under the videos folder, or None when it may.

    ``path`` is an entry's "/"-separated path. Refused: an absolute path
    (unless ``allow_absolute``), and a relative one whose ``..`` components
    lead outside the videos folder once resolved as text ("a/../b.avi" is
    fine, "a/../../b.avi" is not).
    """
    if is_absolute(path):
        if allow_absolute:
            return None
        return (
            "is an absolute path; entries must be relative to --videos_dir "
            "(--allow_absolute_paths accepts absolute ones)"
        )
    resolved = posixpath.normpath(path)
    if resolved == ".." or resolved.startswith("../"):
        return "leads outside --videos_dir (its '..' components climb above it)"
    if resolved == ".":
        return "names the --videos_dir folder itself, not a video"
    return None


def parse_split_files(texts: Mapping[str, str], split: int = 1) -> SplitSet:
    """Detects the layout of a splits folder's files and parses split ``split``.

    Args:
      texts: file path -> file content, for the ``.txt`` files of the folder.
      split: split number (1, 2 or 3 for UCF101 and HMDB51).
    """
    if split < 1:
        raise ConfigError(f"split number must be >= 1, got {split}")
    layout = detect_layout(list(texts), split)
    if layout == "ucf101":
        return parse_ucf101(texts, split)
    return parse_hmdb51(texts, split)

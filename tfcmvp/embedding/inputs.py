"""The command line's INPUT arguments -> the list of video files to embed.

An INPUT is

* a video file (any name: it is what the user asked for);
* a folder: every file under it, recursively, whose extension is one of
  ``VIDEO_EXTENSIONS`` (any case), in sorted path order; hidden files and
  folders (name starting with ".") are skipped;
* a list file (``.txt`` or ``.csv``): one path per line; blank lines and
  lines starting with "#" are skipped; in a ``.csv`` the first column is the
  path and a first line whose first column is ``path`` is a header. Relative
  paths are relative to the list file's folder.

Paths are kept as given (relative ones stay relative), in the order of the
arguments, each file once. An INPUT that does not exist, or a folder with no
video, is an :class:`InputError` (nothing is embedded); a listed path that
does not exist is not: it is reported as a failed video like an unreadable
one, because a long list with a stale line should not stop a run.
"""

from __future__ import annotations

import csv
import os
import pathlib
from typing import Iterable, List

from tfcmvp.errors import JobError

# FFmpeg reads many more; these are the containers video collections come in.
VIDEO_EXTENSIONS = frozenset(
    {
        ".mp4",
        ".m4v",
        ".avi",
        ".mkv",
        ".mov",
        ".webm",
        ".mpg",
        ".mpeg",
        ".m2v",
        ".ts",
        ".mts",
        ".m2ts",
        ".wmv",
        ".asf",
        ".flv",
        ".3gp",
        ".ogv",
        ".vob",
        ".divx",
        ".h264",
        ".264",
    }
)
LIST_EXTENSIONS = frozenset({".txt", ".csv"})


class InputError(JobError, ValueError):
    """An INPUT argument is missing, or names nothing to embed; the message names it."""


def is_video_name(path) -> bool:
    """True when the file name has one of ``VIDEO_EXTENSIONS``."""
    return pathlib.Path(path).suffix.lower() in VIDEO_EXTENSIONS


def _hidden(relative: pathlib.Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def videos_in_folder(folder) -> List[str]:
    """Video files under ``folder`` (recursive, sorted, hidden entries skipped)."""
    folder = pathlib.Path(folder)
    found = []
    for root, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            path = pathlib.Path(root) / name
            if not name.startswith(".") and is_video_name(name):
                found.append(path)
    return [str(p) for p in sorted(found, key=lambda p: p.as_posix())]


def read_list_file(path) -> List[str]:
    """The paths listed in a ``.txt`` / ``.csv`` list file (module docstring)."""
    path = pathlib.Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"list file {path}: cannot be read: {error}") from error
    base = path.parent
    if path.suffix.lower() == ".csv":
        rows = [row[0].strip() for row in csv.reader(text.splitlines()) if row]
        if rows and rows[0].lower() == "path":
            rows = rows[1:]
    else:
        rows = [line.strip() for line in text.splitlines()]
    listed = []
    for row in rows:
        if not row or row.startswith("#"):
            continue
        entry = pathlib.Path(row).expanduser()
        listed.append(str(entry if entry.is_absolute() else base / entry))
    return listed


def is_list_file(path) -> bool:
    """A ``.txt`` or ``.csv`` file that is not itself a video (by extension)."""
    return pathlib.Path(path).suffix.lower() in LIST_EXTENSIONS


def gather_inputs(inputs: Iterable) -> List[str]:
    """Video paths named by the INPUT arguments, in order, each once.

    Raises InputError naming the argument when one does not exist, a folder
    holds no video file, a list file cannot be read or lists nothing, or no
    INPUT was given.
    """
    videos: List[str] = []
    seen = set()
    inputs = list(inputs)
    if not inputs:
        raise InputError("no INPUT given: name video files, folders or list files")
    for item in inputs:
        path = pathlib.Path(item)
        if path.is_dir():
            found = videos_in_folder(path)
            if not found:
                raise InputError(
                    f"INPUT {item}: a folder without video files (looked for "
                    f"{', '.join(sorted(VIDEO_EXTENSIONS))} under it)"
                )
        elif path.is_file():
            found = read_list_file(path) if is_list_file(path) else [str(path)]
            if not found:
                raise InputError(f"INPUT {item}: a list file that lists no path")
        else:
            raise InputError(f"INPUT {item}: no such file or folder")
        for video in found:
            key = os.path.normpath(os.path.abspath(video))
            if key not in seen:
                seen.add(key)
                videos.append(video)
    return videos

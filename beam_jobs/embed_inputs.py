"""The embedding job's inputs: the videos ``--inputs`` names, local or remote, and the export.

Local INPUTs follow ``tfcmvp embed``'s own rules
(:mod:`tfcmvp.embedding.inputs`); remote ones (``gs://``...) the same rules
through Beam's file systems (:mod:`beam_jobs.fileio`).
"""

from __future__ import annotations

import csv
import os
import posixpath
import tempfile
from typing import List, Sequence

from beam_jobs import fileio
from beam_jobs.embed_options import EmbedConfig
from tfcmvp.embedding import inputs as inputs_lib
from tfcmvp.errors import DataNotFoundError


def _remote_list(item: str) -> List[str]:
    """The paths a remote list file names (:func:`tfcmvp.embedding.inputs.read_list_file`'s
    rules; relative paths are relative to the list file's folder)."""
    text = fileio.read_text(item)
    if item.lower().endswith(".csv"):
        rows = [row[0].strip() for row in csv.reader(text.splitlines()) if row]
        if rows and rows[0].lower() == "path":
            rows = rows[1:]
    else:
        rows = [line.strip() for line in text.splitlines()]
    base = item.rsplit("/", 1)[0]
    listed = []
    for row in rows:
        if not row or row.startswith("#"):
            continue
        if "://" not in row and not row.startswith("/"):
            # Object stores take "a/../b" literally: resolve it as a folder path would be.
            scheme, rest = fileio.join(base, row).split("://", 1)
            row = f"{scheme}://{posixpath.normpath(rest)}"
        listed.append(row)
    return listed


def _remote_videos(item: str) -> List[str]:
    """Videos named by a remote INPUT (``gs://``...): a file, a list file or a folder,
    with :mod:`tfcmvp.embedding.inputs`' rules (recursive, by extension, sorted, hidden
    entries skipped)."""
    if fileio.exists(item):  # a file: object stores have no folders to exist
        if not inputs_lib.is_list_file(item):
            return [item]
        listed = _remote_list(item)
        if not listed:
            raise inputs_lib.InputError(f"INPUT {item}: a list file that lists no path")
        return listed
    folder = item.rstrip("/")
    found = []
    for path in fileio.list_files(fileio.join(folder, "**")):
        relative = path[len(folder) :].lstrip("/")
        if inputs_lib.is_video_name(path) and not any(
            part.startswith(".") for part in relative.split("/")
        ):
            found.append(path)
    if not found:
        raise inputs_lib.InputError(
            f"INPUT {item}: no such file, or a folder without video "
            f"files (looked for "
            f"{', '.join(sorted(inputs_lib.VIDEO_EXTENSIONS))})"
        )
    return sorted(found)


def list_videos(inputs: Sequence[str]) -> List[str]:
    """The videos named by ``--inputs``, in order, each once.

    Local INPUTs are read by ``tfcmvp embed``'s own
    :func:`tfcmvp.embedding.inputs.gather_inputs` (so both list the same
    videos in the same order); remote ones (``gs://``...) by the same rules
    through Beam's file systems. Raises
    :class:`tfcmvp.embedding.inputs.InputError` naming the INPUT.
    """
    if all(fileio.is_local(item) for item in inputs):
        return inputs_lib.gather_inputs(inputs)
    videos: List[str] = []
    seen = set()
    for item in inputs:
        found = inputs_lib.gather_inputs([item]) if fileio.is_local(item) else _remote_videos(item)
        for video in found:
            key = os.path.normpath(os.path.abspath(video)) if fileio.is_local(video) else video
            if key not in seen:
                seen.add(key)
                videos.append(video)
    return videos


def localize_folder(folder: str, tmp_dir: str) -> str:
    """A local copy of a remote folder (every file under it) in ``tmp_dir``; a local
    folder is used in place. For the export, which TensorFlow and the contract reader
    open from a local path."""
    if fileio.is_local(folder):
        return folder
    local = tempfile.mkdtemp(prefix="export-", dir=tmp_dir)
    prefix = folder.rstrip("/") + "/"
    files = fileio.list_files(fileio.join(folder, "**"))
    if not files:
        raise DataNotFoundError(f"{folder}: no such folder (no file under it)")
    for path in files:
        target = os.path.join(local, *path[len(prefix) :].split("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as handle:
            handle.write(fileio.read_bytes(path))
    return local


def local_inputs(config: EmbedConfig, videos: Sequence[str]) -> List[str]:
    """Local paths the job reads (export, list files, videos): the output must not hold one."""
    named = [
        config.model_dir,
        *[item for item in config.inputs if os.path.isfile(item) and inputs_lib.is_list_file(item)],
        *videos,
    ]
    return [path for path in named if fileio.is_local(path)]

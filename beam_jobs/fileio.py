"""File access for Beam jobs through ``apache_beam.io.filesystems``.

Paths may be local or any scheme Beam knows (``gs://`` with
``apache-beam[gcp]``, ``s3://``, ``hdfs://``...), so that the same job runs on
a laptop and on Dataflow. PyAV needs a real local file: :func:`localize`
copies a remote video into a worker's temp folder first.
"""

from __future__ import annotations

import os
import shutil
from typing import BinaryIO, Iterable, List, Tuple

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

_COPY_CHUNK = 1 << 22  # 4 MiB


def is_local(path: str) -> bool:
    """True for plain local paths (no ``scheme://``)."""
    return FileSystems.get_scheme(path) in (None, "file")


def join(base: str, *parts: str) -> str:
    """Joins path parts with the separator of ``base``'s file system."""
    return FileSystems.join(base, *parts)


def exists(path: str) -> bool:
    return FileSystems.exists(path)


def list_files(pattern: str) -> List[str]:
    """Paths of the files matching a glob (``**`` recurses); [] when none."""
    return sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)


def any_file_under(folder: str) -> bool:
    """Whether at least one file lies under ``folder`` (one listing call, stopped at the first)."""
    result = FileSystems.match([join(folder, "**")], limits=[1])[0]
    return bool(result.metadata_list)


def read_bytes(path: str) -> bytes:
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        return f.read()


def read_text(path: str) -> str:
    """Reads a UTF-8 text file (a BOM, if any, is dropped)."""
    return read_bytes(path).decode("utf-8-sig")


def create(path: str, mime_type: str = "application/octet-stream") -> BinaryIO:
    """A binary write handle (local parent folders are created)."""
    return FileSystems.create(
        path, mime_type=mime_type, compression_type=CompressionTypes.UNCOMPRESSED
    )


def write_text(path: str, text: str, mime_type: str = "text/plain") -> None:
    with create(path, mime_type=mime_type) as f:
        f.write(text.encode("utf-8"))


def delete(paths: Iterable[str]) -> None:
    """Deletes files (and local folders with their content)."""
    paths = list(paths)
    if paths:
        FileSystems.delete(paths)


def rename(pairs: Iterable[Tuple[str, str]]) -> None:
    """Moves each ``(source, destination)``; on object stores, copy then delete."""
    pairs = list(pairs)
    if pairs:
        FileSystems.rename([s for s, _ in pairs], [d for _, d in pairs])


def mkdirs(path: str) -> None:
    """Creates a folder and its parents; a no-op on object stores."""
    if is_local(path):
        os.makedirs(path, exist_ok=True)
    else:
        try:
            FileSystems.mkdirs(path)
        except IOError:
            pass  # object stores have no folders, or it already exists


def localize(path: str, tmp_dir: str) -> Tuple[str, bool]:
    """A local path holding the content of ``path``.

    Returns ``(local_path, is_copy)``: local files are used in place; remote
    ones are copied into ``tmp_dir`` (the caller deletes the copy). Raises
    ``FileNotFoundError`` naming the path when it does not exist.
    """
    if is_local(path):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: no such file")
        return path, False
    if not FileSystems.exists(path):
        raise FileNotFoundError(f"{path}: no such file")
    local = os.path.join(tmp_dir, "src" + os.path.splitext(path)[1])
    with (
        FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as src,
        open(local, "wb") as dst,
    ):
        shutil.copyfileobj(src, dst, _COPY_CHUNK)
    return local, True

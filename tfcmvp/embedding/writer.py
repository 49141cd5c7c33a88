"""The output folder of ``tfcmvp embed``, written beside its place and swapped in.

``OUT/`` holds:

``embeddings.npy``
    float32 ``[N, D]``, row i the ``embed`` output of clip i
    (``numpy.load``; ``tf.constant(np.load(...))``).
``clips.csv``
    one row per embedding row, same order (``pandas.read_csv``): ``row``,
    ``path`` (as given), ``clip`` (0-based index within its video),
    ``start_frame`` / ``end_frame`` (the frames the row stands for, end
    exclusive: the clip's span, or the ``--window`` segment it is centred
    in), ``start_time`` / ``end_time`` (seconds, ``frame / fps``), ``fps``,
    ``num_frames``, ``codec``, ``network`` and ``iframe`` (the I-frame the
    I-frame network saw; -1 for the other networks).
``failed.jsonl``
    one JSON object per video that could not be embedded: ``path``,
    ``stage`` ("open", "decode", "vectors", "short", "embed"), ``error``
    (exception type) and ``message``.
``embed.json``
    ``status`` ("ok" / "failed"), ``problems``, counts (``listed`` ==
    ``embedded`` + ``failed``, ``clips``), the export (folder, network,
    backbone, embedding dim, input contract), the clip layout, the storage
    settings, versions and the time.

The folder is assembled in a hidden staging folder beside ``OUT`` and
swapped in with one rename (:func:`tfcmvp.outputs.swap_in`), so a killed run
leaves the previous output whole. Without ``overwrite`` an existing
non-empty ``OUT`` is refused; with it, only a previous ``tfcmvp embed``
output (these four files and nothing else) is replaced. Embeddings are
appended to a raw file as they come, so memory stays flat however many
videos there are; ``embeddings.npy`` is made from it at the end.
"""

from __future__ import annotations

import csv
import json
import os
import pathlib
import shutil
from typing import Iterable, Mapping, Optional, Sequence

import numpy as np

from tfcmvp import outputs

EMBEDDINGS_NAME = "embeddings.npy"
TABLE_NAME = "clips.csv"
FAILED_NAME = "failed.jsonl"
SUMMARY_NAME = "embed.json"
OUTPUT_ENTRIES = (EMBEDDINGS_NAME, TABLE_NAME, FAILED_NAME, SUMMARY_NAME)
TABLE_COLUMNS = (
    "row",
    "path",
    "clip",
    "start_frame",
    "end_frame",
    "start_time",
    "end_time",
    "fps",
    "num_frames",
    "codec",
    "network",
    "iframe",
)
_RAW_NAME = "embeddings.f32"  # rows appended during the run
_COPY_ROWS = 1 << 16  # rows per chunk when the raw file becomes the .npy


def output_problem(folder) -> Optional[str]:
    """Why `folder` is not a previous ``tfcmvp embed`` output, or None when it is one."""
    folder = pathlib.Path(folder)
    if folder.is_symlink():
        return "it is a symbolic link"
    if not folder.is_dir():
        return "it is a file, not a folder"
    if not (folder / SUMMARY_NAME).is_file():
        return f"it holds no {SUMMARY_NAME}, so `tfcmvp embed` did not write it"
    foreign = sorted(p.name for p in folder.iterdir() if p.name not in OUTPUT_ENTRIES)
    if foreign:
        return f"besides an embed output it holds {', '.join(foreign[:3])}"
    return None


def check_output(output, *, overwrite: bool, inputs: Iterable = ()) -> None:
    """Refuses an output folder that writing there would damage (module docstring).

    Raises :class:`tfcmvp.outputs.OverwriteRefused` (a FileExistsError) with
    the reason; `inputs` (videos, list files, the export) must not be in it.
    """
    outputs.check_not_input(output, inputs)
    output = pathlib.Path(output)
    if not os.path.lexists(output):
        return
    if output.is_dir() and not output.is_symlink() and not any(output.iterdir()):
        return
    if not overwrite:
        raise outputs.OverwriteRefused(
            f"--output {output} already exists and is not empty (pass --overwrite to replace "
            f"a previous embed output)"
        )
    problem = output_problem(output)
    if problem:
        raise outputs.OverwriteRefused(
            f"refusing to overwrite {output}: {problem}. --overwrite replaces only a previous "
            f"embed output ({', '.join(OUTPUT_ENTRIES)}); choose another --output"
        )


class EmbeddingWriter:
    """Streams rows, table lines and failures into a staging folder; :meth:`commit` swaps it in.

    Use as a context manager: leaving it without :meth:`commit` (an error)
    removes the staging folder and leaves ``output`` as it was.
    """

    def __init__(self, output, *, overwrite: bool, inputs: Iterable = ()):
        self.output = pathlib.Path(output)
        self.overwrite = overwrite
        check_output(self.output, overwrite=overwrite, inputs=inputs)
        parent = self.output.resolve().parent
        self.staging = outputs.make_staging_dir(parent, f".{self.output.name}.embed-")
        # mkdtemp makes it private (0700); the output gets a folder's usual mode.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self.staging, 0o777 & ~umask)
        self._raw = open(self.staging / _RAW_NAME, "wb")
        self._table_file = open(self.staging / TABLE_NAME, "w", newline="", encoding="utf-8")
        self._table = csv.writer(self._table_file)
        self._table.writerow(TABLE_COLUMNS)
        self._failed = open(self.staging / FAILED_NAME, "w", encoding="utf-8")
        self.rows = 0
        self.dim: Optional[int] = None
        self.failures = 0

    def __enter__(self) -> "EmbeddingWriter":
        return self

    def __exit__(self, *exc) -> None:
        self._close()
        shutil.rmtree(self.staging, ignore_errors=True)  # gone already after commit

    def _close(self) -> None:
        for handle in (self._raw, self._table_file, self._failed):
            if not handle.closed:
                handle.close()

    def add(self, embeddings: np.ndarray, rows: Sequence[Mapping]) -> None:
        """Appends one video's ``[n, D]`` embeddings and their ``n`` table rows."""
        embeddings = np.ascontiguousarray(embeddings, np.float32)
        if embeddings.ndim != 2 or embeddings.shape[0] != len(rows):
            raise ValueError(f"embeddings of shape {embeddings.shape} for {len(rows)} rows")
        if self.dim is None:
            self.dim = int(embeddings.shape[1])
        elif embeddings.shape[1] != self.dim:
            raise ValueError(f"embedding dim {embeddings.shape[1]} after {self.dim}")
        self._raw.write(embeddings.tobytes())
        for row in rows:
            self._table.writerow([self.rows] + [row[key] for key in TABLE_COLUMNS[1:]])
            self.rows += 1

    def fail(self, record: Mapping) -> None:
        """Appends one ``failed.jsonl`` line."""
        self._failed.write(json.dumps(dict(record), sort_keys=True) + "\n")
        self._failed.flush()
        self.failures += 1

    def commit(self, summary: Mapping, dim: int) -> pathlib.Path:
        """Writes ``embeddings.npy`` (``[rows, dim]``; dim for an empty matrix) and
        ``embed.json``, then swaps the folder into place; returns the output folder."""
        self._close()
        raw_path = self.staging / _RAW_NAME
        dim = self.dim if self.dim is not None else int(dim)
        matrix = np.lib.format.open_memmap(
            self.staging / EMBEDDINGS_NAME, mode="w+", dtype=np.float32, shape=(self.rows, dim)
        )
        if self.rows:
            raw = np.memmap(raw_path, dtype=np.float32, mode="r", shape=(self.rows, dim))
            for first in range(0, self.rows, _COPY_ROWS):
                matrix[first : first + _COPY_ROWS] = raw[first : first + _COPY_ROWS]
            del raw
        matrix.flush()
        del matrix
        raw_path.unlink()
        (self.staging / SUMMARY_NAME).write_text(
            json.dumps(summary, indent=2) + "\n", encoding="utf-8"
        )
        # The output may have appeared (or changed) while the videos were embedded.
        check_output(self.output, overwrite=self.overwrite)
        if self.output.is_dir() and not any(self.output.iterdir()):
            self.output.rmdir()  # an empty folder: replaced by a plain rename
        outputs.swap_in(self.staging, self.output)
        return self.output

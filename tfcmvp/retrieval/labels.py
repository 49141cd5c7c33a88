"""Labels from a CSV file, to score the same videos by another kind of label.

The extraction records carry one class label per video (from the split
files). A representation can also be scored by other labels of the same
videos, e.g. the scene of each synthetic video (``tfcmvp synth`` writes
``labels.csv`` with a ``motion`` and a ``scene`` column), or any labels a user
keeps for their own videos::

    video,split,motion,scene
    MoveUp/v_MoveUp_g01_c01.avi,test,MoveUp,Tiles

The ``video`` column holds the record's video id (the path as listed in the
split file or manifest). Other columns are label kinds; the class index of a
label is its position in the sorted list of that column's distinct values.
"""

from __future__ import annotations

import csv
import dataclasses
import pathlib

import numpy as np

from tfcmvp.errors import DataNotFoundError, InvalidDataError

VIDEO_COLUMN = "video"


@dataclasses.dataclass(frozen=True)
class LabelTable:
    """One label kind of a labels CSV: video id -> label name.

    Attributes:
      path: the CSV file.
      column: the label kind (a column name).
      names: the distinct label names, sorted; a label's index is its position.
      by_video: video id -> label name.
    """

    path: str
    column: str
    names: tuple
    by_video: dict

    def index(self, name: str) -> int:
        return self.names.index(name)


def read_label_table(path, column: str) -> LabelTable:
    """Reads the label kind `column` of the CSV at `path`.

    Raises:
      FileNotFoundError: no such file.
      ValueError: no ``video`` column, no `column` (naming the columns there
        are), an empty label, or a video listed twice with different labels.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"labels file not found: {path}")
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        if VIDEO_COLUMN not in columns:
            raise InvalidDataError(
                f"{path}: no {VIDEO_COLUMN!r} column (columns: {', '.join(columns)})"
            )
        if column not in columns or column == VIDEO_COLUMN:
            kinds = [c for c in columns if c != VIDEO_COLUMN]
            raise InvalidDataError(
                f"{path}: no label column {column!r}; columns: {', '.join(kinds)}"
            )
        by_video = {}
        for line, row in enumerate(reader, start=2):
            video, label = (row.get(VIDEO_COLUMN) or "").strip(), (row.get(column) or "").strip()
            if not video or not label:
                raise InvalidDataError(f"{path}:{line}: empty {VIDEO_COLUMN!r} or {column!r} value")
            if by_video.get(video, label) != label:
                raise InvalidDataError(
                    f"{path}:{line}: video {video!r} listed twice with different "
                    f"{column!r} labels ({by_video[video]!r}, {label!r})"
                )
            by_video[video] = label
    return LabelTable(str(path), column, tuple(sorted(set(by_video.values()))), by_video)


def relabel(video_ids, table: LabelTable) -> tuple[np.ndarray, np.ndarray]:
    """(labels int64 [V], label names unicode [V]) of `video_ids` under `table`.

    Raises ValueError naming the first videos the table does not list.
    """
    video_ids = [str(v) for v in video_ids]
    missing = [v for v in video_ids if v not in table.by_video]
    if missing:
        raise InvalidDataError(
            f"{table.path}: {len(missing)} video(s) of the data have no "
            f"{table.column!r} label, e.g. {missing[:3]}"
        )
    names = [table.by_video[v] for v in video_ids]
    labels = np.asarray([table.index(n) for n in names], dtype=np.int64)
    return labels, np.asarray(names, dtype=str)

"""The embedding job's graph: EmbedVideo -> StageRows -> GroupByShard -> WriteShard.

StageRows writes one small ``.npz`` per video under the staging folder, so
the shuffle moves paths, not embeddings; WriteShard joins a shard's videos
in listing order, its first row number from the row counts of the shards
before it (a side input). The shard list and the failures end in two text
files that :mod:`beam_jobs.embed_finalize` reads.
"""

from __future__ import annotations

import csv
import io
import json
from typing import List, Sequence, Tuple

import apache_beam as beam
import numpy as np

from beam_jobs import embed_output, fileio
from beam_jobs.embed_options import EmbedConfig
from beam_jobs.embed_stages import FAILED, EmbedVideoFn, ExportClips, Task
from tfcmvp.embedding import writer as writer_lib

_PARTS_DIR = "parts"  # one staged .npz per video, joined into shards at the end
SHARD_LIST_NAME = "shards.jsonl"  # one line per shard written


def _part_path(staging_dir: str, task: Task) -> str:
    return fileio.join(staging_dir, _PARTS_DIR, f"{task.shard:05d}", f"{task.index:09d}.npz")


class StageRowsFn(beam.DoFn):
    """(task, embeddings, rows, frames) -> (shard, (index, part path, rows, frames)).

    Writes one ``.npz`` per video (its embeddings and its table rows as
    JSON) under the staging folder: the shuffle that gathers a shard then
    moves paths only, never embeddings (the local runner holds shuffled data
    in memory). The path is fixed by the task, so a retried bundle rewrites
    the same file.
    """

    def __init__(self, staging_dir: str):
        super().__init__()
        self._staging_dir = staging_dir

    def process(self, element):
        task, matrix, rows, frames = element
        buffer = io.BytesIO()
        np.savez(
            buffer,
            embeddings=np.ascontiguousarray(matrix, np.float32),
            rows=np.array(json.dumps(rows)),
        )
        part = _part_path(self._staging_dir, task)
        with fileio.create(part) as handle:
            handle.write(buffer.getvalue())
        yield task.shard, (task.index, part, len(rows), frames)


def _read_part(path: str) -> Tuple[np.ndarray, List[dict]]:
    with np.load(io.BytesIO(fileio.read_bytes(path)), allow_pickle=False) as part:
        return part["embeddings"], json.loads(str(part["rows"]))


class WriteShardFn(beam.DoFn):
    """(shard, {"shard": [num_shards], "parts": [...]}) + rows per shard -> shard summary.

    Joins the shard's staged videos in listing order into
    ``embeddings-*.npy`` and ``clips-*.csv`` (``tfcmvp embed``'s table
    columns and CSV dialect; ``row`` numbered from the rows of the shards
    before it). A shard whose videos all failed is written empty (``[0, D]``,
    header only), so no shard of the ``-of-N`` set is ever missing.
    """

    def __init__(self, staging_dir: str, dim: int):
        super().__init__()
        self._staging_dir = staging_dir
        self._dim = dim

    def process(self, element, rows_per_shard):
        shard, grouped = element
        (num_shards,) = list(grouped["shard"])
        parts = sorted(grouped["parts"])  # (index, path, rows, frames), listing order
        first_row = sum(rows_per_shard.get(s, 0) for s in range(shard))
        matrices, table = [], io.StringIO(newline="")
        writer = csv.writer(table)  # the dialect of tfcmvp embed's clips.csv
        writer.writerow(writer_lib.TABLE_COLUMNS)
        row_number = first_row
        for _, path, _, _ in parts:
            matrix, rows = _read_part(path)
            matrices.append(matrix)
            for row in rows:
                writer.writerow([row_number] + [row[key] for key in writer_lib.TABLE_COLUMNS[1:]])
                row_number += 1
        matrix = (
            np.concatenate(matrices) if matrices else np.zeros([0, self._dim], np.float32)
        )  # [rows, D]
        embeddings_name, table_name = embed_output.shard_names(shard, num_shards)
        buffer = io.BytesIO()
        np.save(buffer, matrix, allow_pickle=False)
        with fileio.create(fileio.join(self._staging_dir, embeddings_name)) as handle:
            handle.write(buffer.getvalue())
        with fileio.create(fileio.join(self._staging_dir, table_name), "text/csv") as handle:
            handle.write(table.getvalue().encode("utf-8"))
        yield {
            "shard": shard,
            "embeddings": embeddings_name,
            "table": table_name,
            "videos": len(parts),
            "rows": int(matrix.shape[0]),
            "first_row": first_row,
            "frames": sum(frames for _, _, _, frames in parts),
        }


def build_pipeline(
    pipeline: beam.Pipeline,
    config: EmbedConfig,
    clips: ExportClips,
    tasks: Sequence[Task],
    staging_dir: str,
) -> None:
    """Applies the job's transforms to ``pipeline``, writing into ``staging_dir``.

    Nothing runs here; :func:`beam_jobs.embed.run` calls ``pipeline.run()``.
    """
    num_shards = tasks[0].num_shards
    videos = pipeline | "ListVideos" >> beam.Create(list(tasks))
    embedded = videos | "EmbedVideo" >> beam.ParDo(EmbedVideoFn(config, clips)).with_outputs(
        FAILED, main="videos"
    )
    parts = embedded.videos | "StageRows" >> beam.ParDo(StageRowsFn(staging_dir))
    rows_per_shard = (
        parts
        | "RowsOfVideo" >> beam.MapTuple(lambda shard, part: (shard, part[2]))
        | "RowsPerShard" >> beam.CombinePerKey(sum)
    )
    # Every shard takes part, even one whose videos all failed.
    shards = pipeline | "ListShards" >> beam.Create([(s, num_shards) for s in range(num_shards)])
    (
        {"shard": shards, "parts": parts}
        | "GroupByShard" >> beam.CoGroupByKey()
        | "WriteShard"
        >> beam.ParDo(
            WriteShardFn(staging_dir, clips.dim), rows_per_shard=beam.pvalue.AsDict(rows_per_shard)
        )
        | "FormatShard" >> beam.Map(lambda shard: json.dumps(shard, sort_keys=True))
        | "WriteShardList"
        >> beam.io.WriteToText(
            fileio.join(staging_dir, SHARD_LIST_NAME), shard_name_template="", num_shards=1
        )
    )
    (
        embedded[FAILED]
        | "FormatFailure" >> beam.Map(lambda record: json.dumps(record, sort_keys=True))
        | "WriteFailed"
        >> beam.io.WriteToText(
            fileio.join(staging_dir, embed_output.FAILED_NAME), shard_name_template="", num_shards=1
        )
    )

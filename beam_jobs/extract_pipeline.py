"""The extraction job's graph: per-video stages -> shards, failures and tallies in one sink.

:func:`build_pipeline` applies the stages of :mod:`beam_jobs.extract_stages`
then GroupByShard (paths only) -> WriteShard (the shard's gzip members
concatenated in listing order, see :mod:`beam_jobs.tfrecord_files`), the
failures and the per-split tallies, all ending in one sink (GroupByFile ->
WriteFiles: three small files in the staging folder that the launcher reads
in :mod:`beam_jobs.extract_finalize`).
"""

from __future__ import annotations

import json
from typing import List, Optional, Tuple

import apache_beam as beam

from beam_jobs import fileio, tfrecord_files
from beam_jobs.extract_options import ExtractConfig
from beam_jobs.extract_stages import (
    FAILED,
    TALLY,
    BuildRecordFn,
    EncodeExampleFn,
    ExtractVideoFn,
    StageRecordFn,
    plan_tasks,
)
from beam_jobs.tagged_outputs import ParDoWithOutputs
from tfcmvp import manifest as manifest_lib
from tfcmvp import splits as splits_lib

SUMMARY_NAME = "summary.jsonl"  # merged tallies, one line per split
SHARD_LIST_NAME = "shards.jsonl"  # one line per shard written: split, name, records


def shard_name(split: str, shard: int, num_shards: int, compression: str = "gzip") -> str:
    """``train-00003-of-00010.tfrecord.gz`` (``.tfrecord`` with compression "none")."""
    return f"{split}-{shard:05d}-of-{num_shards:05d}{manifest_lib.SHARD_SUFFIXES[compression]}"


class WriteShardFn(beam.DoFn):
    """((split, shard), {"shard": [num_shards], "parts": [(index, path)]}) -> shard summary.

    Concatenates the shard's staged parts (gzip members, or framed records
    with ``--compression none``) in listing order into one TFRecord file (empty
    if every video of the shard failed, so that no shard of the ``-of-N`` set
    is ever missing).
    """

    def __init__(self, staging_dir: str, compression: str = "gzip"):
        super().__init__()
        self._staging_dir = staging_dir
        self._compression = compression

    def process(self, element):
        (split, shard), grouped = element
        (num_shards,) = list(grouped["shard"])
        parts = [path for _, path in sorted(grouped["parts"])]
        name = shard_name(split, shard, num_shards, self._compression)
        with fileio.create(fileio.join(self._staging_dir, name)) as handle:
            tfrecord_files.write_shard(handle, (fileio.read_bytes(p) for p in parts))
        yield {"split": split, "name": name, "records": len(parts)}


class WriteLinesFn(beam.DoFn):
    """(file name, {"file": [True], "lines": [str]}) -> writes ``staging_dir/name``.

    The lines sorted, each ending in a newline (an empty file when there are
    none), so the file does not depend on the order in which the runner
    gathered them. Writes the whole file in one go: a retried element
    rewrites it. Used instead of ``WriteToText``, whose finalize step reads a
    side input, which the Dask runner cannot provide.
    """

    def __init__(self, staging_dir: str):
        super().__init__()
        self._staging_dir = staging_dir

    def process(self, element):
        name, grouped = element
        lines = sorted(grouped["lines"])
        fileio.write_text(
            fileio.join(self._staging_dir, name), "".join(line + "\n" for line in lines)
        )
        yield name, len(lines)


def split_names(split_set: splits_lib.SplitSet) -> List[str]:
    """Splits with at least one listed video, in ``splits.SPLITS`` order."""
    listed = split_set.listed()
    return [name for name in splits_lib.SPLITS if listed[name]]


def _write_shards(pipeline, staged, shard_keys, staging_dir: str, compression: str):
    """GroupByShard -> WriteShard: the shard files, and their ``shards.jsonl`` lines."""
    # Every shard key takes part, even one whose videos all failed.
    shards = pipeline | "ListShards" >> beam.Create(shard_keys)
    return (
        {"shard": shards, "parts": staged.parts}
        | "GroupByShard" >> beam.CoGroupByKey()
        | "WriteShard" >> beam.ParDo(WriteShardFn(staging_dir, compression))
        | "FormatShard"
        >> beam.Map(lambda shard: (SHARD_LIST_NAME, json.dumps(shard, sort_keys=True)))
    )


def _summarize(tallies, failures):
    """Written and failed tallies merged per split: the ``summary.jsonl`` lines."""
    # Explicit type: Beam would infer Dict[str, int] from the literal and pick a coder
    # that cannot hold the id lists.
    failed_tallies = failures | "TallyFailed" >> beam.Map(
        lambda rec: (rec["split"], manifest_lib.failed_tally())
    ).with_output_types(Tuple[str, manifest_lib.Tally])
    return (
        (tallies, failed_tallies)
        | "CollectTallies" >> beam.Flatten()
        | "SummarizeSplits" >> beam.CombinePerKey(manifest_lib.merge_tallies)
        | "FormatSummary"
        >> beam.MapTuple(
            lambda split, tally: (
                SUMMARY_NAME,
                json.dumps({"split": split, **tally}, sort_keys=True),
            )
        )
    )


def build_pipeline(
    pipeline: beam.Pipeline,
    config: ExtractConfig,
    split_set: splits_lib.SplitSet,
    staging_dir: str,
    progress_dir: Optional[str] = None,
) -> None:
    """Applies the job's transforms to ``pipeline``, writing into ``staging_dir``.

    Nothing runs here; :func:`beam_jobs.extract.run` calls ``pipeline.run()``. Tests use this to
    build the graph for another runner without submitting it. ``progress_dir``:
    see :class:`beam_jobs.extract_stages._StageFn` (None: no failure markers).
    """
    tasks = plan_tasks(split_set, config)
    listed = split_set.listed()
    shard_keys = [
        ((name, shard), config.shards_for(listed[name]))
        for name in split_names(split_set)
        for shard in range(config.shards_for(listed[name]))
    ]

    videos = pipeline | "ListVideos" >> beam.Create(tasks)
    # The four stages run as one step, a video at a time: a decoded video never waits in
    # memory for the next stage (the Dask runner would hold a whole partition's).
    staged = videos | "ExtractRecords" >> ParDoWithOutputs(
        [
            ExtractVideoFn(config, progress_dir),
            BuildRecordFn(config, progress_dir),
            EncodeExampleFn(config, progress_dir),
            StageRecordFn(config, staging_dir),
        ],
        FAILED,
        TALLY,
        main="parts",
    )

    shard_lines = _write_shards(pipeline, staged, shard_keys, staging_dir, config.compression)
    failures = staged[FAILED]  # from any of the four stages
    failed_lines = failures | "FormatFailure" >> beam.Map(
        lambda rec: (manifest_lib.FAILED_NAME, json.dumps(rec, sort_keys=True))
    )
    summary_lines = _summarize(staged[TALLY], failures)

    # One sink, applied last, that every other step leads to: the Dask runner computes
    # only the pipeline's last step and what it depends on. Each file is written even
    # when it has no line (no failure).
    files = pipeline | "ListFiles" >> beam.Create(
        [(name, True) for name in (SHARD_LIST_NAME, manifest_lib.FAILED_NAME, SUMMARY_NAME)]
    )
    lines = (shard_lines, failed_lines, summary_lines) | "CollectLines" >> beam.Flatten()
    (
        {"file": files, "lines": lines}
        | "GroupByFile" >> beam.CoGroupByKey()
        | "WriteFiles" >> beam.ParDo(WriteLinesFn(staging_dir))
    )

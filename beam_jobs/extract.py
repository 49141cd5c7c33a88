"""Videos -> sharded gzip TFRecords of I-frames, motion vectors and RGB frames.

Run locally (Beam's FnApiRunner, the DirectRunner's batch engine, with one
worker process per core; see :mod:`beam_jobs.extract_options`)::

    python -m beam_jobs.extract --videos_dir data/UCF-101 --splits_dir data/ucfTrainTestlist \\
        --split 1 --output_dir data/ucf101_s1

On Dataflow (any Beam runner works the same way)::

    python -m beam_jobs.extract --videos_dir gs://b/UCF-101 --splits_dir gs://b/splits \\
        --output_dir gs://b/ucf101_s1 --runner DataflowRunner --project P --region R \\
        --temp_location gs://b/tmp --setup_file ./setup.py

On Dask (``pip install -e '.[dask]'``; a local cluster of ``--dask_workers``
processes, or an existing cluster with ``--dask_address tcp://HOST:PORT``;
see :mod:`beam_jobs.dask_cluster`)::

    python -m beam_jobs.extract ... --runner DaskRunner --dask_workers 2

Output in ``--output_dir``: ``train-XXXXX-of-NNNNN.tfrecord.gz`` and
``test-...`` (one ``tfcmvp.schema`` example per video), ``labels.txt`` (class
names, line i = label i, 0-based), ``failed.jsonl`` (one line per video that
could not be extracted: path, video_id, split, stage, error, message) and
``manifest.json`` (counts per split, options, versions, and ``status``:
"ok", or "failed" with the ``problems`` when no video was written or more than
``--max_failed_fraction`` of a split's videos failed; see
:mod:`tfcmvp.manifest`). The pipeline writes into an ``_incomplete-*``
staging folder and the launcher puts the output in place only after it
succeeded: on a local disk by swapping folders in one rename, so that a
killed run leaves the previous output whole; ``--overwrite`` replaces only a
previous output of this job (see :mod:`beam_jobs.output_folder`).

A CSV manifest may give a window per video (columns ``start,end`` in
seconds, as ``tfcmvp kinetics`` writes for untrimmed downloads): only that
range is decoded (``read_video(start=, end=)``) and the record's video id is
``path#t=START,END``. With ``--reencode`` the whole file is re-encoded first
and the window cut from the re-encode (whose timeline starts at 0); windows
and ``--iframe_source reencode`` are refused at launch.

Listed paths must stay inside ``--videos_dir``: an absolute path (unless
``--allow_absolute_paths``) or one whose ``..`` leads outside is not opened
and goes to ``failed.jsonl`` at stage "path". Exit codes of the command:
0 done, 1 written but failed (status "failed"), 2 bad flags or inputs
(nothing written), 130 / 143 interrupted by Ctrl-C / SIGTERM (workers
stopped, staging folder removed, one line said).

Pipeline: ListVideos (each video with its shard, fixed before the run) ->
ExtractRecords, four stages run one video at a time in one step: ExtractVideo
(fetch, re-encode, decode; with ``--iframe_source reencode`` also
the I-frames of a separate low-bit-rate encode) -> BuildRecord (JPEG) -> EncodeExample
(``tfcmvp.schema``) -> StageRecord (one framed, gzip-compressed record per
video under the staging folder, compressed on the worker that decoded it) ->
GroupByShard (paths only) -> WriteShard (the shard's gzip members concatenated
in listing order: a valid gzip file, see :mod:`beam_jobs.tfrecord_files`;
with ``--compression none`` plain framed records and ``*.tfrecord`` shards). Every
stage sends the videos it cannot handle to a tagged ``failed`` output; those are
written to ``failed.jsonl`` and counted, never dropped. Per-split tallies of what was
written and what failed are combined in the pipeline (SummarizeSplits) and checked
by the launcher against the split files: ``listed == written + failed``. The shard
list, the failures and the tallies end in one sink (GroupByFile -> WriteFiles, three
small files in the staging folder that the launcher reads).

The pipeline uses only Create, ParDo, Flatten, GroupByKey and what is built
from them (CoGroupByKey, CombinePerKey): no side inputs, no Beam file sinks,
one final step that depends on every other, and tagged outputs split by
:class:`~beam_jobs.tagged_outputs.ParDoWithOutputs`, which also chains the
four per-video stages so that no step's outputs are decoded videos. That is what Beam's
Dask runner supports, and every runner gives byte-identical output. Counters
(namespace ``tfcmvp.extract``) are reported by runners with metrics
(Dataflow, the local runner); the Dask runner has none, and nothing in the
output depends on them: ``manifest.json`` counts come from the tallies.

Shards: ``--num_shards N`` per split, or about one per 100 listed videos;
video i of a split's listing goes to shard ``i % N``. The same videos and
options give byte-identical shards. The staging folder holds a copy of every
record until the run ends, so the output file system needs room for about
twice the output.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.runners.runner import PipelineState

from beam_jobs import (
    dask_cluster,
    fileio,
    interruption,
    output_folder,
    progress,
    tfrecord_files,
    worker_logs,
)
from beam_jobs.extract_options import (
    ExtractConfig,
    ExtractOptions,
    make_pipeline_options,
    make_runner,
)
from beam_jobs.tagged_outputs import ParDoWithOutputs
from tfcmvp import manifest as manifest_lib
from tfcmvp import splits as splits_lib
from tfcmvp.schema import IFRAME_SOURCE_REENCODE

LOG = logging.getLogger("beam_jobs.extract")

METRICS_NAMESPACE = "tfcmvp.extract"
FAILED = "failed"  # tag of the side output of every stage
TALLY = "tally"  # tag of the per-video counts of StageRecord
SHARD_SUFFIX = manifest_lib.SHARD_SUFFIXES["gzip"]  # the default
STAGING_PREFIX = output_folder.STAGING_PREFIX
STATUS_OK, STATUS_FAILED = "ok", "failed"  # manifest.json "status"
_SUMMARY_NAME = "summary.jsonl"  # merged tallies, one line per split
_SHARD_LIST_NAME = "shards.jsonl"  # one line per shard written: split, name, records
PROGRESS_EVERY = 25  # videos between a worker's progress lines
_PARTS_DIR = "parts"  # one staged record per video, joined into shards at the end


OutputExistsError = output_folder.OutputExistsError


class InputError(ValueError):
    """An input folder or file named by a flag is missing; the message names flag and path."""


class ExtractionFailedError(RuntimeError):
    """The run finished and wrote its output, but too many videos failed (or all did).

    ``manifest`` is what was written to ``manifest.json`` (status "failed").
    """

    def __init__(self, manifest: Dict):
        self.manifest = manifest
        out = manifest["options"]["output_dir"]
        super().__init__(
            "; ".join(manifest["problems"]) + f". The output was written, its "
            f'{manifest_lib.MANIFEST_NAME} saying status "{STATUS_FAILED}"; the failures and '
            f"their causes are in {out}/{manifest_lib.FAILED_NAME}"
        )


def _counter(name: str):
    return Metrics.counter(METRICS_NAMESPACE, name)


# ----------------------------------------------------------------------------- failures


def failure_record(
    entry: splits_lib.VideoEntry,
    path: str,
    stage: str,
    error: BaseException,
    local_names: Optional[Dict[str, str]] = None,
) -> Dict:
    """The ``failed.jsonl`` line of a video: its path, split, stage and cause.

    ``stage`` is the job's step: "path" (an absolute path, or one leading
    outside ``--videos_dir``: not opened), "open" (missing or unreadable file),
    "reencode", "decode", "iframes" (the I-frame re-encode of
    ``--iframe_source reencode``), "record" (JPEG encoding) or "serialize"; in the
    decode step a codec error's own stage ("open", "decode", "vectors") is
    more precise and replaces it. ``local_names`` maps worker temp files (a
    copy of a remote video, a re-encoded file) back to what they stand for,
    so the message names the dataset file rather than a temp path.
    """
    if stage == "decode":
        stage = getattr(error, "stage", None) or stage
    message = str(error) or repr(error)
    for temp, shown in (local_names or {}).items():
        message = message.replace(temp, shown)
    if path not in message:
        message = f"{path}: {message}"
    return {
        "path": path,
        "video_id": entry.video_id,
        "split": entry.split,
        "stage": stage,
        "error": type(error).__name__,
        "message": message,
    }


@dataclasses.dataclass(frozen=True)
class Task:
    """One listed video and its place in the output.

    ``index`` is the video's position in its split's listing and ``shard``
    the shard it goes to (``index % num_shards``, so classes, which split
    files list together, spread over all shards). Both are fixed before the
    run, so a video always lands in the same shard at the same position.
    """

    entry: splits_lib.VideoEntry
    index: int
    shard: int
    num_shards: int


def plan_tasks(split_set: splits_lib.SplitSet, config: ExtractConfig) -> List[Task]:
    """Assigns every listed video its shard and position, per split."""
    listed = split_set.listed()
    positions = {name: 0 for name in listed}
    tasks = []
    for entry in split_set.entries:
        index = positions[entry.split]
        positions[entry.split] += 1
        shards = config.shards_for(listed[entry.split])
        tasks.append(Task(entry, index, index % shards, shards))
    return tasks


def shard_name(split: str, shard: int, num_shards: int, compression: str = "gzip") -> str:
    """``train-00003-of-00010.tfrecord.gz`` (``.tfrecord`` with compression "none")."""
    return f"{split}-{shard:05d}-of-{num_shards:05d}{manifest_lib.SHARD_SUFFIXES[compression]}"


def _part_path(staging_dir: str, task: Task) -> str:
    return fileio.join(
        staging_dir, _PARTS_DIR, f"{task.entry.split}-{task.shard:05d}", f"{task.index:07d}.part"
    )


class _StageFn(beam.DoFn):
    """Base of the job's DoFns: one place that emits and counts failures.

    ``progress_dir`` (a local folder, or None): where each failure also leaves
    an empty marker file for the launcher's progress count (see
    :mod:`beam_jobs.progress`).
    """

    def __init__(self, config: ExtractConfig, progress_dir: Optional[str] = None):
        super().__init__()
        self._config = config
        self._progress_dir = progress_dir
        self._failed = _counter("videos_failed")

    def _fail(self, task, path, stage, error, local_names=None):
        record = failure_record(task.entry, path, stage, error, local_names)
        LOG.warning("%s failed at %s: %s", task.entry.video_id, record["stage"], record["message"])
        self._failed.inc()
        if self._progress_dir is not None:
            progress.write_marker(self._progress_dir, task.entry.split, task.index)
        return beam.pvalue.TaggedOutput(FAILED, record)

    def _path(self, task) -> str:
        """The file of a listed video: under ``--videos_dir``, or the entry itself if absolute
        (opened only with ``--allow_absolute_paths``; see ``ExtractVideoFn``)."""
        if splits_lib.is_absolute(task.entry.path):
            return task.entry.path
        return fileio.join(self._config.videos_dir, task.entry.path)


# ----------------------------------------------------------------------------- stages


class ExtractVideoFn(_StageFn):
    """Task -> (task, CompressedVideo with RGB, re-encoded I-frames or None).

    Copies a remote video to the worker, optionally re-encodes it (so that
    vectors, I-frames and RGB all come from the re-encoded stream), and
    decodes it single-threaded. With ``--iframe_source reencode`` the stream
    that was decoded is encoded once more at ``--iframe_bitrate`` and its
    I-frames (uint8 ``[K, h, w, 3]``, at the decode's I-frame indices) travel
    beside the video; otherwise None. Temp files are deleted after each video.
    """

    def setup(self):
        import importlib

        from tfcmvp import codec  # deferred: keeps the launcher light

        self._codec = codec
        # The module, which tfcmvp.codec's `reencode` function shadows as an attribute.
        self._reencode_lib = importlib.import_module("tfcmvp.codec.reencode")
        self._tmp = tempfile.mkdtemp(prefix="tfcmvp-extract-")

    def teardown(self):
        shutil.rmtree(getattr(self, "_tmp", ""), ignore_errors=True)

    def process(self, task):
        config = self._config
        path = self._path(task)
        problem = splits_lib.path_problem(task.entry.path, config.allow_absolute_paths)
        if problem:  # never opened: the listing must not reach files outside --videos_dir
            yield self._fail(
                task,
                path,
                "path",
                splits_lib.EntryPathError(
                    f"listed as {task.entry.path!r}, which {problem}; not opened"
                ),
            )
            return
        local_names: Dict[str, str] = {}
        temps: List[str] = []
        stage = "open"
        try:
            local, copied = fileio.localize(path, self._tmp)
            if copied:
                temps.append(local)
                local_names[local] = path
            if config.reencode != "none":
                stage = "reencode"
                target = os.path.join(self._tmp, "reencoded.mp4")
                temps.append(target)
                local_names[target] = f"{path} (re-encoded to {config.reencode})"
                self._codec.reencode(
                    local,
                    target,
                    codec=config.reencode,
                    gop=config.reencode_gop,
                    bitrate=config.reencode_bitrate,
                )
                local = target
            stage = "decode"
            # A listed window (an untrimmed download) is decoded over that range only.
            video = self._codec.read_video(
                local,
                rgb=True,
                mv_cell=config.mv_cell,
                rgb_short_side=config.rgb_short_side,
                start=task.entry.start,
                end=task.entry.end,
            )
            iframe_images = None
            if config.iframe_source == IFRAME_SOURCE_REENCODE:
                stage = "iframes"
                # From the file just decoded, so frame i there is frame i here.
                iframe_images = self._reencode_lib.reencoded_iframes(
                    local,
                    video.iframe_indices,
                    video.num_frames,
                    bitrate=config.iframe_bitrate,
                    rgb_short_side=config.rgb_short_side,
                    scratch_dir=self._tmp,
                )
        except Exception as error:  # noqa: BLE001 - any bad input must not stop the job
            yield self._fail(task, path, stage, error, local_names)
            return
        finally:
            for temp in temps:
                if os.path.exists(temp):
                    os.remove(temp)
        video.path = path  # the dataset file, not the worker's temp copy
        if video.codec == "mpeg4" and "B" in video.frame_types:
            LOG.warning(
                "%s: MPEG-4 Part 2 with B-frames, whose motion vectors FFmpeg exports "
                "as zero; re-encode (--reencode mpeg4) to get their motion",
                path,
            )
        yield task, video, iframe_images


class BuildRecordFn(_StageFn):
    """(task, CompressedVideo, I-frames or None) -> (task, VideoRecord): JPEG frames,
    I-frames, vectors."""

    def setup(self):
        from tfcmvp import records

        self._records = records

    def process(self, element):
        task, video, iframe_images = element
        entry = task.entry
        try:
            record = self._records.build_record(
                video,
                video_id=entry.video_id,
                label=entry.label,
                label_name=entry.label_name,
                split=entry.split,
                jpeg_quality=self._config.jpeg_quality,
                iframe_images=iframe_images,
                iframe_bitrate=None if iframe_images is None else self._config.iframe_bitrate,
            )
        except Exception as error:  # noqa: BLE001
            yield self._fail(task, video.path, "record", error)
            return
        yield task, record


class EncodeExampleFn(_StageFn):
    """(task, VideoRecord) -> (task, serialized tf.train.Example, frame types)."""

    def setup(self):
        from tfcmvp import schema  # builds the Example with protobuf alone: no TensorFlow

        self._schema = schema

    def process(self, element):
        task, record = element
        try:
            serialized = self._schema.encode_example(record)
        except Exception as error:  # noqa: BLE001
            yield self._fail(task, self._path(task), "serialize", error)
            return
        yield task, serialized, record.frame_types


class StageRecordFn(_StageFn):
    """Stores one framed record, as a gzip member (``--compression gzip``), under the
    staging folder.

    Emits its shard key and tally. Compressing here, per video, spreads the
    gzip work over every worker; a shard then only concatenates members.

    A file per video keeps memory flat: the shuffle that gathers a shard
    moves only paths, never records (Beam's fixed-shard writer would shuffle
    the records themselves, which the local runner holds in memory). The
    path is fixed by the task, so a retried bundle rewrites the same file.
    """

    def __init__(self, config: ExtractConfig, staging_dir: str):
        super().__init__(config)
        self._staging_dir = staging_dir
        self._ok = _counter("videos_ok")
        self._short = _counter("videos_short")
        self._frames = _counter("frames")
        self._iframes = _counter("iframes")
        self._bytes = _counter("bytes_written")

    def setup(self):
        self._written = self._written_frames = 0
        self._since = time.perf_counter()

    def process(self, element):
        task, serialized, frame_types = element
        member = tfrecord_files.frame_record(serialized)
        if self._config.compression == "gzip":
            member = tfrecord_files.gzip_member(member)
        part = _part_path(self._staging_dir, task)
        with fileio.create(part) as handle:
            handle.write(member)
        tally = manifest_lib.written_tally(
            task.entry.video_id, frame_types, len(member), self._config.min_frames
        )
        if tally["all_intra"]:
            LOG.warning("%s: every frame is an I-frame (no motion vectors)", self._path(task))
        self._ok.inc()
        self._short.inc(tally["short"])
        self._frames.inc(tally["frames"])
        self._iframes.inc(tally["iframes"])
        self._bytes.inc(len(member))
        self._report_progress(tally["frames"])
        yield beam.pvalue.TaggedOutput(TALLY, (task.entry.split, tally))
        yield (task.entry.split, task.shard), (task.index, part)

    def _report_progress(self, frames: int) -> None:
        """A line every PROGRESS_EVERY videos of this worker: the local runner has no
        progress display, and a long job would otherwise be silent until it ends."""
        self._written += 1
        self._written_frames += frames
        if self._written % PROGRESS_EVERY == 0:
            seconds = max(time.perf_counter() - self._since, 1e-9)
            LOG.info(
                "this worker has written %d videos (%d frames): %.1f videos/s",
                self._written,
                self._written_frames,
                self._written / seconds,
            )


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


# ----------------------------------------------------------------------------- pipeline


def split_names(split_set: splits_lib.SplitSet) -> List[str]:
    """Splits with at least one listed video, in ``splits.SPLITS`` order."""
    listed = split_set.listed()
    return [name for name in splits_lib.SPLITS if listed[name]]


def build_pipeline(
    pipeline: beam.Pipeline,
    config: ExtractConfig,
    split_set: splits_lib.SplitSet,
    staging_dir: str,
    progress_dir: Optional[str] = None,
) -> None:
    """Applies the job's transforms to ``pipeline``, writing into ``staging_dir``.

    Nothing runs here; :func:`run` calls ``pipeline.run()``. Tests use this to
    build the graph for another runner without submitting it. ``progress_dir``:
    see :class:`_StageFn` (None: no failure markers).
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

    # Every shard key takes part, even one whose videos all failed.
    shards = pipeline | "ListShards" >> beam.Create(shard_keys)
    shard_lines = (
        {"shard": shards, "parts": staged.parts}
        | "GroupByShard" >> beam.CoGroupByKey()
        | "WriteShard" >> beam.ParDo(WriteShardFn(staging_dir, config.compression))
        | "FormatShard"
        >> beam.Map(lambda shard: (_SHARD_LIST_NAME, json.dumps(shard, sort_keys=True)))
    )

    failures = staged[FAILED]  # from any of the four stages
    failed_lines = failures | "FormatFailure" >> beam.Map(
        lambda rec: (manifest_lib.FAILED_NAME, json.dumps(rec, sort_keys=True))
    )

    # Explicit type: Beam would infer Dict[str, int] from the literal and pick a coder
    # that cannot hold the id lists.
    failed_tallies = failures | "TallyFailed" >> beam.Map(
        lambda rec: (rec["split"], manifest_lib.failed_tally())
    ).with_output_types(Tuple[str, manifest_lib.Tally])
    summary_lines = (
        (staged[TALLY], failed_tallies)
        | "CollectTallies" >> beam.Flatten()
        | "SummarizeSplits" >> beam.CombinePerKey(manifest_lib.merge_tallies)
        | "FormatSummary"
        >> beam.MapTuple(
            lambda split, tally: (
                _SUMMARY_NAME,
                json.dumps({"split": split, **tally}, sort_keys=True),
            )
        )
    )

    # One sink, applied last, that every other step leads to: the Dask runner computes
    # only the pipeline's last step and what it depends on. Each file is written even
    # when it has no line (no failure).
    files = pipeline | "ListFiles" >> beam.Create(
        [(name, True) for name in (_SHARD_LIST_NAME, manifest_lib.FAILED_NAME, _SUMMARY_NAME)]
    )
    lines = (shard_lines, failed_lines, summary_lines) | "CollectLines" >> beam.Flatten()
    (
        {"file": files, "lines": lines}
        | "GroupByFile" >> beam.CoGroupByKey()
        | "WriteFiles" >> beam.ParDo(WriteLinesFn(staging_dir))
    )


# ----------------------------------------------------------------------------- launcher


def load_split_set(config: ExtractConfig) -> splits_lib.SplitSet:
    """Reads the split files (or the CSV manifest) named by the options."""
    if config.manifest:
        if not fileio.exists(config.manifest):
            raise splits_lib.SplitFileError(config.manifest, "no such file")
        return splits_lib.parse_manifest_csv(fileio.read_text(config.manifest), config.manifest)
    paths = fileio.list_files(fileio.join(config.splits_dir, "*.txt"))
    if not paths:
        raise splits_lib.SplitFileError(config.splits_dir, "no .txt split files in this folder")
    return splits_lib.parse_split_files({p: fileio.read_text(p) for p in paths}, config.split)


def check_windows(config: ExtractConfig, split_set: splits_lib.SplitSet) -> None:
    """Raises ``ValueError`` when the listing has windows (``start,end`` columns) and
    ``--iframe_source reencode`` is set: that re-encode covers the whole file, so its
    I-frames would not line up with the window's frames."""
    windowed = [e for e in split_set.entries if e.start is not None]
    if windowed and config.iframe_source == IFRAME_SOURCE_REENCODE:
        raise ValueError(
            f"{split_set.sources[0]}: {len(windowed)} entries have a start,end window (e.g. "
            f"{windowed[0].video_id!r}), which --iframe_source {IFRAME_SOURCE_REENCODE} does "
            f"not support; use the default --iframe_source, or trim the videos first"
        )


def check_videos_dir(config: ExtractConfig) -> None:
    """Raises :class:`InputError` naming ``--videos_dir`` when it is missing, not a folder,
    or (on object stores, which have no folders) holds no file at all."""
    path = config.videos_dir
    if fileio.is_local(path):
        if not os.path.exists(path):
            raise InputError(f"--videos_dir {path}: no such folder")
        if not os.path.isdir(path):
            raise InputError(f"--videos_dir {path}: not a folder")
    elif not fileio.any_file_under(path):
        raise InputError(f"--videos_dir {path}: no such folder (no file under it)")


def _read_jsonl(path: str) -> List[Dict]:
    return [json.loads(line) for line in fileio.read_text(path).splitlines() if line.strip()]


def failure_problems(manifest: Dict, max_failed_fraction: float) -> List[str]:
    """Why a finished run counts as failed: no video written at all, or a split where more
    than ``max_failed_fraction`` of the listed videos failed. [] for a good run."""
    splits = manifest["splits"]
    listed = sum(split["listed"] for split in splits.values())
    if listed and not sum(split["written"] for split in splits.values()):
        return [f"no video was written: all {listed} listed videos failed"]
    problems = []
    for name, split in splits.items():
        if split["listed"] and split["failed"] / split["listed"] > max_failed_fraction:
            problems.append(
                f"split {name!r}: {split['failed']} of {split['listed']} listed videos failed "
                f"({split['failed'] / split['listed']:.0%} > --max_failed_fraction "
                f"{max_failed_fraction:g})"
            )
    return problems


def finalize(
    config: ExtractConfig,
    split_set: splits_lib.SplitSet,
    output_plan: output_folder.OutputPlan,
    options: Dict,
    guard: Optional[interruption.SignalGuard] = None,
    on_commit: Optional[Callable[[], None]] = None,
) -> Dict:
    """Checks the finished pipeline's outputs and puts them in place.

    Verifies the counts first (nothing is touched if they do not add up),
    then builds the manifest, with ``status`` "ok" or "failed" and the
    ``problems`` behind a failure (:func:`failure_problems`). Local output:
    the shards, ``labels.txt``, ``failed.jsonl`` and ``manifest.json`` are
    assembled in the staging folder and swapped with ``--output_dir`` in one
    rename. Object stores: the previous run's ``manifest.json`` is deleted
    first, then its other files, the new files moved in, and ``manifest.json``
    written last. Signals are held off (``guard``) while the output changes;
    ``on_commit`` is called once the new output is in place.
    """
    from tfcmvp.schema import SCHEMA_VERSION  # no TensorFlow import at module level

    staging_dir = output_plan.staging_dir
    tallies = {
        row.pop("split"): row for row in _read_jsonl(fileio.join(staging_dir, _SUMMARY_NAME))
    }
    failures = sorted(
        _read_jsonl(fileio.join(staging_dir, manifest_lib.FAILED_NAME)),
        key=lambda rec: (rec["split"], rec["video_id"]),
    )
    shards = _read_jsonl(fileio.join(staging_dir, _SHARD_LIST_NAME))
    listed = split_set.listed()
    # Cross-check the tallies against what was really written: failure lines, shard
    # files, and the records joined into them.
    for name, tally in tallies.items():
        lines = sum(1 for rec in failures if rec["split"] == name)
        if lines != tally["failed"]:
            raise manifest_lib.ManifestError(
                f"split {name!r}: {tally['failed']} failures counted but {lines} lines in "
                f"{manifest_lib.FAILED_NAME}"
            )
        in_shards = sum(shard["records"] for shard in shards if shard["split"] == name)
        if in_shards != tally["written"]:
            raise manifest_lib.ManifestError(
                f"split {name!r}: {tally['written']} records counted but {in_shards} joined "
                f"into shards"
            )
    shard_names = {
        name: sorted(shard["name"] for shard in shards if shard["split"] == name)
        for name in split_names(split_set)
    }
    for name, names in shard_names.items():
        count = config.shards_for(listed[name])
        expected = [shard_name(name, i, count, config.compression) for i in range(count)]
        suffix = manifest_lib.SHARD_SUFFIXES[config.compression]
        if (
            names != expected
            or len(fileio.list_files(fileio.join(staging_dir, f"{name}-*{suffix}"))) != count
        ):
            raise manifest_lib.ManifestError(
                f"split {name!r}: shards {names[:3]}... written, expected {count} shards"
            )
    manifest = manifest_lib.build_manifest(
        split_set.listed(),
        tallies,
        options=options,
        layout=split_set.layout,
        num_classes=len(split_set.class_names),
        shards=shard_names,
        schema_version=SCHEMA_VERSION,
    )
    problems = failure_problems(manifest, config.max_failed_fraction)
    manifest["status"] = STATUS_FAILED if problems else STATUS_OK
    manifest["problems"] = problems

    # Only now, with a complete and consistent new set, replace the old one.
    output_folder.recheck(output_plan, config.overwrite)
    target = output_plan.target_dir
    held = guard.deferred() if guard is not None else contextlib.nullcontext()
    with held:
        if not output_plan.atomic:
            old_manifest = fileio.join(target, manifest_lib.MANIFEST_NAME)
            previous = list(output_plan.previous)
            # First the manifest: from here on the folder is not a finished output.
            fileio.delete([p for p in previous if p == old_manifest])
            fileio.delete([p for p in previous if p != old_manifest and fileio.exists(p)])
        fileio.mkdirs(target)
        fileio.rename(
            (fileio.join(staging_dir, name), fileio.join(target, name))
            for names in shard_names.values()
            for name in names
        )
        fileio.write_text(
            fileio.join(target, manifest_lib.LABELS_NAME),
            "".join(f"{name}\n" for name in split_set.class_names),
        )
        fileio.write_text(
            fileio.join(target, manifest_lib.FAILED_NAME),
            "".join(json.dumps(rec, sort_keys=True) + "\n" for rec in failures),
            mime_type="application/jsonl",
        )
        fileio.write_text(
            fileio.join(target, manifest_lib.MANIFEST_NAME),
            manifest_lib.dumps(manifest),
            mime_type="application/json",
        )
        if output_plan.atomic:
            output_folder.swap_into_place(output_plan)
        if on_commit is not None:
            on_commit()
    return manifest


def job_options(config: ExtractConfig, split_set: splits_lib.SplitSet) -> Dict:
    """The options recorded in ``manifest.json``."""
    recorded = dataclasses.asdict(config)
    recorded["split_files"] = list(split_set.sources)
    return recorded


def run(argv: Optional[Sequence[str]] = None) -> Dict:
    """Runs the extraction job; returns the manifest that was written.

    ``argv`` holds the job's flags (:class:`~beam_jobs.extract_options.ExtractOptions`)
    and any Beam flags; None reads ``sys.argv``. Raises, before the pipeline
    starts, ``ValueError`` for unknown flags, bad options, a missing
    ``--videos_dir`` (:class:`InputError`) or bad split files, and
    :class:`OutputExistsError` for an ``--output_dir`` this run may not
    replace; ``RuntimeError`` when the pipeline fails (the previous output is
    left as it was); and :class:`ExtractionFailedError` after writing an
    output whose manifest says status "failed" (too many failed videos).

    Called from the main thread, SIGINT and SIGTERM stop the workers, remove
    the staging folder, print one line and end the process (exit 130 / 143):
    see :mod:`beam_jobs.interruption`.
    """
    options = make_pipeline_options(argv)
    config = ExtractConfig.from_options(options)
    check_videos_dir(config)
    split_set = load_split_set(config)
    if not split_set.entries:
        raise ValueError(f"the split files list no videos: {split_set.sources}")
    check_windows(config, split_set)
    refused = [
        (e.path, splits_lib.path_problem(e.path, config.allow_absolute_paths))
        for e in split_set.entries
    ]
    refused = [(path, problem) for path, problem in refused if problem]
    if refused:
        LOG.warning(
            "%d listed videos will not be opened and are listed in %s, e.g. %r %s",
            len(refused),
            manifest_lib.FAILED_NAME,
            *refused[0],
        )
    output_plan = output_folder.plan(
        config.output_dir, config.overwrite, job_options(config, split_set)
    )
    listed = split_set.listed()
    LOG.info(
        "%s split files: %s classes, %s",
        split_set.layout,
        len(split_set.class_names),
        ", ".join(f"{listed[n]} {n}" for n in split_names(split_set)),
    )

    worker_logs.install()
    staging_dir = output_plan.staging_dir

    committed = []  # set once the new output is in place (a signal may arrive just after)
    monitors = []  # the progress display, closed before the interruption line is printed

    def remove_staging() -> str:
        for monitor in monitors:
            monitor.stop(finished=False)
        output_folder.delete_tree(staging_dir)
        if committed:
            return f"the new output was already in place in {config.output_dir}"
        return (
            f"removed the unfinished output {staging_dir}; {config.output_dir} was left as it was"
        )

    started = time.perf_counter()
    with interruption.SignalGuard(remove_staging) as guard, contextlib.ExitStack() as cluster:
        try:
            # --runner DaskRunner: its local cluster, if any, runs until the end of the run.
            cluster.enter_context(dask_cluster.session(options, len(split_set.entries)))
            runner = make_runner(options)  # None: not the local runner
            pipeline = beam.Pipeline(runner=runner, options=options)
            # Progress is counted from the staging folder, which the launcher sees only
            # with the local runner on a local disk (beam_jobs.progress).
            counted = runner is not None and fileio.is_local(staging_dir)
            build_pipeline(
                pipeline,
                config,
                split_set,
                staging_dir,
                progress.marker_dir(staging_dir) if counted else None,
            )
            monitors.append(
                progress.start(
                    len(split_set.entries),
                    staging_dir,
                    local_runner=runner is not None,
                    is_local_path=fileio.is_local(staging_dir),
                )
            )
            finished = False  # the final count only for a run that finished
            try:
                state = pipeline.run().wait_until_finish()
                finished = state in (None, PipelineState.DONE)
            finally:
                monitors[0].stop(finished=finished)
            if state not in (None, PipelineState.DONE):
                raise RuntimeError(
                    f"extraction pipeline ended in state {state}; "
                    f"{config.output_dir} was left unchanged"
                )
            manifest = finalize(
                config,
                split_set,
                output_plan,
                job_options(config, split_set),
                guard,
                on_commit=lambda: committed.append(True),
            )
        finally:
            output_folder.delete_tree(staging_dir)
    seconds = time.perf_counter() - started
    totals = manifest_lib.merge_tallies(manifest["splits"].values())
    LOG.info(
        "wrote %d videos (%d frames), %d failed, in %.1f s: %.2f videos/s, %.0f frames/s",
        totals["written"],
        totals["frames"],
        totals["failed"],
        seconds,
        totals["written"] / seconds,
        totals["frames"] / seconds,
    )
    if manifest["status"] != STATUS_OK:
        raise ExtractionFailedError(manifest)
    return manifest


def print_help(prog: str = "python -m beam_jobs.extract") -> None:
    """The job's own flags (Beam's PipelineOptions has no --help of its own)."""
    import argparse

    parser = argparse.ArgumentParser(
        prog=prog,
        description=__doc__.split("\n\n")[0],
        epilog="Any Apache Beam pipeline option is accepted as well (--runner, --project, "
        "--region, --temp_location, --setup_file, --direct_num_workers, ...); any "
        "other flag is an error. Exit status: 0 done; 1 the output was written but "
        'no video was, or too many failed (manifest.json status "failed"); 2 bad '
        "flags, inputs or --output_dir (nothing written); 130 / 143 interrupted by "
        "Ctrl-C / SIGTERM.",
    )
    ExtractOptions._add_argparse_args(parser)
    dask_cluster.DaskClusterOptions._add_argparse_args(parser)
    parser.print_help()


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command-line entry point. Exit codes: 0 done; 1 the output was written but the run
    failed (:class:`ExtractionFailedError`); 2 bad flags, inputs or ``--output_dir``
    (nothing written); 130 / 143 interrupted by Ctrl-C / SIGTERM."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "-h" in argv or "--help" in argv:
        print_help()
        return 0
    logging.basicConfig(level=logging.INFO, format=worker_logs.LOG_FORMAT)
    try:
        manifest = run(argv)
    except (OutputExistsError, ValueError) as error:
        print(f"beam_jobs.extract: error: {error}", file=sys.stderr)
        return 2
    except ExtractionFailedError as error:
        print(f"beam_jobs.extract: error: {error}", file=sys.stderr)
        return 1
    failed = sum(split["failed"] for split in manifest["splits"].values())
    if failed:
        print(
            f"{failed} videos failed; see {manifest['options']['output_dir']}/"
            f"{manifest_lib.FAILED_NAME}",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    # Run the imported module, not this __main__ copy: objects sent to worker
    # processes must pickle as beam_jobs.extract.Task, not __main__.Task.
    from beam_jobs import extract as _extract

    sys.exit(_extract.main())

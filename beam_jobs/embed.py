"""``tfcmvp embed`` as an Apache Beam job: video files -> sharded clip embeddings + a manifest.

Run locally (Beam's FnApiRunner, one worker process per core, as the
extraction job runs; see :mod:`beam_jobs.embed_options`)::

    python -m beam_jobs.embed --inputs my_videos/ more.mp4 list.txt \\
        --model saved_models/motion/1 --output_dir features

On Dataflow (the export and the videos where the workers can read them)::

    python -m beam_jobs.embed --inputs gs://b/videos --model gs://b/models/motion/1 \\
        --output_dir gs://b/features --runner DataflowRunner --project P --region R \\
        --temp_location gs://b/tmp --setup_file ./setup.py

The per-video work is ``tfcmvp embed``'s own (:mod:`tfcmvp.embedding`), with
its flags and defaults: each video is decoded as the export's modality needs
(V-Network: every frame to RGB; I-Network: key frames only; M-Network:
motion vectors only) into the record the extraction job would store, cut
into clips by retrieval's sample, and run through the export's ``embed``
signature at most ``--batch_size`` clips per call. The rows equal ``tfcmvp
embed``'s on the same inputs, values and table, only split into shards
(tests/test_beam_embed.py). Output in ``--output_dir``: shards of
``embeddings-*.npy`` + ``clips-*.csv``, ``failed.jsonl`` and
``manifest.json`` (:mod:`beam_jobs.embed_output`).

Pipeline: ListVideos (each video with its listing index and shard, fixed
before the run) -> EmbedVideo (localize, decode, cut, embed; the SavedModel
and the clip pipeline are built once per worker, in ``setup``) ->
StageRows (one small ``.npz`` per video under the staging folder, so the
shuffle moves paths, not embeddings) -> GroupByShard -> WriteShard (the
shard's videos in listing order; its first row number from the row counts
of the shards before it, a side input) -> the shard list. Videos that
cannot be embedded go to a tagged ``failed`` output, written to
``failed.jsonl`` and counted, never dropped.

The extraction job's machinery does the rest: the output is assembled in a
staging folder beside ``--output_dir`` and swapped in at the end
(:mod:`beam_jobs.output_folder`; ``--overwrite`` replaces only a previous
output of this job), the launcher checks ``listed == embedded + failed``
against the shards and failure lines before anything is replaced, and
Ctrl-C / SIGTERM stop the workers and remove the staging folder
(:mod:`beam_jobs.interruption`). Exit codes: 0 done; 1 written but failed
(no video embedded, or more than ``--max_failed_fraction`` failed: the
manifest says status "failed"); 2 bad flags, inputs, export or
``--output_dir`` (nothing written); 130 / 143 interrupted.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import logging
import os
import posixpath
import queue
import shutil
import sys
import tempfile
import time
import weakref
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics
from apache_beam.runners.runner import PipelineState
from apache_beam.utils import shared

from beam_jobs import (
    embed_options,
    embed_output,
    extract_options,
    fileio,
    interruption,
    output_folder,
    worker_logs,
)
from beam_jobs.embed_options import EmbedConfig
from tfcmvp import manifest as manifest_lib
from tfcmvp.embedding import inputs as inputs_lib
from tfcmvp.embedding import writer as writer_lib

LOG = logging.getLogger("beam_jobs.embed")

METRICS_NAMESPACE = "tfcmvp.embed"
FAILED = "failed"  # tag of EmbedVideo's side output
STATUS_OK, STATUS_FAILED = "ok", "failed"  # manifest.json "status", as tfcmvp embed's
PROGRESS_EVERY = 25  # videos between a worker's progress lines
_PARTS_DIR = "parts"  # one staged .npz per video, joined into shards at the end
_SHARD_LIST_NAME = "shards.jsonl"  # one line per shard written

OutputExistsError = embed_output.OutputExistsError


class EmbeddingJobFailedError(RuntimeError):
    """The run wrote its output, but no video was embedded or too many failed.

    ``manifest`` is what was written to ``manifest.json`` (status "failed").
    """

    def __init__(self, manifest: Dict):
        self.manifest = manifest
        super().__init__(
            "; ".join(manifest["problems"]) + f". The output was written, its "
            f'{embed_output.MANIFEST_NAME} saying status "{STATUS_FAILED}"; the failures and '
            f"their causes are in {manifest['output_dir']}/{embed_output.FAILED_NAME}"
        )


def _counter(name: str):
    return Metrics.counter(METRICS_NAMESPACE, name)


# ----------------------------------------------------------------------------- inputs


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
        raise FileNotFoundError(f"{folder}: no such folder (no file under it)")
    for path in files:
        target = os.path.join(local, *path[len(prefix) :].split("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as handle:
            handle.write(fileio.read_bytes(path))
    return local


# ----------------------------------------------------------------------------- the plan


@dataclasses.dataclass(frozen=True)
class Task:
    """One listed video and its place in the output.

    ``index`` is its position in the listing; ``shard`` is
    ``index * num_shards // listed``, so each shard holds consecutive videos
    and the shards in order are the listing in order.
    """

    path: str
    index: int
    shard: int
    num_shards: int


def plan_tasks(videos: Sequence[str], num_shards: int) -> List[Task]:
    """Assigns every listed video its position and shard."""
    count = len(videos)
    return [
        Task(path, index, index * num_shards // count, num_shards)
        for index, path in enumerate(videos)
    ]


@dataclasses.dataclass(frozen=True)
class ExportClips:
    """What the export says about its clips, resolved once on the launcher for the workers."""

    info: dict  # its assets/tfcmvp_export.json
    options: object  # tfcmvp.retrieval.features.EvalOptions
    layout: object  # tfcmvp.embedding.ClipLayout
    storage: object  # tfcmvp.embedding.StorageSettings

    @property
    def network(self) -> str:
        return self.info["network"]

    @property
    def dim(self) -> int:
        """The embedding width the export declares (0 when it declares none)."""
        return int(self.info.get("embedding_dim") or 0)

    @property
    def span(self) -> int:
        from tfcmvp.embedding.clips import span_of

        return span_of(self.options)


def read_export_clips(config: EmbedConfig, tmp_dir: str) -> ExportClips:
    """Reads and checks the export's contract (``tfcmvp embed``'s functions).

    Raises ``NotAnExportError`` (a FileNotFoundError) or ValueError naming the
    folder or field, before anything is written.
    """
    from tfcmvp.retrieval import features

    layout = config.layout()
    info = features.read_export(localize_folder(config.model_dir, tmp_dir))
    return ExportClips(
        info, features.eval_options(info, layout.num_clips), layout, config.storage()
    )


# ----------------------------------------------------------------------------- stages


class ClipCutter:
    """One video's clips at a time through ``tfcmvp embed``'s tf.data pipeline, built once.

    :func:`tfcmvp.embedding.clips.clip_dataset` cuts clips inside tf.data,
    which keeps them bit-identical to retrieval's; building it traces the
    sample, about 0.4 s, more than decoding a short video takes. So a worker
    builds it once: its generator takes videos from a queue, and each call
    puts one in and takes its clips out. The dataset's thread waits on the
    queue between videos; :meth:`close` (or garbage collection, or exit)
    ends the generator and with it that thread.
    """

    def __init__(self, options):
        from tfcmvp.embedding.clips import clip_dataset

        pending: queue.Queue = queue.Queue()

        def items():
            while True:
                item = pending.get()
                if item is None:
                    return
                yield item

        self._pending = pending
        self._iterator = iter(clip_dataset(items, options))
        self._finalizer = weakref.finalize(self, pending.put, None)

    def __call__(self, serialized: bytes, starts: np.ndarray):
        """float32 tensor ``[N, *input_shape]``: the clips of one video record."""
        self._pending.put((serialized, starts))
        return next(self._iterator)

    def close(self) -> None:
        self._finalizer()
        self._iterator = None


class EmbedVideoFn(beam.DoFn):
    """Task -> (task, float32 ``[n, D]`` embeddings, n table rows, frames); failures tagged.

    ``setup`` loads the SavedModel once per worker process (a
    ``apache_beam.utils.shared.Shared`` handle: runners that run several
    threads per process, as Dataflow does, share one copy) and builds the
    clip pipeline once per DoFn instance. Per video: copy a remote file to
    the worker, build the record
    (:func:`tfcmvp.embedding.run.prepare_video`), cut its clips, run the
    export (:func:`tfcmvp.embedding.run.embed_clips`), make the table rows
    (:func:`tfcmvp.embedding.run.table_rows`): ``tfcmvp embed``'s steps.
    A video that fails goes to the ``failed`` output with ``tfcmvp embed``'s
    failure record (stage "open", "decode", "vectors", "short", "clips" or
    "embed") and its listing index.
    """

    def __init__(self, config: EmbedConfig, clips: ExportClips):
        super().__init__()
        self._config = config
        self._clips = clips
        self._model = shared.Shared()  # one loaded export per process
        self._ok = _counter("videos_embedded")
        self._failed = _counter("videos_failed")
        self._rows = _counter("clips")
        self._frames = _counter("frames")

    def setup(self):
        from tfcmvp.embedding import run as run_lib
        from tfcmvp.retrieval import features

        self._run = run_lib
        self._tmp = tempfile.mkdtemp(prefix="tfcmvp-embed-")

        def load():
            # A remote export is copied once, by the DoFn that loads it; the copy is
            # removed at its teardown (the loaded model no longer reads it).
            return features.load_embedding_fn(localize_folder(self._config.model_dir, self._tmp))

        self._embed = self._model.acquire(load)
        self._cutter = ClipCutter(self._clips.options)
        self._done = 0
        self._since = time.perf_counter()

    def teardown(self):
        cutter = getattr(self, "_cutter", None)
        if cutter is not None:
            cutter.close()
        shutil.rmtree(getattr(self, "_tmp", ""), ignore_errors=True)

    def _fail(self, task: Task, stage: str, error: BaseException, local: Optional[str] = None):
        record = self._run.failure_record(task.path, stage, error)
        if local is not None and local != task.path:  # name the video, not the worker's copy
            record["message"] = record["message"].replace(local, task.path)
        LOG.warning("failed at %s: %s", record["stage"], record["message"])
        self._failed.inc()
        return beam.pvalue.TaggedOutput(FAILED, {"index": task.index, **record})

    def process(self, task):
        clips, config = self._clips, self._config
        local = None
        try:
            # Local files are opened where they are, so that failures read as tfcmvp embed's.
            local, copied = (
                (task.path, False)
                if fileio.is_local(task.path)
                else fileio.localize(task.path, self._tmp)
            )
            try:
                serialized, pending = self._run.prepare_video(
                    local,
                    modality=clips.options.modality,
                    options=clips.options,
                    layout=clips.layout,
                    storage=clips.storage,
                    min_frames=config.min_frames,
                )
            finally:
                if copied:
                    os.remove(local)
        except Exception as error:  # noqa: BLE001 - a bad file must not stop the job
            yield self._fail(task, "decode", error, local)
            return
        pending = dataclasses.replace(pending, path=task.path)
        try:
            cut = self._cutter(serialized, pending.starts)  # [N, *input_shape]
        except Exception as error:  # noqa: BLE001
            # The iterator may be unusable after an error: start a fresh pipeline.
            self._cutter.close()
            self._cutter = ClipCutter(clips.options)
            yield self._fail(task, "clips", error)
            return
        try:
            matrix = self._run.embed_clips(self._embed, cut, config.batch_size, task.path)
        except Exception as error:  # noqa: BLE001 - VideoError at stage "embed"
            yield self._fail(task, "embed", error)
            return
        rows = self._run.table_rows(
            pending, modality=clips.options.modality, network=clips.network, span=clips.span
        )
        frames = int(pending.record.num_frames)
        self._ok.inc()
        self._rows.inc(len(rows))
        self._frames.inc(frames)
        self._report_progress()
        yield task, matrix, rows, frames

    def _report_progress(self) -> None:
        """A line every PROGRESS_EVERY videos of this worker (the local runner shows none)."""
        self._done += 1
        if self._done % PROGRESS_EVERY == 0:
            seconds = max(time.perf_counter() - self._since, 1e-9)
            LOG.info(
                "this worker has embedded %d videos: %.2f videos/s",
                self._done,
                self._done / seconds,
            )


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


# ----------------------------------------------------------------------------- pipeline


def build_pipeline(
    pipeline: beam.Pipeline,
    config: EmbedConfig,
    clips: ExportClips,
    tasks: Sequence[Task],
    staging_dir: str,
) -> None:
    """Applies the job's transforms to ``pipeline``, writing into ``staging_dir``.

    Nothing runs here; :func:`run` calls ``pipeline.run()``.
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
            fileio.join(staging_dir, _SHARD_LIST_NAME), shard_name_template="", num_shards=1
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


# ----------------------------------------------------------------------------- launcher


def _read_jsonl(path: str) -> List[Dict]:
    return [json.loads(line) for line in fileio.read_text(path).splitlines() if line.strip()]


def job_summary(config: EmbedConfig, clips: ExportClips) -> Dict:
    """The manifest's description of the export, clips and storage (``embed.json``'s fields)
    and the job's options."""
    options, layout = clips.options, clips.layout
    info = clips.info
    return {
        "export": {
            "model_dir": config.model_dir,
            "network": info["network"],
            "backbone": info.get("backbone"),
            "embedding_dim": info.get("embedding_dim"),
            "input": info["input"],
        },
        "clips": {
            "modality": options.modality,
            "input_shape": list(options.input_shape),
            "span": clips.span,
            **dataclasses.asdict(layout),
            "positions": None if layout.sliding else "vcop",
            "sample": options.sample_kwargs(),
        },
        "storage": dataclasses.asdict(clips.storage),
        "min_frames": config.min_frames,
        "max_failed_fraction": config.max_failed_fraction,
        "options": {
            "inputs": list(config.inputs),
            "model": config.model_dir,
            "output_dir": config.output_dir,
            "num_shards": config.num_shards,
            "batch_size": config.batch_size,
            "overwrite": config.overwrite,
        },
    }


def finalize(
    config: EmbedConfig,
    clips: ExportClips,
    tasks: Sequence[Task],
    output_plan: output_folder.OutputPlan,
    started: float,
    guard: Optional[interruption.SignalGuard] = None,
    on_commit: Optional[Callable[[], None]] = None,
) -> Dict:
    """Checks the finished pipeline's outputs, writes the manifest, puts the output in place.

    The counts are verified first (nothing is touched if they do not add
    up): every shard of the set written, rows numbered without gaps, and
    ``listed == embedded + failed`` between the shards and the failure
    lines. Then ``status`` "ok" or "failed" (``tfcmvp embed``'s rule,
    :func:`tfcmvp.embedding.run.failure_problems`), and the files go in
    place as the extraction job's do: swapped in with one rename on a local
    disk, replaced one by one (``manifest.json`` deleted first and written
    last) on object stores, signals held off meanwhile.
    """
    from tfcmvp.embedding.run import failure_problems
    from tfcmvp.export import contract

    staging_dir = output_plan.staging_dir
    failures = sorted(
        _read_jsonl(fileio.join(staging_dir, embed_output.FAILED_NAME)),
        key=lambda record: record["index"],
    )
    shards = sorted(
        _read_jsonl(fileio.join(staging_dir, _SHARD_LIST_NAME)), key=lambda shard: shard["shard"]
    )
    num_shards = tasks[0].num_shards
    listed = len(tasks)
    if [shard["shard"] for shard in shards] != list(range(num_shards)):
        raise manifest_lib.ManifestError(
            f"shards {[s['shard'] for s in shards][:5]}... written, expected {num_shards}"
        )
    first = 0
    for shard in shards:
        if shard["first_row"] != first:
            raise manifest_lib.ManifestError(
                f"shard {shard['shard']} starts at row {shard['first_row']}, expected {first}"
            )
        first += shard["rows"]
    embedded = sum(shard["videos"] for shard in shards)
    failed_indices = [record["index"] for record in failures]
    if embedded + len(failures) != listed or len(set(failed_indices)) != len(failures):
        raise manifest_lib.ManifestError(
            f"{listed} videos listed but {embedded} embedded + {len(failures)} failure lines"
        )
    problems = failure_problems(listed, embedded, len(failures), config.max_failed_fraction)
    manifest = {
        "job": embed_output.JOB,
        "status": STATUS_FAILED if problems else STATUS_OK,
        "problems": problems,
        "output_dir": config.output_dir,
        "counts": {
            "listed": listed,
            "embedded": embedded,
            "failed": len(failures),
            "clips": first,
            "frames": sum(shard["frames"] for shard in shards),
        },
        "shards": [
            {key: shard[key] for key in ("embeddings", "table", "videos", "rows", "first_row")}
            for shard in shards
        ],
        "seconds": round(time.perf_counter() - started, 3),
        **job_summary(config, clips),
        **contract.versions(),
        "created": contract.utc_now(),
    }
    failure_lines = "".join(
        json.dumps({k: v for k, v in record.items() if k != "index"}, sort_keys=True) + "\n"
        for record in failures
    )

    # Only now, with a complete and consistent new set, replace the old one.
    embed_output.recheck(output_plan, config.overwrite)
    target = output_plan.target_dir
    held = guard.deferred() if guard is not None else contextlib.nullcontext()
    with held:
        if not output_plan.atomic:
            old_manifest = fileio.join(target, embed_output.MANIFEST_NAME)
            previous = list(output_plan.previous)
            # First the manifest: from here on the folder is not a finished output.
            fileio.delete([p for p in previous if p == old_manifest])
            fileio.delete([p for p in previous if p != old_manifest and fileio.exists(p)])
        fileio.mkdirs(target)
        fileio.rename(
            (fileio.join(staging_dir, shard[key]), fileio.join(target, shard[key]))
            for shard in shards
            for key in ("embeddings", "table")
        )
        fileio.write_text(
            fileio.join(target, embed_output.FAILED_NAME),
            failure_lines,
            mime_type="application/jsonl",
        )
        fileio.write_text(
            fileio.join(target, embed_output.MANIFEST_NAME),
            json.dumps(manifest, indent=2) + "\n",
            mime_type="application/json",
        )
        if output_plan.atomic:
            output_folder.swap_into_place(output_plan)
        if on_commit is not None:
            on_commit()
    return manifest


def _local_inputs(config: EmbedConfig, videos: Sequence[str]) -> List[str]:
    """Local paths the job reads (export, list files, videos): the output must not hold one."""
    named = [
        config.model_dir,
        *[item for item in config.inputs if os.path.isfile(item) and inputs_lib.is_list_file(item)],
        *videos,
    ]
    return [path for path in named if fileio.is_local(path)]


def run(argv: Optional[Sequence[str]] = None) -> Dict:
    """Runs the job; returns the manifest that was written.

    ``argv`` holds the job's flags (:mod:`beam_jobs.embed_options`) and any
    Beam flags; None reads ``sys.argv``. Raises, before the pipeline starts:
    ValueError for unknown flags, bad values or inputs
    (:class:`tfcmvp.embedding.inputs.InputError`) or a bad export contract;
    FileNotFoundError for a missing export;
    :class:`OutputExistsError` / ``OverwriteRefused`` for an ``--output_dir``
    this run may not replace. ``RuntimeError`` when the pipeline fails (the
    previous output left as it was), and :class:`EmbeddingJobFailedError`
    after writing an output whose manifest says status "failed".

    Called from the main thread, SIGINT and SIGTERM stop the workers, remove
    the staging folder, print one line and end the process (exit 130 / 143).
    """
    from tfcmvp import outputs

    argv = list(sys.argv[1:] if argv is None else argv)
    config, options = embed_options.parse(argv)
    videos = list_videos(config.inputs)
    scratch = tempfile.mkdtemp(prefix="tfcmvp-embed-launcher-")
    try:
        clips = read_export_clips(config, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if fileio.is_local(config.output_dir):
        outputs.check_not_input(
            config.output_dir, _local_inputs(config, videos), flag="--output_dir"
        )
    output_plan = embed_output.plan(config.output_dir, config.overwrite)
    tasks = plan_tasks(videos, config.shards_for(len(videos)))
    LOG.info(
        "embedding %d videos with %s (%s network, %s clips %s) into %d shard(s)",
        len(videos),
        config.model_dir,
        clips.network,
        clips.options.modality,
        list(clips.options.input_shape),
        tasks[0].num_shards,
    )

    worker_logs.install()
    staging_dir = output_plan.staging_dir
    committed = []  # set once the new output is in place (a signal may arrive just after)

    def remove_staging() -> str:
        output_folder.delete_tree(staging_dir)
        if committed:
            return f"the new output was already in place in {config.output_dir}"
        return (
            f"removed the unfinished output {staging_dir}; {config.output_dir} was left as it was"
        )

    started = time.perf_counter()
    with interruption.SignalGuard(remove_staging, prog=embed_output.JOB) as guard:
        try:
            pipeline = beam.Pipeline(runner=extract_options.make_runner(options), options=options)
            build_pipeline(pipeline, config, clips, tasks, staging_dir)
            state = pipeline.run().wait_until_finish()
            if state not in (None, PipelineState.DONE):
                raise RuntimeError(
                    f"embedding pipeline ended in state {state}; "
                    f"{config.output_dir} was left unchanged"
                )
            manifest = finalize(
                config,
                clips,
                tasks,
                output_plan,
                started,
                guard,
                on_commit=lambda: committed.append(True),
            )
        finally:
            output_folder.delete_tree(staging_dir)
    counts = manifest["counts"]
    LOG.info(
        "embedded %d of %d videos (%d clips, %d failed) in %.1f s: %.2f videos/s",
        counts["embedded"],
        counts["listed"],
        counts["clips"],
        counts["failed"],
        manifest["seconds"],
        counts["embedded"] / max(manifest["seconds"], 1e-9),
    )
    if manifest["status"] != STATUS_OK:
        raise EmbeddingJobFailedError(manifest)
    return manifest


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command-line entry point. Exit codes: 0 done; 1 the output was written but the run
    failed (:class:`EmbeddingJobFailedError`); 2 bad flags, inputs, export or
    ``--output_dir`` (nothing written); 130 / 143 interrupted by Ctrl-C / SIGTERM."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "-h" in argv or "--help" in argv:
        embed_options.build_parser().print_help()
        return 0
    # TensorFlow's C++ start-up lines would bury the job's own log: its INFO and WARNING
    # lines (here and in the workers, which inherit the variable; an explicit value wins),
    # and in the launcher the Abseil lines that ignore it (tfcmvp.cli.tf_startup).
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from tfcmvp.cli import tf_startup

    tf_startup.install()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        manifest = run(argv)
    except (OutputExistsError, ValueError, OSError) as error:
        # OSError: a missing export (NotAnExportError), an --output_dir that holds an input
        # (OverwriteRefused); nothing was written.
        print(f"{embed_output.JOB}: error: {error}", file=sys.stderr)
        return 2
    except EmbeddingJobFailedError as error:
        print(f"{embed_output.JOB}: error: {error}", file=sys.stderr)
        return 1
    counts = manifest["counts"]
    print(
        f"embedded {counts['embedded']} of {counts['listed']} videos: {counts['clips']} "
        f"clips in {len(manifest['shards'])} shard(s) in {manifest['output_dir']}"
    )
    if counts["failed"]:
        print(
            f"{counts['failed']} failed: {manifest['output_dir']}/{embed_output.FAILED_NAME}",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    # Run the imported module, not this __main__ copy: objects sent to worker
    # processes must pickle as beam_jobs.embed.Task, not __main__.Task.
    from beam_jobs import embed as _embed

    sys.exit(_embed.main())

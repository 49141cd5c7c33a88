"""The extraction job's per-video stages: one listed video -> one staged, framed record.

:func:`plan_tasks` fixes each video's shard and position before the run. Four
DoFns then run one video at a time in one step (chained by
:class:`~beam_jobs.tagged_outputs.ParDoWithOutputs`, see
:mod:`beam_jobs.extract`): ExtractVideo (fetch, re-encode, decode; with
``--iframe_source reencode`` also the I-frames of a separate low-bit-rate
encode) -> BuildRecord (JPEG) -> EncodeExample (``tfcmvp.schema``) ->
StageRecord (one framed, gzip-compressed record per video under the staging
folder). Every stage sends the videos it cannot handle to the tagged
``failed`` output (:func:`failure_record`); StageRecord also emits each
video's tally under ``tally``.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import os
import shutil
import tempfile
import time
from typing import Dict, List, Optional

import apache_beam as beam
from apache_beam.metrics import Metrics

from beam_jobs import fileio, progress, tfrecord_files
from beam_jobs.extract_options import ExtractConfig
from tfcmvp import codec, records, schema
from tfcmvp import manifest as manifest_lib
from tfcmvp import splits as splits_lib
from tfcmvp.schema import IFRAME_SOURCE_REENCODE

LOG = logging.getLogger("beam_jobs.extract")

METRICS_NAMESPACE = "tfcmvp.extract"
FAILED = "failed"  # tag of the side output of every stage
TALLY = "tally"  # tag of the per-video counts of StageRecord
# The module (tfcmvp.codec's `reencode` function shadows it as an attribute), looked up at
# call time so a test can replace its functions.
reencode_lib = importlib.import_module("tfcmvp.codec.reencode")

PROGRESS_EVERY = 25  # videos between a worker's progress lines
_PARTS_DIR = "parts"  # one staged record per video, joined into shards at the end


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
        self._tmp = tempfile.mkdtemp(prefix="tfcmvp-extract-")

    def teardown(self):
        shutil.rmtree(getattr(self, "_tmp", ""), ignore_errors=True)

    def process(self, task):
        path = self._path(task)
        problem = splits_lib.path_problem(task.entry.path, self._config.allow_absolute_paths)
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
        stage = ["open"]  # the step running when an error comes, for failed.jsonl
        try:
            video, iframe_images = self._read(task, path, stage, temps, local_names)
        except Exception as error:  # noqa: BLE001 - any bad input must not stop the job
            yield self._fail(task, path, stage[0], error, local_names)
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

    def _read(self, task, path: str, stage: list, temps: list, local_names: dict) -> tuple:
        """(video, I-frames or None) of one task; ``stage[0]`` says which step runs.

        Temp files made go to ``temps`` (the caller deletes them) and
        ``local_names`` (temp file -> what it stands for, for messages).
        """
        config = self._config
        local, copied = fileio.localize(path, self._tmp)
        if copied:
            temps.append(local)
            local_names[local] = path
        if config.reencode != "none":
            stage[0] = "reencode"
            target = os.path.join(self._tmp, "reencoded.mp4")
            temps.append(target)
            local_names[target] = f"{path} (re-encoded to {config.reencode})"
            codec.reencode(
                local,
                target,
                codec=config.reencode,
                gop=config.reencode_gop,
                bitrate=config.reencode_bitrate,
            )
            local = target
        stage[0] = "decode"
        # A listed window (an untrimmed download) is decoded over that range only.
        video = codec.read_video(
            local,
            rgb=True,
            mv_cell=config.mv_cell,
            rgb_short_side=config.rgb_short_side,
            start=task.entry.start,
            end=task.entry.end,
        )
        if config.iframe_source != IFRAME_SOURCE_REENCODE:
            return video, None
        stage[0] = "iframes"
        # From the file just decoded, so frame i there is frame i here.
        iframe_images = reencode_lib.reencoded_iframes(
            local,
            video.iframe_indices,
            video.num_frames,
            bitrate=config.iframe_bitrate,
            rgb_short_side=config.rgb_short_side,
            scratch_dir=self._tmp,
        )
        return video, iframe_images


class BuildRecordFn(_StageFn):
    """(task, CompressedVideo, I-frames or None) -> (task, VideoRecord): JPEG frames,
    I-frames, vectors."""

    def process(self, element):
        task, video, iframe_images = element
        entry = task.entry
        try:
            record = records.build_record(
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

    def process(self, element):
        task, record = element
        try:
            serialized = schema.encode_example(  # protobuf alone: no TensorFlow
                record
            )
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

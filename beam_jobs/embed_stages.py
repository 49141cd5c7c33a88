"""The embedding job's plan and its per-video stage: one listed video -> its clip embeddings.

:func:`plan_tasks` fixes each video's position and shard before the run;
:func:`read_export_clips` resolves the export's clips once on the launcher;
:class:`EmbedVideoFn` does ``tfcmvp embed``'s per-video steps on a worker.

TensorFlow-importing modules (the export loader, the clip pipeline) are
imported where they are used, in the workers' ``setup`` and in the
launcher's calls, not at module level: ``beam_jobs.embed``'s ``main`` sets
``TF_CPP_MIN_LOG_LEVEL`` and installs :mod:`tfcmvp.cli.tf_startup` before
TensorFlow is first imported.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import queue
import shutil
import tempfile
import time
import weakref
from typing import List, Optional, Sequence

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics
from apache_beam.utils import shared

from beam_jobs import fileio
from beam_jobs.embed_inputs import localize_folder
from beam_jobs.embed_options import EmbedConfig

LOG = logging.getLogger("beam_jobs.embed")

METRICS_NAMESPACE = "tfcmvp.embed"
FAILED = "failed"  # tag of EmbedVideo's side output
PROGRESS_EVERY = 25  # videos between a worker's progress lines


def _counter(name: str):
    return Metrics.counter(METRICS_NAMESPACE, name)


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

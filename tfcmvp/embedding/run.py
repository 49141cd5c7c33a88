"""``tfcmvp embed``: video files -> one float32 matrix of clip embeddings and its table.

Per video (:func:`embed_videos`): decode what the export's modality needs
and build the record the extraction job would store
(:func:`tfcmvp.embedding.decode.video_record`), place the clips
(:func:`tfcmvp.embedding.clips.clip_starts`), cut them with retrieval's
sample (:func:`tfcmvp.embedding.clips.clip_dataset`), run the export's
``embed`` signature, append the rows (:class:`tfcmvp.embedding.writer.EmbeddingWriter`).
Decoding runs on a ``tf.data`` thread ahead of the model.

Everything about the clips comes from the export's
``assets/tfcmvp_export.json`` through
:func:`tfcmvp.retrieval.features.eval_options`, the function retrieval
uses: modality, frames, stride, crop, resize, normalisation, motion-vector
scaling.

Bad files follow the extraction job's rules: a video that cannot be
embedded (unreadable, no video stream, a codec without motion vectors for
the motion network, fewer than ``min_frames`` frames, all I-frames for the
motion network) is logged in one line, written to ``failed.jsonl`` and counted,
and the run goes on. The run counts as failed (``status`` "failed",
non-zero exit) when no video was embedded, or when more than
``max_failed_fraction`` of the listed videos failed; the output is written
either way, so the failures can be read.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
import pathlib
import time
from typing import Callable, Optional, Sequence

import numpy as np

from tfcmvp.codec.errors import VideoError
from tfcmvp.embedding import inputs as inputs_lib
from tfcmvp.embedding.clips import ClipLayout, clip_dataset, clip_starts, span_of
from tfcmvp.embedding.decode import StorageSettings, video_record
from tfcmvp.embedding.writer import EmbeddingWriter
from tfcmvp.errors import ConfigError, JobError

logger = logging.getLogger(__name__)

STATUS_OK, STATUS_FAILED = "ok", "failed"
DEFAULT_BATCH_SIZE = 20  # clips per call of the model, as retrieval
DEFAULT_MAX_FAILED_FRACTION = 1.0  # only a run that embeds nothing fails by default


class EmbeddingFailedError(JobError, RuntimeError):
    """The output was written, but no video was embedded or too many failed.

    ``summary`` is what ``embed.json`` says (status "failed", its problems).
    """

    def __init__(self, summary: dict):
        self.summary = summary
        super().__init__(
            "; ".join(summary["problems"]) + f". The output was written; the "
            f"failures and their causes are in {summary['output']}/failed.jsonl"
        )


@dataclasses.dataclass
class EmbedResult:
    """What :func:`embed_videos` did (also written to ``embed.json``)."""

    output: pathlib.Path
    summary: dict

    @property
    def embedded(self) -> int:
        return self.summary["counts"]["embedded"]

    @property
    def failed(self) -> int:
        return self.summary["counts"]["failed"]


class ShortVideoError(VideoError):
    """A video with fewer frames than ``min_frames`` (stage "short")."""


def failure_record(path: str, stage: str, error: BaseException) -> dict:
    """The ``failed.jsonl`` line of a video (the extraction job's fields, less its split)."""
    stage = getattr(error, "stage", None) or stage
    message = str(error) or repr(error)
    if path not in message:
        message = f"{path}: {message}"
    return {"path": path, "stage": stage, "error": type(error).__name__, "message": message}


def _progress(total: int, progress: Optional[bool]):
    from tqdm.auto import tqdm

    # progress=None: a bar on a terminal only, not in redirected logs.
    return tqdm(
        total=total,
        desc="embed",
        unit="video",
        disable=None if progress is None else not progress,
        leave=False,
    )


def _iframe_used(record, starts: np.ndarray, span: int) -> np.ndarray:
    """The I-frame index each clip of an I-frame network reads (the sample's own rule)."""
    from tfcmvp.data import sampling

    t = record.num_frames
    iframes = np.asarray(record.iframe_indices, np.int64)
    middle = np.asarray(sampling.clip_indices(starts + (span - 1) // 2, 1, 1, t))[:, 0]  # [N]
    return iframes[np.asarray(sampling.nearest_iframes(iframes, middle))]


@dataclasses.dataclass
class _Pending:
    """A decoded video whose clips are on their way through the dataset."""

    path: str
    record: object  # schema.VideoRecord without its payload (see prepare_video)
    starts: np.ndarray  # int64 [N]
    first: np.ndarray  # int64 [N] segment bounds of the table
    last: np.ndarray


def prepare_video(
    path: str,
    *,
    options,
    layout: ClipLayout,
    storage: StorageSettings,
    min_frames: int = 1,
) -> tuple:
    """``(serialized record, _Pending)`` of one video, decoded for ``options.modality``;
    raises on a bad one (with a stage)."""
    from tfcmvp import schema

    record = video_record(path, options.modality, storage)
    if record.num_frames < min_frames:
        raise ShortVideoError(
            path, f"{record.num_frames} frames, fewer than --min_frames {min_frames}", stage="short"
        )
    starts, first, last = clip_starts(record.num_frames, options, layout)
    serialized = schema.encode_example(record)
    # The table needs the metadata only: drop the frames and vectors now.
    record = dataclasses.replace(
        record, rgb_jpegs=[], iframe_jpegs=[], motion_vectors=np.zeros([0, 1, 1, 2], np.float32)
    )
    return serialized, _Pending(path, record, starts, first, last)


def embed_clips(embed: Callable, clips, batch_size: int, path: str) -> np.ndarray:
    """float32 ``[N, D]``: the export on ``[N, ...]`` clips, at most ``batch_size`` per call."""
    count = int(clips.shape[0])
    try:
        parts = [np.asarray(embed(clips[i : i + batch_size])) for i in range(0, count, batch_size)]
        embeddings = np.concatenate(parts, axis=0)  # [N, D]
    except Exception as error:  # noqa: BLE001 - the model's failure on this video only
        raise VideoError(path, f"the model failed on its clips: {error}", stage="embed") from error
    if embeddings.ndim != 2 or embeddings.shape[0] != count:
        raise VideoError(
            path,
            f"the embedding of {count} clips has shape {embeddings.shape}, expected [{count}, D]",
            stage="embed",
        )
    return embeddings.astype(np.float32)


def table_rows(pending: _Pending, *, modality: str, network: str, span: int) -> list:
    """The ``clips.csv`` rows of one video (:mod:`tfcmvp.embedding.writer`)."""
    record = pending.record
    iframes = (
        _iframe_used(record, pending.starts, span)
        if modality == "iframe"
        else np.full(len(pending.starts), -1)
    )
    fps = float(record.fps)
    return [
        {
            "path": pending.path,
            "clip": i,
            "start_frame": int(a),
            "end_frame": int(b),
            "start_time": round(int(a) / fps, 6),
            "end_time": round(int(b) / fps, 6),
            "fps": round(fps, 6),
            "num_frames": record.num_frames,
            "codec": record.codec,
            "network": network,
            "iframe": int(k),
        }
        for i, (a, b, k) in enumerate(zip(pending.first, pending.last, iframes))
    ]


def failure_problems(listed: int, embedded: int, failed: int, max_failed_fraction: float) -> list:
    """Why a run counts as failed (the extraction job's rule); [] for a good run."""
    if listed and not embedded:
        return [f"no video was embedded: all {listed} listed videos failed"]
    if listed and failed / listed > max_failed_fraction:
        return [
            f"{failed} of {listed} listed videos failed ({failed / listed:.0%} > "
            f"--max_failed_fraction {max_failed_fraction:g})"
        ]
    return []


def _check_arguments(batch_size, min_frames, max_failed_fraction) -> None:
    for name, value in (("batch_size", batch_size), ("min_frames", min_frames)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{name} must be a positive int, got {value!r}")
    if not 0.0 <= max_failed_fraction <= 1.0:
        raise ConfigError(f"max_failed_fraction must be in [0, 1], got {max_failed_fraction!r}")


def run_settings(
    model_dir, info, options, layout, storage, min_frames, max_failed_fraction
) -> dict:
    """What a run records of its settings: the export, the clips, the storage settings and
    the failure rules (``embed.json``'s fields, and those of the Beam job's manifest)."""
    return {
        "export": {
            "model_dir": str(model_dir),
            "network": info["network"],
            "backbone": info.get("backbone"),
            "embedding_dim": info.get("embedding_dim"),
            "input": info["input"],
        },
        "clips": {
            "modality": options.modality,
            "input_shape": list(options.input_shape),
            "span": span_of(options),
            **dataclasses.asdict(layout),
            "positions": None if layout.sliding else "vcop",
            "sample": options.sample_kwargs(),
        },
        "storage": dataclasses.asdict(storage),
        "min_frames": min_frames,
        "max_failed_fraction": max_failed_fraction,
    }


def _summary(problems, output, counts, seconds, settings) -> dict:
    """``embed.json``: status, counts and time, the run's settings, versions, date."""
    from tfcmvp.export import contract

    return {
        "status": STATUS_FAILED if problems else STATUS_OK,
        "problems": problems,
        "output": str(output),
        "counts": counts,
        "seconds": round(seconds, 3),
        **settings,
        **contract.versions(),
        "created": contract.utc_now(),
    }


class _EmbedRun:
    """One pass over the videos: decode on a tf.data thread, cut clips, embed, write rows."""

    def __init__(self, videos, writer, embed, options, layout, storage, min_frames, network):
        self.videos, self.writer, self.embed = videos, writer, embed
        self.options, self.layout, self.storage = options, layout, storage
        self.min_frames, self.network = min_frames, network
        self.pending: collections.deque = collections.deque()
        self.bar = None

    def fail(self, path, stage, error) -> None:
        record = failure_record(path, stage, error)
        logger.warning("failed at %s: %s", record["stage"], record["message"])
        self.writer.fail(record)
        self.bar.update(1)

    def decoded(self):
        """(serialized record, clip starts) per decodable video; runs on a tf.data thread,
        ahead of :meth:`embed_all`'s loop."""
        for path in self.videos:
            try:
                serialized, item = prepare_video(
                    path,
                    options=self.options,
                    layout=self.layout,
                    storage=self.storage,
                    min_frames=self.min_frames,
                )
            except Exception as error:  # noqa: BLE001 - a bad file must not stop the run
                self.fail(path, "decode", error)
                continue
            self.pending.append(item)
            yield serialized, item.starts

    def embed_all(self, batch_size: int, progress) -> tuple:
        """(videos embedded, their frames)."""
        embedded = frames = 0
        modality, span = self.options.modality, span_of(self.options)
        with _progress(len(self.videos), progress) as self.bar:
            for clips in clip_dataset(self.decoded, self.options):  # [N, *input_shape] per video
                item = self.pending.popleft()
                try:
                    matrix = embed_clips(self.embed, clips, batch_size, item.path)
                except VideoError as error:
                    self.fail(item.path, "embed", error)
                    continue
                rows = table_rows(item, modality=modality, network=self.network, span=span)
                self.writer.add(matrix, rows)
                embedded += 1
                frames += item.record.num_frames
                self.bar.update(1)
        return embedded, frames


def embed_videos(
    inputs: Sequence,
    model_dir,
    output,
    *,
    layout: ClipLayout = ClipLayout(),
    storage: StorageSettings = StorageSettings(),
    batch_size: int = DEFAULT_BATCH_SIZE,
    min_frames: int = 1,
    max_failed_fraction: float = DEFAULT_MAX_FAILED_FRACTION,
    overwrite: bool = False,
    progress: Optional[bool] = None,
    embed_fn: Optional[Callable] = None,
) -> EmbedResult:
    """Embeds every video named by ``inputs`` with the export ``model_dir`` into ``output``.

    Args:
      inputs: video files, folders and list files
        (:func:`tfcmvp.embedding.inputs.gather_inputs`).
      model_dir: a ``tfcmvp export`` folder (video, I-frame or motion network, or a
        finetuned classifier: its ``embed`` signature).
      output: the output folder (:mod:`tfcmvp.embedding.writer`).
      layout: retrieval's clips (default 10) or sliding windows.
      storage: how the extraction stored frames (defaults: the job's).
      batch_size: at most this many clips per call of the model.
      min_frames: videos with fewer frames fail at stage "short" (default 1:
        every decodable video; shorter than a clip, its last frame repeats,
        as in retrieval).
      max_failed_fraction: above this fraction of failed videos the run
        counts as failed (default 1.0: only when nothing was embedded).
      overwrite: replace a previous embed output in ``output``.
      progress: a tqdm bar over the videos; None = only on a terminal.
      embed_fn: clips -> embeddings instead of the export's ``embed``
        signature (tests, benchmarks).

    Returns an :class:`EmbedResult`. Raises InputError / FileNotFoundError /
    ValueError for bad arguments or exports (nothing written),
    OverwriteRefused for an ``output`` that may not be replaced, and
    :class:`EmbeddingFailedError` after writing an output whose run failed.
    """
    from tfcmvp.retrieval import features

    _check_arguments(batch_size, min_frames, max_failed_fraction)
    model_dir = pathlib.Path(model_dir)
    info = features.read_export(model_dir)
    options = features.eval_options(info, layout.num_clips)
    videos = inputs_lib.gather_inputs(inputs)
    list_files = [item for item in inputs if os.path.isfile(item) and inputs_lib.is_list_file(item)]
    writer = EmbeddingWriter(output, overwrite=overwrite, inputs=[model_dir, *list_files, *videos])
    with writer:
        embed = embed_fn or features.load_embedding_fn(model_dir)
        network = info["network"]
        logger.info(
            "embedding %d videos with %s (%s network, %s clips %s)",
            len(videos),
            model_dir,
            network,
            options.modality,
            list(options.input_shape),
        )
        started = time.perf_counter()
        run = _EmbedRun(videos, writer, embed, options, layout, storage, min_frames, network)
        embedded, frames = run.embed_all(batch_size, progress)
        seconds = time.perf_counter() - started
        failed = writer.failures
        problems = failure_problems(len(videos), embedded, failed, max_failed_fraction)
        counts = dict(listed=len(videos), embedded=embedded, failed=failed, clips=writer.rows)
        counts["frames"] = frames
        settings = run_settings(
            model_dir, info, options, layout, storage, min_frames, max_failed_fraction
        )
        summary = _summary(problems, output, counts, seconds, settings)
        writer.commit(summary, dim=int(info.get("embedding_dim") or 0))
    logger.info(
        "embedded %d of %d videos (%d clips, %d failed) in %.1f s",
        embedded,
        len(videos),
        writer.rows,
        failed,
        seconds,
    )
    if problems:
        raise EmbeddingFailedError(summary)
    return EmbedResult(pathlib.Path(output), summary)

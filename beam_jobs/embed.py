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
(video network: every frame to RGB; I-frame network: key frames only; motion network:
motion vectors only) into the record the extraction job would store, cut
into clips by retrieval's sample, and run through the export's ``embed``
signature at most ``--batch_size`` clips per call. The rows equal ``tfcmvp
embed``'s on the same inputs, values and table, only split into shards
(tests/test_beam_embed.py). Output in ``--output_dir``: shards of
``embeddings-*.npy`` + ``clips-*.csv``, ``failed.jsonl`` and
``manifest.json`` (:mod:`beam_jobs.embed_output`).

The job's parts: inputs in :mod:`beam_jobs.embed_inputs`, the plan and the
per-video stage in :mod:`beam_jobs.embed_stages`, the graph in
:mod:`beam_jobs.embed_pipeline`, the end of a run (verify, then commit) in
:mod:`beam_jobs.embed_finalize`, and the launcher here.

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

import logging
import os
import shutil
import sys
import tempfile
import time
from typing import Dict, Optional, Sequence

import apache_beam as beam
from apache_beam.runners.runner import PipelineState

from beam_jobs import (
    embed_options,
    embed_output,
    extract_options,
    fileio,
    interruption,
    output_folder,
    worker_logs,
)
from beam_jobs.embed_finalize import (
    STATUS_FAILED,
    STATUS_OK,
    commit_outputs,
    finalize,
    job_summary,
    verify_outputs,
)
from beam_jobs.embed_inputs import list_videos, local_inputs, localize_folder
from beam_jobs.embed_pipeline import build_pipeline
from beam_jobs.embed_stages import (
    FAILED,
    METRICS_NAMESPACE,
    EmbedVideoFn,
    ExportClips,
    Task,
    plan_tasks,
    read_export_clips,
)
from tfcmvp import outputs
from tfcmvp.errors import JobError, TfcmvpError

# The parts' names stay importable from here, the job's module.
__all__ = [
    "FAILED",
    "METRICS_NAMESPACE",
    "STATUS_FAILED",
    "STATUS_OK",
    "EmbedVideoFn",
    "EmbeddingJobFailedError",
    "ExportClips",
    "OutputExistsError",
    "Task",
    "build_pipeline",
    "commit_outputs",
    "fileio",
    "finalize",
    "job_summary",
    "list_videos",
    "localize_folder",
    "main",
    "plan_tasks",
    "read_export_clips",
    "run",
    "verify_outputs",
]

LOG = logging.getLogger("beam_jobs.embed")

OutputExistsError = embed_output.OutputExistsError


class EmbeddingJobFailedError(JobError, RuntimeError):
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


# ----------------------------------------------------------------------------- launcher


def _check_inputs(config) -> tuple:
    """(videos, ExportClips), after the checks made before anything is written."""
    videos = list_videos(config.inputs)
    scratch = tempfile.mkdtemp(prefix="tfcmvp-embed-launcher-")
    try:
        clips = read_export_clips(config, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if fileio.is_local(config.output_dir):
        outputs.check_not_input(
            config.output_dir, local_inputs(config, videos), flag="--output_dir"
        )
    return videos, clips


def _log_plan(config, clips: ExportClips, videos, tasks) -> None:
    LOG.info(
        "embedding %d videos with %s (%s network, %s clips %s) into %d shard(s)",
        len(videos),
        config.model_dir,
        clips.network,
        clips.options.modality,
        list(clips.options.input_shape),
        tasks[0].num_shards,
    )


def _run_pipeline(options, config, clips: ExportClips, tasks, staging_dir: str) -> None:
    """Builds and runs the pipeline into ``staging_dir``; RuntimeError when it fails."""
    pipeline = beam.Pipeline(runner=extract_options.make_runner(options), options=options)
    build_pipeline(pipeline, config, clips, tasks, staging_dir)
    state = pipeline.run().wait_until_finish()
    if state not in (None, PipelineState.DONE):
        raise RuntimeError(
            f"embedding pipeline ended in state {state}; {config.output_dir} was left unchanged"
        )


def _log_totals(manifest: Dict) -> None:
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
    argv = list(sys.argv[1:] if argv is None else argv)
    config, options = embed_options.parse(argv)
    videos, clips = _check_inputs(config)
    output_plan = embed_output.plan(config.output_dir, config.overwrite)
    tasks = plan_tasks(videos, config.shards_for(len(videos)))
    _log_plan(config, clips, videos, tasks)

    worker_logs.install()
    staging_dir = output_plan.staging_dir
    committed = []  # set once the new output is in place (a signal may arrive just after)

    def remove_staging() -> str:
        return output_folder.remove_unfinished(staging_dir, config.output_dir, bool(committed))

    started = time.perf_counter()
    with interruption.SignalGuard(remove_staging, prog=embed_output.JOB) as guard:
        try:
            _run_pipeline(options, config, clips, tasks, staging_dir)
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
    _log_totals(manifest)
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
    except EmbeddingJobFailedError as error:  # a JobError with its own exit status
        print(f"{embed_output.JOB}: error: {error}", file=sys.stderr)
        return 1
    except TfcmvpError as error:
        # OutputExistsError, a missing export (NotAnExportError), an --output_dir that
        # holds an input (OverwriteRefused); nothing was written.
        print(f"{embed_output.JOB}: error: {error}", file=sys.stderr)
        return 2
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

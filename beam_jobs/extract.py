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

The job's parts: the per-video stages in :mod:`beam_jobs.extract_stages`,
the graph in :mod:`beam_jobs.extract_pipeline`, the end of a run (verify, then
commit) in :mod:`beam_jobs.extract_finalize`, and the launcher here.

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

import argparse
import contextlib
import dataclasses
import logging
import sys
import time
from typing import Dict, Optional, Sequence

import apache_beam as beam
from apache_beam.runners.runner import PipelineState

from beam_jobs import (
    dask_cluster,
    fileio,
    interruption,
    output_folder,
    progress,
    worker_logs,
)
from beam_jobs.extract_finalize import (
    STATUS_FAILED,
    STATUS_OK,
    commit_outputs,
    failure_problems,
    finalize,
    verify_outputs,
)
from beam_jobs.extract_inputs import (
    InputError,
    check_inputs,
    check_videos_dir,
    check_windows,
    load_split_set,
)
from beam_jobs.extract_options import (
    ExtractConfig,
    ExtractOptions,
    make_pipeline_options,
    make_runner,
)
from beam_jobs.extract_pipeline import build_pipeline, shard_name, split_names
from beam_jobs.extract_stages import (
    FAILED,
    METRICS_NAMESPACE,
    PROGRESS_EVERY,
    TALLY,
    BuildRecordFn,
    EncodeExampleFn,
    ExtractVideoFn,
    StageRecordFn,
    Task,
    failure_record,
    plan_tasks,
)
from tfcmvp import manifest as manifest_lib
from tfcmvp import splits as splits_lib
from tfcmvp.errors import JobError, TfcmvpError

# The parts' names stay importable from here, the job's module.
__all__ = [
    "FAILED",
    "METRICS_NAMESPACE",
    "PROGRESS_EVERY",
    "STATUS_FAILED",
    "STATUS_OK",
    "TALLY",
    "BuildRecordFn",
    "EncodeExampleFn",
    "ExtractVideoFn",
    "ExtractionFailedError",
    "InputError",
    "OutputExistsError",
    "StageRecordFn",
    "Task",
    "build_pipeline",
    "check_inputs",
    "check_videos_dir",
    "check_windows",
    "commit_outputs",
    "failure_problems",
    "failure_record",
    "finalize",
    "main",
    "load_split_set",
    "plan_tasks",
    "run",
    "shard_name",
    "split_names",
    "verify_outputs",
]

LOG = logging.getLogger("beam_jobs.extract")

SHARD_SUFFIX = manifest_lib.SHARD_SUFFIXES["gzip"]  # the default
STAGING_PREFIX = output_folder.STAGING_PREFIX


OutputExistsError = output_folder.OutputExistsError


class ExtractionFailedError(JobError, RuntimeError):
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


# ----------------------------------------------------------------------------- launcher


def job_options(config: ExtractConfig, split_set: splits_lib.SplitSet) -> Dict:
    """The options recorded in ``manifest.json``."""
    recorded = dataclasses.asdict(config)
    recorded["split_files"] = list(split_set.sources)
    return recorded


def _run_pipeline(options, config, split_set, staging_dir: str, monitors: list) -> None:
    """Builds and runs the pipeline into ``staging_dir``; RuntimeError when it fails."""
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
            f"extraction pipeline ended in state {state}; {config.output_dir} was left unchanged"
        )


def _log_listing(split_set: splits_lib.SplitSet) -> None:
    listed = split_set.listed()
    LOG.info(
        "%s split files: %s classes, %s",
        split_set.layout,
        len(split_set.class_names),
        ", ".join(f"{listed[n]} {n}" for n in split_names(split_set)),
    )


def _log_totals(manifest: Dict, seconds: float) -> None:
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
    split_set = check_inputs(config)
    output_plan = output_folder.plan(
        config.output_dir, config.overwrite, job_options(config, split_set)
    )
    _log_listing(split_set)
    worker_logs.install()
    staging_dir = output_plan.staging_dir
    committed = []  # set once the new output is in place (a signal may arrive just after)
    monitors = []  # the progress display, closed before the interruption line is printed

    def remove_staging() -> str:
        for monitor in monitors:
            monitor.stop(finished=False)
        return output_folder.remove_unfinished(staging_dir, config.output_dir, bool(committed))

    started = time.perf_counter()
    with interruption.SignalGuard(remove_staging) as guard, contextlib.ExitStack() as cluster:
        try:
            # --runner DaskRunner: its local cluster, if any, runs until the end of the run.
            cluster.enter_context(dask_cluster.session(options, len(split_set.entries)))
            _run_pipeline(options, config, split_set, staging_dir, monitors)
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
    _log_totals(manifest, time.perf_counter() - started)
    if manifest["status"] != STATUS_OK:
        raise ExtractionFailedError(manifest)
    return manifest


def print_help(prog: str = "python -m beam_jobs.extract") -> None:
    """The job's own flags (Beam's PipelineOptions has no --help of its own)."""
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
    except ExtractionFailedError as error:  # a JobError with its own exit status
        print(f"beam_jobs.extract: error: {error}", file=sys.stderr)
        return 1
    except TfcmvpError as error:  # OutputExistsError, InputError, SplitFileError, ...
        print(f"beam_jobs.extract: error: {error}", file=sys.stderr)
        return 2
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

"""The extraction job on Dask (``--runner DaskRunner``): flags, runner and a local cluster.

Beam 2.77 ships a Dask runner (``pip install -e '.[dask]'``) but does not
register its short name; ``--runner DaskRunner`` is mapped here to
:data:`DASK_RUNNER`. The runner turns the pipeline into a graph of
``dask.bag`` operations and computes it on a ``distributed`` cluster:

* ``--dask_address tcp://HOST:PORT``: an existing cluster (``dask scheduler``
  on one machine, ``dask worker tcp://HOST:PORT`` on each machine); Beam's
  own ``--dask_client_address`` means the same;
* otherwise a local cluster started for the job (:func:`local_cluster`):
  the scheduler inside the launcher, ``--dask_workers N`` (default: one per
  core) single-threaded worker processes started through
  :mod:`beam_jobs.worker_process`, so they exit with the launcher however it
  ends (Ctrl-C and SIGTERM stop them through
  :func:`beam_jobs.worker_process.stop_workers`, like the local Beam
  runner's workers; ``kill -9`` through the parent-death signal).

What the runner supports shapes the pipeline (see
:func:`beam_jobs.extract.build_pipeline`): Create, ParDo, Flatten and
GroupByKey (so also CoGroupByKey and CombinePerKey), and nothing else. It
has no metrics (counters are dropped; the counts in ``manifest.json`` come
from the data), no side inputs (so no ``WriteToText``, whose finalize step
reads one), hands every output of a multi-output ParDo to each consumer,
keeps all of a partition's outputs of a step in memory before the next step
(see :mod:`beam_jobs.tagged_outputs` for both), and computes only the last
transform of the pipeline and what it depends on. On a cluster of one's
own, Ctrl-C of the launcher drops the job's waiting tasks, but a running
task (a partition) runs to its end. Each Dask partition is one bundle (DoFn
``setup`` to ``teardown``), run by one worker thread. :func:`session` spreads the videos over
:data:`PARTITIONS_PER_THREAD` partitions per worker thread of the cluster
(one video each for smaller jobs) unless ``--dask_npartitions`` or
``--dask_partition_size`` is given: the runner's default of 128 elements per
partition would leave all but one worker idle on a small job, and many more
partitions are costly, since the runner turns every GroupByKey into a task
shuffle over the partitions of all its inputs (this job's optimised graph for
200 videos, counted once with the runner's own translation: 270 tasks with
2 partitions, 4,266 with 20, 81,504 and 15 MB pickled with 200).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib
import logging
import os
import subprocess
import time
from typing import Iterator, List, Optional, Sequence

from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from beam_jobs import worker_process
from tfcmvp.errors import ConfigError

LOG = logging.getLogger("beam_jobs.dask_cluster")

DASK_RUNNER = "apache_beam.runners.dask.dask_runner.DaskRunner"
SHORT_NAME = "DaskRunner"
INSTALL_HINT = "pip install -e '.[dask]' (or pip install 'apache-beam[dask]==2.77.0')"
# Partitions of the listing per worker thread: each partition is a bundle that one thread
# runs start to end, so 2 leaves a thread that drew the longer videos less behind than 1,
# while the graph stays small (see the module docstring).
PARTITIONS_PER_THREAD = 2
WORKER_START_SECONDS = 120.0  # how long the local cluster may take to have every worker
_STOP_SECONDS = 5.0  # grace period of the local workers after SIGTERM


class DaskClusterOptions(PipelineOptions):
    """Where ``--runner DaskRunner`` runs: an existing cluster or a local one."""

    @classmethod
    def _add_argparse_args(cls, parser):
        parser.add_argument(
            "--dask_address",
            default=None,
            help="With --runner DaskRunner: the scheduler of an existing Dask "
            "cluster, tcp://HOST:PORT (Beam's --dask_client_address means "
            "the same). Without it the job starts a local cluster.",
        )
        parser.add_argument(
            "--dask_workers",
            type=int,
            default=None,
            help="With --runner DaskRunner and no --dask_address: worker "
            "processes of the local cluster started for the job "
            "(default: one per core).",
        )


def is_dask_runner(runner) -> bool:
    """True for ``DaskRunner`` given by its short name or full class path."""
    return runner is not None and str(runner).split(".")[-1] == SHORT_NAME


def named_in(argv: Sequence[str]) -> bool:
    """True when ``argv`` asks for the Dask runner (``--runner DaskRunner`` or ``=``)."""
    for position, arg in enumerate(argv):
        if arg == "--runner" and position + 1 < len(argv):
            if is_dask_runner(argv[position + 1]):
                return True
        elif arg.startswith("--runner=") and is_dask_runner(arg.split("=", 1)[1]):
            return True
    return False


def import_runner():
    """Imports Beam's Dask runner module (which also makes its ``--dask_*`` flags known);
    ``ValueError`` saying how to install it when ``dask``/``distributed`` are missing."""
    try:
        return importlib.import_module("apache_beam.runners.dask.dask_runner")
    except ImportError as error:
        raise ConfigError(
            f"--runner {SHORT_NAME} needs dask and distributed ({error}); "
            f"install them with {INSTALL_HINT}"
        ) from None


def configure(options: PipelineOptions) -> None:
    """Checks the Dask flags; for the Dask runner names it by class path and passes
    ``--dask_address`` on to Beam's option. ``ValueError`` names the bad flag."""
    ours = options.view_as(DaskClusterOptions)
    standard = options.view_as(StandardOptions)
    if not is_dask_runner(standard.runner):
        given = [
            flag
            for flag, value in (
                ("--dask_address", ours.dask_address),
                ("--dask_workers", ours.dask_workers),
            )
            if value is not None
        ]
        if given:
            raise ConfigError(
                f"{' and '.join(given)} need{'s' if len(given) == 1 else ''} "
                f"--runner {SHORT_NAME} (the runner is "
                f"{standard.runner or 'the local default'})"
            )
        return
    beam_options = options.view_as(import_runner().DaskOptions)
    standard.runner = DASK_RUNNER
    problems = []
    if ours.dask_address and beam_options.address and ours.dask_address != beam_options.address:
        problems.append(
            f"--dask_address {ours.dask_address} and --dask_client_address "
            f"{beam_options.address} disagree"
        )
    address = ours.dask_address or beam_options.address
    if ours.dask_workers is not None:
        if ours.dask_workers < 1:
            problems.append(f"--dask_workers must be >= 1, got {ours.dask_workers}")
        if address or beam_options.scheduler_file:
            problems.append(
                "--dask_workers sizes the local cluster, which is not started "
                "when the job is given a cluster (--dask_address or "
                "--dask_scheduler_file): start that cluster's workers instead"
            )
    if problems:
        raise ConfigError("invalid options: " + "; ".join(problems))
    beam_options.address = address


def make_runner():
    """A Dask runner whose client is closed once the pipeline finished (Beam's is left open,
    and then spends 30 s trying to reconnect after its scheduler is gone)."""
    return _runner_class()()


@functools.lru_cache(maxsize=None)
def _runner_class():
    dask_runner = import_runner()

    @dataclasses.dataclass
    class ClosingDaskRunnerResult(dask_runner.DaskRunnerResult):
        """Closes the client when ``wait_until_finish`` returns or raises."""

        def wait_until_finish(self, duration=None):
            try:
                return super().wait_until_finish(duration)
            finally:
                self.client.close()

    class ClosingDaskRunner(dask_runner.DaskRunner):
        """Beam's DaskRunner with a result that closes its client."""

        def run_pipeline(self, pipeline, options):
            result = super().run_pipeline(pipeline, options)
            return ClosingDaskRunnerResult(result.client, result.futures)

    return ClosingDaskRunner


def default_partitions(num_videos: int, threads: int) -> int:
    """Partitions of the job's listing: :data:`PARTITIONS_PER_THREAD` per worker thread,
    at most one per video."""
    return max(1, min(num_videos, PARTITIONS_PER_THREAD * max(1, threads)))


def cluster_threads(address: Optional[str], scheduler_file: Optional[str] = None) -> int:
    """Worker threads of the cluster at ``address`` (or in ``scheduler_file``) right now."""
    from distributed import Client

    with Client(address, scheduler_file=scheduler_file, timeout=30, set_as_default=False) as client:
        return sum(client.nthreads().values())


@contextlib.contextmanager
def session(options: PipelineOptions, num_videos: int) -> Iterator[Optional[str]]:
    """The Dask side of one run; does nothing (yields None) for any other runner.

    Sets the partition count when no ``--dask_npartitions`` /
    ``--dask_partition_size`` is given, and, without an address, starts the
    local cluster for the run and stops it afterwards. Yields the scheduler
    address.
    """
    if not is_dask_runner(options.view_as(StandardOptions).runner):
        yield None
        return
    beam_options = options.view_as(import_runner().DaskOptions)
    partitions_given = beam_options.npartitions or beam_options.partition_size
    if beam_options.address or beam_options.scheduler_file:
        if not partitions_given:
            threads = cluster_threads(beam_options.address, beam_options.scheduler_file)
            if not threads:
                LOG.warning(
                    "the Dask cluster has no worker yet; the job waits for workers, "
                    "and its videos are split for one (--dask_npartitions sets it)"
                )
            beam_options.npartitions = default_partitions(num_videos, threads)
        LOG.info(
            "running on the Dask cluster at %s (%s partitions)",
            beam_options.address or beam_options.scheduler_file,
            beam_options.npartitions or f"{beam_options.partition_size} videos",
        )
        yield beam_options.address
        return
    workers = options.view_as(DaskClusterOptions).dask_workers or os.cpu_count() or 1
    if not partitions_given:
        beam_options.npartitions = default_partitions(num_videos, workers)
    with local_cluster(workers) as address:
        beam_options.address = address
        try:
            yield address
        finally:
            beam_options.address = None


@contextlib.contextmanager
def local_cluster(workers: int, start_seconds: float = WORKER_START_SECONDS) -> Iterator[str]:
    """A Dask cluster on this machine for the ``with`` block; yields its scheduler address.

    The scheduler runs in this process (``distributed.LocalCluster`` without
    workers, no dashboard, on 127.0.0.1, free ports); ``workers`` worker processes are
    this process's children (:func:`beam_jobs.worker_process.dask_command`).
    ``RuntimeError`` when a worker exits during start-up or not all of them
    registered within ``start_seconds``. On the way out the workers are
    stopped (SIGTERM, then SIGKILL) and the scheduler closed.
    """
    from distributed import LocalCluster

    worker_process.remove_dead_scratch()
    # The scheduler's HTTP server (health checks; no dashboard) starts even without a
    # dashboard, on port 8787 unless told otherwise: any free port, so that two jobs (or a
    # user's own cluster) do not collide.
    cluster = LocalCluster(
        n_workers=0,
        host="127.0.0.1",
        scheduler_port=0,
        dashboard_address=None,
        silence_logs=logging.WARNING,
        scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
    )
    processes: List[subprocess.Popen] = []
    try:
        address = cluster.scheduler_address
        processes = [
            subprocess.Popen(worker_process.dask_command(address), stdin=subprocess.DEVNULL)
            for _ in range(workers)
        ]
        _wait_for_workers(cluster, processes, start_seconds)
        LOG.info("local Dask cluster: scheduler %s, %d worker processes", address, workers)
        yield address
    finally:
        _stop(processes)
        cluster.close()


def _wait_for_workers(cluster, processes: List[subprocess.Popen], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while len(cluster.scheduler.workers) < len(processes):
        exited = [p for p in processes if p.poll() is not None]
        if exited:
            raise RuntimeError(
                f"a local Dask worker exited during start-up (exit code "
                f"{exited[0].returncode}; its messages are above)"
            )
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"only {len(cluster.scheduler.workers)} of {len(processes)} "
                f"local Dask workers started within {seconds:g} s"
            )
        time.sleep(0.1)


def _stop(processes: List[subprocess.Popen]) -> None:
    """SIGTERM (the worker removes its scratch folder and exits), SIGKILL after a grace
    period; reaps every process."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + _STOP_SECONDS
    for process in processes:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

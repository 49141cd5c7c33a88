"""The runner object of a local or Dask run of the Beam jobs (:func:`make_runner`).

Locally, Beam's ``FnApiRunner`` (the engine of the DirectRunner for batch
pipelines) with the pipeline options passed to its workers and workers that
exit with the launcher (:class:`ParentBoundFnApiRunner`); for ``--runner
DaskRunner``, Beam's Dask runner (:mod:`beam_jobs.dask_cluster`). Which
runner a command line asks for is :func:`beam_jobs.extract_options.make_pipeline_options`.
"""

from __future__ import annotations

from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.portability.api import beam_provision_api_pb2
from apache_beam.runners.portability.fn_api_runner import fn_runner
from apache_beam.runners.portability.portable_runner import JobServiceHandle
from apache_beam.transforms import environments

from beam_jobs import dask_cluster, worker_process

LOCAL_RUNNER = "FnApiRunner"


def make_runner(options: PipelineOptions):
    """The runner object for ``beam.Pipeline(runner=...)``, or None for Beam's choice.

    For the local ``FnApiRunner`` this passes the pipeline options to the
    worker processes the way the DirectRunner does (without it they start
    with empty options), and in ``multi_processing`` mode starts each worker
    through :mod:`beam_jobs.worker_process`, so that workers exit with the
    launcher however it ends (Ctrl-C, SIGTERM, ``kill -9``). For ``DaskRunner``:
    Beam's Dask runner, which closes its client when the run ends.
    """
    if dask_cluster.is_dask_runner(options.view_as(StandardOptions).runner):
        return dask_cluster.make_runner()
    if str(options.view_as(StandardOptions).runner).split(".")[-1] != LOCAL_RUNNER:
        return None
    encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
    return ParentBoundFnApiRunner(
        provision_info=fn_runner.ExtendedProvisionInfo(
            beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded)
        )
    )


class ParentBoundFnApiRunner(fn_runner.FnApiRunner):
    """``FnApiRunner`` whose worker processes are :mod:`beam_jobs.worker_process`, so that
    its multi_processing workers exit with the launcher.

    ``FnApiRunner.run_pipeline`` assigns ``self._default_environment`` a
    ``SubprocessSDKEnvironment`` running Beam's own worker main when
    ``--direct_running_mode`` is ``multi_processing``, and nothing else picks
    the worker command; the property below swaps in this project's command at
    that assignment.
    """

    @property
    def _default_environment(self):
        return self._environment

    @_default_environment.setter
    def _default_environment(self, environment):
        if isinstance(environment, environments.SubprocessSDKEnvironment):
            environment = environments.SubprocessSDKEnvironment.from_command_string(
                worker_process.command()
            )
        self._environment = environment

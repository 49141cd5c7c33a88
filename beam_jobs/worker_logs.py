"""Readable logs from local Beam runs: this project's worker lines kept, Beam's chatter dropped.

On the local runner every worker process forwards each of its log records to
the launcher, which logs it through ``apache_beam.runners.portability.
local_job_service`` as one long dump ("Worker: severity: INFO timestamp {...}
message: "..." log_location: "..." thread: ..."). A two-worker run prints
some fifty such lines of harness start-up and shutdown, which bury the job's
own messages (failed videos, all-intra videos, progress).

:func:`install` adds a filter that keeps a forwarded record only when it
comes from ``beam_jobs`` or ``tfcmvp`` code, or is an error, and rewrites it
as ``<message> (<file>:<line>)`` under the name ``beam_jobs.worker``; the
runner's "starting ... server on port" INFO lines are dropped. With the root logger at DEBUG
(``--log_level DEBUG`` in the CLI) nothing is filtered.
"""

from __future__ import annotations

import logging
import re

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"  # the launcher's and Dask workers'
FORWARDING_LOGGER = "apache_beam.runners.portability.local_job_service"
RUNNER_LOGGER = "apache_beam.runners.portability.fn_api_runner.worker_handlers"
WORKER_LOGGER = "beam_jobs.worker"  # the name rewritten worker records are shown under

# Worker records are text-format protos; quoted fields may hold escaped quotes.
_QUOTED = r'"((?:[^"\\]|\\.)*)"'
_MESSAGE = re.compile(r"\bmessage: " + _QUOTED, re.S)
_LOCATION = re.compile(r"\blog_location: " + _QUOTED)
_OUR_CODE = re.compile(r"[\\/](beam_jobs|tfcmvp)[\\/]")


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), text)


class WorkerLogFilter(logging.Filter):
    """Keeps and rewrites forwarded worker records (see the module docstring)."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if not text.startswith("Worker: "):
            return True
        message, location = _MESSAGE.search(text), _LOCATION.search(text)
        ours = location is not None and _OUR_CODE.search(location.group(1))
        if not ours and record.levelno < logging.ERROR:
            return False
        if message is not None:
            where = ""
            if location is not None:
                where = " (" + re.split(r"[\\/]", _unescape(location.group(1)))[-1] + ")"
            record.msg = _unescape(message.group(1)) + where
            record.args = ()
            record.name = WORKER_LOGGER
        return True


class _DropInfo(logging.Filter):
    """Drops a logger's INFO records (the runner's "starting ... server on port" lines)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno != logging.INFO


# Loggers whose INFO lines say nothing a user of this job needs: Beam's (per-bundle cache
# set-up, one "Renamed 1 shards" per small output file) and Dask's (each client and worker
# connecting and leaving, with --runner DaskRunner).
QUIET_LOGGERS = (
    "apache_beam.runners.worker.statecache",
    "apache_beam.io.filebasedsink",
    "distributed",
)


def install() -> None:
    """Adds the filters once (idempotent); nothing changes when the root logger is at DEBUG."""
    if logging.getLogger().isEnabledFor(logging.DEBUG):
        return
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for name, filter_class in ((FORWARDING_LOGGER, WorkerLogFilter), (RUNNER_LOGGER, _DropInfo)):
        logger = logging.getLogger(name)
        if not any(isinstance(f, filter_class) for f in logger.filters):
            logger.addFilter(filter_class())

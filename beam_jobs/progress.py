"""Progress of an extraction, shown by the launcher: a bar on a terminal, log lines otherwise.

Beam's local runner runs the pipeline inside ``pipeline.run()`` and reports
nothing until it returns, and its metrics are only read at the end. What
the launcher can see while it waits is the staging folder, which fills one
file per finished video: ``parts/<split>-<shard>/<index>.part`` for a video
that was written (:class:`beam_jobs.extract.StageRecordFn`) and
``progress/<split>-<index>.failed`` for one that failed at any stage (the
job's DoFns write that empty marker beside the ``failed`` record they emit;
see :func:`marker_dir`). Both names are fixed by the video's place in the
listing, so a retried bundle rewrites a file rather than counting twice.

:class:`ProgressMonitor` polls those counts from a thread of the launcher:

* on a terminal (stderr is a tty): a tqdm bar with done / total, failed,
  rate and ETA; log records are routed above the bar;
* otherwise (a log file, CI): an INFO line each time another tenth of the
  videos is done and at least every :data:`LOG_EVERY_SECONDS`, and one at
  the end: ``extraction: 120/120 videos done (3 failed) in 52 s, 2.31 videos/s``.

It needs the launcher to see the workers' files: the local runner with a
staging folder on a local disk. On any other runner, or with a remote
``--output_dir``, :func:`start` logs one line saying where progress is
shown instead and returns a monitor that does nothing.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import Optional, TextIO, Tuple

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

LOG = logging.getLogger("beam_jobs.extract")

MARKER_DIR = "progress"  # staging_dir/progress/<split>-<index>.failed
MARKER_SUFFIX = ".failed"
PART_SUFFIX = ".part"
LOG_FRACTION = 0.1  # a log line per tenth of the videos ...
LOG_EVERY_SECONDS = 30.0  # ... and at least this often
POLL_SECONDS = 0.5


def marker_dir(staging_dir: str) -> str:
    """The folder of the failure markers under a (local) staging folder."""
    return os.path.join(staging_dir, MARKER_DIR)


def marker_name(split: str, index: int) -> str:
    """``train-0000004.failed``: video ``index`` of ``split``'s listing failed."""
    return f"{split}-{index:07d}{MARKER_SUFFIX}"


def write_marker(folder: str, split: str, index: int) -> None:
    """Marks one failed video for the launcher's count (an empty local file)."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, marker_name(split, index)), "wb"):
        pass


def count_finished(staging_dir: str, parts_dir: str = "parts") -> Tuple[int, int]:
    """``(written, failed)``: staged parts and failure markers under ``staging_dir`` so far.

    Folders that do not exist yet (or any more) count as empty.
    """
    written = 0
    try:
        with os.scandir(os.path.join(staging_dir, parts_dir)) as shards:
            for shard in shards:
                try:
                    with os.scandir(shard.path) as parts:
                        written += sum(1 for p in parts if p.name.endswith(PART_SUFFIX))
                except (FileNotFoundError, NotADirectoryError):
                    continue
    except FileNotFoundError:
        pass
    failed = 0
    try:
        with os.scandir(marker_dir(staging_dir)) as markers:
            failed = sum(1 for m in markers if m.name.endswith(MARKER_SUFFIX))
    except FileNotFoundError:
        pass
    return written, failed


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class ProgressMonitor:
    """Polls :func:`count_finished` in a thread and shows done / total, failed, rate, ETA.

    Args:
      total: videos listed (the job's tasks).
      staging_dir: the run's local staging folder.
      stream: where the bar goes (default stderr); its ``isatty()`` picks the
        bar (True) or log lines (False), unless `interactive` says.
      interactive: force the bar (True) or the log lines (False).
      poll_seconds: how often the counts are read.
    """

    def __init__(
        self,
        total: int,
        staging_dir: str,
        stream: Optional[TextIO] = None,
        interactive: Optional[bool] = None,
        poll_seconds: float = POLL_SECONDS,
    ):
        self.total = total
        self.staging_dir = staging_dir
        self.stream = stream or sys.stderr
        if interactive is None:
            isatty = getattr(self.stream, "isatty", None)
            interactive = bool(isatty and isatty())
        self.interactive = interactive
        self.poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._bar = None
        self._redirect = None
        self._started = time.monotonic()
        self._last_line = self._started
        self._logged_tenths = 0
        self.done = self.failed = 0

    # -- lifecycle ------------------------------------------------------------
    def start(self) -> "ProgressMonitor":
        self._started = self._last_line = time.monotonic()
        if self.interactive:
            self._bar = tqdm(
                total=self.total, unit="video", desc="extract", file=self.stream, dynamic_ncols=True
            )
            # Log records (a failed video, a worker's warning) print above the bar.
            self._redirect = logging_redirect_tqdm()
            self._redirect.__enter__()
        else:
            LOG.info(
                "extracting %d videos; a progress line every %d%% and at least every %d s",
                self.total,
                round(100 * LOG_FRACTION),
                LOG_EVERY_SECONDS,
            )
        self._thread = threading.Thread(
            target=self._poll_loop, name="extract-progress", daemon=True
        )
        self._thread.start()
        return self

    def stop(self, finished: bool = True) -> None:
        """Stops polling; with `finished`, one last count and the final line (N/N)."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread = None
        if finished:
            self._update()
        if self._bar is not None:
            self._bar.close()
            self._redirect.__exit__(None, None, None)
            self._bar = self._redirect = None
        if finished:
            seconds = time.monotonic() - self._started
            LOG.info(
                "extraction: %d/%d videos done (%d failed) in %s, %.2f videos/s",
                self.done,
                self.total,
                self.failed,
                _duration(seconds),
                self.done / max(seconds, 1e-9),
            )

    # -- polling --------------------------------------------------------------
    def _poll_loop(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self._update()
                if not self.interactive:
                    self._maybe_log()
            except Exception as error:  # noqa: BLE001 - progress must never stop the job
                LOG.debug("progress: %s", error)

    def _update(self) -> None:
        written, failed = count_finished(self.staging_dir)
        self.done, self.failed = min(written + failed, self.total), failed
        if self._bar is not None:
            self._bar.n = self.done
            self._bar.set_postfix(failed=self.failed, refresh=False)
            self._bar.refresh()

    def _maybe_log(self) -> None:
        now = time.monotonic()
        tenths = int(self.done / max(self.total, 1) / LOG_FRACTION + 1e-9)
        if self.done >= self.total:
            return  # the final line says it
        if tenths > self._logged_tenths or now - self._last_line >= LOG_EVERY_SECONDS:
            self._logged_tenths = max(tenths, self._logged_tenths)
            self._last_line = now
            LOG.info("%s", self.line(now - self._started))

    def line(self, seconds: float) -> str:
        """``extraction: 12/120 videos done (10%), 1 failed, 2.30 videos/s, ETA 47 s``."""
        rate = self.done / max(seconds, 1e-9)
        eta = _duration((self.total - self.done) / rate) if self.done else "unknown"
        return (
            f"extraction: {self.done}/{self.total} videos done "
            f"({100 * self.done / max(self.total, 1):.0f}%), {self.failed} failed, "
            f"{rate:.2f} videos/s, ETA {eta}"
        )


class _NoProgress:
    """Stands in for :class:`ProgressMonitor` where the launcher cannot count."""

    def stop(self, finished: bool = True) -> None:
        pass


def start(
    total: int,
    staging_dir: str,
    local_runner: bool,
    is_local_path: bool,
    stream: Optional[TextIO] = None,
):
    """A started :class:`ProgressMonitor`, or a do-nothing one after saying why there is none.

    Args:
      total: videos listed.
      staging_dir: the run's staging folder.
      local_runner: the pipeline runs on this project's local runner (its
        workers write to this machine's disk).
      is_local_path: `staging_dir` is a local path.
      stream: see :class:`ProgressMonitor`.
    """
    if not (local_runner and is_local_path):
        where = (
            "the staging folder is not on a local disk"
            if local_runner
            else "the pipeline runs on another runner"
        )
        LOG.info(
            "no progress display: %s; the runner's own monitoring shows progress "
            "(and each worker logs a line every few videos)",
            where,
        )
        return _NoProgress()
    return ProgressMonitor(total, staging_dir, stream=stream).start()

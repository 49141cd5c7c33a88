"""Ctrl-C and SIGTERM of a running extraction: stop the workers, clean up, say so in one line.

Without this, SIGTERM kills the launcher at once (its staging folder stays
behind) and each worker then prints a page of gRPC tracebacks as its
connection drops; Ctrl-C makes every process of the job print a
KeyboardInterrupt traceback. Nothing useful can be saved from an interrupted
Beam pipeline, whose threads are blocked in gRPC calls, so
:class:`SignalGuard` does not try to unwind it: it stops the worker processes
(:func:`beam_jobs.worker_process.stop_workers`), runs the cleanup it was given
(removing the staging folder), prints one line and ends the process with
``128 + signal`` (130 for Ctrl-C, 143 for SIGTERM), as a shell reports a
process killed by that signal.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from typing import Callable, Optional

from beam_jobs import worker_process

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class SignalGuard:
    """Context manager installing the handlers above (main thread only; elsewhere a no-op).

    Args:
      cleanup: called once on a signal, after the workers stopped; returns a
        sentence saying what it did (e.g. "removed OUT._incomplete-...").
      prog: the name the line starts with.
    """

    def __init__(self, cleanup: Callable[[], str], prog: str = "beam_jobs.extract"):
        self._cleanup = cleanup
        self._prog = prog
        self._previous = {}
        self._deferring = False
        self._pending: Optional[int] = None

    def __enter__(self) -> "SignalGuard":
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    @contextlib.contextmanager
    def deferred(self):
        """A section a signal must not cut in two (replacing files one by one): a signal
        arriving inside it is acted on at its end."""
        self._deferring = True
        try:
            yield
        finally:
            self._deferring = False
        if self._pending is not None:
            self._stop(self._pending)

    def _handle(self, signum, frame) -> None:
        if self._deferring:
            self._pending = signum
            return
        self._stop(signum)

    def _stop(self, signum: int) -> None:
        for other in SIGNALS:  # a second Ctrl-C while cleaning up changes nothing
            signal.signal(other, signal.SIG_IGN)
        # The runner's threads see their workers vanish and would log it or print
        # tracebacks: nothing they say now is news.
        logging.disable(logging.CRITICAL)
        threading.excepthook = lambda args: None
        stopped = worker_process.stop_workers()
        try:
            done = self._cleanup()
        except Exception as error:  # noqa: BLE001 - the one line must still be printed
            done = f"cleanup failed: {error}"
        workers = (
            f"stopped {stopped} worker process{'es' if stopped != 1 else ''}; " if stopped else ""
        )
        print(
            f"{self._prog}: interrupted by {signal.Signals(signum).name}: {workers}{done}",
            file=sys.stderr,
            flush=True,
        )
        os._exit(128 + signum)

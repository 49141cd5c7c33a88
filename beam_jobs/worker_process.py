"""Local Beam worker processes that exit with the job that started them.

With ``--direct_running_mode multi_processing`` Beam's FnApiRunner starts
each SDK worker as ``sh -c "python -m apache_beam.runners.worker.sdk_worker_main"``
(``subprocess.Popen(shell=True)`` from a thread of the launcher) and stops it
by closing the gRPC control stream. When the launcher dies without closing
it (``kill -9``, or SIGTERM with its default action), each worker finishes
the video in hand, prints a page of gRPC tracebacks and exits; one in a long
decode or re-encode keeps running for minutes.

:func:`command` is the worker command this project's local runner uses
instead (see :func:`beam_jobs.extract_options.make_runner`): ``exec python -m
beam_jobs.worker_process <launcher pid>``. ``exec`` replaces the shell, so the
worker is the launcher's own child, and :func:`main`, before Beam's harness
starts:

* asks Linux for a parent-death signal (``prctl(PR_SET_PDEATHSIG, SIGKILL)``):
  the kernel kills the worker when the launcher thread that started it
  ends, however it ends, ``kill -9`` included. SIGKILL, not SIGTERM: a
  worker whose launcher vanished can be stuck with the GIL held in gRPC's
  shutdown (seen: alive and printing reconnection errors 15 s after the
  launcher's ``kill -9``, its SIGTERM handler never run), and only a signal
  that needs no Python code ends it;
* starts a watchdog thread that polls ``os.getppid()`` once a second: the
  only means on macOS (no prctl);
* moves into a process group of its own, so that a Ctrl-C typed in the
  terminal reaches only the launcher, which stops its workers itself
  (:func:`stop_workers`: SIGTERM, then SIGKILL after a grace period) and
  prints one line, rather than every worker printing a KeyboardInterrupt
  traceback;
* points ``tempfile`` at a scratch folder of its own, removed when the
  worker exits normally, on SIGTERM or through the watchdog. A worker that
  was killed cannot remove it: the next worker to start on the machine
  removes the scratch folders of workers that are no longer running.

On SIGTERM a worker removes its scratch folder and exits at once
(``os._exit``), without a traceback.

The local Dask cluster of ``--runner DaskRunner`` (:mod:`beam_jobs.dask_cluster`)
starts its workers the same way (:func:`dask_command`: ``python -m
beam_jobs.worker_process <launcher pid> --dask <scheduler address>``), so
they get the same binding, scratch folder and stopping.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import shlex
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from typing import List, Optional

MODULE = "beam_jobs.worker_process"
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
WATCHDOG_SECONDS = 1.0  # how often the watchdog looks for a new parent
EXIT_PARENT_GONE = 3  # exit code of a worker whose launcher is gone
DASK_FLAG = "--dask"  # PARENT_PID --dask SCHEDULER_ADDRESS: a Dask worker instead of Beam's


def command(parent_pid: Optional[int] = None) -> str:
    """The shell command that starts one worker bound to ``parent_pid`` (default: this process)."""
    pid = os.getpid() if parent_pid is None else parent_pid
    return f"exec {shlex.quote(sys.executable)} -m {MODULE} {pid}"


def dask_command(scheduler_address: str, parent_pid: Optional[int] = None) -> List[str]:
    """The argv of one Dask worker for ``scheduler_address``, bound to ``parent_pid`` (default:
    this process) like the Beam workers above (see :mod:`beam_jobs.dask_cluster`)."""
    pid = os.getpid() if parent_pid is None else parent_pid
    return [sys.executable, "-m", MODULE, str(pid), DASK_FLAG, scheduler_address]


def _set_parent_death_signal(signum: int) -> bool:
    """``prctl(PR_SET_PDEATHSIG, signum)``; False where there is no such call (not Linux)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


SCRATCH_PREFIX = "tfcmvp-worker-"  # + "<pid>@<host>-<random>" in the system temp folder


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # e.g. another user's process
    return True


def _host() -> str:
    return "".join(c if c.isalnum() or c == "." else "_" for c in socket.gethostname()) or "host"


def remove_dead_scratch(temp_dir: Optional[str] = None) -> List[str]:
    """Removes the scratch folders of this host's workers that are not running (killed ones
    leave them). The host in the name keeps a temp folder shared with another machine or
    container, whose pids mean nothing here, out of it."""
    temp_dir = temp_dir or tempfile.gettempdir()
    removed = []
    for name in os.listdir(temp_dir):
        if not name.startswith(SCRATCH_PREFIX):
            continue
        pid, _, rest = name[len(SCRATCH_PREFIX) :].partition("@")
        host = rest.rsplit("-", 1)[0]  # mkdtemp's random suffix has no "-"
        if pid.isdigit() and int(pid) > 0 and host == _host() and not _pid_running(int(pid)):
            shutil.rmtree(os.path.join(temp_dir, name), ignore_errors=True)
            removed.append(name)
    return removed


class _Scratch:
    """This worker's temp folder, removed by whichever exit path comes first."""

    def __init__(self):
        self.path = tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}@{_host()}-")
        self._lock = threading.Lock()

    def remove(self) -> None:
        with self._lock:
            shutil.rmtree(self.path, ignore_errors=True)

    def exit_now(self, code: int) -> None:
        """Removes the scratch folder and ends the process at once (no cleanup of Beam's threads,
        whose only peer, the launcher, is gone or has asked us to stop)."""
        # A DoFn still running in another thread would see its temp files vanish and log
        # the video as failed, which it did not (seen on the Dask workers at Ctrl-C).
        logging.disable(logging.CRITICAL)
        self.remove()
        os._exit(code)


def _watch_parent(parent_pid: int, scratch: _Scratch) -> None:
    while True:
        if os.getppid() != parent_pid:
            scratch.exit_now(EXIT_PARENT_GONE)
        time.sleep(WATCHDOG_SECONDS)


def bind_to_parent(parent_pid: int, scratch: _Scratch) -> None:
    """Makes this process exit when ``parent_pid`` does (see the module docstring)."""
    signal.signal(signal.SIGTERM, lambda signum, frame: scratch.exit_now(128 + signum))
    _set_parent_death_signal(signal.SIGKILL)
    if os.getppid() != parent_pid:  # the launcher died before the request above
        scratch.exit_now(EXIT_PARENT_GONE)
    threading.Thread(
        target=_watch_parent, args=(parent_pid, scratch), daemon=True, name="parent-watchdog"
    ).start()
    try:
        os.setpgid(0, 0)
    except OSError:
        pass  # already a group leader, or not permitted: Ctrl-C then reaches us too


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of a worker process: ``python -m beam_jobs.worker_process PARENT_PID``
    (a Beam SDK worker) or ``... PARENT_PID --dask SCHEDULER_ADDRESS`` (a Dask worker)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    dask_address = None
    if len(argv) == 3 and argv[1] == DASK_FLAG:
        dask_address = argv.pop(2)
        argv.pop(1)
    if len(argv) != 1 or not argv[0].isdigit():
        print(
            f"usage: python -m {MODULE} PARENT_PID [{DASK_FLAG} SCHEDULER_ADDRESS] "
            "(started by the local runner or the job's local Dask cluster)",
            file=sys.stderr,
        )
        return 2
    scratch = _Scratch()
    bind_to_parent(int(argv[0]), scratch)
    remove_dead_scratch()
    tempfile.tempdir = scratch.path  # DoFns' temp files (tempfile.mkdtemp) land in here
    try:
        if dask_address is not None:
            _serve_dask(dask_address, scratch.path)
        else:
            from apache_beam.runners.worker import sdk_worker_main  # after the binding: seconds

            sdk_worker_main.main(sys.argv)
    finally:
        scratch.remove()
    return 0


def _serve_dask(scheduler_address: str, scratch_dir: str) -> None:
    """Runs one single-threaded Dask worker (no nanny) until the scheduler closes it.

    One thread: decoding is single-threaded per video and the job scales by
    processes, as on the local Beam runner. No nanny: this process is the
    launcher's child, so the binding above ends it with the launcher (a
    nanny would restart a worker the launcher is stopping). Its spill files
    go to the scratch folder. Log records of the job's DoFns go to stderr,
    the terminal of the launcher; Dask's own INFO chatter is dropped.
    """
    import asyncio
    import logging

    from distributed import Worker

    from beam_jobs.worker_logs import LOG_FORMAT

    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    logging.getLogger("distributed").setLevel(logging.WARNING)

    async def serve() -> None:
        async with Worker(
            scheduler_address,
            nthreads=1,
            local_directory=scratch_dir,
            name=f"{_host()}-{os.getpid()}",
        ) as worker:
            await worker.finished()

    asyncio.run(serve())


# ----------------------------------------------------------------------------- launcher side


def _children_linux(parent_pid: int) -> List[int]:
    """Pids of this project's workers whose parent is ``parent_pid``, from /proc."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as handle:
                stat = handle.read()
            # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
            fields = stat[stat.rindex(b")") + 2 :].split()
            if fields[0] == b"Z" or int(fields[1]) != parent_pid:
                continue
            with open(f"/proc/{name}/cmdline", "rb") as handle:
                if MODULE.encode() in handle.read():
                    found.append(int(name))
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
    return sorted(found)


def running_workers(parent_pid: Optional[int] = None) -> List[int]:
    """Live worker processes started by ``parent_pid`` (default: this process).

    Linux only (read from /proc); elsewhere [] (the workers' watchdog ends
    them within :data:`WATCHDOG_SECONDS` of the launcher's exit).
    """
    if not os.path.isdir("/proc"):
        return []
    return _children_linux(os.getpid() if parent_pid is None else parent_pid)


def stop_workers(timeout: float = 5.0) -> int:
    """Sends SIGTERM to this process's workers, waits up to ``timeout`` s, then SIGKILL.

    Returns how many workers were running. Used by the launcher on Ctrl-C and
    SIGTERM, before it removes the folder they write into.
    """
    pids = running_workers()
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and running_workers():
        time.sleep(0.05)
    for pid in running_workers():
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    return len(pids)


if __name__ == "__main__":
    sys.exit(main())

"""One run per workdir: an advisory lock held for the whole run.

Two processes training into one WORKDIR would interleave their checkpoints,
history rows and config.yaml. :func:`hold` takes the operating system's
advisory lock (``fcntl.flock``, exclusive, non-blocking) on
``WORKDIR/.tfcmvp.lock`` and keeps it until the run ends; a second run finds
it taken and stops at once with :class:`WorkdirBusyError`, whose one-line
message names the workdir and the holder (pid, host, start time, command).

Why ``flock`` and no pid file: the kernel drops the lock when the holder's
last file descriptor closes, so a run killed with ``kill -9`` (or a crashed
machine, for a local disk) leaves no stale lock behind; the pid, host and
start time written into the file are only for the message. A clean exit
deletes the file, so a finished or refused run leaves the workdir as it was.

Limits: the lock is advisory (only tfcmvp runs look at it); on network file
systems it is as good as their locking (Linux's NFS client maps ``flock``
onto NFS byte-range locks; where the file system refuses locks, a warning
says the workdir is unprotected). ``fcntl`` exists on POSIX systems only: on
Windows the run goes on unlocked with a warning saying so.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import json
import logging
import os
import pathlib
import socket
import sys
from typing import Iterator, Optional

from tfcmvp.errors import RunError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

logger = logging.getLogger(__name__)

LOCK_NAME = ".tfcmvp.lock"
# errno values of a file system that does not do flock (e.g. some FUSE / old NFS mounts).
_NO_LOCKS = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL)


class WorkdirBusyError(RunError, RuntimeError):
    """Another process holds the workdir's lock; nothing was read or written.

    Attributes:
      workdir: the workdir.
      holder: what the holder wrote into the lock file ({} if unreadable).
    """

    def __init__(self, workdir: pathlib.Path, holder: dict):
        self.workdir = workdir
        self.holder = holder
        super().__init__(
            f"{workdir} is in use by another run ({describe_holder(holder)}): "
            f"wait for it to end, or choose another workdir"
        )


def describe_holder(holder: dict) -> str:
    """``pid 123 on h, started 2025-01-02 10:11:12+00:00, running tfcmvp pretrain ...``."""
    if not holder.get("pid"):
        return "a process that has not written its details yet"
    text = f"pid {holder['pid']} on {holder.get('host', '?')}"
    if holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
        text += " (this process)"
    if holder.get("started"):
        text += f", started {holder['started']}"
    if holder.get("command"):
        text += f", running {holder['command']}"
    return text


def lock_path(workdir) -> pathlib.Path:
    """The lock file of `workdir`."""
    return pathlib.Path(workdir) / LOCK_NAME


def _holder_record() -> dict:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": datetime.datetime.now().astimezone().isoformat(sep=" ", timespec="seconds"),
        "command": " ".join([os.path.basename(sys.argv[0] or "python"), *sys.argv[1:]]),
    }


@contextlib.contextmanager
def hold(workdir, enabled: bool = True) -> Iterator[Optional[pathlib.Path]]:
    """Holds the lock of `workdir` (created if missing) for the block.

    Args:
      workdir: the run folder.
      enabled: False does nothing (e.g. the non-chief workers of a
        multi-worker run, which share the chief's workdir by design).

    Yields:
      the lock file, or None when not locked (disabled, no ``fcntl``, or a
      file system without locks; the last two with a warning).

    Raises:
      WorkdirBusyError: another process holds it.
    """
    if not enabled:
        yield None
        return
    workdir = pathlib.Path(workdir)
    if fcntl is None:
        logger.warning(
            "no fcntl on this platform (%s): %s is not locked, so nothing keeps a "
            "second run out of it while this one runs",
            sys.platform,
            workdir,
        )
        yield None
        return
    workdir.mkdir(parents=True, exist_ok=True)
    path = lock_path(workdir)
    fd = _acquire(path, workdir)
    if fd is None:
        yield None
        return
    try:
        os.ftruncate(fd, 0)
        os.write(fd, (json.dumps(_holder_record()) + "\n").encode("utf-8"))
        yield path
    finally:
        # Unlink while still holding the lock, then close (which releases it): a
        # process waiting on this inode then sees that the path is gone and retries.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.close(fd)


def _acquire(path: pathlib.Path, workdir: pathlib.Path) -> Optional[int]:
    """An open descriptor of `path` holding its exclusive flock (None: no locks here)."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_fd(fd)
            os.close(fd)
            raise WorkdirBusyError(workdir, holder) from None
        except OSError as error:
            os.close(fd)
            if error.errno in _NO_LOCKS:
                logger.warning(
                    "the file system of %s does not support locks (%s): it is not "
                    "locked, so nothing keeps a second run out of it",
                    workdir,
                    error,
                )
                return None
            raise
        # The holder before us unlinks the file before releasing it: if we locked
        # a file that is no longer at `path`, start again with the current one.
        try:
            current = os.stat(path)
        except FileNotFoundError:
            os.close(fd)
            continue
        opened = os.fstat(fd)
        if (current.st_dev, current.st_ino) == (opened.st_dev, opened.st_ino):
            return fd
        os.close(fd)


def _read_fd(fd: int) -> dict:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return json.loads(os.read(fd, 65536).decode("utf-8"))
    except (OSError, ValueError):
        return {}

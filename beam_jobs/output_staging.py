"""Staging folders of the extraction job's output, and the file-system steps under them.

A staging folder is named ``_incomplete-<UTC time>-<pid>@<host>`` (:func:`staging_name`),
so that a later run can tell from the name alone whether the run that wrote it is still
alive (:func:`_owner`). Also here: deleting a folder on any file system, and the
shell command that does it by hand. The one-step swap of two folders (Linux
``renameat2(RENAME_EXCHANGE)``) is :func:`tfcmvp.outputs.exchange`; what may be
replaced and when is :mod:`beam_jobs.output_folder`.
"""

from __future__ import annotations

import datetime
import os
import re
import shlex
import shutil
import socket
from typing import Optional, Tuple

from beam_jobs import fileio

STAGING_PREFIX = "_incomplete-"
NEW_OUTPUT_NAME = "output"  # in a beside staging folder: the finished output before the swap
PREVIOUS_NAME = "previous"  # in a beside staging folder: the old output during a two-rename swap
_STAGING_NAME = re.compile(r"_incomplete-(?P<stamp>\d{8}T\d{6})-(?P<pid>\d+)(?:@(?P<host>.+))?$")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname()) or "localhost"


def staging_name() -> str:
    """``_incomplete-<UTC time>-<pid>@<host>``: enough for a later run to tell if it is stale."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S")
    return f"{STAGING_PREFIX}{stamp}-{os.getpid()}@{_host()}"


def _pid_running(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    except (OverflowError, OSError):
        return False
    return True


def remove_command(path: str) -> str:
    """A shell command that deletes the folder ``path``."""
    if fileio.is_local(path):
        return f"rm -r {shlex.quote(path)}"
    if path.startswith("gs://"):
        return f"gcloud storage rm -r {shlex.quote(path.rstrip('/') + '/')}"
    return f"delete {path} with your storage's tool"


def _owner(path: str) -> Tuple[str, Optional[int], Optional[str]]:
    """("stale" | "running" | "unknown", pid, host) of a staging folder, from its name."""
    name = path.rstrip("/\\").replace("\\", "/").split("/")[-1]
    match = _STAGING_NAME.search(name)
    if match is None:
        return "unknown", None, None
    pid, host = int(match.group("pid")), match.group("host")
    if host is not None and host != _host():
        return "unknown", pid, host
    # No host: a folder named before hosts were recorded, by a run on this machine.
    return ("running" if _pid_running(pid) else "stale"), pid, host or _host()


def delete_tree(path: str) -> None:
    """Deletes a folder and everything under it, on any file system."""
    if fileio.is_local(path):
        shutil.rmtree(path, ignore_errors=True)
        return
    fileio.delete(fileio.list_files(fileio.join(path, "**")))
    try:
        fileio.delete([path])  # file systems with real folders (HDFS); object stores have none
    except IOError:
        pass

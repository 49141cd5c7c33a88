"""The extraction job's output folder: what it may replace, where it stages, how it commits.

Rules (``--output_dir OUT``):

* OUT may be missing or empty. Otherwise it must hold a previous output of
  this job and nothing else: a ``manifest.json`` written by the job, the
  shards it lists, ``labels.txt`` and ``failed.jsonl``. Such a folder is
  replaced with ``--overwrite``; any other folder is refused, with the reason,
  ``--overwrite`` or not (:func:`previous_output`).
* The pipeline writes into a staging folder named
  ``_incomplete-<UTC time>-<pid>@<host>``. On a local disk it sits *beside*
  OUT (``PARENT/<OUT name>._incomplete-...``); the finished output is
  assembled in it and swapped with OUT in one ``renameat2(RENAME_EXCHANGE)``
  (two renames where that call is missing), so a run killed at any moment
  leaves the previous output whole. On object stores (``gs://``...), which
  have no folder rename, and when OUT is a mount point, the staging folder is
  inside OUT and the files are replaced one by one: the old ``manifest.json``
  is deleted first and the new one written last, so an interrupted
  replacement leaves a folder without a manifest, never a wrong one.
* A staging folder whose process is gone (same host, pid not running) is
  removed by the next run of the same OUT (:func:`clear_stale_staging`);
  one that may belong to a running extraction stops the run with the command
  that removes it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import datetime
import json
import logging
import os
import re
import shlex
import shutil
import socket
import sys
from typing import Callable, List, Optional, Tuple

from beam_jobs import fileio
from tfcmvp import manifest as manifest_lib
from tfcmvp.errors import JobError

LOG = logging.getLogger("beam_jobs.extract")

STAGING_PREFIX = "_incomplete-"
NEW_OUTPUT_NAME = "output"  # in a beside staging folder: the finished output before the swap
PREVIOUS_NAME = "previous"  # in a beside staging folder: the old output during a two-rename swap
_STAGING_NAME = re.compile(r"_incomplete-(?P<stamp>\d{8}T\d{6})-(?P<pid>\d+)(?:@(?P<host>.+))?$")
_OWN_FILES = (manifest_lib.MANIFEST_NAME, manifest_lib.LABELS_NAME, manifest_lib.FAILED_NAME)
_RENAME_EXCHANGE = 2  # <linux/fs.h>
_AT_FDCWD = -100


class OutputExistsError(JobError, RuntimeError):
    """``--output_dir`` holds something this run may not replace; the message says what and why."""


@dataclasses.dataclass(frozen=True)
class OutputPlan:
    """Where one run writes and what it replaces.

    Attributes:
      output_dir: the output folder (a local one with symbolic links resolved).
      staging_dir: the pipeline's scratch folder (see the module docstring).
      atomic: True when the finished output is swapped in with a folder rename
        (local disk); False when files are replaced one by one inside
        ``output_dir`` (object stores, mount points).
      previous: files of the previous output to replace ([] for a new folder).
    """

    output_dir: str
    staging_dir: str
    atomic: bool
    previous: Tuple[str, ...]

    @property
    def target_dir(self) -> str:
        """Where the finished output is assembled: ``staging/output`` or ``output_dir`` itself."""
        if self.atomic:
            return os.path.join(self.staging_dir, NEW_OUTPUT_NAME)
        return self.output_dir


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


# ----------------------------------------------------------------------------- staging leftovers


def _split_local(output_dir: str) -> Tuple[str, str]:
    parent, name = os.path.split(os.path.abspath(output_dir))
    return parent, name


def _leftovers(output_dir: str) -> List[str]:
    """Staging folders of ``output_dir``: beside it (local) and inside it (any file system)."""
    found = []
    if fileio.is_local(output_dir):
        parent, name = _split_local(output_dir)
        if os.path.isdir(parent):
            found += [
                os.path.join(parent, entry)
                for entry in sorted(os.listdir(parent))
                if entry.startswith(f"{name}.{STAGING_PREFIX}")
            ]
        if os.path.isdir(output_dir):
            found += [
                os.path.join(output_dir, entry)
                for entry in sorted(os.listdir(output_dir))
                if entry.startswith(STAGING_PREFIX)
            ]
        return found
    inside = set()
    for path in fileio.list_files(fileio.join(output_dir, f"{STAGING_PREFIX}*", "**")):
        inside.add(_relative(path, output_dir).split("/")[0])
    return [fileio.join(output_dir, name) for name in sorted(inside)]


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


def clear_stale_staging(output_dir: str) -> List[str]:
    """Removes staging folders of ``output_dir`` left by extractions that are no longer running.

    A beside folder holding ``previous`` (a kill between the two renames of a
    swap without ``RENAME_EXCHANGE``) is first moved back to ``output_dir``
    if that is missing. Raises :class:`OutputExistsError` with the command
    that removes it for a folder whose extraction is running, or may be (on
    another host, or a name this job does not write). Returns the folders removed.
    """
    removed = []
    for path in _leftovers(output_dir):
        state, pid, host = _owner(path)
        if state != "stale":
            who = (
                f"an extraction that is still running (pid {pid})"
                if state == "running"
                else f"an extraction on host {host} (pid {pid})"
                if host
                else "an extraction"
            )
            raise OutputExistsError(
                f"{path} is the unfinished output of {who} into {output_dir}; wait for it to "
                f"end, or if no extraction is writing there, remove it: {remove_command(path)}"
            )
        previous = os.path.join(path, PREVIOUS_NAME)
        if fileio.is_local(path) and os.path.isdir(previous) and not os.path.lexists(output_dir):
            os.rename(previous, output_dir)
            LOG.warning(
                "restored the previous output %s from %s (a run was killed while swapping it)",
                output_dir,
                path,
            )
        delete_tree(path)
        LOG.info("removed %s, left by an extraction that was interrupted (pid %s)", path, pid)
        removed.append(path)
    return removed


# ----------------------------------------------------------------------------- what is in OUT


def _relative(path: str, base: str) -> str:
    return path[len(base) :].lstrip("/\\").replace("\\", "/")


def _contents(output_dir: str) -> List[str]:
    """Everything in ``output_dir`` but staging folders, "/"-relative; folders end in "/"."""
    if fileio.is_local(output_dir):
        if not os.path.isdir(output_dir):
            return []
        found = []
        for root, dirs, files in os.walk(output_dir):
            rel_root = _relative(root, output_dir)
            if not rel_root:
                dirs[:] = [d for d in dirs if not d.startswith(STAGING_PREFIX)]
            found += [f"{rel_root}/{d}/".lstrip("/") for d in dirs]
            found += [f"{rel_root}/{f}".lstrip("/") for f in files]
        return sorted(found)
    return sorted(
        rel
        for rel in (
            _relative(p, output_dir) for p in fileio.list_files(fileio.join(output_dir, "**"))
        )
        if not rel.split("/")[0].startswith(STAGING_PREFIX)
    )


def _read_previous_manifest(output_dir: str) -> Tuple[Optional[dict], str]:
    """(manifest, "") of a previous extraction output, or (None, why it is not one)."""
    path = fileio.join(output_dir, manifest_lib.MANIFEST_NAME)
    try:
        manifest = json.loads(fileio.read_text(path))
    except (OSError, ValueError) as error:
        return None, f"its {manifest_lib.MANIFEST_NAME} cannot be read as JSON ({error})"
    splits = manifest.get("splits") if isinstance(manifest, dict) else None
    options = manifest.get("options") if isinstance(manifest, dict) else None
    if not (
        isinstance(splits, dict)
        and isinstance(options, dict)
        and "videos_dir" in options
        and all(
            isinstance(s, dict) and isinstance(s.get("shards", []), list) for s in splits.values()
        )
    ):
        return None, f"its {manifest_lib.MANIFEST_NAME} was not written by beam_jobs.extract"
    return manifest, ""


def _shown(names: List[str], limit: int = 3) -> str:
    return ", ".join(names[:limit]) + (", ..." if len(names) > limit else "")


# Recorded options that say nothing about what the output holds.
_NOT_SETTINGS = frozenset({"output_dir", "overwrite"})


def settings_difference(recorded: dict, options: Optional[dict]) -> str:
    """What a previous output's recorded options and this run's differ in, for a message:
    "its settings differ: reencode none -> 'mpeg4'", or "its settings are this run's"
    (empty when this run's options are not known)."""
    if options is None:
        return ""
    keys = sorted((set(recorded) | set(options)) - _NOT_SETTINGS)
    changed = [
        f"{key} {recorded.get(key)!r} -> {options.get(key)!r}"
        for key in keys
        if recorded.get(key) != options.get(key)
    ]
    if not changed:
        return "; its settings are this run's"
    return "; its settings differ: " + ", ".join(changed)


def previous_output(output_dir: str, overwrite: bool, options: Optional[dict] = None) -> List[str]:
    """The files of a previous extraction output in ``output_dir``, to be replaced.

    Returns [] when the folder is missing or empty. Raises
    :class:`OutputExistsError`, naming the files and the reason, when it holds
    anything without ``--overwrite`` (for a previous output, with how its
    recorded options differ from ``options``, this run's, when given), and
    with ``--overwrite`` when it holds anything but one previous output of
    this job (no ``manifest.json``, a manifest of something else, or files the
    manifest does not list).
    """
    if (
        fileio.is_local(output_dir)
        and os.path.lexists(output_dir)
        and not os.path.isdir(output_dir)
    ):
        raise OutputExistsError(f"--output_dir {output_dir} is a file, not a folder")
    contents = _contents(output_dir)
    if not contents:
        return []
    manifest, why_not = (None, f"it has no {manifest_lib.MANIFEST_NAME}")
    if manifest_lib.MANIFEST_NAME in contents:
        manifest, why_not = _read_previous_manifest(output_dir)
    others = contents
    if manifest is not None:
        ours = set(_OWN_FILES) | {
            name for split in manifest["splits"].values() for name in split.get("shards", [])
        }
        others = [name for name in contents if name not in ours]
        if others:
            why_not = (
                f"it holds {len(others)} file(s) its {manifest_lib.MANIFEST_NAME} does "
                f"not list: {_shown(others)}"
            )
    listing = f"{len(contents)} entries: {_shown(contents)}"
    if others:
        raise OutputExistsError(
            f"{output_dir} is not empty ({listing}) and is not the output of a previous "
            f"extraction: {why_not}. --overwrite replaces only such an output, so nothing was "
            f"touched; choose another --output_dir, or move those files away"
        )
    if not overwrite:
        raise OutputExistsError(
            f"{output_dir} is not empty ({listing}): it holds the output of a previous "
            f"extraction{settings_difference(manifest['options'], options)}; refusing to mix "
            f"two runs' shards. Pass --overwrite to replace it, or choose another --output_dir"
        )
    return [fileio.join(output_dir, name) for name in contents]


# ----------------------------------------------------------------------------- plan and commit


def plan(
    output_dir: str,
    overwrite: bool,
    options: Optional[dict] = None,
    find_previous: Optional[Callable[[str, bool], List[str]]] = None,
) -> OutputPlan:
    """Clears stale staging folders, checks what ``output_dir`` holds, creates the staging
    folder (beside ``output_dir`` when it can be swapped in, else inside it). ``options``:
    this run's options as the manifest records them, named in a refusal.
    ``find_previous(output_dir, overwrite)``: another job's :func:`previous_output`
    (the embedding job's outputs have their own manifest); default this job's."""
    if fileio.is_local(output_dir):
        output_dir = os.path.realpath(output_dir)  # a symlinked OUT: swap its target's content
    clear_stale_staging(output_dir)
    if find_previous is None:
        previous = tuple(previous_output(output_dir, overwrite, options))
    else:
        previous = tuple(find_previous(output_dir, overwrite))
    name = staging_name()
    if fileio.is_local(output_dir) and not os.path.ismount(output_dir):
        parent, base = _split_local(output_dir)
        staging = os.path.join(parent, f"{base}.{name}")
        try:
            os.makedirs(staging)
            return OutputPlan(output_dir, staging, True, previous)
        except PermissionError:
            LOG.warning(
                "cannot write beside %s (in %s): replacing its files in place, not atomically",
                output_dir,
                parent,
            )
    staging = fileio.join(output_dir, name)
    fileio.mkdirs(staging)
    return OutputPlan(output_dir, staging, False, previous)


def recheck(
    output_plan: OutputPlan,
    overwrite: bool,
    find_previous: Optional[Callable[[str, bool], List[str]]] = None,
) -> None:
    """Raises :class:`OutputExistsError` if ``output_dir`` gained files the plan did not see
    (written there while the pipeline ran): those are not ours to replace.
    ``find_previous``: as in :func:`plan`."""
    now = (find_previous or previous_output)(output_plan.output_dir, overwrite)
    added = sorted(set(now) - set(output_plan.previous))
    if added:
        raise OutputExistsError(
            f"{output_plan.output_dir} changed while the job ran ({_shown(added)} appeared); "
            f"nothing was replaced"
        )


def _exchange(first: str, second: str) -> bool:
    """Swaps two paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False if unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    if (
        renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE)
        == 0
    ):
        return True
    error = ctypes.get_errno()
    if error in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: file system without exchange
        return False
    raise OSError(error, os.strerror(error), second)


def swap_into_place(output_plan: OutputPlan) -> None:
    """Puts the finished output (``target_dir``) at ``output_dir``; the old one, if any, ends up
    in the staging folder, which the caller deletes."""
    new, out = output_plan.target_dir, output_plan.output_dir
    if not os.path.lexists(out):
        os.rename(new, out)
    elif not _exchange(new, out):
        # Two steps: a kill between them leaves `previous`, which the next run moves back.
        os.rename(out, os.path.join(output_plan.staging_dir, PREVIOUS_NAME))
        os.rename(new, out)


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

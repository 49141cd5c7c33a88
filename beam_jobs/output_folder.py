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

import contextlib
import dataclasses
import json
import logging
import os
from typing import Callable, Iterable, List, Optional, Sequence, Tuple

from beam_jobs import fileio
from beam_jobs.output_listing import OutputExistsError, relative, replaceable_files, shown

# _host and the folder names stay reachable here: callers and tests name them so.
from beam_jobs.output_staging import (  # noqa: F401
    NEW_OUTPUT_NAME,
    PREVIOUS_NAME,
    STAGING_PREFIX,
    _host,
    _owner,
    delete_tree,
    remove_command,
    staging_name,
)
from tfcmvp import manifest as manifest_lib
from tfcmvp.outputs import exchange as _exchange  # tests replace it here

LOG = logging.getLogger("beam_jobs.extract")

_OWN_FILES = (manifest_lib.MANIFEST_NAME, manifest_lib.LABELS_NAME, manifest_lib.FAILED_NAME)


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
        inside.add(relative(path, output_dir).split("/")[0])
    return [fileio.join(output_dir, name) for name in sorted(inside)]


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
    return replaceable_files(
        output_dir,
        overwrite,
        what="extraction",
        read_manifest=_read_previous_manifest,
        listed=lambda manifest: (
            set(_OWN_FILES)
            | {name for split in manifest["splits"].values() for name in split.get("shards", [])}
        ),
        refusal_detail=lambda manifest: (
            f"{settings_difference(manifest['options'], options)}; refusing to mix two runs' shards"
        ),
    )


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
            f"{output_plan.output_dir} changed while the job ran ({shown(added)} appeared); "
            f"nothing was replaced"
        )


def commit(
    output_plan: OutputPlan,
    moved: Iterable[str],
    written: Sequence[Tuple[str, str, str]],
    guard=None,
    on_commit: Optional[Callable[[], None]] = None,
) -> None:
    """Puts a verified output in place of ``output_dir``.

    ``moved``: files of the staging folder moved into the output; ``written``:
    (name, text, MIME type) of the files written after them, the manifest last.
    Local output: assembled in the staging folder and swapped with
    ``output_dir`` in one rename. Object stores: the previous output's
    manifest is deleted first, then its other files, the new files moved in,
    and the manifest written last. Signals are held off (``guard``, an
    :class:`beam_jobs.interruption.SignalGuard`) while the output changes;
    ``on_commit`` is called once the new output is in place.
    """
    staging_dir, target = output_plan.staging_dir, output_plan.target_dir
    held = guard.deferred() if guard is not None else contextlib.nullcontext()
    with held:
        if not output_plan.atomic:
            delete_previous(output_plan, written[-1][0])
        fileio.mkdirs(target)
        fileio.rename((fileio.join(staging_dir, name), fileio.join(target, name)) for name in moved)
        for name, text, mime_type in written:
            fileio.write_text(fileio.join(target, name), text, mime_type=mime_type)
        if output_plan.atomic:
            swap_into_place(output_plan)
        if on_commit is not None:
            on_commit()


def delete_previous(output_plan: OutputPlan, manifest_name: str) -> None:
    """Deletes the previous output a plan replaces file by file (``atomic`` False): its
    manifest ``manifest_name`` first, so that from then on the folder is not a finished
    output, then its other files."""
    old_manifest = fileio.join(output_plan.target_dir, manifest_name)
    previous = list(output_plan.previous)
    fileio.delete([p for p in previous if p == old_manifest])
    fileio.delete([p for p in previous if p != old_manifest and fileio.exists(p)])


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


def remove_unfinished(staging_dir: str, output_dir: str, committed: bool) -> str:
    """Deletes the staging folder of a run that was interrupted; returns the line that says
    what became of the output (``committed``: the new output was already in place)."""
    delete_tree(staging_dir)
    if committed:
        return f"the new output was already in place in {output_dir}"
    return f"removed the unfinished output {staging_dir}; {output_dir} was left as it was"

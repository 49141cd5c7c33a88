"""What an output folder holds, and whether a previous output in it may be replaced.

Both jobs (:mod:`beam_jobs.output_folder` for the extraction,
:mod:`beam_jobs.embed_output` for the embedding) list ``--output_dir``
without staging folders (:func:`folder_contents`) and follow one rule
(:func:`replaceable_files`): OUT may be missing or empty; ``--overwrite``
replaces one previous output of the same job and nothing else; anything else
is refused, with the reason.
"""

from __future__ import annotations

import os
from typing import Callable, Iterable, List, Optional, Tuple

from beam_jobs import fileio
from beam_jobs.output_staging import STAGING_PREFIX
from tfcmvp import manifest as manifest_lib
from tfcmvp.errors import JobError


class OutputExistsError(JobError, RuntimeError):
    """``--output_dir`` holds something this run may not replace; the message says what and why."""


def relative(path: str, base: str) -> str:
    return path[len(base) :].lstrip("/\\").replace("\\", "/")


def folder_contents(output_dir: str) -> List[str]:
    """Everything in ``output_dir`` but staging folders, "/"-relative; folders end in "/"."""
    if fileio.is_local(output_dir):
        if not os.path.isdir(output_dir):
            return []
        found = []
        for root, dirs, files in os.walk(output_dir):
            rel_root = relative(root, output_dir)
            if not rel_root:
                dirs[:] = [d for d in dirs if not d.startswith(STAGING_PREFIX)]
            found += [f"{rel_root}/{d}/".lstrip("/") for d in dirs]
            found += [f"{rel_root}/{f}".lstrip("/") for f in files]
        return sorted(found)
    return sorted(
        rel
        for rel in (
            relative(p, output_dir) for p in fileio.list_files(fileio.join(output_dir, "**"))
        )
        if not rel.split("/")[0].startswith(STAGING_PREFIX)
    )


def shown(names: List[str], limit: int = 3) -> str:
    return ", ".join(names[:limit]) + (", ..." if len(names) > limit else "")


def replaceable_files(
    output_dir: str,
    overwrite: bool,
    *,
    what: str,
    read_manifest: Callable[[str], Tuple[Optional[dict], str]],
    listed: Callable[[dict], Iterable[str]],
    refusal_detail: Callable[[dict], str] = lambda manifest: "",
) -> List[str]:
    """The files of a previous output of a job in ``output_dir``, to be replaced (the rules
    of both jobs' :func:`previous_output`).

    ``what`` names the job's output in messages ("extraction"); ``read_manifest(output_dir)``
    gives (manifest, "") of a previous output of the job or (None, why it is not one);
    ``listed(manifest)`` the names that output accounts for (its manifest, shards, ...);
    ``refusal_detail(manifest)`` is added to the refusal without ``--overwrite``.
    """
    if (
        fileio.is_local(output_dir)
        and os.path.lexists(output_dir)
        and not os.path.isdir(output_dir)
    ):
        raise OutputExistsError(f"--output_dir {output_dir} is a file, not a folder")
    contents = folder_contents(output_dir)
    if not contents:
        return []
    manifest, why_not = (None, f"it has no {manifest_lib.MANIFEST_NAME}")
    if manifest_lib.MANIFEST_NAME in contents:
        manifest, why_not = read_manifest(output_dir)
    others = contents
    if manifest is not None:
        ours = set(listed(manifest))
        others = [name for name in contents if name not in ours]
        if others:
            why_not = (
                f"it holds {len(others)} file(s) its {manifest_lib.MANIFEST_NAME} does "
                f"not list: {shown(others)}"
            )
    listing = f"{len(contents)} entries: {shown(contents)}"
    if others:
        raise OutputExistsError(
            f"{output_dir} is not empty ({listing}) and is not the output of a previous "
            f"{what}: {why_not}. --overwrite replaces only such an output, so nothing was "
            f"touched; choose another --output_dir, or move those files away"
        )
    if not overwrite:
        raise OutputExistsError(
            f"{output_dir} is not empty ({listing}): it holds the output of a previous "
            f"{what}{refusal_detail(manifest)}. Pass --overwrite to replace it, or choose "
            f"another --output_dir"
        )
    return [fileio.join(output_dir, name) for name in contents]

"""The output folder of ``python -m beam_jobs.embed``: its files, what it may replace, reading it.

``--output_dir OUT`` holds, for ``N`` shards (``SSSSS`` = 00000 ... N-1):

``embeddings-SSSSS-of-NNNNN.npy``
    float32 ``[n_s, D]`` (``numpy.load``), the rows of shard s.
``clips-SSSSS-of-NNNNN.csv``
    its table, one line per row, the columns of ``tfcmvp embed``'s
    ``clips.csv`` (:data:`tfcmvp.embedding.writer.TABLE_COLUMNS`); ``row``
    counts over the whole output, so the shards read in shard order and
    concatenated are ``tfcmvp embed``'s ``embeddings.npy`` and ``clips.csv``.
``failed.jsonl``
    the dead-letter output: one JSON object per video that could not be
    embedded (``path``, ``stage``, ``error``, ``message``), in listing order.
``manifest.json``
    ``job`` ("beam_jobs.embed"), ``status`` and ``problems``, ``counts``
    (``listed == embedded + failed``, ``clips``, ``frames``), ``shards``
    (per shard: file names, ``videos``, ``rows``, ``first_row``), the
    export, clip layout, storage settings, options and versions.

Shards hold consecutive videos of the listing (shard ``s`` of ``N`` the
videos ``i`` with ``i * N // listed == s``), so shard order is listing
order, the order of ``tfcmvp embed``. Every shard of the ``-of-N`` set is
written, an empty one (``[0, D]``, header only) when all its videos failed.

Replacement follows the extraction job's rules (:mod:`beam_jobs.output_folder`,
whose staging folders, stale-staging clean-up and swap this module uses):
OUT may be missing or empty; ``--overwrite`` replaces a previous output of
this job (its ``manifest.json``, the shards it lists, ``failed.jsonl``, and
nothing else); anything else is refused with the reason.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from typing import List, Optional, Tuple

import numpy as np

from beam_jobs import fileio, output_folder, output_listing
from tfcmvp import manifest as manifest_lib
from tfcmvp.errors import InvalidDataError

LOG = logging.getLogger("beam_jobs.embed")

JOB = "beam_jobs.embed"  # manifest.json "job": what an output of this job says it is
MANIFEST_NAME = manifest_lib.MANIFEST_NAME
FAILED_NAME = manifest_lib.FAILED_NAME
_OWN_FILES = (MANIFEST_NAME, FAILED_NAME)

OutputExistsError = output_folder.OutputExistsError


def shard_names(shard: int, num_shards: int) -> Tuple[str, str]:
    """``("embeddings-00003-of-00010.npy", "clips-00003-of-00010.csv")``."""
    suffix = f"{shard:05d}-of-{num_shards:05d}"
    return f"embeddings-{suffix}.npy", f"clips-{suffix}.csv"


def _read_previous_manifest(output_dir: str) -> Tuple[Optional[dict], str]:
    """(manifest, "") of a previous output of this job, or (None, why it is not one)."""
    try:
        manifest = json.loads(fileio.read_text(fileio.join(output_dir, MANIFEST_NAME)))
    except (OSError, ValueError) as error:
        return None, f"its {MANIFEST_NAME} cannot be read as JSON ({error})"
    shards = manifest.get("shards") if isinstance(manifest, dict) else None
    if not (
        isinstance(manifest, dict)
        and manifest.get("job") == JOB
        and isinstance(shards, list)
        and all(
            isinstance(s, dict)
            and isinstance(s.get("embeddings"), str)
            and isinstance(s.get("table"), str)
            for s in shards
        )
    ):
        return None, f"its {MANIFEST_NAME} was not written by {JOB}"
    return manifest, ""


def previous_output(output_dir: str, overwrite: bool) -> List[str]:
    """The files of a previous output of this job in ``output_dir``, to be replaced.

    Returns [] when the folder is missing or empty. Raises
    :class:`OutputExistsError`, naming the files and the reason, when it
    holds anything without ``--overwrite``, and with ``--overwrite`` when it
    holds anything but one previous output of this job
    (:func:`beam_jobs.output_listing.replaceable_files`).
    """
    return output_listing.replaceable_files(
        output_dir,
        overwrite,
        what=f"{JOB} run",
        read_manifest=_read_previous_manifest,
        listed=lambda manifest: (
            set(_OWN_FILES)
            | {
                name
                for shard in manifest["shards"]
                for name in (shard["embeddings"], shard["table"])
            }
        ),
    )


def plan(output_dir: str, overwrite: bool) -> output_folder.OutputPlan:
    """Clears stale staging folders, checks what ``output_dir`` holds, creates the staging
    folder: :func:`beam_jobs.output_folder.plan` with this job's :func:`previous_output`."""
    return output_folder.plan(output_dir, overwrite, find_previous=previous_output)


def recheck(output_plan: output_folder.OutputPlan, overwrite: bool) -> None:
    """Raises :class:`OutputExistsError` if ``output_dir`` gained files while the job ran."""
    output_folder.recheck(output_plan, overwrite, find_previous=previous_output)


def read_manifest(output_dir: str) -> dict:
    """The ``manifest.json`` of an output of this job; ValueError says why a folder is not one."""
    manifest, why_not = _read_previous_manifest(output_dir)
    if manifest is None:
        raise InvalidDataError(f"{output_dir}: {why_not}")
    return manifest


def read_shards(output_dir: str) -> Tuple[np.ndarray, List[dict]]:
    """All shards of an output at once: float32 ``[N, D]`` and its N table rows (CSV strings).

    Shards are read in the manifest's order, which is shard order; the result
    is what ``tfcmvp embed`` writes as ``embeddings.npy`` and ``clips.csv``
    for the same inputs. Local or remote (``gs://``) folders.
    """
    manifest = read_manifest(output_dir)
    matrices, rows = [], []
    for shard in manifest["shards"]:
        with io.BytesIO(fileio.read_bytes(fileio.join(output_dir, shard["embeddings"]))) as f:
            matrices.append(np.load(f, allow_pickle=False))
        text = fileio.read_text(fileio.join(output_dir, shard["table"]))
        rows += list(csv.DictReader(io.StringIO(text, newline="")))
    dim = int(manifest["export"].get("embedding_dim") or 0)
    matrix = np.concatenate(matrices) if matrices else np.zeros([0, dim], np.float32)
    return matrix, rows

"""The end of an embedding run: verify the staged outputs, then commit them.

:func:`verify_outputs` reads the shard list and the failure lines the
pipeline left in the staging folder, checks them (every shard of the set
written, rows numbered without gaps, ``listed == embedded + failed``) and
builds the manifest with ``status`` "ok" or "failed" (``tfcmvp embed``'s
rule, :func:`tfcmvp.embedding.run.failure_problems`); it changes nothing.
:func:`commit_outputs` puts a verified output in place as the extraction
job's: swapped in with one rename on a local disk, replaced one by one
(``manifest.json`` deleted first and written last) on object stores,
signals held off meanwhile. :func:`finalize` is the two in order.

``tfcmvp.embedding.run`` and ``tfcmvp.export`` import TensorFlow: they are
imported in the functions that use them (see :mod:`beam_jobs.embed_stages`).
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Callable, Dict, List, Optional, Sequence

from beam_jobs import embed_output, fileio, interruption, output_folder
from beam_jobs.embed_options import EmbedConfig
from beam_jobs.embed_pipeline import SHARD_LIST_NAME
from beam_jobs.embed_stages import ExportClips, Task
from tfcmvp import manifest as manifest_lib

STATUS_OK, STATUS_FAILED = "ok", "failed"  # manifest.json "status", as tfcmvp embed's


@dataclasses.dataclass
class VerifiedOutput:
    """A staged output whose counts add up, ready to be committed."""

    manifest: Dict  # what manifest.json will say
    failure_lines: str  # failed.jsonl, in listing order
    shards: List[Dict]  # the shard list, in shard order


def _read_jsonl(path: str) -> List[Dict]:
    return [json.loads(line) for line in fileio.read_text(path).splitlines() if line.strip()]


def job_summary(config: EmbedConfig, clips: ExportClips) -> Dict:
    """The manifest's description of the export, clips and storage (``embed.json``'s fields,
    :func:`tfcmvp.embedding.run.run_settings`) and the job's options."""
    from tfcmvp.embedding.run import run_settings

    return {
        **run_settings(
            config.model_dir,
            clips.info,
            clips.options,
            clips.layout,
            clips.storage,
            config.min_frames,
            config.max_failed_fraction,
        ),
        "options": {
            "inputs": list(config.inputs),
            "model": config.model_dir,
            "output_dir": config.output_dir,
            "num_shards": config.num_shards,
            "batch_size": config.batch_size,
            "overwrite": config.overwrite,
        },
    }


def _check_counts(shards: List[Dict], failures: List[Dict], tasks: Sequence[Task]) -> tuple:
    """(embedded videos, clips) after checking shards and failures against the listing."""
    num_shards = tasks[0].num_shards
    listed = len(tasks)
    if [shard["shard"] for shard in shards] != list(range(num_shards)):
        raise manifest_lib.ManifestError(
            f"shards {[s['shard'] for s in shards][:5]}... written, expected {num_shards}"
        )
    first = 0
    for shard in shards:
        if shard["first_row"] != first:
            raise manifest_lib.ManifestError(
                f"shard {shard['shard']} starts at row {shard['first_row']}, expected {first}"
            )
        first += shard["rows"]
    embedded = sum(shard["videos"] for shard in shards)
    failed_indices = [record["index"] for record in failures]
    if embedded + len(failures) != listed or len(set(failed_indices)) != len(failures):
        raise manifest_lib.ManifestError(
            f"{listed} videos listed but {embedded} embedded + {len(failures)} failure lines"
        )
    return embedded, first


def verify_outputs(
    config: EmbedConfig,
    clips: ExportClips,
    tasks: Sequence[Task],
    staging_dir: str,
    started: float,
) -> VerifiedOutput:
    """Checks the finished pipeline's staged outputs and builds their manifest.

    Changes nothing. Raises ``ManifestError`` when the shards, rows or
    failure lines do not add up to the listing.
    """
    from tfcmvp.embedding.run import failure_problems
    from tfcmvp.export import contract

    failures = sorted(
        _read_jsonl(fileio.join(staging_dir, embed_output.FAILED_NAME)),
        key=lambda record: record["index"],
    )
    shards = sorted(
        _read_jsonl(fileio.join(staging_dir, SHARD_LIST_NAME)), key=lambda shard: shard["shard"]
    )
    listed = len(tasks)
    embedded, rows = _check_counts(shards, failures, tasks)
    problems = failure_problems(listed, embedded, len(failures), config.max_failed_fraction)
    manifest = {
        "job": embed_output.JOB,
        "status": STATUS_FAILED if problems else STATUS_OK,
        "problems": problems,
        "output_dir": config.output_dir,
        "counts": {
            "listed": listed,
            "embedded": embedded,
            "failed": len(failures),
            "clips": rows,
            "frames": sum(shard["frames"] for shard in shards),
        },
        "shards": [
            {key: shard[key] for key in ("embeddings", "table", "videos", "rows", "first_row")}
            for shard in shards
        ],
        "seconds": round(time.perf_counter() - started, 3),
        **job_summary(config, clips),
        **contract.versions(),
        "created": contract.utc_now(),
    }
    failure_lines = "".join(
        json.dumps({k: v for k, v in record.items() if k != "index"}, sort_keys=True) + "\n"
        for record in failures
    )
    return VerifiedOutput(manifest, failure_lines, shards)


def commit_outputs(
    verified: VerifiedOutput,
    output_plan: output_folder.OutputPlan,
    overwrite: bool,
    guard: Optional[interruption.SignalGuard] = None,
    on_commit: Optional[Callable[[], None]] = None,
) -> None:
    """Puts a verified output in place of ``--output_dir`` (see the module docstring)."""
    # Only now, with a complete and consistent new set, replace the old one.
    embed_output.recheck(output_plan, overwrite)
    output_folder.commit(
        output_plan,
        (shard[key] for shard in verified.shards for key in ("embeddings", "table")),
        [
            (embed_output.FAILED_NAME, verified.failure_lines, "application/jsonl"),
            (
                embed_output.MANIFEST_NAME,
                json.dumps(verified.manifest, indent=2) + "\n",
                "application/json",
            ),
        ],
        guard,
        on_commit,
    )


def finalize(
    config: EmbedConfig,
    clips: ExportClips,
    tasks: Sequence[Task],
    output_plan: output_folder.OutputPlan,
    started: float,
    guard: Optional[interruption.SignalGuard] = None,
    on_commit: Optional[Callable[[], None]] = None,
) -> Dict:
    """Verifies the finished pipeline's outputs, then commits them; returns the manifest.

    Nothing is touched if the counts do not add up (:func:`verify_outputs`).
    """
    verified = verify_outputs(config, clips, tasks, output_plan.staging_dir, started)
    commit_outputs(verified, output_plan, config.overwrite, guard, on_commit)
    return verified.manifest

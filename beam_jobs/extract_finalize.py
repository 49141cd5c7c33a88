"""The end of an extraction run: verify the staged outputs, then commit them.

:func:`verify_outputs` reads the three small files the pipeline's sink left
in the staging folder (shard list, failures, per-split tallies), checks that
they add up (failure lines = failures counted, records in shards = records
counted, every shard of each ``-of-N`` set present) and builds the manifest
with ``status`` "ok" or "failed" and the ``problems`` behind a failure
(:func:`failure_problems`); it changes nothing. :func:`commit_outputs` puts a
verified output in place. :func:`finalize` is the two in order.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Callable, Dict, List, Optional

from beam_jobs import fileio, interruption, output_folder
from beam_jobs.extract_options import ExtractConfig
from beam_jobs.extract_pipeline import SHARD_LIST_NAME, SUMMARY_NAME, shard_name, split_names
from tfcmvp import manifest as manifest_lib
from tfcmvp import splits as splits_lib
from tfcmvp.schema import SCHEMA_VERSION

STATUS_OK, STATUS_FAILED = "ok", "failed"  # manifest.json "status"


@dataclasses.dataclass
class VerifiedOutput:
    """A staged output whose counts add up, ready to be committed."""

    manifest: Dict  # what manifest.json will say
    failures: List[Dict]  # the failed.jsonl lines, sorted by (split, video_id)
    shard_names: Dict[str, List[str]]  # {split: shard file names}, sorted


def _read_jsonl(path: str) -> List[Dict]:
    return [json.loads(line) for line in fileio.read_text(path).splitlines() if line.strip()]


def failure_problems(manifest: Dict, max_failed_fraction: float) -> List[str]:
    """Why a finished run counts as failed: no video written at all, or a split where more
    than ``max_failed_fraction`` of the listed videos failed. [] for a good run."""
    splits = manifest["splits"]
    listed = sum(split["listed"] for split in splits.values())
    if listed and not sum(split["written"] for split in splits.values()):
        return [f"no video was written: all {listed} listed videos failed"]
    problems = []
    for name, split in splits.items():
        if split["listed"] and split["failed"] / split["listed"] > max_failed_fraction:
            problems.append(
                f"split {name!r}: {split['failed']} of {split['listed']} listed videos failed "
                f"({split['failed'] / split['listed']:.0%} > --max_failed_fraction "
                f"{max_failed_fraction:g})"
            )
    return problems


def _check_tallies(tallies: Dict, failures: List[Dict], shards: List[Dict]) -> None:
    # Cross-check the tallies against what was really written: failure lines, shard
    # files, and the records joined into them.
    for name, tally in tallies.items():
        lines = sum(1 for rec in failures if rec["split"] == name)
        if lines != tally["failed"]:
            raise manifest_lib.ManifestError(
                f"split {name!r}: {tally['failed']} failures counted but {lines} lines in "
                f"{manifest_lib.FAILED_NAME}"
            )
        in_shards = sum(shard["records"] for shard in shards if shard["split"] == name)
        if in_shards != tally["written"]:
            raise manifest_lib.ManifestError(
                f"split {name!r}: {tally['written']} records counted but {in_shards} joined "
                f"into shards"
            )


def _check_shards(config: ExtractConfig, staging_dir: str, listed: Dict, shard_names) -> None:
    for name, names in shard_names.items():
        count = config.shards_for(listed[name])
        expected = [shard_name(name, i, count, config.compression) for i in range(count)]
        suffix = manifest_lib.SHARD_SUFFIXES[config.compression]
        if (
            names != expected
            or len(fileio.list_files(fileio.join(staging_dir, f"{name}-*{suffix}"))) != count
        ):
            raise manifest_lib.ManifestError(
                f"split {name!r}: shards {names[:3]}... written, expected {count} shards"
            )


def verify_outputs(
    config: ExtractConfig, split_set: splits_lib.SplitSet, staging_dir: str, options: Dict
) -> VerifiedOutput:
    """Checks the finished pipeline's staged outputs and builds their manifest.

    Changes nothing. Raises ``ManifestError`` naming the split when the
    failures, records or shards do not add up to the tallies.
    """
    tallies = {row.pop("split"): row for row in _read_jsonl(fileio.join(staging_dir, SUMMARY_NAME))}
    failures = sorted(
        _read_jsonl(fileio.join(staging_dir, manifest_lib.FAILED_NAME)),
        key=lambda rec: (rec["split"], rec["video_id"]),
    )
    shards = _read_jsonl(fileio.join(staging_dir, SHARD_LIST_NAME))
    listed = split_set.listed()
    _check_tallies(tallies, failures, shards)
    shard_names = {
        name: sorted(shard["name"] for shard in shards if shard["split"] == name)
        for name in split_names(split_set)
    }
    _check_shards(config, staging_dir, listed, shard_names)
    manifest = manifest_lib.build_manifest(
        split_set.listed(),
        tallies,
        options=options,
        layout=split_set.layout,
        num_classes=len(split_set.class_names),
        shards=shard_names,
        schema_version=SCHEMA_VERSION,
    )
    problems = failure_problems(manifest, config.max_failed_fraction)
    manifest["status"] = STATUS_FAILED if problems else STATUS_OK
    manifest["problems"] = problems
    return VerifiedOutput(manifest, failures, shard_names)


def commit_outputs(
    verified: VerifiedOutput,
    class_names: List[str],
    output_plan: output_folder.OutputPlan,
    overwrite: bool,
    guard: Optional[interruption.SignalGuard] = None,
    on_commit: Optional[Callable[[], None]] = None,
) -> None:
    """Puts a verified output in place of ``--output_dir``.

    Local output: the shards, ``labels.txt``, ``failed.jsonl`` and
    ``manifest.json`` are assembled in the staging folder and swapped with
    ``--output_dir`` in one rename. Object stores: the previous run's
    ``manifest.json`` is deleted first, then its other files, the new files
    moved in, and ``manifest.json`` written last. Signals are held off
    (``guard``) while the output changes; ``on_commit`` is called once the new
    output is in place.
    """
    # Only now, with a complete and consistent new set, replace the old one.
    output_folder.recheck(output_plan, overwrite)
    output_folder.commit(
        output_plan,
        (name for names in verified.shard_names.values() for name in names),
        [
            (manifest_lib.LABELS_NAME, "".join(f"{name}\n" for name in class_names), "text/plain"),
            (
                manifest_lib.FAILED_NAME,
                "".join(json.dumps(rec, sort_keys=True) + "\n" for rec in verified.failures),
                "application/jsonl",
            ),
            (manifest_lib.MANIFEST_NAME, manifest_lib.dumps(verified.manifest), "application/json"),
        ],
        guard,
        on_commit,
    )


def finalize(
    config: ExtractConfig,
    split_set: splits_lib.SplitSet,
    output_plan: output_folder.OutputPlan,
    options: Dict,
    guard: Optional[interruption.SignalGuard] = None,
    on_commit: Optional[Callable[[], None]] = None,
) -> Dict:
    """Verifies the finished pipeline's outputs, then commits them; returns the manifest.

    Nothing is touched if the counts do not add up (:func:`verify_outputs`);
    see :func:`commit_outputs` for how the output is put in place.
    """
    verified = verify_outputs(config, split_set, output_plan.staging_dir, options)
    commit_outputs(verified, split_set.class_names, output_plan, config.overwrite, guard, on_commit)
    return verified.manifest

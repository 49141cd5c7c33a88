"""The summary of one extraction run: ``manifest.json`` beside the TFRecords.

Per split it holds ``listed`` (videos named by the split files), ``written``
(records in the shards), ``failed`` (lines of ``failed.jsonl``), ``frames``
and ``iframes`` (totals over the written videos), ``short`` (written but with
fewer frames than one training sample spans) and ``all_intra`` (written, but
every frame is an I-frame, so every motion vector is zero). ``listed ==
written + failed`` always holds; :func:`build_manifest` refuses otherwise.

Counts travel through the pipeline as *tallies*: small dicts with the keys of
``COUNT_KEYS`` plus the id lists of ``ID_KEYS``, merged by :func:`merge_tallies`.
"""

import datetime
import importlib.metadata
import json
import pathlib
from typing import Any, Dict, Mapping, Optional, Sequence

Tally = Dict[str, Any]  # counts (int) and id lists (list of str)

COUNT_KEYS = ("written", "failed", "frames", "iframes", "short", "all_intra", "bytes")
ID_KEYS = ("short_ids", "all_intra_ids")  # which videos were counted short / all-intra
VERSIONED_PACKAGES = ("tfcmvp", "tensorflow", "apache-beam", "av", "numpy")

MANIFEST_NAME = "manifest.json"
LABELS_NAME = "labels.txt"
FAILED_NAME = "failed.jsonl"
# Shard names written by beam_jobs.extract: gzip (the default) or, with
# --compression none, plain TFRecord files.
SHARD_SUFFIXES = {"gzip": ".tfrecord.gz", "none": ".tfrecord"}
SHARD_GLOB = "{split}-*.tfrecord.gz"  # the default (gzip) shards of a split


class ManifestError(ValueError):
    """The counts of a run do not add up."""


def empty_tally() -> Tally:
    tally = {key: 0 for key in COUNT_KEYS}
    tally.update({key: [] for key in ID_KEYS})
    return tally


def written_tally(video_id: str, frame_types: str, num_bytes: int, min_frames: int) -> Tally:
    """The tally of one written video.

    Args:
      video_id: the record's video id.
      frame_types: one letter per frame ("I", "P", "B").
      num_bytes: bytes the record takes in its shard (framed, gzip-compressed).
      min_frames: frames one training sample spans; fewer counts as short.
    """
    tally = empty_tally()
    num_frames = len(frame_types)
    tally.update(written=1, frames=num_frames, iframes=frame_types.count("I"), bytes=num_bytes)
    if num_frames < min_frames:
        tally["short"] = 1
        tally["short_ids"] = [video_id]
    if is_all_intra(frame_types):
        tally["all_intra"] = 1
        tally["all_intra_ids"] = [video_id]
    return tally


def failed_tally() -> Tally:
    tally = empty_tally()
    tally["failed"] = 1
    return tally


def is_all_intra(frame_types: str) -> bool:
    """True when every frame is an I-frame (no motion vectors at all)."""
    return bool(frame_types) and set(frame_types) == {"I"}


def merge_tallies(tallies) -> Tally:
    """Sums the counts and concatenates (then sorts) the id lists."""
    total = empty_tally()
    for tally in tallies:
        for key in COUNT_KEYS:
            total[key] += int(tally.get(key, 0))
        for key in ID_KEYS:
            total[key].extend(tally.get(key, ()))
    for key in ID_KEYS:
        total[key].sort()
    return total


def package_versions(names: Sequence[str] = VERSIONED_PACKAGES) -> Dict[str, Optional[str]]:
    """Installed version of each distribution (None if not installed)."""
    versions = {}
    for name in names:
        if name == "tfcmvp":
            # The code that ran, even from a source tree that was never pip-installed.
            from tfcmvp import __version__
            versions[name] = __version__
            continue
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def build_manifest(listed: Mapping[str, int], tallies: Mapping[str, Mapping], *,
                   options: Mapping, layout: str, num_classes: int,
                   shards: Mapping[str, Sequence[str]], schema_version: int,
                   created: Optional[str] = None) -> Dict:
    """The manifest dict of a finished run.

    Args:
      listed: videos per split according to the split files.
      tallies: merged tally per split, from the pipeline's outputs (a split
        with no output at all may be missing).
      options: the job options to record.
      layout: split-file layout ("ucf101", "hmdb51", "csv").
      num_classes: lines of ``labels.txt``.
      shards: shard file names per split.
      schema_version: ``tfcmvp.schema.SCHEMA_VERSION``.
      created: ISO time; now (UTC) if None.

    Raises ``ManifestError`` naming the split when ``listed != written + failed``
    or when a split has output but was never listed.
    """
    unknown = sorted(set(tallies) - set(listed))
    if unknown:
        raise ManifestError(f"pipeline produced output for split(s) {unknown} that no split "
                            f"file lists")
    splits = {}
    for name, count in listed.items():
        tally = merge_tallies([tallies.get(name, {})])
        if count != tally["written"] + tally["failed"]:
            raise ManifestError(
                f"split {name!r}: {count} videos listed but {tally['written']} written + "
                f"{tally['failed']} failed; the run lost videos")
        splits[name] = {"listed": int(count), **tally, "shards": sorted(shards.get(name, []))}
    return {
        "schema_version": int(schema_version),
        "created": created or datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"),
        "layout": layout,
        "num_classes": int(num_classes),
        "splits": splits,
        "options": dict(options),
        "versions": package_versions(),
    }


def dumps(manifest: Mapping) -> str:
    return json.dumps(manifest, indent=2, sort_keys=True) + "\n"


def find_shards(data_dir, split: str, description: Optional[str] = None) -> list[str]:
    """Sorted ``{split}-*.tfrecord.gz`` (or ``{split}-*.tfrecord``) files of an extraction
    output folder.

    Raises FileNotFoundError naming the folder when it does not exist, and
    naming the folder and the pattern when it holds no such shards ("no
    <description, default: split> shards ..."; with a hint when the folder has
    no manifest.json either).
    """
    data_dir = pathlib.Path(data_dir)
    pattern = SHARD_GLOB.format(split=split)
    if not data_dir.is_dir():
        raise FileNotFoundError(
            f"no {description or split} shards {pattern}: data folder {data_dir} does not exist")
    files = sorted(str(p) for suffix in SHARD_SUFFIXES.values()
                   for p in data_dir.glob(f"{split}-*{suffix}") if p.is_file())
    if not files:
        hint = ("" if (data_dir / MANIFEST_NAME).is_file()
                else f"; there is no {MANIFEST_NAME} either: is this the output "
                     f"folder of a finished `python -m beam_jobs.extract` run?")
        raise FileNotFoundError(
            f"no {description or split} shards {pattern} in {data_dir}{hint}")
    return files


def read_manifest(data_dir) -> Optional[dict]:
    """``DATA/manifest.json`` of an extraction run as a dict, or None when the folder has none.

    Raises ValueError naming the file when it is not valid JSON.
    """
    path = pathlib.Path(data_dir) / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON: {error}") from error

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

from tfcmvp import __version__
from tfcmvp.errors import DataError, DataNotFoundError, InvalidDataError

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


class ManifestError(DataError, ValueError):
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
            versions[name] = __version__
            continue
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def build_manifest(
    listed: Mapping[str, int],
    tallies: Mapping[str, Mapping],
    *,
    options: Mapping,
    layout: str,
    num_classes: int,
    shards: Mapping[str, Sequence[str]],
    schema_version: int,
    created: Optional[str] = None,
) -> Dict:
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
        raise ManifestError(
            f"pipeline produced output for split(s) {unknown} that no split file lists"
        )
    splits = {}
    for name, count in listed.items():
        tally = merge_tallies([tallies.get(name, {})])
        if count != tally["written"] + tally["failed"]:
            raise ManifestError(
                f"split {name!r}: {count} videos listed but {tally['written']} written + "
                f"{tally['failed']} failed; the run lost videos"
            )
        splits[name] = {"listed": int(count), **tally, "shards": sorted(shards.get(name, []))}
    return {
        "schema_version": int(schema_version),
        "created": created
        or datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "layout": layout,
        "num_classes": int(num_classes),
        "splits": splits,
        "options": dict(options),
        "versions": package_versions(),
    }


def dumps(manifest: Mapping) -> str:
    return json.dumps(manifest, indent=2, sort_keys=True) + "\n"


class DataFolderError(DataError, ValueError):
    """A data folder disagrees with its ``manifest.json``: shards it does not list, a
    shard list it lacks, or shards whose size or record count differ from it."""


class ShardList(list):
    """Shard paths of one split, verified against the folder's ``manifest.json``.

    A plain list of paths (sorted) that also carries what the manifest says:
    ``data_dir``, ``split`` and ``expected_records`` (the split's ``written``
    count, None when the manifest has none). Readers that count the records
    anyway (:func:`tfcmvp.data.reader.scan_records`) compare with it.
    """

    def __init__(
        self, paths: Sequence[str], *, data_dir: str, split: str, expected_records: Optional[int]
    ):
        super().__init__(paths)
        self.data_dir = data_dir
        self.split = split
        self.expected_records = expected_records


def shard_pattern(split: str) -> str:
    """The glob of a split's shards as users see it (the default gzip suffix)."""
    return SHARD_GLOB.format(split=split)


def shards_on_disk(data_dir, split: str) -> list[str]:
    """Names of the files in `data_dir` that look like shards of `split` (both suffixes)."""
    data_dir = pathlib.Path(data_dir)
    return sorted(
        p.name
        for suffix in SHARD_SUFFIXES.values()
        for p in data_dir.glob(f"{split}-*{suffix}")
        if p.is_file()
    )


def _listed_shards(manifest_path: pathlib.Path, entry: Mapping, split: str) -> list[str]:
    """The split's shard names from its manifest entry, each a plain name of that split."""
    listed = entry.get("shards")
    if not isinstance(listed, list) or not all(isinstance(name, str) for name in listed):
        raise DataFolderError(
            f"{manifest_path}: split {split!r} has no shard list ('shards'), so its shards "
            f"cannot be checked; was it written by `tfcmvp extract`?"
        )
    for name in listed:
        # A name is read from DATA only: no folders, no way out of it.
        if (
            pathlib.PurePath(name).name != name
            or name in (".", "..")
            or not any(
                name.startswith(f"{split}-") and name.endswith(suffix)
                for suffix in SHARD_SUFFIXES.values()
            )
        ):
            raise DataFolderError(
                f"{manifest_path}: split {split!r} lists {name!r}, which is "
                f"not a shard name of that split ({shard_pattern(split)})"
            )
    return sorted(set(listed))


def find_shards(data_dir, split: str, description: Optional[str] = None) -> ShardList:
    """The shards of `split` in an extraction output folder, verified against its manifest.

    Every reader of a data folder (pretraining, finetuning, retrieval, the
    probe) finds its shards here, so none uses a shard the manifest does not
    list or trains on a folder that lost one. Checks, without reading the
    records: ``manifest.json`` is there (the extraction job writes it last: a
    folder without one is an unfinished run); it lists `split` and its shards;
    every listed shard is present; no other ``{split}-*`` shard is (e.g. shards
    of two runs in one folder); the shards hold the bytes the manifest counted
    (when it did). Record counts are checked by the readers that count them
    (``ShardList.expected_records``); ``tfcmvp verify DATA`` checks every byte.

    Returns a :class:`ShardList` of the listed shards' paths, sorted.

    Raises:
      FileNotFoundError: the folder, its manifest, the split or a listed shard
        is missing (naming the folder or the shards; "no <description, default:
        split> shards ..." when there are none).
      DataFolderError: extra shards, a manifest without a shard list, or a
        byte count that differs.
      ValueError: ``manifest.json`` is not valid JSON.
    """
    data_dir = pathlib.Path(data_dir)
    what = description or split
    pattern = shard_pattern(split)
    if not data_dir.is_dir():
        raise DataNotFoundError(
            f"no {what} shards {pattern}: data folder {data_dir} does not exist"
        )
    on_disk = shards_on_disk(data_dir, split)
    manifest_path, entry = _split_entry(data_dir, split, what, on_disk)
    listed = _listed_shards(manifest_path, entry, split)
    if not listed:
        raise DataNotFoundError(
            f"no {what} shards {pattern} in {data_dir}: its {MANIFEST_NAME} "
            f"lists none for split {split!r}"
        )
    _check_listed(data_dir, split, what, listed, on_disk)
    paths = [data_dir / name for name in listed]
    _check_bytes(data_dir, split, paths, entry)
    written = entry.get("written")
    return ShardList(
        [str(path) for path in paths],
        data_dir=str(data_dir),
        split=split,
        expected_records=written
        if isinstance(written, int) and not isinstance(written, bool)
        else None,
    )


def _split_entry(data_dir: pathlib.Path, split: str, what: str, on_disk: list) -> tuple:
    """(manifest path, the manifest's entry of ``split``); the errors of :func:`find_shards`."""
    pattern = shard_pattern(split)
    manifest_path = data_dir / MANIFEST_NAME
    if not manifest_path.is_file():
        if not on_disk:
            raise DataNotFoundError(
                f"no {what} shards {pattern} in {data_dir}; there is no {MANIFEST_NAME} either: "
                f"is this the output folder of a finished `tfcmvp extract` run?"
            )
        raise DataNotFoundError(
            f"{data_dir} has {len(on_disk)} {split} shard(s) but no {MANIFEST_NAME}: the "
            f"extraction job writes it last, so this is an unfinished or interrupted run (or "
            f"shards copied without it); rerun `tfcmvp extract` into an empty folder"
        )
    manifest = read_manifest(data_dir)
    splits = manifest.get("splits") if isinstance(manifest, dict) else None
    if not isinstance(splits, dict):
        raise DataFolderError(
            f"{manifest_path}: no 'splits' mapping; was it written by `tfcmvp extract`?"
        )
    entry = splits.get(split)
    if not isinstance(entry, dict):
        raise DataNotFoundError(
            f"no {what} shards {pattern} in {data_dir}: its {MANIFEST_NAME} "
            f"lists the split(s) {sorted(splits)} only"
        )
    return manifest_path, entry


def _check_listed(data_dir: pathlib.Path, split: str, what: str, listed, on_disk) -> None:
    """Every listed shard present, no other: the errors of :func:`find_shards`."""
    pattern = shard_pattern(split)
    missing = [name for name in listed if not (data_dir / name).is_file()]
    if missing and len(missing) == len(listed):
        raise DataNotFoundError(
            f"no {what} shards {pattern} in {data_dir}: all {len(listed)} that {MANIFEST_NAME} "
            f"lists are missing ({_names(missing)}); restore them or rerun `tfcmvp extract`"
        )
    if missing:
        raise DataNotFoundError(
            f"{data_dir}: {len(missing)} of the {len(listed)} {split} shards that "
            f"{MANIFEST_NAME} lists are missing: {_names(missing)}; restore them or rerun "
            f"`tfcmvp extract`"
        )
    extra = sorted(set(on_disk) - set(listed))
    if extra:
        raise DataFolderError(
            f"{data_dir}: {len(extra)} {split} shard(s) that its {MANIFEST_NAME} does not list: "
            f"{_names(extra)} (shards of another run?); give every extraction run its own "
            f"folder, or move them out"
        )


def _check_bytes(data_dir: pathlib.Path, split: str, paths: list, entry: dict) -> None:
    """The shards' size against the manifest's byte count, when it has one."""
    expected_bytes = entry.get("bytes")
    if isinstance(expected_bytes, int) and not isinstance(expected_bytes, bool):
        # The job counts each record's framed (and compressed) bytes, and a shard is
        # their concatenation: a truncated or replaced shard changes the sum.
        total = sum(path.stat().st_size for path in paths)
        if total != expected_bytes:
            raise DataFolderError(
                f"{data_dir}: its {len(paths)} {split} shard(s) hold {total} bytes, "
                f"{MANIFEST_NAME} says {expected_bytes}: a shard was truncated, replaced or "
                f"changed after extraction; `tfcmvp verify {data_dir}` names it"
            )


def check_record_count(files, count: int, *, skipped: bool = False) -> None:
    """Compares the records read from `files` with the manifest's count of the split.

    Does nothing unless `files` is a :class:`ShardList` whose manifest counted
    the split. With `skipped` (damaged records were skipped on purpose) fewer
    records are expected and only more is an error.

    Raises DataFolderError naming the folder, the split and both counts.
    """
    expected = getattr(files, "expected_records", None)
    if expected is None or count == expected or (skipped and count < expected):
        return
    raise DataFolderError(
        f"{files.data_dir}: {count} {files.split} records read from {len(files)} shard(s), "
        f"its {MANIFEST_NAME} says {expected} were written: the shards changed after "
        f"extraction; `tfcmvp verify {files.data_dir}` checks them"
    )


def _names(names: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


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
        raise InvalidDataError(f"{path}: not valid JSON: {error}") from error

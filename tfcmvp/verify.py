"""Checks of whole data folders (``tfcmvp verify DATA``) and of the shards in them.

A shard (:mod:`tfcmvp.shard_check`) is checked the way TensorFlow reads it, without TensorFlow: gzip
members are inflated one after another (``*.tfrecord.gz``; plain
``*.tfrecord`` files as they are) and the stream is parsed as TFRecord
framing::

    uint64 length | uint32 masked_crc32c(length) | data | uint32 masked_crc32c(data)

Any break (a gzip member that does not inflate or fails its CRC-32, a bad
length or data CRC, a file that ends inside a member or a record) makes the
shard bad; the report names the byte offset where the damaged piece starts:
the record in a plain file, the gzip member in a gzip file (the extraction job
compresses each record as its own member, so that is the record too), plus
the record's index.

:func:`verify_data` checks a folder against its ``manifest.json`` (see
:func:`tfcmvp.manifest.find_shards`) and every shard in it, in parallel (a
process pool over shards), and counts the records of each split.
:func:`corrupt_shards_named` turns TensorFlow's ``DataLossError`` (which names
no file) into an error naming the damaged shards.

No TensorFlow import here: ``tfcmvp verify`` starts fast, and its worker
processes stay small.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pathlib
from typing import List, Optional, Sequence

from tfcmvp import manifest as manifest_lib
from tfcmvp import schema
from tfcmvp.errors import DataNotFoundError
from tfcmvp.shard_check import (
    CorruptShardError,
    ShardCheck,
    check_shard,
    check_shards,
    is_gzip_shard,
)

# The shard checks live in tfcmvp.shard_check; importable from here too.
__all__ = [
    "CorruptShardError",
    "DataReport",
    "ShardCheck",
    "SplitReport",
    "check_shard",
    "check_shards",
    "corrupt_shard_message",
    "corrupt_shards_named",
    "is_data_loss",
    "is_gzip_shard",
    "name_corrupt_shards",
    "shard_paths_of",
    "verify_data",
    "write_manifest",
]

# ---------------------------------------------------------------------------
# Data folders
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class SplitReport:
    """One split of :func:`verify_data`."""

    name: str
    problem: Optional[str]  # the manifest check's error (find_shards), None when it passed
    checks: List[ShardCheck]  # every shard of the split on disk, listed or not
    expected_records: Optional[int]  # the manifest's count of written records

    @property
    def records(self) -> int:
        return sum(check.records for check in self.checks)

    @property
    def bad(self) -> List[ShardCheck]:
        return [check for check in self.checks if not check.ok]

    @property
    def count_problem(self) -> Optional[str]:
        if self.problem or self.bad or self.expected_records is None:
            return None  # the count of a folder with other problems says nothing more
        if self.records != self.expected_records:
            return (
                f"{self.records} records in the shards, {manifest_lib.MANIFEST_NAME} "
                f"says {self.expected_records} were written"
            )
        return None

    @property
    def ok(self) -> bool:
        return not (self.problem or self.bad or self.count_problem)


@dataclasses.dataclass
class DataReport:
    """What :func:`verify_data` found; ``ok`` when every check passed."""

    data_dir: str
    problem: Optional[str]  # a folder-level problem (no manifest, unreadable manifest)
    splits: List[SplitReport]

    @property
    def ok(self) -> bool:
        return self.problem is None and all(split.ok for split in self.splits)

    @property
    def bad_shards(self) -> List[ShardCheck]:
        return [check for split in self.splits for check in split.bad]

    def format(self) -> str:
        """The report as printed by ``tfcmvp verify``: a line per shard, per split, a summary."""
        lines = [f"{self.data_dir}: {self.problem}"] if self.problem else []
        for split in self.splits:
            for check in split.checks:
                name = os.path.basename(check.path)
                if check.ok:
                    lines.append(f"ok   {name}: {check.records} records")
                else:
                    lines.append(
                        f"BAD  {name}: {check.error} at byte {check.offset} "
                        f"({check.records} intact record(s) before it)"
                    )
            expected = (
                "" if split.expected_records is None else f" of {split.expected_records} written"
            )
            lines.append(
                f"{split.name}: {split.records} records{expected} in {len(split.checks)} shard(s)"
            )
            for problem in (split.problem, split.count_problem):
                if problem:
                    lines.append(f"{split.name}: {problem}")
        num_shards = sum(len(split.checks) for split in self.splits)
        if self.ok:
            lines.append(
                f"verified: {num_shards} shard(s) intact, every count as in "
                f"{manifest_lib.MANIFEST_NAME}"
            )
        else:
            if self.problem is not None:
                also = "; the folder has no usable manifest (see above)"
            elif any(split.problem or split.count_problem for split in self.splits):
                also = "; the folder disagrees with its manifest (see above)"
            else:
                also = ""
            lines.append(f"NOT OK: {len(self.bad_shards)} of {num_shards} shard(s) damaged{also}")
        return "\n".join(lines)


def _splits_on_disk(data_dir: pathlib.Path) -> list:
    names = set()
    for suffix in manifest_lib.SHARD_SUFFIXES.values():
        for path in data_dir.glob(f"*-*{suffix}"):
            if path.is_file():
                names.add(path.name.split("-", 1)[0])
    return sorted(names)


def verify_data(data_dir, workers: Optional[int] = None) -> DataReport:
    """Checks a data folder against its manifest and every shard's bytes.

    Per split of the manifest (or, without one, per split found on disk):
    the manifest check of :func:`tfcmvp.manifest.find_shards`, then
    :func:`check_shard` of every shard of the split on disk (listed or not),
    all shards of the folder in one process pool, and the record count
    against the manifest's.

    Raises FileNotFoundError when `data_dir` is not a folder.
    """
    data_dir = pathlib.Path(data_dir)
    if not data_dir.is_dir():
        raise DataNotFoundError(f"data folder {data_dir} does not exist")
    problem, manifest = None, None
    try:
        manifest = manifest_lib.read_manifest(data_dir)
    except ValueError as error:
        problem = str(error)
    if manifest is None and problem is None:
        problem = (
            f"no {manifest_lib.MANIFEST_NAME}: not the output of a finished "
            f"`tfcmvp extract` run (the job writes it last)"
        )
    listed_splits = (
        sorted(manifest.get("splits", {}))
        if isinstance(manifest, dict) and isinstance(manifest.get("splits"), dict)
        else []
    )
    names = sorted(set(listed_splits) | set(_splits_on_disk(data_dir)))
    split_problems, expected, shard_paths = {}, {}, {}
    for name in names:
        split_problems[name] = None
        if manifest is not None:
            try:
                manifest_lib.find_shards(data_dir, name)
            except (OSError, ValueError) as error:
                split_problems[name] = str(error)
            entry = manifest["splits"].get(name) if name in listed_splits else None
            written = entry.get("written") if isinstance(entry, dict) else None
            if isinstance(written, int) and not isinstance(written, bool):
                expected[name] = written
        shard_paths[name] = [
            str(data_dir / shard) for shard in manifest_lib.shards_on_disk(data_dir, name)
        ]
    every = [path for name in names for path in shard_paths[name]]
    results = dict(zip(every, check_shards(every, workers)))
    splits = [
        SplitReport(
            name, split_problems[name], [results[p] for p in shard_paths[name]], expected.get(name)
        )
        for name in names
    ]
    return DataReport(str(data_dir), problem, splits)


# ---------------------------------------------------------------------------
# Readers
# ---------------------------------------------------------------------------


def corrupt_shard_message(bad: Sequence[ShardCheck], *, skip_hint: bool = True) -> str:
    """The error text naming each damaged shard, with what to do about it."""
    folders = sorted({os.path.dirname(check.path) or "." for check in bad})
    lines = [
        f"{len(bad)} damaged shard(s): "
        + "; ".join(f"{check.path}: {check.error} at byte {check.offset}" for check in bad)
    ]
    lines.append(
        f"`tfcmvp verify {folders[0]}` checks every shard; re-extract the data"
        + (", or set data.on_corrupt=skip to train on the intact records" if skip_hint else "")
    )
    return ". ".join(lines)


def is_data_loss(error: BaseException) -> bool:
    """Whether `error` is TensorFlow's DataLossError (without importing TensorFlow)."""
    return any(
        cls.__name__ == "DataLossError" and cls.__module__.startswith("tensorflow")
        for cls in type(error).__mro__
    )


def shard_paths_of(source) -> list:
    """The shard paths a reader reads: `source` is a list of paths or a data folder
    (every shard of every split in it)."""
    if isinstance(source, (str, os.PathLike)):
        folder = pathlib.Path(source)
        if not folder.is_dir():
            return []
        return [
            str(folder / shard)
            for split in _splits_on_disk(folder)
            for shard in manifest_lib.shards_on_disk(folder, split)
        ]
    return [str(path) for path in source]


def name_corrupt_shards(
    source, error: BaseException, *, skip_hint: bool = True, workers: Optional[int] = None
) -> BaseException:
    """The error to raise for a DataLossError met while reading `source` (paths or a folder).

    Checks the shards (a pass over them, only now that one failed) and returns
    a :class:`CorruptShardError` naming each damaged one with its offset; when
    none is damaged (the bytes changed back, or the error came from elsewhere)
    the original error is returned unchanged.
    """
    paths = shard_paths_of(source)
    bad = [check for check in check_shards(paths, workers) if not check.ok] if paths else []
    if not bad:
        return error
    return CorruptShardError(corrupt_shard_message(bad, skip_hint=skip_hint), bad)


@contextlib.contextmanager
def corrupt_shards_named(source, *, skip_hint: bool = True):
    """Re-raises a DataLossError from the block as a :class:`CorruptShardError` naming
    the damaged shard(s) of `source` (a list of paths, or a data folder)."""
    try:
        yield
    except Exception as error:  # noqa: BLE001 (only DataLossError is translated)
        if not is_data_loss(error):
            raise
        translated = name_corrupt_shards(source, error, skip_hint=skip_hint)
        if translated is error:
            raise
        raise translated from error


# ---------------------------------------------------------------------------
# Manifests of hand-made folders
# ---------------------------------------------------------------------------


def write_manifest(
    data_dir,
    *,
    layout: str = "csv",
    num_classes: Optional[int] = None,
    created: Optional[str] = None,
) -> dict:
    """Writes ``DATA/manifest.json`` for shards that were not written by ``tfcmvp extract``
    (tests, synthetic data, shards made by other tools), and returns it.

    Lists every ``{split}-*`` shard in `data_dir` and counts its records,
    after checking each; ``num_classes`` defaults to the lines of
    ``labels.txt`` (0 without one). Only for shards known to be complete: the
    readers then trust exactly these files.

    Raises CorruptShardError when a shard is damaged.
    """
    data_dir = pathlib.Path(data_dir)
    listed, tallies, shards = {}, {}, {}
    for split in _splits_on_disk(data_dir):
        names = manifest_lib.shards_on_disk(data_dir, split)
        checks = check_shards([data_dir / name for name in names], workers=1)
        bad = [check for check in checks if not check.ok]
        if bad:
            raise CorruptShardError(corrupt_shard_message(bad, skip_hint=False), bad)
        tally = manifest_lib.empty_tally()
        tally.update(written=sum(c.records for c in checks), bytes=sum(c.size for c in checks))
        listed[split], tallies[split], shards[split] = tally["written"], tally, names
    if num_classes is None:
        labels = data_dir / manifest_lib.LABELS_NAME
        num_classes = (
            len([line for line in labels.read_text(encoding="utf-8").splitlines() if line.strip()])
            if labels.is_file()
            else 0
        )
    manifest = manifest_lib.build_manifest(
        listed,
        tallies,
        options={"written_by": "tfcmvp.verify.write_manifest"},
        layout=layout,
        num_classes=num_classes,
        shards=shards,
        schema_version=schema.SCHEMA_VERSION,
        created=created,
    )
    path = data_dir / manifest_lib.MANIFEST_NAME
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(manifest_lib.dumps(manifest), encoding="utf-8")
    os.replace(tmp, path)
    return json.loads(path.read_text(encoding="utf-8"))

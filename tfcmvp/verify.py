"""Byte-level checks of TFRecord shards and of whole data folders (``tfcmvp verify DATA``).

A shard is checked the way TensorFlow reads it, without TensorFlow: gzip
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

import concurrent.futures
import contextlib
import dataclasses
import json
import multiprocessing
import os
import pathlib
import struct
import zlib
from typing import List, Optional, Sequence

from tfcmvp import manifest as manifest_lib

HEADER_BYTES = 12  # uint64 length + uint32 CRC of the length
FOOTER_BYTES = 4  # uint32 CRC of the data
# Compressed bytes fed to the inflater at a time: the offset of a gzip error is
# known to this precision inside a member.
GZIP_CHUNK = 1 << 16
PLAIN_CHUNK = 1 << 20


class CorruptShardError(manifest_lib.DataFolderError):
    """Reading a shard failed on damaged bytes; the message names the shard(s) and offsets."""

    def __init__(self, message: str, checks: Sequence["ShardCheck"] = ()):
        super().__init__(message)
        self.checks = list(checks)


@dataclasses.dataclass(frozen=True)
class ShardCheck:
    """The result of :func:`check_shard`.

    Attributes:
      path: the shard.
      size: its size in bytes.
      records: intact records read (all of them when ``ok``; otherwise those
        before the damage, which a reader gets before it fails).
      error: what is wrong, None when the shard is intact.
      offset: byte offset in the file where the damaged record (plain file) or
        gzip member starts; None when intact.
    """

    path: str
    size: int
    records: int
    error: Optional[str] = None
    offset: Optional[int] = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def describe(self) -> str:
        """One line: ``path: N records`` or ``path: <error> at byte X (...)``."""
        if self.ok:
            return f"{self.path}: {self.records} records, {self.size} bytes"
        return (
            f"{self.path}: {self.error} at byte {self.offset} ({self.records} intact "
            f"record(s) before it)"
        )


class _Damage(Exception):
    def __init__(self, offset: int, message: str):
        super().__init__(message)
        self.offset = offset
        self.message = message


def _masked_crc32c(data) -> int:
    # The framing's own CRC, shared with the writer (beam_jobs.tfrecord_files).
    from beam_jobs.tfrecord_files import masked_crc32c

    return masked_crc32c(data)


class _Framing:
    """Incremental parser of TFRecord framing over a byte stream.

    ``feed(data, member)`` takes the next bytes of the (uncompressed) stream
    and, for a gzip file, the file offset of the member they came from. A
    damaged record is blamed on its own file offset in a plain file and on the
    member its first byte came from in a gzip file.
    """

    def __init__(self, plain: bool):
        self.records = 0
        self.plain = plain
        self._buffer = bytearray()
        self._record_start = 0  # stream offset of the record being parsed
        self._member: Optional[int] = None  # gzip member of that record's first byte

    def _damage(self, message: str) -> _Damage:
        where = self._record_start if self.plain else self._member
        return _Damage(where, f"record {self.records}: {message}")

    def feed(self, data: bytes, member: Optional[int] = None) -> None:
        if not self._buffer:
            self._member = member
        self._buffer += data
        buffer, start = self._buffer, 0
        while len(buffer) - start >= HEADER_BYTES:
            (length, length_crc) = struct.unpack_from("<QI", buffer, start)
            if _masked_crc32c(bytes(buffer[start : start + 8])) != length_crc:
                raise self._damage("length CRC mismatch")
            end = start + HEADER_BYTES + length + FOOTER_BYTES
            if len(buffer) < end:
                break
            payload = bytes(buffer[start + HEADER_BYTES : end - FOOTER_BYTES])
            (data_crc,) = struct.unpack_from("<I", buffer, end - FOOTER_BYTES)
            if _masked_crc32c(payload) != data_crc:
                raise self._damage("data CRC mismatch")
            self.records += 1
            self._record_start += end - start
            # A record left incomplete by the previous piece ends in this one, so
            # the next record starts in this piece: in this member.
            self._member = member
            start = end
        del buffer[:start]

    def finish(self) -> None:
        if self._buffer:
            raise self._damage(
                f"the stream ends inside it ({len(self._buffer)} bytes of it present): truncated"
            )


def _check_plain(handle, framing: _Framing) -> None:
    while True:
        chunk = handle.read(PLAIN_CHUNK)
        if not chunk:
            framing.finish()
            return
        framing.feed(chunk)


def _check_gzip(handle, framing: _Framing) -> None:
    pending, position = b"", 0  # compressed bytes not yet inflated, file offset of pending[0]
    inflater, member = None, 0  # the current member's inflater and its file offset
    while True:
        if not pending:
            pending = handle.read(GZIP_CHUNK)
            if not pending:
                if inflater is not None:
                    raise _Damage(
                        member,
                        f"record {framing.records}: the file ends inside the "
                        f"gzip member that starts here: truncated",
                    )
                framing.finish()
                return
        if inflater is None:
            member, inflater = position, zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        piece, pending = pending[:GZIP_CHUNK], pending[GZIP_CHUNK:]
        try:
            data = inflater.decompress(piece)
        except zlib.error as error:
            raise _Damage(
                member,
                f"record {framing.records}: the gzip member starting here does "
                f"not inflate (zlib: {str(error).split(': ')[-1]}; detected in "
                f"bytes {position}-{position + len(piece)})",
            ) from None
        framing.feed(data, member)
        if inflater.eof:  # the member ended inside `piece`; the rest starts the next one
            position += len(piece) - len(inflater.unused_data)
            pending, inflater = inflater.unused_data + pending, None
        else:
            position += len(piece)


def is_gzip_shard(path) -> bool:
    """Whether readers inflate `path`: by suffix, as ``tfcmvp.data.reader`` decides."""
    return str(path).endswith(".gz")


def check_shard(path) -> ShardCheck:
    """Reads one shard completely and checks its framing, CRCs and gzip integrity.

    Never raises for damaged data (it is reported in the result); raises
    OSError when the file cannot be read at all.
    """
    path = str(path)
    size = os.path.getsize(path)
    gzip = is_gzip_shard(path)
    framing = _Framing(plain=not gzip)
    try:
        with open(path, "rb") as handle:
            (_check_gzip if gzip else _check_plain)(handle, framing)
    except _Damage as damage:
        return ShardCheck(path, size, framing.records, damage.message, damage.offset)
    return ShardCheck(path, size, framing.records)


def check_shards(paths: Sequence, workers: Optional[int] = None) -> List[ShardCheck]:
    """:func:`check_shard` of every path, in a pool of `workers` processes (default: the
    CPU count, at most one per shard); results in the order of `paths`.

    The pool starts its processes with "spawn": the caller may have TensorFlow's
    threads running, which a fork would copy in an undefined state.
    """
    paths = [str(p) for p in paths]
    workers = min(len(paths), workers or os.cpu_count() or 1)
    if workers <= 1:
        return [check_shard(path) for path in paths]
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
        return list(pool.map(check_shard, paths))


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
        raise FileNotFoundError(f"data folder {data_dir} does not exist")
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
    from tfcmvp import schema

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

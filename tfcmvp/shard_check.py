"""Byte-level checks of one TFRecord shard, the way TensorFlow reads it, without TensorFlow.

Gzip members are inflated one after another (``*.tfrecord.gz``; plain
``*.tfrecord`` files as they are) and the stream is parsed as TFRecord
framing::

    uint64 length | uint32 masked_crc32c(length) | data | uint32 masked_crc32c(data)

Any break (a gzip member that does not inflate or fails its CRC-32, a bad
length or data CRC, a file that ends inside a member or a record) makes the
shard bad; :class:`ShardCheck` names the byte offset where the damaged piece
starts: the record in a plain file, the gzip member in a gzip file (the
extraction job compresses each record as its own member, so that is the
record too), plus the record's index. The CRC is the writer's own
(:mod:`beam_jobs.tfrecord_files`). Whole data folders: :mod:`tfcmvp.verify`.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import multiprocessing
import os
import struct
import zlib
from typing import List, Optional, Sequence

from beam_jobs.tfrecord_files import masked_crc32c
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
            if masked_crc32c(bytes(buffer[start : start + 8])) != length_crc:
                raise self._damage("length CRC mismatch")
            end = start + HEADER_BYTES + length + FOOTER_BYTES
            if len(buffer) < end:
                break
            payload = bytes(buffer[start + HEADER_BYTES : end - FOOTER_BYTES])
            (data_crc,) = struct.unpack_from("<I", buffer, end - FOOTER_BYTES)
            if masked_crc32c(payload) != data_crc:
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

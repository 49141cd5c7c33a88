"""TFRecord framing, so records can be staged one by one and joined into shards.

A TFRecord file is a plain concatenation of framed records::

    uint64 length (little-endian) | uint32 masked_crc32c(length) | data | uint32 masked_crc32c(data)

so concatenating framed records (or whole uncompressed TFRecord files) gives a
valid file. The extraction job frames each video's record once, stores it on
its own, and later joins the records of a shard in a fixed order while
gzip-compressing them. This is the container only; the record payload is
written by ``tfcmvp.schema.encode_example`` alone.
"""

import gzip
import struct
from typing import BinaryIO, Iterable

import google_crc32c

_MASK_DELTA = 0xA282EAD8


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC-32C of ``data``."""
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def frame_record(data: bytes) -> bytes:
    """One record in TFRecord framing."""
    length = struct.pack("<Q", len(data))
    return b"".join((length, struct.pack("<I", masked_crc32c(length)), data,
                     struct.pack("<I", masked_crc32c(data))))


def write_gzip_shard(handle: BinaryIO, parts: Iterable[bytes], level: int = 6) -> int:
    """Writes framed records as one gzip stream to an open binary ``handle``.

    ``mtime=0`` in the gzip header makes the bytes depend only on the records,
    so a rerun over the same videos writes identical shards. Returns the
    uncompressed size.
    """
    size = 0
    with gzip.GzipFile(filename="", fileobj=handle, mode="wb", compresslevel=level,
                       mtime=0) as out:
        for part in parts:
            out.write(part)
            size += len(part)
    return size

"""TFRecord framing, so records can be staged one by one and joined into shards.

A TFRecord file is a plain concatenation of framed records::

    uint64 length (little-endian) | uint32 masked_crc32c(length) | data | uint32 masked_crc32c(data)

so concatenating framed records (or whole uncompressed TFRecord files) gives a
valid file. Gzip has the same property: a gzip file may hold several members
one after another, and readers (Python's ``gzip``, TensorFlow's
``TFRecordDataset(compression_type="GZIP")``) return the concatenation of
their contents. So the extraction job frames and compresses each video's record
on the worker that decoded it (in parallel, however few shards there are) and
a shard is the plain concatenation of its videos' members in a fixed order.
This is the container only; the record payload is written by
``tfcmvp.schema.encode_example`` alone.
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
    return b"".join(
        (
            length,
            struct.pack("<I", masked_crc32c(length)),
            data,
            struct.pack("<I", masked_crc32c(data)),
        )
    )


def gzip_member(framed: bytes, level: int = 6) -> bytes:
    """One gzip member holding ``framed`` (one or more framed records).

    ``mtime=0`` and no file name in the header make the bytes depend only on
    the records, so a rerun over the same videos writes identical shards.
    """
    return gzip.compress(framed, compresslevel=level, mtime=0)


def write_shard(handle: BinaryIO, members: Iterable[bytes]) -> int:
    """Writes gzip members one after another to ``handle``; returns the bytes written."""
    size = 0
    for member in members:
        handle.write(member)
        size += len(member)
    return size

"""Shards -> serialized records -> parsed records -> decoded frames.

Reading only: which files, in which order, how a record is parsed
(:func:`tfcmvp.schema.parse_example`) and how JPEGs are decoded. What a
training sample is made of lives in ``sampling`` / ``pretrain`` /
``evaluation``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Optional, Sequence, Union

import numpy as np
import tensorflow as tf

from tfcmvp import manifest, schema, verify
from tfcmvp.errors import ConfigError, InvalidDataError

FilePattern = Union[str, Sequence[str]]

log = logging.getLogger(__name__)

# Shards read at once by default: enough to mix videos from several shards,
# few enough that the read buffers stay small.
DEFAULT_CYCLE_LENGTH = 8
# What reading a damaged shard does (config: data.on_corrupt): "fail" stops with an
# error naming the shard and the offset, "skip" reads each damaged shard up to the
# damage and drops the rest of it, and says so.
ON_CORRUPT = ("fail", "skip")


def check_on_corrupt(on_corrupt: str) -> None:
    if on_corrupt not in ON_CORRUPT:
        raise ConfigError(f"on_corrupt must be one of {ON_CORRUPT}, got {on_corrupt!r}")


def resolve_files(file_pattern: FilePattern) -> list:
    """Expands a glob pattern (or a list of patterns / paths) to sorted file names.

    Raises ``ValueError`` naming the pattern when nothing matches, so a typo
    in a config fails at construction instead of yielding an empty dataset.
    A :class:`tfcmvp.manifest.ShardList` (shards verified against their
    manifest) is returned as it is, keeping what the manifest expects.
    """
    if isinstance(file_pattern, manifest.ShardList):
        return file_pattern
    patterns = [file_pattern] if isinstance(file_pattern, (str, bytes)) else list(file_pattern)
    if not patterns:
        raise ValueError("no TFRecord file pattern given (empty list)")
    files = []
    for pattern in patterns:
        pattern = pattern.decode() if isinstance(pattern, bytes) else str(pattern)
        matched = sorted(tf.io.gfile.glob(pattern))
        if not matched:
            raise InvalidDataError(f"no TFRecord files match {pattern!r}")
        files.extend(matched)
    return sorted(set(files))


def compression_of(path):
    """TFRecordDataset's ``compression_type`` of a shard path (string tensor): gzip for
    ``*.gz`` (the extraction job's default), none otherwise (``--compression none``)."""
    return tf.where(tf.strings.regex_full_match(path, r".*\.gz"), "GZIP", "")


def records_dataset(
    files: Sequence[str],
    *,
    shuffle_files: bool = False,
    seed: Optional[int] = None,
    cycle_length: Optional[int] = None,
    num_parallel_calls: int = tf.data.AUTOTUNE,
    deterministic: bool = True,
    on_corrupt: str = "fail",
) -> tf.data.Dataset:
    """Serialized records of TFRecord shards (gzip or plain, by suffix), read interleaved.

    ``cycle_length`` shards (default ``min(len(files), 8)``) are read at once,
    one record from each in turn; with ``shuffle_files`` the shard order is
    reshuffled every epoch (reproducibly when ``seed`` is set).

    ``on_corrupt="skip"``: a damaged shard ends at its damage (TensorFlow's
    reader gives up on a file at its first DataLossError), the other shards
    are read on. Nothing is reported here: :func:`scan_records` names and
    counts what is skipped. With "fail" the DataLossError propagates
    (:func:`tfcmvp.verify.corrupt_shards_named` names the shard).
    """
    check_on_corrupt(on_corrupt)
    files = list(files)
    ds = tf.data.Dataset.from_tensor_slices(files)
    if shuffle_files and len(files) > 1:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    cycle = cycle_length or min(len(files), DEFAULT_CYCLE_LENGTH)

    def read(path):
        records = tf.data.TFRecordDataset(path, compression_type=compression_of(path))
        # Per file, so that one damaged shard ends only itself.
        return records.ignore_errors() if on_corrupt == "skip" else records

    return ds.interleave(
        read,
        cycle_length=cycle,
        block_length=1,
        num_parallel_calls=num_parallel_calls,
        deterministic=deterministic,
    )


def parse_record(serialized) -> dict:
    """:func:`tfcmvp.schema.parse_example` plus a schema-version check naming the video."""
    parsed = schema.parse_example(serialized)
    version = parsed[schema.VERSION]
    message = tf.strings.format(
        "record {} has schema version {}; this tfcmvp reads {}",
        [parsed[schema.VIDEO_ID], version, schema.SCHEMA_VERSION],
    )
    check = tf.debugging.Assert(tf.equal(version, schema.SCHEMA_VERSION), [message])
    with tf.control_dependencies([check]):
        parsed[schema.NUM_FRAMES] = tf.identity(parsed[schema.NUM_FRAMES])
    return parsed


_SUMMARY_KEYS = (schema.VIDEO_ID, schema.NUM_FRAMES, schema.IFRAME_INDICES)


def parse_summary(serialized) -> dict:
    """Cheap partial parse: video id, frame count and I-frame count only.

    Used to filter and count videos without materialising their frames.
    Returns ``{VIDEO_ID: string [], NUM_FRAMES: int64 [], "num_iframes": int64 []}``.
    """
    spec = schema.feature_spec()
    parsed = tf.io.parse_single_example(serialized, {k: spec[k] for k in _SUMMARY_KEYS})
    return {
        schema.VIDEO_ID: parsed[schema.VIDEO_ID],
        schema.NUM_FRAMES: parsed[schema.NUM_FRAMES],
        "num_iframes": parsed[schema.IFRAME_INDICES].dense_shape[0],
    }


@dataclasses.dataclass
class RecordScan:
    """Per-video summary of a set of shards (from :func:`scan_records`)."""

    video_ids: list
    num_frames: np.ndarray  # int64 [V]
    num_iframes: np.ndarray  # int64 [V]
    # Damaged shards read up to their damage (on_corrupt="skip"), and the records
    # lost with them (None when the manifest's count is unknown).
    damaged: list = dataclasses.field(default_factory=list)  # [tfcmvp.verify.ShardCheck]
    skipped_records: Optional[int] = None

    def __len__(self) -> int:
        return len(self.video_ids)

    def skipped(self, min_frames: int) -> dict:
        """Videos a pretraining pipeline needing ``min_frames`` frames skips, by reason."""
        short = self.num_frames < min_frames
        no_iframe = (~short) & (self.num_iframes < 1)
        return {
            f"fewer than {min_frames} frames": [v for v, s in zip(self.video_ids, short) if s],
            "no I-frame": [v for v, s in zip(self.video_ids, no_iframe) if s],
        }


def scan_records(
    files: Sequence[str], num_parallel_calls: int = tf.data.AUTOTUNE, on_corrupt: str = "fail"
) -> RecordScan:
    """One pass over the shards reading only ids and lengths (no JPEG decoding).

    Costs a read + gunzip of every shard: seconds for UCF101-sized data on
    local disk. A pass that fails on damaged bytes checks the shards to name
    the damaged ones (:func:`tfcmvp.verify.check_shards`); then "fail" raises
    :class:`tfcmvp.verify.CorruptShardError` naming each with its offset, and
    "skip" logs them and scans again reading each up to its damage (as
    ``records_dataset(on_corrupt="skip")`` does), recording what was lost.
    For a :class:`tfcmvp.manifest.ShardList` the records read are compared
    with the manifest's count (:func:`tfcmvp.manifest.check_record_count`).

    A scan of unchanged files (same paths, sizes and times) is remembered for
    the life of the process, so a pipeline that scans what its caller
    scanned costs nothing.
    """
    check_on_corrupt(on_corrupt)
    key = (_file_stamps(files), on_corrupt, getattr(files, "expected_records", None))
    if key in _SCANS:
        return _SCANS[key]
    try:
        scan = _scan(files, num_parallel_calls, skip=False)
    except tf.errors.DataLossError as error:
        translated = verify.name_corrupt_shards(files, error, skip_hint=on_corrupt == "fail")
        if translated is error or on_corrupt == "fail":
            raise translated from error
        scan = _scan(files, num_parallel_calls, skip=True)
        scan.damaged = translated.checks
        expected = getattr(files, "expected_records", None)
        scan.skipped_records = None if expected is None else expected - len(scan)
        for check in scan.damaged:
            log.warning(
                "on_corrupt=skip: %s is damaged (%s at byte %d): its records after "
                "the damage are skipped",
                check.path,
                check.error,
                check.offset,
            )
        log.warning(
            "on_corrupt=skip: %s records skipped in %d damaged shard(s); %d read",
            "an unknown number of" if scan.skipped_records is None else scan.skipped_records,
            len(scan.damaged),
            len(scan),
        )
    manifest.check_record_count(files, len(scan), skipped=bool(scan.damaged))
    _SCANS[key] = scan
    while len(_SCANS) > _MAX_SCANS:
        _SCANS.pop(next(iter(_SCANS)))
    return scan


_SCANS: dict = {}  # see scan_records: (file stamps, on_corrupt, expected) -> RecordScan
_MAX_SCANS = 8


def _file_stamps(files: Sequence[str]) -> tuple:
    stamps = []
    for path in files:
        try:
            stat = os.stat(path)
            stamps.append((str(path), stat.st_size, stat.st_mtime_ns))
        except OSError:  # remote paths (gs://...): never remembered
            return (object(),)
    return tuple(stamps)


def _scan(files: Sequence[str], num_parallel_calls, skip: bool) -> RecordScan:
    ds = records_dataset(
        files, num_parallel_calls=num_parallel_calls, on_corrupt="skip" if skip else "fail"
    )
    ds = ds.map(parse_summary, num_parallel_calls=num_parallel_calls).batch(1024)
    ids, frames, iframes = [], [], []
    for batch in ds.as_numpy_iterator():
        ids.extend(v.decode() for v in batch[schema.VIDEO_ID])
        frames.append(batch[schema.NUM_FRAMES])
        iframes.append(batch["num_iframes"])
    cat = lambda parts: np.concatenate(parts) if parts else np.zeros([0], np.int64)  # noqa: E731
    return RecordScan(ids, cat(frames).astype(np.int64), cat(iframes).astype(np.int64))


def eligible(summary: dict, min_frames: int):
    """True when a video (from :func:`parse_summary`) can give a pretraining sample."""
    return (summary[schema.NUM_FRAMES] >= min_frames) & (summary["num_iframes"] >= 1)


def decode_jpeg(encoded):
    """One JPEG string -> uint8 ``[H, W, 3]``."""
    return tf.io.decode_jpeg(encoded, channels=3)


def decode_frames(encoded, indices):
    """Decodes the frames ``encoded[indices]``, each distinct frame once.

    ``encoded``: string ``[T]``; ``indices``: int ``[...]``. Returns uint8
    ``[..., H, W, 3]``. Only the JPEGs that are used get decoded, and a frame
    used by several overlapping clips is decoded once.
    """
    indices = tf.convert_to_tensor(indices)
    flat = tf.reshape(indices, [-1])  # [N]
    unique, position = tf.unique(flat)  # [U], [N]
    images = tf.map_fn(
        decode_jpeg,
        tf.gather(encoded, unique),
        fn_output_signature=tf.TensorSpec([None, None, 3], tf.uint8),
    )  # [U, H, W, 3]
    frames = tf.gather(images, position)  # [N, H, W, 3]
    shape = tf.concat([tf.shape(indices), tf.shape(images)[1:]], axis=0)
    return tf.reshape(frames, shape)


def mv_extent(parsed: dict):
    """Fraction (y, x) of the motion-vector grid that the decoded frame covers.

    The grid has ``ceil(size / cell)`` cells, so it can reach a little past
    the frame (340 px -> 43 cells of 8 = 344 px). Crops given in frame
    coordinates are scaled by this to land on the same content in the grid.
    Returns float32 ``[2]``.
    """
    cell = tf.cast(parsed[schema.MV_CELL], tf.float32)
    covered = tf.cast(tf.stack([parsed[schema.MV_HEIGHT], parsed[schema.MV_WIDTH]]), tf.float32)
    frame = tf.cast(tf.stack([parsed[schema.HEIGHT], parsed[schema.WIDTH]]), tf.float32)
    return frame / (covered * cell)

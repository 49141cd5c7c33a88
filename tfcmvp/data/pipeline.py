"""The tf.data skeleton shared by the training datasets.

shards --interleave--> records --filter--> [cache] --> shuffle --> repeat --> enumerate
--parallel map (parse, sample, decode, augment)--> batch --> prefetch

Randomness: every sample gets the stateless seed ``[base_seed, n]`` where
``n`` counts the samples drawn (``enumerate`` after ``repeat``, so every
visit of a video differs). Shard order and the shuffle buffer are seeded
with ``base_seed``. With a seed and ``deterministic=True`` two runs yield
identical batches whatever the parallelism (AUTOTUNE) and the cache: every
stage keeps its input order and a sample depends only on its record and its
seed. Without ``deterministic`` the parallel stages hand out elements as
they finish, so under load a video lands at another position of the stream
(another seed, another batch; measured: two tiny pretraining runs of one
seed then differ from the first epoch on).

Under TensorFlow's op determinism (``train.deterministic`` of a run) tf.data
also runs a parallel map whose function holds a stateful op sequentially:
the schema-version ``tf.debugging.Assert`` of
:func:`tfcmvp.data.reader.parse_record` is one, so the sample map then runs
on one core.
"""

from __future__ import annotations

import logging
import os
import random
from typing import Callable, Optional, Sequence

import tensorflow as tf

from tfcmvp.config import DataConfig
from tfcmvp.data import reader

log = logging.getLogger(__name__)


def new_base_seed() -> int:
    """A fresh random base seed for runs that gave none."""
    return random.SystemRandom().randrange(2**31)


def check_positive(name: str, value) -> None:
    if not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def report_skipped(
    files: Sequence[str], min_frames: int, what: str, on_corrupt: str = "fail"
) -> None:
    """Scans ``files`` and logs the videos a pipeline needing ``min_frames`` skips.

    Raises ``ValueError`` when no video at all is usable, naming the files
    and the requirement (a silent empty training set would otherwise look
    like a hang or an instant end of training). Damaged shards: see
    :func:`tfcmvp.data.reader.scan_records` (``on_corrupt``).
    """
    scan = reader.scan_records(files, on_corrupt=on_corrupt)
    skipped = scan.skipped(min_frames)
    num_skipped = sum(len(v) for v in skipped.values())
    if num_skipped == len(scan):
        raise ValueError(
            f"{what}: none of the {len(scan)} videos in {len(files)} file(s) "
            f"({files[0]}{' ...' if len(files) > 1 else ''}) can give a sample: "
            + "; ".join(f"{len(v)} {reason}" for reason, v in skipped.items())
        )
    for reason, ids in skipped.items():
        if ids:
            log.warning(
                "%s: skipping %d of %d videos with %s, e.g. %s",
                what,
                len(ids),
                len(scan),
                reason,
                ", ".join(ids[:5]),
            )
    log.info("%s: %d of %d videos usable", what, len(scan) - num_skipped, len(scan))


def training_dataset(
    files: Sequence[str],
    make_sample: Callable,
    *,
    batch_size: int,
    keep: Optional[Callable],
    data: DataConfig,
    seed: Optional[int],
    deterministic: bool,
    repeat: bool,
    num_parallel_calls: int,
    drop_remainder: bool,
) -> tf.data.Dataset:
    """Builds the pipeline; ``make_sample(serialized, seed) -> dict`` makes one sample.

    ``keep(summary) -> bool tensor`` (summary from
    :func:`tfcmvp.data.reader.parse_summary`) filters videos out in the
    graph before they are parsed in full; None keeps every video.

    From the data section `data`: ``shuffle_buffer`` (<= 1: no shuffle),
    ``cycle_length`` (shards read at once), ``cache`` and ``on_corrupt``.

    ``cache``: None, "memory" or a file prefix. The kept records, decompressed,
    are stored during the first epoch and read from there afterwards: reading
    and gunzip of the shards dominate the input pipeline's CPU time (records
    are mostly JPEG bytes, which inflate slowly; measured 2.69x the clips/s on
    the tiny config). Shard order is then fixed after the first epoch; the
    shuffle buffer still mixes the videos. A file cache must not be shared by
    two runs at once (tf.data refuses).

    ``on_corrupt``: "fail" (a damaged shard stops the run) or "skip" (each
    damaged shard is read up to its damage); with "skip" the shards are
    scanned here, so that what is skipped is named and counted in the log
    (free when the caller scanned them already: scans are remembered).
    """
    check_positive("batch_size", batch_size)
    reader.check_on_corrupt(data.on_corrupt)
    if data.on_corrupt == "skip":
        reader.scan_records(files, on_corrupt="skip")
    if deterministic and seed is None:
        log.warning(
            "deterministic=True without a seed: the order is fixed but the seed is "
            "drawn at random, so two runs still differ"
        )
    base_seed = new_base_seed() if seed is None else int(seed)
    ds = reader.records_dataset(
        files,
        shuffle_files=True,
        seed=base_seed,
        cycle_length=data.cycle_length,
        num_parallel_calls=num_parallel_calls,
        deterministic=deterministic,
        on_corrupt=data.on_corrupt,
    )
    if keep is not None:
        ds = _keep_only(ds, keep, num_parallel_calls, deterministic)
    ds = _cached(ds, data.cache)
    if data.shuffle_buffer > 1:
        ds = ds.shuffle(data.shuffle_buffer, seed=base_seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    base = tf.constant(base_seed, tf.int64)
    ds = ds.enumerate().map(
        lambda n, s: make_sample(s, tf.stack([base, n])),
        num_parallel_calls=num_parallel_calls,
        deterministic=deterministic,
    )
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    ds = ds.prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.deterministic = deterministic
    return ds.with_options(options)


def _keep_only(ds, keep: Callable, num_parallel_calls: int, deterministic: bool):
    """The records of `ds` whose summary `keep` accepts."""

    # Decide on a cheap partial parse, in parallel; filter() itself is sequential.
    def tag(serialized):
        return serialized, keep(reader.parse_summary(serialized))

    def is_kept(serialized, kept):
        del serialized
        return kept

    def untag(serialized, kept):
        del kept
        return serialized

    ds = ds.map(tag, num_parallel_calls=num_parallel_calls, deterministic=deterministic)
    return ds.filter(is_kept).map(untag)


def _cached(ds, cache: Optional[str]):
    """`ds` cached in memory ("memory"), in files at the prefix `cache`, or not (None)."""
    if cache == "memory":
        return ds.cache()
    if cache:
        parent = os.path.dirname(cache)
        if parent:
            tf.io.gfile.makedirs(parent)  # tf.data does not create it
        return ds.cache(cache)
    return ds

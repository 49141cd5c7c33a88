"""The op protocol of :mod:`tfcmvp.data.augment`: composition, per-op seeds, value scaling.

An :data:`Op` reads some keys of a sample dict and returns a new dict with
those keys replaced. A random op draws from stateless random ops seeded by
``data["seed"]`` (int [2]) folded with a salt fixed per op (:func:`default_salt`
of the op name and its keys unless given), so a sample is reproducible from
its seed and two ops on different keys draw independently.
"""

from __future__ import annotations

import zlib
from typing import Callable, Sequence

import tensorflow as tf

from tfcmvp.data import keys

Op = Callable[[dict], dict]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def check_prob(name, value):
    """ValueError naming `name` unless `value` lies in [0, 1]."""
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")


def chain(*ops: Op) -> Op:
    """Composes ops left to right."""

    def run(data: dict) -> dict:
        for op in ops:
            data = op(data)
        return data

    return run


def default_salt(name: str, keys: Sequence[str]) -> int:
    """The salt of op `name` on `keys`: crc32 of both (stable across processes)."""
    # crc32, not hash(): stable across processes, so seeds reproduce.
    return zlib.crc32(f"{name}:{','.join(keys)}".encode()) & 0x7FFFFFFF


def op_seed(data: dict, salt: int, op_name: str):
    """The stateless seed of one op: the sample seed folded with `salt`."""
    if keys.SEED not in data:
        raise ValueError(
            f"{op_name} is random and needs data[{keys.SEED!r}] (int [2]); "
            f"keys present: {sorted(data)}"
        )
    return tf.random.experimental.stateless_fold_in(data[keys.SEED], salt)


def as_keys(keys) -> tuple:
    return (keys,) if isinstance(keys, str) else tuple(keys)


def flatten_images(x):
    """[..., H, W, C] -> [N, H, W, C] and the leading shape."""
    shape = tf.shape(x)
    lead = shape[:-3]
    return tf.reshape(x, tf.concat([[-1], shape[-3:]], axis=0)), lead


# ---------------------------------------------------------------------------
# Value scaling


def to_unit_range(keys) -> Op:
    """RGB 0..255 (uint8 or float) -> float32 [0, 1]."""
    keys = as_keys(keys)

    def op(data: dict) -> dict:
        data = dict(data)
        for key in keys:
            data[key] = tf.cast(data[key], tf.float32) / 255.0
        return data

    return op


def normalize(
    keys, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
) -> Op:
    """``(x - mean) / std`` over the last (channel) axis; ImageNet statistics by default."""
    keys = as_keys(keys)
    mean_t = tf.constant(mean, tf.float32)
    std_t = tf.constant(std, tf.float32)

    def op(data: dict) -> dict:
        data = dict(data)
        for key in keys:
            data[key] = (tf.cast(data[key], tf.float32) - mean_t) / std_t
        return data

    return op


def scale_motion(keys, *, clip: float = 10.0, div: float = 10.0) -> Op:
    """Vectors in pixels -> clamp to +-``clip`` -> divide by ``div`` (authors: 10, 10)."""
    keys = as_keys(keys)

    def op(data: dict) -> dict:
        data = dict(data)
        for key in keys:
            data[key] = tf.clip_by_value(tf.cast(data[key], tf.float32), -clip, clip) / div
        return data

    return op

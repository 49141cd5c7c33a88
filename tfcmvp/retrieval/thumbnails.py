"""Thumbnails of the data's videos for figures, and their cache.

A thumbnail is the middle RGB frame of a video, fitted into ``THUMB_SHAPE``
and stored as JPEG (about 2 kB a video). Thumbnails depend on the data only:
``CACHE_DIR/thumbs-<data key>-<h>x<w>.npz`` (per split ``<split>/thumb_data``,
``<split>/thumb_offsets`` and ``<split>/video_ids``), shared by every model
evaluated on that data. :func:`tfcmvp.retrieval.features.extract_features`
makes them in the same read of the shards as the features when missing.
"""

from __future__ import annotations

import dataclasses
import io
import json
import pathlib
from typing import Optional

import numpy as np
import tensorflow as tf
from PIL import Image

from tfcmvp import schema
from tfcmvp.retrieval import feature_cache

THUMB_SHAPE = (48, 64)  # (height, width) of the cached thumbnails, aspect kept by padding
THUMB_QUALITY = 90  # JPEG quality of the cached thumbnails


@dataclasses.dataclass
class Thumbnails:
    """JPEG thumbnails of one split's videos, decoded on access: ``thumbs[i]`` uint8 [h, w, 3]."""

    data: np.ndarray  # uint8 [total bytes]: the JPEGs back to back
    offsets: np.ndarray  # int64 [V + 1]: JPEG i is data[offsets[i]:offsets[i + 1]]

    @classmethod
    def from_jpegs(cls, jpegs) -> "Thumbnails":
        jpegs = [bytes(j) for j in jpegs]
        offsets = np.concatenate([[0], np.cumsum([len(j) for j in jpegs])]).astype(np.int64)
        return cls(np.frombuffer(b"".join(jpegs), np.uint8).copy(), offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, index) -> np.ndarray:
        if not -len(self) <= index < len(self):
            raise IndexError(f"thumbnail {index} of {len(self)}")
        index %= len(self)
        encoded = self.data[self.offsets[index] : self.offsets[index + 1]].tobytes()
        with Image.open(io.BytesIO(encoded)) as image:
            return np.asarray(image.convert("RGB"))


def thumbnail(serialized, shape=THUMB_SHAPE):
    """The middle RGB frame of one record, fitted into ``shape`` with black padding, as JPEG."""
    spec = schema.feature_spec()
    parsed = tf.io.parse_single_example(serialized, {schema.RGB_ENCODED: spec[schema.RGB_ENCODED]})
    encoded = parsed[schema.RGB_ENCODED].values  # [T] JPEG strings
    count = tf.size(encoded)

    def middle():
        image = tf.io.decode_jpeg(tf.gather(encoded, count // 2), channels=3)  # [H, W, 3]
        resized = tf.image.resize_with_pad(image, shape[0], shape[1], method="area")
        return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)  # [h, w, 3]

    # A video without frames fails in the evaluation sample with its own message.
    image = tf.cond(count > 0, middle, lambda: tf.zeros([*shape, 3], tf.uint8))
    return tf.io.encode_jpeg(image, quality=THUMB_QUALITY)


# --------------------------------------------------------------------------- cache


def thumbs_path(cache_dir: pathlib.Path, data_key: str) -> pathlib.Path:
    """The thumbnail cache file of the data with fingerprint ``data_key``."""
    return cache_dir / f"thumbs-{data_key[:16]}-{THUMB_SHAPE[0]}x{THUMB_SHAPE[1]}.npz"


def _thumbs_key(data_key: str) -> str:
    return feature_cache.cache_key(
        {"version": feature_cache.CACHE_VERSION, "data": data_key, "thumb_shape": list(THUMB_SHAPE)}
    )


def cached_thumbnails(cache_dir, data_key, extracted_ids: dict) -> Optional[dict]:
    """``{split: Thumbnails}`` from the cache, or None when absent, stale or of other videos.

    ``extracted_ids``: ``{split: video ids}`` the thumbnails must match, in order.
    """
    if cache_dir is None:
        return None
    arrays = feature_cache.load_npz(thumbs_path(cache_dir, data_key), _thumbs_key(data_key))
    if arrays is None:
        return None
    # Same videos in the same order, or the file belongs to other data.
    for split, ids in extracted_ids.items():
        if not np.array_equal(arrays[f"{split}/video_ids"].astype(str), ids):
            return None
    return {
        split: Thumbnails(arrays[f"{split}/thumb_data"], arrays[f"{split}/thumb_offsets"])
        for split in extracted_ids
    }


def store_thumbnails(cache_dir, data_key, thumbs: dict, ids: dict) -> None:
    """Writes ``{split: Thumbnails}`` with their video ids to the cache (nothing when None)."""
    if cache_dir is None:
        return
    arrays = {"meta": np.asarray(json.dumps({"key": _thumbs_key(data_key)}))}
    for split in thumbs:
        arrays[f"{split}/thumb_data"] = thumbs[split].data
        arrays[f"{split}/thumb_offsets"] = thumbs[split].offsets
        arrays[f"{split}/video_ids"] = ids[split]
    feature_cache.save_npz(thumbs_path(cache_dir, data_key), arrays)

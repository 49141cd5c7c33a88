"""Synthetic records with known content, for tests of everything downstream of the reader.

:func:`painted_record` builds a :class:`tfcmvp.schema.VideoRecord` whose
content says where it came from:

* RGB frame ``k``: red ``8 * (k % 32) + 4``, green ``8 * (k // 32) + 4`` (the
  frame index, recoverable after any crop / flip / resize with
  :func:`frame_index_from_rgb`), blue a horizontal ramp ``255 * u`` where
  ``u`` is the position in the frame (0 = left edge, 1 = right edge) of the
  pixel centre.
* Motion vectors of frame ``k``: x = ``(k % 40) / 4`` px (the frame index
  again, :func:`frame_index_from_mv`), y = ``10 * u`` px, the same ramp at the
  cell centres, in decoded-frame pixels.
* I-frames every ``gop`` frames, their JPEGs the RGB frames at those indices.

So a crop shared by a clip and its motion clip shows as ``blue / 255 ==
y / 10`` position by position, and a flip reverses both ramps.
"""

from __future__ import annotations

import io
import math
import os
from typing import Iterable, Optional, Sequence

import numpy as np
import tensorflow as tf
from PIL import Image

from tfcmvp import schema
from tfcmvp.data.augment import IMAGENET_MEAN, IMAGENET_STD


def _jpeg(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    # Quality 95 without chroma subsampling: painted codes survive within +-3.
    Image.fromarray(image).save(buf, format="JPEG", quality=95, subsampling=0)
    return buf.getvalue()


def painted_frame(index: int, height: int, width: int) -> np.ndarray:
    """uint8 ``[height, width, 3]`` frame ``index`` (see the module docstring)."""
    u = (np.arange(width) + 0.5) / width  # [W] pixel centres
    frame = np.empty([height, width, 3], np.uint8)
    frame[..., 0] = 8 * (index % 32) + 4
    frame[..., 1] = 8 * (index // 32) + 4
    frame[..., 2] = np.rint(255 * u)[None, :]
    return frame


def painted_vectors(num_frames: int, width: int, height: int, cell: int) -> np.ndarray:
    """float32 ``[T, ceil(H / cell), ceil(W / cell), 2]`` vectors (see the module docstring)."""
    mh, mw = math.ceil(height / cell), math.ceil(width / cell)
    u = (np.arange(mw) + 0.5) * cell / width  # [mw] cell centres, frame-normalised
    mv = np.zeros([num_frames, mh, mw, 2], np.float32)
    mv[..., 0] = ((np.arange(num_frames) % 40) / 4.0)[:, None, None]
    mv[..., 1] = (10.0 * u)[None, None, :]
    return mv


def painted_record(
    video_id: str,
    num_frames: int,
    *,
    label: int = 0,
    label_name: str = "",
    split: str = "train",
    width: int = 80,
    height: int = 64,
    rgb_width: int = 40,
    rgb_height: int = 32,
    mv_cell: int = 8,
    gop: int = 12,
    iframe_indices: Optional[Sequence[int]] = None,
) -> schema.VideoRecord:
    """A :class:`VideoRecord` of ``num_frames`` painted frames.

    ``width`` x ``height`` is the "decoded" size the vectors refer to, the
    RGB frames are stored at ``rgb_width`` x ``rgb_height``. I-frames are
    every ``gop`` frames unless ``iframe_indices`` is given.
    """
    if iframe_indices is None:
        iframe_indices = list(range(0, num_frames, gop))
    iframe_indices = [int(i) for i in iframe_indices]
    frames = [painted_frame(k, rgb_height, rgb_width) for k in range(num_frames)]
    jpegs = [_jpeg(f) for f in frames]
    types = ["P"] * num_frames
    for i in iframe_indices:
        types[i] = "I"
    return schema.VideoRecord(
        video_id=video_id,
        label=label,
        label_name=label_name,
        split=split,
        fps=25.0,
        width=width,
        height=height,
        codec="mpeg4",
        frame_types="".join(types),
        iframe_indices=iframe_indices,
        one_past_reference=True,
        rgb_jpegs=jpegs,
        rgb_height=rgb_height,
        rgb_width=rgb_width,
        iframe_jpegs=[jpegs[i] for i in iframe_indices],
        motion_vectors=painted_vectors(num_frames, width, height, mv_cell),
        mv_cell=mv_cell,
    )


def write_shards(records: Iterable[schema.VideoRecord], prefix: str, num_shards: int = 1) -> list:
    """Writes records round-robin to ``{prefix}-0000i-of-0000n.tfrecord.gz``; returns the paths."""
    paths = [f"{prefix}-{i:05d}-of-{num_shards:05d}.tfrecord.gz" for i in range(num_shards)]
    os.makedirs(os.path.dirname(os.path.abspath(prefix)), exist_ok=True)
    writers = [tf.io.TFRecordWriter(p, options="GZIP") for p in paths]
    try:
        for n, record in enumerate(records):
            writers[n % num_shards].write(schema.encode_example(record))
    finally:
        for w in writers:
            w.close()
    return paths


def denormalize_rgb(x: np.ndarray) -> np.ndarray:
    """ImageNet-normalised RGB -> 0..255 float (inverse of the pipelines' normalisation)."""
    return (np.asarray(x) * np.array(IMAGENET_STD) + np.array(IMAGENET_MEAN)) * 255.0


def frame_index_from_rgb(rgb255: np.ndarray) -> np.ndarray:
    """Painted frame index of 0..255 RGB ``[..., H, W, 3]`` -> int ``[...]`` (pixel median)."""
    rgb255 = np.asarray(rgb255)
    r = np.median(rgb255[..., 0], axis=(-2, -1))
    g = np.median(rgb255[..., 1], axis=(-2, -1))
    return (np.rint((r - 4) / 8) + 32 * np.rint((g - 4) / 8)).astype(np.int64)


def frame_index_from_mv(mv_pixels_x: np.ndarray) -> np.ndarray:
    """Painted frame index (mod 40) of the x component in px ``[..., H, W]`` -> int ``[...]``."""
    return np.rint(4 * np.median(np.abs(mv_pixels_x), axis=(-2, -1))).astype(np.int64)

"""The TFRecord format written by `beam_jobs.extract` and read by `tfcmvp.data`.

One `tf.train.Example` per video. This module is the single definition of the
format: the Beam writer calls :func:`encode_example`, the tf.data reader calls
:func:`parse_example`, and nothing else spells a feature key.

Schema version 1
----------------
=======================  ========  ===================================================
key                      type      meaning
=======================  ========  ===================================================
schema/version           int64     ``SCHEMA_VERSION`` of the writer
video/id                 bytes     path of the video relative to ``--videos_dir``
video/label              int64     class index (0-based, order of ``labels.txt``), -1 if none
video/label_name         bytes     class name ("" if none)
video/split              bytes     "train" or "test"
video/fps                float     frames per second of the decoded stream
video/width, height      int64     decoded frame size in pixels (before any resize)
video/codec              bytes     decoder name, e.g. "mpeg4", "h264"
video/num_frames         int64     decoded frames T (display order)
video/frame_types        bytes     T ASCII letters "I", "P" or "B", display order
video/iframe_indices     int64[]   display indices of the I-frames
video/one_past_reference int64     1 when every vector of the stream points exactly one
                                   frame back (GOP of I + P frames, one reference frame)
rgb/encoded              bytes[]   T JPEG images, every frame, short side ``rgb/height``
rgb/height, width        int64     size of the stored RGB frames
iframe/encoded           bytes[]   one JPEG per I-frame, same size as ``rgb/``; by default
                                   decoded from the same stream as the motion vectors
iframe/source            bytes     optional: "reencode" when ``iframe/encoded`` holds the
                                   I-frames of a separate low-bit-rate MPEG-4 encode of the
                                   same frames (``--iframe_source reencode``); absent means
                                   "decoded"
iframe/bitrate           int64     optional, with ``iframe/source``: bits per second of that
                                   encode (absent: 0)
mv/encoded               bytes     int16 little-endian, shape [T, mv/height, mv/width, 2]
mv/height, width         int64     motion-vector grid size (cells)
mv/cell                  int64     cell size in decoded-frame pixels
mv/scale                 float     stored units per pixel (``MV_SCALE`` = 4: quarter-pel)
=======================  ========  ===================================================

The two ``iframe/`` keys were added within version 1: a record of the default
("decoded") kind does not carry them and is byte for byte what earlier writers
wrote, readers treat a missing key as "decoded" / 0, and earlier readers ignore
them. No version change was needed in either direction.

Motion vectors are stored as ``round(v * mv/scale)`` clipped to the int16
range, x then y, in pixels of the *decoded* frame (see ``tfcmvp.codec`` for the
sign convention). Quarter-pel units keep H.264's full precision and MPEG-4's
half-pel exactly; int16 covers +-8191 px, and gzip shrinks the many zero cells.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from tfcmvp import example_proto
from tfcmvp.errors import InvalidDataError

SCHEMA_VERSION = 1
MV_SCALE = 4.0  # stored integer units per pixel (quarter-pel)
MV_DTYPE = np.dtype("<i2")

# Feature keys: spelled here only.
VERSION = "schema/version"
VIDEO_ID = "video/id"
LABEL = "video/label"
LABEL_NAME = "video/label_name"
SPLIT = "video/split"
FPS = "video/fps"
WIDTH = "video/width"
HEIGHT = "video/height"
CODEC = "video/codec"
NUM_FRAMES = "video/num_frames"
FRAME_TYPES = "video/frame_types"
IFRAME_INDICES = "video/iframe_indices"
ONE_PAST_REFERENCE = "video/one_past_reference"
RGB_ENCODED = "rgb/encoded"
RGB_HEIGHT = "rgb/height"
RGB_WIDTH = "rgb/width"
IFRAME_ENCODED = "iframe/encoded"
IFRAME_SOURCE = "iframe/source"  # optional
IFRAME_BITRATE = "iframe/bitrate"  # optional

# Values of IFRAME_SOURCE: the I-frame images come from the decode that gave the
# RGB frames and vectors, or from a separate low-bit-rate re-encode of it.
IFRAME_SOURCE_DECODED = "decoded"
IFRAME_SOURCE_REENCODE = "reencode"
IFRAME_SOURCES = (IFRAME_SOURCE_DECODED, IFRAME_SOURCE_REENCODE)
MV_ENCODED = "mv/encoded"
MV_HEIGHT = "mv/height"
MV_WIDTH = "mv/width"
MV_CELL = "mv/cell"
MV_SCALE_KEY = "mv/scale"


@dataclasses.dataclass
class VideoRecord:
    """Everything stored for one video, as NumPy / Python values.

    ``rgb_jpegs`` and ``iframe_jpegs`` are already JPEG-encoded bytes;
    ``motion_vectors`` is float32 ``[T, mv_height, mv_width, 2]`` in pixels.
    ``iframe_source`` says where the I-frame images come from (one of
    ``IFRAME_SOURCES``) and ``iframe_bitrate`` the bit rate of the re-encode
    (0 for "decoded").
    """

    video_id: str
    label: int
    label_name: str
    split: str
    fps: float
    width: int
    height: int
    codec: str
    frame_types: str
    iframe_indices: Sequence[int]
    one_past_reference: bool
    rgb_jpegs: Sequence[bytes]
    rgb_height: int
    rgb_width: int
    iframe_jpegs: Sequence[bytes]
    motion_vectors: np.ndarray
    mv_cell: int
    iframe_source: str = IFRAME_SOURCE_DECODED
    iframe_bitrate: int = 0

    @property
    def num_frames(self) -> int:
        return len(self.frame_types)


def quantize_vectors(motion_vectors: np.ndarray) -> np.ndarray:
    """Float pixel vectors -> the stored int16 quarter-pel encoding."""
    q = np.rint(np.asarray(motion_vectors, np.float32) * MV_SCALE)
    info = np.iinfo(MV_DTYPE)
    return np.clip(q, info.min, info.max).astype(MV_DTYPE)


def dequantize_vectors(raw: np.ndarray) -> np.ndarray:
    """Stored int16 quarter-pel values -> float32 pixels."""
    return raw.astype(np.float32) / np.float32(MV_SCALE)


def _bytes(values):
    return example_proto.Feature(bytes_list=example_proto.BytesList(value=list(values)))


def _ints(values):
    return example_proto.Feature(int64_list=example_proto.Int64List(value=[int(v) for v in values]))


def _floats(values):
    return example_proto.Feature(float_list=example_proto.FloatList(value=list(values)))


def _record_problems(record: VideoRecord, mv: np.ndarray) -> list:
    """Every way the parts of ``record`` disagree (empty when they agree)."""
    t = record.num_frames
    problems = []
    if len(record.rgb_jpegs) != t:
        problems.append(f"{len(record.rgb_jpegs)} RGB frames for {t} frame types")
    if mv.ndim != 4 or mv.shape[0] != t or mv.shape[-1] != 2:
        problems.append(f"motion vectors of shape {mv.shape}, expected [{t}, H, W, 2]")
    if len(record.iframe_jpegs) != len(record.iframe_indices):
        problems.append(
            f"{len(record.iframe_jpegs)} I-frame images for "
            f"{len(record.iframe_indices)} I-frame indices"
        )
    if set(record.frame_types) - set("IPB"):
        problems.append(f"frame types {sorted(set(record.frame_types) - set('IPB'))} not in I/P/B")
    if record.iframe_source not in IFRAME_SOURCES:
        problems.append(f"iframe_source {record.iframe_source!r} not in {IFRAME_SOURCES}")
    elif (record.iframe_source == IFRAME_SOURCE_DECODED) != (int(record.iframe_bitrate) == 0):
        problems.append(
            f"iframe_bitrate {record.iframe_bitrate!r} with iframe_source "
            f"{record.iframe_source!r} (0 exactly when decoded)"
        )
    return problems


def encode_example(record: VideoRecord) -> bytes:
    """Serialises one :class:`VideoRecord` to ``tf.train.Example`` bytes.

    Raises ``ValueError`` naming the video when the parts disagree in length,
    so a malformed record is reported by the writer instead of poisoning a
    training run later. Needs no TensorFlow (see :mod:`tfcmvp.example_proto`).
    """
    t = record.num_frames
    mv = np.asarray(record.motion_vectors)
    problems = _record_problems(record, mv)
    if problems:
        raise ValueError(f"{record.video_id}: inconsistent record: " + "; ".join(problems))

    feature = {
        VERSION: _ints([SCHEMA_VERSION]),
        VIDEO_ID: _bytes([record.video_id.encode()]),
        LABEL: _ints([record.label]),
        LABEL_NAME: _bytes([record.label_name.encode()]),
        SPLIT: _bytes([record.split.encode()]),
        FPS: _floats([record.fps]),
        WIDTH: _ints([record.width]),
        HEIGHT: _ints([record.height]),
        CODEC: _bytes([record.codec.encode()]),
        NUM_FRAMES: _ints([t]),
        FRAME_TYPES: _bytes([record.frame_types.encode("ascii")]),
        IFRAME_INDICES: _ints(record.iframe_indices),
        ONE_PAST_REFERENCE: _ints([int(bool(record.one_past_reference))]),
        RGB_ENCODED: _bytes(record.rgb_jpegs),
        RGB_HEIGHT: _ints([record.rgb_height]),
        RGB_WIDTH: _ints([record.rgb_width]),
        IFRAME_ENCODED: _bytes(record.iframe_jpegs),
        MV_ENCODED: _bytes([quantize_vectors(mv).tobytes()]),
        MV_HEIGHT: _ints([mv.shape[1]]),
        MV_WIDTH: _ints([mv.shape[2]]),
        MV_CELL: _ints([record.mv_cell]),
        MV_SCALE_KEY: _floats([MV_SCALE]),
    }
    if record.iframe_source != IFRAME_SOURCE_DECODED:
        # Written only when not the default, so that default records keep the
        # bytes they had before these keys existed.
        feature[IFRAME_SOURCE] = _bytes([record.iframe_source.encode()])
        feature[IFRAME_BITRATE] = _ints([record.iframe_bitrate])
    example = example_proto.Example(features=example_proto.Features(feature=feature))
    # Sorted feature keys: the same record always gives the same bytes.
    return example.SerializeToString(deterministic=True)


def feature_spec() -> dict:
    """The ``tf.io.parse_single_example`` spec of schema version 1.

    The optional ``iframe/`` keys have defaults, so records without them parse.
    """
    import tensorflow as tf

    scalar_int = tf.io.FixedLenFeature([], tf.int64)
    scalar_str = tf.io.FixedLenFeature([], tf.string)
    return {
        VERSION: scalar_int,
        VIDEO_ID: scalar_str,
        LABEL: scalar_int,
        LABEL_NAME: scalar_str,
        SPLIT: scalar_str,
        FPS: tf.io.FixedLenFeature([], tf.float32),
        WIDTH: scalar_int,
        HEIGHT: scalar_int,
        CODEC: scalar_str,
        NUM_FRAMES: scalar_int,
        FRAME_TYPES: scalar_str,
        IFRAME_INDICES: tf.io.VarLenFeature(tf.int64),
        ONE_PAST_REFERENCE: scalar_int,
        RGB_ENCODED: tf.io.VarLenFeature(tf.string),
        RGB_HEIGHT: scalar_int,
        RGB_WIDTH: scalar_int,
        IFRAME_ENCODED: tf.io.VarLenFeature(tf.string),
        IFRAME_SOURCE: tf.io.FixedLenFeature([], tf.string, default_value=IFRAME_SOURCE_DECODED),
        IFRAME_BITRATE: tf.io.FixedLenFeature([], tf.int64, default_value=0),
        MV_ENCODED: scalar_str,
        MV_HEIGHT: scalar_int,
        MV_WIDTH: scalar_int,
        MV_CELL: scalar_int,
        MV_SCALE_KEY: tf.io.FixedLenFeature([], tf.float32),
    }


def parse_example(serialized):
    """Parses one serialized record into a dict of tensors (graph-safe).

    Variable-length lists come back dense; JPEGs stay encoded so that the
    reader decodes only the frames a sample uses. ``MV_ENCODED`` comes back
    as float32 pixels ``[T, mv_height, mv_width, 2]``.
    """
    import tensorflow as tf

    parsed = tf.io.parse_single_example(serialized, feature_spec())
    for key in (IFRAME_INDICES, RGB_ENCODED, IFRAME_ENCODED):
        parsed[key] = tf.sparse.to_dense(parsed[key])
    raw = tf.io.decode_raw(parsed[MV_ENCODED], tf.int16, little_endian=True)
    shape = tf.stack([parsed[NUM_FRAMES], parsed[MV_HEIGHT], parsed[MV_WIDTH], 2])
    parsed[MV_ENCODED] = tf.reshape(tf.cast(raw, tf.float32), shape) / parsed[MV_SCALE_KEY]
    return parsed


def decode_example(serialized: bytes) -> VideoRecord:
    """Inverse of :func:`encode_example` in NumPy (inspection and tests); no TensorFlow.

    Raises ``ValueError`` when the record was written by another schema
    version, naming both versions.
    """
    ex = example_proto.Example.FromString(serialized)
    f = ex.features.feature

    def one(key, kind):
        return getattr(f[key], kind).value[0]

    version = one(VERSION, "int64_list")
    if version != SCHEMA_VERSION:
        raise InvalidDataError(
            f"record has schema version {version}; this tfcmvp reads {SCHEMA_VERSION}"
        )
    t = one(NUM_FRAMES, "int64_list")
    mh, mw = one(MV_HEIGHT, "int64_list"), one(MV_WIDTH, "int64_list")
    raw = np.frombuffer(one(MV_ENCODED, "bytes_list"), MV_DTYPE).reshape(t, mh, mw, 2)
    return VideoRecord(
        video_id=one(VIDEO_ID, "bytes_list").decode(),
        label=one(LABEL, "int64_list"),
        label_name=one(LABEL_NAME, "bytes_list").decode(),
        split=one(SPLIT, "bytes_list").decode(),
        fps=one(FPS, "float_list"),
        width=one(WIDTH, "int64_list"),
        height=one(HEIGHT, "int64_list"),
        codec=one(CODEC, "bytes_list").decode(),
        frame_types=one(FRAME_TYPES, "bytes_list").decode("ascii"),
        iframe_indices=list(f[IFRAME_INDICES].int64_list.value),
        one_past_reference=bool(one(ONE_PAST_REFERENCE, "int64_list")),
        rgb_jpegs=list(f[RGB_ENCODED].bytes_list.value),
        rgb_height=one(RGB_HEIGHT, "int64_list"),
        rgb_width=one(RGB_WIDTH, "int64_list"),
        iframe_jpegs=list(f[IFRAME_ENCODED].bytes_list.value),
        motion_vectors=raw.astype(np.float32) / np.float32(one(MV_SCALE_KEY, "float_list")),
        mv_cell=one(MV_CELL, "int64_list"),
        iframe_source=(
            one(IFRAME_SOURCE, "bytes_list").decode()
            if IFRAME_SOURCE in f
            else IFRAME_SOURCE_DECODED
        ),
        iframe_bitrate=one(IFRAME_BITRATE, "int64_list") if IFRAME_BITRATE in f else 0,
    )

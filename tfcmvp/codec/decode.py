"""Decoding a video into compressed-domain arrays: :func:`read_video`.

Sign convention of the motion vectors
-------------------------------------
A vector is the *forward motion of the content into this frame*, in pixels of
the decoded frame, x (right) then y (down). FFmpeg exports, for each predicted
block centred on ``(dst_x, dst_y)``, ``src = dst + motion / motion_scale`` in
its reference frame (``motion_scale`` is 2 for MPEG-4 half-pel, 4 for H.264
quarter-pel; the division keeps that sub-pel precision):

* past reference (``source < 0``): the content moved from src to dst, and the
  vector is ``dst - src = -motion / motion_scale``;
* future reference (``source > 0``, B-frames): the content will move from dst
  to src, and the vector is ``dst - src`` negated, ``+motion / motion_scale``.

So content translating by (+2, -1) px per frame gives vectors near (+2, -1)
on every P-frame. I-frames, intra blocks and cells no block covers are zero.

Raster: each block covers ``w x h`` pixels centred on ``(dst_x, dst_y)``; the
frame is cut into ``mv_cell x mv_cell`` cells and each cell takes the
area-weighted mean of the vectors of the blocks overlapping it (see
:mod:`tfcmvp.codec.raster`). A bi-predicted block exports two vectors; both
cover the block, so the cell gets their mean. On FFmpeg 8, H.264 exports
16x16, 16x8, 8x16 and 8x8 blocks and MPEG-4 Part 2 16x16 and 8x8, so the
default 8-px cell loses nothing.

Distance of a vector: FFmpeg exports only the *direction* of a vector's
reference (past or future), not which frame it is. In streams with B-frames
or several reference frames a vector can span 2-3 frames (a P-frame after
two B-frames references the frame three back), so its length is not one
frame of motion. ``CompressedVideo.one_past_reference`` is True only when it
is: no B-frames and every P-frame references the frame just before it
(always true for MPEG-4 Part 2 / MPEG-2 / H.263 P-frames; for H.264 only when
the SPS declares ``max_num_ref_frames == 1``, read from the stream; False
when that cannot be read). Re-encode with :func:`tfcmvp.codec.reencode` to
get such a stream.

Vectors only (``rgb=False``): the decoder skips the inverse DCT and the
deblocking filter, which only the pixels need; vectors and picture types are
the same as with ``rgb=True``.

Determinism: the decoder runs single-threaded (``thread_count = 1``, no
frame or slice threads); frame threads make H.264 B-frame vectors differ from
run to run.

Failures: every error is a :class:`~tfcmvp.codec.errors.VideoError` naming
the file, with ``stage`` "open", "decode" or "vectors". Policy for damaged
files: frames decoded so far are kept only when they are consistent, i.e.
no packet failed to decode, no frame is flagged corrupt, the frame size never
changes, and the count reaches what the container declares (its frame count,
else its duration times the rate) less a small tolerance (``max(2, 5%)``
frames, for MP4 edit lists and rounding). Otherwise
:class:`CorruptVideoError` is raised; zero decoded frames always raise. So a
Matroska file cut at a cluster boundary without a usable duration, or a raw
elementary stream cut anywhere, yields its intact leading frames.

Windows (``start``/``end``, seconds): only the frames whose time, counted
from the stream's first timestamp, lies in ``[start, end)`` are returned (a
1 us tolerance, so a decimal bound that falls on a frame time keeps that frame
at ``start`` and drops it at ``end``). The demuxer seeks to the key frame at
or before ``start`` and decoding stops at the first frame at or after
``end``, so an untrimmed download is decoded over its window only, plus at
most one GOP before it. The frames decoded before ``start`` are references
only: they are neither rasterised nor converted to RGB. The first kept frame
need not be an I-frame, and its vectors point into the frame before the
window (the motion into that frame is still true). The completeness check
compares the count with the window's length (capped at the container's
duration) instead of the whole file's.

Known FFmpeg 8 limitation: the MPEG-4 Part 2 decoder exports B-frame vectors
as all zero (measured on moving textures whose H.264 and MPEG-2 B-frames give
the true motion), so MPEG-4 B-frames rasterise to zero; re-encode such files
without B-frames.
"""

from __future__ import annotations

import dataclasses
import gc
import os
from typing import List, Optional

import av
import numpy as np

from tfcmvp.codec import h264_sps
from tfcmvp.codec.errors import (
    CorruptVideoError,
    UnsupportedCodecError,
    VideoError,
)
from tfcmvp.codec.rgb import RgbConverter, rgb_size
from tfcmvp.codec.stream import (
    decode_packet,
    expected_frames,
    open_video,
    shortfall_tolerance,
    stream_rate,
)
from tfcmvp.codec.vector_raster import VectorRaster
from tfcmvp.codec.video import CompressedVideo
from tfcmvp.codec.window import Window
from tfcmvp.errors import ConfigError

# Names callers use from here (the stream helpers moved to tfcmvp.codec.stream).
_expected_frames, _shortfall_tolerance = expected_frames, shortfall_tolerance
__all__ = [
    "DEFAULT_MV_CELL",
    "VECTOR_DECODERS",
    "VECTORS_ONLY_OPTIONS",
    "DecodeOptions",
    "RgbConverter",
    "open_video",
    "read_video",
    "rgb_size",
    "stream_rate",
]

DEFAULT_MV_CELL = 8

# FFmpeg 8 decoders (by decoder name) that export motion vectors with
# flags2=+export_mvs, each checked by encoding a moving texture and reading
# its vectors back: H.264 and the mpegvideo family. HEVC, VP8/9, AV1 and
# intra-only codecs export none.
VECTOR_DECODERS = frozenset(
    {
        "h264",
        "mpeg4",
        "mpeg2video",
        "mpeg1video",
        "h263",
        "flv",
        "msmpeg4v2",
        "msmpeg4",
        "wmv1",
        "wmv2",
    }
)
# Decoders whose P-frames can only reference the previous I/P frame.
_SINGLE_REFERENCE_DECODERS = VECTOR_DECODERS - {"h264"}

# AVPictureType -> letter. S (MPEG-4 GMC sprite) and SP are predicted from
# the past like P; SI is intra like I.
_PICT_LETTER = {1: "I", 2: "P", 3: "B", 4: "P", 5: "I", 6: "P"}

# Reading frame.side_data makes a reference cycle (frame -> side data ->
# frame), so decoded frames are freed only by the cyclic garbage collector,
# by default every few hundred frames; meanwhile FFmpeg's frame pool cannot
# recycle their buffers and allocates fresh ones. Collecting the youngest
# generation every few frames keeps the pool warm: measured 20-35 us/frame
# (7-14%) faster at 320x240 MPEG-4.
_COLLECT_EVERY = 8

# Without RGB output the decoder may skip work that only the pixels need:
# the inverse DCT (MPEG-4 Part 2 / MPEG-2) and the deblocking filter (H.264).
# Motion vectors and picture types are parsed from the bitstream before
# either step and come out identical (tested on MPEG-4, MPEG-2 and H.264 with
# B-frames); measured 20% faster on 320x240 MPEG-4 and 7% on H.264.
VECTORS_ONLY_OPTIONS = {"skip_idct": "all", "skip_loop_filter": "all"}


def _letter(frame) -> str:
    letter = _PICT_LETTER.get(int(frame.pict_type))
    if letter is None:  # AV_PICTURE_TYPE_NONE: fall back on the key flag
        letter = "I" if frame.key_frame else "P"
    return letter


def _one_past_reference(codec: str, frame_types: str, stream, first_packet: Optional[bytes]):
    if "B" in frame_types:
        return False
    if codec in _SINGLE_REFERENCE_DECODERS:
        return True
    if codec == "h264":
        refs = h264_sps.max_num_ref_frames(stream.codec_context.extradata)
        if refs is None:
            refs = h264_sps.max_num_ref_frames(first_packet)
        return refs == 1
    return False


@dataclasses.dataclass(frozen=True)
class DecodeOptions:
    """What :func:`read_video` decodes beside picture types and vectors (its arguments)."""

    rgb: bool = False  # also every frame as uint8 RGB
    mv_cell: int = DEFAULT_MV_CELL  # raster cell of the vectors in pixels
    rgb_short_side: Optional[int] = None  # RGB short side (swscale resize); None: decoded size
    rgb_interpolation: str = "AREA"  # swscale filter of that resize


def read_video(
    path,
    rgb: bool = False,
    mv_cell: int = DEFAULT_MV_CELL,
    rgb_short_side: Optional[int] = None,
    rgb_interpolation: str = "AREA",
    start: Optional[float] = None,
    end: Optional[float] = None,
) -> CompressedVideo:
    """Decodes a video's picture types, motion vectors and optionally RGB.

    Args:
      path: any container FFmpeg reads holding MPEG-4 Part 2, H.264, MPEG-1/2
        (or another decoder of ``VECTOR_DECODERS``) video.
      rgb: also return every frame as uint8 RGB.
      mv_cell: c, the raster cell of the vectors in pixels.
      rgb_short_side: resize RGB frames inside the decode loop (swscale) so
        the short side has this many pixels, keeping the aspect ratio; None
        keeps the decoded size.
      rgb_interpolation: swscale filter for that resize ("AREA" averages
        when shrinking; "BILINEAR", "BICUBIC", ...).
      start, end: keep only the frames whose time in seconds is in
        ``[start, end)`` (see "Windows" in the module docstring); both None
        (the default) decode the whole video.

    Returns:
      :class:`CompressedVideo`; see the module docstring for the vectors.

    Raises:
      NoVideoStreamError: the file has no video stream.
      UnsupportedCodecError: the decoder exports no motion vectors.
      CorruptVideoError: the file cannot be decoded completely.
      VideoError: the file cannot be opened.
    """
    path = os.fspath(path)
    options = DecodeOptions(rgb, mv_cell, rgb_short_side, rgb_interpolation)
    _check_arguments(options, start, end)
    container, stream = open_video(path)
    with container:
        codec = stream.codec_context.name
        if codec not in VECTOR_DECODERS:
            raise UnsupportedCodecError(
                path,
                f"the {codec} decoder exports no motion vectors; re-encode it first with "
                f'tfcmvp.codec.reencode(src, dst, codec="mpeg4") '
                f"(or the Beam job's --reencode mpeg4)",
                stage="open",
            )
        fps = float(stream_rate(container, stream, path))
        expected = expected_frames(container, stream, fps)
        _configure_decoder(stream.codec_context, rgb)
        window = None
        if start is not None:
            window = Window(path, container, stream, float(start), float(end), fps, expected)
            expected = window.expected
        source = _Source(path, container, stream, codec, fps, expected, window)
        return _decode(source, options)


def _check_arguments(options: DecodeOptions, start, end) -> None:
    """ValueError naming a bad argument of :func:`read_video`, before any decoding."""
    if int(options.mv_cell) < 1:
        raise ConfigError(f"mv_cell must be a positive number of pixels, got {options.mv_cell!r}")
    rgb_size(1, 1, options.rgb_short_side)  # rejects a bad short side
    if (start is None) != (end is None) or (
        start is not None and not 0 <= float(start) < float(end)
    ):
        raise ValueError(f"window must satisfy 0 <= start < end (or both None), got {start}, {end}")


def _configure_decoder(context, rgb: bool) -> None:
    # Options must be set before the first packet is decoded.
    options = {"flags2": "+export_mvs"}
    if not rgb:
        options.update(VECTORS_ONLY_OPTIONS)
    context.options = options
    context.thread_count = 1
    context.thread_type = "NONE"


@dataclasses.dataclass(frozen=True)
class _Source:
    """An opened, configured video stream and what its container declares."""

    path: str
    container: object  # av container
    stream: object  # its first video stream
    codec: str  # decoder name
    fps: float
    expected: int  # frames declared (of the window, when there is one); 0: unknown
    window: Optional[Window]


class _Frames:
    """The decoded frames' picture types, vectors and (with ``rgb``) RGB, checked as they come."""

    def __init__(self, path: str, options: DecodeOptions, expected: int):
        self.path, self.options, self.expected = path, options, expected
        self.types: List[str] = []
        self.images: List[np.ndarray] = []
        self.vectors: Optional[VectorRaster] = None
        self.size = None
        self.to_rgb = RgbConverter(options.rgb_short_side, options.rgb_interpolation)

    def add(self, frame) -> None:
        if frame.is_corrupt:
            raise CorruptVideoError(
                self.path,
                f"frame {len(self.types)} is corrupt (damaged or missing data)",
                stage="decode",
            )
        if self.vectors is None:
            self.size = (frame.height, frame.width)
            cell = int(self.options.mv_cell)
            self.vectors = VectorRaster(cell, frame.height, frame.width, self.expected)
        elif frame.height != self.size[0] or frame.width != self.size[1]:
            raise CorruptVideoError(
                self.path,
                f"frame size changes from {self.size[1]}x{self.size[0]} to "
                f"{frame.width}x{frame.height} at frame {len(self.types)}",
                stage="decode",
            )
        self.types.append(_PICT_LETTER.get(frame.pict_type) or _letter(frame))
        self.vectors.add(frame.side_data.get("MOTION_VECTORS"))
        if self.options.rgb:
            self.images.append(self.to_rgb(frame))  # [h, w, 3]


def _demux(source: _Source, frames: _Frames) -> Optional[bytes]:
    """Decodes the stream (or its window) into ``frames``; returns the first packet's bytes."""
    path, window, types = source.path, source.window, frames.types
    first_packet = None
    next_collect = _COLLECT_EVERY
    try:
        for packet in source.container.demux(source.stream):
            if first_packet is None and packet.size:
                first_packet = bytes(packet)
            decoded = decode_packet(packet, path, len(types), "frames")
            done = False  # a window's end was reached
            for frame in decoded:
                where = 0 if window is None else window.position(frame)
                if where < 0:
                    continue  # decoded as a reference only
                if where > 0:
                    done = True  # frames leave the decoder in display order
                    break
                frames.add(frame)
            # Collect with no frame referenced, else the live one would be
            # promoted to an older generation and outlive its use.
            frame = decoded = None
            if len(types) >= next_collect:
                gc.collect(0)
                next_collect = len(types) + _COLLECT_EVERY
            if done:
                break
    except av.FFmpegError as error:
        raise CorruptVideoError(
            path, f"reading packets failed after {len(types)} frames: {error}", stage="decode"
        ) from error
    return first_packet


def _check_count(source: _Source, count: int) -> None:
    path, window, expected = source.path, source.window, source.expected
    if not count and window is not None:
        raise CorruptVideoError(
            path, f"no frame in the window [{window.start:g}, {window.end:g}) s", stage="decode"
        )
    if not count:
        raise CorruptVideoError(path, "no frame could be decoded", stage="decode")
    if expected and count < expected - shortfall_tolerance(expected):
        declares = "its window should hold" if window is not None else "the container declares"
        raise CorruptVideoError(
            path,
            f"decoded {count} frames but {declares} about {expected} (truncated or damaged file)",
            stage="decode",
        )


def _decode(source: _Source, options: DecodeOptions) -> CompressedVideo:
    frames = _Frames(source.path, options, source.expected)
    first_packet = _demux(source, frames)
    _check_count(source, len(frames.types))
    frame_types = "".join(frames.types)
    try:
        motion = frames.vectors.result()  # [T, Hc, Wc, 2]
    except ValueError as error:
        raise VideoError(source.path, f"bad motion vectors: {error}", stage="vectors") from error
    one_past = _one_past_reference(source.codec, frame_types, source.stream, first_packet)
    return CompressedVideo(
        path=source.path,
        codec=source.codec,
        width=frames.size[1],
        height=frames.size[0],
        fps=source.fps,
        frame_types=frame_types,
        iframe_indices=np.array([i for i, t in enumerate(frame_types) if t == "I"], np.int64),
        motion_vectors=motion,
        mv_cell=int(options.mv_cell),
        one_past_reference=one_past,
        frames=np.stack(frames.images) if options.rgb else None,
    )

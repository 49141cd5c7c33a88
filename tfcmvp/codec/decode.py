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

import fractions
import gc
import os
from typing import List, Optional

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from tfcmvp.codec import h264_sps, raster
from tfcmvp.codec.errors import (
    CorruptVideoError,
    NoVideoStreamError,
    UnsupportedCodecError,
    VideoError,
)
from tfcmvp.codec.video import CompressedVideo

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

# Vectors are rasterised in chunks of frames holding about this many grid
# cells: small enough for the temporaries to stay in cache (measured: 16-32
# frames of 320x240 rasterise twice as fast per frame as 300), large enough
# to amortise NumPy's per-call overhead.
_RASTER_CHUNK_CELLS = 32768


def _letter(frame) -> str:
    letter = _PICT_LETTER.get(int(frame.pict_type))
    if letter is None:  # AV_PICTURE_TYPE_NONE: fall back on the key flag
        letter = "I" if frame.key_frame else "P"
    return letter


# Demuxers of raw elementary streams: they report a default 25 fps as the
# stream's average rate whatever the stream says.
_RAW_STREAM_FORMATS = frozenset({"m4v", "h264", "h263", "mpegvideo", "cavsvideo"})


def stream_rate(container, stream, path) -> fractions.Fraction:
    """The stream's exact frame rate.

    From a real container: its average rate, else FFmpeg's guess, else the
    codec's. Raw elementary streams (.m4v, .h264, .m2v) have no container
    rate (their demuxer reports 25): the codec's own timing fields (MPEG-4
    VOL, H.264 VUI), as probed by FFmpeg, come first there.
    """
    candidates = [stream.average_rate, stream.guessed_rate, stream.codec_context.framerate]
    if container.format.name in _RAW_STREAM_FORMATS:
        candidates = [stream.codec_context.framerate, stream.guessed_rate, stream.average_rate]
    for rate in candidates:
        if rate:
            return fractions.Fraction(rate)
    raise CorruptVideoError(path, "the stream declares no frame rate", stage="open")


def _expected_frames(container, stream, fps: float) -> int:
    """Frame count the container declares: its count, else duration x rate.

    0 when it declares neither; always 0 for raw elementary streams, whose
    duration FFmpeg only estimates from the bit rate.
    """
    if container.format.name in _RAW_STREAM_FORMATS:
        return 0
    if stream.frames:
        return int(stream.frames)
    if stream.duration and stream.time_base:
        return int(round(float(stream.duration * stream.time_base) * fps))
    # A container duration is the longest stream's; trust it only alone.
    if len(container.streams) == 1 and container.duration:
        return int(round(container.duration / 1e6 * fps))
    return 0


def _shortfall_tolerance(expected: int) -> int:
    """Frames a complete file may lack against its declared count.

    Edit lists (MP4 cut without re-encoding) drop a few leading frames and
    durations round, so a small shortfall is not damage.
    """
    return max(2, int(0.05 * expected))


def rgb_size(height: int, width: int, short_side: Optional[int]) -> tuple:
    """(h, w) of RGB frames resized to ``short_side``, keeping aspect ratio."""
    if short_side is None:
        return height, width
    if int(short_side) < 1:
        raise ValueError(f"rgb_short_side must be positive, got {short_side!r}")
    if height <= width:
        return int(short_side), max(1, int(round(width * short_side / height)))
    return max(1, int(round(height * short_side / width))), int(short_side)


class RgbConverter:
    """Decoded frames -> uint8 RGB arrays, short side resized to ``short_side`` (swscale).

    The one conversion of :func:`read_video` (and of ``tfcmvp embed``'s
    I-frame decoder, so its images are the extraction's pixel for pixel).
    One reformatter per step keeps its swscale context across frames
    (``frame.reformat`` builds a new one per call: measured 80 us/frame more).
    """

    def __init__(self, short_side: Optional[int] = None, interpolation: str = "AREA"):
        rgb_size(1, 1, short_side)  # rejects a bad short side
        self.short_side = short_side
        self.interpolation = interpolation
        self._scaler, self._to_rgb = VideoReformatter(), VideoReformatter()

    def __call__(self, frame) -> np.ndarray:
        """uint8 ``[h, w, 3]`` of one ``av.VideoFrame``."""
        out_size = rgb_size(frame.height, frame.width, self.short_side)
        if out_size != (frame.height, frame.width):
            # Scale in the decoder's YUV first, then convert the small frame:
            # cheaper than one scale-and-convert pass.
            frame = self._scaler.reformat(
                frame, width=out_size[1], height=out_size[0], interpolation=self.interpolation
            )
        return self._to_rgb.reformat(frame, format="rgb24").to_ndarray()  # [h, w, 3]


def open_video(path):
    """Opens `path` with PyAV: ``(container, its first video stream)``.

    Raises VideoError (stage "open") when FFmpeg cannot open the file and
    NoVideoStreamError when it holds no video stream; the caller closes the
    container.
    """
    path = os.fspath(path)
    try:
        container = av.open(path)
    except av.FFmpegError as error:
        raise VideoError(path, f"cannot open: {error}", stage="open") from error
    if not container.streams.video:
        kinds = ", ".join(s.type for s in container.streams) or "no streams"
        container.close()
        raise NoVideoStreamError(path, f"no video stream (found: {kinds})", stage="open")
    return container, container.streams.video[0]


class _VectorRaster:
    """Collects per-frame vector records and rasterises them in chunks.

    Each frame's side data is copied once into a reused byte buffer (it dies
    with the frame) and viewed as ``AVMotionVector`` records when a chunk is
    rasterised; reusing warm memory measured faster than joining new bytes.
    Chunks are rasterised straight into one output array sized for the
    frames the container declares (grown by doubling if it declares too few),
    so no chunk is copied again.
    """

    def __init__(self, cell: int, height: int, width: int, expected_frames: int):
        self.cell = cell
        self.height = height
        self.width = width
        self.rows, self.cols = raster.grid_shape(height, width, cell)
        self.chunk_frames = max(1, _RASTER_CHUNK_CELLS // (self.rows * self.cols))
        self.out = np.empty(
            (max(expected_frames, self.chunk_frames), self.rows, self.cols, 2), np.float32
        )  # [capacity, Hc, Wc, 2]
        self.done = 0  # frames rasterised into self.out
        self.buffer = bytearray(1 << 16)
        self.used = 0
        self.counts: List[int] = []

    def add(self, side_data) -> None:
        """Adds one frame's MotionVectors side data (None: no vectors)."""
        if side_data is None:
            self.counts.append(0)
        else:
            # memoryview + bytearray slice copy: measured 5x cheaper per frame
            # than np.frombuffer on PyAV's buffer object.
            data = memoryview(side_data)
            end = self.used + data.nbytes
            if end > len(self.buffer):
                grown = bytearray(max(end, 2 * len(self.buffer)))
                grown[: self.used] = self.buffer[: self.used]
                self.buffer = grown
            self.buffer[self.used : end] = data
            self.used = end
            self.counts.append(data.nbytes // raster.MOTION_VECTOR_DTYPE.itemsize)
        if len(self.counts) >= self.chunk_frames:
            self.flush()

    def flush(self) -> None:
        if not self.counts:
            return
        num_frames = len(self.counts)
        if self.done + num_frames > len(self.out):
            grown = np.empty((2 * len(self.out) + num_frames,) + self.out.shape[1:], np.float32)
            grown[: self.done] = self.out[: self.done]
            self.out = grown
        count = self.used // raster.MOTION_VECTOR_DTYPE.itemsize
        # A view of the buffer, dropped before the buffer is written again.
        records = np.frombuffer(self.buffer, raster.MOTION_VECTOR_DTYPE, count=count)  # [N]
        frame_index = np.repeat(np.arange(num_frames, dtype=np.int32), self.counts)  # [N]
        raster.rasterize_vectors(
            records,
            frame_index,
            num_frames,
            self.height,
            self.width,
            self.cell,
            out=self.out[self.done : self.done + num_frames],
        )
        del records
        self.done += num_frames
        self.used, self.counts = 0, []

    def result(self) -> np.ndarray:
        """float32 ``[T, Hc, Wc, 2]``; a copy only when the array is much too large."""
        self.flush()
        if self.done * 10 < len(self.out) * 9:
            return self.out[: self.done].copy()
        return self.out[: self.done]


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
    if int(mv_cell) < 1:
        raise ValueError(f"mv_cell must be a positive number of pixels, got {mv_cell!r}")
    rgb_size(1, 1, rgb_short_side)  # rejects a bad short side before any decoding
    if (start is None) != (end is None) or (
        start is not None and not 0 <= float(start) < float(end)
    ):
        raise ValueError(f"window must satisfy 0 <= start < end (or both None), got {start}, {end}")
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
        expected = _expected_frames(container, stream, fps)
        context = stream.codec_context
        # Options must be set before the first packet is decoded.
        options = {"flags2": "+export_mvs"}
        if not rgb:
            options.update(VECTORS_ONLY_OPTIONS)
        context.options = options
        context.thread_count = 1
        context.thread_type = "NONE"
        window = None
        if start is not None:
            window = _Window(path, container, stream, float(start), float(end), fps, expected)
            expected = window.expected
        return _decode(
            path,
            container,
            stream,
            codec,
            fps,
            expected,
            rgb,
            mv_cell,
            rgb_short_side,
            rgb_interpolation,
            window,
        )


# Frame times are compared with the window's bounds with this tolerance (seconds), so
# that a decimal bound written for a frame time ("0.48" at 25 fps) hits that frame.
_WINDOW_TOLERANCE = 1e-6


class _Window:
    """The ``[start, end)`` seconds of :func:`read_video`: seeks, and says which frames
    to keep."""

    def __init__(self, path, container, stream, start, end, fps, expected_all):
        self.path, self.start, self.end = path, start, end
        self.time_base = stream.time_base
        self.origin = stream.start_time or 0  # pts of the stream's first frame
        # Frames the window should hold: its length, cut at the end of the video.
        declared = expected_all / fps if expected_all else None
        if declared is not None and start >= declared:
            raise CorruptVideoError(
                path,
                f"the window [{start:g}, {end:g}) s starts after the video ends ({declared:.2f} s)",
                stage="decode",
            )
        stop = end if declared is None else min(end, declared)
        self.expected = int(round((stop - start) * fps)) if declared is not None else 0
        if start > 0:
            # Back to the key frame at or before `start` (pts in the stream's time base).
            target = self.origin + int(start / self.time_base)
            try:
                container.seek(target, stream=stream, backward=True, any_frame=False)
            except av.FFmpegError as error:
                raise CorruptVideoError(
                    path, f"cannot seek to {start:g} s: {error}", stage="decode"
                ) from error
        self.checked = False

    def position(self, frame) -> int:
        """-1 before the window, 0 inside, 1 at or after its end."""
        if frame.pts is None:
            raise CorruptVideoError(
                self.path, "frames carry no timestamps: a window cannot be cut", stage="decode"
            )
        seconds = float((frame.pts - self.origin) * self.time_base)
        if not self.checked:
            self.checked = True
            # A seek that lands after `start` (a bad index) would silently lose frames.
            if self.start > 0 and seconds > self.start + _WINDOW_TOLERANCE:
                raise CorruptVideoError(
                    self.path,
                    f"seeking to {self.start:g} s landed at {seconds:.3f} s (no key frame "
                    f"before the window in the index)",
                    stage="decode",
                )
        if seconds < self.start - _WINDOW_TOLERANCE:
            return -1
        return 0 if seconds < self.end - _WINDOW_TOLERANCE else 1


def _decode(
    path,
    container,
    stream,
    codec,
    fps,
    expected,
    rgb,
    mv_cell,
    rgb_short_side,
    rgb_interpolation,
    window=None,
) -> CompressedVideo:
    types: List[str] = []
    images: List[np.ndarray] = []
    vectors = None
    size = None
    first_packet = None
    next_collect = _COLLECT_EVERY
    to_rgb = RgbConverter(rgb_short_side, rgb_interpolation)
    done = False  # a window's end was reached
    try:
        for packet in container.demux(stream):
            if first_packet is None and packet.size:
                first_packet = bytes(packet)
            try:
                frames = packet.decode()
            except av.FFmpegError as error:
                raise CorruptVideoError(
                    path,
                    f"decoding failed after {len(types)} frames "
                    f"(packet at pts {packet.pts}): {error}",
                    stage="decode",
                ) from error
            for frame in frames:
                if window is not None:
                    where = window.position(frame)
                    if where < 0:
                        continue  # decoded as a reference only
                    if where > 0:
                        done = True  # frames leave the decoder in display order
                        break
                if frame.is_corrupt:
                    raise CorruptVideoError(
                        path,
                        f"frame {len(types)} is corrupt (damaged or missing data)",
                        stage="decode",
                    )
                if vectors is None:
                    size = (frame.height, frame.width)
                    vectors = _VectorRaster(int(mv_cell), frame.height, frame.width, expected)
                elif frame.height != size[0] or frame.width != size[1]:
                    raise CorruptVideoError(
                        path,
                        f"frame size changes from {size[1]}x{size[0]} to "
                        f"{frame.width}x{frame.height} at frame {len(types)}",
                        stage="decode",
                    )
                types.append(_PICT_LETTER.get(frame.pict_type) or _letter(frame))
                vectors.add(frame.side_data.get("MOTION_VECTORS"))
                if rgb:
                    images.append(to_rgb(frame))  # [h, w, 3]
            # Collect with no frame referenced, else the live one would be
            # promoted to an older generation and outlive its use.
            frame = frames = None
            if len(types) >= next_collect:
                gc.collect(0)
                next_collect = len(types) + _COLLECT_EVERY
            if done:
                break
    except av.FFmpegError as error:
        raise CorruptVideoError(
            path, f"reading packets failed after {len(types)} frames: {error}", stage="decode"
        ) from error

    if not types and window is not None:
        raise CorruptVideoError(
            path, f"no frame in the window [{window.start:g}, {window.end:g}) s", stage="decode"
        )
    if not types:
        raise CorruptVideoError(path, "no frame could be decoded", stage="decode")
    if expected and len(types) < expected - _shortfall_tolerance(expected):
        declares = "its window should hold" if window is not None else "the container declares"
        raise CorruptVideoError(
            path,
            f"decoded {len(types)} frames but {declares} about {expected} "
            f"(truncated or damaged file)",
            stage="decode",
        )
    frame_types = "".join(types)
    try:
        motion = vectors.result()  # [T, Hc, Wc, 2]
    except ValueError as error:
        raise VideoError(path, f"bad motion vectors: {error}", stage="vectors") from error
    return CompressedVideo(
        path=path,
        codec=codec,
        width=size[1],
        height=size[0],
        fps=fps,
        frame_types=frame_types,
        iframe_indices=np.array([i for i, t in enumerate(frame_types) if t == "I"], np.int64),
        motion_vectors=motion,
        mv_cell=int(mv_cell),
        one_past_reference=_one_past_reference(codec, frame_types, stream, first_packet),
        frames=np.stack(images) if rgb else None,
    )

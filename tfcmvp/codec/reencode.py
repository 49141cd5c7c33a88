"""CoViAR-style re-encoding of any video FFmpeg reads: :func:`reencode`; and
I-frames taken from a separate low-bit-rate encode: :func:`reencoded_iframes`.

The output has an I-frame every ``gop`` frames and P-frames in between (no
B-frames, one reference frame, no scene-cut keyframes), the source's frame
count and frame rate, and either a constant quality (the default; the
quantiser is set explicitly, never left to the encoder) or, with ``bitrate``,
a target bit rate under the ffmpeg command line's rate control. Its vectors are
then exactly one frame of motion (``CompressedVideo.one_past_reference`` is
True).

Settings of the papers: CoViAR re-encoded with ``-q:v 1`` (``quality=1``); the
authors of the context/motion paper ran FFmpeg's mpeg4 encoder at its defaults,
200 kb/s (``bitrate=200_000``) at the native size, and took their I-frames
(the context) from that encode while the RGB clips came from the original
decode, so an I-frame is never pixel-identical to a clip frame.
:func:`reencoded_iframes` reproduces that for the I-frames alone.

The source is decoded and encoded frame by frame, so memory does not grow
with the video's length. Only the first video stream is kept (no audio). Odd frame sizes lose their
last row/column (see :mod:`tfcmvp.codec.encode`).
"""

from __future__ import annotations

import itertools
import os
import tempfile
from typing import Iterable, Iterator, Optional, Sequence

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from tfcmvp.codec.encode import MAX_MPEG_GOP, write_video
from tfcmvp.codec.errors import CorruptVideoError, NoVideoStreamError, VideoError
from tfcmvp.codec.rgb import rgb_size
from tfcmvp.codec.stream import stream_rate
from tfcmvp.errors import ConfigError

# Bit rate of the authors' I-frame encode: FFmpeg's default -b:v, which their
# mpeg4 re-encode ran at.
DEFAULT_IFRAME_BITRATE = 200_000


def _source_frames(path: str, container, stream, rgb: bool) -> Iterator:
    """The decoded frames as RGB arrays ``[H, W, 3]``, or as the decoder's ``av.VideoFrame``."""
    try:
        for frame in container.decode(stream):
            yield frame.to_ndarray(format="rgb24") if rgb else frame
    except av.FFmpegError as error:
        raise CorruptVideoError(
            path, f"decoding the source failed: {error}", stage="decode"
        ) from error


def reencode(
    src,
    dst,
    codec: str = "mpeg4",
    gop: int = 12,
    quality: Optional[float] = None,
    bitrate: Optional[int] = None,
    keyframes: Optional[Iterable[int]] = None,
    rgb_round_trip: bool = True,
) -> str:
    """Re-encodes ``src`` to ``dst`` as I + (gop-1) P-frames per GOP.

    Args:
      src: input video (any codec and container FFmpeg decodes).
      dst: output path; the container follows its extension.
      codec: "mpeg4" (MPEG-4 Part 2, as CoViAR) or "h264".
      gop: I-frame spacing (12 as CoViAR).
      quality: MPEG-4 fixed quantiser 1..31 (``-q:v``; CoViAR used 1) or
        H.264 CRF 0..51; None (and no ``bitrate``) uses
        ``encode.DEFAULT_QUALITY`` (MPEG-4: 2).
      bitrate: target bits per second instead of a constant quality
        (the authors: 200_000, ffmpeg's default); not with ``quality``.
      keyframes: frame indices forced to be I-frames besides the GOP grid.
      rgb_round_trip: True (the default, what ``--reencode`` has always
        written, kept so its output stays byte for byte the same) converts
        each decoded frame to RGB and back before encoding; False hands the
        decoder's YUV frames to the encoder as ffmpeg does. The round trip
        alone moves the pixels by 2.0 levels (mean absolute difference, 0-255)
        on ``tfcmvp synth`` textures, mostly in the chroma.

    Returns:
      ``dst`` as a string.

    Raises:
      ValueError: codec is not "mpeg4" or "h264".
      NoVideoStreamError, CorruptVideoError, VideoError: the source cannot be
        read or the output written (messages name the file).
    """
    src, dst = os.fspath(src), os.fspath(dst)
    if codec not in ("mpeg4", "h264"):
        raise ConfigError(f'reencode codec must be "mpeg4" or "h264", got {codec!r}')
    try:
        container = av.open(src)
    except av.FFmpegError as error:
        raise VideoError(src, f"cannot open: {error}", stage="open") from error
    with container:
        if not container.streams.video:
            raise NoVideoStreamError(src, "no video stream to re-encode", stage="open")
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1
        rate = stream_rate(container, stream, src)
        frames = _source_frames(src, container, stream, rgb=rgb_round_trip)
        first = next(frames, None)
        if first is None:
            raise CorruptVideoError(src, "no frame could be decoded", stage="decode")
        write_video(
            dst,
            itertools.chain([first], frames),
            fps=rate,
            codec=codec,
            gop=gop,
            b_frames=0,
            refs=1,
            quality=quality,
            bitrate=bitrate,
            keyframes=keyframes,
        )
    return dst


def iframe_gop(iframe_indices: Sequence[int], num_frames: int) -> int:
    """The GOP of an encode whose I-frames are forced onto ``iframe_indices``.

    The longest run from one I-frame to the next (or from the last to the
    end), so that the encoder adds no I-frame of its own between them: 12 for
    CoViAR's grid. Capped at ``encode.MAX_MPEG_GOP``, the mpegvideo limit.
    """
    bounds = [0, *(int(i) for i in iframe_indices), int(num_frames)]
    longest = max(b - a for a, b in zip(bounds, bounds[1:]))
    return int(min(max(longest, 1), MAX_MPEG_GOP))


def reencoded_iframes(
    src,
    iframe_indices: Sequence[int],
    num_frames: int,
    *,
    bitrate: int = DEFAULT_IFRAME_BITRATE,
    rgb_short_side: Optional[int] = None,
    rgb_interpolation: str = "AREA",
    scratch_dir: Optional[str] = None,
) -> np.ndarray:
    """The frames at ``iframe_indices`` as I-frames of a low-bit-rate MPEG-4 re-encode.

    Re-encodes the decoded frames of ``src`` (in YUV, as ffmpeg would) with
    the mpeg4 encoder at ``bitrate`` (no B-frames, I-frames forced onto
    ``iframe_indices`` and the GOP set by :func:`iframe_gop`, so the I-frames
    fall where the source's are), decodes that encode and returns its I-frames, resized like
    ``read_video(..., rgb=True, rgb_short_side=...)`` resizes (in YUV, then
    converted to RGB), so the result differs from the frames of ``read_video``
    by the low-bit-rate coding alone. Encoder and decoder run single-threaded:
    the same input gives the same pixels. The temporary encode (native size)
    is written under ``scratch_dir`` (default: the system's temp folder) and
    deleted.

    Args:
      src: the video whose decode gave ``iframe_indices`` (the same file, so
        that frame i here is frame i there).
      iframe_indices: display indices, increasing, in ``[0, num_frames)``.
      num_frames: frames of that decode; the re-encode must have as many.
      bitrate: bits per second of the re-encode (the authors': 200_000).
      rgb_short_side, rgb_interpolation: as in ``read_video``.
      scratch_dir: folder for the temporary encode.

    Returns:
      uint8 ``[K, h, w, 3]``, one image per index (``[0, 0, 0, 3]`` for none).

    Raises:
      ValueError: bad indices or bit rate.
      VideoError (stage "reencode"): the source cannot be re-encoded, or the
        re-encode has another frame count or no I-frame at an index (messages
        name ``src``).
    """
    src = os.fspath(src)
    wanted = [int(i) for i in iframe_indices]
    if any(b <= a for a, b in zip(wanted, wanted[1:])) or any(
        not 0 <= i < num_frames for i in wanted
    ):
        raise ValueError(
            f"{src}: I-frame indices must increase within [0, {num_frames}), "
            f"got {wanted[:8]}{'...' if len(wanted) > 8 else ''}"
        )
    rgb_size(1, 1, rgb_short_side)  # rejects a bad short side before any encoding
    if not wanted:
        return np.zeros((0, 0, 0, 3), np.uint8)
    handle, path = tempfile.mkstemp(prefix="iframes-", suffix=".avi", dir=scratch_dir)
    os.close(handle)
    try:
        reencode(
            src,
            path,
            codec="mpeg4",
            gop=iframe_gop(wanted, num_frames),
            bitrate=bitrate,
            keyframes=wanted,
            rgb_round_trip=False,
        )
        return _read_iframes(path, src, wanted, num_frames, rgb_short_side, rgb_interpolation)
    except VideoError as error:
        # Name the source, not the temp file; keep the cause.
        message = str(error).replace(path, "the I-frame re-encode")
        message = message[len(src) + 2 :] if message.startswith(f"{src}: ") else message
        raise VideoError(src, message, stage="reencode") from error
    finally:
        if os.path.exists(path):
            os.remove(path)


def _read_iframes(path, src, wanted, num_frames, short_side, interpolation) -> np.ndarray:
    """Decodes ``path`` and returns its frames at ``wanted`` (each checked to be an I-frame)."""
    positions = set(wanted)
    images = []
    count = 0
    scaler, to_rgb = VideoReformatter(), VideoReformatter()  # as read_video resizes
    try:
        with av.open(path) as container:
            stream = container.streams.video[0]
            stream.codec_context.thread_count = 1
            stream.codec_context.thread_type = "NONE"
            for frame in container.decode(stream):
                if count in positions:
                    if int(frame.pict_type) != int(av.video.frame.PictureType.I):
                        raise VideoError(
                            src,
                            f"the I-frame re-encode has no I-frame at frame {count}",
                            stage="reencode",
                        )
                    size = rgb_size(frame.height, frame.width, short_side)
                    if size != (frame.height, frame.width):
                        frame = scaler.reformat(
                            frame, width=size[1], height=size[0], interpolation=interpolation
                        )
                    images.append(to_rgb.reformat(frame, format="rgb24").to_ndarray())  # [h, w, 3]
                count += 1
    except av.FFmpegError as error:
        raise VideoError(
            src, f"decoding the I-frame re-encode failed: {error}", stage="reencode"
        ) from error
    if count != num_frames:
        raise VideoError(
            src,
            f"the I-frame re-encode has {count} frames, the decode {num_frames}",
            stage="reencode",
        )
    return np.stack(images)  # [K, h, w, 3]

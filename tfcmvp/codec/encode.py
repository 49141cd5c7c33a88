"""Writing RGB frames to a compressed video with an explicit GOP: :func:`write_video`.

Everything that shapes the compressed stream is set explicitly rather than left
to encoder defaults: the GOP length (I-frames exactly every ``gop`` frames, no
scene-cut keyframes, plus any frames forced with ``keyframes``), the number of
consecutive B-frames, the number of reference frames (H.264) and the rate
control: a constant quality (a fixed quantiser for MPEG-4 Part 2 and MPEG-2, the
CRF for H.264) by default, or a target bit rate when ``bitrate`` is given.

Sizes: ``yuv420p`` stores chroma at half resolution, so width and height must
be even. Frames of odd size are cropped by one pixel on the right and/or bottom
(the last column/row is dropped), the same crop for every frame; the written
video is therefore ``(H - H % 2) x (W - W % 2)``.
"""

from __future__ import annotations

import fractions
import itertools
import os
from typing import Iterable, Optional, Union

import av
import numpy as np

from tfcmvp.codec.errors import VideoError
from tfcmvp.errors import ConfigError

SUPPORTED_ENCODERS = ("mpeg4", "h264", "mpeg2video")

# Constant-quality defaults used when ``quality`` is None. MPEG-4 / MPEG-2:
# the fixed quantiser of ``ffmpeg -q:v`` (1 best .. 31 worst); 2 is visually
# near-lossless and keeps the motion search accurate. H.264: x264's CRF
# (0 lossless .. 51 worst); 18 is visually near-lossless.
DEFAULT_QUALITY = {"mpeg4": 2, "mpeg2video": 2, "h264": 18}

# Bit-rate mode reproduces the ffmpeg command line's rate control: its
# AVCodecContext default bit-rate tolerance ("-bt") is 20 x its default bit
# rate (200 kb/s), 4000 kb/s whatever -b:v says. PyAV's add_stream sets 128 kb/s
# instead, with which the mpeg4 encoder holds the target much more tightly than
# ffmpeg does (measured, 200 kb/s target, 48 frames of 320x240 at 25 fps:
# 305 kb/s with PyAV's tolerance, 647 kb/s with ffmpeg's).
FFMPEG_BITRATE_TOLERANCE = 4_000_000
# The mpegvideo encoders cap the GOP at 600 frames (they warn and reduce it).
MAX_MPEG_GOP = 600

# MPEG-4 Part 2 stores the time base denominator in 16 bits; limiting the
# rate's denominator keeps NTSC rates exact (30000/1001) and always legal.
_MAX_RATE_DENOMINATOR = 1001
# mpegvideo encoders (mpeg4, mpeg2video) turn a P-frame into an I-frame when
# the scene-change score exceeds this; a huge value disables scene cuts.
_NO_SCENE_CUT = "1000000000"


def frame_rate(fps: Union[float, int, fractions.Fraction]) -> fractions.Fraction:
    """``fps`` as an exact fraction (29.97 -> 30000/1001)."""
    rate = fractions.Fraction(fps).limit_denominator(_MAX_RATE_DENOMINATOR)
    if rate <= 0:
        raise ConfigError(f"fps must be positive, got {fps!r}")
    return rate


def _check_arguments(codec, gop, b_frames, refs, quality, bitrate):
    if codec not in SUPPORTED_ENCODERS:
        raise ConfigError(f"codec must be one of {SUPPORTED_ENCODERS}, got {codec!r}")
    if int(gop) < 1:
        raise ConfigError(f"gop must be >= 1, got {gop!r}")
    if int(b_frames) < 0:
        raise ConfigError(f"b_frames must be >= 0, got {b_frames!r}")
    if int(refs) < 1:
        raise ConfigError(f"refs must be >= 1, got {refs!r}")
    if codec != "h264" and int(refs) != 1:
        raise ConfigError(f"{codec} P-frames always use one reference frame; got refs={refs!r}")
    if quality is not None:
        low, high = (0, 51) if codec == "h264" else (1, 31)
        if not low <= quality <= high:
            raise ConfigError(f"quality for {codec} must lie in [{low}, {high}], got {quality!r}")
    if bitrate is not None:
        if quality is not None:
            raise ConfigError(
                f"give quality or bitrate, not both (quality={quality!r}, bitrate={bitrate!r})"
            )
        if int(bitrate) < 1000:
            raise ConfigError(f"bitrate must be >= 1000 bits/s, got {bitrate!r}")


def _configure(stream, codec, gop, b_frames, refs, quality, bitrate):
    """Sets GOP, B-frames, references and the rate control on an encoder stream."""
    cc = stream.codec_context
    # One encoder thread: slice/frame threading makes the output bytes (and
    # the vectors) depend on the core count, so "same seed, same file" would
    # hold only between machines of the same size.
    cc.thread_count = 1
    cc.thread_type = "NONE"
    cc.gop_size = int(gop)
    cc.max_b_frames = int(b_frames)
    if bitrate is not None:
        # One-pass average bit rate, as `ffmpeg -b:v`: the encoder picks each
        # frame's quantiser (mpegvideo: between the default qmin 2 and qmax 31).
        cc.bit_rate = int(bitrate)
        cc.bit_rate_tolerance = FFMPEG_BITRATE_TOLERANCE
    if codec == "h264":
        crf = DEFAULT_QUALITY["h264"] if quality is None else quality
        # x264 options win over the preset. scenecut=0 and keyint=min-keyint
        # pin I-frames to the grid; b-adapt=0 makes every run of B-frames
        # exactly `bframes` long (up to GOP boundaries); open-gop off keeps
        # each GOP decodable on its own.
        x264 = (
            f"keyint={int(gop)}:min-keyint={int(gop)}:scenecut=0:"
            f"bframes={int(b_frames)}:b-adapt=0:ref={int(refs)}:open-gop=0"
        )
        cc.options = {"preset": "medium", "x264-params": x264}
        if bitrate is None:
            cc.options = {"crf": str(crf), **cc.options}
    elif bitrate is not None:
        cc.options = {"sc_threshold": _NO_SCENE_CUT}
    else:
        qscale = DEFAULT_QUALITY[codec] if quality is None else int(quality)
        # ffmpeg's -q:v sets the qscale flag and a per-frame lambda; through
        # PyAV the per-frame value is not set, so the quantiser is pinned with
        # qmin = qmax = q instead (measured: file size then follows q).
        cc.qscale = True
        cc.global_quality = qscale
        cc.qmin = qscale
        cc.qmax = qscale
        cc.options = {"sc_threshold": _NO_SCENE_CUT}


def _yuv_frame(path, index, frame, source_hw, size):
    """A decoded ``av.VideoFrame`` made ready for the encoder without an RGB round trip.

    A decoded frame keeps its source's picture type, which encoders honour as
    a request: it is reset, so the GOP settings alone decide. Frames of odd
    size go through RGB to be cropped like arrays are.
    """
    if (frame.height, frame.width) != tuple(source_hw):
        raise ValueError(
            f"{path}: frame {index} is {frame.width}x{frame.height}, expected "
            f"{source_hw[1]}x{source_hw[0]} like frame 0"
        )
    if (frame.height, frame.width) != tuple(size):
        rgb = frame.to_ndarray(format="rgb24")[: size[0], : size[1]]  # [H, W, 3]
        return av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    if frame.format.name != "yuv420p":
        frame = frame.reformat(format="yuv420p")
    frame.pict_type = av.video.frame.PictureType.NONE
    return frame


def write_video(
    path,
    frames: Union[np.ndarray, Iterable[np.ndarray], Iterable[av.VideoFrame]],
    fps: Union[float, int, fractions.Fraction] = 25,
    codec: str = "mpeg4",
    gop: int = 12,
    b_frames: int = 0,
    refs: int = 1,
    quality: Optional[float] = None,
    format: Optional[str] = None,
    bitrate: Optional[int] = None,
    keyframes: Optional[Iterable[int]] = None,
) -> str:
    """Encodes uint8 RGB frames to ``path`` with an explicit stream structure.

    Args:
      path: output file; the container follows the extension (.avi, .mp4,
        .mkv, .mpg, ...) unless ``format`` is given.
      frames: uint8 RGB ``[T, H, W, 3]`` array, or an iterable of ``[H, W, 3]``
        arrays of one size, or of decoded ``av.VideoFrame`` objects (encoded
        as they are, in YUV, without the colour conversions of an RGB round
        trip; their picture type is reset). Odd H/W are cropped to even (see
        module doc).
      fps: frame rate; floats are made exact fractions (29.97 -> 30000/1001).
        MPEG-2 accepts only its standard rates (24, 25, 30, 50, 60, NTSC).
      codec: "mpeg4" (MPEG-4 Part 2), "h264" (libx264) or "mpeg2video".
      gop: distance between I-frames; I-frames fall exactly on 0, gop, 2*gop...
      b_frames: consecutive B-frames between reference frames (0: none).
      refs: reference frames per P-frame; H.264 only (MPEG-4/2 always use 1).
      quality: constant quality; MPEG-4/MPEG-2 fixed quantiser 1..31 (the
        ``-q:v`` value), H.264 CRF 0..51. None uses ``DEFAULT_QUALITY``.
      format: FFmpeg muxer name when the extension does not say it, e.g.
        "m4v" for a raw MPEG-4 Part 2 elementary stream ("x.m4v" alone
        picks the iPod MP4 muxer), "h264" for a raw Annex B stream.
      bitrate: target bits per second instead of a constant quality (e.g.
        200_000, the ffmpeg default the authors' re-encode ran at), with the
        ffmpeg command line's rate tolerance (``FFMPEG_BITRATE_TOLERANCE``).
        Not together with ``quality``.
      keyframes: frame indices that must be I-frames besides the ``gop`` grid
        (in MPEG-4 Part 2 each restarts the GOP count). MPEG-4 / MPEG-2 GOPs
        are capped at ``MAX_MPEG_GOP`` frames by the encoder.

    Returns:
      ``path`` as a string. Every input frame is written, one per 1/fps.

    Raises:
      ValueError: bad arguments or frames (names the value).
      VideoError: FFmpeg failed (stage "encode"; names the file and cause).
    """
    path = os.fspath(path)
    _check_arguments(codec, gop, b_frames, refs, quality, bitrate)
    forced = frozenset(int(i) for i in keyframes) if keyframes is not None else frozenset()
    rate = frame_rate(fps)
    iterator = iter(frames)
    first, source_hw = _first_frame(path, next(iterator, None))
    size = (source_hw[0] - source_hw[0] % 2, source_hw[1] - source_hw[1] % 2)  # even (h, w)
    if size[0] < 2 or size[1] < 2:
        raise ValueError(f"{path}: frames of {tuple(source_hw)} are too small to encode")

    try:
        container = av.open(path, mode="w", format=format)
    except av.FFmpegError as error:
        raise VideoError(path, f"cannot create the output file: {error}", stage="encode") from error
    try:
        stream = _add_stream(container, codec, rate, size)
        _configure(stream, codec, gop, b_frames, refs, quality, bitrate)
        images = itertools.chain([first], iterator)
        for index, image in enumerate(images):
            frame = _input_frame(path, index, image, source_hw, size)
            frame.pts = index
            frame.time_base = stream.codec_context.time_base
            if index in forced:  # the encoder honours a requested picture type
                frame.pict_type = av.video.frame.PictureType.I
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):  # flush delayed (B-frame) packets
            container.mux(packet)
        container.close()
    except BaseException as error:
        # Leave no half-written file behind; the original error is the one
        # worth reporting, so a failing close is ignored.
        try:
            container.close()
        except av.FFmpegError:
            pass
        if os.path.exists(path):
            os.remove(path)
        if isinstance(error, av.FFmpegError):
            raise VideoError(path, f"{codec} encoding failed: {error}", stage="encode") from error
        raise
    return path


def _add_stream(container, codec: str, rate: fractions.Fraction, size: tuple):
    stream = container.add_stream(codec, rate=rate)
    stream.width = size[1]
    stream.height = size[0]
    stream.pix_fmt = "yuv420p"
    # One tick per frame: frame i is shown at i / fps.
    stream.codec_context.time_base = 1 / rate
    return stream


def _first_frame(path: str, first) -> tuple:
    """(first frame, its (H, W)); ValueError naming the file when there is none or it is
    not uint8 RGB."""
    if first is None:
        raise ValueError(f"{path}: no frames to write")
    if isinstance(first, av.VideoFrame):
        return first, (first.height, first.width)
    first = np.asarray(first)
    if first.dtype != np.uint8 or first.ndim != 3 or first.shape[2] != 3:
        raise ValueError(
            f"{path}: frames must be uint8 RGB [H, W, 3], got {first.dtype} {first.shape}"
        )
    return first, first.shape[:2]


def _input_frame(path: str, index: int, image, source_hw, size) -> av.VideoFrame:
    """Frame ``index`` as the encoder takes it, cropped to the even ``size``."""
    if isinstance(image, av.VideoFrame):
        return _yuv_frame(path, index, image, source_hw, size)
    image = np.asarray(image)
    if image.shape != (*source_hw, 3) or image.dtype != np.uint8:
        raise ValueError(
            f"{path}: frame {index} is {image.dtype} {image.shape}, "
            f"expected uint8 {(*source_hw, 3)} like frame 0"
        )
    image = np.ascontiguousarray(image[: size[0], : size[1]])  # [H, W, 3]
    return av.VideoFrame.from_ndarray(image, format="rgb24")

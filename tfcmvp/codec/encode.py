"""Writing RGB frames to a compressed video with an explicit GOP: :func:`write_video`.

Everything that shapes the compressed stream is set explicitly rather than left
to encoder defaults: the GOP length (I-frames exactly every ``gop`` frames, no
scene-cut keyframes), the number of consecutive B-frames, the number of
reference frames (H.264) and a constant quality (a fixed quantiser for MPEG-4
Part 2 and MPEG-2, the CRF for H.264), never the encoder's default bit rate.

Sizes: ``yuv420p`` stores chroma at half resolution, so width and height must
be even. Frames of odd size are cropped by one pixel on the right and/or bottom
(the last column/row is dropped), the same crop for every frame; the written
video is therefore ``(H - H % 2) x (W - W % 2)``.
"""

from __future__ import annotations

import fractions
import os
from typing import Iterable, Optional, Union

import av
import numpy as np

from tfcmvp.codec.errors import VideoError

SUPPORTED_ENCODERS = ("mpeg4", "h264", "mpeg2video")

# Constant-quality defaults used when ``quality`` is None. MPEG-4 / MPEG-2:
# the fixed quantiser of ``ffmpeg -q:v`` (1 best .. 31 worst); 2 is visually
# near-lossless and keeps the motion search accurate. H.264: x264's CRF
# (0 lossless .. 51 worst); 18 is visually near-lossless.
DEFAULT_QUALITY = {"mpeg4": 2, "mpeg2video": 2, "h264": 18}

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
        raise ValueError(f"fps must be positive, got {fps!r}")
    return rate


def _check_arguments(codec, gop, b_frames, refs, quality):
    if codec not in SUPPORTED_ENCODERS:
        raise ValueError(f"codec must be one of {SUPPORTED_ENCODERS}, got {codec!r}")
    if int(gop) < 1:
        raise ValueError(f"gop must be >= 1, got {gop!r}")
    if int(b_frames) < 0:
        raise ValueError(f"b_frames must be >= 0, got {b_frames!r}")
    if int(refs) < 1:
        raise ValueError(f"refs must be >= 1, got {refs!r}")
    if codec != "h264" and int(refs) != 1:
        raise ValueError(f"{codec} P-frames always use one reference frame; got refs={refs!r}")
    if quality is not None:
        low, high = (0, 51) if codec == "h264" else (1, 31)
        if not low <= quality <= high:
            raise ValueError(f"quality for {codec} must lie in [{low}, {high}], got {quality!r}")


def _configure(stream, codec, gop, b_frames, refs, quality):
    """Sets GOP, B-frames, references and constant quality on an encoder stream."""
    cc = stream.codec_context
    # One encoder thread: slice/frame threading makes the output bytes (and
    # the vectors) depend on the core count, so "same seed, same file" would
    # hold only between machines of the same size.
    cc.thread_count = 1
    cc.thread_type = "NONE"
    cc.gop_size = int(gop)
    cc.max_b_frames = int(b_frames)
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
        cc.options = {"crf": str(crf), "preset": "medium", "x264-params": x264}
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


def write_video(
    path,
    frames: Union[np.ndarray, Iterable[np.ndarray]],
    fps: Union[float, int, fractions.Fraction] = 25,
    codec: str = "mpeg4",
    gop: int = 12,
    b_frames: int = 0,
    refs: int = 1,
    quality: Optional[float] = None,
    format: Optional[str] = None,
) -> str:
    """Encodes uint8 RGB frames to ``path`` with an explicit stream structure.

    Args:
      path: output file; the container follows the extension (.avi, .mp4,
        .mkv, .mpg, ...) unless ``format`` is given.
      frames: uint8 RGB ``[T, H, W, 3]`` array, or an iterable of ``[H, W, 3]``
        arrays of one size. Odd H/W are cropped to even (see module doc).
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

    Returns:
      ``path`` as a string. Every input frame is written, one per 1/fps.

    Raises:
      ValueError: bad arguments or frames (names the value).
      VideoError: FFmpeg failed (stage "encode"; names the file and cause).
    """
    path = os.fspath(path)
    _check_arguments(codec, gop, b_frames, refs, quality)
    rate = frame_rate(fps)
    iterator = iter(frames)
    first = next(iterator, None)
    if first is None:
        raise ValueError(f"{path}: no frames to write")
    first = np.asarray(first)
    if first.dtype != np.uint8 or first.ndim != 3 or first.shape[2] != 3:
        raise ValueError(
            f"{path}: frames must be uint8 RGB [H, W, 3], got {first.dtype} {first.shape}"
        )
    height, width = first.shape[0] - first.shape[0] % 2, first.shape[1] - first.shape[1] % 2
    if height < 2 or width < 2:
        raise ValueError(f"{path}: frames of {first.shape[:2]} are too small to encode")

    try:
        container = av.open(path, mode="w", format=format)
    except av.FFmpegError as error:
        raise VideoError(path, f"cannot create the output file: {error}", stage="encode") from error
    try:
        stream = container.add_stream(codec, rate=rate)
        stream.width = width
        stream.height = height
        stream.pix_fmt = "yuv420p"
        # One tick per frame: frame i is shown at i / fps.
        stream.codec_context.time_base = 1 / rate
        _configure(stream, codec, gop, b_frames, refs, quality)

        def encode(index, image):
            image = np.asarray(image)
            if image.shape != first.shape or image.dtype != np.uint8:
                raise ValueError(
                    f"{path}: frame {index} is {image.dtype} {image.shape}, "
                    f"expected uint8 {first.shape} like frame 0"
                )
            image = np.ascontiguousarray(image[:height, :width])  # [H, W, 3]
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = index
            frame.time_base = stream.codec_context.time_base
            for packet in stream.encode(frame):
                container.mux(packet)

        encode(0, first)
        for index, image in enumerate(iterator, start=1):
            encode(index, image)
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

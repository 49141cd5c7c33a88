"""CoViAR-style re-encoding of any video FFmpeg reads: :func:`reencode`.

The output has an I-frame every ``gop`` frames and P-frames in between (no
B-frames, one reference frame, no scene-cut keyframes), the source's frame
count and frame rate, and a constant quality set explicitly (never the
encoder's default bit rate). Its vectors are then exactly one frame of
motion (``CompressedVideo.one_past_reference`` is True).

The source is decoded and encoded frame by frame, so memory does not grow
with the video's length. Only the first video stream is kept (no audio). Odd frame sizes lose their
last row/column (see :mod:`tfcmvp.codec.encode`).
"""

from __future__ import annotations

import itertools
import os
from typing import Iterator, Optional

import av
import numpy as np

from tfcmvp.codec.decode import stream_rate
from tfcmvp.codec.encode import write_video
from tfcmvp.codec.errors import CorruptVideoError, NoVideoStreamError, VideoError


def _source_frames(path: str, container, stream) -> Iterator[np.ndarray]:
    try:
        for frame in container.decode(stream):
            yield frame.to_ndarray(format="rgb24")  # [H, W, 3]
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
) -> str:
    """Re-encodes ``src`` to ``dst`` as I + (gop-1) P-frames per GOP.

    Args:
      src: input video (any codec and container FFmpeg decodes).
      dst: output path; the container follows its extension.
      codec: "mpeg4" (MPEG-4 Part 2, as CoViAR) or "h264".
      gop: I-frame spacing (12 as CoViAR).
      quality: MPEG-4 fixed quantiser 1..31 (``-q:v``; CoViAR used 1) or
        H.264 CRF 0..51; None uses ``encode.DEFAULT_QUALITY``.

    Returns:
      ``dst`` as a string.

    Raises:
      ValueError: codec is not "mpeg4" or "h264".
      NoVideoStreamError, CorruptVideoError, VideoError: the source cannot be
        read or the output written (messages name the file).
    """
    src, dst = os.fspath(src), os.fspath(dst)
    if codec not in ("mpeg4", "h264"):
        raise ValueError(f'reencode codec must be "mpeg4" or "h264", got {codec!r}')
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
        frames = _source_frames(src, container, stream)
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
        )
    return dst

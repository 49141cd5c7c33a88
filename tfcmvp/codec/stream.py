"""Opening a video with PyAV and what its container declares: rate, frame count.

Shared by :mod:`tfcmvp.codec.decode` (extraction), :mod:`tfcmvp.codec.reencode`
and ``tfcmvp embed``'s key-frame decoder, so all of them judge a file the same way.
"""

from __future__ import annotations

import fractions
import os

import av

from tfcmvp.codec.errors import CorruptVideoError, NoVideoStreamError, VideoError

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


def expected_frames(container, stream, fps: float) -> int:
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


def shortfall_tolerance(expected: int) -> int:
    """Frames a complete file may lack against its declared count.

    Edit lists (MP4 cut without re-encoding) drop a few leading frames and
    durations round, so a small shortfall is not damage.
    """
    return max(2, int(0.05 * expected))


def decode_packet(packet, path, count: int, unit: str) -> list:
    """The frames FFmpeg decodes from ``packet``. Its failure becomes a
    CorruptVideoError (stage "decode") naming the file, how far decoding got
    (``count`` ``unit``: "12 frames") and the packet."""
    try:
        return packet.decode()
    except av.FFmpegError as error:
        raise CorruptVideoError(
            path,
            f"decoding failed after {count} {unit} (packet at pts {packet.pts}): {error}",
            stage="decode",
        ) from error


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

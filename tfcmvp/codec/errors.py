"""Errors raised by the codec layer. Each message names the file and the cause.

Their base, :class:`VideoError`, is defined with the other layer bases in
:mod:`tfcmvp.errors` and stays importable from here.
"""

from tfcmvp.errors import VideoError


class NoVideoStreamError(VideoError):
    """The file opens but holds no video stream (audio-only, subtitles, ...)."""


class UnsupportedCodecError(VideoError):
    """The stream's decoder exports no motion vectors (VP9, AV1, HEVC, ...)."""


class CorruptVideoError(VideoError):
    """The file is truncated or damaged: decoding failed or stopped early."""

"""Errors raised by the codec layer. Each message names the file and the cause."""


class VideoError(Exception):
    """A video could not be turned into compressed-domain arrays.

    ``stage`` says where it failed ("open", "decode", "vectors", "encode", ...)
    so that pipelines can report it without parsing the message.
    """

    def __init__(self, path, message: str, stage: str = "decode"):
        self.path = str(path)
        self.stage = stage
        super().__init__(f"{self.path}: {message}")


class NoVideoStreamError(VideoError):
    """The file opens but holds no video stream (audio-only, subtitles, ...)."""


class UnsupportedCodecError(VideoError):
    """The stream's decoder exports no motion vectors (VP9, AV1, HEVC, ...)."""


class CorruptVideoError(VideoError):
    """The file is truncated or damaged: decoding failed or stopped early."""

"""Codec layer: video files <-> compressed-domain arrays.

``read_video`` decodes picture types, motion vectors (rasterised to a cell
grid) and optionally RGB frames; ``write_video`` encodes frames with an
explicit GOP; ``reencode`` makes any video CoViAR-style (I + 11 P, no B);
``check_gop`` reports how a stream departs from that structure.
"""

from tfcmvp.codec.decode import DEFAULT_MV_CELL, read_video
from tfcmvp.codec.encode import write_video
from tfcmvp.codec.errors import (
    CorruptVideoError,
    NoVideoStreamError,
    UnsupportedCodecError,
    VideoError,
)
from tfcmvp.codec.gop import GopReport, check_gop
from tfcmvp.codec.reencode import reencode
from tfcmvp.codec.video import CompressedVideo

__all__ = [
    "CompressedVideo",
    "CorruptVideoError",
    "DEFAULT_MV_CELL",
    "GopReport",
    "NoVideoStreamError",
    "UnsupportedCodecError",
    "VideoError",
    "check_gop",
    "read_video",
    "reencode",
    "write_video",
]

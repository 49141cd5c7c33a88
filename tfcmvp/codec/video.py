"""The in-memory result of decoding one video: :class:`CompressedVideo`."""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np


@dataclasses.dataclass
class CompressedVideo:
    """Compressed-domain arrays of one video, in display order.

    Attributes:
      path: the file that was read.
      codec: FFmpeg decoder name ("mpeg4", "h264", "mpeg2video", ...).
      width, height: decoded frame size in pixels.
      fps: frames per second of the stream.
      frame_types: one letter "I", "P" or "B" per decoded frame.
      iframe_indices: int64 ``[K]`` display indices of the I-frames.
      motion_vectors: float32 ``[T, ceil(H/c), ceil(W/c), 2]``, x then y, in
        pixels of the decoded frame; the forward motion of the content into
        each frame (see ``tfcmvp.codec.decode`` for the convention).
      mv_cell: c, the raster cell size in pixels.
      one_past_reference: True when every vector of the stream references
        the frame just before it (I and P frames only, one reference frame),
        so a vector is exactly one frame of motion.
      frames: uint8 RGB ``[T, h, w, 3]`` when decoded with ``rgb=True``
        (resized if asked), else None.
    """

    path: str
    codec: str
    width: int
    height: int
    fps: float
    frame_types: str
    iframe_indices: np.ndarray
    motion_vectors: np.ndarray
    mv_cell: int
    one_past_reference: bool
    frames: Optional[np.ndarray] = None

    @property
    def num_frames(self) -> int:
        return len(self.frame_types)

    @property
    def gop_pattern(self) -> str:
        """The picture types as one string, e.g. "IPPPPPPPPPPPIPP..."."""
        return self.frame_types

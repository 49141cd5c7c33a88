"""Small pictures of a video for ``tfcmvp search --png``: its first frame and a motion map.

The motion map is the mean motion vector field of one clip (``CLIP_FRAMES``
frames from the middle of the video, I-frames left out: they carry no
vectors) coloured as ``tfcmvp inspect`` colours vectors
(:func:`tfcmvp.inspection.flow_colours`: hue = direction, brightness =
speed), scaled so that the clip's 99th-percentile speed is at full
brightness. One picture of what the motion network saw, not its input.

Cost: the first frame is one decoded frame; the motion map decodes the
video's vectors once more (the motion network's decode is not shared with it),
so an index with a motion network decodes each new video's vectors twice.
"""

from __future__ import annotations

import io
import os
from typing import Optional

import numpy as np
from PIL import Image

from tfcmvp.codec import decode as codec_decode
from tfcmvp.codec import read_video
from tfcmvp.codec.errors import CorruptVideoError
from tfcmvp.inspection import flow_colours

THUMB_SIZE = (72, 96)  # (height, width) box the pictures are fitted into, aspect kept
JPEG_QUALITY = 85
CLIP_FRAMES = 8  # frames averaged for the motion map (the tiny motion network's clip length)


def _jpeg(image: np.ndarray, size=THUMB_SIZE, nearest: bool = False) -> bytes:
    picture = Image.fromarray(image, "RGB")
    picture.thumbnail((size[1], size[0]), Image.NEAREST if nearest else Image.BILINEAR)
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def first_frame(path) -> np.ndarray:
    """uint8 ``[H, W, 3]``: the first decoded frame of a video (VideoError when none)."""
    path = os.fspath(path)
    container, stream = codec_decode.open_video(path)
    with container:
        for frame in container.decode(stream):
            return frame.to_ndarray(format="rgb24")  # [H, W, 3]
    raise CorruptVideoError(path, "no frame could be decoded", stage="decode")


def motion_map(vectors: np.ndarray, frame_types: str, cell: int) -> np.ndarray:
    """uint8 ``[Hc * cell, Wc * cell, 3]``: coloured mean vectors of the middle clip.

    Args:
      vectors: float ``[T, Hc, Wc, 2]`` per-cell forward motion (x, y) in px.
      frame_types: picture type per frame ("I", "P", "B").
      cell: the vector grid's cell in pixels (the map is drawn at frame size).
    """
    total = vectors.shape[0]
    start = max(0, total // 2 - CLIP_FRAMES // 2)
    frames = [t for t in range(start, min(total, start + CLIP_FRAMES)) if frame_types[t] != "I"]
    if not frames:  # an all-intra stretch: the nearest predicted frames instead
        frames = [t for t in range(total) if frame_types[t] != "I"][:CLIP_FRAMES]
    if frames:
        mean = vectors[frames].mean(axis=0)  # [Hc, Wc, 2]
    else:
        mean = np.zeros(vectors.shape[1:], np.float32)
    speed = np.hypot(mean[..., 0], mean[..., 1])  # [Hc, Wc]
    scale = max(float(np.percentile(speed, 99)), 0.5)  # still video: dark, not noise at full
    rgb = (flow_colours(mean, scale) * 255.0 + 0.5).astype(np.uint8)  # [Hc, Wc, 3]
    return np.repeat(np.repeat(rgb, cell, axis=0), cell, axis=1)


def video_thumbnails(path, with_motion: bool, mv_cell: int = 8) -> dict:
    """``{"frame": JPEG bytes, "motion": JPEG bytes or absent}`` of one video.

    Raises the codec's VideoError when the video cannot be decoded.
    """
    out = {"frame": _jpeg(first_frame(path))}
    if with_motion:
        video = read_video(path, rgb=False, mv_cell=mv_cell)
        picture = motion_map(video.motion_vectors, video.frame_types, video.mv_cell)
        out["motion"] = _jpeg(picture[: video.height, : video.width], nearest=True)
    return out


def read_thumbnail(path: Optional[os.PathLike]) -> Optional[np.ndarray]:
    """uint8 ``[h, w, 3]`` of a thumbnail file, None for None or a missing file."""
    if path is None or not os.path.isfile(path):
        return None
    with Image.open(path) as picture:
        return np.asarray(picture.convert("RGB"))

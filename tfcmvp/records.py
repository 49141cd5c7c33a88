"""One decoded video (:class:`tfcmvp.codec.CompressedVideo`) -> one
:class:`tfcmvp.schema.VideoRecord`, ready for :func:`tfcmvp.schema.encode_example`.

The codec has already resized the RGB frames (``read_video(...,
rgb_short_side=...)``); here every frame is JPEG-encoded with PIL. By default
the I-frames are picked out of the same decode, so the I-frame images, the RGB
frames and the motion vectors all come from one stream (an I-frame image is
then the very same JPEG as the RGB frame at its index). Given
``iframe_images`` (from :func:`tfcmvp.codec.reencode.reencoded_iframes`, a
separate low-bit-rate encode, as the authors' code took its I-frames) those are
stored instead and the record says so (``schema.IFRAME_SOURCE``).
"""

from __future__ import annotations

import io
from typing import List, Optional

import numpy as np
from PIL import Image

from tfcmvp.codec.video import CompressedVideo
from tfcmvp.schema import IFRAME_SOURCE_DECODED, IFRAME_SOURCE_REENCODE, VideoRecord

DEFAULT_JPEG_QUALITY = 90


def encode_jpeg(frame: np.ndarray, quality: int = DEFAULT_JPEG_QUALITY) -> bytes:
    """uint8 RGB ``[H, W, 3]`` -> JPEG bytes (baseline, 4:2:0)."""
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[-1] != 3:
        raise ValueError(f"expected a uint8 [H, W, 3] frame, got {frame.dtype} {frame.shape}")
    buffer = io.BytesIO()
    Image.fromarray(frame, "RGB").save(buffer, format="JPEG", quality=int(quality))
    return buffer.getvalue()


def _checked_frames(video: CompressedVideo, jpeg_quality: int) -> np.ndarray:
    """The video's RGB frames; ValueError naming the video when they cannot be stored."""
    if not 1 <= int(jpeg_quality) <= 95:
        raise ValueError(f"jpeg_quality must lie in [1, 95], got {jpeg_quality!r}")
    frames = video.frames  # [T, h, w, 3] uint8
    if frames is None:
        raise ValueError(f"{video.path}: decoded without RGB frames (read_video(..., rgb=True))")
    if len(frames) != video.num_frames:
        raise ValueError(
            f"{video.path}: {len(frames)} RGB frames for {video.num_frames} picture types"
        )
    if video.num_frames == 0:
        raise ValueError(f"{video.path}: no frames decoded")
    return frames


def _checked_iframes(video: CompressedVideo) -> List[int]:
    """The I-frame indices; ValueError when one does not point at an I-frame."""
    iframes = [int(i) for i in np.asarray(video.iframe_indices).reshape(-1)]
    bad = [i for i in iframes if not 0 <= i < video.num_frames or video.frame_types[i] != "I"]
    if bad:
        raise ValueError(
            f"{video.path}: I-frame indices {bad[:5]} do not point at I-frames "
            f"of {video.frame_types[:40]!r}..."
        )
    return iframes


def _checked_reencoded(video, iframes: List[int], frames_shape, iframe_images, iframe_bitrate):
    """The re-encoded I-frame images as an array, one per I-frame index and of the RGB
    frames' size; ValueError naming the video otherwise."""
    if int(iframe_bitrate) <= 0:
        raise ValueError(f"{video.path}: iframe_bitrate must be positive, got {iframe_bitrate!r}")
    images = np.asarray(iframe_images)
    expected = (len(iframes),) + frames_shape[1:]
    if iframes and (images.dtype != np.uint8 or images.shape != expected):
        raise ValueError(
            f"{video.path}: re-encoded I-frames are {images.dtype} "
            f"{images.shape}, expected uint8 {expected}"
        )
    if not iframes and len(images):
        raise ValueError(f"{video.path}: {len(images)} re-encoded I-frames for no I-frame")
    return images


def build_record(
    video: CompressedVideo,
    *,
    video_id: str,
    label: int,
    label_name: str,
    split: str,
    jpeg_quality: int = DEFAULT_JPEG_QUALITY,
    iframe_images: Optional[np.ndarray] = None,
    iframe_bitrate: Optional[int] = None,
) -> VideoRecord:
    """Builds the stored record of one decoded video.

    Args:
      video: decoded with ``rgb=True``; ``video.frames`` is uint8 ``[T, h, w, 3]``.
      video_id: path relative to the videos folder.
      label, label_name: class index and name (-1 and "" if none).
      split: "train" or "test".
      jpeg_quality: PIL JPEG quality (1-95) for RGB frames and I-frames alike.
      iframe_images: None (the I-frames are the decoded frames at
        ``video.iframe_indices``), or uint8 ``[K, h, w, 3]``, one image per
        I-frame index and of the RGB frames' size, taken from a re-encode of
        ``iframe_bitrate`` bits/s; the record's ``iframe_source`` is then
        "reencode".
      iframe_bitrate: with ``iframe_images`` only.

    Raises ``ValueError`` naming the video when it has no RGB frames, the
    frame count disagrees with the picture types, or ``iframe_images`` do not
    match the I-frames.
    """
    frames = _checked_frames(video, jpeg_quality)  # [T, h, w, 3] uint8
    rgb_jpegs: List[bytes] = [encode_jpeg(frame, jpeg_quality) for frame in frames]
    iframes = _checked_iframes(video)
    if (iframe_images is None) != (iframe_bitrate is None):
        raise ValueError(
            f"{video.path}: iframe_images and iframe_bitrate go together "
            f"(got images={iframe_images is not None}, bitrate={iframe_bitrate!r})"
        )
    if iframe_images is None:
        # The I-frame images are the decoded frames at those indices, resized
        # like every other frame: the same JPEG bytes, stored again so that a
        # reader can take an I-frame without scanning the RGB list.
        iframe_jpegs = [rgb_jpegs[i] for i in iframes]
        source, bitrate = IFRAME_SOURCE_DECODED, 0
    else:
        images = _checked_reencoded(video, iframes, frames.shape, iframe_images, iframe_bitrate)
        iframe_jpegs = [encode_jpeg(image, jpeg_quality) for image in images]
        source, bitrate = IFRAME_SOURCE_REENCODE, int(iframe_bitrate)
    return VideoRecord(
        video_id=video_id,
        label=int(label),
        label_name=label_name,
        split=split,
        fps=float(video.fps),
        width=int(video.width),
        height=int(video.height),
        codec=video.codec,
        frame_types=video.frame_types,
        iframe_indices=iframes,
        one_past_reference=bool(video.one_past_reference),
        rgb_jpegs=rgb_jpegs,
        rgb_height=int(frames.shape[1]),
        rgb_width=int(frames.shape[2]),
        iframe_jpegs=iframe_jpegs,
        motion_vectors=np.asarray(video.motion_vectors, np.float32),
        mv_cell=int(video.mv_cell),
        iframe_source=source,
        iframe_bitrate=bitrate,
    )

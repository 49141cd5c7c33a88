"""One video file -> the in-memory record that the extraction job would store for it.

``tfcmvp embed`` reuses the whole extraction + retrieval path instead of a
copy of it: each video becomes a :class:`tfcmvp.schema.VideoRecord` built by
the extraction's own functions, serialised by :func:`tfcmvp.schema.encode_example`,
and cut into clips by :func:`tfcmvp.data.evaluation.make_eval_sample`, the
sample retrieval uses. The record holds only what the network's modality
reads, so each network decodes only what it needs:

=============  ============================================================
modality       decoding
=============  ============================================================
``rgb``        every frame to RGB, short side ``rgb_short_side`` (swscale
               area), JPEG at ``jpeg_quality`` (:func:`tfcmvp.codec.read_video`
               + :func:`tfcmvp.records.build_record`: the extraction's
               ExtractVideo and BuildRecord steps)
``iframe``     only the key frames to pixels (``skip_frame = "NONKEY"``: the
               decoder drops every other frame before reconstructing it),
               with the same RGB conversion and JPEG; the frame count and the
               display index of each key frame come from the packets
``motion``     only motion vectors (``read_video(rgb=False)``: no RGB
               conversion, no inverse DCT, no deblocking; the decoder still
               runs motion compensation, FFmpeg's vector export needs it)
=============  ============================================================

Fields a modality does not read are left empty (no JPEG for unread frames,
a one-cell zero vector field), which ``make_eval_sample`` never touches.

The JPEG round trip is kept on purpose: the networks were trained on the
stored JPEGs, and with it a video's embedding equals the one ``tfcmvp
retrieval`` computes for the same video after extraction, bit for bit
(tests/test_embed.py). :class:`StorageSettings` are the extraction job's
defaults; data extracted with other ``--rgb_short_side`` / ``--jpeg_quality``
/ ``--mv_cell`` is matched by passing the same values.

I-frames: the extraction stores every frame of picture type I; the I-frame
path decodes the key frames (the random-access points the container and
decoder flag). They are the same frames for MPEG-4 Part 2, MPEG-1/2 and
H.264 streams whose I-frames are all IDR (libx264's default); an H.264
stream with non-IDR I-frames (open GOP) gives fewer I-frames here, so the
clips may use a farther one than retrieval would.
"""

from __future__ import annotations

import dataclasses
import gc
import os
from typing import List, Optional

import av
import numpy as np

from tfcmvp import records, schema
from tfcmvp.codec import decode as codec_decode
from tfcmvp.codec.errors import CorruptVideoError, VideoError
from tfcmvp.codec.stream import decode_packet
from tfcmvp.errors import ConfigError

# Collect the young generation every few frames, as read_video does (frame side
# data makes reference cycles that keep FFmpeg's frame pool from recycling).
_COLLECT_EVERY = 8


@dataclasses.dataclass(frozen=True)
class StorageSettings:
    """How the extraction job stored the frames the network was trained on.

    The defaults are ``python -m beam_jobs.extract``'s (a test keeps them
    equal); they are not part of an export's input contract.
    """

    rgb_short_side: int = 128  # --rgb_short_side: short side of stored RGB frames and I-frames
    jpeg_quality: int = records.DEFAULT_JPEG_QUALITY  # --jpeg_quality of the stored frames
    mv_cell: int = codec_decode.DEFAULT_MV_CELL  # --mv_cell: motion-vector grid cell in pixels

    def __post_init__(self):
        for name, low, high in (
            ("rgb_short_side", 16, None),
            ("jpeg_quality", 1, 95),
            ("mv_cell", 1, 64),
        ):
            value = getattr(self, name)
            if (
                not isinstance(value, int)
                or isinstance(value, bool)
                or value < low
                or (high is not None and value > high)
            ):
                bound = f">= {low}" if high is None else f"in [{low}, {high}]"
                raise ConfigError(f"{name} must be an int {bound}, got {value!r}")


@dataclasses.dataclass
class KeyframeVideo:
    """The key frames of one video and where they lie (from :func:`read_keyframes`)."""

    path: str
    codec: str
    width: int  # decoded frame size
    height: int
    fps: float
    num_frames: int  # frames of the stream (its packets)
    iframe_indices: np.ndarray  # int64 [K] display indices of the key frames
    images: np.ndarray  # uint8 [K, h, w, 3], short side resized


def read_keyframes(
    path, rgb_short_side: Optional[int] = None, rgb_interpolation: str = "AREA"
) -> KeyframeVideo:
    """Decodes only the key frames of a video to RGB.

    The decoder is told to drop non-key frames (``skip_frame = "NONKEY"``),
    so only key frames are reconstructed and converted (with
    :class:`tfcmvp.codec.decode.RgbConverter`, as :func:`read_video` converts
    them). Every packet is still demuxed: their count is the frame count and
    their presentation times give each key frame its display index.

    Raises the codec errors of :func:`tfcmvp.codec.read_video` (stage "open"
    or "decode"), naming the file: no video stream, a damaged stream, fewer
    packets than the container declares, or no key frame.
    """
    path = os.fspath(path)
    to_rgb = codec_decode.RgbConverter(rgb_short_side, rgb_interpolation)
    container, stream = codec_decode.open_video(path)
    with container:
        fps = float(codec_decode.stream_rate(container, stream, path))
        expected = codec_decode._expected_frames(container, stream, fps)
        context = stream.codec_context
        context.skip_frame = "NONKEY"
        context.thread_count = 1  # one core, as read_video: the benchmark compares per core
        context.thread_type = "NONE"
        stamps, keyframes, size = _demux_keyframes(container, stream, path, to_rgb)
        codec = context.name
    _check_frame_count(path, stamps, expected, keyframes)
    indices, ranked = _keyframe_order(path, stamps, keyframes)
    return KeyframeVideo(
        path=path,
        codec=codec,
        width=size[1],
        height=size[0],
        fps=fps,
        num_frames=len(stamps),
        iframe_indices=indices[ranked].astype(np.int64),
        images=np.stack([keyframes[i][1] for i in ranked]),
    )


def _demux_keyframes(container, stream, path: str, to_rgb) -> tuple:
    """(presentation time of every packet in decode order, [(presentation time, image)] of
    the key frames, (height, width)): one pass over the packets."""
    stamps: List[int] = []  # presentation time of every packet, decode order
    keyframes: List[tuple] = []  # (presentation time, image)
    size = None
    try:
        for packet in container.demux(stream):
            if packet.size:  # the empty packet at the end only flushes the decoder
                stamp = packet.pts if packet.pts is not None else packet.dts
                if stamp is None:
                    raise CorruptVideoError(
                        path,
                        "packets without timestamps: key frames cannot be placed "
                        "(remux the stream into a container, e.g. .mp4 or .mkv)",
                        stage="decode",
                    )
                stamps.append(int(stamp))
            frames = decode_packet(packet, path, len(stamps), "packets")
            for frame in frames:
                size = _checked_size(path, frame, size, len(keyframes))
                stamp = frame.pts if frame.pts is not None else frame.dts
                keyframes.append((stamp, to_rgb(frame)))  # [h, w, 3]
            frame = frames = None
            if len(stamps) % _COLLECT_EVERY == 0:
                gc.collect(0)
    except av.FFmpegError as error:
        raise CorruptVideoError(
            path, f"reading packets failed after {len(stamps)} packets: {error}", stage="decode"
        ) from error
    return stamps, keyframes, size


def _checked_size(path: str, frame, size, count: int) -> tuple:
    """(height, width) of the key frames so far; CorruptVideoError for a corrupt frame or
    one whose size differs (``count``: key frames before it)."""
    if frame.is_corrupt:
        raise CorruptVideoError(
            path,
            f"key frame {count} is corrupt (damaged or missing data)",
            stage="decode",
        )
    if size is None:
        return (frame.height, frame.width)
    if (frame.height, frame.width) != size:
        raise CorruptVideoError(
            path,
            f"frame size changes from {size[1]}x{size[0]} to {frame.width}x{frame.height}",
            stage="decode",
        )
    return size


def _check_frame_count(path: str, stamps: list, expected, keyframes: list) -> None:
    """CorruptVideoError when no frame, fewer than the container declares, or no key frame."""
    if not stamps:
        raise CorruptVideoError(path, "no frame could be decoded", stage="decode")
    if expected and len(stamps) < expected - codec_decode._shortfall_tolerance(expected):
        raise CorruptVideoError(
            path,
            f"{len(stamps)} frames but the container declares about {expected} "
            f"(truncated or damaged file)",
            stage="decode",
        )
    if not keyframes:
        raise CorruptVideoError(path, "no key frame could be decoded", stage="decode")


def _keyframe_order(path: str, stamps: list, keyframes: list) -> tuple:
    """(display index of each key frame, the order that sorts them by it)."""
    order = np.sort(np.asarray(stamps, np.int64))  # presentation order
    key_stamps = np.asarray([stamp for stamp, _ in keyframes], np.int64)
    indices = np.searchsorted(order, key_stamps)  # display index of each key frame
    found = (indices < len(order)) & (order[np.minimum(indices, len(order) - 1)] == key_stamps)
    if not found.all():
        raise CorruptVideoError(path, "a key frame's timestamp matches no packet", stage="decode")
    return indices, np.argsort(indices, kind="stable")


def _empty_vectors(num_frames: int) -> np.ndarray:
    return np.zeros([num_frames, 1, 1, 2], np.float32)  # never read by rgb / iframe clips


def video_record(
    path,
    modality: str,
    storage: StorageSettings = StorageSettings(),
    video_id: Optional[str] = None,
) -> schema.VideoRecord:
    """The record of one video holding what clips of ``modality`` read (module docstring).

    ``video_id`` defaults to the path. Raises :class:`tfcmvp.codec.VideoError`
    (with its stage) for files that cannot be decoded, and ValueError for an
    unknown modality.
    """
    path = os.fspath(path)
    video_id = path if video_id is None else video_id
    common = dict(video_id=video_id, label=-1, label_name="", split="test")
    if modality == "rgb":
        video = codec_decode.read_video(
            path, rgb=True, mv_cell=storage.mv_cell, rgb_short_side=storage.rgb_short_side
        )
        return records.build_record(video, jpeg_quality=storage.jpeg_quality, **common)
    if modality == "motion":
        return _motion_record(path, storage, common)
    if modality == "iframe":
        return _iframe_record(path, storage, common)
    raise ValueError(f"modality must be one of ('rgb', 'iframe', 'motion'), got {modality!r}")


def _motion_record(path: str, storage: StorageSettings, common: dict) -> schema.VideoRecord:
    """Motion vectors only; VideoError for a video of I-frames only."""
    video = codec_decode.read_video(path, rgb=False, mv_cell=storage.mv_cell)
    if "P" not in video.frame_types and "B" not in video.frame_types:
        raise VideoError(
            path,
            f"every one of its {video.num_frames} frames is an I-frame: no motion vectors",
            stage="vectors",
        )
    return schema.VideoRecord(
        fps=video.fps,
        width=video.width,
        height=video.height,
        codec=video.codec,
        frame_types=video.frame_types,
        iframe_indices=list(video.iframe_indices),
        one_past_reference=video.one_past_reference,
        rgb_jpegs=[b""] * video.num_frames,
        rgb_height=0,
        rgb_width=0,
        iframe_jpegs=[b""] * len(video.iframe_indices),
        motion_vectors=video.motion_vectors,
        mv_cell=video.mv_cell,
        **common,
    )


def _iframe_record(path: str, storage: StorageSettings, common: dict) -> schema.VideoRecord:
    """The key frames only, as JPEGs; every other frame typed P."""
    video = read_keyframes(path, rgb_short_side=storage.rgb_short_side)
    types = np.full(video.num_frames, "P")
    types[video.iframe_indices] = "I"
    return schema.VideoRecord(
        fps=video.fps,
        width=video.width,
        height=video.height,
        codec=video.codec,
        frame_types="".join(types),
        iframe_indices=[int(i) for i in video.iframe_indices],
        one_past_reference=False,
        rgb_jpegs=[b""] * video.num_frames,
        rgb_height=int(video.images.shape[1]),
        rgb_width=int(video.images.shape[2]),
        iframe_jpegs=[records.encode_jpeg(image, storage.jpeg_quality) for image in video.images],
        motion_vectors=_empty_vectors(video.num_frames),
        mv_cell=storage.mv_cell,
        **common,
    )

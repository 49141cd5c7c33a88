"""CompressedVideo -> VideoRecord: JPEG frames, I-frames from the same decode, vectors."""

import io

import numpy as np
import pytest
from PIL import Image

from tfcmvp import records, schema
from tfcmvp.codec import read_video
from tfcmvp.codec.video import CompressedVideo


def synthetic_video(num_frames=5, height=32, width=48, frame_types="IPPIP", rgb=True):
    rng = np.random.default_rng(0)
    # Smooth frames (a gradient plus a per-frame offset) so JPEG is near-exact.
    yy, xx = np.mgrid[0:height, 0:width]
    frames = np.stack(
        [
            np.stack([xx * 4 + t * 10, yy * 6, np.full_like(xx, 100 + t)], -1)
            for t in range(num_frames)
        ]
    ).astype(np.uint8)  # [T, H, W, 3]
    return CompressedVideo(
        path="/data/v.avi",
        codec="mpeg4",
        width=width * 2,
        height=height * 2,
        fps=25.0,
        frame_types=frame_types,
        iframe_indices=np.array([i for i, t in enumerate(frame_types) if t == "I"], np.int64),
        motion_vectors=rng.normal(0, 3, (num_frames, 8, 12, 2)).astype(np.float32),
        mv_cell=8,
        one_past_reference=True,
        frames=frames if rgb else None,
    )


def decode_jpeg(data):
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def test_build_record_fields():
    video = synthetic_video()
    rec = records.build_record(video, video_id="a/v.avi", label=3, label_name="dog", split="train")
    assert (rec.video_id, rec.label, rec.label_name, rec.split) == ("a/v.avi", 3, "dog", "train")
    assert (rec.width, rec.height, rec.codec, rec.fps) == (96, 64, "mpeg4", 25.0)
    assert rec.frame_types == "IPPIP" and rec.iframe_indices == [0, 3]
    assert (rec.rgb_height, rec.rgb_width) == (32, 48)
    assert len(rec.rgb_jpegs) == 5
    # I-frame images are the frames at the I-frame indices of the same decode.
    assert rec.iframe_jpegs == [rec.rgb_jpegs[0], rec.rgb_jpegs[3]]
    for t, data in enumerate(rec.rgb_jpegs):
        image = decode_jpeg(data)
        assert image.shape == (32, 48, 3)
        assert np.abs(image.astype(int) - video.frames[t]).mean() < 2.0
    np.testing.assert_array_equal(rec.motion_vectors, video.motion_vectors)
    assert rec.mv_cell == 8 and rec.one_past_reference


def test_jpeg_quality_changes_size():
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert len(records.encode_jpeg(frame, 30)) < len(records.encode_jpeg(frame, 90))


def test_build_record_errors_name_the_video():
    with pytest.raises(ValueError, match=r"/data/v\.avi: decoded without RGB frames"):
        records.build_record(
            synthetic_video(rgb=False), video_id="v", label=0, label_name="", split="train"
        )
    bad = synthetic_video()
    bad.iframe_indices = np.array([0, 1])
    with pytest.raises(ValueError, match=r"/data/v\.avi: I-frame indices \[1\]"):
        records.build_record(bad, video_id="v", label=0, label_name="", split="train")
    with pytest.raises(ValueError, match="jpeg_quality must lie in"):
        records.build_record(
            synthetic_video(), video_id="v", label=0, label_name="", split="train", jpeg_quality=0
        )
    with pytest.raises(ValueError, match=r"expected a uint8 \[H, W, 3\] frame"):
        records.encode_jpeg(np.zeros((4, 4), np.uint8))


def test_real_video_round_trip_through_schema(carphone_path):
    """carphone (H.264 with B-frames): record -> bytes -> record keeps everything."""
    video = read_video(carphone_path, rgb=True, mv_cell=8, rgb_short_side=128)
    rec = records.build_record(
        video, video_id="carphone.mp4", label=-1, label_name="", split="test", jpeg_quality=90
    )
    back = schema.decode_example(schema.encode_example(rec))
    assert back.num_frames == 120
    assert back.frame_types == video.frame_types and "B" in back.frame_types
    assert back.iframe_indices == [int(i) for i in video.iframe_indices]
    assert all(back.frame_types[i] == "I" for i in back.iframe_indices)
    assert not back.one_past_reference  # B-frames: vectors span more than one frame
    # 176x144 -> short side 128 keeping aspect: 128 x round(176 * 128 / 144) = 156.
    assert (back.rgb_height, back.rgb_width) == (128, 156)
    assert decode_jpeg(back.iframe_jpegs[0]).shape == (128, 156, 3)
    # mv grid of the decoded 176x144 frame in 8-px cells: 18 x 22.
    assert back.motion_vectors.shape == (120, 18, 22, 2)
    np.testing.assert_allclose(back.motion_vectors, video.motion_vectors, atol=1 / 8 + 1e-6)
    assert np.abs(back.motion_vectors).max() > 0.5  # a real camera moves
    first = decode_jpeg(back.rgb_jpegs[0]).astype(int)
    assert np.abs(first - video.frames[0]).mean() < 4.0

"""read_video: known-answer motion vectors, picture types, containers, RGB, determinism."""

import numpy as np
import pytest

from tfcmvp.codec import DEFAULT_MV_CELL, CompressedVideo, read_video, write_video
from tfcmvp.codec.synthetic import moving_texture

T, H, W = 25, 144, 176
VELOCITIES = [(2.0, -1.0), (1.5, -0.5)]  # integer and half-pel, px per frame


@pytest.fixture(scope="module", params=VELOCITIES, ids=["int", "half_pel"])
def texture(request):
    return request.param, moving_texture(T, H, W, velocity=request.param, seed=3)


def p_frame_median(video, letter="P"):
    """Median vector over covered cells (non-zero) of all frames of one type."""
    mask = np.array([t == letter for t in video.frame_types])
    vectors = video.motion_vectors[mask]  # [N, Hc, Wc, 2]
    covered = np.any(vectors != 0, axis=-1)
    assert covered.mean() > 0.5, f"too few {letter} cells carry a vector"
    return np.median(vectors[covered], axis=0)


@pytest.mark.parametrize(
    "codec, ext, kwargs",
    [
        ("mpeg4", "avi", {}),
        ("h264", "mp4", dict(refs=1)),
        ("mpeg2video", "mpg", {}),
    ],
)
def test_known_translation_without_b_frames(tmp_path, texture, codec, ext, kwargs):
    velocity, frames = texture
    video = read_video(write_video(tmp_path / f"v.{ext}", frames, codec=codec, gop=12, **kwargs))
    assert isinstance(video, CompressedVideo)
    assert video.frame_types == ("I" + "P" * 11) * 2 + "I"
    np.testing.assert_array_equal(video.iframe_indices, [0, 12, 24])
    assert video.motion_vectors.shape == (T, H // 8, W // 8, 2)
    assert video.motion_vectors.dtype == np.float32
    assert video.mv_cell == DEFAULT_MV_CELL == 8
    # Documented sign: forward motion of the content into the frame.
    np.testing.assert_allclose(p_frame_median(video), velocity, atol=0.5)
    assert not video.motion_vectors[video.iframe_indices].any()
    assert video.one_past_reference
    assert (video.codec, video.width, video.height, video.fps) == (codec, W, H, 25.0)
    assert video.frames is None


def test_h264_b_frames_point_the_same_way(tmp_path, texture):
    velocity, frames = texture
    video = read_video(write_video(tmp_path / "v.mp4", frames, codec="h264", b_frames=2))
    assert "B" in video.frame_types
    np.testing.assert_array_equal(video.iframe_indices, [0, 12, 24])
    for letter in "PB":
        median = p_frame_median(video, letter)
        np.testing.assert_array_equal(np.sign(median), np.sign(velocity))
    # B-frame vectors reference the neighbours either side: one frame each.
    np.testing.assert_allclose(p_frame_median(video, "B"), velocity, atol=0.5)
    # P-frames after two B-frames span three frames of motion.
    np.testing.assert_allclose(p_frame_median(video, "P"), 3 * np.array(velocity), atol=0.75)
    assert not video.one_past_reference


def test_mpeg4_b_frames_export_zero_vectors(tmp_path, mpeg4_texture):
    """Documented FFmpeg 8 limitation: MPEG-4 Part 2 B-frame vectors are all
    zero (H.264 and MPEG-2 B-frames carry the motion), P-frames are fine."""
    video = read_video(write_video(tmp_path / "v.avi", mpeg4_texture, codec="mpeg4", b_frames=2))
    b_frames = np.array([t == "B" for t in video.frame_types])
    assert b_frames.sum() >= 12
    assert not video.motion_vectors[b_frames].any()
    # P-frames after two B-frames span three frames of motion.
    np.testing.assert_allclose(p_frame_median(video), (6, -3), atol=0.75)
    assert not video.one_past_reference


def test_h264_with_several_references_is_not_one_past_reference(tmp_path):
    frames = moving_texture(13, 64, 64, velocity=(1, 1), seed=4)
    one = read_video(write_video(tmp_path / "a.mp4", frames, codec="h264", refs=1))
    three = read_video(write_video(tmp_path / "b.mp4", frames, codec="h264", refs=3))
    assert "B" not in three.frame_types
    assert one.one_past_reference and not three.one_past_reference


@pytest.fixture(scope="module")
def mpeg4_texture():
    return moving_texture(T, H, W, velocity=(2, -1), seed=5)


def test_containers_give_identical_arrays(tmp_path, mpeg4_texture):
    """The same MPEG-4 bitstream in AVI, MKV, MP4 and a raw .m4v stream."""
    paths = [
        write_video(tmp_path / "v.avi", mpeg4_texture, fps=10),
        write_video(tmp_path / "v.mkv", mpeg4_texture, fps=10),
        write_video(tmp_path / "v.mp4", mpeg4_texture, fps=10),
        write_video(tmp_path / "v.m4v", mpeg4_texture, fps=10, format="m4v"),
    ]
    videos = [read_video(p) for p in paths]
    reference = videos[0]
    for video in videos:
        assert video.num_frames == T
        assert video.fps == 10.0  # raw .m4v: from the stream's VOL header
        assert video.frame_types == reference.frame_types
        np.testing.assert_array_equal(video.motion_vectors, reference.motion_vectors)


def test_raw_h264_stream(tmp_path, mpeg4_texture):
    path = write_video(tmp_path / "v.h264", mpeg4_texture, fps=10, codec="h264", format="h264")
    video = read_video(path)
    assert (video.num_frames, video.fps) == (T, 10.0)
    assert video.one_past_reference  # refs read from the in-band SPS
    np.testing.assert_allclose(p_frame_median(video), (2, -1), atol=0.5)


def test_mv_cell_sets_the_grid(tmp_path, mpeg4_texture):
    path = write_video(tmp_path / "v.avi", mpeg4_texture[:13])
    video = read_video(path, mv_cell=16)
    assert video.motion_vectors.shape == (13, 9, 11, 2) and video.mv_cell == 16
    np.testing.assert_allclose(p_frame_median(video), (2, -1), atol=0.5)
    with pytest.raises(ValueError, match="mv_cell"):
        read_video(path, mv_cell=0)


def test_rgb_full_size_and_resized(tmp_path, mpeg4_texture):
    path = write_video(tmp_path / "v.avi", mpeg4_texture[:6], quality=1)
    full = read_video(path, rgb=True)
    assert full.frames.shape == (6, H, W, 3) and full.frames.dtype == np.uint8
    assert np.abs(full.frames.astype(int) - mpeg4_texture[:6]).mean() < 6
    with pytest.raises(ValueError, match="rgb_short_side must be positive"):
        read_video(path, rgb=True, rgb_short_side=0)
    small = read_video(path, rgb=True, rgb_short_side=72)
    assert small.frames.shape == (6, 72, 88, 3)  # aspect ratio kept
    # Halving with AREA is close to a 2x2 mean of the full-size decode (the
    # resize runs on YUV 4:2:0, so compare the channel mean, i.e. brightness).
    halved = full.frames.reshape(6, 72, 2, 88, 2, 3).astype(float).mean((2, 4))  # [6, 72, 88, 3]
    assert np.abs(small.frames.mean(-1) - halved.mean(-1)).mean() < 3
    np.testing.assert_array_equal(small.motion_vectors, full.motion_vectors)


def test_portrait_video_resizes_its_width(tmp_path):
    frames = moving_texture(3, 96, 64, velocity=(0, 1), seed=6)
    video = read_video(write_video(tmp_path / "v.avi", frames), rgb=True, rgb_short_side=32)
    assert video.frames.shape == (3, 48, 32, 3)


def test_h264_b_frame_decoding_is_deterministic(tmp_path, mpeg4_texture):
    path = write_video(tmp_path / "v.mp4", mpeg4_texture, codec="h264", b_frames=3, refs=3)
    first, second = read_video(path), read_video(path)
    assert first.frame_types == second.frame_types
    np.testing.assert_array_equal(first.motion_vectors, second.motion_vectors)


def test_carphone(carphone_path):
    video = read_video(carphone_path)
    assert video.num_frames == 120 and len(video.frame_types) == 120
    assert set(video.frame_types) == {"I", "P", "B"}
    counts = {t: video.frame_types.count(t) for t in "IPB"}
    assert sum(counts.values()) == 120 and counts["B"] > 0 and counts["P"] > 0
    assert video.frame_types[0] == "I" and video.iframe_indices[0] == 0
    np.testing.assert_array_equal(
        video.iframe_indices, [i for i, t in enumerate(video.frame_types) if t == "I"]
    )
    assert (video.codec, video.width, video.height) == ("h264", 176, 144)
    assert video.fps == pytest.approx(30000 / 1001, rel=1e-4)
    assert video.motion_vectors.shape == (120, 18, 22, 2)
    assert not video.one_past_reference
    # Camera footage: the predicted frames carry motion, I-frames none.
    predicted = np.array([t != "I" for t in video.frame_types])
    assert np.abs(video.motion_vectors[predicted]).max() > 1
    assert not video.motion_vectors[~predicted].any()
    again = read_video(carphone_path)
    np.testing.assert_array_equal(again.motion_vectors, video.motion_vectors)


@pytest.mark.parametrize(
    "codec, ext, kwargs",
    [
        ("mpeg4", "avi", dict(b_frames=2)),
        ("mpeg2video", "mpg", dict(b_frames=2)),
        ("h264", "mp4", dict(b_frames=3, refs=3)),
    ],
)
def test_vectors_only_decode_gives_the_same_vectors_as_with_rgb(
    tmp_path, mpeg4_texture, codec, ext, kwargs
):
    """rgb=False skips the inverse DCT and the deblocking filter: the vectors and
    picture types, parsed from the bitstream, must not change."""
    path = write_video(tmp_path / f"v.{ext}", mpeg4_texture, codec=codec, **kwargs)
    vectors_only, with_rgb = read_video(path), read_video(path, rgb=True)
    assert vectors_only.frame_types == with_rgb.frame_types and "B" in with_rgb.frame_types
    assert np.abs(with_rgb.motion_vectors).max() > 0.5
    np.testing.assert_array_equal(vectors_only.motion_vectors, with_rgb.motion_vectors)


def test_vectors_only_decode_of_carphone_matches_rgb_decode(carphone_path):
    vectors_only, with_rgb = read_video(carphone_path), read_video(carphone_path, rgb=True)
    assert vectors_only.frame_types == with_rgb.frame_types
    np.testing.assert_array_equal(vectors_only.motion_vectors, with_rgb.motion_vectors)

"""check_gop reports and the CoViAR-style reencode round trip."""

import numpy as np
import pytest

from tfcmvp.codec import (
    NoVideoStreamError,
    VideoError,
    check_gop,
    read_video,
    reencode,
    write_video,
)
from tfcmvp.codec.gop import run_length
from tfcmvp.codec.synthetic import moving_texture, write_tone

COVIAR_29 = ("I" + "P" * 11) * 2 + "IPPPP"


def test_check_gop_accepts_the_coviar_pattern():
    report = check_gop(COVIAR_29, gop=12)
    assert report.ok and report.deviations == []
    assert report.summary == "I P×11 | I P×11 | I P×4"
    assert report.pattern == COVIAR_29 and report.gop == 12


def test_check_gop_reports_b_frames():
    report = check_gop("IBBPBBPBBPBP" + "IBBP", gop=12)
    assert not report.ok
    assert report.deviations == ["9 B-frames present at 1, 2, 4, 5, 7, 8, 10, 13, 14"]
    assert report.summary == "I B×2 P B×2 P B×2 P B P | I B×2 P"


def test_check_gop_reports_off_grid_and_missing_i_frames():
    # A scene-cut I-frame at 5 and none at 12.
    types = "IPPPPIPPPPPPPPPPPP"
    report = check_gop(types, gop=12)
    assert report.deviations == [
        "I-frames off the 12-frame grid at 5",
        "missing I-frames at 12",
    ]
    assert report.summary == "I P×4 | I P×12"


def test_check_gop_other_gop_and_edge_cases():
    assert check_gop("IPPIPPI", gop=3).ok
    assert check_gop("II", gop=1).ok and run_length("II") == "I | I"
    assert check_gop("", gop=12).deviations == ["no frames"]
    assert check_gop("PPP", gop=12).deviations == ["missing I-frames at 0"]
    long_b = check_gop("I" + "B" * 30, gop=100).deviations[0]
    assert long_b.startswith("30 B-frames present at 1, 2,") and long_b.endswith("(30 in all)")
    with pytest.raises(ValueError, match="only I, P, B"):
        check_gop("IPX")
    with pytest.raises(ValueError, match="gop must be >= 1"):
        check_gop("IP", gop=0)


@pytest.fixture(scope="module")
def b_frame_source(tmp_path_factory):
    """H.264 with B-frames and 3 references at 10 fps: the structure to undo."""
    frames = moving_texture(29, 96, 128, velocity=(2, -1), seed=9)
    path = tmp_path_factory.mktemp("src") / "src.mkv"
    write_video(path, frames, fps=10, codec="h264", b_frames=2, refs=3)
    source = read_video(path)
    assert "B" in source.frame_types and not source.one_past_reference
    return path


@pytest.mark.parametrize("codec, ext", [("mpeg4", "avi"), ("h264", "mp4")])
def test_reencode_round_trip(tmp_path, b_frame_source, codec, ext):
    dst = reencode(b_frame_source, tmp_path / f"out.{ext}", codec=codec, gop=12)
    assert dst == str(tmp_path / f"out.{ext}")
    video = read_video(dst)
    assert video.num_frames == 29 and video.fps == 10.0
    assert video.frame_types == COVIAR_29
    assert check_gop(video.frame_types, gop=12).ok
    assert video.one_past_reference
    mask = np.array([t == "P" for t in video.frame_types])
    covered = video.motion_vectors[mask][np.any(video.motion_vectors[mask] != 0, -1)]
    np.testing.assert_allclose(np.median(covered, 0), (2, -1), atol=0.5)


def test_reencode_quality_is_explicit(tmp_path, b_frame_source):
    fine = reencode(b_frame_source, tmp_path / "fine.avi", quality=1)
    coarse = reencode(b_frame_source, tmp_path / "coarse.avi", quality=25)
    assert (tmp_path / "fine.avi").stat().st_size > 2 * (tmp_path / "coarse.avi").stat().st_size
    assert read_video(fine).num_frames == read_video(coarse).num_frames == 29


def test_reencode_real_video_keeps_count_and_rate(tmp_path, carphone_path):
    source = read_video(carphone_path)
    video = read_video(reencode(carphone_path, tmp_path / "carphone.avi", gop=12))
    assert video.num_frames == source.num_frames == 120
    assert video.fps == pytest.approx(source.fps, rel=1e-6)
    assert check_gop(video.frame_types, gop=12).ok


def test_reencode_errors_name_the_source(tmp_path):
    with pytest.raises(ValueError, match="'vp9'"):
        reencode(tmp_path / "a.mp4", tmp_path / "b.avi", codec="vp9")
    text = tmp_path / "x.avi"
    text.write_text("not a video")
    with pytest.raises(VideoError, match=str(text)):
        reencode(text, tmp_path / "b.avi")
    audio = write_tone(tmp_path / "tone.mka", "mp2")
    with pytest.raises(NoVideoStreamError, match=str(audio)):
        reencode(audio, tmp_path / "c.avi")


def test_public_api():
    import tfcmvp.codec as codec

    for name in [
        "read_video",
        "write_video",
        "reencode",
        "check_gop",
        "CompressedVideo",
        "VideoError",
        "NoVideoStreamError",
        "UnsupportedCodecError",
        "DEFAULT_MV_CELL",
    ]:
        assert hasattr(codec, name), name

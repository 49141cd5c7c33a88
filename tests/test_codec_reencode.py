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
from tfcmvp.codec.reencode import iframe_gop, reencoded_iframes
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


@pytest.fixture(scope="module")
def vga_source(tmp_path_factory):
    """320x240 (UCF101's size), 60 frames at 25 fps, MPEG-4 at quantiser 2."""
    path = tmp_path_factory.mktemp("vga") / "src.avi"
    write_video(path, moving_texture(60, 240, 320, velocity=(2, -1), seed=9), fps=25)
    return path


def test_reencode_bitrate_sets_the_size(tmp_path, vga_source, b_frame_source):
    """--reencode_bitrate: a higher target gives a larger file; the GOP is unchanged.

    The rate control is ffmpeg's (its 4000 kb tolerance), which lets short clips overshoot:
    2.4 s of 320x240 are needed for 50 / 200 / 800 kb/s to give different files (measured
    267, 592, 967 kb/s); 29 frames of 128x96 come out the same at all three.
    """
    sizes = {}
    for kbps in (50, 200, 800):
        path = reencode(vga_source, tmp_path / f"{kbps}k.avi", bitrate=kbps * 1000)
        sizes[kbps] = (tmp_path / f"{kbps}k.avi").stat().st_size
        assert check_gop(read_video(path).frame_types, gop=12).ok
    assert sizes[50] < sizes[200] < sizes[800]
    quantiser = tmp_path / "q2.avi"
    reencode(vga_source, quantiser)  # the default: fixed quantiser 2, not a bit rate
    assert quantiser.stat().st_size > sizes[800]
    with pytest.raises(ValueError, match="quality or bitrate, not both"):
        reencode(b_frame_source, tmp_path / "x.avi", quality=2, bitrate=200_000)
    with pytest.raises(ValueError, match="bitrate must be >= 1000"):
        reencode(b_frame_source, tmp_path / "x.avi", bitrate=10)


def test_reencode_keyframes_and_yuv_frames(tmp_path, b_frame_source):
    """Forced I-frames land where asked; decoded frames passed in YUV keep no picture type
    of their own (the source's I-frames at 0, 12, 24 are not copied)."""
    forced = reencode(
        b_frame_source, tmp_path / "forced.avi", gop=100, keyframes=[0, 5, 17], rgb_round_trip=False
    )
    assert [i for i, t in enumerate(read_video(forced).frame_types) if t == "I"] == [0, 5, 17]
    grid = reencode(b_frame_source, tmp_path / "grid.avi", gop=12, rgb_round_trip=False)
    assert read_video(grid).frame_types == COVIAR_29
    # Without the RGB round trip the re-encode is closer to the source (mostly chroma).
    source = read_video(b_frame_source, rgb=True).frames.astype(int)
    via_rgb = read_video(reencode(b_frame_source, tmp_path / "rgb.avi", quality=1), rgb=True)
    direct = read_video(
        reencode(b_frame_source, tmp_path / "yuv.avi", quality=1, rgb_round_trip=False), rgb=True
    )
    assert np.abs(direct.frames - source).mean() < np.abs(via_rgb.frames - source).mean()


def psnr(a, b):
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return 10 * np.log10(255.0**2 / mse)


def test_reencoded_iframes_are_close_but_not_identical(tmp_path, vga_source):
    """The authors' I-frames: a 200 kb/s MPEG-4 encode, taken at the decode's I-frame indices,
    resized like read_video's RGB frames."""
    video = read_video(vga_source, rgb=True, rgb_short_side=128)
    assert list(video.iframe_indices) == [0, 12, 24, 36, 48]
    decoded = video.frames[video.iframe_indices]  # [5, 128, 171, 3]

    def at_the_iframes(**options):
        return reencoded_iframes(
            vga_source, video.iframe_indices, video.num_frames, rgb_short_side=128, **options
        )

    images = at_the_iframes(scratch_dir=str(tmp_path))
    assert images.dtype == np.uint8 and images.shape == decoded.shape == (5, 128, 171, 3)
    diff = np.abs(images.astype(int) - decoded)
    assert diff.mean() > 1.0  # never the decoded frame itself
    assert psnr(images, decoded) > 25  # but the same picture
    again = at_the_iframes(scratch_dir=str(tmp_path))
    np.testing.assert_array_equal(again, images)  # single-threaded: deterministic
    assert list(tmp_path.iterdir()) == []  # the temporary encode is removed
    richer = at_the_iframes(bitrate=2_000_000)
    assert np.abs(richer.astype(int) - decoded).mean() < 0.8 * diff.mean()
    # Irregular I-frames (e.g. an H.264 source's own keyframes) are forced in place.
    irregular = reencoded_iframes(vga_source, [0, 7], video.num_frames, rgb_short_side=128)
    assert irregular.shape == (2, 128, 171, 3)
    assert 0 < np.abs(irregular[1].astype(int) - video.frames[7]).mean()
    assert psnr(irregular[1], video.frames[7]) > 25


def test_reencoded_iframes_errors(tmp_path, b_frame_source):
    with pytest.raises(ValueError, match=r"must increase within \[0, 29\)"):
        reencoded_iframes(b_frame_source, [0, 29], 29)
    with pytest.raises(ValueError, match="must increase"):
        reencoded_iframes(b_frame_source, [12, 0], 29)
    with pytest.raises(VideoError, match=r"has 29 frames, the decode 30") as info:
        reencoded_iframes(b_frame_source, [0, 12], 30, scratch_dir=str(tmp_path))
    assert info.value.stage == "reencode" and str(b_frame_source) in str(info.value)
    assert list(tmp_path.iterdir()) == []
    assert reencoded_iframes(b_frame_source, [], 29).shape == (0, 0, 0, 3)


def test_iframe_gop():
    assert iframe_gop(range(0, 80, 12), 80) == 12
    assert iframe_gop([0, 5, 40], 100) == 60  # the tail from 40 to the end
    assert iframe_gop([0], 5000) == 600  # the mpegvideo encoders' limit


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

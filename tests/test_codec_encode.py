"""write_video: GOP, B-frames, references, quality, rate, count and sizes as asked."""

import fractions
import itertools

import av
import numpy as np
import pytest

from tfcmvp.codec import VideoError, h264_sps, read_video, write_video
from tfcmvp.codec.synthetic import moving_texture

GOP12_NO_B = ("I" + "P" * 11) * 2 + "IPPPP"  # 29 frames


@pytest.fixture(scope="module")
def frames():
    return moving_texture(29, 64, 96, velocity=(2, -1), seed=1)  # [29, 64, 96, 3]


def decoded_types(path):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return "".join("?IPB"[int(f.pict_type)] for f in container.decode(stream))


@pytest.mark.parametrize(
    "codec, ext", [("mpeg4", "avi"), ("h264", "mp4"), ("mpeg2video", "mpg"), ("mpeg4", "mkv")]
)
def test_gop_without_b_frames_is_exact(tmp_path, frames, codec, ext):
    path = write_video(tmp_path / f"v.{ext}", frames, fps=25, codec=codec, gop=12)
    assert path == str(tmp_path / f"v.{ext}")
    assert decoded_types(path) == GOP12_NO_B


def test_other_gop_lengths(tmp_path, frames):
    path = write_video(tmp_path / "v.avi", frames[:10], codec="mpeg4", gop=4)
    assert decoded_types(path) == "IPPPIPPPIP"


@pytest.mark.parametrize("codec, ext", [("h264", "mp4"), ("mpeg2video", "mpg")])
def test_b_frame_runs_follow_b_frames(tmp_path, frames, codec, ext):
    path = write_video(tmp_path / f"v.{ext}", frames, codec=codec, gop=12, b_frames=2)
    types = decoded_types(path)
    assert len(types) == 29
    assert [i for i, t in enumerate(types) if t == "I"] == [0, 12, 24]
    runs = [len(list(g)) for t, g in itertools.groupby(types) if t == "B"]
    assert max(runs) == 2 and types.count("B") >= 12


@pytest.mark.parametrize("refs", [1, 3])
def test_h264_reference_count_reaches_the_sps(tmp_path, frames, refs):
    path = write_video(tmp_path / "v.mp4", frames, codec="h264", refs=refs)
    with av.open(path) as container:
        extradata = container.streams.video[0].codec_context.extradata
    assert h264_sps.max_num_ref_frames(extradata) == refs


def test_frame_rate_and_count_are_preserved(tmp_path, frames):
    ntsc = fractions.Fraction(30000, 1001)
    for fps, ext in [(10, "avi"), (ntsc, "mp4"), (29.97, "mkv")]:
        codec = "mpeg4" if ext == "avi" else "h264"
        path = write_video(tmp_path / f"v.{ext}", frames, fps=fps, codec=codec)
        video = read_video(path)
        assert video.num_frames == 29
        assert video.fps == pytest.approx(float(fps), rel=1e-6)


@pytest.mark.parametrize(
    "codec, good, bad", [("mpeg4", 2, 20), ("mpeg2video", 2, 20), ("h264", 12, 40)]
)
def test_quality_sets_a_constant_quantiser(tmp_path, frames, codec, good, bad):
    ext = "mpg" if codec == "mpeg2video" else "mp4"
    fine = write_video(tmp_path / f"a.{ext}", frames, codec=codec, quality=good)
    coarse = write_video(tmp_path / f"b.{ext}", frames, codec=codec, quality=bad)
    assert (tmp_path / f"a.{ext}").stat().st_size > 2 * (tmp_path / f"b.{ext}").stat().st_size
    # The finer quantiser reconstructs the frames more closely.
    error = [
        np.abs(read_video(p, rgb=True).frames.astype(int) - frames).mean() for p in (fine, coarse)
    ]
    assert error[0] < error[1]


def test_odd_sizes_are_cropped_to_even(tmp_path):
    frames = moving_texture(5, 65, 97, velocity=(1, 0), seed=2)  # [5, 65, 97, 3]
    video = read_video(write_video(tmp_path / "v.avi", frames, codec="mpeg4", quality=1), rgb=True)
    assert (video.height, video.width) == (64, 96)
    # The kept part is the top-left 64x96 of the input, not the bottom-right.
    decoded = video.frames.astype(int)
    kept = float(np.abs(decoded - frames[:, :64, :96]).mean())
    other = float(np.abs(decoded - frames[:, 1:, 1:]).mean())
    assert kept < 6 and kept < other / 2, (kept, other)


def test_frames_may_be_an_iterable(tmp_path, frames):
    path = write_video(tmp_path / "v.avi", (f for f in frames[:7]), codec="mpeg4")
    assert decoded_types(path) == "IPPPPPP"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(codec="vp9"), "codec must be one of"),
        (dict(codec="mpeg4", refs=2), "one reference frame"),
        (dict(gop=0), "gop must be >= 1"),
        (dict(b_frames=-1), "b_frames must be >= 0"),
        (dict(codec="h264", quality=60), r"quality for h264 must lie in \[0, 51\]"),
        (dict(fps=0), "fps must be positive"),
    ],
)
def test_bad_arguments_name_the_value(tmp_path, frames, kwargs, message):
    with pytest.raises(ValueError, match=message):
        write_video(tmp_path / "v.mp4", frames, **kwargs)


def test_bad_frames_are_rejected(tmp_path, frames):
    with pytest.raises(ValueError, match="uint8 RGB"):
        write_video(tmp_path / "v.avi", frames.astype(np.float32))
    with pytest.raises(ValueError, match="frame 1 is"):
        write_video(tmp_path / "v.avi", [frames[0], frames[1, :32]])
    with pytest.raises(ValueError, match="no frames"):
        write_video(tmp_path / "v.avi", [])


def test_mpeg2_rejects_non_standard_rates_with_the_file_name(tmp_path, frames):
    path = tmp_path / "v.mpg"
    with pytest.raises(VideoError, match=str(path)) as info:
        write_video(path, frames, fps=7, codec="mpeg2video")
    assert info.value.stage == "encode"


def test_sps_parser_handles_missing_and_damaged_data(tmp_path, frames):
    assert h264_sps.max_num_ref_frames(None) is None
    assert h264_sps.max_num_ref_frames(b"\x00\x00\x01\x67") is None  # SPS cut short
    path = write_video(tmp_path / "v.h264", frames[:3], codec="h264", refs=2, format="h264")
    with open(path, "rb") as stream:  # Annex B: the SPS is in-band
        assert h264_sps.max_num_ref_frames(stream.read()) == 2


def test_failed_write_leaves_no_file(tmp_path, frames):
    path = tmp_path / "v.avi"
    with pytest.raises(ValueError, match="frame 2 is"):
        write_video(path, [frames[0], frames[1], frames[2, :, :10]])
    assert not path.exists()

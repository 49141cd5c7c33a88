"""read_video failures: each raises a VideoError subclass naming the file and cause."""

import av
import numpy as np
import pytest

from tfcmvp.codec import (
    CorruptVideoError,
    NoVideoStreamError,
    UnsupportedCodecError,
    VideoError,
    read_video,
    write_video,
)
from tfcmvp.codec.synthetic import moving_texture, write_tone


def expect(error_type, path, stage, match):
    with pytest.raises(error_type, match=match) as info:
        read_video(path)
    assert str(path) in str(info.value) and info.value.path == str(path)
    assert info.value.stage == stage
    assert isinstance(info.value, VideoError)
    return info.value


def test_missing_file(tmp_path):
    expect(VideoError, tmp_path / "absent.mp4", "open", "No such file")


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    expect(VideoError, path, "open", "cannot open")


def test_random_bytes_named_mp4(tmp_path):
    path = tmp_path / "noise.mp4"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    expect(VideoError, path, "open", "cannot open")


def test_text_file_named_avi(tmp_path):
    path = tmp_path / "notes.avi"
    path.write_text("this is not a video\n" * 40)
    expect(VideoError, path, "open", "cannot open")


@pytest.mark.parametrize("codec, ext", [("aac", "mp4"), ("mp2", "mka")])
def test_audio_only_file(tmp_path, codec, ext):
    path = tmp_path / f"tone.{ext}"
    write_tone(path, codec)
    expect(NoVideoStreamError, path, "open", "no video stream.*audio")


def test_vp9_names_the_reencode_option(tmp_path):
    path = tmp_path / "v.webm"
    frames = moving_texture(4, 32, 32, velocity=(1, 0), seed=7)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libvpx-vp9", rate=25)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    error = expect(UnsupportedCodecError, path, "open", "vp9 decoder exports no motion vectors")
    assert 'reencode(src, dst, codec="mpeg4")' in str(error)
    assert "--reencode mpeg4" in str(error)


@pytest.fixture(scope="module")
def video_bytes(tmp_path_factory):
    """Complete 25-frame files (two GOPs + 1) keyed by extension."""
    folder = tmp_path_factory.mktemp("complete")
    frames = moving_texture(25, 64, 80, velocity=(2, 1), seed=8)
    out = {}
    for ext, codec in [("avi", "mpeg4"), ("mp4", "h264"), ("mkv", "h264")]:
        path = write_video(folder / f"v.{ext}", frames, codec=codec)
        assert read_video(path).num_frames == 25  # the intact file is fine
        out[ext] = (folder / f"v.{ext}").read_bytes()
    return out


@pytest.mark.parametrize("ext", ["avi", "mkv"])
def test_truncated_file_is_corrupt(tmp_path, video_bytes, ext):
    data = video_bytes[ext]
    path = tmp_path / f"cut.{ext}"
    path.write_bytes(data[: len(data) // 2])
    expect(CorruptVideoError, path, "decode", "corrupt|declares about 25")


def test_truncated_mp4_fails_to_open(tmp_path, video_bytes):
    # The moov index sits at the end of an MP4 written in one pass.
    data = video_bytes["mp4"]
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[: len(data) // 2])
    expect(VideoError, path, "open", "cannot open")


@pytest.mark.parametrize("ext", ["avi", "mp4", "mkv"])
def test_damaged_packets_mid_file(tmp_path, video_bytes, ext):
    data = bytearray(video_bytes[ext])
    middle = len(data) // 2
    noise = np.random.default_rng(1).integers(0, 256, 200, dtype=np.uint8)
    data[middle : middle + 200] = noise.tobytes()
    path = tmp_path / f"damaged.{ext}"
    path.write_bytes(bytes(data))
    expect(CorruptVideoError, path, "decode", "corrupt|failed|declares")

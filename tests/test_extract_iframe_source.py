"""--iframe_source reencode and the re-encode bit rates: the job, the record, the schema."""

import io
import json

import numpy as np
import pytest
from PIL import Image

from beam_jobs import extract, extract_options
from tfcmvp import example_proto, records, schema
from tfcmvp.codec import read_video, write_video
from tfcmvp.codec.synthetic import moving_texture

IN_PROCESS = ["--direct_num_workers=1", "--direct_running_mode=in_memory"]
NUM_FRAMES = 50
IFRAMES = [0, 12, 24, 36, 48]

# The keys of a schema-1 record as written before the optional iframe/ keys existed.
V1_KEYS = {
    "schema/version",
    "video/id",
    "video/label",
    "video/label_name",
    "video/split",
    "video/fps",
    "video/width",
    "video/height",
    "video/codec",
    "video/num_frames",
    "video/frame_types",
    "video/iframe_indices",
    "video/one_past_reference",
    "rgb/encoded",
    "rgb/height",
    "rgb/width",
    "iframe/encoded",
    "mv/encoded",
    "mv/height",
    "mv/width",
    "mv/cell",
    "mv/scale",
}


def decode_jpeg(data):
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(np.float64)


def psnr(a, b):
    return 10 * np.log10(255.0**2 / np.mean((a - b) ** 2))


def read_records(out):
    """{video_id: (serialized bytes, VideoRecord)} of an output folder, without TensorFlow."""
    import gzip

    found = {}
    for shard in sorted(out.glob("*.tfrecord.gz")):
        data, offset = gzip.decompress(shard.read_bytes()), 0
        while offset < len(data):  # TFRecord framing: length, crc, data, crc
            length = int.from_bytes(data[offset : offset + 8], "little")
            raw = data[offset + 12 : offset + 12 + length]
            offset += 16 + length
            record = schema.decode_example(raw)
            found[record.video_id] = (raw, record)
    return found


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Two 320x240 MPEG-4 videos (UCF101's size, where 200 kb/s is a real constraint)."""
    root = tmp_path_factory.mktemp("iframes")
    videos = root / "videos"
    videos.mkdir()
    for seed, (name, velocity) in enumerate((("a.avi", (2, -1)), ("b.avi", (-1, 1)))):
        write_video(
            videos / name, moving_texture(NUM_FRAMES, 240, 320, velocity, seed=seed), fps=25, gop=12
        )
    listing = root / "list.csv"
    listing.write_text("path,label,split\na.avi,walk,train\nb.avi,run,test\n")
    return videos, listing


@pytest.fixture(scope="module")
def runs(dataset, tmp_path_factory):
    """The same videos extracted with the decoded I-frames (default) and re-encoded ones."""
    videos, listing = dataset
    root = tmp_path_factory.mktemp("runs")
    common = [f"--videos_dir={videos}", f"--manifest={listing}", *IN_PROCESS]
    manifests = {
        "decoded": extract.run([*common, f"--output_dir={root / 'decoded'}"]),
        "reencode": extract.run(
            [*common, f"--output_dir={root / 'reencode'}", "--iframe_source=reencode"]
        ),
    }
    return {name: (read_records(root / name), manifests[name]) for name in manifests}


def test_reencoded_iframes_replace_only_the_iframe_pixels(runs):
    decoded, _ = runs["decoded"]
    reencoded, manifest = runs["reencode"]
    assert sorted(decoded) == sorted(reencoded) == ["a.avi", "b.avi"]
    for video_id in decoded:
        old, new = decoded[video_id][1], reencoded[video_id][1]
        assert new.iframe_indices == old.iframe_indices == IFRAMES
        assert new.frame_types == old.frame_types
        assert new.rgb_jpegs == old.rgb_jpegs  # RGB frames: the same bytes
        assert (
            schema.quantize_vectors(new.motion_vectors).tobytes()
            == schema.quantize_vectors(old.motion_vectors).tobytes()
        )  # vectors: the same bytes
        assert (new.iframe_source, new.iframe_bitrate) == ("reencode", 200_000)
        assert (old.iframe_source, old.iframe_bitrate) == ("decoded", 0)
        for position, index in enumerate(new.iframe_indices):
            assert old.iframe_jpegs[position] == old.rgb_jpegs[index]  # the default: same frame
            assert new.iframe_jpegs[position] != new.rgb_jpegs[index]
            clip_frame = decode_jpeg(new.rgb_jpegs[index])
            iframe = decode_jpeg(new.iframe_jpegs[position])
            assert iframe.shape == clip_frame.shape == (128, 171, 3)
            assert np.abs(iframe - clip_frame).mean() > 1.0  # never pixel-identical
            assert psnr(iframe, clip_frame) > 25  # the same picture
    assert manifest["options"]["iframe_source"] == "reencode"
    assert manifest["options"]["iframe_bitrate"] == 200_000
    assert manifest["options"]["reencode_bitrate"] is None


def test_default_records_carry_only_the_v1_keys(runs):
    """Default output is what earlier writers wrote: no new key, so the same bytes."""
    decoded, manifest = runs["decoded"]
    for raw, _ in decoded.values():
        assert set(example_proto.Example.FromString(raw).features.feature) == V1_KEYS
    reencoded, _ = runs["reencode"]
    for raw, _ in reencoded.values():
        keys = set(example_proto.Example.FromString(raw).features.feature)
        assert keys == V1_KEYS | {schema.IFRAME_SOURCE, schema.IFRAME_BITRATE}
    assert manifest["options"]["iframe_source"] == "decoded"
    assert manifest["options"]["iframe_bitrate"] is None
    assert manifest["schema_version"] == schema.SCHEMA_VERSION == 1


def test_records_parse_both_ways_with_tensorflow(runs):
    """New readers read old records (defaults for the missing keys); readers that know only
    the v1 keys read new records (TensorFlow ignores keys it is not asked for)."""
    import tensorflow as tf

    from tfcmvp.data import reader

    old_raw = runs["decoded"][0]["a.avi"][0]
    new_raw = runs["reencode"][0]["a.avi"][0]
    old = reader.parse_record(tf.constant(old_raw))
    assert old[schema.IFRAME_SOURCE].numpy() == b"decoded"
    assert old[schema.IFRAME_BITRATE].numpy() == 0
    new = reader.parse_record(tf.constant(new_raw))
    assert new[schema.IFRAME_SOURCE].numpy() == b"reencode"
    assert new[schema.IFRAME_BITRATE].numpy() == 200_000
    v1_spec = {k: v for k, v in schema.feature_spec().items() if k in V1_KEYS}
    parsed = tf.io.parse_single_example(new_raw, v1_spec)
    assert parsed[schema.VIDEO_ID].numpy() == b"a.avi"
    assert len(parsed[schema.IFRAME_ENCODED].values) == len(IFRAMES)


def test_reencode_bitrate_reaches_the_job(dataset, tmp_path):
    """--reencode mpeg4 --reencode_bitrate 100k: everything is decoded from that encode (the
    same bytes as re-encoding here at 100 kb/s), not from the default fixed-quantiser one."""
    from tfcmvp.codec import reencode

    videos, listing = dataset
    common = [f"--videos_dir={videos}", f"--manifest={listing}", "--reencode=mpeg4", *IN_PROCESS]
    extract.run([*common, f"--output_dir={tmp_path / 'q'}"])
    manifest = extract.run([*common, f"--output_dir={tmp_path / 'b'}", "--reencode_bitrate=100k"])
    assert manifest["options"]["reencode_bitrate"] == 100_000
    _, by_quantiser = read_records(tmp_path / "q")["a.avi"]
    _, by_bitrate = read_records(tmp_path / "b")["a.avi"]
    here = read_video(
        reencode(videos / "a.avi", tmp_path / "a.mp4", bitrate=100_000),
        rgb=True,
        rgb_short_side=128,
    )
    assert by_bitrate.rgb_jpegs == [records.encode_jpeg(f) for f in here.frames]
    assert by_bitrate.rgb_jpegs != by_quantiser.rgb_jpegs
    assert by_bitrate.iframe_indices == by_quantiser.iframe_indices == IFRAMES


def test_iframe_failures_go_to_failed_jsonl(dataset, tmp_path, monkeypatch):
    """A video whose I-frame re-encode fails is reported at stage "iframes", never dropped."""
    import importlib

    from tfcmvp.codec import VideoError

    reencode_lib = importlib.import_module("tfcmvp.codec.reencode")

    def broken(src, *args, **kwargs):
        raise VideoError(src, "encoder exploded", stage="reencode")

    monkeypatch.setattr(reencode_lib, "reencoded_iframes", broken)
    videos, listing = dataset
    with pytest.raises(extract.ExtractionFailedError, match="no video was written"):
        extract.run(
            [
                f"--videos_dir={videos}",
                f"--manifest={listing}",
                f"--output_dir={tmp_path / 'out'}",
                "--iframe_source=reencode",
                *IN_PROCESS,
            ]
        )
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["status"] == "failed"
    assert manifest["splits"]["train"]["failed"] == 1
    failures = [
        json.loads(line) for line in (tmp_path / "out" / "failed.jsonl").read_text().splitlines()
    ]
    assert {(f["video_id"], f["stage"]) for f in failures} == {
        ("a.avi", "iframes"),
        ("b.avi", "iframes"),
    }
    assert all("encoder exploded" in f["message"] for f in failures)


def config_of(*flags):
    options = extract_options.make_pipeline_options(
        ["--videos_dir=v", "--output_dir=o", "--splits_dir=s", *flags]
    )
    return extract_options.ExtractConfig.from_options(options)


def test_options():
    default = config_of()
    assert (default.iframe_source, default.iframe_bitrate, default.reencode_bitrate) == (
        "decoded",
        None,
        None,
    )
    authors = config_of("--iframe_source=reencode")
    assert (authors.iframe_source, authors.iframe_bitrate) == ("reencode", 200_000)
    assert (
        config_of("--iframe_source=reencode", "--iframe_bitrate=1.5M").iframe_bitrate == 1_500_000
    )
    assert config_of("--reencode=mpeg4", "--reencode_bitrate=200k").reencode_bitrate == 200_000
    with pytest.raises(ValueError, match="--iframe_bitrate needs --iframe_source reencode"):
        config_of("--iframe_bitrate=200k")
    with pytest.raises(ValueError, match="--reencode_bitrate needs --reencode mpeg4 or h264"):
        config_of("--reencode_bitrate=200k")
    with pytest.raises(ValueError, match=r"--iframe_bitrate: '2 mbit' is not a bit rate"):
        config_of("--iframe_source=reencode", "--iframe_bitrate=2 mbit")
    with pytest.raises(SystemExit):  # argparse: not one of the choices
        config_of("--iframe_source=clip")
    assert [extract_options.parse_bitrate(t) for t in ("200k", "200K", "1.5M", "64000")] == [
        200_000,
        200_000,
        1_500_000,
        64_000,
    ]
    with pytest.raises(ValueError, match="below 1000 bits/s"):
        extract_options.parse_bitrate("0.5k")


def test_cli_passes_the_new_flags_to_the_job(monkeypatch, capsys):
    """`tfcmvp extract ...` forwards the job's flags, in both spellings, untouched."""
    from tfcmvp.cli import main as cli

    seen = {}

    def fake_run(argv):
        seen["argv"] = list(argv)
        return {"splits": {}, "options": {}}

    monkeypatch.setattr(extract, "run", fake_run)
    argv = [
        "--videos_dir=v",
        "--output_dir=o",
        "--splits_dir=s",
        "--iframe_source",
        "reencode",
        "--iframe_bitrate=100k",
        "--reencode=mpeg4",
        "--reencode_bitrate",
        "300k",
    ]
    assert cli.main(["extract", *argv]) == 0
    assert seen["argv"] == argv
    config = extract_options.ExtractConfig.from_options(
        extract_options.make_pipeline_options(seen["argv"])
    )
    assert (config.iframe_source, config.iframe_bitrate, config.reencode_bitrate) == (
        "reencode",
        100_000,
        300_000,
    )
    assert cli.main(["extract", "--help"]) == 0
    shown = capsys.readouterr().out
    for flag in ("--iframe_source", "--iframe_bitrate", "--reencode_bitrate"):
        assert flag in shown


def painted_video():
    from tfcmvp.codec.video import CompressedVideo

    frames = np.stack([np.full((16, 24, 3), 40 * t, np.uint8) for t in range(5)])
    return CompressedVideo(
        path="/data/v.avi",
        codec="mpeg4",
        width=24,
        height=16,
        fps=25.0,
        frame_types="IPPIP",
        iframe_indices=np.array([0, 3]),
        motion_vectors=np.zeros((5, 2, 3, 2), np.float32),
        mv_cell=8,
        one_past_reference=True,
        frames=frames,
    )


def test_build_record_with_reencoded_iframes():
    video = painted_video()
    images = np.stack([np.full((16, 24, 3), 7, np.uint8), np.full((16, 24, 3), 200, np.uint8)])
    kwargs = dict(video_id="v.avi", label=0, label_name="x", split="train")
    record = records.build_record(video, **kwargs, iframe_images=images, iframe_bitrate=200_000)
    assert (record.iframe_source, record.iframe_bitrate) == ("reencode", 200_000)
    assert [decode_jpeg(j).mean() for j in record.iframe_jpegs] == pytest.approx([7, 200], abs=1)
    back = schema.decode_example(schema.encode_example(record))
    assert (back.iframe_source, back.iframe_bitrate) == ("reencode", 200_000)
    assert back.iframe_jpegs == record.iframe_jpegs
    with pytest.raises(
        ValueError,
        match=r"/data/v\.avi: re-encoded I-frames are uint8 "
        r"\(1, 16, 24, 3\), expected uint8 \(2, 16, 24, 3\)",
    ):
        records.build_record(video, **kwargs, iframe_images=images[:1], iframe_bitrate=1000)
    with pytest.raises(ValueError, match="iframe_images and iframe_bitrate go together"):
        records.build_record(video, **kwargs, iframe_images=images)
    with pytest.raises(ValueError, match="iframe_bitrate must be positive"):
        records.build_record(video, **kwargs, iframe_images=images, iframe_bitrate=0)


def test_encode_example_checks_the_iframe_source():
    record = records.build_record(
        painted_video(), video_id="v.avi", label=0, label_name="x", split="train"
    )
    record.iframe_source = "clip"
    with pytest.raises(ValueError, match=r"v\.avi: inconsistent record: iframe_source 'clip'"):
        schema.encode_example(record)
    record.iframe_source, record.iframe_bitrate = "decoded", 200_000
    with pytest.raises(ValueError, match="iframe_bitrate 200000 with iframe_source 'decoded'"):
        schema.encode_example(record)

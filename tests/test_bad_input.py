"""Bad and unusual inputs in one small Beam run: none stops the job.

Failures land in failed.jsonl with a message naming the file and the cause;
odd-but-valid videos are written (and counted short / all-intra where due);
``listed == written + failed``.
"""

import json

import av
import numpy as np
import pytest

from beam_jobs import extract
from tfcmvp import schema
from tfcmvp.codec import write_video

IN_PROCESS = ["--direct_num_workers=1", "--direct_running_mode=in_memory"]


def smooth_frames(num_frames, height, width):
    """uint8 [T, H, W, 3]: gradients that drift by one pixel per frame (cheap to encode)."""
    yy, xx = np.mgrid[0:height, 0:width]
    return np.stack(
        [
            np.stack([(xx + t) * 3 % 256, yy * 2 % 256, (xx + yy + 2 * t) % 256], -1)
            for t in range(num_frames)
        ]
    ).astype(np.uint8)


def write_audio_only(path):
    """An AVI holding one PCM audio stream and no video."""
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=16000, layout="mono")
        for i in range(5):
            samples = rng.integers(-3000, 3000, (1, 1600)).astype(np.int16)
            frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
            frame.sample_rate, frame.pts = 16000, i * 1600
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


# name -> split; every one is listed in the CSV manifest.
LISTED = {
    "bad/zero.avi": "train",
    "bad/truncated.avi": "train",
    "bad/random.avi": "test",
    "bad/text.avi": "test",
    "bad/audio.avi": "train",
    "bad/missing.avi": "test",
    "odd/short.avi": "train",
    "odd/intra.avi": "train",
    "odd/size_90x70.avi": "test",
    "odd/large_1080p.avi": "test",
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_input")
    videos, out = root / "videos", root / "out"
    (videos / "bad").mkdir(parents=True)
    (videos / "odd").mkdir()
    (videos / "bad" / "zero.avi").write_bytes(b"")
    whole = write_video(root / "whole.avi", smooth_frames(80, 48, 64), codec="mpeg4", gop=12)
    data = open(whole, "rb").read()
    (videos / "bad" / "truncated.avi").write_bytes(data[: len(data) // 2])
    (videos / "bad" / "random.avi").write_bytes(
        np.random.default_rng(1).integers(0, 256, 20000, dtype=np.uint8).tobytes()
    )
    (videos / "bad" / "text.avi").write_text("this is not a video\n" * 50)
    write_audio_only(videos / "bad" / "audio.avi")
    write_video(videos / "odd" / "short.avi", smooth_frames(20, 48, 64), codec="mpeg4", gop=12)
    write_video(videos / "odd" / "intra.avi", smooth_frames(72, 48, 64), codec="mpeg4", gop=1)
    write_video(videos / "odd" / "size_90x70.avi", smooth_frames(72, 70, 90), codec="mpeg4", gop=12)
    write_video(
        videos / "odd" / "large_1080p.avi", smooth_frames(3, 1080, 1920), codec="mpeg4", gop=12
    )
    csv = root / "list.csv"
    csv.write_text(
        "path,label,split\n"
        + "".join(f"{name},{name.split('/')[0]},{split}\n" for name, split in LISTED.items())
    )
    # 6 of 10 fail by design: above the default --max_failed_fraction.
    manifest = extract.run(
        [
            f"--videos_dir={videos}",
            f"--manifest={csv}",
            f"--output_dir={out}",
            "--max_failed_fraction=1",
            *IN_PROCESS,
        ]
    )
    failures = {
        rec["video_id"]: rec
        for rec in map(json.loads, (out / "failed.jsonl").read_text().splitlines())
    }
    records = {}
    import tensorflow as tf

    files = sorted(str(p) for p in out.glob("*.tfrecord.gz"))
    for raw in tf.data.TFRecordDataset(files, compression_type="GZIP").as_numpy_iterator():
        rec = schema.decode_example(raw)
        records[rec.video_id] = rec
    return videos, manifest, failures, records


def check_failure(run, name, stage, error, cause):
    videos, _, failures, records = run
    assert name not in records
    rec = failures[name]
    path = str(videos / name)
    assert (rec["path"], rec["split"], rec["stage"], rec["error"]) == (
        path,
        LISTED[name],
        stage,
        error,
    )
    assert path in rec["message"], rec["message"]
    assert cause in rec["message"], rec["message"]


def test_zero_byte_file(run):
    check_failure(run, "bad/zero.avi", "open", "VideoError", "Invalid data")


def test_truncated_file(run):
    failures = run[2]
    check_failure(run, "bad/truncated.avi", "decode", "CorruptVideoError", "")
    message = failures["bad/truncated.avi"]["message"]
    assert "corrupt" in message or "truncated" in message, message


def test_random_bytes_named_avi(run):
    check_failure(run, "bad/random.avi", "open", "VideoError", "Invalid data")


def test_text_file_named_avi(run):
    check_failure(run, "bad/text.avi", "open", "VideoError", "Invalid data")


def test_audio_only_file(run):
    check_failure(run, "bad/audio.avi", "open", "NoVideoStreamError", "no video stream")


def test_listed_but_missing(run):
    check_failure(run, "bad/missing.avi", "open", "FileNotFoundError", "no such file")


def test_too_short_video_is_written_and_counted_short(run):
    _, manifest, _, records = run
    assert records["odd/short.avi"].num_frames == 20
    assert manifest["splits"]["train"]["short_ids"] == ["odd/short.avi"]


def test_all_intra_video_is_written_and_flagged(run):
    _, manifest, _, records = run
    rec = records["odd/intra.avi"]
    assert rec.frame_types == "I" * 72 and rec.iframe_indices == list(range(72))
    assert not rec.motion_vectors.any()
    assert manifest["splits"]["train"]["all_intra"] == 1
    assert manifest["splits"]["train"]["all_intra_ids"] == ["odd/intra.avi"]


def test_size_not_a_multiple_of_16(run):
    rec = run[3]["odd/size_90x70.avi"]
    assert (rec.width, rec.height) == (90, 70)
    # ceil(70 / 8) x ceil(90 / 8) cells; RGB 128 x round(90 * 128 / 70) = 165.
    assert rec.motion_vectors.shape == (72, 9, 12, 2)
    assert (rec.rgb_height, rec.rgb_width) == (128, 165)


def test_very_large_frames_are_downscaled(run):
    import tensorflow as tf

    rec = run[3]["odd/large_1080p.avi"]
    assert (rec.width, rec.height, rec.num_frames) == (1920, 1080, 3)
    assert (rec.rgb_height, rec.rgb_width) == (128, 228)  # round(1920 * 128 / 1080)
    assert tf.io.decode_jpeg(rec.rgb_jpegs[0]).shape == (128, 228, 3)
    assert rec.motion_vectors.shape == (3, 135, 240, 2)


def test_counts_add_up(run):
    _, manifest, failures, records = run
    train, test = manifest["splits"]["train"], manifest["splits"]["test"]
    assert (train["listed"], train["written"], train["failed"]) == (5, 2, 3)
    assert (test["listed"], test["written"], test["failed"]) == (5, 2, 3)
    for split in (train, test):
        assert split["listed"] == split["written"] + split["failed"]
    assert len(failures) == 6 and len(records) == 4
    assert test["short_ids"] == ["odd/large_1080p.avi"]
    assert manifest["layout"] == "csv"
    assert (manifest["status"], manifest["problems"]) == ("ok", [])

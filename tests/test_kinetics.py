"""Kinetics-400 import (tfcmvp.kinetics, ``tfcmvp kinetics``) and windowed decoding:
manifest rows and ledger counts on hand-made annotations, the three file layouts,
``start,end`` manifest columns, and trimming that keeps exactly the window's frames."""

import csv
import io
import json

import numpy as np
import pytest

from beam_jobs import extract
from tfcmvp import kinetics, schema, splits
from tfcmvp.cli import main as cli_main
from tfcmvp.codec import read_video, write_video
from tfcmvp.codec.errors import CorruptVideoError

IN_PROCESS = ["--direct_num_workers=1", "--direct_running_mode=in_memory"]

# train.csv: 5 valid rows (one for each layout and two missing), a duplicate of row 2,
# and three out of range (end <= start, negative start, not a number).
TRAIN = (
    "label,youtube_id,time_start,time_end,split,is_cc\n"
    "abseiling,aaaaaaaaaaa,10,20,train,0\n"  # 2: trimmed, in its class folder
    '"petting animal (not cat)",bbbbbbbbbbb,0,10,train,0\n'  # 3: class folder with _
    "abseiling,ccccccccccc,5,15,train,0\n"  # 4: flat trimmed clip
    "archery,ddddddddddd,30,40,train,0\n"  # 5: untrimmed download (.webm)
    "archery,eeeeeeeeeee,1,11,train,0\n"  # 6: missing
    "abseiling,aaaaaaaaaaa,10,20,train,0\n"  # 7: duplicate of line 2
    "archery,fffffffffff,20,20,train,0\n"  # 8: end <= start
    "archery,ggggggggggg,-1,9,train,0\n"  # 9: negative
    "archery,hhhhhhhhhhh,x,9,train,0\n"  # 10: not a number
)
# validate.csv: the split column says "val"; one found (untrimmed .mkv), one missing.
VALIDATE = (
    "label,youtube_id,time_start,time_end,split\n"
    "abseiling,iiiiiiiiiii,2,12,val\n"
    "archery,jjjjjjjjjjj,0,10,val\n"
)
# test.csv without labels; left out by default.
TEST = "youtube_id,time_start,time_end,split\nkkkkkkkkkkk,0,10,test\n"

VIDEO_FILES = [
    "train/abseiling/aaaaaaaaaaa_000010_000020.mp4",
    "train/petting_animal_(not_cat)/bbbbbbbbbbb_000000_000010.mp4",
    "clips/ccccccccccc_000005_000015.mp4",
    "raw/ddddddddddd.webm",
    "raw/iiiiiiiiiii.mkv",
    "raw/kkkkkkkkkkk.mp4",
    "raw/notes.txt",  # not a video
]


def texts():
    return {"a/train.csv": TRAIN, "a/validate.csv": VALIDATE, "a/test.csv": TEST}


def test_manifest_rows_and_ledger_counts():
    result = kinetics.import_kinetics(texts(), kinetics.VideoIndex(VIDEO_FILES))
    assert result.rows == [
        kinetics.ManifestRow(VIDEO_FILES[0], "abseiling", "train"),
        kinetics.ManifestRow(VIDEO_FILES[1], "petting animal (not cat)", "train"),
        kinetics.ManifestRow(VIDEO_FILES[2], "abseiling", "train"),
        kinetics.ManifestRow("raw/ddddddddddd.webm", "archery", "train", 30.0, 40.0),
        kinetics.ManifestRow("raw/iiiiiiiiiii.mkv", "abseiling", "test", 2.0, 12.0),
    ]
    ledger = result.ledger()
    assert ledger["listed"] == {"train": 5, "val": 2, "test": 1}
    assert ledger["found"] == {"train": 4, "val": 1}
    assert ledger["missing"] == {"train": 1, "val": 1}
    assert ledger["missing_per_class"] == {"train": {"archery": 1}, "val": {"archery": 1}}
    assert ledger["layouts"] == {"trimmed_class_folder": 2, "trimmed": 1, "untrimmed": 2}
    assert ledger["split_map"] == {"train": "train", "val": "test"}
    assert (ledger["duplicates"], ledger["out_of_range"]) == (1, 3)
    assert [(r["line"], r["reason"]) for r in ledger["rejected"]] == [
        (7, "duplicate"),
        (8, "out_of_range"),
        (9, "out_of_range"),
        (10, "out_of_range"),
    ]
    assert "first listed at a/train.csv:2" in ledger["rejected"][0]["detail"]
    assert [(a.youtube_id, a.split) for a in result.missing] == [
        ("eeeeeeeeeee", "train"),
        ("jjjjjjjjjjj", "val"),
    ]


def test_test_split_when_asked_and_clip_preferred_to_download():
    files = VIDEO_FILES + ["raw/aaaaaaaaaaa.mp4", "val/iiiiiiiiiii_000002_000012.mp4"]
    result = kinetics.import_kinetics(
        texts(), kinetics.VideoIndex(files), include=("train", "val", "test")
    )
    by_path = {row.path: row for row in result.rows}
    assert "raw/aaaaaaaaaaa.mp4" not in by_path  # the trimmed clip of that window wins
    assert by_path["val/iiiiiiiiiii_000002_000012.mp4"] == kinetics.ManifestRow(
        "val/iiiiiiiiiii_000002_000012.mp4", "abseiling", "test"
    )
    assert by_path["raw/kkkkkkkkkkk.mp4"] == kinetics.ManifestRow(
        "raw/kkkkkkkkkkk.mp4", "", "test", 0.0, 10.0
    )
    assert result.ledger()["missing"] == {"train": 1, "val": 1, "test": 0}


def test_split_from_file_name_and_bad_files():
    no_split = "label,youtube_id,time_start,time_end\nabseiling,aaaaaaaaaaa,10,20\n"
    annotations, _ = kinetics.read_annotations({"kinetics_400_validate.csv": no_split})
    assert [a.split for a in annotations] == ["val"]
    with pytest.raises(splits.SplitFileError, match=r"other\.csv:2: no split column"):
        kinetics.read_annotations({"other.csv": no_split})
    with pytest.raises(splits.SplitFileError, match=r"train\.csv:2: split 'dev'"):
        kinetics.read_annotations({"train.csv": TRAIN.replace(",train,0\n", ",dev,0\n", 1)})
    with pytest.raises(
        splits.SplitFileError, match=r"x\.csv:1: missing column\(s\) \['time_end'\]"
    ):
        kinetics.read_annotations({"x.csv": "youtube_id,time_start\n"})


def test_command_writes_manifest_ledger_and_missing_list(tmp_path, capsys):
    annotations, videos = tmp_path / "ann", tmp_path / "videos"
    annotations.mkdir()
    for name, text in texts().items():
        (annotations / name.split("/")[1]).write_text(text)
    (annotations / "unrelated.csv").write_text("a,b\n1,2\n")  # skipped: not annotations
    for rel in VIDEO_FILES:
        (videos / rel).parent.mkdir(parents=True, exist_ok=True)
        (videos / rel).write_bytes(b"")  # the importer never opens a video
    out = tmp_path / "k400.csv"
    code = cli_main.main(
        ["kinetics", f"--annotations={annotations}", f"--videos={videos}", f"--output={out}"]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "train -> train: 5 listed, 4 found, 1 missing" in printed
    assert "val -> test: 2 listed, 1 found, 1 missing" in printed

    parsed = splits.parse_manifest_csv(out.read_text(), str(out))
    assert parsed.class_names == ["abseiling", "archery", "petting animal (not cat)"]
    assert [(e.video_id, e.label, e.split) for e in parsed.entries] == [
        (VIDEO_FILES[0], 0, "train"),
        (VIDEO_FILES[1], 2, "train"),
        (VIDEO_FILES[2], 0, "train"),
        ("raw/ddddddddddd.webm#t=30,40", 1, "train"),
        ("raw/iiiiiiiiiii.mkv#t=2,12", 0, "test"),
    ]
    missing = list(csv.DictReader(io.StringIO((tmp_path / "k400.missing.csv").read_text())))
    assert [(m["youtube_id"], m["split"], m["line"]) for m in missing] == [
        ("eeeeeeeeeee", "train", "6"),
        ("jjjjjjjjjjj", "val", "3"),
    ]
    ledger = json.loads((tmp_path / "k400.ledger.json").read_text())
    assert (ledger["duplicates"], ledger["out_of_range"]) == (1, 3)

    code = cli_main.main(
        ["kinetics", f"--annotations={videos}", f"--videos={videos}", f"--output={out}"]
    )
    assert code == 2  # no annotation CSV there


def test_manifest_window_columns():
    plain = "path,label,split\na.mp4,x,train\n"
    assert splits.parse_manifest_csv(plain, "m.csv").entries == [
        splits.VideoEntry("a.mp4", 0, "x", "train")
    ]
    windows = "path,label,split,start,end\na.mp4,x,train,,\na.mp4,x,train,1.5,3\n"
    entries = splits.parse_manifest_csv(windows, "m.csv").entries
    assert [(e.video_id, e.start, e.end) for e in entries] == [
        ("a.mp4", None, None),
        ("a.mp4#t=1.5,3", 1.5, 3.0),
    ]
    for row, message in [
        ("a.mp4,x,train,2,2", r"m\.csv:2: window \[2, 2\) s is empty"),
        ("a.mp4,x,train,-1,2", r"m\.csv:2: window"),
        ("a.mp4,x,train,1,", r"m\.csv:2: start and end must both"),
        ("a.mp4,x,train,a,2", r"m\.csv:2: start/end must be seconds"),
    ]:
        with pytest.raises(splits.SplitFileError, match=message):
            splits.parse_manifest_csv(f"path,label,split,start,end\n{row}\n", "m.csv")
    with pytest.raises(splits.SplitFileError, match="start and end go together"):
        splits.parse_manifest_csv("path,label,split,start\na.mp4,x,train,1\n", "m.csv")
    repeated = "path,label,split,start,end\na.mp4,x,train,1,2\na.mp4,x,test,1,2\n"
    with pytest.raises(splits.SplitFileError, match=r"'a\.mp4#t=1,2' already listed at"):
        splits.parse_manifest_csv(repeated, "m.csv")


# ----------------------------------------------------------------------------- trimming

NUM_FRAMES, LEVEL = 60, 4  # frame t is a flat grey of level 4 * t


def indexed_frames():
    frames = np.zeros((NUM_FRAMES, 48, 64, 3), np.uint8)  # [T, H, W, 3]
    for t in range(NUM_FRAMES):
        frames[t] = LEVEL * t
    # A moving bright square so that P-frames carry vectors.
    for t in range(NUM_FRAMES):
        frames[t, 16:32, 4 + t // 2 : 20 + t // 2] = 255
    return frames


def frame_numbers(rgb):
    """The frame index each decoded frame shows (its grey level / 4, in the bottom
    quarter, which the square never enters)."""
    return np.rint(rgb[:, rgb.shape[1] * 3 // 4 :].reshape(len(rgb), -1).mean(1) / LEVEL).astype(
        int
    )


@pytest.fixture(scope="module")
def indexed_videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("indexed")
    return {
        "mpeg4": write_video(root / "v.avi", indexed_frames(), fps=25, codec="mpeg4", gop=12),
        # B-frames: the decoder reorders, and leaves frames in display order.
        "h264": write_video(
            root / "v.mp4", indexed_frames(), fps=25, codec="h264", gop=12, b_frames=2
        ),
    }


@pytest.mark.parametrize("codec", ["mpeg4", "h264"])
@pytest.mark.parametrize(
    "start, end, first, last",
    [
        (0.5, 1.7, 13, 42),  # 12.5 and 42.5 frames: inside GOPs, between frames
        (0.48, 1.2, 12, 29),  # bounds on frame times: frame 12 in, frame 30 out
        (0.0, 1.0, 0, 24),
        (2.0, 9.0, 50, 59),  # past the end: cut at the last frame
    ],
)
def test_window_keeps_exactly_its_frames(indexed_videos, codec, start, end, first, last):
    full = read_video(indexed_videos[codec], rgb=True)
    video = read_video(indexed_videos[codec], rgb=True, start=start, end=end)
    assert video.num_frames == last - first + 1
    numbers = frame_numbers(video.frames)
    assert (numbers[0], numbers[-1]) == (first, last)
    np.testing.assert_array_equal(numbers, np.arange(first, last + 1))
    # Decoded from the key frame before the window, every kept frame is the full decode's.
    assert video.frame_types == full.frame_types[first : last + 1]
    np.testing.assert_array_equal(video.motion_vectors, full.motion_vectors[first : last + 1])
    np.testing.assert_array_equal(video.frames, full.frames[first : last + 1])
    np.testing.assert_array_equal(
        video.iframe_indices, [i - first for i in full.iframe_indices if first <= i <= last]
    )


def test_window_errors(indexed_videos):
    with pytest.raises(ValueError, match="0 <= start < end"):
        read_video(indexed_videos["mpeg4"], start=2.0, end=1.0)
    with pytest.raises(ValueError, match="0 <= start < end"):
        read_video(indexed_videos["mpeg4"], start=1.0)
    with pytest.raises(CorruptVideoError, match="starts after the video ends"):
        read_video(indexed_videos["mpeg4"], start=5.0, end=6.0)


def test_extraction_decodes_only_the_window(indexed_videos, tmp_path):
    import tensorflow as tf

    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "untrimmed.avi").write_bytes(open(indexed_videos["mpeg4"], "rb").read())
    listing = tmp_path / "list.csv"
    listing.write_text(
        "path,label,split,start,end\n"
        "untrimmed.avi,a,train,0.5,1.7\n"
        "untrimmed.avi,b,train,,\n"  # the whole file, as before
    )
    out = tmp_path / "out"
    manifest = extract.run(
        [f"--videos_dir={videos}", f"--manifest={listing}", f"--output_dir={out}", *IN_PROCESS]
    )
    assert manifest["splits"]["train"]["written"] == 2
    files = sorted(str(p) for p in out.glob("train-*.tfrecord.gz"))
    raw = tf.data.TFRecordDataset(files, compression_type="GZIP").as_numpy_iterator()
    records = {r.video_id: r for r in (schema.decode_example(x) for x in raw)}
    assert sorted(records) == ["untrimmed.avi", "untrimmed.avi#t=0.5,1.7"]
    window = records["untrimmed.avi#t=0.5,1.7"]
    assert len(window.frame_types) == 30 and len(records["untrimmed.avi"].frame_types) == 60
    images = np.stack([tf.io.decode_jpeg(j).numpy() for j in window.rgb_jpegs])
    assert list(frame_numbers(images)[[0, -1]]) == [13, 42]

    with pytest.raises(ValueError, match="--iframe_source reencode does not support"):
        extract.run(
            [
                f"--videos_dir={videos}",
                f"--manifest={listing}",
                f"--output_dir={tmp_path / 'out2'}",
                "--iframe_source=reencode",
                *IN_PROCESS,
            ]
        )

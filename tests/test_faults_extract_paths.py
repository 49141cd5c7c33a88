"""Fault injection, extraction: listed paths that lead outside --videos_dir.

A real, decodable video sits just outside the videos folder, so opening it
would succeed: the known answer is that it is never read. Each such entry is a
line of failed.jsonl at stage "path" whose message gives the reason; an
absolute path is used only with --allow_absolute_paths, a ".." escape never.
"""

import gzip
import json

import pytest

from beam_jobs import extract
from tfcmvp import schema
from tfcmvp.codec import write_video
from tfcmvp.codec.synthetic import moving_texture

IN_PROCESS = ["--direct_num_workers=1", "--direct_running_mode=in_memory"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """root/videos/Jump/a.avi inside, root/outside.avi outside; (root, videos)."""
    root = tmp_path_factory.mktemp("paths")
    videos = root / "videos"
    (videos / "Jump").mkdir(parents=True)
    for i, path in enumerate((videos / "Jump" / "a.avi", root / "outside.avi")):
        write_video(path, moving_texture(20, 32, 48, (1, 0), seed=i), gop=12)
    return root, videos


def video_ids(out):
    """Video ids of every record in the output's shards (read without TensorFlow)."""
    ids = []
    for shard in sorted(out.glob("*.tfrecord.gz")):
        data, offset = gzip.decompress(shard.read_bytes()), 0
        while offset < len(data):  # TFRecord framing: length, crc, data, crc
            length = int.from_bytes(data[offset : offset + 8], "little")
            ids.append(schema.decode_example(data[offset + 12 : offset + 12 + length]).video_id)
            offset += 16 + length
    return sorted(ids)


def failures(out):
    return {
        rec["video_id"]: rec
        for rec in map(json.loads, (out / "failed.jsonl").read_text().splitlines())
    }


def run_csv(root, videos, out, *flags):
    csv = root / "list.csv"
    csv.write_text(
        "path,label,split\n"
        "Jump/a.avi,Jump,train\n"
        "Jump/../../outside.avi,Jump,train\n"
        f"{root / 'outside.avi'},Jump,test\n"
    )
    return extract.run(
        [
            f"--videos_dir={videos}",
            f"--manifest={csv}",
            f"--output_dir={out}",
            "--max_failed_fraction=1",
            *flags,
            *IN_PROCESS,
        ]
    )


def test_escape_and_absolute_path_in_a_csv_are_failed_entries(dataset, tmp_path):
    root, videos = dataset
    out = tmp_path / "out"
    manifest = run_csv(root, videos, out)
    assert video_ids(out) == ["Jump/a.avi"]
    failed = failures(out)
    assert set(failed) == {"Jump/../../outside.avi", str(root / "outside.avi")}
    escape = failed["Jump/../../outside.avi"]
    assert (escape["stage"], escape["error"], escape["split"]) == (
        "path",
        "EntryPathError",
        "train",
    )
    assert "leads outside --videos_dir" in escape["message"]
    assert "Jump/../../outside.avi" in escape["message"] and "not opened" in escape["message"]
    absolute = failed[str(root / "outside.avi")]
    assert (absolute["stage"], absolute["path"]) == ("path", str(root / "outside.avi"))
    assert "is an absolute path" in absolute["message"]
    assert "--allow_absolute_paths" in absolute["message"]
    assert [(s["listed"], s["written"], s["failed"]) for s in manifest["splits"].values()] == [
        (2, 1, 1),
        (1, 0, 1),
    ]


def test_allow_absolute_paths_opens_absolute_entries_only(dataset, tmp_path):
    root, videos = dataset
    out = tmp_path / "out"
    manifest = run_csv(root, videos, out, "--allow_absolute_paths")
    assert video_ids(out) == sorted(["Jump/a.avi", str(root / "outside.avi")])
    assert list(failures(out)) == ["Jump/../../outside.avi"]  # '..' stays refused
    assert manifest["options"]["allow_absolute_paths"] is True


def test_escape_in_a_ucf101_split_file(dataset, tmp_path):
    root, videos = dataset
    splits = tmp_path / "splits"
    splits.mkdir()
    (splits / "classInd.txt").write_text("1 Jump\n")
    (splits / "trainlist01.txt").write_text("Jump/a.avi 1\nJump/../../outside.avi 1\n")
    (splits / "testlist01.txt").write_text("Jump/../../../../../../etc/passwd\n")
    out = tmp_path / "out"
    extract.run(
        [
            f"--videos_dir={videos}",
            f"--splits_dir={splits}",
            f"--output_dir={out}",
            "--max_failed_fraction=1",
            *IN_PROCESS,
        ]
    )
    assert video_ids(out) == ["Jump/a.avi"]
    failed = failures(out)
    assert {k: v["stage"] for k, v in failed.items()} == {
        "Jump/../../outside.avi": "path",
        "Jump/../../../../../../etc/passwd": "path",
    }

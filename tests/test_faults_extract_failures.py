"""Fault injection, extraction: a run where no video, or too few, could be extracted.

Known answers: exit 1 (the output is written, its manifest.json saying status
"failed" with the problem), the message naming the split, the counts and
failed.jsonl; exit 0 at or below --max_failed_fraction; exit 2 for a bad value
of the flag, with nothing written.
"""

import json
import os

import pytest

from beam_jobs import extract

from extract_support import write_listing, write_tiny_videos

IN_PROCESS = ["--direct_num_workers=1", "--direct_running_mode=in_memory"]
SHARD = "train-00000-of-00001.tfrecord.gz"


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """Three tiny decodable videos (48x32, 20 frames)."""
    folder = tmp_path_factory.mktemp("videos")
    write_tiny_videos(folder, 3)
    return folder


def listing(tmp_path, names):
    return write_listing(tmp_path / "list.csv", names)


def run_main(argv, capsys):
    code = extract.main([*argv, *IN_PROCESS])
    return code, capsys.readouterr().err


def test_nothing_written_exits_1_and_the_manifest_says_failed(videos, tmp_path, capsys):
    out = tmp_path / "out"
    csv = listing(tmp_path, ["missing_a.avi", "missing_b.avi"])
    # Even a fraction of 1 accepts no run that wrote nothing.
    code, err = run_main(
        [
            f"--videos_dir={videos}",
            f"--manifest={csv}",
            f"--output_dir={out}",
            "--max_failed_fraction=1",
        ],
        capsys,
    )
    assert code == 1
    assert "error: no video was written: all 2 listed videos failed" in err
    assert f"{out}/failed.jsonl" in err
    assert sorted(os.listdir(out)) == ["failed.jsonl", "labels.txt", "manifest.json", SHARD]
    assert (out / SHARD).stat().st_size == 0  # the -of-N set is complete, and empty
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "failed"
    assert manifest["problems"] == ["no video was written: all 2 listed videos failed"]
    assert (manifest["splits"]["train"]["written"], manifest["splits"]["train"]["failed"]) == (0, 2)
    failed = [json.loads(line) for line in (out / "failed.jsonl").read_text().splitlines()]
    assert sorted(rec["video_id"] for rec in failed) == ["missing_a.avi", "missing_b.avi"]
    assert sorted(os.listdir(tmp_path)) == ["list.csv", "out"]  # no staging folder left


def test_more_failures_than_the_fraction_exit_1(videos, tmp_path, capsys):
    out = tmp_path / "out"
    csv = listing(tmp_path, ["ok0.avi", "ok1.avi", "ok2.avi", "missing.avi"])
    code, err = run_main(
        [f"--videos_dir={videos}", f"--manifest={csv}", f"--output_dir={out}"], capsys
    )
    assert code == 1
    assert "split 'train': 1 of 4 listed videos failed (25% > --max_failed_fraction 0.1)" in err
    manifest = json.loads((out / "manifest.json").read_text())
    assert (manifest["status"], manifest["options"]["max_failed_fraction"]) == ("failed", 0.1)
    assert manifest["splits"]["train"]["written"] == 3  # the good videos are there all the same


def test_failures_within_the_fraction_exit_0(videos, tmp_path, capsys):
    out = tmp_path / "out"
    csv = listing(tmp_path, ["ok0.avi", "ok1.avi", "ok2.avi", "missing.avi"])
    code, err = run_main(
        [
            f"--videos_dir={videos}",
            f"--manifest={csv}",
            f"--output_dir={out}",
            "--max_failed_fraction=0.25",
        ],
        capsys,
    )
    assert code == 0
    assert f"1 videos failed; see {out}/failed.jsonl" in err and "error" not in err
    manifest = json.loads((out / "manifest.json").read_text())
    assert (manifest["status"], manifest["problems"]) == ("ok", [])


def test_fraction_out_of_range_is_a_flag_error(videos, tmp_path, capsys):
    out = tmp_path / "out"
    csv = listing(tmp_path, ["ok0.avi"])
    code, err = run_main(
        [
            f"--videos_dir={videos}",
            f"--manifest={csv}",
            f"--output_dir={out}",
            "--max_failed_fraction=1.5",
        ],
        capsys,
    )
    assert code == 2
    assert "--max_failed_fraction must be in [0, 1], got 1.5" in err
    assert sorted(os.listdir(tmp_path)) == ["list.csv"]


def test_each_split_is_judged_on_its_own():
    """A test split that failed entirely is not hidden by a large, healthy train split."""
    manifest = {
        "splits": {
            "train": {"listed": 100, "written": 100, "failed": 0},
            "test": {"listed": 2, "written": 0, "failed": 2},
        }
    }
    assert extract.failure_problems(manifest, 0.1) == [
        "split 'test': 2 of 2 listed videos failed (100% > --max_failed_fraction 0.1)"
    ]
    assert extract.failure_problems(manifest, 1.0) == []
    manifest["splits"]["train"].update(written=0, failed=100)
    assert extract.failure_problems(manifest, 1.0) == [
        "no video was written: all 102 listed videos failed"
    ]

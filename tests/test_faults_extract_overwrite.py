"""Fault injection, extraction: what --overwrite may replace, and leftovers of killed runs.

Known answers: a folder holding anything but one previous extraction output
is refused (exit 2) with the reason and the files named, and not one byte of
it changes; a previous output is replaced in one swap, also when the swap
must be done in two renames; staging folders of dead runs are removed by the
next run (and an old output caught between the two renames is put back); a
staging folder that may be in use stops the run with the command removing it.
"""

import json
import logging
import os
import shutil
import subprocess
import sys

import pytest

from beam_jobs import extract, output_folder
from tfcmvp.codec import write_video
from tfcmvp.codec.synthetic import moving_texture

from extract_support import output_files

IN_PROCESS = ["--direct_num_workers=1", "--direct_running_mode=in_memory"]


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    """(argv without --output_dir, a finished output folder to copy)."""
    root = tmp_path_factory.mktemp("overwrite")
    (root / "videos").mkdir()
    for i in range(2):
        write_video(
            root / "videos" / f"v{i}.avi", moving_texture(20, 32, 48, (1, 0), seed=i), gop=12
        )
    (root / "list.csv").write_text("path,label,split\nv0.avi,walk,train\nv1.avi,run,test\n")
    argv = [f"--videos_dir={root / 'videos'}", f"--manifest={root / 'list.csv'}", *IN_PROCESS]
    extract.run([*argv, f"--output_dir={root / 'previous'}"])
    return argv, root / "previous"


def snapshot(folder):
    """{relative path: bytes} of every file under ``folder`` (folders as None)."""
    found = {}
    for base, dirs, files in os.walk(folder):
        for name in dirs:
            found[os.path.relpath(os.path.join(base, name), folder)] = None
        for name in files:
            path = os.path.join(base, name)
            found[os.path.relpath(path, folder)] = open(path, "rb").read()
    return found


def dead_pid():
    """The pid of a process that has just ended."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def refuse(job, out, capsys, *flags):
    """Runs the job into ``out``; asserts exit 2 and that nothing under out's parent changed."""
    argv, _ = job
    before = snapshot(out.parent)
    code = extract.main([*argv, f"--output_dir={out}", *flags])
    assert code == 2
    assert snapshot(out.parent) == before
    return capsys.readouterr().err


def test_overwrite_refuses_a_previous_output_with_a_foreign_file(job, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(job[1], out)
    (out / "notes.txt").write_text("mine")
    err = refuse(job, out, capsys, "--overwrite")
    assert f"{out} is not empty" in err and "not the output of a previous extraction" in err
    assert "it holds 1 file(s) its manifest.json does not list: notes.txt" in err


def test_overwrite_refuses_a_folder_without_manifest(job, tmp_path, capsys):
    out = tmp_path / "out"
    (out / "holiday").mkdir(parents=True)
    (out / "holiday" / "beach.avi").write_bytes(b"\0" * 100)
    (out / "train-00000-of-00001.tfrecord.gz").write_bytes(b"looks like ours")
    err = refuse(job, out, capsys, "--overwrite")
    assert "it has no manifest.json" in err and "holiday/" in err


def test_overwrite_refuses_another_commands_manifest(job, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.json").write_text(json.dumps({"model": "c3d", "epochs": 3}))
    err = refuse(job, out, capsys, "--overwrite")
    assert "its manifest.json was not written by beam_jobs.extract" in err


def test_output_dir_that_is_a_file(job, tmp_path, capsys):
    out = tmp_path / "out"
    out.write_text("a file")
    err = refuse(job, out, capsys, "--overwrite")
    assert f"--output_dir {out} is a file, not a folder" in err


def test_previous_output_without_overwrite(job, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(job[1], out)
    err = refuse(job, out, capsys)
    assert "holds the output of a previous extraction" in err and "Pass --overwrite" in err
    assert "its settings are this run's" in err  # same flags: a re-run of the same job


def test_previous_output_made_with_other_settings_names_them(job, tmp_path, capsys):
    """A re-run with other flags is refused naming each setting that differs (old -> new)."""
    out = tmp_path / "out"
    shutil.copytree(job[1], out)
    before = snapshot(out)
    err = refuse(job, out, capsys, "--num_shards=2", "--jpeg_quality=80")
    assert "its settings differ: jpeg_quality 90 -> 80, num_shards 0 -> 2;" in err
    assert snapshot(out) == before


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two-renames"])
def test_overwrite_swaps_the_new_output_in(job, tmp_path, monkeypatch, exchange):
    argv, previous = job
    out = tmp_path / "out"
    shutil.copytree(previous, out)
    if not exchange:
        monkeypatch.setattr(output_folder, "_exchange", lambda first, second: False)
    manifest = extract.run([*argv, f"--output_dir={out}", "--overwrite", "--num_shards=2"])
    assert sorted(os.listdir(out)) == output_files(2)
    assert json.loads((out / "manifest.json").read_text()) == manifest
    assert manifest["options"]["num_shards"] == 2
    assert os.listdir(tmp_path) == ["out"]  # the old output went with the staging folder


def test_killed_between_the_two_renames_the_old_output_comes_back(job, tmp_path, capsys, caplog):
    """A run killed after moving OUT aside and before moving the new one in: OUT is missing;
    the next run puts the old output back before anything else."""
    _, previous = job
    out = tmp_path / "out"
    staging = tmp_path / (
        f"out.{output_folder.STAGING_PREFIX}20250101T000000-{dead_pid()}@{output_folder._host()}"
    )
    shutil.copytree(previous, staging / output_folder.PREVIOUS_NAME)
    shutil.copytree(previous, staging / output_folder.NEW_OUTPUT_NAME)
    with caplog.at_level(logging.WARNING, logger="beam_jobs.extract"):
        code = extract.main([*job[0], f"--output_dir={out}"])
    assert code == 2  # the old output is back, and is not replaced without --overwrite
    assert "holds the output of a previous extraction" in capsys.readouterr().err
    assert f"restored the previous output {out}" in caplog.text
    assert snapshot(out) == snapshot(previous)
    assert os.listdir(tmp_path) == ["out"]


def test_staging_folders_of_dead_runs_are_removed(job, tmp_path, caplog):
    argv, previous = job
    out = tmp_path / "out"
    shutil.copytree(previous, out)
    inside = out / f"{output_folder.STAGING_PREFIX}20250101T000000-{dead_pid()}"  # older name
    beside = tmp_path / (
        f"out.{output_folder.STAGING_PREFIX}20250101T000000-{dead_pid()}@{output_folder._host()}"
    )
    for folder in (inside / "beam-temp-x", beside / "parts"):
        folder.mkdir(parents=True)
        (folder / "half-written").write_bytes(b"\0" * 10)
    with caplog.at_level(logging.INFO, logger="beam_jobs.extract"):
        extract.run([*argv, f"--output_dir={out}", "--overwrite"])
    assert f"removed {beside}, left by an extraction that was interrupted" in caplog.text
    assert not inside.exists() and not beside.exists()
    assert os.listdir(tmp_path) == ["out"]
    assert "manifest.json" in os.listdir(out)


def test_staging_folder_of_a_running_extraction_stops_the_run(job, tmp_path, capsys):
    out = tmp_path / "out"
    live = tmp_path / (
        f"out.{output_folder.STAGING_PREFIX}20250101T000000-{os.getpid()}@{output_folder._host()}"
    )
    (live / "parts").mkdir(parents=True)
    err = refuse(job, out, capsys)
    assert (
        f"{live} is the unfinished output of an extraction that is still running "
        f"(pid {os.getpid()})" in err
    )
    assert f"remove it: rm -r {live}" in err


def test_staging_folder_from_another_host_is_left_alone(job, tmp_path, capsys):
    out = tmp_path / "out"
    other = tmp_path / f"out.{output_folder.STAGING_PREFIX}20250101T000000-1@elsewhere"
    other.mkdir()
    err = refuse(job, out, capsys)
    assert "an extraction on host elsewhere (pid 1)" in err and f"rm -r {other}" in err

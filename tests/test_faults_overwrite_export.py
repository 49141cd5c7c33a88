"""Fault injection: ``tfcmvp export --overwrite`` replaces a previous export and nothing else.

Known answers: an --output that is the workdir being exported or one of its
parents, a folder holding a foreign file, or a folder that is no export at
all are refused with exit status 2 and the reason, and every file in them is
still there; a previous export is replaced; a run that fails or is killed
part-way leaves the previous export byte for byte as it was, and its
leftover staging folder is removed by the next export to the same folder.
"""

import logging
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from tfcmvp import outputs
from tfcmvp.cli import export_cmd
from tfcmvp.export import export_random_init, read_export_info

from faults_support import snapshot
from harness import run_command
from training_support import REPO_ROOT, TINY_OVERRIDES


def _cli(argv):
    """``tfcmvp export argv`` in this process: the exit status."""
    return run_command(export_cmd, "export", *argv)


@pytest.fixture
def project(workdir, tmp_path):
    """tmp_path/project/pretrain: a copy of the finished fake run."""
    run = tmp_path / "project" / "pretrain"
    shutil.copytree(workdir[0], run)
    return run


def test_output_that_is_the_workdir_or_holds_it_is_refused(project, caplog):
    caplog.set_level(logging.ERROR)
    before = snapshot(project.parent)
    assert _cli(["--workdir", project, "--output", project.parent, "--overwrite"]) == 2
    assert (
        f"--output {project.parent} holds {project}, which this command reads: writing "
        f"there would delete it"
    ) in caplog.text
    assert _cli(["--workdir", project, "--output", project, "--overwrite"]) == 2
    assert f"--output {project} is {project}, which this command reads" in caplog.text
    assert snapshot(project.parent) == before  # nothing deleted, nothing added


def test_a_folder_with_a_foreign_file_is_refused(workdir, tmp_path, caplog):
    out = tmp_path / "model"
    export_random_init(workdir[1], out, "iframe", seed=1)
    (out / "notes.txt").write_text("mine")
    before = snapshot(out)
    caplog.set_level(logging.ERROR)
    assert (
        _cli(
            [
                "--random_init",
                "--network",
                "iframe",
                "--output",
                out,
                "--overwrite",
                *[a for o in TINY_OVERRIDES for a in ("--set", o)],
            ]
        )
        == 2
    )
    assert (
        f"refusing to overwrite {out}: besides an export it holds notes.txt. --overwrite "
        f"replaces only a previous export"
    ) in caplog.text
    assert snapshot(out) == before

    # Not an export at all (e.g. a data folder): refused, untouched.
    data = tmp_path / "data"
    data.mkdir()
    (data / "train-00000-of-00001.tfrecord.gz").write_bytes(b"records")
    with pytest.raises(
        outputs.OverwriteRefused, match="holds no saved_model.pb, so it is not an export"
    ):
        export_random_init(workdir[1], data, "iframe", overwrite=True)
    assert [p.name for p in data.iterdir()] == ["train-00000-of-00001.tfrecord.gz"]
    assert (data / "train-00000-of-00001.tfrecord.gz").read_bytes() == b"records"


def test_a_previous_export_is_replaced_and_a_failed_run_keeps_it(workdir, tmp_path, monkeypatch):
    import tensorflow as tf

    out = tmp_path / "model"
    export_random_init(workdir[1], out, "iframe", seed=1)
    before = snapshot(out)

    def crash(*args, **kwargs):  # the SavedModel half written, then the run dies
        (tmp_path / "crashed").write_text("")
        raise RuntimeError("disk full")

    monkeypatch.setattr(tf.saved_model, "save", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        export_random_init(workdir[1], out, "iframe", seed=2, overwrite=True)
    assert snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["crashed", "model"]  # no staging left
    monkeypatch.undo()

    export_random_init(workdir[1], out, "iframe", seed=2, overwrite=True)
    assert read_export_info(out)["source"]["seed"] == 2
    assert snapshot(out) != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["crashed", "model"]


@pytest.mark.slow  # a TensorFlow process killed mid-export: about 15 s
def test_a_killed_export_leaves_the_previous_one_whole(workdir, tmp_path, caplog):
    out = tmp_path / "model"
    export_random_init(workdir[1], out, "video", seed=1)
    before = snapshot(out)
    sets = [a for o in TINY_OVERRIDES for a in ("--set", o)]
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), TF_CPP_MIN_LOG_LEVEL="2")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tfcmvp.cli.main",
            "export",
            "--random_init",
            "--seed",
            "2",
            "--output",
            str(out),
            "--overwrite",
            *sets,
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # Kill it once it writes its staging folder beside the export (the SavedModel
    # is being written into it).
    deadline = time.monotonic() + 120
    staging = []
    while not staging and time.monotonic() < deadline and process.poll() is None:
        staging = [
            p
            for p in tmp_path.iterdir()
            if p.name.startswith(".model.tfcmvp-staging-") and any(p.rglob("*"))
        ]
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert staging, "the export finished or failed before it could be killed"
    assert snapshot(out) == before  # the old export, byte for byte
    assert read_export_info(out)["source"]["seed"] == 1

    caplog.set_level(logging.WARNING)
    export_random_init(workdir[1], out, "video", seed=3, overwrite=True)
    assert f"removing {staging[0]}, left by an interrupted run" in caplog.text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert read_export_info(out)["source"]["seed"] == 3


@pytest.mark.parametrize("atomic", [True, False])
def test_swap_in_replaces_only_at_the_end(tmp_path, monkeypatch, atomic):
    if not atomic:  # a system without renameat2(RENAME_EXCHANGE): two renames
        monkeypatch.setattr(outputs, "exchange", lambda first, second: False)
    target, staged = tmp_path / "target", tmp_path / "staged"
    target.mkdir()
    (target / "old.txt").write_text("old")
    staged.mkdir()
    (staged / "new.txt").write_text("new")
    outputs.swap_in(staged, target)
    assert [p.name for p in tmp_path.iterdir()] == ["target"]
    assert [p.name for p in target.iterdir()] == ["new.txt"]
    if atomic and sys.platform.startswith("linux"):
        # Both present: renameat2 swaps them in one step.
        first, second = tmp_path / "a", tmp_path / "b"
        first.write_text("a")
        second.mkdir()
        assert outputs.exchange(first, second)
        assert first.is_dir() and second.read_text() == "a"

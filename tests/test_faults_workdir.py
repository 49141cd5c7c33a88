"""Workdirs are safe (issue #9, item 7): one run per workdir, a refused resume
changes nothing on disk, an unfinished run exports with a warning.

Known answers: the exit code, the one line naming the workdir (and the holder
of its lock), and the files on disk before and after (names, sizes, mtimes
and SHA-256, lock file included).
"""

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys

import pytest

from tfcmvp import workdir_lock
from tfcmvp.cli.main import main
from tfcmvp.export import read_export_info

from faults_support import files_on_disk, refused_run
from training_support import (
    REPO_ROOT,
    InterruptAt,
    Interrupted,
    tiny_config,
    without_grappler,
    write_painted_shards,
)

# A process that holds a workdir's lock until it is killed.
HOLDER = """
import sys, time
from tfcmvp import workdir_lock
with workdir_lock.hold(sys.argv[1]):
    print("held", flush=True)
    time.sleep(600)
"""
TINY_CLI = ["--set", "model.video_width=4", "--set", "train.steps_per_epoch=1"]


@pytest.fixture
def holder(tmp_path):
    """Starts a process holding the lock of ``tmp_path/work``; yields (workdir, process)."""
    workdir = tmp_path / "work"
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(
            [str(REPO_ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
        ),
    )
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(workdir)], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout.readline().strip() == "held"
        yield workdir, process
    finally:
        process.kill()
        process.wait()


def assert_names_holder(line: str, workdir, process) -> None:
    assert line.startswith(
        f"{workdir} is in use by another run (pid {process.pid} on {socket.gethostname()}, started "
    )
    assert line.endswith("wait for it to end, or choose another workdir")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("shards")
    write_painted_shards(directory)
    return directory


# --------------------------------------------------------------------------- the lock


@pytest.mark.parametrize("command", ["pretrain", "finetune", "quickstart"])
def test_a_second_run_on_a_held_workdir_stops_at_once_naming_the_holder(
    command, holder, data_dir, caplog
):
    workdir, process = holder
    (workdir / "config.yaml").write_text("a file of the running run\n")
    argv = {
        "pretrain": ["pretrain", "--data", str(data_dir), "--workdir", str(workdir)],
        "finetune": [
            "finetune",
            "--random_init",
            "--data",
            str(data_dir),
            "--workdir",
            str(workdir),
        ],
        "quickstart": ["quickstart", "--smoke", "--workdir", str(workdir)],
    }[command]
    argv += TINY_CLI if command != "quickstart" else []
    # No file changes, the holder's lock file included.
    assert_names_holder(refused_run(argv, workdir, caplog), workdir, process)
    assert process.poll() is None  # and the holder runs on


def test_kill_9_leaves_no_stale_lock(holder):
    workdir, process = holder
    with pytest.raises(workdir_lock.WorkdirBusyError, match=f"pid {process.pid} "):
        with workdir_lock.hold(workdir):
            pass
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert (workdir / workdir_lock.LOCK_NAME).is_file()  # left behind, but nobody holds it
    with workdir_lock.hold(workdir) as path:
        assert f'"pid": {os.getpid()}' in path.read_text()
    assert not (workdir / workdir_lock.LOCK_NAME).exists()  # a clean exit removes it


def test_one_process_cannot_hold_a_workdir_twice(tmp_path):
    with workdir_lock.hold(tmp_path):
        with pytest.raises(workdir_lock.WorkdirBusyError, match=r"\(this process\)"):
            with workdir_lock.hold(tmp_path):
                pass
    with workdir_lock.hold(tmp_path):  # released: free again
        pass
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- refused resumes


STOPPED_RUN = (
    "train.epochs=3",
    "train.steps_per_epoch=2",
    "train.checkpoint_every_steps=1",
    "optimizer.warmup_epochs=0",
)


@pytest.fixture(scope="module")
def stopped_run(data_dir, tmp_path_factory):
    """A 3-epoch run stopped after step 3: epoch 1 finished, epoch 2 at step 1."""
    from tfcmvp.training.pretrain import pretrain

    workdir = tmp_path_factory.mktemp("stopped") / "run"
    with without_grappler(), pytest.raises(Interrupted):
        pretrain(
            tiny_config(*STOPPED_RUN), data_dir, workdir, verbose=0, callbacks=[InterruptAt(3)]
        )
    return workdir


@pytest.mark.parametrize(
    "change, message, older",
    [
        # provenance.json (tfcmvp.training.provenance) names the changed key first ...
        ("model.video_width=8", "model.video_width: 4 -> 8", False),
        ("train.steps_per_epoch=1", "train.steps_per_epoch: 2 -> 1", False),
        # ... and a workdir of an older tfcmvp, without it, is still refused by the
        # checkpoint restore and the resume point.
        ("model.video_width=8", "does not match the model built from the config", True),
        (
            "train.steps_per_epoch=1",
            "stopped at step 1 of epoch 2, but an epoch now has only 1",
            True,
        ),
    ],
)
def test_a_refused_pretraining_resume_changes_nothing(
    stopped_run, data_dir, tmp_path, change, message, older
):
    from tfcmvp.training.pretrain import pretrain

    workdir = tmp_path / "run"
    shutil.copytree(stopped_run, workdir)  # copy2: sizes, contents and mtimes kept
    if older:
        (workdir / "provenance.json").unlink()
    before = files_on_disk(workdir)
    assert {"config.yaml", "history.csv", "checkpoints/checkpoint"} <= set(before)
    with without_grappler(), pytest.raises(ValueError, match=message):
        pretrain(tiny_config(*STOPPED_RUN, change), data_dir, workdir, verbose=0)
    assert files_on_disk(workdir) == before


def test_a_refused_finetuning_resume_changes_nothing(tmp_path):
    from tfcmvp.finetuning.finetune import finetune

    from finetune_support import tiny_finetune_config, write_labelled_shards

    data = write_labelled_shards(tmp_path / "data")
    workdir = tmp_path / "run"
    run = (
        "train.epochs=2",
        "train.steps_per_epoch=2",
        "train.checkpoint_every_steps=1",
        "optimizer.warmup_epochs=0",
    )
    with without_grappler(), pytest.raises(Interrupted):
        finetune(
            tiny_finetune_config(*run),
            data,
            workdir,
            random_init=True,
            verbose=0,
            callbacks=[InterruptAt(1)],
        )
    assert {"config.yaml", "source.json", "checkpoints/checkpoint"} <= set(files_on_disk(workdir))

    def resume_with_a_wider_video_network(match):
        """The resume is refused with an error matching ``match``; no file changes."""
        before = files_on_disk(workdir)
        with without_grappler(), pytest.raises(ValueError, match=match):
            finetune(
                tiny_finetune_config(*run, "model.video_width=8"),
                data,
                workdir,
                random_init=True,
                verbose=0,
            )
        assert files_on_disk(workdir) == before

    resume_with_a_wider_video_network("model.video_width: 4 -> 8")
    # A workdir of an older tfcmvp (no provenance.json): the checkpoint restore refuses.
    (workdir / "provenance.json").unlink()
    resume_with_a_wider_video_network("does not match the model")


# --------------------------------------------------------------------------- export


def test_export_of_an_unfinished_run_warns_and_names_the_epoch(
    stopped_run, tmp_path, caplog, capsys
):
    out = tmp_path / "model"
    before = files_on_disk(stopped_run)
    with caplog.at_level(logging.INFO):
        assert main(["export", "--workdir", str(stopped_run), "--output", str(out)]) == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"{stopped_run} finished 1 of 3 epochs (a stopped or still running "
        f"pretraining); exporting the epoch-1 weights"
    ]
    source = read_export_info(out)["source"]
    assert (source["epoch"], source["planned_epochs"]) == (1, 3)
    assert "(epoch 1 of 3 planned: an unfinished run)" in capsys.readouterr().out
    assert files_on_disk(stopped_run) == before  # export only reads the workdir


def test_export_of_a_finished_run_does_not_warn(tmp_path, caplog):
    from export_support import EPOCHS, fake_workdir

    fake_workdir(tmp_path / "run")  # history.csv reaches its config's train.epochs
    with caplog.at_level(logging.INFO):
        assert (
            main(
                [
                    "export",
                    "--workdir",
                    str(tmp_path / "run"),
                    "--network",
                    "iframe",
                    "--output",
                    str(tmp_path / "model"),
                ]
            )
            == 0
        )
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    source = read_export_info(tmp_path / "model")["source"]
    assert source["epoch"] == EPOCHS and "planned_epochs" not in source

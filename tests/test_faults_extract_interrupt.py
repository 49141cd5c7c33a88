"""Fault injection, extraction: SIGTERM, Ctrl-C and kill -9 of the launcher mid-run.

The job runs as a command (``python -m beam_jobs.extract``) with worker
processes, replacing a previous output with --overwrite, and is signalled once
its workers are busy. Known answers: exit 143 / 130 with one line naming the
signal, the workers stopped and the staging folder removed; after kill -9 the
workers are gone within seconds too; no traceback; the previous output is
byte for byte what it was; the next run removes what a kill -9 left.
"""

import os
import shlex
import shutil
import signal
import subprocess
import sys
import time

import pytest

from beam_jobs import extract, output_folder, worker_process
from tfcmvp.codec import write_video
from tfcmvp.codec.synthetic import moving_texture

from extract_support import extract_command, staging, start_busy, workers_of, write_listing

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads /proc to find the worker processes"
)
LISTED = 400  # links to one clip: far more work than a test waits for


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    """(argv without --output_dir, a previous output folder, the videos folder)."""
    root = tmp_path_factory.mktemp("interrupt")
    videos = root / "videos"
    videos.mkdir()
    write_video(videos / "clip.avi", moving_texture(60, 96, 128, (1, 1), seed=0), gop=12)
    for i in range(LISTED):
        os.symlink("clip.avi", videos / f"v{i:03d}.avi")
    write_listing(root / "list.csv", [f"v{i:03d}.avi" for i in range(LISTED)])
    (root / "two.csv").write_text("path,label,split\nv000.avi,walk,train\nv001.avi,walk,test\n")
    previous = root / "previous"
    extract.run(
        [
            f"--videos_dir={videos}",
            f"--manifest={root / 'two.csv'}",
            f"--output_dir={previous}",
            "--direct_num_workers=1",
            "--direct_running_mode=in_memory",
        ]
    )
    # --reencode: each video costs a re-encode too, so the workers stay busy.
    return (
        [f"--videos_dir={videos}", f"--manifest={root / 'list.csv'}", "--reencode=mpeg4"],
        previous,
        videos,
    )


def snapshot(folder):
    return {name: (folder / name).read_bytes() for name in sorted(os.listdir(folder))}


def start(job, out, tmp_path, workers):
    """Starts the command in a session of its own; returns it once its workers are busy."""
    argv, previous, _ = job
    shutil.copytree(previous, out)
    command = extract_command(
        *argv,
        f"--output_dir={out}",
        "--overwrite",
        f"--direct_num_workers={workers}",
        "--direct_running_mode=multi_processing",
    )
    process = start_busy(command, tmp_path / "stderr.txt", workers, lambda: staging(out))
    time.sleep(2.0)  # into the videos
    assert process.poll() is None
    return process


def wait_gone(launcher_pid, seconds):
    deadline = time.monotonic() + seconds
    while workers_of(launcher_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return workers_of(launcher_pid)


@pytest.mark.parametrize(
    "signum, workers", [(signal.SIGTERM, 2), (signal.SIGINT, 1)], ids=["SIGTERM", "ctrl-c"]
)
def test_signal_stops_workers_and_cleans_up(job, tmp_path, signum, workers):
    out = tmp_path / "out"
    process = start(job, out, tmp_path, workers)
    if signum == signal.SIGINT:
        os.killpg(process.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole group
    else:
        process.send_signal(signum)
    assert process.wait(timeout=60) == 128 + signum
    assert wait_gone(process.pid, 0) == []  # stopped before the launcher exited
    err = (tmp_path / "stderr.txt").read_text()
    lines = [line for line in err.splitlines() if "INFO" not in line]
    noun = "process" if workers == 1 else "processes"
    assert len(lines) == 1 and lines[0].startswith(
        f"beam_jobs.extract: interrupted by {signal.Signals(signum).name}: stopped {workers} "
        f"worker {noun}; removed the unfinished output {out}.{output_folder.STAGING_PREFIX}"
    ), err
    assert lines[0].endswith(f"; {out} was left as it was")
    assert "Traceback" not in err
    assert staging(out) == []
    assert snapshot(out) == snapshot(job[1])


@pytest.mark.slow
def test_kill_9_leaves_no_worker_and_the_next_run_cleans_up(job, tmp_path):
    argv, previous, _ = job
    out = tmp_path / "out"
    process = start(job, out, tmp_path, 2)
    process.kill()
    assert process.wait(timeout=60) == -signal.SIGKILL
    started = time.monotonic()
    assert wait_gone(process.pid, 10) == []
    gone_after = time.monotonic() - started
    assert gone_after < 3, gone_after
    time.sleep(0.5)  # anything a dying worker would print
    assert "Traceback" not in (tmp_path / "stderr.txt").read_text()
    assert snapshot(out) == snapshot(previous)
    (left,) = staging(out)  # the launcher could not remove it
    two = [a.replace("list.csv", "two.csv") for a in argv if not a.startswith("--reencode")]
    manifest = extract.run(
        [
            *two,
            f"--output_dir={out}",
            "--overwrite",
            "--direct_num_workers=1",
            "--direct_running_mode=in_memory",
        ]
    )
    assert staging(out) == [] and not (tmp_path / left).exists()
    assert manifest["splits"]["train"]["written"] == 1


def test_scratch_folders_of_killed_workers_are_removed_by_the_next_worker(tmp_path):
    """A worker killed by its parent-death signal cannot remove its scratch folder; the next
    worker to start removes those whose process is gone, and nothing else."""
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    host = worker_process._host()
    dead = tmp_path / f"{worker_process.SCRATCH_PREFIX}{ended.pid}@{host}-abc"
    live = tmp_path / f"{worker_process.SCRATCH_PREFIX}{os.getpid()}@{host}-def"
    elsewhere = tmp_path / f"{worker_process.SCRATCH_PREFIX}{ended.pid}@elsewhere-ghi"
    other = tmp_path / "tfcmvp-worker-notes"
    for folder in (dead, live, elsewhere, other):
        folder.mkdir()
        (folder / "reencoded.mp4").write_bytes(b"\0")
    assert worker_process.remove_dead_scratch(str(tmp_path)) == [dead.name]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [live.name, elsewhere.name, other.name]
    )


def test_worker_command_replaces_the_shell():
    """``exec``: the worker is the launcher's own child, so the parent-death signal is tied to
    the launcher and not to an intermediate ``sh``."""
    assert worker_process.command(1234) == (
        f"exec {shlex.quote(sys.executable)} -m beam_jobs.worker_process 1234"
    )

"""Shared pieces of the extraction-job tests (tests/test_extract_*.py,
tests/test_faults_extract_*.py, tests/test_beam_dask.py): tiny videos and their
listing, the job as a command, what a finished output folder holds, and the
worker processes and staging folders a run leaves (or must not leave) behind.
"""

import os
import pathlib
import subprocess
import sys
import time

from beam_jobs import output_folder, worker_process
from tfcmvp.codec import write_video
from tfcmvp.codec.synthetic import moving_texture

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def write_tiny_videos(folder, count: int) -> None:
    """``folder/ok0.avi`` ... ``ok<count-1>.avi``: decodable videos of 20 frames, 48x32."""
    for i in range(count):
        write_video(folder / f"ok{i}.avi", moving_texture(20, 32, 48, (1, 0), seed=i), gop=12)


def write_listing(path, names, label: str = "walk", split: str = "train"):
    """A ``--manifest`` CSV listing ``names`` (paths under --videos_dir), all of class
    ``label`` in ``split``. Returns ``path``."""
    path.write_text("path,label,split\n" + "".join(f"{n},{label},{split}\n" for n in names))
    return path


def extract_command(*flags) -> list:
    """The command ``python -m beam_jobs.extract flags`` (run it with the repository as cwd)."""
    return [sys.executable, "-m", "beam_jobs.extract", *flags]


def output_files(num_shards: int) -> list:
    """The sorted file names of a finished output folder with ``num_shards`` shards per
    split of test and train (``failed.jsonl``, ``labels.txt``, ``manifest.json``, shards)."""
    shards = [
        f"{split}-{shard:05d}-of-{num_shards:05d}.tfrecord.gz"
        for split in ("test", "train")
        for shard in range(num_shards)
    ]
    return ["failed.jsonl", "labels.txt", "manifest.json", *shards]


def workers_of(launcher_pid) -> list:
    """Pids of live processes started as ``beam_jobs.worker_process <launcher_pid> ...``,
    whoever their parent is now (Linux: reads /proc)."""
    wanted = f"{worker_process.MODULE}\0{launcher_pid}\0".encode()
    found = []
    for name in os.listdir("/proc"):
        try:
            with open(f"/proc/{name}/cmdline", "rb") as handle:
                cmdline = handle.read()
            with open(f"/proc/{name}/stat", "rb") as handle:
                state = handle.read().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue  # gone meanwhile, or not a process folder
        if wanted in cmdline and state != b"Z":
            found.append(int(name))
    return found


def staging(out) -> list:
    """Names of the staging folders of output folder ``out`` beside it (a run writes
    there first and must remove them whichever way it ends)."""
    return sorted(
        p.name
        for p in out.parent.iterdir()
        if p.name.startswith(f"{out.name}.{output_folder.STAGING_PREFIX}")
    )


def start_busy(command, stderr_path, workers: int, started) -> subprocess.Popen:
    """Starts ``command`` (from the repository, in a session of its own, stderr written to
    ``stderr_path``) and returns it once ``workers`` worker processes run and ``started()``
    is true. Fails with the end of its stderr if it ends before, or after 240 s."""
    stderr = open(stderr_path, "w")
    process = subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        start_new_session=True,
    )
    deadline = time.monotonic() + 240
    while len(workers_of(process.pid)) < workers or not started():
        assert process.poll() is None, pathlib.Path(stderr_path).read_text()[-3000:]
        assert time.monotonic() < deadline, "the workers never started, or never wrote"
        time.sleep(0.2)
    return process

"""Extraction progress (issue #9, item 8): a bar with total and ETA on a terminal,
periodic log lines otherwise, counted by the launcher from the staging folder.

Known answers: the lines and their counts for a staging folder filled by the
test, the bar's text on a terminal, one line saying why there is no progress
on another runner, and a real run (worker processes) whose last progress
line says N/N with the failed video counted.
"""

import io
import logging
import os
import re
import subprocess
import time

import pytest

from beam_jobs import progress

from extract_support import extract_command, write_listing, write_tiny_videos
from training_support import REPO_ROOT


class Terminal(io.StringIO):
    def isatty(self):
        return True


def finish(staging, split, index, shard=0, failed=False):
    """Leaves what the job leaves for one finished video: a part or a failure marker."""
    if failed:
        progress.write_marker(progress.marker_dir(str(staging)), split, index)
    else:
        folder = staging / "parts" / f"{split}-{shard:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{index:07d}.part").write_bytes(b"x")


def wait_for(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def progress_lines(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "beam_jobs.extract"]


def test_count_finished_counts_parts_and_failure_markers(tmp_path):
    assert progress.count_finished(str(tmp_path / "not_yet")) == (0, 0)
    finish(tmp_path, "train", 0, shard=0)
    finish(tmp_path, "train", 1, shard=1)
    finish(tmp_path, "test", 0, shard=0)
    finish(tmp_path, "train", 2, failed=True)
    finish(tmp_path, "train", 2, failed=True)  # a retried bundle: the same marker again
    (tmp_path / "parts" / "train-00000" / "0000009.part.tmp").write_bytes(b"")  # not a part
    assert progress.count_finished(str(tmp_path)) == (3, 1)


def test_log_lines_every_tenth_with_counts_rate_and_eta(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="beam_jobs.extract")
    monitor = progress.ProgressMonitor(
        10, str(tmp_path), stream=io.StringIO(), poll_seconds=0.01
    ).start()
    try:
        finish(tmp_path, "train", 0)
        finish(tmp_path, "train", 1, failed=True)
        wait_for(lambda: len(progress_lines(caplog)) >= 2)
        for index in range(2, 5):
            finish(tmp_path, "train", index)
        wait_for(lambda: len(progress_lines(caplog)) >= 3)
        for index in range(5, 10):
            finish(tmp_path, "train", index)
        wait_for(lambda: monitor.done == 10)
    finally:
        monitor.stop()
    lines = progress_lines(caplog)
    assert lines[0] == "extracting 10 videos; a progress line every 10% and at least every 30 s"
    assert re.fullmatch(
        r"extraction: 2/10 videos done \(20%\), 1 failed, [\d.]+ videos/s, "
        r"ETA \d+ s",
        lines[1],
    ), lines[1]
    assert re.fullmatch(r"extraction: 5/10 videos done \(50%\), 1 failed, .*", lines[2]), lines[2]
    assert re.fullmatch(
        r"extraction: 10/10 videos done \(1 failed\) in \d+ s, [\d.]+ videos/s", lines[-1]
    ), lines[-1]
    assert not any(line.startswith("extraction: 10/10 videos done (100%)") for line in lines)


def test_a_bar_on_a_terminal(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="beam_jobs.extract")
    terminal = Terminal()
    monitor = progress.ProgressMonitor(4, str(tmp_path), stream=terminal, poll_seconds=0.01)
    assert monitor.interactive
    monitor.start()
    try:
        finish(tmp_path, "train", 0)
        finish(tmp_path, "test", 0, failed=True)
        wait_for(lambda: "2/4" in terminal.getvalue())
        finish(tmp_path, "train", 1)
        finish(tmp_path, "train", 2)
    finally:
        monitor.stop()
    bar = terminal.getvalue()
    assert re.search(r"extract: +50%.*\| 2/4 \[.*<.*, failed=1\]", bar), bar  # elapsed<ETA
    assert re.search(r"extract: 100%.*\| 4/4 .*failed=1\]", bar), bar
    assert re.fullmatch(
        r"extraction: 4/4 videos done \(1 failed\) in \d+ s, [\d.]+ videos/s",
        progress_lines(caplog)[-1],
    )


def test_another_runner_gets_one_line_and_no_display(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="beam_jobs.extract")
    monitor = progress.start(
        10,
        "gs://bucket/out/_incomplete-x",
        local_runner=False,
        is_local_path=False,
        stream=Terminal(),
    )
    monitor.stop()
    assert progress_lines(caplog) == [
        "no progress display: the pipeline runs on another runner; the runner's own "
        "monitoring shows progress (and each worker logs a line every few videos)"
    ]


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """Four tiny decodable videos (48x32, 20 frames)."""
    folder = tmp_path_factory.mktemp("videos")
    write_tiny_videos(folder, 4)
    return folder


def test_a_run_with_worker_processes_logs_progress_up_to_n_of_n(videos, tmp_path):
    names = [f"ok{i}.avi" for i in range(4)] + ["missing.avi"]
    listing = write_listing(tmp_path / "list.csv", names)
    out = tmp_path / "out"
    command = extract_command(
        f"--videos_dir={videos}",
        f"--manifest={listing}",
        f"--output_dir={out}",
        "--max_failed_fraction=0.5",
        "--direct_num_workers=2",
        "--direct_running_mode=multi_processing",
    )
    done = subprocess.run(
        command,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [
        line.split(": ", 1)[1]
        for line in done.stderr.splitlines()
        if "beam_jobs.extract: extract" in line
    ]
    assert lines[0] == "extracting 5 videos; a progress line every 10% and at least every 30 s"
    assert re.fullmatch(
        r"extraction: 5/5 videos done \(1 failed\) in \d+ s, [\d.]+ videos/s", lines[-1]
    ), lines
    assert "\r" not in done.stderr  # no bar when stderr is not a terminal
    # Neither the launcher nor its workers load TensorFlow: none of its C++ lines.
    assert not re.search(r"^[IWEF]\d{4} \d\d:\d\d|absl::InitializeLog", done.stderr, re.M)
    assert sorted(os.listdir(tmp_path)) == ["list.csv", "out"]  # staging (and markers) removed

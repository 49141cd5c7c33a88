"""No TensorFlow C++ start-up lines at the default log level (issue #9, item 8).

Known answers: which lines count as start-up lines, where they go (the
``tfcmvp.tensorflow`` logger at DEBUG, the rest to stderr unchanged), and a
real command in a fresh process whose stderr holds its own error line and
none of TensorFlow's C++ lines, while ``--log_level DEBUG`` shows them.
"""

import logging
import os
import re
import subprocess
import sys

import pytest

from tfcmvp.cli import tf_startup

from training_support import REPO_ROOT

# The formats of TensorFlow's C++ log lines (Abseil's and TensorFlow's older one).
CPP_LINE = re.compile(
    r"^[IWEF]\d{4} \d\d:\d\d|^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] "
    r"|absl::InitializeLog",
    re.M,
)

STARTUP = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796474183.099709   23587 port.cc:153] oneDNN custom operations are on.",
    "W0000 00:00:1796474183.1   23587 some_file.cc:12] a warning",
    "E0000 00:00:1796474203.483148   23587 cuda_platform.cc:52] failed call to cuInit: INTERNAL",
    "2025-01-02 10:11:12.345678: I tensorflow/core/platform/cpu_feature_guard.cc:210] CPU",
]
KEPT = [
    "E0000 00:00:1796474203.483148   23587 saver.cc:52] a real error",
    "F0000 00:00:1796474203.483148   23587 check.cc:1] Check failed: fatal",
    "2025-01-02 10:11:12.345678: E tensorflow/core/x.cc:1] an error",
    "/usr/lib/python3/site-packages/x.py:3: UserWarning: a Python warning",
    "2026-12-05 12:33:13,231 ERROR tfcmvp.cli: a line of ours",
]


def test_startup_lines_are_told_from_the_others():
    assert [tf_startup.is_startup_line(line) for line in STARTUP] == [True] * len(STARTUP)
    assert [tf_startup.is_startup_line(line) for line in KEPT] == [False] * len(KEPT)


def test_replay_sends_startup_lines_to_debug_and_the_rest_to_stderr(caplog, capsys):
    caplog.set_level(logging.DEBUG, logger="tfcmvp.tensorflow")
    tf_startup.replay([line + "\n" for line in STARTUP + KEPT])
    assert capsys.readouterr().err == "".join(line + "\n" for line in KEPT)
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.DEBUG, line) for line in STARTUP
    ]


def run_cli(*argv):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO_ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    )
    # Prints whether the command imported TensorFlow (else the check below says nothing).
    code = (
        "import sys; from tfcmvp.cli.main import main; status = main(sys.argv[1:]); "
        "print('tensorflow' in sys.modules); sys.exit(status)"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO_ROOT,
    )


def test_a_command_that_loads_tensorflow_prints_no_cpp_lines(tmp_path):
    (tmp_path / "empty").mkdir()
    argv = ["pretrain", "--data", str(tmp_path / "empty"), "--workdir", str(tmp_path / "run")]
    done = run_cli(*argv)
    # It imported TensorFlow and listed the devices (the strategy), then stopped.
    assert (done.returncode, done.stdout.strip()) == (2, "True"), done.stderr[-2000:]
    assert "no training shards" in done.stderr
    assert CPP_LINE.findall(done.stderr) == [], done.stderr[-2000:]
    debug = run_cli("--log_level", "DEBUG", *argv)
    if not CPP_LINE.search(debug.stderr):
        pytest.skip("this TensorFlow prints no C++ start-up lines: nothing to hide")
    assert debug.returncode == 2

"""TensorFlow's C++ start-up lines, kept out of the command's output (below DEBUG).

``TF_CPP_MIN_LOG_LEVEL=2`` silences TensorFlow's own C++ INFO and WARNING
lines, but TensorFlow 2.21 also logs through Abseil before anything has
called ``absl::InitializeLog()``, and those lines ignore it: every process
that imports TensorFlow prints, on a machine without a GPU,

    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    I0000 00:00:1796474183.099709   23587 port.cc:153] oneDNN custom operations are on. ...
    I0000 00:00:1796474183.100060   23587 cudart_stub.cc:31] Could not find cuda drivers ...

(twice: two of its libraries each log them) and, when the devices are first
listed, ``E0000 ... cuda_platform.cc:52] failed call to cuInit: ...``. No
environment variable or Python call turns them off, so :func:`install`
catches them where they are written: when a subcommand first imports
``tensorflow``, the import (and the device listing that TensorFlow would do
at the first op anyway) runs with file descriptor 2 pointed at a temporary
file. Afterwards the lines in the C++ log format go to the Python logger
``tfcmvp.tensorflow`` at DEBUG, and everything else (a Python warning, a
fatal ``F`` line, any other ``E`` line) is written to stderr as it was.

The import stays lazy: ``--help``, ``--list_keys`` and the commands that
never need TensorFlow do not load it. With ``--log_level DEBUG`` the CLI
does not install the hook and every line shows as TensorFlow writes it.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import logging
import os
import re
import sys
import tempfile
from typing import Iterator, List

logger = logging.getLogger("tfcmvp.tensorflow")

MODULE = "tensorflow"
# Abseil's format ("I0000 00:00:1796474183.099709   23587 port.cc:153] ...") and
# TensorFlow's older one ("2025-01-02 10:11:12.345678: I tensorflow/core/...").
_CPP_LINE = re.compile(
    r"^(?:(?P<absl>[IWEF])\d{4} [\d:.]+\s+\d+ [\w./-]+:\d+\] "
    r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: (?P<tf>[IWEF]) )"
)
_ABSL_PREINIT = "WARNING: All log messages before absl::InitializeLog() is called"
# The one error-level start-up line: a CUDA build of TensorFlow on a machine without a
# (working) NVIDIA driver; the run logs how many replicas it got, on which devices.
_NO_DRIVER = "failed call to cuInit"


def is_startup_line(line: str) -> bool:
    """Whether `line` is one of TensorFlow's C++ start-up lines (INFO / WARNING, Abseil's
    pre-initialisation notice, or the no-driver cuInit error)."""
    if line.startswith(_ABSL_PREINIT):
        return True
    match = _CPP_LINE.match(line)
    if match is None:
        return False
    severity = match.group("absl") or match.group("tf")
    return severity in "IW" or (severity == "E" and _NO_DRIVER in line)


@contextlib.contextmanager
def _stderr_to_file() -> Iterator[List[str]]:
    """Points file descriptor 2 at a temporary file for the block; yields a list that
    receives the lines written meanwhile (filled when the block ends)."""
    lines: List[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield lines
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            lines.extend(capture.read().decode("utf-8", "replace").splitlines(keepends=True))


def replay(lines: List[str]) -> None:
    """Start-up lines to the logger at DEBUG, the others to stderr unchanged."""
    for line in lines:
        if is_startup_line(line):
            logger.debug("%s", line.rstrip("\n"))
        else:
            sys.stderr.write(line)
    sys.stderr.flush()


class _QuietLoader(importlib.abc.Loader):
    """Runs the real loader of ``tensorflow`` with its C++ start-up lines caught."""

    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        with _stderr_to_file() as lines:
            try:
                self._loader.exec_module(module)
                # The device listing logs the cuInit line; listing physical devices
                # leaves logical ones (virtual CPUs, memory limits) still configurable.
                module.config.list_physical_devices()
            finally:
                # From here on the module looks as if imported without this hook.
                module.__loader__ = module.__spec__.loader = self._loader
        replay(lines)

    def __getattr__(self, name):  # resource readers etc. of the real loader
        return getattr(self._loader, name)


class _QuietFinder(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` through the other finders and wraps its loader, once."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != MODULE:
            return None
        uninstall()  # one import only; and find_spec below must not come back here
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _QuietLoader(spec.loader)
        return spec


def install() -> None:
    """Catches the C++ start-up lines of the process's first ``import tensorflow``
    (a no-op when TensorFlow is already imported or the hook is installed)."""
    if MODULE in sys.modules or any(isinstance(f, _QuietFinder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _QuietFinder())


def uninstall() -> None:
    """Removes the hook (if the import has not happened yet)."""
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _QuietFinder)]

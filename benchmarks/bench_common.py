"""What several benchmark scripts share (not a benchmark itself): synthetic videos at
UCF101's size, pinning the process to one core, and best-of-N timing.

The scripts import it as a sibling module (``python benchmarks/bench_x.py`` puts this
folder first on ``sys.path``); importing it puts the repository before any installed
tfcmvp, so that a script measures the code beside it.
"""

from __future__ import annotations

import glob
import os
import sys
import time
from typing import Any, Callable, Tuple

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def add_synthetic_arguments(parser) -> None:
    """``--videos``, ``--frames`` (of :func:`make_ucf_size_videos`) and ``--repeats``
    (of :func:`best_of`)."""
    parser.add_argument("--videos", type=int, default=6, help="synthetic videos (default 6)")
    parser.add_argument("--frames", type=int, default=150, help="frames per video (default 150)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs, best counts")


def make_ucf_size_videos(folder: str, videos: int, frames: int) -> list:
    """``videos`` ``tfcmvp synth`` videos of ``frames`` frames at UCF101's size (320x240,
    25 fps, MPEG-4 Part 2, GOP 12) under ``folder``; returns their paths."""
    from tfcmvp.synth import CLASSES, make_dataset

    classes = CLASSES[: max(1, -(-videos // 2))]  # two videos per class
    make_dataset(
        folder,
        seed=0,
        videos_per_class=2,
        clips_per_group=1,
        width=320,
        height=240,
        num_frames=frames,
        classes=classes,
    )
    return sorted(glob.glob(os.path.join(folder, "videos", "*", "*.avi")))[:videos]


def pin_to_one_core() -> None:
    """Runs this process on the first core it may use (where the system allows it), so
    that rates are per core."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})


def best_of(run: Callable[[], Any], repeats: int) -> Tuple[Any, float, float]:
    """``(result of the last run, best process CPU seconds, best wall-clock seconds)`` of
    ``repeats`` calls of ``run``.

    The fastest run counts: on a shared machine it is the least disturbed one. CPU time
    is printed beside wall time because the wall time also counts the time other
    processes hold the core.
    """
    cpu = wall = float("inf")
    result = None
    for _ in range(repeats):
        start_cpu, start_wall = time.process_time(), time.perf_counter()
        result = run()
        cpu = min(cpu, time.process_time() - start_cpu)
        wall = min(wall, time.perf_counter() - start_wall)
    return result, cpu, wall

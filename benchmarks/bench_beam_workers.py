"""Beam extraction job: 2 DirectRunner worker processes against 1, in one run.

    python benchmarks/bench_beam_workers.py                  # ~2 min on 2 cores
    python benchmarks/bench_beam_workers.py --videos 48      # quick look

Generates ``--distinct`` 320x240 MPEG-4 Part 2 videos (GOP 12, no B-frames) of
moving textures and lists them, under other names (hard links), until the
splits hold ``--videos`` entries in UCF101 layout: every listed video is
decoded and written in full, so the job does the work of that many videos
while the set-up stays short. Then runs ``beam_jobs.extract`` on a short job
(the first ``--short`` videos) and on the whole list, each with 1 and with 2
worker processes (multi_processing both times, so only the worker count
differs), each into a fresh output folder. Prints wall time, videos/s,
frames/s and the 2-worker speed-up of each (target: at least 1.7x on the long
job); the short job shows the fixed cost (runner and worker start-up) that a
longer job amortises. Run it on an otherwise idle machine: the ratio is
meaningless while other jobs compete for the cores.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from beam_jobs import extract  # noqa: E402
from tfcmvp.codec import write_video  # noqa: E402
from tfcmvp.codec.synthetic import moving_texture  # noqa: E402


def make_videos(root: pathlib.Path, count: int, distinct: int, frames: int) -> None:
    """`count` listed videos (`distinct` real files) in two classes, UCF101 layout."""
    videos, splits = root / "videos", root / "splits"
    splits.mkdir(parents=True)
    classes = ("Up", "Down")
    (splits / "classInd.txt").write_text("".join(f"{i + 1} {c}\n" for i, c in enumerate(classes)))
    train_lines = []
    for i in range(count):
        name = classes[i % 2]
        rel = f"{name}/v_{name}_g{i // 2 + 1:03d}_c01.avi"
        (videos / name).mkdir(parents=True, exist_ok=True)
        if i < distinct:
            velocity = (1.0, -1.5) if name == "Up" else (-1.0, 1.5)
            write_video(videos / rel, moving_texture(frames, 240, 320, velocity, seed=i),
                        codec="mpeg4", gop=12)
        else:
            source = i % distinct  # same class parity when distinct is even
            os.link(videos / classes[source % 2] / f"v_{classes[source % 2]}_g"
                    f"{source // 2 + 1:03d}_c01.avi", videos / rel)
        train_lines.append(f"{rel} {i % 2 + 1}\n")
    (splits / "trainlist01.txt").write_text("".join(train_lines))
    (splits / "testlist01.txt").write_text("")


def shorter(root: pathlib.Path, count: int) -> pathlib.Path:
    """A copy of the split files of root listing only its first `count` videos."""
    short = root / f"splits_{count}"
    short.mkdir()
    shutil.copy(root / "splits" / "classInd.txt", short / "classInd.txt")
    lines = (root / "splits" / "trainlist01.txt").read_text().splitlines(keepends=True)
    (short / "trainlist01.txt").write_text("".join(lines[:count]))
    (short / "testlist01.txt").write_text("")
    return short


def run_job(root: pathlib.Path, splits: pathlib.Path, workers: int) -> dict:
    out = root / f"out_{workers}"
    shutil.rmtree(out, ignore_errors=True)
    argv = ["--videos_dir", str(root / "videos"), "--splits_dir", str(splits),
            "--output_dir", str(out), "--direct_num_workers", str(workers),
            "--direct_running_mode", "multi_processing"]
    start = time.perf_counter()
    manifest = extract.run(argv)
    seconds = time.perf_counter() - start
    train = manifest["splits"]["train"]
    return {"workers": workers, "seconds": seconds, "videos": train["written"],
            "frames": train["frames"]}


def print_table(title: str, results: list) -> float:
    print(f"\n{title}")
    print(f"{'workers':>8} {'videos':>7} {'seconds':>9} {'videos/s':>9} {'frames/s':>9}")
    for r in results:
        print(f"{r['workers']:>8} {r['videos']:>7} {r['seconds']:>9.1f} "
              f"{r['videos'] / r['seconds']:>9.2f} {r['frames'] / r['seconds']:>9.0f}")
    speedup = results[0]["seconds"] / results[1]["seconds"]
    print(f"2 workers vs 1: {speedup:.2f}x")
    return speedup


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=192,
                        help="videos listed in the long job (default 192)")
    parser.add_argument("--distinct", type=int, default=16,
                        help="distinct video files generated (default 16)")
    parser.add_argument("--short", type=int, default=16,
                        help="videos in the short job (default 16; 0 skips it)")
    parser.add_argument("--frames", type=int, default=150, help="frames per video (default 150)")
    parser.add_argument("--json", type=pathlib.Path, help="also write the results here")
    args = parser.parse_args(argv)
    if not 0 < args.distinct <= args.videos or args.distinct % 2:
        parser.error("--distinct must be even and between 1 and --videos")

    root = pathlib.Path(tempfile.mkdtemp(prefix="bench_beam_"))
    runs = {}
    try:
        print(f"generating {args.distinct} videos of {args.frames} frames (320x240 MPEG-4), "
              f"listed {args.videos} times ...")
        make_videos(root, args.videos, args.distinct, args.frames)
        print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
        if args.short:
            splits = shorter(root, args.short)
            runs["short"] = [run_job(root, splits, 1), run_job(root, splits, 2)]
        runs["long"] = [run_job(root, root / "splits", 1), run_job(root, root / "splits", 2)]
    finally:
        shutil.rmtree(root, ignore_errors=True)

    speedups = {}
    if "short" in runs:
        speedups["short"] = print_table(f"short job ({args.short} videos: mostly start-up)",
                                        runs["short"])
    speedups["long"] = print_table(f"long job ({args.videos} videos)", runs["long"])
    print(f"\n2 workers vs 1 on the long job: {speedups['long']:.2f}x (target >= 1.7x)")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"runs": runs, "speedups": speedups}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Beam extraction job: 2 DirectRunner worker processes against 1, in one run.

    python benchmarks/bench_beam_workers.py                  # ~2-3 min on 2 cores
    python benchmarks/bench_beam_workers.py --videos 24      # quick look

Generates ``--videos`` 320x240 MPEG-4 Part 2 videos (GOP 12, no B-frames) of
moving textures in UCF101 layout, then runs ``beam_jobs.extract`` on them
twice, with 1 and with 2 worker processes (multi_processing; the same mode
both times so only the worker count differs), each into a fresh output
folder. Prints wall time, videos/s, frames/s and the 2-worker speed-up
(target: at least 1.7x). Run it on an otherwise idle machine: the ratio is
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


def make_videos(root: pathlib.Path, count: int, frames: int) -> None:
    """`count` videos in two classes, UCF101 layout under root/videos, root/splits."""
    videos, splits = root / "videos", root / "splits"
    splits.mkdir(parents=True)
    classes = ("Up", "Down")
    (splits / "classInd.txt").write_text("".join(f"{i + 1} {c}\n" for i, c in enumerate(classes)))
    train_lines = []
    for i in range(count):
        name = classes[i % 2]
        velocity = (1.0, -1.5) if name == "Up" else (-1.0, 1.5)
        rel = f"{name}/v_{name}_g{i // 2 + 1:02d}_c01.avi"
        (videos / name).mkdir(parents=True, exist_ok=True)
        write_video(videos / rel, moving_texture(frames, 240, 320, velocity, seed=i),
                    codec="mpeg4", gop=12)
        train_lines.append(f"{rel} {i % 2 + 1}\n")
    (splits / "trainlist01.txt").write_text("".join(train_lines))
    (splits / "testlist01.txt").write_text("")


def run_job(root: pathlib.Path, workers: int) -> dict:
    out = root / f"out_{workers}"
    shutil.rmtree(out, ignore_errors=True)
    argv = ["--videos_dir", str(root / "videos"), "--splits_dir", str(root / "splits"),
            "--output_dir", str(out), "--direct_num_workers", str(workers),
            "--direct_running_mode", "multi_processing"]
    start = time.perf_counter()
    manifest = extract.run(argv)
    seconds = time.perf_counter() - start
    train = manifest["splits"]["train"]
    return {"workers": workers, "seconds": seconds, "videos": train["written"],
            "frames": train["frames"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=64, help="videos to extract (default 64)")
    parser.add_argument("--frames", type=int, default=150, help="frames per video (default 150)")
    parser.add_argument("--json", type=pathlib.Path, help="also write the results here")
    args = parser.parse_args(argv)

    root = pathlib.Path(tempfile.mkdtemp(prefix="bench_beam_"))
    try:
        print(f"generating {args.videos} videos of {args.frames} frames (320x240 MPEG-4) ...")
        make_videos(root, args.videos, args.frames)
        print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
        results = [run_job(root, 1), run_job(root, 2)]
    finally:
        shutil.rmtree(root, ignore_errors=True)

    print()
    print(f"{'workers':>8} {'seconds':>9} {'videos/s':>9} {'frames/s':>9}")
    for r in results:
        print(f"{r['workers']:>8} {r['seconds']:>9.1f} {r['videos'] / r['seconds']:>9.2f} "
              f"{r['frames'] / r['seconds']:>9.0f}")
    speedup = results[0]["seconds"] / results[1]["seconds"]
    print(f"\n2 workers vs 1: {speedup:.2f}x (target >= 1.7x)")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"runs": results, "speedup": speedup}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

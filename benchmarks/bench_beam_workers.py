"""Beam extraction job: 2 worker processes against 1, on the local runner and on Dask.

    python benchmarks/bench_beam_workers.py                  # ~4 min on 2 cores
    python benchmarks/bench_beam_workers.py --videos 48      # quick look
    python benchmarks/bench_beam_workers.py --runners direct # the local runner only

Generates ``--distinct`` 320x240 MPEG-4 Part 2 videos (GOP 12, no B-frames) of
moving textures and lists them, under other names (hard links), until the
splits hold ``--videos`` entries in UCF101 layout: every listed video is
decoded and written in full, so the job does the work of that many videos
while the set-up stays short. Then runs ``beam_jobs.extract`` on a short job
(the first ``--short`` videos) and on the whole list, each with 1 and with 2
worker processes, each into a fresh output folder, on each of ``--runners``:
``direct``, the default local runner (FnApiRunner, multi_processing both
times, so only the worker count differs), and ``dask``, Beam's Dask runner on
a local cluster of that many single-threaded worker processes started for
the run (``--runner DaskRunner --dask_workers N``; needs the ``dask`` extra).
Prints wall time, videos/s, frames/s and the 2-worker speed-up of each
(target: at least 1.7x on the long job), and whether both runners wrote the
same shards, byte for byte; the short job shows the fixed cost (runner,
cluster and worker start-up) that a longer job amortises. Run it on an
otherwise idle machine: the ratio is meaningless while other jobs compete for
the cores.
"""

from __future__ import annotations

import argparse
import filecmp
import importlib.util
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
            write_video(
                videos / rel,
                moving_texture(frames, 240, 320, velocity, seed=i),
                codec="mpeg4",
                gop=12,
            )
        else:
            source = i % distinct  # same class parity when distinct is even
            os.link(
                videos / classes[source % 2] / f"v_{classes[source % 2]}_g"
                f"{source // 2 + 1:03d}_c01.avi",
                videos / rel,
            )
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


RUNNER_FLAGS = {
    "direct": lambda n: [
        "--direct_num_workers",
        str(n),
        "--direct_running_mode",
        "multi_processing",
    ],
    "dask": lambda n: ["--runner", "DaskRunner", "--dask_workers", str(n)],
}


def run_job(root: pathlib.Path, splits: pathlib.Path, workers: int, runner: str) -> dict:
    out = root / f"out_{splits.name}_{runner}_{workers}"
    shutil.rmtree(out, ignore_errors=True)
    argv = [
        "--videos_dir",
        str(root / "videos"),
        "--splits_dir",
        str(splits),
        "--output_dir",
        str(out),
        *RUNNER_FLAGS[runner](workers),
    ]
    start = time.perf_counter()
    manifest = extract.run(argv)
    seconds = time.perf_counter() - start
    train = manifest["splits"]["train"]
    return {
        "runner": runner,
        "workers": workers,
        "seconds": seconds,
        "videos": train["written"],
        "frames": train["frames"],
        "out": str(out),
    }


def same_shards(first: str, second: str) -> bool:
    """True when two output folders hold the same shard files with the same bytes."""
    names = sorted(p.name for p in pathlib.Path(first).glob("*.tfrecord.gz"))
    other = sorted(p.name for p in pathlib.Path(second).glob("*.tfrecord.gz"))
    return (
        bool(names)
        and names == other
        and all(
            filecmp.cmp(pathlib.Path(first) / n, pathlib.Path(second) / n, shallow=False)
            for n in names
        )
    )


def print_table(title: str, results: list) -> dict:
    """Prints the runs of one job; returns each runner's 2-worker speed-up."""
    print(f"\n{title}")
    print(
        f"{'runner':>7} {'workers':>8} {'videos':>7} {'seconds':>9} {'videos/s':>9} {'frames/s':>9}"
    )
    for r in results:
        print(
            f"{r['runner']:>7} {r['workers']:>8} {r['videos']:>7} {r['seconds']:>9.1f} "
            f"{r['videos'] / r['seconds']:>9.2f} {r['frames'] / r['seconds']:>9.0f}"
        )
    speedups = {}
    for runner in dict.fromkeys(r["runner"] for r in results):
        one, two = [r for r in results if r["runner"] == runner]
        speedups[runner] = one["seconds"] / two["seconds"]
        print(f"{runner}: 2 workers vs 1: {speedups[runner]:.2f}x")
    return speedups


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--videos", type=int, default=192, help="videos listed in the long job (default 192)"
    )
    parser.add_argument(
        "--distinct", type=int, default=16, help="distinct video files generated (default 16)"
    )
    parser.add_argument(
        "--short", type=int, default=16, help="videos in the short job (default 16; 0 skips it)"
    )
    parser.add_argument("--frames", type=int, default=150, help="frames per video (default 150)")
    parser.add_argument(
        "--runners",
        default="direct,dask",
        help="comma-separated: direct (the default local runner), dask "
        "(Beam's Dask runner on a local cluster); default both",
    )
    parser.add_argument("--json", type=pathlib.Path, help="also write the results here")
    args = parser.parse_args(argv)
    if not 0 < args.distinct <= args.videos or args.distinct % 2:
        parser.error("--distinct must be even and between 1 and --videos")
    runners = [r.strip() for r in args.runners.split(",") if r.strip()]
    unknown = [r for r in runners if r not in RUNNER_FLAGS]
    if unknown or not runners:
        parser.error(f"--runners: unknown {unknown}; choose from {sorted(RUNNER_FLAGS)}")
    if "dask" in runners and importlib.util.find_spec("distributed") is None:
        parser.error("--runners dask needs the dask extra: pip install -e '.[dask]'")

    root = pathlib.Path(tempfile.mkdtemp(prefix="bench_beam_"))
    runs = {}
    try:
        print(
            f"generating {args.distinct} videos of {args.frames} frames (320x240 MPEG-4), "
            f"listed {args.videos} times ..."
        )
        make_videos(root, args.videos, args.distinct, args.frames)
        print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
        jobs = {"long": root / "splits"}
        if args.short:
            jobs = {"short": shorter(root, args.short), **jobs}
        identical = {}
        for job, splits in jobs.items():
            runs[job] = []
            for runner in runners:
                for workers in (1, 2):
                    result = run_job(root, splits, workers, runner)
                    if runs[job]:  # compared with the job's first run, then deleted
                        identical[job] = identical.get(job, True) and same_shards(
                            runs[job][0]["out"], result["out"]
                        )
                        shutil.rmtree(result["out"])
                    runs[job].append(result)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    speedups = {}
    if "short" in runs:
        speedups["short"] = print_table(
            f"short job ({args.short} videos: mostly start-up)", runs["short"]
        )
    speedups["long"] = print_table(f"long job ({args.videos} videos)", runs["long"])
    print()
    for runner, speedup in speedups["long"].items():
        print(f"{runner}: 2 workers vs 1 on the long job: {speedup:.2f}x (target >= 1.7x)")
    for job, same in identical.items():
        print(
            f"{job} job: every run wrote the same shards, byte for byte: {'yes' if same else 'NO'}"
        )
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {"runs": runs, "speedups": speedups, "identical_shards": identical}, indent=2
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What extracting Kinetics-400 costs: per-core throughput of the extraction on
Kinetics-like clips, scaled to the ~240k training videos.

    python benchmarks/bench_kinetics_cost.py            # ~1 min on one core
    python benchmarks/bench_kinetics_cost.py --clips 1 --repeats 1   # quick look

Generates ``--clips`` synthetic 340x256 clips of 10 s at 25 fps (250 frames;
Kinetics clips are 10 s, mostly 25-30 fps, and are commonly stored with a
256-px short side) with :func:`tfcmvp.codec.write_video`: H.264 with 2
B-frames and a 2-s GOP, like a YouTube download, each a different moving
texture. Pinned to one core, it runs the Beam job's per-video work for each
``--short_sides`` value: ``read_video(rgb=True, rgb_short_side=S)`` (frame
types, vectors on the 8-px grid, RGB resized), ``records.build_record`` (JPEG
of every frame and I-frame), ``schema.encode_example`` and the framed gzip
member (``beam_jobs.tfrecord_files``), i.e. everything but the file write.
Best of ``--repeats`` (the machine is shared), by wall clock and by process
CPU time; the estimate uses the CPU-time rate (a core given to the job alone).

Prints frames/s per core, bytes per clip, and the estimate for ``--videos``
clips of ``--seconds`` s at ``--fps``: core-hours = frames / (frames/s) / 3600,
bytes = clips x bytes per clip. Caveat: the bytes are those of the synthetic
texture's JPEGs, which compress differently from real footage; the decode
time is that of a 340x256 stream, while an untrimmed download is decoded from
the key frame before the window (at most one GOP more) at its own resolution.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

from beam_jobs import tfrecord_files
from tfcmvp import records, schema
from tfcmvp.codec import read_video, write_video
from tfcmvp.codec.synthetic import moving_texture


def make_clips(folder: str, count: int, frames: int, fps: int, height: int, width: int):
    """``count`` H.264 clips with B-frames and a 2-s GOP, each a different texture."""
    paths = []
    for i in range(count):
        velocity = (1.5 + 0.5 * i, -1.0 + 0.25 * i)
        pixels = moving_texture(frames, height, width, velocity=velocity, seed=i)  # [T,H,W,3]
        path = os.path.join(folder, f"clip{i}.mp4")
        write_video(path, pixels, fps=fps, codec="h264", gop=2 * fps, b_frames=2)
        paths.append(path)
    return paths


def extract_one(path: str, short_side: int) -> tuple:
    """The Beam job's per-video work: (frames, bytes of the gzip member)."""
    video = read_video(path, rgb=True, mv_cell=8, rgb_short_side=short_side)
    record = records.build_record(video, video_id=path, label=0, label_name="x", split="train")
    member = tfrecord_files.gzip_member(tfrecord_files.frame_record(schema.encode_example(record)))
    return video.num_frames, len(member)


def measure(paths, short_side: int, repeats: int) -> tuple:
    """(frames/s of the best run by wall clock, by process CPU time, mean bytes per clip).

    CPU time is what a core given to the job alone delivers; on a loaded
    machine the wall-clock rate is lower.
    """
    best_wall = best_cpu = 0.0
    sizes = []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        frames, sizes = 0, []
        for path in paths:
            count, size = extract_one(path, short_side)
            frames += count
            sizes.append(size)
        best_wall = max(best_wall, frames / (time.perf_counter() - wall))
        best_cpu = max(best_cpu, frames / (time.process_time() - cpu))
    return best_wall, best_cpu, float(np.mean(sizes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=3, help="synthetic clips")
    parser.add_argument("--repeats", type=int, default=2, help="runs per setting; best counts")
    parser.add_argument("--short_sides", default="128,112,64", help="stored short sides")
    parser.add_argument("--videos", type=int, default=240_000, help="videos to estimate for")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds per video")
    parser.add_argument("--fps", type=int, default=25, help="frame rate")
    parser.add_argument("--core", type=int, default=0, help="CPU core to pin to")
    args = parser.parse_args()

    os.sched_setaffinity(0, {args.core})
    frames_per_clip = int(round(args.seconds * args.fps))
    total_frames = args.videos * frames_per_clip
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as folder:
        paths = make_clips(folder, args.clips, frames_per_clip, args.fps, 256, 340)
        print(
            f"{args.clips} clips 340x256, {frames_per_clip} frames, H.264 + 2 B-frames, "
            f"GOP {2 * args.fps}; estimate for {args.videos:,} videos = {total_frames:,} frames"
        )
        print(
            f"{'short side':>10}  {'frames/s wall':>13}  {'frames/s CPU':>12}  {'MB/clip':>7}  "
            f"{'core-hours (CPU)':>16}  {'output GB':>9}"
        )
        for side in (int(s) for s in args.short_sides.split(",")):
            wall, cpu, size = measure(paths, side, args.repeats)
            print(
                f"{side:>10}  {wall:>13,.0f}  {cpu:>12,.0f}  {size / 1e6:>7.2f}  "
                f"{total_frames / cpu / 3600:>16,.0f}  {args.videos * size / 1e9:>9,.0f}"
            )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

"""Throughput of the tf.data input pipelines on records like real ones.

    python benchmarks/bench_input_pipeline.py             # ~3 min
    python benchmarks/bench_input_pipeline.py --batches 10 --videos 16   # quick look

Builds one real record the way the Beam job does: a 320x240 moving texture
(:func:`tfcmvp.codec.synthetic.moving_texture`, 120 frames) written as MPEG-4
Part 2 with GOP 12 (:func:`tfcmvp.codec.write_video`), decoded with vectors
and RGB at short side 128 (``read_video(rgb=True, rgb_short_side=128)``:
171x128 JPEGs at quality 90, a 30x40 vector grid), turned into a
``tf.train.Example`` by ``tfcmvp.records`` + ``tfcmvp.schema``. It is written
``--videos`` times (distinct ids) into 4 gzip shards.

Then, each configuration in a fresh process pinned to ``cores`` CPU cores
(``os.sched_setaffinity``, TF inter/intra-op threads = cores), it times
``--batches`` batches of ``--batch_size`` after ``--warmup`` batches:

  pretrain  num_parallel_calls=1 on 1 core, =2 on 2 cores (default settings:
            16x4 clip, 8 motion frames, 3 negatives, crop 112, jitter, blur)
  eval rgb  10 clips per video, num_parallel_calls=2 on 2 cores

and prints clips/s (pretrain: one clip = one sample with its I-frame and
four motion clips; eval: one of the 10 clips of a video) and clips/s per
core. The machine may be shared: the load average is printed with the
table; the best of ``--repeats`` timings counts.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time


def build_shards(folder: str, num_videos: int) -> str:
    """Writes ``num_videos`` copies of one realistic record; returns the file pattern."""
    import tensorflow as tf

    from tfcmvp import records, schema
    from tfcmvp.codec import read_video, write_video
    from tfcmvp.codec.synthetic import moving_texture

    frames = moving_texture(120, 240, 320, velocity=(1.5, -0.5), seed=0)  # [T, 240, 320, 3]
    path = write_video(os.path.join(folder, "bench.avi"), frames, codec="mpeg4", gop=12)
    video = read_video(path, rgb=True, rgb_short_side=128)
    record = records.build_record(
        video, video_id="bench", label=0, label_name="bench", split="train"
    )
    print(
        f"record: {record.num_frames} frames, RGB {record.rgb_width}x{record.rgb_height}, "
        f"vectors {video.motion_vectors.shape[1]}x{video.motion_vectors.shape[2]} cells, "
        f"{len(record.iframe_indices)} I-frames, "
        f"{sum(map(len, record.rgb_jpegs)) / record.num_frames / 1024:.1f} KiB per JPEG"
    )
    writers = [
        tf.io.TFRecordWriter(
            os.path.join(folder, f"train-{i:05d}-of-00004.tfrecord.gz"), options="GZIP"
        )
        for i in range(4)
    ]
    for n in range(num_videos):
        record.video_id = f"bench/{n:04d}"
        writers[n % 4].write(schema.encode_example(record))
    for w in writers:
        w.close()
    return os.path.join(folder, "train-*.tfrecord.gz")


def child(args) -> None:
    """Times one configuration in this (fresh, pinned) process; prints JSON."""
    os.sched_setaffinity(0, set(range(args.cores)))
    import tensorflow as tf

    tf.config.threading.set_inter_op_parallelism_threads(args.cores)
    tf.config.threading.set_intra_op_parallelism_threads(args.cores)
    from tfcmvp.data import eval_dataset, pretrain_dataset

    if args.mode == "pretrain":
        ds = pretrain_dataset(
            args.pattern,
            args.batch_size,
            seed=0,
            count_skipped=False,
            num_parallel_calls=args.parallel,
        )
        clips_per_batch = args.batch_size
    else:
        ds = eval_dataset(args.pattern, modality="rgb", num_parallel_calls=args.parallel)
        ds = ds.repeat().batch(args.batch_size // 10 or 1)
        clips_per_batch = 10 * (args.batch_size // 10 or 1)
    it = iter(ds)
    for _ in range(args.warmup):
        next(it)
    best = 0.0
    for _ in range(args.repeats):
        start = time.perf_counter()
        for _ in range(args.batches):
            next(it)
        best = max(best, args.batches * clips_per_batch / (time.perf_counter() - start))
    print(json.dumps({"clips_per_s": best}))


def run(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=32, help="videos written (copies of one)")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--batches", type=int, default=20, help="timed batches per repeat")
    parser.add_argument("--warmup", type=int, default=3, help="untimed batches first")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="pretrain", help=argparse.SUPPRESS)
    parser.add_argument("--pattern", help=argparse.SUPPRESS)
    parser.add_argument("--cores", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--parallel", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args)
        return 0

    available = len(os.sched_getaffinity(0))
    configs = [("pretrain", 1, 1), ("pretrain", 2, 2), ("eval rgb", 2, 2)]
    rows = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as folder:
        pattern = build_shards(folder, args.videos)
        for mode, cores, parallel in configs:
            if cores > available:
                print(f"skipping {mode} on {cores} cores: only {available} available")
                continue
            cmd = [
                sys.executable,
                __file__,
                "--child",
                "--mode",
                mode.split()[0],
                "--pattern",
                pattern,
                "--cores",
                str(cores),
                "--parallel",
                str(parallel),
                "--batch_size",
                str(args.batch_size),
                "--batches",
                str(args.batches),
                "--warmup",
                str(args.warmup),
                "--repeats",
                str(args.repeats),
            ]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            rate = json.loads(out.strip().splitlines()[-1])["clips_per_s"]
            rows.append((mode, parallel, cores, rate))
    load_after = os.getloadavg()
    print(
        f"\nload average before {load_before[0]:.2f}, after {load_after[0]:.2f} "
        f"({available} cores visible)"
    )
    header = ("pipeline", "parallel calls", "cores", "clips/s", "clips/s/core")
    print(f"{header[0]:<10} {header[1]:>14} {header[2]:>6} {header[3]:>9} {header[4]:>13}")
    for mode, parallel, cores, rate in rows:
        print(f"{mode:<10} {parallel:>14} {cores:>6} {rate:>9.1f} {rate / cores:>13.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(run())

"""What the shard format costs the training input pipeline: gzip, plain, and a memory cache.

    python benchmarks/bench_shard_formats.py               # ~2 min on 2 cores
    python benchmarks/bench_shard_formats.py --batches 10  # quick look

Builds the benchmark record of ``bench_input_pipeline`` (a 320x240 MPEG-4
texture video, 120 frames: 171x128 JPEGs at quality 90 and a 30x40 vector
grid), written ``--videos`` times into 4 gzip shards as the extraction job
does by default, and the same records into 4 plain shards (the job's
``--compression none``). Then, in this one process, times
``tfcmvp.data.pretrain_dataset`` with the data settings of
``configs/pretrain_tiny_cpu.yaml`` and of ``configs/pretrain_ucf101_c3d.yaml``
on: the gzip shards, the plain shards, and the gzip shards with
``data.cache=memory`` (after its first epoch). Prints the shard sizes and the
clips/s of each, with the ratios to the gzip shards.

The records are noise textures, the worst case for compression; real video
frames make smaller JPEGs, so gzip saves a larger share of them (the vectors)
and costs less time per record.
"""

from __future__ import annotations

import argparse
import gzip
import os
import pathlib
import shutil
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import bench_input_pipeline  # noqa: E402

CONFIGS = {
    "tiny": REPO / "configs" / "pretrain_tiny_cpu.yaml",
    "paper C3D": REPO / "configs" / "pretrain_ucf101_c3d.yaml",
}


def plain_copies(pattern: str, folder: pathlib.Path) -> str:
    """Decompressed copies of the gzip shards (what ``--compression none`` writes)."""
    folder.mkdir()
    for path in sorted(pathlib.Path(pattern).parent.glob(pathlib.Path(pattern).name)):
        with gzip.open(path, "rb") as source, open(folder / path.name[:-3], "wb") as target:
            shutil.copyfileobj(source, target)
    return str(folder / "train-*.tfrecord")


def clips_per_second(pattern, config, cache, args) -> float:
    import dataclasses

    from tfcmvp.data import pretrain_dataset

    data = dataclasses.replace(config.data, cache=cache)
    batch = config.train.global_batch_size
    iterator = iter(pretrain_dataset(pattern, batch, data, seed=0, count_skipped=False))
    # Warm-up covers at least one epoch, so that a cache is complete before timing.
    for _ in range(max(args.warmup, -(-args.videos // batch) + 1)):
        next(iterator)
    start = time.perf_counter()
    for _ in range(args.batches):
        next(iterator)["clip"].numpy()
    return args.batches * batch / (time.perf_counter() - start)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=32, help="records written (default 32)")
    parser.add_argument("--batches", type=int, default=20, help="timed batches (default 20)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed batches at least")
    args = parser.parse_args(argv)

    from tfcmvp.config import load_config

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench_shards_") as folder:
        gzip_pattern = bench_input_pipeline.build_shards(folder, args.videos)
        plain_pattern = plain_copies(gzip_pattern, pathlib.Path(folder) / "plain")
        sizes = {
            name: sum(
                p.stat().st_size
                for p in pathlib.Path(pattern).parent.glob(pathlib.Path(pattern).name)
            )
            for name, pattern in (("gzip", gzip_pattern), ("none", plain_pattern))
        }
        runs = [
            ("gzip shards", gzip_pattern, None),
            ("plain shards", plain_pattern, None),
            ("gzip shards + cache", gzip_pattern, "memory"),
        ]
        rates = {}
        for name, path in CONFIGS.items():
            config = load_config(path, ["runtime.strategy=default"])
            for label, pattern, cache in runs:
                print(f"[{name}] {label} ...", file=sys.stderr, flush=True)
                rates[name, label] = clips_per_second(pattern, config, cache, args)

    print(
        f"\n{args.videos} records, load average before {load_before:.2f}, after "
        f"{os.getloadavg()[0]:.2f} ({os.cpu_count()} cores)"
    )
    print(
        f"shard bytes: gzip {sizes['gzip'] / 1e6:.1f} MB, plain {sizes['none'] / 1e6:.1f} MB "
        f"({sizes['none'] / sizes['gzip']:.2f}x)"
    )
    print(f"\n{'config':<10} {'shards':<22} {'clips/s':>9} {'vs gzip':>8}")
    for name in CONFIGS:
        for label, _, _ in runs:
            rate = rates[name, label]
            print(f"{name:<10} {label:<22} {rate:>9.1f} {rate / rates[name, 'gzip shards']:>7.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

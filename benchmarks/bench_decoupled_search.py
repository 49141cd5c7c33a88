"""Decoupled search, measured: precision@5 by motion label and by scene label per ``--by``.

    # the quickstart's pretrained joint run (seed 0) on its own synth set (120 videos):
    python benchmarks/bench_decoupled_search.py --workdir runs/quickstart/pretrain/joint/seed0 \
        --data runs/quickstart/synth --index /tmp/bench_index
    # random-init exports of the tiny config (no pretraining needed):
    python benchmarks/bench_decoupled_search.py --random_init configs/pretrain_tiny_cpu.yaml \
        --data runs/quickstart/synth --index /tmp/bench_index_scratch

(from the repository root, with PYTHONPATH=. or after ``pip install -e .``;
a few minutes on 2 cores for 120 videos, most of it embedding.)

Exports the V-, I- and M-Network (of a pretraining WORKDIR, or untrained
from a config), builds ``tfcmvp index`` over DATA/videos with all three,
then queries with every indexed video through :func:`tfcmvp.search.search_index`
(the query itself excluded) for ``--by motion``, ``context`` and ``video``
and prints, per ``--by``, the share of the top 5 results that have the
query's motion label and the share that have its scene label
(``DATA/labels.csv`` of ``tfcmvp synth``). ``motion != scene`` is the same
with results from the query's own UCF group left out: a group's clips share
both labels (one scene instance per group of a class), so its siblings match
on both at once. Chance is the label's share of the other videos.
"""

from __future__ import annotations

import argparse
import csv
import pathlib
import sys
import tempfile
import time

import numpy as np


def _labels(data: pathlib.Path) -> dict:
    """absolute video path -> (motion, scene, group key)."""
    out = {}
    with open(data / "labels.csv", newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            path = (data / "videos" / row["video"]).resolve()
            group = row["video"].rsplit("_c", 1)[0]  # Class/v_Class_gXX
            out[str(path)] = (row["motion"], row["scene"], group)
    return out


def _exports(args, folder: pathlib.Path) -> dict:
    from tfcmvp import config as cfg
    from tfcmvp.export import export_pretrained, export_random_init

    models = {}
    for network in ("video", "iframe", "motion"):
        target = folder / network
        if args.workdir:
            export_pretrained(args.workdir, target, network, overwrite=True)
        else:
            config = cfg.load_config(args.random_init)
            export_random_init(
                config,
                target,
                network,
                seed=args.seed,
                overwrite=True,
                config_path=args.random_init,
            )
        models[network] = str(target)
    return models


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--workdir", help="a finished tfcmvp pretrain run: export its networks")
    source.add_argument("--random_init", metavar="CONFIG", help="untrained networks of CONFIG")
    parser.add_argument("--seed", type=int, default=0, help="random-init seed (default 0)")
    parser.add_argument("--data", required=True, help="a tfcmvp synth folder (with labels.csv)")
    parser.add_argument("--index", help="index folder (default: a temporary one)")
    parser.add_argument("--top", type=int, default=5, help="precision@TOP (default 5)")
    args = parser.parse_args(argv)

    from tfcmvp.search import build_index, load_index, search_index

    data = pathlib.Path(args.data)
    labels = _labels(data)
    with tempfile.TemporaryDirectory(prefix="bench-search-") as scratch:
        scratch = pathlib.Path(scratch)
        index_dir = pathlib.Path(args.index) if args.index else scratch / "index"
        started = time.perf_counter()
        models = _exports(args, scratch / "exports")
        result = build_index([data / "videos"], index_dir, models=models, progress=False)
        print(
            f"indexed {result.counts['indexed']} videos ({result.summary['embedded']} embedded) "
            f"in {time.perf_counter() - started:.0f} s"
        )
        paths = [e.path for e in load_index(index_dir).entries]
        missing = [p for p in paths if p not in labels]
        if missing:
            print(f"no label for {missing[0]} in {data / 'labels.csv'}", file=sys.stderr)
            return 2
        motion = np.array([labels[p][0] for p in paths])
        scene = np.array([labels[p][1] for p in paths])
        group = np.array([labels[p][2] for p in paths])
        v = len(paths)
        chance_m = np.mean([(motion[np.arange(v) != i] == motion[i]).mean() for i in range(v)])
        chance_s = np.mean([(scene[np.arange(v) != i] == scene[i]).mean() for i in range(v)])
        source = args.workdir or f"random init of {args.random_init} (seed {args.seed})"
        print(f"exports: {source}; {v} videos; precision@{args.top} (%), query excluded")
        print(f"{'--by':<9}{'motion':>8}{'scene':>8}   other groups only:{'motion':>8}{'scene':>8}")
        for by in ("motion", "context", "video"):
            p_m, p_s, o_m, o_s = [], [], [], []
            for i, path in enumerate(paths):
                found = search_index(path, index_dir, by, top=v - 1)
                rows = np.asarray(found.rows)
                top = rows[: args.top]
                p_m.append((motion[top] == motion[i]).mean())
                p_s.append((scene[top] == scene[i]).mean())
                other = rows[group[rows] != group[i]][: args.top]
                o_m.append((motion[other] == motion[i]).mean())
                o_s.append((scene[other] == scene[i]).mean())
            print(
                f"{by:<9}{100 * np.mean(p_m):8.1f}{100 * np.mean(p_s):8.1f}"
                f"{'':21}{100 * np.mean(o_m):8.1f}{100 * np.mean(o_s):8.1f}"
            )
        print(f"chance   {100 * chance_m:8.1f}{100 * chance_s:8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

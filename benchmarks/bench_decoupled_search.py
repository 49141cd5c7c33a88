"""Decoupled search, measured: precision@5 by motion label and by scene label per ``--by``.

    # the quickstart's pretrained joint run (seed 0) on its own synth set (120 videos):
    python benchmarks/bench_decoupled_search.py --workdir runs/quickstart/pretrain/joint/seed0 \
        --data runs/quickstart/synth --index /tmp/bench_index
    # random-init exports of the tiny config (no pretraining needed):
    python benchmarks/bench_decoupled_search.py --random_init configs/pretrain_tiny_cpu.yaml \
        --data runs/quickstart/synth --index /tmp/bench_index_scratch
    # each network from the run that trains it best: V- and M-Network of the joint
    # run, I-Network of a context-only run (as tfcmvp index --models video=.. iframe=..):
    python benchmarks/bench_decoupled_search.py --workdir runs/joint_s0/pretrain \
        --iframe_workdir runs/context_s0/pretrain --data DATA --index /tmp/bench_index_mixed

(from the repository root, with PYTHONPATH=. or after ``pip install -e .``;
a few minutes on 2 cores for 120 videos, most of it embedding.)

Exports the V-, I- and M-Network, each from its source: ``--video_workdir``,
``--iframe_workdir`` or ``--motion_workdir`` when given (a finished pretraining
workdir), else ``--workdir``, else untrained from ``--random_init CONFIG``
(``--seed``); every network needs one of them. Builds ``tfcmvp index`` over
DATA/videos with all three, then queries with every indexed video through
:func:`tfcmvp.search.search_index` (the query itself excluded) for ``--by
motion``, ``context`` and ``video`` and prints, per ``--by``, the share of the
top 5 results that have the query's motion label and the share that have its
scene label (``DATA/labels.csv`` of ``tfcmvp synth``). ``motion != scene`` is
the same with results from the query's own UCF group left out: a group's clips
share both labels (one scene instance per group of a class), so its siblings
match on both at once. Chance is the label's share of the other videos.
"""

from __future__ import annotations

import argparse
import csv
import pathlib
import sys
import tempfile
import time

import numpy as np

NETWORKS = ("video", "iframe", "motion")


def _labels(data: pathlib.Path) -> dict:
    """absolute video path -> (motion, scene, group key)."""
    out = {}
    with open(data / "labels.csv", newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            path = (data / "videos" / row["video"]).resolve()
            group = row["video"].rsplit("_c", 1)[0]  # Class/v_Class_gXX
            out[str(path)] = (row["motion"], row["scene"], group)
    return out


def network_sources(args) -> dict:
    """network -> ("workdir", WORKDIR) or ("random_init", CONFIG), per the precedence above.

    Raises ValueError naming the network and the options when one has no source.
    """
    sources = {}
    for network in NETWORKS:
        override = getattr(args, f"{network}_workdir")
        if override or args.workdir:
            sources[network] = ("workdir", override or args.workdir)
        elif args.random_init:
            sources[network] = ("random_init", args.random_init)
        else:
            raise ValueError(
                f"no source for the {network} network: give --{network}_workdir, "
                f"--workdir or --random_init"
            )
    return sources


def describe_sources(sources: dict, seed: int) -> str:
    """One line naming each network's source, e.g. for the printed table's header."""
    parts = []
    for network, (kind, where) in sources.items():
        text = where if kind == "workdir" else f"random init of {where} (seed {seed})"
        parts.append(f"{network}={text}")
    return "; ".join(parts)


def _exports(sources: dict, seed: int, folder: pathlib.Path) -> dict:
    from tfcmvp import config as cfg
    from tfcmvp.export import export_pretrained, export_random_init

    models = {}
    for network, (kind, where) in sources.items():
        target = folder / network
        if kind == "workdir":
            export_pretrained(where, target, network, overwrite=True)
        else:
            config = cfg.load_config(where)
            export_random_init(
                config, target, network, seed=seed, overwrite=True, config_path=where
            )
        models[network] = str(target)
    return models


def _chance(labels: np.ndarray) -> float:
    """Mean over queries of the label's share among the other videos."""
    v = len(labels)
    return float(np.mean([(labels[np.arange(v) != i] == labels[i]).mean() for i in range(v)]))


def _precisions(index_dir, by: str, motion, scene, group, top: int) -> tuple:
    """(motion, scene, other-group motion, other-group scene) precision@top in %, for ``by``."""
    from tfcmvp.search import load_index, search_index

    paths = [e.path for e in load_index(index_dir).entries]
    p_m, p_s, o_m, o_s = [], [], [], []
    for i, path in enumerate(paths):
        rows = np.asarray(search_index(path, index_dir, by, top=len(paths) - 1).rows)
        first = rows[:top]
        p_m.append((motion[first] == motion[i]).mean())
        p_s.append((scene[first] == scene[i]).mean())
        other = rows[group[rows] != group[i]][:top]
        o_m.append((motion[other] == motion[i]).mean())
        o_s.append((scene[other] == scene[i]).mean())
    return tuple(100 * float(np.mean(p)) for p in (p_m, p_s, o_m, o_s))


def _report(index_dir, labels: dict, source: str, top: int) -> int:
    """Prints the table for an index of DATA/videos; 2 when a video has no label."""
    from tfcmvp.search import load_index

    paths = [e.path for e in load_index(index_dir).entries]
    missing = [p for p in paths if p not in labels]
    if missing:
        print(f"no label for {missing[0]} in labels.csv", file=sys.stderr)
        return 2
    motion, scene, group = (np.array([labels[p][k] for p in paths]) for k in range(3))
    print(f"exports: {source}")
    print(f"{len(paths)} videos; precision@{top} (%), query excluded")
    print(f"{'--by':<9}{'motion':>8}{'scene':>8}   other groups only:{'motion':>8}{'scene':>8}")
    for by in ("motion", "context", "video"):
        p_m, p_s, o_m, o_s = _precisions(index_dir, by, motion, scene, group, top)
        print(f"{by:<9}{p_m:8.1f}{p_s:8.1f}{'':21}{o_m:8.1f}{o_s:8.1f}")
    print(f"chance   {100 * _chance(motion):8.1f}{100 * _chance(scene):8.1f}")
    return 0


def parse_args(argv=None) -> argparse.Namespace:
    """The command line; exits with a usage error when a network has no source."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--workdir", help="a finished tfcmvp pretrain run: export its networks")
    source.add_argument("--random_init", metavar="CONFIG", help="untrained networks of CONFIG")
    for network in NETWORKS:
        parser.add_argument(
            f"--{network}_workdir",
            metavar="WORKDIR",
            help=f"export the {network} network from this pretrain run instead",
        )
    parser.add_argument("--seed", type=int, default=0, help="random-init seed (default 0)")
    parser.add_argument("--data", required=True, help="a tfcmvp synth folder (with labels.csv)")
    parser.add_argument("--index", help="index folder (default: a temporary one)")
    parser.add_argument("--top", type=int, default=5, help="precision@TOP (default 5)")
    args = parser.parse_args(argv)
    try:
        args.sources = network_sources(args)
    except ValueError as error:
        parser.error(str(error))
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    from tfcmvp.search import build_index

    data = pathlib.Path(args.data)
    labels = _labels(data)
    with tempfile.TemporaryDirectory(prefix="bench-search-") as scratch:
        scratch = pathlib.Path(scratch)
        index_dir = pathlib.Path(args.index) if args.index else scratch / "index"
        started = time.perf_counter()
        models = _exports(args.sources, args.seed, scratch / "exports")
        result = build_index([data / "videos"], index_dir, models=models, progress=False)
        print(
            f"indexed {result.counts['indexed']} videos ({result.summary['embedded']} embedded) "
            f"in {time.perf_counter() - started:.0f} s"
        )
        return _report(index_dir, labels, describe_sources(args.sources, args.seed), args.top)


if __name__ == "__main__":
    sys.exit(main())

"""The ``tfcmvp`` console command: one subcommand per module of this package.

Each subcommand module exposes ``add_parser(subparsers)`` and
``run(args) -> int``; this file only wires them together.
"""

from __future__ import annotations

import argparse
import logging
import sys

from tfcmvp import __version__
from tfcmvp.cli import inspect_cmd, synth_cmd

SUBCOMMANDS = (synth_cmd, inspect_cmd)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tfcmvp",
        description="Self-supervised video representation learning from I-frames and motion vectors.")
    parser.add_argument("--version", action="version", version=f"tfcmvp {__version__}")
    parser.add_argument("--log_level", default="INFO", help="Python logging level (default INFO).")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in SUBCOMMANDS:
        module.add_parser(subparsers)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return int(args.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

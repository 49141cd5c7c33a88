"""``tfcmvp report``: one report card of several exports on one data set
(see :mod:`tfcmvp.evaluation.report_card`)."""

from __future__ import annotations

import logging
import pathlib

from tfcmvp.cli import arguments, common
from tfcmvp.errors import TfcmvpError

logger = logging.getLogger(__name__)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "report",
        help="one table of retrieval, kNN, linear probe (and finetune) for several exports",
        description=(
            "For every --models NAME=DIR (an export folder, named in the table): retrieval R@1 "
            "under the VCOP and CoCLR protocols, weighted kNN top-1 (k=20) and the linear "
            "probe's top-1 on frozen features (as `tfcmvp retrieval` and `tfcmvp evaluate`, "
            "from the same feature cache) and, with --finetune_config, a short finetune of "
            "each video network export. The linear probe and the finetune run once per seed "
            "(--seeds N: seeds 0..N-1) and show mean (min-max). On UCF101 / HMDB51 split 1 "
            "the paper's numbers for the export's backbone stand beside ours. Writes every "
            "number and setting to --output and prints one table."
        ),
    )
    parser.add_argument(
        "--models",
        nargs="+",
        required=True,
        metavar="NAME=DIR",
        help="export folders, each with the name it gets in the table",
    )
    parser.add_argument(
        "--data", required=True, help="output folder of the extraction job (test-*, train-*)"
    )
    parser.add_argument("--output", required=True, help="JSON file for every number and setting")
    parser.add_argument("--png", help="grouped bar chart of the table")
    parser.add_argument(
        "--seeds",
        type=int,
        default=1,
        metavar="N",
        help="runs of the random methods (linear probe folds, finetune), seeds 0..N-1 (default 1)",
    )
    arguments.add_label_arguments(
        parser,
        labels_help="score retrieval, kNN and the linear probe by this labels CSV (`tfcmvp "
        "synth` writes DIR/labels.csv) instead of the records' class labels; needs "
        "--label_column",
        column_help="the label kind (CSV column), e.g. motion",
    )
    _add_finetune_arguments(parser)
    parser.add_argument(
        "--clips", type=int, default=10, help="clips per video of the vcop features (default 10)"
    )
    arguments.add_cache_arguments(parser)
    parser.set_defaults(run=run)


def _add_finetune_arguments(parser) -> None:
    """The optional short finetune of each video network export."""
    parser.add_argument(
        "--finetune_config",
        metavar="YAML",
        help="also finetune each video network export with this config (e.g. "
        "configs/finetune_tiny_cpu.yaml; architecture taken from the export)",
    )
    parser.add_argument(
        "--finetune_override",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="overrides of --finetune_config (train.seed is set per seed)",
    )
    parser.add_argument(
        "--finetune_dir",
        help="folder of the finetune runs, NAME/seed<k> each (default: beside --output, "
        "named after it with _finetune)",
    )


def run(args) -> int:
    # Imported here: the evaluations load TensorFlow; --help should not wait for it.
    from tfcmvp.evaluation.report_card import (
        ReportSettings,
        format_report,
        parse_models,
        report_card,
    )
    from tfcmvp.retrieval.labels import read_label_table

    if arguments.output_files_problem(logger, ("--output", args.output), ("--png", args.png)):
        return 2
    if arguments.label_flags_problem(args, logger):
        return 2
    if args.seeds < 1:
        logger.error("--seeds must be at least 1, got %d", args.seeds)
        return 2
    finetune_dir = args.finetune_dir
    if args.finetune_config is not None and finetune_dir is None:
        output = pathlib.Path(args.output)
        finetune_dir = output.with_name(output.stem + "_finetune")
    try:
        models = parse_models(args.models)
        labels = (
            read_label_table(args.labels, args.label_column) if args.labels is not None else None
        )
        settings = ReportSettings(
            seeds=range(args.seeds),
            labels=labels,
            clips=args.clips,
            finetune_config=args.finetune_config,
            finetune_overrides=args.finetune_override,
            finetune_dir=finetune_dir,
            cache_dir=args.cache_dir,
            use_cache=not args.no_cache,
        )
        card = report_card(
            models,
            args.data,
            settings,
            output=args.output,
            png=args.png,
        )
    except TfcmvpError as error:  # MissingDependencyError: no scikit-learn
        return common.report_error(logger, error)
    print(format_report(card))
    print(f"results: {args.output}" + (f", figure: {args.png}" if args.png else ""))
    return 0

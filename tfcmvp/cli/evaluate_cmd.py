"""``tfcmvp evaluate``: kNN and linear-probe accuracy of an export
(see :mod:`tfcmvp.evaluation.run`)."""

from __future__ import annotations

import logging

from tfcmvp.cli import arguments, common
from tfcmvp.cli.arguments import DEFAULT_BATCH_SIZE  # noqa: F401 (a test reads it here)
from tfcmvp.errors import TfcmvpError

# NumPy only (no TensorFlow): the defaults are the library's own.
from tfcmvp.evaluation.knn import DEFAULT_KS, DEFAULT_TEMPERATURE
from tfcmvp.evaluation.linear_probe import DEFAULT_C_GRID, DEFAULT_FOLDS, INSTALL_HINT

logger = logging.getLogger(__name__)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="kNN and linear-probe top-1 / top-5 of an exported network's frozen features",
        description=(
            "Classifies the test videos (DATA/test-*) from the train videos (DATA/train-*) by "
            "the export's frozen video features: the mean of the `embed` signature over "
            "--clips clips with evenly spaced centres, L2-normalised (retrieval's features, "
            "from the same cache). --knn: weighted k-nearest neighbours (cosine similarity, "
            "votes exp(similarity / T), the InstDisc recipe) for each --k. --linear: "
            "multinomial logistic regression (scikit-learn, the `eval` extra), its C chosen by "
            "stratified --folds validation on the train split only, then refitted on all of it. "
            "Neither flag: both. Prints top-1 and top-5 (percent) per method and writes them "
            "with every setting to --output."
        ),
    )
    arguments.add_model_argument(parser)
    arguments.add_data_argument(parser)
    parser.add_argument("--knn", action="store_true", help="weighted kNN")
    parser.add_argument(
        "--linear", action="store_true", help=f"linear probe (needs scikit-learn: {INSTALL_HINT})"
    )
    parser.add_argument("--output", help="JSON file for the results and settings")
    arguments.add_label_arguments(parser, verb="classify")
    _add_method_arguments(parser)
    parser.add_argument(
        "--clips",
        type=int,
        default=10,
        help="clips per video, averaged into its feature (default 10)",
    )
    arguments.add_cache_arguments(parser)
    arguments.add_batch_size_argument(parser)
    parser.set_defaults(run=run)


def _add_method_arguments(parser) -> None:
    """The kNN's and the linear probe's settings."""
    parser.add_argument(
        "--k",
        type=int,
        nargs="+",
        default=list(DEFAULT_KS),
        metavar="K",
        help=f"kNN neighbour counts, each capped at the number of train videos "
        f"(default {' '.join(map(str, DEFAULT_KS))})",
    )
    parser.add_argument(
        "--temperature",
        type=float,
        default=DEFAULT_TEMPERATURE,
        help=f"kNN vote temperature T (default {DEFAULT_TEMPERATURE})",
    )
    parser.add_argument(
        "--c_grid",
        type=float,
        nargs="+",
        default=list(DEFAULT_C_GRID),
        metavar="C",
        help="linear probe: candidate inverse regularisation strengths "
        "(default 10^-2 .. 10^4 in half decades); ties go to the smaller",
    )
    parser.add_argument(
        "--folds",
        type=int,
        default=DEFAULT_FOLDS,
        help=f"linear probe: stratified validation folds of the train split "
        f"(default {DEFAULT_FOLDS})",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the fold assignment, the only randomness (default 0)",
    )


def run(args) -> int:
    # Imported here: the feature extraction loads TensorFlow; --help should not wait for it.
    from tfcmvp.evaluation.run import (
        ProbeSettings,
        evaluate_export,
        format_settings,
        format_table,
    )
    from tfcmvp.retrieval.labels import read_label_table
    from tfcmvp.retrieval.report import model_source_line

    if arguments.output_files_problem(logger, ("--output", args.output)):
        return 2
    if arguments.label_flags_problem(args, logger):
        return 2
    knn, linear = (args.knn, args.linear) if (args.knn or args.linear) else (True, True)
    try:
        labels = (
            read_label_table(args.labels, args.label_column) if args.labels is not None else None
        )
        probe = ProbeSettings(
            knn=knn,
            linear=linear,
            ks=args.k,
            temperature=args.temperature,
            c_grid=args.c_grid,
            folds=args.folds,
            seed=args.seed,
        )
        record = evaluate_export(
            args.model,
            args.data,
            probe,
            clips=args.clips,
            labels=labels,
            cache_dir=args.cache_dir,
            use_cache=not args.no_cache,
            batch_size=args.batch_size,
            output=args.output,
        )
    except TfcmvpError as error:  # MissingDependencyError: no scikit-learn
        return common.report_error(logger, error)
    print(
        f"{record['name']} on {record['data']['dir']} ({record['data']['modality']}, "
        f"{record['features']['clips']} clips per video)"
    )
    print(format_table(record))
    print(format_settings(record))
    print(model_source_line(args.model))  # the run and epoch whose weights gave these numbers
    if args.output is not None:
        print(f"results: {args.output}")
    return 0

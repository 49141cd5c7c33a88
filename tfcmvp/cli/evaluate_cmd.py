"""``tfcmvp evaluate``: kNN and linear-probe accuracy of an export
(see :mod:`tfcmvp.evaluation.run`)."""

from __future__ import annotations

import logging

from tfcmvp.cli import common
from tfcmvp.errors import TfcmvpError

# NumPy only (no TensorFlow): the defaults are the library's own.
from tfcmvp.evaluation.knn import DEFAULT_KS, DEFAULT_TEMPERATURE
from tfcmvp.evaluation.linear_probe import DEFAULT_C_GRID, DEFAULT_FOLDS, INSTALL_HINT

logger = logging.getLogger(__name__)

# tfcmvp.retrieval.features.DEFAULT_BATCH_SIZE, spelled out so that building the
# parser imports no TensorFlow; a test keeps the two equal.
DEFAULT_BATCH_SIZE = 20


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
    parser.add_argument("--model", required=True, help="export folder written by `tfcmvp export`")
    parser.add_argument(
        "--data",
        required=True,
        help="output folder of the extraction job (test-* and train-* shards)",
    )
    parser.add_argument("--knn", action="store_true", help="weighted kNN")
    parser.add_argument(
        "--linear", action="store_true", help=f"linear probe (needs scikit-learn: {INSTALL_HINT})"
    )
    parser.add_argument("--output", help="JSON file for the results and settings")
    parser.add_argument(
        "--labels",
        metavar="CSV",
        help="classify by the labels of this CSV (columns: video, then one per "
        "label kind; `tfcmvp synth` writes DIR/labels.csv) instead of the "
        "records' class labels; needs --label_column",
    )
    parser.add_argument(
        "--label_column",
        metavar="KIND",
        help="the label kind (CSV column) to classify by, e.g. scene or motion",
    )
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
    parser.add_argument(
        "--clips",
        type=int,
        default=10,
        help="clips per video, averaged into its feature (default 10)",
    )
    parser.add_argument("--cache_dir", help="feature cache folder (default DATA/.tfcmvp_cache)")
    parser.add_argument(
        "--no_cache", action="store_true", help="neither read nor write cached features"
    )
    parser.add_argument(
        "--batch_size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        help=f"at most this many clips per call of the model (default "
        f"{DEFAULT_BATCH_SIZE}); lower it if memory runs out",
    )
    parser.set_defaults(run=run)


def run(args) -> int:
    # Imported here: the feature extraction loads TensorFlow; --help should not wait for it.
    from tfcmvp.evaluation.run import evaluate_export, format_settings, format_table
    from tfcmvp.retrieval.labels import read_label_table
    from tfcmvp.retrieval.report import model_source_line

    problem = args.output is not None and common.output_file_problem(
        "--output", args.output, creates_parents=True
    )
    if problem:  # before any work: a bad path found after the features would waste the run
        logger.error("%s", problem)
        return 2
    if (args.labels is None) != (args.label_column is None):
        logger.error(
            "--labels and --label_column go together (got only %s)",
            "--labels" if args.label_column is None else "--label_column",
        )
        return 2
    knn, linear = (args.knn, args.linear) if (args.knn or args.linear) else (True, True)
    try:
        labels = (
            read_label_table(args.labels, args.label_column) if args.labels is not None else None
        )
        record = evaluate_export(
            args.model,
            args.data,
            knn=knn,
            linear=linear,
            ks=args.k,
            temperature=args.temperature,
            c_grid=args.c_grid,
            folds=args.folds,
            seed=args.seed,
            clips=args.clips,
            labels=labels,
            cache_dir=args.cache_dir,
            use_cache=not args.no_cache,
            batch_size=args.batch_size,
            output=args.output,
        )
    except TfcmvpError as error:  # MissingDependencyError: no scikit-learn
        logger.error("%s", error)
        logger.debug("traceback of the error above", exc_info=True)
        return 2
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

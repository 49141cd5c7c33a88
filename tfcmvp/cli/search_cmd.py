"""``tfcmvp search``: the indexed videos nearest to a query video (see :mod:`tfcmvp.search`)."""

from __future__ import annotations

import logging

from tfcmvp.errors import TfcmvpError

logger = logging.getLogger(__name__)

# tfcmvp.search.query.BY_CHOICES spelled out: the parser imports no TensorFlow.
# "context" is the first name of "iframe" (the I-frame network's embedding).
BY_CHOICES = ("video", "iframe", "motion", "context")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "search",
        help="the videos of an index nearest to a query video, by motion, I-frame or video",
        description=(
            "Embeds QUERY_VIDEO with the export the index holds for the chosen network "
            "(--by motion: motion network, iframe or context: I-frame network, video: video "
            "network) and prints the "
            "nearest indexed videos by cosine similarity (rank, score, path). A query that is "
            "itself indexed is left out of its own results. Exit status: 0 done; 2 bad "
            "arguments, index or query."
        ),
    )
    parser.add_argument("query", metavar="QUERY_VIDEO", help="the video to search with")
    parser.add_argument("--index", required=True, help="index folder written by tfcmvp index")
    parser.add_argument(
        "--by",
        required=True,
        help=(
            "motion (same motion, any scene), iframe (the I-frame network's embedding: same "
            "scene, any motion; also called context) or video"
        ),
    )
    parser.add_argument("--top", type=int, default=10, help="results to show (default 10)")
    parser.add_argument(
        "--png", metavar="FILE", help="also draw the query and its results (thumbnails)"
    )
    parser.set_defaults(run=run)


def run(args) -> int:
    from tfcmvp.cli.common import output_file_problem

    if args.by not in BY_CHOICES:  # checked here, not by argparse: one line, exit 2
        logger.error("--by %r: expected one of %s", args.by, ", ".join(BY_CHOICES))
        return 2
    problem = args.png and output_file_problem("--png", args.png, creates_parents=True)
    if problem:
        logger.error("%s", problem)
        return 2
    from tfcmvp.search.query import format_results, search_index

    try:
        result = search_index(args.query, args.index, args.by, args.top)
    except TfcmvpError as error:  # NotAnIndexError, a missing query or export
        logger.error("%s", error)
        logger.debug("traceback of the error above", exc_info=True)
        return 2
    print(format_results(result))
    if args.png:
        from tfcmvp.search.figure import plot_search, query_pictures

        pictures = query_pictures(result.query, with_motion=args.by == "motion")
        plot_search(args.png, result, pictures)
        print(f"picture: {args.png}")
    return 0

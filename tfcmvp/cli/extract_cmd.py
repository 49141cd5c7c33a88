"""``tfcmvp extract``: the Beam extraction job (same flags as ``python -m beam_jobs.extract``)."""

from __future__ import annotations


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "extract",
        add_help=False,  # --help goes to the job, which knows its flags
        help="videos -> TFRecord shards of RGB frames, I-frames and motion vectors (Apache Beam)",
        description="Runs beam_jobs.extract; every flag (the job's and Beam's) is passed on, "
        "any other is an error. `tfcmvp extract --help` lists them.",
    )
    parser.set_defaults(run=run, pass_through=True)


def run(args) -> int:
    from beam_jobs import extract  # deferred: imports Apache Beam

    return extract.main(args.extra_args)

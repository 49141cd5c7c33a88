"""``tfcmvp quickstart``: the whole chain on the embedded synthetic data."""

from __future__ import annotations

import pathlib

from tfcmvp import quickstart


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "quickstart",
        help="synthetic data -> Beam extraction -> pretraining -> export -> retrieval + finetune",
        description=(
            "Runs the main job end to end on the embedded synthetic data set and prints "
            "retrieval R@k and finetuning top-1 for the pretrained model and for random "
            "init. Stages whose output already exists in --workdir are skipped."))
    parser.add_argument("--workdir", required=True, type=pathlib.Path,
                        help="folder for every artifact of the run")
    parser.add_argument("--seed", type=int, default=0, help="data and training seed (default 0)")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes (4 videos per class, 1 short epoch): a check of the "
                             "chain in a few minutes, not a result")
    parser.set_defaults(run=run)


def run(args) -> int:
    settings = (quickstart.QuickstartSettings.smoke() if args.smoke
                else quickstart.QuickstartSettings())
    settings.seed = args.seed
    results = quickstart.Quickstart(args.workdir, settings).run()
    print()
    print(quickstart.format_results(results))
    return 0

"""``tfcmvp quickstart``: the whole chain on the embedded synthetic data."""

from __future__ import annotations

import logging
import pathlib

from tfcmvp import quickstart

logger = logging.getLogger(__name__)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "quickstart",
        help="synthetic data -> Beam extraction -> pretraining ablation -> export -> "
        "retrieval + finetune",
        description=(
            "Runs the main job end to end on the embedded synthetic data set (videos with a "
            "motion and a scene label): pretrains the context-only, motion-only and joint "
            "objectives over --seeds seeds, exports each and random-init twins, and prints "
            "retrieval R@1 by motion and by scene (the paper's Table 4 ablation) and a short "
            "finetune of the joint model against random init. Stages whose output already "
            "exists in --workdir are skipped; a --workdir made with other settings is "
            "refused."
        ),
    )
    parser.add_argument(
        "--workdir", required=True, type=pathlib.Path, help="folder for every artifact of the run"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="data seed and first training seed (default 0)"
    )
    parser.add_argument(
        "--seeds",
        type=int,
        default=None,
        help="pretraining runs per objective (default 3; 1 with --smoke)",
    )
    parser.add_argument(
        "--variant",
        default="standard",
        choices=("standard", "heldout"),
        help="synthetic generator variant (default standard; heldout: other "
        "scenes, sizes, speeds and colours, never tuned on)",
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--smoke",
        action="store_true",
        help="tiny sizes (4 videos per class, 1 short epoch, one seed): a "
        "check of the chain in a few minutes, not a result",
    )
    size.add_argument(
        "--long",
        action="store_true",
        help="the ablation with configs/pretrain_tiny_cpu_long.yaml (84 epochs in grey) "
        "on 48 videos per class: about an hour on 2 CPU cores; the step count at which "
        "the joint model is ahead of random init by scene as well as by motion",
    )
    parser.set_defaults(run=run)


def run(args) -> int:
    if args.smoke:
        settings = quickstart.QuickstartSettings.smoke()
    elif args.long:
        settings = quickstart.QuickstartSettings.long()
    else:
        settings = quickstart.QuickstartSettings()
    settings.seed = args.seed
    settings.variant = args.variant
    if args.seeds is not None:
        settings.num_seeds = args.seeds
    try:
        results = quickstart.Quickstart(args.workdir, settings).run()
    except quickstart.QuickstartError as error:
        logger.error("%s", error)
        return 2
    print()
    print(quickstart.format_results(results))
    return 0

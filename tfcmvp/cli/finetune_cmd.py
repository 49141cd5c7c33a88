"""``tfcmvp finetune``: supervised finetuning and test (see :mod:`tfcmvp.finetuning.finetune`)."""

from __future__ import annotations

import logging

from tfcmvp.cli import common
from tfcmvp.errors import TfcmvpError

logger = logging.getLogger(__name__)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "finetune",
        help="finetune a pretrained video network (or a random one) for action recognition",
        description=(
            "Train a classifier (video network, global pool, dropout, Dense) on the training "
            "shards, "
            "test it with 10 clips per test video (softmax averaged; top-1 and top-5) and "
            "export it as a SavedModel with a classify signature. WORKDIR receives config.yaml, "
            "checkpoints/, history.csv, history.png, results.json, test_predictions.csv and "
            "saved_model/; running the same command again resumes from the newest checkpoint."
        ),
    )
    common.add_list_keys_argument(parser)
    start = parser.add_mutually_exclusive_group()
    start.add_argument(
        "--model",
        default=None,
        help="a tfcmvp export of a pretrained video network (tfcmvp export): its "
        "weights and architecture initialise the classifier's video network",
    )
    start.add_argument(
        "--random_init",
        action="store_true",
        help="start from random weights, architecture from the config (the 'scratch' baseline)",
    )
    common.add_config_argument(
        parser, "YAML config (configs/finetune_*.yaml); default: the paper's UCF101 settings"
    )
    common.add_data_and_workdir_arguments(
        parser, "output folder of the extraction job (train-/test-*.tfrecord.gz, labels.txt)"
    )
    common.add_set_argument(
        parser,
        "override a config field, value parsed as YAML, e.g. "
        "--set train.epochs=3 --set train.motion_aux_weight=0.2 "
        "(repeatable)",
    )
    common.add_allow_data_change_argument(parser)
    common.add_verbose_argument(parser)
    parser.set_defaults(run=run)


def run(args) -> int:
    if not args.list_keys:  # usage errors first: the imports below load TensorFlow
        common.check_required(args)
        if args.model is None and not args.random_init:
            args._parser.error("one of the arguments --model --random_init is required")
        problem = common.folder_problem("--workdir", args.workdir)
        if problem:
            logger.error("%s", problem)
            return 2
    from tfcmvp.config import field_docs
    from tfcmvp.finetuning.config import FinetuneConfig, load_finetune_config

    try:
        config = load_finetune_config(args.config, args.overrides, model_dir=args.model)
    except TfcmvpError as error:  # ConfigError, ExportError
        logger.error("%s", error)
        return 2
    if args.list_keys:  # with --model: the architecture as taken from the export
        common.print_config_keys(config, field_docs(FinetuneConfig))
        return 0
    from tfcmvp.finetuning.finetune import finetune

    result, status = common.run_training(
        logger,
        finetune,
        config,
        args.data,
        args.workdir,
        model_dir=args.model,
        random_init=args.random_init,
        verbose=common.keras_verbose(args),
        allow_data_change=args.allow_data_change,
    )
    if status:
        return status
    logger.info(
        "done: %d epochs in %s; test top-1 %.2f%%, top-5 %.2f%%; SavedModel in %s",
        result.results["epochs"],
        result.workdir,
        result.results["top1"],
        result.results["top5"],
        result.saved_model,
    )
    return 0

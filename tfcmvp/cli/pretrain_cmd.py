"""``tfcmvp pretrain``: self-supervised pretraining (see :mod:`tfcmvp.training.pretrain`)."""

from __future__ import annotations

import logging

from tfcmvp.cli import common
from tfcmvp.config import ConfigError, field_docs, load_config

logger = logging.getLogger(__name__)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "pretrain",
        help="pretrain the video, I-frame and motion networks on extracted TFRecords",
        description=(
            "Pretrain with context matching (clip vs I-frame) and motion prediction (future "
            "motion vectors). WORKDIR receives config.yaml, checkpoints/, history.csv, "
            "history.png, tensorboard/ and weights/; running the same command again resumes "
            "from the newest checkpoint."
        ),
    )
    common.add_config_argument(
        parser, "YAML config (configs/pretrain_*.yaml); default: the paper's UCF101 C3D settings"
    )
    common.add_list_keys_argument(parser)
    common.add_data_and_workdir_arguments(
        parser, "output folder of the extraction job (train-*.tfrecord.gz, manifest.json)"
    )
    common.add_set_argument(
        parser,
        "override a config field, value parsed as YAML, e.g. "
        "--set train.epochs=3 --set model.predictor=convgru "
        "(repeatable)",
    )
    common.add_allow_data_change_argument(parser)
    common.add_verbose_argument(parser)
    parser.set_defaults(run=run)


def run(args) -> int:
    if not args.list_keys:
        common.check_required(args)
        problem = common.folder_problem("--workdir", args.workdir)
        if problem:
            logger.error("%s", problem)
            return 2
    try:
        config = load_config(args.config, args.overrides)
    except ConfigError as error:
        logger.error("%s", error)
        return 2
    if args.list_keys:
        common.print_config_keys(config, field_docs())
        return 0
    # Imported here: TensorFlow takes seconds to load, --list_keys and
    # config errors should not wait for it.
    from tfcmvp.training.pretrain import pretrain

    result, status = common.run_training(
        logger,
        pretrain,
        config,
        args.data,
        args.workdir,
        verbose=common.keras_verbose(args),
        allow_data_change=args.allow_data_change,
    )
    if status:
        return status
    last = result.history[-1] if result.history else {}
    logger.info(
        "done: %d epochs in %s; last epoch loss %s, context_acc %s, motion_acc %s",
        len(result.history),
        result.workdir,
        last.get("loss"),
        last.get("context_acc"),
        last.get("motion_acc"),
    )
    return 0

"""``tfcmvp pretrain``: self-supervised pretraining (see :mod:`tfcmvp.training.pretrain`)."""

from __future__ import annotations

import logging

from tfcmvp.config import ConfigError, field_docs, load_config

logger = logging.getLogger(__name__)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "pretrain",
        help="pretrain the V-, I- and M-Networks on extracted TFRecords",
        description=(
            "Pretrain with context matching (clip vs I-frame) and motion prediction (future "
            "motion vectors). WORKDIR receives config.yaml, checkpoints/, history.csv, "
            "history.png, tensorboard/ and weights/; running the same command again resumes "
            "from the newest checkpoint."))
    parser.add_argument("--config", default=None,
                        help="YAML config (configs/pretrain_*.yaml); default: the paper's "
                             "UCF101 C3D settings")
    parser.add_argument("--data", required=True,
                        help="output folder of the extraction job (train-*.tfrecord.gz, "
                             "manifest.json)")
    parser.add_argument("--workdir", required=True, help="run folder (created; resumed if it "
                                                         "holds a checkpoint)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE",
                        help="override a config field, value parsed as YAML, e.g. "
                             "--set train.epochs=3 --set model.predictor=convgru (repeatable)")
    parser.add_argument("--list_keys", action="store_true",
                        help="print every config key with its documentation and exit")
    parser.add_argument("--verbose", type=int, choices=(0, 1, 2), default=None,
                        help="Keras progress: 0 silent, 1 progress bar, 2 a line per epoch "
                             "(default: 1 on a terminal, else 2)")
    parser.set_defaults(run=run)


def run(args) -> int:
    if args.list_keys:
        for key, doc in field_docs().items():
            print(f"{key}: {doc}")
        return 0
    try:
        config = load_config(args.config, args.overrides)
    except ConfigError as error:
        logger.error("%s", error)
        return 2
    # Imported here: TensorFlow takes seconds to load, --list_keys and
    # config errors should not wait for it.
    from tfcmvp.training.callbacks import NonFiniteLossError
    from tfcmvp.training.pretrain import pretrain

    try:
        result = pretrain(config, args.data, args.workdir,
                          verbose="auto" if args.verbose is None else args.verbose)
    except NonFiniteLossError as error:
        logger.error("%s", error)
        return 1
    except (FileNotFoundError, ValueError) as error:
        logger.error("%s", error)
        logger.debug("traceback of the error above", exc_info=True)
        return 2
    last = result.history[-1] if result.history else {}
    logger.info("done: %d epochs in %s; last epoch loss %s, context_acc %s, motion_acc %s",
                len(result.history), result.workdir, last.get("loss"), last.get("context_acc"),
                last.get("motion_acc"))
    return 0

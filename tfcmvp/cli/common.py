"""Flags and error handling shared by the subcommands that load a config and train.

No TensorFlow import here: ``--help``, ``--list_keys`` and config errors
should not wait for it.
"""

from __future__ import annotations

import logging

VERBOSE_CHOICES = (0, 1, 2)  # Keras progress levels


def add_config_argument(parser, help: str) -> None:  # noqa: A002 (argparse's own name)
    """``--config FILE`` (default None: the paper's settings)."""
    parser.add_argument("--config", default=None, help=help)


def add_set_argument(parser, help: str) -> None:  # noqa: A002
    """``--set KEY=VALUE`` (repeatable), collected in ``args.overrides``."""
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help=help)


def add_verbose_argument(parser) -> None:
    """``--verbose {0,1,2}``; read it back with :func:`keras_verbose`."""
    parser.add_argument("--verbose", type=int, choices=VERBOSE_CHOICES, default=None,
                        help="Keras progress: 0 silent, 1 progress bar, 2 a line per epoch "
                             "(default: 1 on a terminal, else 2)")


def keras_verbose(args):
    """The ``verbose`` argument of ``model.fit`` for ``--verbose`` ("auto" when not given)."""
    return "auto" if args.verbose is None else args.verbose


def run_training(logger: logging.Logger, train, *args, **kwargs):
    """``(train(*args, **kwargs), 0)``, or ``(None, exit status)`` after logging the error.

    Status 1: the loss became NaN/Inf (NonFiniteLossError); status 2: missing
    files or bad values (FileNotFoundError, ValueError), with the traceback
    at debug level.
    """
    from tfcmvp.training.callbacks import NonFiniteLossError

    try:
        return train(*args, **kwargs), 0
    except NonFiniteLossError as error:
        logger.error("%s", error)
        return None, 1
    except (FileNotFoundError, ValueError) as error:
        logger.error("%s", error)
        logger.debug("traceback of the error above", exc_info=True)
        return None, 2

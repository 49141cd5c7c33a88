"""Unknown-flag checks for the Beam jobs: every flag must be the job's own or a Beam option.

Beam drops a flag it does not know with a warning ("Discarding unparseable
args"), so a typo such as ``--num_shard 4`` would run the job with the
default. :func:`check_flags` walks the command line the way argparse would
and reports every flag that is in neither set, each with the closest known
one (``difflib``), and any stray word that is no flag's value.

Each job passes the flags it knows (:func:`parser_flags` of its own parser
plus :func:`beam_flags`; the extraction job's flags are a registered
``PipelineOptions`` class, so :func:`beam_flags` holds them) and its command
for the message.
"""

from __future__ import annotations

import argparse
import difflib
from typing import Dict, Iterable, List, Sequence, Type

from apache_beam.options.pipeline_options import PipelineOptions

from tfcmvp.errors import JobError

# 0.8: typos and -/_ slips match ("--num_shard" -> "--num_shards": 0.95), while an
# unrelated word gets no far-fetched suggestion (difflib's default is 0.6).
SUGGESTION_CUTOFF = 0.8


class UnknownFlagError(JobError, ValueError):
    """A flag that neither the job nor any Apache Beam pipeline option defines."""


class _OptionsParser(argparse.ArgumentParser):
    """Collects flags only; Beam's option classes also call ``add_value_provider_argument``."""

    def add_value_provider_argument(self, *args, **kwargs):
        kwargs.pop("type", None)
        return self.add_argument(*args, **kwargs)


def parser_flags(parser: argparse.ArgumentParser) -> Dict[str, argparse.Action]:
    """Every option string of ``parser`` -> its action."""
    return {flag: action for action in parser._actions for flag in action.option_strings}


def beam_flags(exclude: Iterable[Type[PipelineOptions]] = ()) -> Dict[str, argparse.Action]:
    """Every flag of the ``PipelineOptions`` classes defined so far, but ``exclude``'s.

    Gathered the way Beam builds its own parser (one class per name), so
    "known" means exactly what Beam would parse. ``exclude`` drops another
    job's options class: importing ``beam_jobs.extract_options`` registers
    ``ExtractOptions`` with Beam, whose ``--reencode`` means nothing to the
    embedding job and must not pass as a Beam flag there.
    """
    excluded = {str(cls) for cls in exclude}
    parser = _OptionsParser(allow_abbrev=False, add_help=False, conflict_handler="resolve")
    classes = {}
    for cls in PipelineOptions.__subclasses__():
        if str(cls) not in excluded:
            classes.setdefault(str(cls), cls)
    for cls in classes.values():
        cls._add_argparse_args(parser)  # pylint: disable=protected-access
    return parser_flags(parser)


def check_flags(argv: Sequence[str], known: Dict[str, argparse.Action], prog: str) -> None:
    """Raises :class:`UnknownFlagError` naming every flag of ``argv`` not in ``known``.

    Positional words are taken as values of the flag before them as far as
    its ``nargs`` allows; any other word is reported as unexpected. ``prog``
    is the job's command, named in the message (``PROG --help``).
    """
    unknown: List[str] = []
    position = 0
    while position < len(argv):
        token = argv[position]
        position += 1
        if token == "--":
            break
        if not token.startswith("-"):
            unknown.append(f"unexpected argument {token!r}")
            continue
        name, has_value = token.split("=", 1)[0], "=" in token
        action = known.get(name)
        if action is None:
            guess = difflib.get_close_matches(name, known, n=1, cutoff=SUGGESTION_CUTOFF)
            hint = f" (did you mean {guess[0]}?)" if guess else ""
            unknown.append(f"unknown flag {name}{hint}")
            # Its value, if any, is not a stray word of its own.
            if not has_value and position < len(argv) and not argv[position].startswith("-"):
                position += 1
            continue
        if has_value or action.nargs == 0:
            continue
        if action.nargs in ("*", "+"):
            while position < len(argv) and not argv[position].startswith("-"):
                position += 1
        elif action.nargs == "?":
            if position < len(argv) and not argv[position].startswith("-"):
                position += 1
        else:
            position += action.nargs if isinstance(action.nargs, int) else 1
    if unknown:
        raise UnknownFlagError(
            "; ".join(unknown) + f". `{prog} --help` lists this job's flags; any other flag "
            f"must be an Apache Beam pipeline option"
        )

"""Checking a stream's picture types against a fixed GOP: :func:`check_gop`.

The CoViAR-style structure is an I-frame every ``gop`` frames (0, gop,
2*gop, ...) and P-frames in between, with no B-frames. :func:`check_gop`
reports how a decoded ``frame_types`` string departs from it.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import List

from tfcmvp.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class GopReport:
    """Result of :func:`check_gop`.

    Attributes:
      pattern: the picture types, one letter per frame ("IPPP...").
      gop: the expected I-frame spacing.
      summary: run-length form, one GOP per "|"-separated group, e.g.
        "I P×11 | I P×11 | I P×3".
      deviations: human-readable departures from the expected structure
        (B-frames present, I-frames off the grid, missing I-frames); empty
        when the stream follows it exactly.
    """

    pattern: str
    gop: int
    summary: str
    deviations: List[str]

    @property
    def ok(self) -> bool:
        """True when there are no deviations."""
        return not self.deviations


def run_length(frame_types: str) -> str:
    """Run-length summary, starting a new "|" group at each I-frame.

    >>> run_length("IPPPIPPBB")
    'I P×3 | I P×2 B×2'
    """
    groups = []
    current: List[str] = []
    for letter, run in itertools.groupby(frame_types):
        count = len(list(run))
        if letter == "I":
            for _ in range(count):
                if current:
                    groups.append(" ".join(current))
                current = ["I"]
            continue
        current.append(letter if count == 1 else f"{letter}×{count}")
    if current:
        groups.append(" ".join(current))
    return " | ".join(groups)


def _index_list(indices: List[int], limit: int = 10) -> str:
    shown = ", ".join(str(i) for i in indices[:limit])
    return shown + (f", ... ({len(indices)} in all)" if len(indices) > limit else "")


def check_gop(frame_types: str, gop: int = 12) -> GopReport:
    """Compares picture types with "an I-frame every ``gop`` frames, P between".

    Args:
      frame_types: one letter "I", "P" or "B" per frame in display order.
      gop: expected distance between I-frames.

    Returns:
      A :class:`GopReport`; ``report.ok`` is True when the stream matches.
    """
    if int(gop) < 1:
        raise ConfigError(f"gop must be >= 1, got {gop!r}")
    unknown = sorted(set(frame_types) - set("IPB"))
    if unknown:
        raise ValueError(f"frame_types may hold only I, P, B; found {unknown}")
    deviations = []
    if not frame_types:
        deviations.append("no frames")
    b_frames = [i for i, t in enumerate(frame_types) if t == "B"]
    if b_frames:
        deviations.append(f"{len(b_frames)} B-frames present at {_index_list(b_frames)}")
    off_grid = [i for i, t in enumerate(frame_types) if t == "I" and i % gop]
    if off_grid:
        deviations.append(f"I-frames off the {gop}-frame grid at {_index_list(off_grid)}")
    missing = [i for i in range(0, len(frame_types), gop) if frame_types[i] != "I"]
    if missing:
        deviations.append(f"missing I-frames at {_index_list(missing)}")
    return GopReport(
        pattern=frame_types, gop=int(gop), summary=run_length(frame_types), deviations=deviations
    )

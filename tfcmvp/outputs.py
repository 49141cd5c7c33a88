"""Replacing a command's previous output, and nothing else.

``--overwrite`` replaces what the same command wrote before; a folder that
holds anything else, or that holds the input being read, is refused with the
reason. The new output is written beside the old one under a hidden
temporary name and swapped in at the end with a rename, so a run that is
killed (or fails) part-way leaves the old output whole.

On Linux the swap is one ``renameat2(RENAME_EXCHANGE)`` call: at every moment
the path holds either the old or the new folder. Elsewhere (or on a file
system without it) two renames: a kill between them, microseconds apart,
leaves the old folder under the temporary name beside it.

No TensorFlow here: ``synth`` uses it too.
"""

from __future__ import annotations

import atexit
import ctypes
import errno
import logging
import os
import pathlib
import re
import shutil
import tempfile
from typing import Iterable, Optional, Sequence

from tfcmvp.errors import RunError, RunRefusedError

logger = logging.getLogger(__name__)

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
# renameat2 missing, or the file system cannot exchange: fall back to two renames.
_NO_EXCHANGE = {errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP}


class OverwriteRefused(RunError, FileExistsError):
    """An output path holds something that ``--overwrite`` must not replace; the
    message says what and why."""


def _renameat2():
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    function.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint,
    ]
    function.restype = ctypes.c_int
    return function


def exchange(first, second) -> bool:
    """Atomically swaps two existing paths (Linux ``renameat2(RENAME_EXCHANGE)``).

    Returns False when the system or file system cannot (nothing changed);
    raises OSError for any other failure.
    """
    function = _renameat2()
    if function is None:
        return False
    if (
        function(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE)
        == 0
    ):
        return True
    code = ctypes.get_errno()
    if code in _NO_EXCHANGE:
        return False
    raise OSError(code, os.strerror(code), str(second))


def _remove(path: pathlib.Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def swap_in(staged, target) -> None:
    """Moves `staged` to `target`, replacing whatever is there (already checked to be
    ours); the old content is deleted only once the new one is in place."""
    staged, target = pathlib.Path(staged), pathlib.Path(target)
    if not os.path.lexists(target):
        os.replace(staged, target)
        return
    if exchange(staged, target):
        _remove(staged)  # now the old content
        return
    old = staged.with_name(staged.name + ".old")
    os.replace(target, old)
    os.replace(staged, target)
    _remove(old)


def make_staging_dir(parent, prefix: str) -> pathlib.Path:
    """A new hidden folder ``<prefix>XXXX.tmp`` in `parent` (created) to write an output
    before it is swapped in: same file system, so the swap is a rename.

    Folders of that pattern left by killed runs of the same output are
    removed first (with a warning naming them).
    """
    parent = pathlib.Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    for leftover in parent.iterdir():
        if leftover.name.startswith(prefix) and (
            leftover.name.endswith(".tmp") or leftover.name.endswith(".tmp.old")
        ):
            logger.warning("removing %s, left by an interrupted run", leftover)
            _remove(leftover)
    staging = pathlib.Path(tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=parent))
    # A run that fails part-way leaves nothing behind once the process ends (a
    # killed one: the next run removes it, above).
    atexit.register(shutil.rmtree, staging, ignore_errors=True)
    return staging


def _is_within(path: pathlib.Path, folder: pathlib.Path) -> bool:
    return path == folder or folder in path.parents


def check_not_input(output, inputs: Iterable, flag: str = "--output") -> None:
    """Refuses an output path that is one of `inputs` or a parent of one: replacing
    it would delete what is being read.

    Raises OverwriteRefused naming both paths.
    """
    resolved = pathlib.Path(output).resolve()
    for item in inputs:
        source = pathlib.Path(item).resolve()
        if _is_within(source, resolved):
            what = "is" if source == resolved else "holds"
            raise OverwriteRefused(
                f"{flag} {output} {what} {item}, which this command reads: writing there "
                f"would delete it; choose another {flag}"
            )


def _foreign(names: Iterable[str], allowed, patterns: Sequence[str] = ()) -> list:
    return sorted(
        name
        for name in names
        if name not in allowed and not any(re.fullmatch(p, name) for p in patterns)
    )


def _shown(names: Sequence[str], limit: int = 3) -> str:
    return ", ".join(names[:limit]) + (
        f" and {len(names) - limit} more" if len(names) > limit else ""
    )


# ---------------------------------------------------------------------------
# Exports (tfcmvp export, the finetuned classifier's saved_model/)
# ---------------------------------------------------------------------------

EXPORT_ENTRIES = ("saved_model.pb", "variables", "assets", "fingerprint.pb", "assets.extra")
EXPORT_ASSETS = ("tfcmvp_export.json", "config.yaml", "network.weights.h5")
EXPORT_VARIABLES = (r"variables\.index", r"variables\.data-\d+-of-\d+")


def export_problem(folder) -> Optional[str]:
    """Why `folder` is not a previous tfcmvp export, or None when it is one.

    An export holds ``saved_model.pb`` and ``assets/tfcmvp_export.json`` and
    nothing but what ``tf.saved_model.save`` and ``tfcmvp export`` write.
    """
    folder = pathlib.Path(folder)
    if folder.is_symlink():
        return "it is a symbolic link"
    if not folder.is_dir():
        return "it is a file, not a folder"
    if not (folder / "saved_model.pb").is_file():
        return "it holds no saved_model.pb, so it is not an export"
    if not (folder / "assets" / "tfcmvp_export.json").is_file():
        return "it holds no assets/tfcmvp_export.json, so `tfcmvp export` did not write it"
    foreign = _foreign((p.name for p in folder.iterdir()), EXPORT_ENTRIES)
    foreign += [
        "assets/" + name
        for name in _foreign((p.name for p in (folder / "assets").iterdir()), EXPORT_ASSETS)
    ]
    if (folder / "variables").is_dir():
        foreign += [
            "variables/" + name
            for name in _foreign(
                (p.name for p in (folder / "variables").iterdir()), (), EXPORT_VARIABLES
            )
        ]
    if foreign:
        return f"besides an export it holds {_shown(foreign)}"
    return None


def check_export_output(output_dir, *, overwrite: bool, inputs: Iterable = ()) -> None:
    """Refuses an export folder that writing there would damage.

    Allowed: a path that does not exist, an empty folder, and with
    `overwrite` a previous export (:func:`export_problem`). Never: one of
    `inputs` (e.g. the workdir being exported) or a parent of one.

    Raises OverwriteRefused (a FileExistsError) with the reason.
    """
    check_not_input(output_dir, inputs)
    output = pathlib.Path(output_dir)
    if not os.path.lexists(output):
        return
    if output.is_dir() and not output.is_symlink() and not any(output.iterdir()):
        return
    if not overwrite:
        raise OverwriteRefused(
            f"export folder {output} already exists and is not empty "
            f"(pass overwrite=True, or --overwrite on the command line, to "
            f"replace a previous export)"
        )
    problem = export_problem(output)
    if problem:
        raise OverwriteRefused(
            f"refusing to overwrite {output}: {problem}. --overwrite replaces only a previous "
            f"export (saved_model.pb, variables/, assets/tfcmvp_export.json and nothing else); "
            f"choose another --output or move its content away"
        )


# ---------------------------------------------------------------------------
# Synthetic data sets (tfcmvp synth)
# ---------------------------------------------------------------------------

SYNTH_SPLIT_FILES = ("classInd.txt", "trainlist01.txt", "testlist01.txt")
SYNTH_LABELS_FILE = "labels.csv"
SYNTH_LABELS_HEADER = "video,split,motion,scene"
SYNTH_STAGING_PREFIX = ".synth-staging-"
SYNTH_ENTRIES = ("videos", "splits", SYNTH_LABELS_FILE)  # what synth writes into OUT


def _listed_videos(splits_dir: pathlib.Path) -> set:
    listed = set()
    for name in ("trainlist01.txt", "testlist01.txt"):
        path = splits_dir / name
        if path.is_file():
            listed.update(
                line.split()[0]
                for line in path.read_text(encoding="utf-8").splitlines()
                if line.strip()
            )
    return listed


def synth_problem(root) -> Optional[str]:
    """Why `root` holds something besides a previous ``tfcmvp synth`` data set in
    ``videos/``, ``splits/`` and ``labels.csv``, or None when it does not.

    Ours: the three split files in ``splits/``; in ``videos/`` the videos its
    split files list (and their class folders); ``labels.csv`` with synth's
    header. Anything else in them is not ours. Other entries of `root` are
    never touched and do not matter.
    """
    root = pathlib.Path(root)
    videos, splits, labels = (root / name for name in SYNTH_ENTRIES)
    for path in (videos, splits, labels):
        if path.is_symlink():
            return f"{path} is a symbolic link"
    if splits.exists():
        if not splits.is_dir():
            return f"{splits} is a file"
        foreign = _foreign((p.name for p in splits.iterdir()), SYNTH_SPLIT_FILES)
        if foreign:
            return f"{splits} also holds {_shown(foreign)}, which synth does not write"
    listed = _listed_videos(splits) if splits.is_dir() else set()
    if videos.exists():
        if not videos.is_dir():
            return f"{videos} is a file"
        foreign = sorted(
            str(p.relative_to(videos))
            for p in videos.rglob("*")
            if not p.is_dir() and str(p.relative_to(videos).as_posix()) not in listed
        )
        if foreign:
            reason = (
                "that no split file in splits/ lists"
                if listed
                else "and there is no splits/ listing synth's videos"
            )
            return f"{videos} holds {_shown(foreign)} {reason}"
    if labels.exists():
        first = (
            (labels.read_text(encoding="utf-8").splitlines() or [""])[0]
            if labels.is_file()
            else None
        )
        if first != SYNTH_LABELS_HEADER:
            return f"{labels} is not synth's (its first line is not {SYNTH_LABELS_HEADER!r})"
    return None


def _holds_something(path: pathlib.Path) -> bool:
    if path.is_dir() and not path.is_symlink():
        return any(path.iterdir())
    return os.path.lexists(path)


def begin_synth(root, overwrite: bool) -> pathlib.Path:
    """Checks `root` and returns a new staging folder in it to write the data set into.

    Without `overwrite`, a `root` that already holds a data set (a non-empty
    ``videos/`` or ``splits/``, or ``labels.csv``) is refused; with it, one
    holding anything synth did not write there (:func:`synth_problem`).
    Staging folders left by killed runs are removed (:func:`make_staging_dir`).

    Raises ValueError with the reason.
    """
    root = pathlib.Path(root)
    existing = [root / name for name in SYNTH_ENTRIES if _holds_something(root / name)]
    if existing and not overwrite:
        raise RunRefusedError(
            f"{existing[0]} is not empty: choose another folder or pass "
            f"overwrite=True (--overwrite)"
        )
    if existing:
        problem = synth_problem(root)
        if problem:
            raise RunRefusedError(
                f"refusing to overwrite the data set in {root}: {problem}. "
                f"--overwrite replaces only what synth wrote; move those files "
                f"away or choose another --out"
            )
    return make_staging_dir(root, SYNTH_STAGING_PREFIX)


def finish_synth(staging, root) -> None:
    """Swaps the data set written in `staging` into `root` (``videos/``, ``splits/``,
    ``labels.csv``), then removes `staging` with the previous data set in it.

    Each of the three is one rename; the split files go last, so until they
    are swapped the split files in `root` still describe the old set.
    """
    staging, root = pathlib.Path(staging), pathlib.Path(root)
    problem = synth_problem(root)  # files may have appeared while the set was written
    if problem:
        raise RunRefusedError(
            f"refusing to overwrite the data set in {root}: {problem}; the new "
            f"data set is left in {staging}"
        )
    for name in ("videos", SYNTH_LABELS_FILE, "splits"):
        swap_in(staging / name, root / name)
    shutil.rmtree(staging, ignore_errors=True)

"""The extraction job's inputs: the listing of videos and the checks made before it runs.

Every check here raises before anything is written: ``ValueError`` (or its
subclass :class:`InputError`) naming the flag and the path or entry at fault.
"""

from __future__ import annotations

import logging
import os

from beam_jobs import fileio
from beam_jobs.extract_options import ExtractConfig
from tfcmvp import manifest as manifest_lib
from tfcmvp import splits as splits_lib
from tfcmvp.errors import ConfigError, InvalidDataError, JobError
from tfcmvp.schema import IFRAME_SOURCE_REENCODE

LOG = logging.getLogger("beam_jobs.extract")


class InputError(JobError, ValueError):
    """An input folder or file named by a flag is missing; the message names flag and path."""


def load_split_set(config: ExtractConfig) -> splits_lib.SplitSet:
    """Reads the split files (or the CSV manifest) named by the options."""
    if config.manifest:
        if not fileio.exists(config.manifest):
            raise splits_lib.SplitFileError(config.manifest, "no such file")
        return splits_lib.parse_manifest_csv(fileio.read_text(config.manifest), config.manifest)
    paths = fileio.list_files(fileio.join(config.splits_dir, "*.txt"))
    if not paths:
        raise splits_lib.SplitFileError(config.splits_dir, "no .txt split files in this folder")
    return splits_lib.parse_split_files({p: fileio.read_text(p) for p in paths}, config.split)


def check_windows(config: ExtractConfig, split_set: splits_lib.SplitSet) -> None:
    """Raises ``ValueError`` when the listing has windows (``start,end`` columns) and
    ``--iframe_source reencode`` is set: that re-encode covers the whole file, so its
    I-frames would not line up with the window's frames."""
    windowed = [e for e in split_set.entries if e.start is not None]
    if windowed and config.iframe_source == IFRAME_SOURCE_REENCODE:
        raise ConfigError(
            f"{split_set.sources[0]}: {len(windowed)} entries have a start,end window (e.g. "
            f"{windowed[0].video_id!r}), which --iframe_source {IFRAME_SOURCE_REENCODE} does "
            f"not support; use the default --iframe_source, or trim the videos first"
        )


def check_videos_dir(config: ExtractConfig) -> None:
    """Raises :class:`InputError` naming ``--videos_dir`` when it is missing, not a folder,
    or (on object stores, which have no folders) holds no file at all."""
    path = config.videos_dir
    if fileio.is_local(path):
        if not os.path.exists(path):
            raise InputError(f"--videos_dir {path}: no such folder")
        if not os.path.isdir(path):
            raise InputError(f"--videos_dir {path}: not a folder")
    elif not fileio.any_file_under(path):
        raise InputError(f"--videos_dir {path}: no such folder (no file under it)")


def check_inputs(config: ExtractConfig) -> splits_lib.SplitSet:
    """The listing, after the checks made before anything runs (ValueError naming the cause)."""
    check_videos_dir(config)
    split_set = load_split_set(config)
    if not split_set.entries:
        raise InvalidDataError(f"the split files list no videos: {split_set.sources}")
    check_windows(config, split_set)
    refused = [
        (e.path, splits_lib.path_problem(e.path, config.allow_absolute_paths))
        for e in split_set.entries
    ]
    refused = [(path, problem) for path, problem in refused if problem]
    if refused:
        LOG.warning(
            "%d listed videos will not be opened and are listed in %s, e.g. %r %s",
            len(refused),
            manifest_lib.FAILED_NAME,
            *refused[0],
        )
    return split_set

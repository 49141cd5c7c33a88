"""The errors that mean "your input, settings or environment", one base per layer.

A command line (``tfcmvp ...``, ``python -m beam_jobs.extract``/``embed``)
turns a :class:`TfcmvpError` into one line on standard error and exit status
2 (the traceback at ``--log_level DEBUG``); any other exception is a bug and
keeps its traceback (exit status 1). So raise one of these only when the
message tells the user what to change (it names the file, flag or key and
the cause); an internal invariant or a wrong argument from our own code
stays a builtin ``ValueError`` / ``RuntimeError``.

Layer bases, and where they are raised::

    TfcmvpError
      ConfigError   config files, --set overrides, the values of command and
                    job flags                                    (config_io, cli,
                                                                 beam_jobs options)
      DataError     data folders, TFRecord shards, manifests, split and
                    annotation files, search indexes            (manifest, shard_check,
                                                                 splits, records, data,
                                                                 search, kinetics)
        DataNotFoundError  one of those is missing (also a FileNotFoundError;
                           not for a listed video: failed.jsonl names the builtin)
        InvalidDataError   one of those cannot be used (also a ValueError)
      VideoError    a video file the codec cannot read or write (codec, synth)
      ExportError   SavedModel exports: missing, not tfcmvp's, or not
                    rebuildable                                  (export, finetuning,
                                                                 embedding, retrieval)
      RunError      workdirs and output folders: busy, refused overwrite,
                    refused resume                               (workdir_lock, outputs,
                                                                 training, quickstart)
        RunNotFoundError   a --workdir or its checkpoint is missing (also a
                           FileNotFoundError)
        RunRefusedError    a resume or overwrite refused (also a ValueError)
      JobError      the Beam jobs and the embedding run: unknown flags, input
                    lists, --output_dir, a run whose videos failed
                                                                (beam_jobs, embedding)
      evaluation.linear_probe.MissingDependencyError  scikit-learn is not
                    installed (an environment problem, directly under the root)

A class that was a builtin before this hierarchy stays one too (``class
ManifestError(DataError, ValueError)``), so callers that catch the builtin
keep working. This module imports nothing of tfcmvp, so every layer can
import it.

Two exceptions are deliberately outside the hierarchy: ``NonFiniteLossError``
(training/callbacks.py; a diverged run, exit status 1 from the training
commands) and ``shard_check._Damage`` (internal, never leaves its module).
"""

from __future__ import annotations


class TfcmvpError(Exception):
    """A problem with the user's input, settings or environment, described in its message.

    The command lines print the message as one line and exit with status 2.
    """


class ConfigError(TfcmvpError, ValueError):
    """A config file, ``--set`` override or flag names an unknown key or has a bad value."""


class DataError(TfcmvpError):
    """Data on disk that a command reads is missing or malformed: a data folder, its
    shards or ``manifest.json``, a split or annotation file, a search index."""


class DataNotFoundError(DataError, FileNotFoundError):
    """A file or folder that a command reads as input does not exist: a data folder or
    its shards, a labels, annotation or video file."""


class InvalidDataError(DataError, ValueError):
    """A file or folder that a command reads holds something it cannot use: a malformed
    labels file, split layout, manifest or index table, or no usable video."""


class VideoError(TfcmvpError):
    """A video could not be turned into compressed-domain arrays (or written).

    ``stage`` says where it failed ("open", "decode", "vectors", "encode", ...)
    so that pipelines can report it without parsing the message.
    """

    def __init__(self, path, message: str, stage: str = "decode"):
        self.path = str(path)
        self.stage = stage
        super().__init__(f"{self.path}: {message}")


class ExportError(TfcmvpError, ValueError):
    """An export description is invalid, or an export cannot be read, written or rebuilt."""


class RunError(TfcmvpError):
    """A run folder (``--workdir``, an output file or folder) cannot be used as asked:
    another process holds it, it holds results that must not be overwritten, or it
    cannot be resumed with these settings."""


class RunNotFoundError(RunError, FileNotFoundError):
    """A run folder (``--workdir``), or the checkpoint or config a command reads from
    it, does not exist."""


class RunRefusedError(RunError, ValueError):
    """A run folder holds results this command must not continue or replace: a resume
    with other data, initialisation or settings, or a data set it did not write."""


class JobError(TfcmvpError):
    """A Beam job (``beam_jobs``) or the embedding run was given an unknown flag, a bad
    input list or an ``--output_dir`` it may not replace, or finished with too many
    failed videos (then the output was written and the exit status is 1)."""

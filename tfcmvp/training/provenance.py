"""What made a run's WORKDIR, checked before the run is resumed.

A pretraining or finetuning WORKDIR is resumed by starting the same command
again. Resuming it with other data, another starting model or another config
would continue the run as something else while its history, checkpoints and
exports still name one run; so :func:`check_resume` compares what is asked
now with what made the WORKDIR, and a difference stops the run (ValueError
with one line naming it and the way out) before anything is written.

WORKDIR/provenance.json records, at every start that passed the checks::

    {"data": {"path": "/abs/DATA", "manifest_sha256": "..."},
     "start": {"random_init": false, "model": {"path": "/abs/EXPORT",
               "fingerprint": "..."}},                       (finetuning only)
     "earlier_data": [{"path": ..., "manifest_sha256": ...}]  (after --allow_data_change)}

The rules, applied only when WORKDIR has a checkpoint (before the first one
there is nothing to resume, and the new start simply replaces the record):

* **Data** is the folder's ``manifest.json`` (its SHA-256: the extraction job
  writes it last, and it lists every shard with its size and record count).
  The same manifest in another folder is the same data moved: the run resumes
  and the new path is recorded. Another manifest (other videos, other
  extraction flags, or a re-extraction, whose manifest has another creation
  time) is refused unless ``allow_data_change`` says that continuing on it is
  meant; the earlier data is then kept in ``earlier_data``.
* **The finetuning start** (random init, or the export by its fingerprint,
  :func:`tfcmvp.fingerprint.model_fingerprint`) never changes: another
  initialisation is another run. The same export moved elsewhere resumes.
* **The config** is compared with WORKDIR/config.yaml key by key. Only the keys
  of :data:`MAY_CHANGE_ON_RESUME` may differ; they change how long, where or
  how verbosely the run goes, not what it computes. Every other key (model,
  loss, optimizer, sampling and augmentation, batch, seed, steps per epoch,
  precision, test protocol) is refused with its old and new value.

A WORKDIR written before this record existed has no provenance.json: its data
cannot be checked, so the first resume records it (and says so).
"""

from __future__ import annotations

import hashlib
import json
import logging
import pathlib
from typing import Mapping, Optional

import tensorflow as tf

from tfcmvp import manifest as manifest_lib
from tfcmvp.config import ConfigError, config_changes, config_to_dict, load_saved_config
from tfcmvp.errors import RunRefusedError
from tfcmvp.fingerprint import model_fingerprint

logger = logging.getLogger(__name__)

PROVENANCE_NAME = "provenance.json"

# Config keys (or "section." prefixes) that may differ from WORKDIR/config.yaml on
# resume, each with the reason it leaves the run the same run.
MAY_CHANGE_ON_RESUME: dict[str, str] = {
    "train.epochs": "raising it continues a run (the schedule is stretched from the current step)",
    "train.checkpoint_every_steps": "when checkpoints are written, not what is trained",
    "train.keep_checkpoints": "how many checkpoints are kept",
    "train.deterministic": "kernel choice and pipeline order only; a resumed run draws new "
    "samples from its step either way",
    "runtime.": "the devices the run executes on (the global batch stays the same)",
    "data.cycle_length": "how many shards are read at once",
    "data.cache": "where decompressed records are kept between epochs",
    "data.shuffle_buffer": "the order of the videos, not what a sample is",
    "data.on_corrupt": "what a damaged shard does (fail or skip, reported either way)",
    "model.zero_init_residual": "initialisation only: the checkpoint's weights replace it",
    "model.init": "initialisation only: the checkpoint's weights replace it",
    "test.eval_epochs": "after which epochs the test runs (finetuning)",
    "test.batch_size": "clips per test batch (finetuning)",
}


def may_change_on_resume(key: str) -> bool:
    """True when config key `key` (``section.field``) may differ on resume."""
    return any(
        key == allowed or (allowed.endswith(".") and key.startswith(allowed))
        for allowed in MAY_CHANGE_ON_RESUME
    )


def manifest_sha256(data_dir) -> Optional[str]:
    """SHA-256 (hex) of ``DATA/manifest.json``, or None when there is none."""
    path = pathlib.Path(data_dir) / manifest_lib.MANIFEST_NAME
    if not path.is_file():
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()


def data_record(data_dir) -> dict:
    """``{"path", "manifest_sha256"}`` of a data folder (absolute path)."""
    return {
        "path": str(pathlib.Path(data_dir).resolve()),
        "manifest_sha256": manifest_sha256(data_dir),
    }


def start_record(model_dir, random_init: bool) -> dict:
    """What a finetuning run starts from: random init, or an export by path and fingerprint."""
    if model_dir is None:
        return {"random_init": bool(random_init), "model": None}
    path = pathlib.Path(model_dir).resolve()
    return {
        "random_init": bool(random_init),
        "model": {"path": str(path), "fingerprint": model_fingerprint(path)},
    }


def read_provenance(workdir) -> Optional[dict]:
    """WORKDIR/provenance.json as a dict, or None when the WORKDIR has none.

    Raises ValueError naming the file when it is not a JSON object.
    """
    path = pathlib.Path(workdir) / PROVENANCE_NAME
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise RunRefusedError(
            f"{path}: not valid JSON ({error}); it records what made this run, so it cannot "
            f"be checked: restore it, or start a new workdir"
        ) from None
    if not isinstance(record, dict):
        raise RunRefusedError(f"{path}: not a JSON object; restore it, or start a new workdir")
    return record


def write_provenance(workdir, record: Mapping) -> pathlib.Path:
    """Writes WORKDIR/provenance.json (beside, then renamed into place)."""
    path = pathlib.Path(workdir) / PROVENANCE_NAME
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def _short(digest: Optional[str]) -> str:
    return "none" if digest is None else digest[:12]


def _check_data(workdir: pathlib.Path, previous: Optional[Mapping], now: dict, allow: bool):
    """The data entries of the record to write; raises ValueError on other data."""
    if not isinstance(previous, Mapping):
        logger.info("%s has no record of its data: recording %s", workdir, now["path"])
        return now, []
    old_path, old_sha = previous.get("path"), previous.get("manifest_sha256")
    if old_sha == now["manifest_sha256"]:
        if old_path != now["path"]:
            logger.info(
                "data folder moved: %s -> %s (same %s): resuming",
                old_path,
                now["path"],
                manifest_lib.MANIFEST_NAME,
            )
        return now, []
    if allow:
        logger.warning(
            "%s continues on other data: %s (%s sha256 %s) instead of %s (sha256 %s), as "
            "--allow_data_change asks",
            workdir,
            now["path"],
            manifest_lib.MANIFEST_NAME,
            _short(now["manifest_sha256"]),
            old_path,
            _short(old_sha),
        )
        return now, [dict(previous)]
    what = (
        f"{now['path']}, which changed since (its {manifest_lib.MANIFEST_NAME} sha256 "
        f"{_short(old_sha)} -> {_short(now['manifest_sha256'])}: re-extracted?)"
        if old_path == now["path"]
        else f"{old_path} ({manifest_lib.MANIFEST_NAME} sha256 {_short(old_sha)}), not "
        f"{now['path']} (sha256 {_short(now['manifest_sha256'])})"
    )
    raise RunRefusedError(
        f"{workdir} was trained on {what}: resuming would continue the run on other data; "
        f"use a new --workdir, or --allow_data_change to continue it on this data on purpose"
    )


def _check_start(workdir: pathlib.Path, previous: Optional[Mapping], now: dict) -> None:
    """Raises ValueError when a finetuning WORKDIR started from another model."""
    if not isinstance(previous, Mapping):
        return

    def describe(start: Mapping) -> str:
        model = start.get("model")
        if not isinstance(model, Mapping):
            return "random init"
        return f"the export {model.get('path')} (fingerprint {_short(model.get('fingerprint'))})"

    old_model, new_model = previous.get("model"), now.get("model")
    same = bool(previous.get("random_init")) == now["random_init"] and (
        (old_model is None and new_model is None)
        or (
            isinstance(old_model, Mapping)
            and new_model is not None
            and old_model.get("fingerprint") == new_model["fingerprint"]
        )
    )
    if not same:
        raise RunRefusedError(
            f"{workdir} holds a run started from {describe(previous)}, not {describe(now)}: "
            f"resuming would mix two initialisations; use a new --workdir"
        )
    if isinstance(old_model, Mapping) and old_model.get("path") != new_model["path"]:
        logger.info(
            "export moved: %s -> %s (same fingerprint): resuming",
            old_model.get("path"),
            new_model["path"],
        )


def _check_config(workdir: pathlib.Path, config_name: str, config) -> None:
    """Raises ValueError naming every key that differs from WORKDIR/config.yaml
    and may not change on resume."""
    path = workdir / config_name
    if not path.is_file():
        return
    try:
        saved = load_saved_config(path, root=type(config))
    except (ConfigError, ValueError):
        return  # unreadable (an older tfcmvp's): save_run_config warns and overwrites it
    refused = [
        (key, old, new)
        for key, old, new in config_changes(config_to_dict(saved), config_to_dict(config))
        if not may_change_on_resume(key)
    ]
    if refused:
        changes = "; ".join(f"{key}: {old!r} -> {new!r}" for key, old, new in refused)
        raise RunRefusedError(
            f"{path} differs in {len(refused)} key(s) that a resumed run may not change: "
            f"{changes}; resume with the old values, or use a new --workdir (only "
            f"train.epochs, checkpointing, runtime.* and input-pipeline keys may change, "
            f"see tfcmvp.training.provenance)"
        )


def check_resume(
    workdir,
    config,
    data_dir,
    *,
    config_name: str = "config.yaml",
    checkpoint_dir: str = "checkpoints",
    start: Optional[dict] = None,
    allow_data_change: bool = False,
) -> dict:
    """Checks that resuming WORKDIR with `config`, `data_dir` (and `start`) is the same run.

    Args:
      workdir: the run folder.
      config: the run's PretrainConfig or FinetuneConfig.
      data_dir: the data folder of this start.
      config_name, checkpoint_dir: names of the saved config and the checkpoint folder.
      start: finetuning only, :func:`start_record` of this start.
      allow_data_change: continue on data with another manifest (recorded).

    Returns the record to write with :func:`write_provenance` once every other
    check of the start has passed (nothing is written here).

    Raises ValueError (one line naming the difference and the way out) when
    WORKDIR holds a checkpoint and the data, the start or a config key that
    may not change (see the module docstring) differs.
    """
    workdir = pathlib.Path(workdir)
    data = data_record(data_dir)
    record = {"data": data}
    if start is not None:
        record["start"] = start
    if tf.train.latest_checkpoint(str(workdir / checkpoint_dir)) is None:
        return record  # nothing to resume: this start makes the run
    previous = read_provenance(workdir)
    if previous is None:
        logger.info("%s has no %s (an older tfcmvp's run): recording it", workdir, PROVENANCE_NAME)
        return record
    record["data"], earlier = _check_data(workdir, previous.get("data"), data, allow_data_change)
    if start is not None:
        _check_start(workdir, previous.get("start"), start)
    _check_config(workdir, config_name, config)
    earlier = list(previous.get("earlier_data") or []) + earlier
    if earlier:
        record["earlier_data"] = earlier
    return record

"""The feature cache: fingerprints of model and data, the cache key, ``.npz`` files.

``CACHE_DIR/features-<model>-<key>.npz`` holds, per split ("test", "train"),
``<split>/features`` float32 ``[V, D]``, ``<split>/labels`` int64 ``[V]``,
``<split>/video_ids`` and ``<split>/label_names`` (unicode ``[V]``),
``<split>/clip_counts`` int64 ``[V]`` (clips averaged per video), plus
``meta`` (JSON: the key and what went into it). The key is a SHA-256 of

* the model: the bytes of ``saved_model.pb``, ``variables/variables.index``
  (it holds a checksum of every variable, so new weights change it) and
  ``assets/tfcmvp_export.json`` (:func:`tfcmvp.fingerprint.model_fingerprint`);
* the data: the bytes of ``manifest.json`` (it carries the extraction time)
  and the name and size of every test and train shard
  (:func:`data_fingerprint`);
* the options: the position rule, clips per video (none under
  ``"sliding"``) and every clip / crop / scaling option
  (:class:`tfcmvp.retrieval.clip_options.EvalOptions`);
* ``CACHE_VERSION``.

The default ``CACHE_DIR`` is ``DATA/.tfcmvp_cache``; when DATA is not writable
the caller's ``fallback_cache_dir`` (the retrieval command passes
``.tfcmvp_cache`` beside its output file); when neither is writable the run
goes on uncached with a warning (:func:`resolve_cache_dir`).
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import logging
import os
import pathlib
import re
from typing import Optional

import numpy as np

from tfcmvp import manifest as manifest_lib
from tfcmvp.fingerprint import hash_file, model_fingerprint  # noqa: F401 (importable here)

logger = logging.getLogger(__name__)

CACHE_DIR_NAME = ".tfcmvp_cache"
CACHE_VERSION = 2  # bump when the cached arrays or their meaning change (2: new positions)


@dataclasses.dataclass
class SplitFeatures:
    """Features of the videos of one split, in shard order."""

    features: np.ndarray  # float32 [V, D]: mean of the clip embeddings
    labels: np.ndarray  # int64 [V]
    video_ids: np.ndarray  # unicode [V]
    label_names: np.ndarray  # unicode [V]
    clip_counts: Optional[np.ndarray] = None  # int64 [V]: clips averaged per video

    def __len__(self) -> int:
        return int(self.features.shape[0])


# --------------------------------------------------------------------------- fingerprints


def data_fingerprint(data_dir, shards: dict) -> str:
    """SHA-256 of ``manifest.json`` and the name and size of every shard (hex)."""
    data_dir = pathlib.Path(data_dir)
    digest = hashlib.sha256()
    manifest_path = data_dir / manifest_lib.MANIFEST_NAME
    if manifest_path.is_file():
        hash_file(digest, manifest_path)
    for split in sorted(shards):
        for name in shards[split]:
            digest.update(f"\0{split}\0{os.path.basename(name)}\0{os.path.getsize(name)}".encode())
    return digest.hexdigest()


def cache_key(payload: dict) -> str:
    """SHA-256 (hex) of a JSON-able payload, key order ignored."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def features_key(model_dir, data_key: str, sample_kwargs: dict) -> str:
    """The key of one model's features on one data folder with one set of clip options."""
    return cache_key(
        {
            "version": CACHE_VERSION,
            "model": model_fingerprint(model_dir),
            "data": data_key,
            "options": sample_kwargs,
        }
    )


# --------------------------------------------------------------------------- where


def resolve_cache_dir(cache_dir, data_dir, fallback_cache_dir=None) -> Optional[pathlib.Path]:
    """The folder the cache lives in (created), or None when caching is impossible.

    ``cache_dir`` given: that folder (an error if it cannot be created).
    Otherwise ``DATA/.tfcmvp_cache``, then ``fallback_cache_dir``, whichever
    is writable first; None (with a warning) when neither is.
    """
    if cache_dir is not None:
        path = pathlib.Path(cache_dir)
        path.mkdir(parents=True, exist_ok=True)
        return path
    candidates = [pathlib.Path(data_dir) / CACHE_DIR_NAME]
    if fallback_cache_dir is not None:
        candidates.append(pathlib.Path(fallback_cache_dir))
    for path in candidates:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(path, os.W_OK):
            return path
    logger.warning(
        "no writable cache folder among %s: features are not cached",
        ", ".join(map(str, candidates)),
    )
    return None


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._") or "model"


def features_path(cache_dir: pathlib.Path, model_dir: pathlib.Path, key: str) -> pathlib.Path:
    """``CACHE_DIR/features-<model folder name>-<key prefix>.npz``."""
    return cache_dir / f"features-{_safe_name(model_dir.resolve().name)}-{key[:16]}.npz"


# --------------------------------------------------------------------------- files


def save_npz(path: pathlib.Path, arrays: dict) -> None:
    """Writes ``arrays`` to ``path`` atomically."""
    # Through a file object (np.savez would append ".npz" to the temporary
    # name), then renamed, so a killed run never leaves half a cache file.
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)


def load_npz(path: pathlib.Path, key: str) -> Optional[dict]:
    """The arrays of a cache file whose meta carries ``key``; None when absent or stale."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
        meta = json.loads(str(arrays["meta"]))
    except (OSError, ValueError, KeyError) as error:
        logger.warning("ignoring unreadable cache file %s: %s", path, error)
        return None
    if meta.get("key") != key:
        return None
    return arrays


def split_arrays(split: str, feats: SplitFeatures) -> dict:
    """The cache arrays of one split's features (``<split>/<field>``)."""
    return {
        f"{split}/features": feats.features,
        f"{split}/labels": feats.labels,
        f"{split}/video_ids": feats.video_ids,
        f"{split}/label_names": feats.label_names,
        f"{split}/clip_counts": feats.clip_counts,
    }


def split_from_arrays(split: str, arrays: dict) -> SplitFeatures:
    """One split's features back from the cache arrays."""
    return SplitFeatures(
        features=arrays[f"{split}/features"].astype(np.float32),
        labels=arrays[f"{split}/labels"].astype(np.int64),
        video_ids=arrays[f"{split}/video_ids"].astype(str),
        label_names=arrays[f"{split}/label_names"].astype(str),
        clip_counts=arrays[f"{split}/clip_counts"].astype(np.int64),
    )


def store_features(path: pathlib.Path, key: str, splits: dict, about: dict) -> None:
    """Writes every split's features to ``path`` with ``meta`` = key + ``about`` + time."""
    meta = dict(
        key=key,
        **about,
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    )
    arrays = {"meta": np.asarray(json.dumps(meta))}
    for split, feats in splits.items():
        arrays.update(split_arrays(split, feats))
    save_npz(path, arrays)

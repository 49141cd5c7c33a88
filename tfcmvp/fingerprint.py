"""The fingerprint of an export folder: what changes when its model changes.

A SHA-256 of the bytes of ``saved_model.pb``, ``variables/variables.index`` (it
holds a checksum of every variable, so new weights change it) and
``assets/tfcmvp_export.json``. The feature cache keys its files with it
(:mod:`tfcmvp.retrieval.feature_cache`), a finetuning run records the export it
started from with it (:mod:`tfcmvp.training.provenance`), a search index the
export it was built with.

Standard library only, so that every layer may import it: training records the
fingerprint below the export package, which it may not import
(docs/architecture.md). The folder layout is the export contract's
(:data:`tfcmvp.export.contract.ASSETS_DIR`, ``INFO_NAME``); a test holds the two
equal.
"""

from __future__ import annotations

import hashlib
import os
import pathlib

# The export contract's description file (tfcmvp.export.contract.ASSETS_DIR / INFO_NAME).
EXPORT_INFO_PATH = pathlib.Path("assets") / "tfcmvp_export.json"
_HASH_BLOCK = 1 << 20


def hash_file(digest, path: pathlib.Path) -> None:
    """Feeds the bytes of `path` to `digest` (a hashlib object), a block at a time."""
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_HASH_BLOCK), b""):
            digest.update(block)


def model_fingerprint(model_dir) -> str:
    """SHA-256 of the export's graph, variable index and export JSON (hex)."""
    model_dir = pathlib.Path(model_dir)
    digest = hashlib.sha256()
    for relative in (
        "saved_model.pb",
        os.path.join("variables", "variables.index"),
        str(EXPORT_INFO_PATH),
    ):
        path = model_dir / relative
        digest.update(relative.encode() + b"\0")
        if path.is_file():  # a model without variables has no index
            hash_file(digest, path)
        digest.update(b"\0")
    return digest.hexdigest()

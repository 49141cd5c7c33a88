"""The export fingerprint (tfcmvp/fingerprint.py), below the layers that record it.

Known answers: the description file it hashes is the export contract's, the
fingerprint is a SHA-256 of exactly the named files' paths and bytes, and
retrieval and training record the same function.
"""

import hashlib
import os
import pathlib

from tfcmvp import fingerprint
from tfcmvp.export import contract
from tfcmvp.retrieval import feature_cache, features


def test_hashes_the_export_contracts_description_file():
    assert fingerprint.EXPORT_INFO_PATH == pathlib.Path(contract.ASSETS_DIR) / contract.INFO_NAME


def test_fingerprint_is_the_sha256_of_the_named_files(tmp_path):
    (tmp_path / "saved_model.pb").write_bytes(b"graph")
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "tfcmvp_export.json").write_bytes(b"{}")
    index = os.path.join("variables", "variables.index")  # absent: hashed as empty
    expected = hashlib.sha256(
        b"saved_model.pb\0graph\0"
        + index.encode()
        + b"\0\0"
        + str(pathlib.Path("assets", "tfcmvp_export.json")).encode()
        + b"\0{}\0"
    ).hexdigest()
    assert fingerprint.model_fingerprint(tmp_path) == expected
    (tmp_path / "saved_model.pb").write_bytes(b"other graph")
    assert fingerprint.model_fingerprint(tmp_path) != expected


def test_retrieval_names_the_same_function():
    assert features.model_fingerprint is fingerprint.model_fingerprint
    assert feature_cache.model_fingerprint is fingerprint.model_fingerprint

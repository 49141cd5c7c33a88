"""``tfcmvp search``: the videos of an index nearest to a query video, by one network.

``--by`` picks the network, hence what "near" means:

========================  ===============  ==================================================
``--by``                  network          near means
========================  ===============  ==================================================
``motion``                motion network   similar motion vectors: the same motion, any scene
``iframe`` (``context``)  I-frame network  similar I-frames: the same scene, any motion
``video``                 video network    the pretrained video network: both mixed
========================  ===============  ==================================================

``context`` is the first name of ``iframe`` and means the same.

The query is embedded with the export the index recorded for that network,
exactly as the index's videos were (``tfcmvp embed``: 10 clips, mean), and
ranked against the index by cosine similarity (both sides L2-normalised,
then :func:`tfcmvp.retrieval.search.topk_search`: exact, chunked, memory
bounded). A query that is itself in the index (same absolute path) is left
out of its own results; when its file is unchanged its stored row is used
instead of embedding it again.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import tempfile
from typing import List, Optional

import numpy as np

from tfcmvp.errors import ConfigError, DataNotFoundError, InvalidDataError
from tfcmvp.retrieval.protocols import l2_normalize
from tfcmvp.retrieval.search import topk_search
from tfcmvp.search import table as table_lib

BY_CHOICES = tuple(table_lib.BY_NETWORK)


@dataclasses.dataclass
class SearchResult:
    """The ranked results of one query (best first)."""

    query: str  # absolute path
    by: str
    network: str
    index: table_lib.Index
    rows: np.ndarray  # int64 [k] index rows
    scores: np.ndarray  # float32 [k] cosine similarities
    query_row: Optional[int]  # the query's own row when it is indexed (excluded), else None

    @property
    def paths(self) -> List[str]:
        return [self.index.entries[int(r)].path for r in self.rows]


def check_by(by: str) -> str:
    """The network that answers ``--by`` (ValueError naming the choices)."""
    if by not in table_lib.BY_NETWORK:
        raise ConfigError(f"--by {by!r}: expected one of {', '.join(BY_CHOICES)}")
    return table_lib.BY_NETWORK[by]


def _check_export(index: table_lib.Index, network: str) -> str:
    from tfcmvp.retrieval import features

    spec = index.info["networks"][network]
    model_dir = spec["model_dir"]
    if not os.path.isdir(model_dir):
        raise DataNotFoundError(
            f"the {network} export the index {index.folder} was built with, {model_dir}, is "
            f"gone: re-run tfcmvp index with --models {network}=DIR"
        )
    if features.model_fingerprint(model_dir) != spec["export_fingerprint"]:
        raise InvalidDataError(
            f"the {network} export {model_dir} changed since the index {index.folder} was "
            f"built: re-run tfcmvp index (it re-embeds that network) before searching"
        )
    return model_dir


def embed_query(path, model_dir, *, storage=None) -> np.ndarray:
    """float64 ``[D]``: mean of the query's clip embeddings (ValueError when it fails)."""
    from tfcmvp.embedding import EmbeddingFailedError, StorageSettings, embed_videos

    with tempfile.TemporaryDirectory(prefix="tfcmvp-query-") as folder:
        try:
            result = embed_videos(
                [path],
                model_dir,
                pathlib.Path(folder) / "out",
                storage=storage or StorageSettings(),
                progress=False,
            )
        except EmbeddingFailedError as error:
            failed = pathlib.Path(folder) / "out" / "failed.jsonl"
            message = failed.read_text(encoding="utf-8").strip() or str(error)
            raise InvalidDataError(f"QUERY_VIDEO {path} cannot be embedded: {message}") from None
        matrix = np.load(result.output / "embeddings.npy")  # [10, D]
    return matrix.mean(axis=0, dtype=np.float64)


def search_index(query, index_dir, by: str, top: int = 10, *, storage=None) -> SearchResult:
    """The ``top`` videos of the index nearest to ``query`` by ``by`` (module docstring).

    Raises NotAnIndexError / FileNotFoundError for a missing index, query
    or export, and ValueError for a bad ``by`` or ``top``, a network the
    index lacks, a changed export or a query that cannot be embedded; each
    message names the argument.
    """
    network = check_by(by)
    if not isinstance(top, int) or isinstance(top, bool) or top < 1:
        raise ConfigError(f"--top must be a positive integer, got {top!r}")
    index = table_lib.load_index(index_dir)
    if network not in index.networks:
        raise ConfigError(
            f"--by {by} needs the {network} network, and the index {index_dir} holds only "
            f"{', '.join(index.networks)}: add it with tfcmvp index ... --models {network}=DIR"
        )
    if not os.path.isfile(query):
        raise DataNotFoundError(f"QUERY_VIDEO {query}: no such file")
    if not index.entries:
        raise InvalidDataError(f"the index {index_dir} holds no video: nothing to search")
    query = os.path.abspath(query)
    gallery = index.embeddings(network)  # [V, D], memory-mapped
    query_row = next((r for r, e in enumerate(index.entries) if e.path == query), None)
    if query_row is not None and (
        table_lib.content_fingerprint(query) == index.entries[query_row].fingerprint
    ):
        vector = np.asarray(gallery[query_row], np.float64)  # indexed and unchanged
    else:
        vector = embed_query(query, _check_export(index, network), storage=storage)
    # Cosine similarity: unit rows, then a dot product (zero rows stay zero: score 0).
    scores, rows = topk_search(
        l2_normalize(vector[None]),
        l2_normalize(gallery),
        top + (query_row is not None),
    )
    scores, rows = scores[0], rows[0]  # [k]
    if query_row is not None:
        keep = rows != query_row
        scores, rows = scores[keep][:top], rows[keep][:top]
    return SearchResult(query, by, network, index, rows, scores, query_row)


def format_results(result: SearchResult) -> str:
    """The lines ``tfcmvp search`` prints: a header, then rank, score and path."""
    lines = [
        f"query {result.query} by {result.by} ({result.network} network), "
        f"{len(result.index.entries)} indexed videos"
    ]
    if result.query_row is not None:
        lines.append("(the query is in the index: excluded from its own results)")
    lines.append(f"{'rank':>4}  {'score':>7}  path")
    for rank, (score, path) in enumerate(zip(result.scores, result.paths), start=1):
        lines.append(f"{rank:>4}  {float(score):7.4f}  {path}")
    return "\n".join(lines)

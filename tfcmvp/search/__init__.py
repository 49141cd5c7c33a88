"""Decoupled search over your own videos: ``tfcmvp index`` and ``tfcmvp search``.

Modules: :mod:`~tfcmvp.search.table` (the index folder and its table of
videos; NumPy only), :mod:`~tfcmvp.search.index` (build or update an index:
:func:`build_index`), :mod:`~tfcmvp.search.query` (nearest videos by motion,
I-frame (context) or the video network: :func:`search_index`),
:mod:`~tfcmvp.search.thumbnails` and :mod:`~tfcmvp.search.figure` (the
``--png`` grid).

The names below load on first use, so that importing the package costs no
TensorFlow.
"""

import importlib

_EXPORTS = {
    "BY_CHOICES": "tfcmvp.search.query",
    "IndexResult": "tfcmvp.search.index",
    "NotAnIndexError": "tfcmvp.search.table",
    "SearchResult": "tfcmvp.search.query",
    "build_index": "tfcmvp.search.index",
    "load_index": "tfcmvp.search.table",
    "search_index": "tfcmvp.search.query",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)

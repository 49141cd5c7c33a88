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

from tfcmvp.lazy_exports import lazy_getattr

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

__getattr__ = lazy_getattr(__name__, _EXPORTS)

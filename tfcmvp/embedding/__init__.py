"""Embeddings of your own video files with an exported network (``tfcmvp embed``).

Modules: :mod:`~tfcmvp.embedding.inputs` (INPUT arguments -> video paths),
:mod:`~tfcmvp.embedding.decode` (a video -> the record the extraction job
would store, decoding only what the modality needs),
:mod:`~tfcmvp.embedding.clips` (where the clips lie; retrieval's sample),
:mod:`~tfcmvp.embedding.writer` (the output folder),
:mod:`~tfcmvp.embedding.run` (the loop: :func:`embed_videos`).

The names below load on first use, so that ``inputs`` and ``writer``
(NumPy only) can be imported without TensorFlow.
"""

import importlib

_EXPORTS = {
    "ClipLayout": "tfcmvp.embedding.clips",
    "EmbedResult": "tfcmvp.embedding.run",
    "EmbeddingFailedError": "tfcmvp.embedding.run",
    "StorageSettings": "tfcmvp.embedding.decode",
    "embed_videos": "tfcmvp.embedding.run",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)

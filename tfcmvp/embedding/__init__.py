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

from tfcmvp.lazy_exports import lazy_getattr

_EXPORTS = {
    "ClipLayout": "tfcmvp.embedding.clips",
    "EmbedResult": "tfcmvp.embedding.run",
    "EmbeddingFailedError": "tfcmvp.embedding.run",
    "StorageSettings": "tfcmvp.embedding.decode",
    "embed_videos": "tfcmvp.embedding.run",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)

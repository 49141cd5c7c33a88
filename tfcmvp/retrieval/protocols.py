"""The two video-retrieval protocols in the literature: clip positions and post-processing.

Both protocols describe a video by the mean of its clip features and rank the
gallery (train split) by cosine similarity to each query (test split). They
differ in where the clips lie (``CLIP_POSITIONS``, formulas in
:mod:`tfcmvp.data.sampling`) and in what happens between the mean and the
dot product:

- ``"vcop"`` (Xu et al., CVPR 2019; the default, used by most papers that
  report R@50): N clips (10) with evenly spaced centres from the first to the
  last possible one (positions ``"vcop"``), plain mean, cosine similarity.
  Reference: ``retrieve_clips.py`` and ``UCF101ClipRetrievalDataset`` in
  xudejing/video-clip-order-prediction (``np.linspace`` centres, ``np.mean``
  over clips, then ``sklearn.metrics.pairwise.cosine_distances``).
- ``"coclr"`` (Han et al., NeurIPS 2020): sliding windows over the whole
  video, half overlapping (positions ``"sliding"``: their number depends on
  the video's length, N is unused), mean, then each set is mean-centred **by
  its own mean** (queries minus the query mean, gallery minus the gallery
  mean) and L2-normalised before the dot product. Reference:
  ``test_retrieval`` in TengdaHan/CoCLR ``eval/main_classifier.py``
  (``test_feature - test_feature.mean(0)``, ``train_feature -
  train_feature.mean(0)``, ``F.normalize``, ``matmul``) with the test-mode
  ``frame_sampler`` of ``dataset/lmdb_dataset.py``. Deliberate differences
  from that code, which we do not copy because they make the numbers random:
  it builds the gallery with ``mode='train'``, i.e. ONE random window per
  train video, and jitters the colours of both sets at random (p 0.3); we
  slide windows over the gallery too and never jitter. It also drops videos
  of at most ``clip_len // 2 * clip_stride + 1`` frames; we keep every video
  (one padded window).

After :func:`prepare` every non-zero row has unit L2 norm, so a plain dot
product (``tfcmvp.retrieval.search.topk_search``) is the cosine similarity.

Zero-norm rows (an all-zero feature, or under ``"coclr"`` a video equal to its
set's mean) are left as all-zero rows instead of dividing by zero: their
similarity to every video is exactly 0, never NaN. This matches both
references (sklearn's ``normalize`` keeps zero rows at zero; ``F.normalize``
divides by ``max(norm, 1e-12)``).
"""

from __future__ import annotations

import numpy as np

from tfcmvp.errors import ConfigError

VCOP = "vcop"
COCLR = "coclr"
PROTOCOLS = (VCOP, COCLR)
# The clip positions of each protocol (``positions`` of tfcmvp.data.eval_dataset).
CLIP_POSITIONS = {VCOP: "vcop", COCLR: "sliding"}

# Rows normalised per step: bounds the float64 temporaries to
# _ROW_BLOCK x D x 8 bytes (16 MB at D=512) however large the gallery is.
_ROW_BLOCK = 4096


def check_protocol(protocol: str) -> str:
    """Return ``protocol`` if it names a known protocol, else raise ValueError."""
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown retrieval protocol {protocol!r}; expected one of {PROTOCOLS}")
    return protocol


def clip_positions(protocol: str) -> str:
    """The clip-position rule of ``protocol`` (``"vcop"`` or ``"sliding"``)."""
    return CLIP_POSITIONS[check_protocol(protocol)]


def video_features(clip_features, protocol: str = VCOP) -> np.ndarray:
    """Mean of each video's clip features.

    Both protocols average the clip (VCOP) or window (CoCLR) features of a
    video; the protocol is validated here so a typo fails before any work.

    Args:
      clip_features: ``[V, N, D]`` array (N clips per video), or a sequence of
        V arrays ``[N_v, D]`` when videos have different clip counts (CoCLR's
        sliding windows depend on the video length).
      protocol: ``"vcop"`` or ``"coclr"``.

    Returns:
      ``[V, D]`` float32; the mean is accumulated in float64.

    Raises:
      ValueError: unknown protocol, wrong rank, a video with no clips, or a
        non-finite feature (the message names the video index).
    """
    check_protocol(protocol)
    if isinstance(clip_features, np.ndarray):
        if clip_features.ndim != 3:
            raise ValueError(f"clip_features must be [V, N, D], got shape {clip_features.shape}")
        videos = [clip_features[i] for i in range(clip_features.shape[0])]
    else:
        videos = [np.asarray(v) for v in clip_features]
    if not videos:
        raise ValueError("clip_features holds no videos")

    dim = videos[0].shape[-1] if videos[0].ndim == 2 else None
    out = np.empty((len(videos), dim or 0), np.float32)  # [V, D]
    for i, clips in enumerate(videos):
        if clips.ndim != 2 or clips.shape[1] != dim:
            raise ValueError(
                f"video {i}: clip features must be [N, D] with the D of video 0 ({dim}), "
                f"got shape {clips.shape}"
            )
        if clips.shape[0] == 0:
            raise ValueError(f"video {i} has no clip features (N=0); cannot average")
        mean = clips.mean(axis=0, dtype=np.float64)  # [D]
        if not np.all(np.isfinite(mean)):
            raise ValueError(f"video {i} has non-finite clip features (NaN or Inf)")
        out[i] = mean
    return out


def l2_normalize(features: np.ndarray, center: np.ndarray | None = None) -> np.ndarray:
    """Rows of ``features - center`` scaled to unit L2 norm; zero rows stay zero.

    Args:
      features: ``[V, D]``.
      center: optional ``[D]`` subtracted from every row first.

    Returns:
      ``[V, D]`` float32. Computed in float64 blocks of rows, so neither tiny
      nor huge float32 values under- or overflow the norm.
    """
    features = np.asarray(features)
    out = np.empty(features.shape, np.float32)
    for start in range(0, features.shape[0], _ROW_BLOCK):
        block = features[start : start + _ROW_BLOCK].astype(np.float64)  # [b, D]
        if center is not None:
            block -= center
        norm = np.sqrt(np.einsum("ij,ij->i", block, block))  # [b]
        # Dividing a zero row by 1 keeps it zero: similarity 0 to everything.
        block /= np.where(norm > 0.0, norm, 1.0)[:, None]
        out[start : start + _ROW_BLOCK] = block
    return out


def _check_features(name: str, features) -> np.ndarray:
    features = np.asarray(features)
    if features.ndim != 2:
        raise ValueError(f"{name} features must be [V, D], got shape {features.shape}")
    if features.shape[0] == 0:
        raise ValueError(f"{name} features are empty (shape {features.shape})")
    if not np.issubdtype(features.dtype, np.number):
        raise ValueError(f"{name} features must be numeric, got dtype {features.dtype}")
    for start in range(0, features.shape[0], _ROW_BLOCK):
        bad = ~np.isfinite(features[start : start + _ROW_BLOCK]).all(axis=1)
        if bad.any():
            raise ValueError(
                f"{name} features: row {start + int(np.argmax(bad))} is not finite (NaN or Inf)"
            )
    return features


def prepare(query, gallery, protocol: str = VCOP) -> tuple[np.ndarray, np.ndarray]:
    """Turn video features into vectors whose dot product is the protocol's similarity.

    Args:
      query: ``[Q, D]`` video features of the queries (test split).
      gallery: ``[G, D]`` video features of the gallery (train split).
      protocol: ``"vcop"`` (L2-normalise each row: cosine similarity) or
        ``"coclr"`` (subtract the query mean from the queries and the gallery
        mean from the gallery, then L2-normalise).

    Returns:
      ``(q, g)``: float32 ``[Q, D]`` and ``[G, D]``; every row has unit norm or
      is all zero (zero-norm input; see the module docstring).

    Raises:
      ValueError: unknown protocol, empty or non-2D input, mismatched D, or
        non-finite values (the message names the set and the row).
    """
    check_protocol(protocol)
    query = _check_features("query", query)
    gallery = _check_features("gallery", gallery)
    if query.shape[1] != gallery.shape[1]:
        raise ValueError(
            f"query and gallery feature sizes differ: {query.shape} vs {gallery.shape}"
        )
    if protocol == COCLR:
        # Each set is centred by its own mean, as CoCLR does (not by the gallery mean).
        return (
            l2_normalize(query, query.mean(axis=0, dtype=np.float64)),
            l2_normalize(gallery, gallery.mean(axis=0, dtype=np.float64)),
        )
    return l2_normalize(query), l2_normalize(gallery)

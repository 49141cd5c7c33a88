"""Context matching loss (paper Eq. 1): clip queries vs I-frame keys.

Each clip query x*_i is compared with the I-frame keys z*_k of every video in
the global batch (all replicas); the positive is the I-frame of the same
video. Eq. 1 takes cos(z*_k, x*_i) / tau with the clip as the anchor and the
I-frames as candidates, which is this function's query / key split.
"""

from __future__ import annotations

import tensorflow as tf

from tfcmvp.losses.gather import gather_global_batch
from tfcmvp.losses.infonce import DEFAULT_TEMPERATURE, checked_inputs, infonce, l2_normalize


def context_infonce(
    clip_query: tf.Tensor, iframe_key: tf.Tensor, temperature: float = DEFAULT_TEMPERATURE
) -> tuple[tf.Tensor, tf.Tensor]:
    """Per-video context-matching InfoNCE loss and top-1 hit.

    Args:
      clip_query: [B, D] clip-context embeddings of the local batch.
      iframe_key: [B, D] I-frame embeddings, row i from the same video as
        query row i.
      temperature: tau of Eq. 1.

    Both inputs are cast to float32 and L2-normalised here (cosine
    similarity), so normalised or raw head outputs give the same loss. Inside
    a replica context with more than one replica the keys of all replicas are
    gathered (differentiably: no stop-gradient, the I-frame network trains through
    this loss); the positive of local query i is global key `offset + i`,
    `offset` being the number of videos on the replicas before this one.

    Returns:
      `(loss, correct)`, both [B] float32: -log softmax of the positive, and
      1.0 where the positive key is the most similar one (pretext top-1).
      Reduce them with `replica_mean` (see the package docstring).
    """
    expected = "clip_query [B, D] and iframe_key [B, D]"
    clip_query, iframe_key = checked_inputs(
        "context_infonce", temperature, clip_query, iframe_key, (2, 2), expected
    )
    if not clip_query.shape.is_compatible_with(iframe_key.shape):
        raise ValueError(
            f"context_infonce: clip_query {clip_query.shape} and iframe_key "
            f"{iframe_key.shape} must have the same [B, D] shape"
        )
    queries = l2_normalize(clip_query)  # [B, D]
    keys, offset = gather_global_batch(l2_normalize(iframe_key))  # [B_global, D]
    positives = offset + tf.range(tf.shape(queries)[0], dtype=tf.int32)  # [B]
    return infonce(queries, keys, positives, temperature)

"""The InfoNCE core shared by context matching and motion prediction.

A query's loss is the cross-entropy of its softmax over cosine similarities
with all keys, divided by the temperature, against its one positive key:

    loss_i = -log( exp(cos(q_i, k_p(i)) / tau) / sum_j exp(cos(q_i, k_j) / tau) )

computed as logsumexp - positive logit (numerically stable for small tau).
"""

from __future__ import annotations

import tensorflow as tf

DEFAULT_TEMPERATURE = 0.1  # tau of Eq. 1 and Eq. 2 (paper and authors' code)


def check_temperature(temperature: float) -> None:
    """Raises ValueError unless `temperature` is a positive number."""
    if isinstance(temperature, (int, float)) and not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")


def checked_inputs(
    owner: str, temperature: float, query, key, ranks: tuple[int, int], expected: str
) -> tuple[tf.Tensor, tf.Tensor]:
    """`query` and `key` as tensors once `temperature` is checked
    (:func:`check_temperature`); ValueError ``"<owner> expects <expected>, got
    <shapes>"`` when a known rank is not ``ranks[0]`` / ``ranks[1]``."""
    check_temperature(temperature)
    query, key = tf.convert_to_tensor(query), tf.convert_to_tensor(key)
    if query.shape.rank not in (None, ranks[0]) or key.shape.rank not in (None, ranks[1]):
        raise ValueError(f"{owner} expects {expected}, got {query.shape} and {key.shape}")
    return query, key


def l2_normalize(x: tf.Tensor) -> tf.Tensor:
    """Casts to float32 and scales the last axis to unit length.

    float32 even under mixed precision: the logits are cosines / tau (up to
    1 / tau = 10) fed to an exponential, and float16 loses the small
    differences between them. An all-zero vector stays zero (cosine 0 with
    everything) instead of becoming NaN.
    """
    return tf.math.l2_normalize(tf.cast(x, tf.float32), axis=-1, epsilon=1e-12)


def infonce(
    queries: tf.Tensor, keys: tf.Tensor, positives: tf.Tensor, temperature: float
) -> tuple[tf.Tensor, tf.Tensor]:
    """Per-query InfoNCE loss and top-1 hit against the given positive key.

    Args:
      queries: [Q, D] unit-length float32 query embeddings.
      keys: [K, D] unit-length float32 key embeddings (all candidates).
      positives: [Q] int32 index into `keys` of each query's positive.
      temperature: tau > 0.

    Returns:
      `(loss, correct)`, both [Q] float32; `correct` is 1.0 where the positive
      has the largest similarity (ties go to the lowest key index).
    """
    logits = tf.matmul(queries, keys, transpose_b=True) / temperature  # [Q, K]
    # sparse_softmax_cross_entropy_with_logits is logsumexp(logits) - logits[p]
    # evaluated stably, and compiles under XLA on CPU/GPU/TPU.
    loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=positives, logits=logits)  # [Q]
    predicted = tf.argmax(logits, axis=-1, output_type=tf.int32)  # [Q]
    correct = tf.cast(tf.equal(predicted, positives), tf.float32)  # [Q]
    return loss, correct

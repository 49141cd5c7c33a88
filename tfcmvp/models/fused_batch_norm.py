"""BatchNormalization that runs TensorFlow's fused kernel on conv maps.

Keras 3 computes BatchNorm from separate moments / normalise ops. On a CPU
that unfused graph (several passes over each activation, forward and
backward) took about 45% of a C3D training step; TensorFlow's
FusedBatchNormV3 (oneDNN on CPU, cuDNN on GPU) does the same in one pass.
This subclass uses it for channels-last 4-D and 5-D inputs and falls back to
the Keras implementation for everything else: synchronised BN across several
replicas (needs the cross-replica moments), masks, renorm, other axes or
ranks, other backends. Synchronised BN on a single replica (one device: the
common laptop run of a config with ``train.sync_bn``) has nothing to
synchronise and is fused too.

Same weights, same config and same outputs as keras.layers.BatchNormalization
up to float rounding, with one difference in the moving statistics of
unsynchronised layers: the fused kernel feeds the moving variance with the
unbiased batch variance (n / (n - 1) times the biased one, as PyTorch does),
Keras with the biased one. Synchronised layers keep Keras's biased variance
on every replica count, so one- and many-replica runs agree.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

_DATA_FORMATS = {4: "NHWC", 5: "NDHWC"}


def _one_replica() -> bool:
    """Whether the current tf.distribute context has a single replica in sync."""
    context = tf.distribute.get_replica_context()
    if context is not None:
        return context.num_replicas_in_sync == 1
    return tf.distribute.get_strategy().num_replicas_in_sync == 1


@keras.saving.register_keras_serializable(package="tfcmvp")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """keras.layers.BatchNormalization with a fused kernel for [B, (T,) H, W, C] inputs.

    Args: those of keras.layers.BatchNormalization.
    """

    def _can_fuse(self, inputs, mask) -> bool:
        rank = len(inputs.shape)
        return (
            keras.backend.backend() == "tensorflow"
            and rank in _DATA_FORMATS
            and self.axis in (-1, rank - 1)
            and mask is None
            and not self.renorm
            and (not self.synchronized or _one_replica())
        )

    def call(self, inputs, training=None, mask=None):
        if not self._can_fuse(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        data_format = _DATA_FORMATS[len(inputs.shape)]
        channels = inputs.shape[-1]
        gamma = self.gamma if self.scale else ops.ones((channels,), "float32")
        beta = self.beta if self.center else ops.zeros((channels,), "float32")
        # The kernel takes float16/bfloat16/float32 maps with float32 parameters.
        gamma = ops.cast(gamma, "float32")
        beta = ops.cast(beta, "float32")
        if training and self.trainable:
            outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
                inputs, gamma, beta, epsilon=self.epsilon, data_format=data_format, is_training=True
            )
            if self.synchronized:
                # Back to the biased variance Keras's synchronised BN uses.
                count = tf.cast(tf.reduce_prod(tf.shape(inputs)[:-1]), variance.dtype)
                variance = variance * (count - 1.0) / tf.maximum(count, 1.0)
            self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
            self.moving_variance.assign(
                self.moving_variance * self.momentum + variance * (1.0 - self.momentum)
            )
        else:
            outputs, _, _ = tf.compat.v1.nn.fused_batch_norm(
                inputs,
                gamma,
                beta,
                mean=ops.cast(self.moving_mean, "float32"),
                variance=ops.cast(self.moving_variance, "float32"),
                epsilon=self.epsilon,
                data_format=data_format,
                is_training=False,
            )
        return ops.cast(outputs, self.compute_dtype)

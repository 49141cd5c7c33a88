"""Gaussian blur of a whole clip with one sigma (:class:`tfcmvp.config.BlurConfig`).

``sigma`` is drawn uniformly from ``[sigma_min, sigma_max]`` output pixels;
the kernel has ``kernel_size`` taps (odd; 11 is about 10% of a 112 crop, as
in SimCLR) and the border is reflected.
"""

from __future__ import annotations

from typing import Optional

import tensorflow as tf

from tfcmvp.config import BlurConfig
from tfcmvp.data.augment.ops import Op, default_salt, flatten_images, op_seed


def blur_images(x, sigma, kernel_size: int):
    """Separable Gaussian blur of ``x`` ``[..., H, W, C]`` with reflected borders."""
    x = tf.convert_to_tensor(x, tf.float32)
    flat, lead = flatten_images(x)  # [N, H, W, C]
    radius = kernel_size // 2
    taps = tf.range(-radius, radius + 1, dtype=tf.float32)
    kernel = tf.exp(-0.5 * tf.square(taps / sigma))
    kernel = kernel / tf.reduce_sum(kernel)  # [k]
    channels = tf.shape(flat)[-1]
    ky = tf.tile(tf.reshape(kernel, [-1, 1, 1, 1]), [1, 1, channels, 1])  # [k, 1, C, 1]
    kx = tf.reshape(ky, [1, -1, channels, 1])  # [1, k, C, 1]
    padded = tf.pad(flat, [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="REFLECT")
    out = tf.nn.depthwise_conv2d(padded, ky, [1, 1, 1, 1], "VALID")
    out = tf.nn.depthwise_conv2d(out, kx, [1, 1, 1, 1], "VALID")  # [N, H, W, C]
    out = tf.reshape(out, tf.concat([lead, tf.shape(flat)[1:]], axis=0))
    out.set_shape(x.shape)
    return out


def gaussian_blur(key: str, blur: BlurConfig, *, salt: Optional[int] = None) -> Op:
    """:class:`~tfcmvp.config.BlurConfig` of ``data[key]``; one sigma for all its frames."""
    salt = default_salt("gaussian_blur", (key,)) if salt is None else salt

    def op(data: dict) -> dict:
        data = dict(data)
        u = tf.random.stateless_uniform([2], op_seed(data, salt, "gaussian_blur"))
        sigma = blur.sigma_min + (blur.sigma_max - blur.sigma_min) * u[0]
        x = data[key]
        data[key] = tf.cond(
            u[1] < blur.prob, lambda: blur_images(x, sigma, blur.kernel_size), lambda: x
        )
        return data

    return op

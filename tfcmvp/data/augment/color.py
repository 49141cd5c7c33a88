"""Photometric augmentation of RGB in [0, 1]: colour jitter and random grayscale.

The definitions are torchvision's (``torchvision.transforms.functional``),
which the authors' code calls frame by frame with one draw per clip. The
settings are a :class:`tfcmvp.config.ColorJitterConfig`.
"""

from __future__ import annotations

import functools
from typing import Optional

import tensorflow as tf

from tfcmvp.config import ColorJitterConfig
from tfcmvp.data.augment.ops import Op, check_prob, default_salt, op_seed

# ITU-R 601-2 luma, as PIL's ``convert("L")`` that the authors' RandomGray
# and contrast use (torchvision's tensor ops take 0.2989 for red).
GRAY_WEIGHTS = (0.299, 0.587, 0.114)


def to_grayscale(x):
    """Luma ``0.299 R + 0.587 G + 0.114 B`` of RGB ``x`` ``[..., 3]`` -> ``[..., 1]``."""
    x = tf.convert_to_tensor(x)
    return tf.reduce_sum(x * tf.constant(GRAY_WEIGHTS, x.dtype), axis=-1, keepdims=True)


def adjust_brightness(x, factor):
    """``x * factor``, clipped to [0, 1] (a blend with black)."""
    return tf.clip_by_value(x * factor, 0.0, 1.0)


def adjust_contrast(x, factor):
    """A blend with the mean grey level of each frame (``[..., H, W, 3]``), clipped."""
    mean = tf.reduce_mean(to_grayscale(x), axis=[-3, -2, -1], keepdims=True)
    return tf.clip_by_value(mean + factor * (x - mean), 0.0, 1.0)


def adjust_saturation(x, factor):
    """A blend with the grey image, clipped."""
    gray = to_grayscale(x)
    return tf.clip_by_value(gray + factor * (x - gray), 0.0, 1.0)


def adjust_hue(x, delta):
    """Shifts the hue of every pixel by ``delta`` turns: in HSV, ``h -> (h + delta) mod 1``."""
    return tf.clip_by_value(tf.image.adjust_hue(x, delta), 0.0, 1.0)


# The four adjustments of colour jitter; a jitter ``order`` indexes this tuple.
JITTER_ADJUSTMENTS = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)


def jitter_colors(x, brightness, contrast, saturation, hue, order=None):
    """Applies given jitter factors to RGB ``x`` in [0, 1] (``[..., H, W, 3]``).

    ``order``: int ``[4]``, a permutation of the indices of
    :data:`JITTER_ADJUSTMENTS` (0 brightness, 1 contrast, 2 saturation,
    3 hue) saying which adjustment comes first, second, ...; None =
    brightness, contrast, saturation, hue. Each result is clipped to [0, 1].
    """
    factors = (brightness, contrast, saturation, hue)
    if order is None:
        for adjust, factor in zip(JITTER_ADJUSTMENTS, factors):
            x = adjust(x, factor)
        return x
    order = tf.convert_to_tensor(order, tf.int32)

    def step(i, y):
        # Only the chosen branch runs.
        return i + 1, tf.switch_case(
            order[i],
            [
                functools.partial(adjust, y, factor)
                for adjust, factor in zip(JITTER_ADJUSTMENTS, factors)
            ],
        )

    # A loop, not four unrolled switches: one copy of the branches in the graph.
    _, x = tf.while_loop(lambda i, _: i < len(JITTER_ADJUSTMENTS), step, [0, x])
    return x


def sample_color_jitter(seed, jitter: ColorJitterConfig) -> dict:
    """One draw of a ``ColorJitterConfig`` from a stateless ``seed`` (int ``[2]``).

    Returns ``{"apply": bool [], "factors": float32 [4], "order": int32 [4]}``:
    whether to jitter (probability ``jitter.prob``), the brightness,
    contrast, saturation factors and the hue shift, and the order of the
    adjustments (a uniformly random permutation, the argsort of four
    uniforms, or 0, 1, 2, 3 without ``random_order``).
    """
    u = tf.random.stateless_uniform([9], seed)
    strength = tf.constant([jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue])
    identity = tf.constant([1.0, 1.0, 1.0, 0.0])
    factors = identity + strength * (2.0 * u[1:5] - 1.0)
    if jitter.random_order:
        order = tf.argsort(u[5:9])
    else:
        order = tf.range(len(JITTER_ADJUSTMENTS), dtype=tf.int32)
    return {"apply": u[0] < jitter.prob, "factors": factors, "order": tf.cast(order, tf.int32)}


def color_jitter(key: str, jitter: ColorJitterConfig, *, salt: Optional[int] = None) -> Op:
    """Colour jitter of ``data[key]`` (RGB in [0, 1]); one draw for all its frames.

    The draw is :func:`sample_color_jitter` of the sample seed folded with
    ``salt`` (default: from the key, so the clip and the I-frame draw
    independently). Grayscale is not done here: see :func:`random_grayscale`.
    """
    salt = default_salt("color_jitter", (key,)) if salt is None else salt

    def op(data: dict) -> dict:
        data = dict(data)
        draw = sample_color_jitter(op_seed(data, salt, "color_jitter"), jitter)
        factors = tf.unstack(draw["factors"])
        order = draw["order"] if jitter.random_order else None
        x = data[key]
        data[key] = tf.cond(
            draw["apply"], lambda: jitter_colors(x, *factors, order=order), lambda: x
        )
        return data

    return op


def random_grayscale(key: str, prob: float, *, salt: Optional[int] = None) -> Op:
    """Turns ``data[key]`` grey with probability ``prob``, one draw for all its frames.

    Every channel becomes :func:`to_grayscale` (torchvision's
    RandomGrayscale with 3 output channels; the authors' RandomGray). The
    draw has its own salt (default: from the key), independent of the jitter.
    """
    check_prob("random_grayscale prob", prob)
    salt = default_salt("random_grayscale", (key,)) if salt is None else salt

    def op(data: dict) -> dict:
        data = dict(data)
        u = tf.random.stateless_uniform([], op_seed(data, salt, "random_grayscale"))
        x = data[key]

        def grey():
            gray = to_grayscale(x)
            return tf.concat([gray, gray, gray], axis=-1)

        data[key] = tf.cond(u < prob, grey, lambda: x)
        return data

    return op

"""Geometric augmentation: random resized and centre crops, flips, rotations.

Images are ``[..., H, W, C]`` (any leading dims: frames, clips). Crop regions
are ``(y0, x0, y1, x1)`` in *frame-normalised* coordinates: 0 is the top/left
edge of the decoded frame, 1 its bottom/right edge. RGB frames cover the
frame exactly; a motion-vector grid covers ``ceil(size / cell)`` cells, a
little more than the frame, given by its *extent* (the fraction of the grid
the frame covers, see :func:`tfcmvp.data.reader.mv_extent`), and regions are
scaled by it. Samples are taken at the centres of the output pixels
(half-pixel convention) and the border is extended by edge replication, so
the same region on a 171x128 RGB frame and on a 40x30 vector grid samples
the same points of the scene.

Motion vectors are values, not colours: resizing a vector map does not
rescale its vectors (as in the authors' code); a horizontal flip negates
their x component when asked (CoViAR does, the authors' code does not).
"""

from __future__ import annotations

import math
from typing import Mapping, Optional, Sequence

import tensorflow as tf

from tfcmvp.config import RESIZE_METHODS
from tfcmvp.data.augment.ops import Op, as_keys, default_salt, flatten_images, op_seed


def sample_crop_regions(
    seed, num, aspect, min_area: float, ratio: Sequence[float], attempts: int = 10
):
    """Random resized crop regions, frame-normalised ``(y0, x0, y1, x1)``, float32 ``[num, 4]``.

    The crop covers a fraction ``U[min_area, 1]`` of the frame area with a
    width / height ratio log-uniform in ``ratio``, at a uniform position. As in
    Inception / torchvision, ``attempts`` draws are made and the first that
    fits is used; if none fits, the central crop with the ratio clamped to
    ``ratio``. ``aspect`` is the frame's width / height (a scalar).
    """
    aspect = tf.cast(aspect, tf.float32)
    seeds = tf.random.experimental.stateless_split(seed, 4)
    area = tf.random.stateless_uniform([num, attempts], seeds[0], min_area, 1.0)
    log_r = tf.random.stateless_uniform(
        [num, attempts], seeds[1], math.log(ratio[0]), math.log(ratio[1])
    )
    r = tf.exp(log_r)
    w = tf.sqrt(area * r / aspect)  # [num, attempts] fraction of the frame width
    h = tf.sqrt(area * aspect / r)
    fits = (w <= 1.0) & (h <= 1.0)
    first = tf.argmax(tf.cast(fits, tf.int32), axis=1, output_type=tf.int32)  # [num]
    any_fit = tf.reduce_any(fits, axis=1)
    w = tf.gather(w, first, batch_dims=1)
    h = tf.gather(h, first, batch_dims=1)
    # Fallback: whole frame, cut to the nearest allowed ratio.
    fw = tf.minimum(1.0, ratio[1] / aspect)
    fh = tf.minimum(1.0, aspect / ratio[0])
    w = tf.where(any_fit, w, fw)
    h = tf.where(any_fit, h, fh)
    pos = tf.random.stateless_uniform([num, 2], seeds[2])
    pos = tf.where(any_fit[:, None], pos, 0.5)  # the fallback is centred
    y0 = pos[:, 0] * (1.0 - h)
    x0 = pos[:, 1] * (1.0 - w)
    return tf.stack([y0, x0, y0 + h, x0 + w], axis=1)


def center_region(aspect, size: int, resize_short: int):
    """The centre crop of ``size`` after resizing the short side to ``resize_short``.

    Frame-normalised ``(y0, x0, y1, x1)``, float32 ``[1, 4]``; ``aspect`` is
    width / height.
    """
    aspect = tf.cast(aspect, tf.float32)
    # Resized frame: short side resize_short, the other side in proportion.
    resized_h = resize_short * tf.maximum(1.0, 1.0 / aspect)
    resized_w = resize_short * tf.maximum(1.0, aspect)
    h = tf.minimum(1.0, size / resized_h)
    w = tf.minimum(1.0, size / resized_w)
    region = tf.stack([(1.0 - h) / 2, (1.0 - w) / 2, (1.0 + h) / 2, (1.0 + w) / 2])
    return tf.reshape(region, [1, 4])


def crop_resize(images, regions, size: int, *, extent=None, method: str = "bilinear"):
    """Crops frame-normalised ``regions`` out of ``images`` and resizes to ``size`` x ``size``.

    Args:
      images: ``[..., H, W, C]`` of any numeric dtype.
      regions: float32 ``[R, 4]``. ``R == 1``: one region for all images;
        otherwise ``R`` equals the first dim of ``images`` and item ``r``
        (with all its frames) gets region ``r``.
      extent: optional float32 ``[2]``, fraction (y, x) of the image that the
        frame covers (motion-vector grids); None = 1.
      method: "bilinear" or "nearest".

    Returns float32 ``[..., size, size, C]``.
    """
    if method not in RESIZE_METHODS:
        raise ValueError(f"resize method must be one of {RESIZE_METHODS}, got {method!r}")
    images = tf.convert_to_tensor(images)
    flat, lead = flatten_images(images)  # [N, H, W, C]
    n = tf.shape(flat)[0]
    hw = tf.cast(tf.shape(flat)[1:3], tf.float32)  # [2] = (H, W)
    regions = tf.cast(regions, tf.float32)
    if extent is not None:
        regions = regions * tf.tile(tf.cast(extent, tf.float32), [2])  # frame -> grid coordinates
    start, stop = regions[:, :2], regions[:, 2:]  # [R, 2]
    half = 0.5 * (stop - start) / size
    first, last = start + half, stop - half  # centres of the first / last output pixel
    # Pixel index p = u * n - 0.5; the 1-pixel edge padding shifts it by 1 and
    # crop_and_resize maps box coordinate 1 to index (n + 2) - 1.
    boxes = tf.concat([(first * hw + 0.5) / (hw + 1.0), (last * hw + 0.5) / (hw + 1.0)], axis=1)
    per_region = n // tf.shape(boxes)[0]
    boxes = tf.repeat(boxes, per_region, axis=0)  # [N, 4]
    padded = _pad_edges(flat)  # [N, H + 2, W + 2, C]
    out = tf.image.crop_and_resize(
        padded, boxes, tf.range(n), [size, size], method=method
    )  # [N, S, S, C]
    out = tf.reshape(out, tf.concat([lead, [size, size, tf.shape(flat)[-1]]], axis=0))
    out.set_shape(images.shape[:-3].concatenate([size, size, images.shape[-1]]))
    return out


def _pad_edges(images):
    """Repeats the outer rows and columns of ``[N, H, W, C]`` once (edge replication).

    Concatenation, because ``tf.pad(mode="SYMMETRIC")`` is about 10x slower
    on CPU for a clip.
    """
    images = tf.concat([images[:, :1], images, images[:, -1:]], axis=1)
    return tf.concat([images[:, :, :1], images, images[:, :, -1:]], axis=2)


def _frame_aspect(image, extent):
    """Width / height of the frame shown by ``image`` (``[..., H, W, C]``)."""
    hw = tf.cast(tf.shape(image)[-3:-1], tf.float32)
    if extent is not None:
        hw = hw * tf.cast(extent, tf.float32)
    return hw[1] / hw[0]


def _extent(data, key, extent_keys):
    name = (extent_keys or {}).get(key)
    return None if name is None else data[name]


# ---------------------------------------------------------------------------
# Geometric ops


def random_resized_crop(
    keys,
    size: int,
    *,
    min_area: float = 0.2,
    ratio: Sequence[float] = (3 / 4, 4 / 3),
    independent: bool = False,
    extent_keys: Optional[Mapping[str, str]] = None,
    methods: Optional[Mapping[str, str]] = None,
    salt: Optional[int] = None,
) -> Op:
    """Random resized crop of ``keys`` to ``size`` x ``size`` (float32 out).

    One region for all keys (and all their frames); with ``independent``, the
    first dim of the keys indexes items that get one region each (e.g. the K
    negative motion clips ``[K, L, h, w, 2]``). ``extent_keys`` maps a key to
    the dict key of its grid extent; ``methods`` maps a key to "bilinear"
    (default) or "nearest". The frame aspect comes from the first key.
    """
    keys = as_keys(keys)
    salt = default_salt("random_resized_crop", keys) if salt is None else salt
    methods = dict(methods or {})

    def op(data: dict) -> dict:
        data = dict(data)
        seed = op_seed(data, salt, "random_resized_crop")
        ref = data[keys[0]]
        num = tf.shape(ref)[0] if independent else 1
        aspect = _frame_aspect(ref, _extent(data, keys[0], extent_keys))
        regions = sample_crop_regions(seed, num, aspect, min_area, ratio)  # [R, 4]
        for key in keys:
            data[key] = crop_resize(
                data[key],
                regions,
                size,
                extent=_extent(data, key, extent_keys),
                method=methods.get(key, "bilinear"),
            )
        return data

    return op


def center_crop(
    keys,
    size: int,
    *,
    resize_short: int,
    extent_keys: Optional[Mapping[str, str]] = None,
    methods: Optional[Mapping[str, str]] = None,
) -> Op:
    """Resize the short side to ``resize_short``, crop the centre ``size`` x ``size``.

    Done as one resampling of the central region (no intermediate image);
    with frames stored at short side 128, ``resize_short=128`` and
    ``size=112`` copy the central 112x112 pixels exactly.
    """
    keys = as_keys(keys)
    methods = dict(methods or {})

    def op(data: dict) -> dict:
        data = dict(data)
        aspect = _frame_aspect(data[keys[0]], _extent(data, keys[0], extent_keys))
        region = center_region(aspect, size, resize_short)
        for key in keys:
            data[key] = crop_resize(
                data[key],
                region,
                size,
                extent=_extent(data, key, extent_keys),
                method=methods.get(key, "bilinear"),
            )
        return data

    return op


def flip_columns(x, flip, *, negate_x: bool = False, independent: bool = False):
    """Mirrors ``x`` ``[..., W, C]`` left-right where ``flip`` is true.

    ``flip``: bool scalar (the whole tensor, computed only when true), or
    ``[n]`` with ``independent`` (one per item of the first dim, done as one
    gather of per-item column indices: on CPU several times faster than
    ``tf.where`` over ``tf.reverse``). ``negate_x`` multiplies channel 0 by
    -1 where flipped (vector fields).
    """
    x = tf.convert_to_tensor(x)
    axis = x.shape.rank - 2
    if not independent:

        def mirror():
            out = tf.reverse(x, [axis])
            return out * tf.constant([-1.0, 1.0], x.dtype) if negate_x else out

        return tf.cond(flip, mirror, lambda: x)
    width = tf.shape(x)[-2]
    cols = tf.range(width)
    index = tf.where(flip[:, None], (width - 1 - cols)[None], cols[None])  # [n, W]
    out = tf.gather(x, index, axis=axis, batch_dims=1)
    if negate_x:
        sign = tf.where(flip, -1.0, 1.0)  # [n]
        sign = tf.stack([sign, tf.ones_like(sign)], axis=-1)  # [n, 2]
        ones = tf.ones([x.shape.rank - 2], tf.int32)
        sign = tf.reshape(sign, tf.concat([tf.shape(flip), ones, [2]], axis=0))  # [n, 1.., 2]
        out = out * tf.cast(sign, out.dtype)
    return out


def random_flip(
    keys,
    *,
    prob: float = 0.5,
    mv_keys: Sequence[str] = (),
    negate_mv_x: bool = True,
    independent: bool = False,
    salt: Optional[int] = None,
) -> Op:
    """Horizontal flip of ``keys`` with probability ``prob``, one draw for all keys.

    Keys in ``mv_keys`` hold vectors (last dim = (x, y)); with ``negate_mv_x``
    their x component changes sign when flipped, since a flip mirrors
    displacements. ``independent``: one draw per item of the first dim.
    """
    keys = as_keys(keys)
    mv_keys = set(as_keys(mv_keys))
    salt = default_salt("random_flip", keys) if salt is None else salt

    def op(data: dict) -> dict:
        data = dict(data)
        seed = op_seed(data, salt, "random_flip")
        shape = tf.shape(data[keys[0]])[:1] if independent else []
        flip = tf.random.stateless_uniform(shape, seed) < prob  # [] or [n]
        for key in keys:
            data[key] = flip_columns(
                data[key], flip, independent=independent, negate_x=key in mv_keys and negate_mv_x
            )
        return data

    return op


def rotate(images, angle, *, vectors: bool = False, method: str = "bilinear", extent=None):
    """Rotates ``images`` ``[..., H, W, C]`` by ``angle`` radians about the frame's centre.

    In image coordinates (x right, y down) content at ``p`` moves to
    ``R(angle) (p - c) + c`` with ``R = [[cos, -sin], [sin, cos]]``: a
    positive angle turns clockwise on screen. ``c`` is the centre of the
    frame: of the image, or with ``extent`` (float32 ``[2]``, the fraction
    (y, x) of a motion-vector grid the frame covers) of the part of the grid
    that shows the frame, so an RGB frame and its vector grid turn the same
    scene points. Pixels are taken as square (the RGB frames and the
    vector cells both are). The border is reflected. With ``vectors``, the
    (x, y) values are rotated by the same ``R``, so that a rotated motion
    field describes the rotated content. Float32 out.
    """
    images = tf.cast(images, tf.float32)
    flat, lead = flatten_images(images)  # [N, H, W, C]
    hw = tf.shape(flat)[1:3]
    size = tf.cast(hw, tf.float32)
    if extent is not None:
        size = size * tf.cast(extent, tf.float32)
    # The centre in pixel-index coordinates (pixel i covers [i, i + 1)).
    cy = size[0] / 2.0 - 0.5
    cx = size[1] / 2.0 - 0.5
    angle = tf.cast(angle, tf.float32)
    cos, sin = tf.cos(angle), tf.sin(angle)
    # Output pixel -> input pixel: the inverse rotation R(-angle).
    transform = tf.stack(
        [cos, sin, cx - cos * cx - sin * cy, -sin, cos, cy + sin * cx - cos * cy, 0.0, 0.0]
    )[None]  # [1, 8]
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=flat,
        transforms=transform,
        output_shape=hw,
        fill_value=0.0,
        interpolation=method.upper(),
        fill_mode="REFLECT",
    )
    if vectors:
        vx, vy = out[..., 0], out[..., 1]
        out = tf.stack([cos * vx - sin * vy, sin * vx + cos * vy], axis=-1)
    out = tf.reshape(out, tf.concat([lead, tf.shape(flat)[1:]], axis=0))
    out.set_shape(images.shape)
    return out


def random_rotate(
    keys,
    max_degrees: float,
    *,
    mv_keys: Sequence[str] = (),
    extent_keys: Optional[Mapping[str, str]] = None,
    methods: Optional[Mapping[str, str]] = None,
    salt: Optional[int] = None,
) -> Op:
    """Rotation by one angle drawn from ``[-max_degrees, max_degrees]`` for all ``keys``.

    Each key turns about the centre of its frame (``extent_keys`` maps a key
    to the dict key of its grid extent, as in :func:`random_resized_crop`),
    so keys of different resolutions stay aligned. The authors' finetuning
    rotates the whole decoded frame before the random crop (their
    ``VRandomRotation`` comes first); do the same by applying this op before
    :func:`random_resized_crop`. Keys in ``mv_keys`` also get their vectors
    rotated (see :func:`rotate`). The corners the frame leaves are filled by
    reflection (the authors' PIL ``rotate`` fills them black, nearest
    neighbour).
    """
    keys = as_keys(keys)
    mv_keys = set(as_keys(mv_keys))
    methods = dict(methods or {})
    salt = default_salt("random_rotate", keys) if salt is None else salt
    limit = math.radians(max_degrees)

    def op(data: dict) -> dict:
        data = dict(data)
        angle = tf.random.stateless_uniform([], op_seed(data, salt, "random_rotate"), -limit, limit)
        for key in keys:
            data[key] = rotate(
                data[key],
                angle,
                vectors=key in mv_keys,
                method=methods.get(key, "bilinear"),
                extent=_extent(data, key, extent_keys),
            )
        return data

    return op

"""Augmentation ops: small ``dict -> dict`` functions of TensorFlow ops.

Each public op factory returns an :data:`Op` that reads some keys of a sample
dict and returns a new dict with those keys replaced. Random ops draw from
stateless random ops seeded by ``data["seed"]`` (int [2]) folded with a salt
that is fixed per op (derived from the op name and its keys unless given),
so a sample is reproducible from its seed, and two ops on different keys
draw independently. Ops given several keys apply *one* draw to all of them:
that is how the clip and its target motion clip share crop and flip.

Geometry. Images are ``[..., H, W, C]`` (any leading dims: frames, clips).
Crop regions are ``(y0, x0, y1, x1)`` in *frame-normalised* coordinates:
0 is the top/left edge of the decoded frame, 1 its bottom/right edge. RGB
frames cover the frame exactly; a motion-vector grid covers ``ceil(size /
cell)`` cells, a little more than the frame, given by its *extent* (the
fraction of the grid the frame covers, see
:func:`tfcmvp.data.reader.mv_extent`), and regions are scaled by it. Samples
are taken at the centres of the output pixels (half-pixel convention) and
the border is extended by edge replication, so the same region on a 171x128
RGB frame and on a 40x30 vector grid samples the same points of the scene.

Motion vectors are values, not colours: resizing a vector map does not
rescale its vectors (as in the authors' code); a horizontal flip negates
their x component when asked (CoViAR does, the authors' code does not).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import zlib
from typing import Callable, Mapping, Optional, Sequence

import tensorflow as tf

from tfcmvp.config import BlurConfig, ColorJitterConfig
from tfcmvp.data import features

Op = Callable[[dict], dict]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESIZE_METHODS = ("bilinear", "nearest")


def _check_prob(name, value):
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")


# The defaults of ColorJitter and GaussianBlur are those of the config
# sections, documented there with their sources (one place for each value).
_CJ = ColorJitterConfig
_BL = BlurConfig


@dataclasses.dataclass(frozen=True)
class ColorJitter:
    """Colour jitter and random grayscale of an RGB key, one draw per clip.

    Fields and defaults (the authors' code) are those of
    :class:`tfcmvp.config.ColorJitterConfig`, documented there. With
    probability ``prob`` the clip gets torchvision's four adjustments
    (:data:`JITTER_ADJUSTMENTS`): brightness, contrast and saturation factors
    uniform in ``[1 - v, 1 + v]``, a hue shift uniform in ``[-hue, hue]``
    turns, in a random order per draw (``random_order``) or in that order.
    Random grayscale is a separate draw and a separate op
    (:func:`random_grayscale`, probability ``grayscale_prob``) that
    :func:`rgb_photometric` applies after the jitter.
    """

    brightness: float = _CJ.brightness
    contrast: float = _CJ.contrast
    saturation: float = _CJ.saturation
    hue: float = _CJ.hue
    prob: float = _CJ.prob
    random_order: bool = _CJ.random_order
    grayscale_prob: float = _CJ.grayscale_prob

    def __post_init__(self):
        for name in ("brightness", "contrast", "saturation"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(
                    f"ColorJitter.{name} must be in [0, 1], got {getattr(self, name)!r}"
                )
        if not 0.0 <= self.hue <= 0.5:
            raise ValueError(f"ColorJitter.hue must be in [0, 0.5], got {self.hue!r}")
        _check_prob("ColorJitter.prob", self.prob)
        _check_prob("ColorJitter.grayscale_prob", self.grayscale_prob)
        if not isinstance(self.random_order, bool):
            raise ValueError(
                f"ColorJitter.random_order must be true or false, got {self.random_order!r}"
            )


@dataclasses.dataclass(frozen=True)
class GaussianBlur:
    """Gaussian blur of a whole clip with one sigma, applied with probability ``prob``.

    Fields and defaults are those of :class:`tfcmvp.config.BlurConfig`:
    ``sigma`` is drawn uniformly from ``[sigma_min, sigma_max]`` output pixels;
    the kernel has ``kernel_size`` taps (odd; 11 is about 10% of a 112 crop,
    as in SimCLR) and the border is reflected.
    """

    sigma_min: float = _BL.sigma_min
    sigma_max: float = _BL.sigma_max
    prob: float = _BL.prob
    kernel_size: int = _BL.kernel_size

    def __post_init__(self):
        if not 0.0 < self.sigma_min <= self.sigma_max:
            raise ValueError(
                f"GaussianBlur needs 0 < sigma_min <= sigma_max, got {self.sigma_min!r}, "
                f"{self.sigma_max!r}"
            )
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(
                f"GaussianBlur.kernel_size must be odd and positive, got {self.kernel_size!r}"
            )
        _check_prob("GaussianBlur.prob", self.prob)


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Augmentation of one training sample.

    Attributes:
      crop_size: output side S of every crop (112).
      min_crop_area: random resized crop keeps a fraction of the frame area
        drawn from ``[min_crop_area, 1]`` (0.2).
      crop_ratio: range of the crop's width / height (3/4, 4/3).
      flip_prob: probability of a horizontal flip (0.5).
      flip_negates_mv_x: a flip negates the x component of the vectors
        (True, CoViAR); False reproduces the authors' code.
      mv_clip: vectors are clamped to +-mv_clip pixels (10) ...
      mv_div: ... then divided by mv_div (10), giving [-1, 1].
      mv_resize_method: "bilinear" or "nearest" resampling of vector maps.
      color_jitter: :class:`ColorJitter` (and grayscale) for the clip and
        the I-frame, or None (no jitter and no grayscale).
      iframe_color_jitter: a :class:`ColorJitter` for the I-frame alone
        (replacing ``color_jitter`` for it), or None: the same as the clip.
      blur: :class:`GaussianBlur` for the clip and the I-frame, or None.
      rotate_degrees: random rotation in [-r, r] degrees of the whole frame
        of the clip (and its motion target) before the crop, 0 = off. The
        authors rotate +-10 degrees when finetuning; pretraining does not
        rotate.
    """

    crop_size: int = 112
    min_crop_area: float = 0.2
    crop_ratio: tuple = (3 / 4, 4 / 3)
    flip_prob: float = 0.5
    flip_negates_mv_x: bool = True
    mv_clip: float = 10.0
    mv_div: float = 10.0
    mv_resize_method: str = "bilinear"
    color_jitter: Optional[ColorJitter] = ColorJitter()
    blur: Optional[GaussianBlur] = GaussianBlur()
    rotate_degrees: float = 0.0
    iframe_color_jitter: Optional[ColorJitter] = None

    def __post_init__(self):
        if not isinstance(self.crop_size, int) or self.crop_size < 1:
            raise ValueError(
                f"AugmentConfig.crop_size must be a positive int, got {self.crop_size!r}"
            )
        if not 0.0 < self.min_crop_area <= 1.0:
            raise ValueError(
                f"AugmentConfig.min_crop_area must be in (0, 1], got {self.min_crop_area!r}"
            )
        lo, hi = self.crop_ratio
        if not 0.0 < lo <= hi:
            raise ValueError(
                f"AugmentConfig.crop_ratio must be 0 < lo <= hi, got {self.crop_ratio!r}"
            )
        _check_prob("AugmentConfig.flip_prob", self.flip_prob)
        if self.mv_clip <= 0 or self.mv_div <= 0:
            raise ValueError(
                f"AugmentConfig.mv_clip and mv_div must be > 0, "
                f"got {self.mv_clip!r}, {self.mv_div!r}"
            )
        if self.mv_resize_method not in RESIZE_METHODS:
            raise ValueError(
                f"AugmentConfig.mv_resize_method must be one of {RESIZE_METHODS}, "
                f"got {self.mv_resize_method!r}"
            )
        if not 0.0 <= self.rotate_degrees < 180.0:
            raise ValueError(
                f"AugmentConfig.rotate_degrees must be in [0, 180), got {self.rotate_degrees!r}"
            )
        object.__setattr__(self, "crop_ratio", (float(lo), float(hi)))
        object.__setattr__(self, "color_jitter", as_color_jitter(self.color_jitter))
        object.__setattr__(self, "iframe_color_jitter", as_color_jitter(self.iframe_color_jitter))
        object.__setattr__(self, "blur", as_blur(self.blur))


def _as_dataclass(cls, value):
    """None / False -> None, True -> defaults, mapping -> cls(**mapping), instance as is."""
    if value is None or value is False:
        return None
    if value is True:
        return cls()
    if isinstance(value, cls):
        return value
    if isinstance(value, Mapping):
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} keys {unknown}; known: {sorted(known)}")
        return cls(**value)
    raise ValueError(f"expected a {cls.__name__}, a mapping, True or None, got {value!r}")


def as_color_jitter(value) -> Optional[ColorJitter]:
    """Coerces a config value (None, True, mapping, ColorJitter) to ColorJitter or None."""
    return _as_dataclass(ColorJitter, value)


def as_blur(value) -> Optional[GaussianBlur]:
    """Coerces a config value (None, True, mapping, GaussianBlur) to GaussianBlur or None."""
    return _as_dataclass(GaussianBlur, value)


# ---------------------------------------------------------------------------
# Helpers


def chain(*ops: Op) -> Op:
    """Composes ops left to right."""

    def run(data: dict) -> dict:
        for op in ops:
            data = op(data)
        return data

    return run


def _default_salt(name: str, keys: Sequence[str]) -> int:
    # crc32, not hash(): stable across processes, so seeds reproduce.
    return zlib.crc32(f"{name}:{','.join(keys)}".encode()) & 0x7FFFFFFF


def _op_seed(data: dict, salt: int, op_name: str):
    if features.SEED not in data:
        raise ValueError(
            f"{op_name} is random and needs data[{features.SEED!r}] (int [2]); "
            f"keys present: {sorted(data)}"
        )
    return tf.random.experimental.stateless_fold_in(data[features.SEED], salt)


def _keys(keys) -> tuple:
    return (keys,) if isinstance(keys, str) else tuple(keys)


def _flatten_images(x):
    """[..., H, W, C] -> [N, H, W, C] and the leading shape."""
    shape = tf.shape(x)
    lead = shape[:-3]
    return tf.reshape(x, tf.concat([[-1], shape[-3:]], axis=0)), lead


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
    flat, lead = _flatten_images(images)  # [N, H, W, C]
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
    keys = _keys(keys)
    salt = _default_salt("random_resized_crop", keys) if salt is None else salt
    methods = dict(methods or {})

    def op(data: dict) -> dict:
        data = dict(data)
        seed = _op_seed(data, salt, "random_resized_crop")
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
    keys = _keys(keys)
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
    keys = _keys(keys)
    mv_keys = set(_keys(mv_keys))
    salt = _default_salt("random_flip", keys) if salt is None else salt

    def op(data: dict) -> dict:
        data = dict(data)
        seed = _op_seed(data, salt, "random_flip")
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
    flat, lead = _flatten_images(images)  # [N, H, W, C]
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
    keys = _keys(keys)
    mv_keys = set(_keys(mv_keys))
    methods = dict(methods or {})
    salt = _default_salt("random_rotate", keys) if salt is None else salt
    limit = math.radians(max_degrees)

    def op(data: dict) -> dict:
        data = dict(data)
        angle = tf.random.stateless_uniform(
            [], _op_seed(data, salt, "random_rotate"), -limit, limit
        )
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


# ---------------------------------------------------------------------------
# Photometric ops (RGB in [0, 1])
#
# The definitions are torchvision's (``torchvision.transforms.functional``),
# which the authors' code calls frame by frame with one draw per clip.

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


def sample_color_jitter(seed, jitter: ColorJitter) -> dict:
    """One draw of :class:`ColorJitter` from a stateless ``seed`` (int ``[2]``).

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


def color_jitter(key: str, jitter: ColorJitter, *, salt: Optional[int] = None) -> Op:
    """:class:`ColorJitter` of ``data[key]`` (RGB in [0, 1]); one draw for all its frames.

    The draw is :func:`sample_color_jitter` of the sample seed folded with
    ``salt`` (default: from the key, so the clip and the I-frame draw
    independently). Grayscale is not done here: see :func:`random_grayscale`.
    """
    salt = _default_salt("color_jitter", (key,)) if salt is None else salt

    def op(data: dict) -> dict:
        data = dict(data)
        draw = sample_color_jitter(_op_seed(data, salt, "color_jitter"), jitter)
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
    _check_prob("random_grayscale prob", prob)
    salt = _default_salt("random_grayscale", (key,)) if salt is None else salt

    def op(data: dict) -> dict:
        data = dict(data)
        u = tf.random.stateless_uniform([], _op_seed(data, salt, "random_grayscale"))
        x = data[key]

        def grey():
            gray = to_grayscale(x)
            return tf.concat([gray, gray, gray], axis=-1)

        data[key] = tf.cond(u < prob, grey, lambda: x)
        return data

    return op


def blur_images(x, sigma, kernel_size: int):
    """Separable Gaussian blur of ``x`` ``[..., H, W, C]`` with reflected borders."""
    x = tf.convert_to_tensor(x, tf.float32)
    flat, lead = _flatten_images(x)  # [N, H, W, C]
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


def gaussian_blur(key: str, blur: GaussianBlur, *, salt: Optional[int] = None) -> Op:
    """:class:`GaussianBlur` of ``data[key]``; one sigma for all its frames."""
    salt = _default_salt("gaussian_blur", (key,)) if salt is None else salt

    def op(data: dict) -> dict:
        data = dict(data)
        u = tf.random.stateless_uniform([2], _op_seed(data, salt, "gaussian_blur"))
        sigma = blur.sigma_min + (blur.sigma_max - blur.sigma_min) * u[0]
        x = data[key]
        data[key] = tf.cond(
            u[1] < blur.prob, lambda: blur_images(x, sigma, blur.kernel_size), lambda: x
        )
        return data

    return op


# ---------------------------------------------------------------------------
# Value scaling


def to_unit_range(keys) -> Op:
    """RGB 0..255 (uint8 or float) -> float32 [0, 1]."""
    keys = _keys(keys)

    def op(data: dict) -> dict:
        data = dict(data)
        for key in keys:
            data[key] = tf.cast(data[key], tf.float32) / 255.0
        return data

    return op


def normalize(
    keys, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
) -> Op:
    """``(x - mean) / std`` over the last (channel) axis; ImageNet statistics by default."""
    keys = _keys(keys)
    mean_t = tf.constant(mean, tf.float32)
    std_t = tf.constant(std, tf.float32)

    def op(data: dict) -> dict:
        data = dict(data)
        for key in keys:
            data[key] = (tf.cast(data[key], tf.float32) - mean_t) / std_t
        return data

    return op


def scale_motion(keys, *, clip: float = 10.0, div: float = 10.0) -> Op:
    """Vectors in pixels -> clamp to +-``clip`` -> divide by ``div`` (authors: 10, 10)."""
    keys = _keys(keys)

    def op(data: dict) -> dict:
        data = dict(data)
        for key in keys:
            data[key] = tf.clip_by_value(tf.cast(data[key], tf.float32), -clip, clip) / div
        return data

    return op


def rgb_photometric(key: str, config: AugmentConfig) -> Op:
    """The photometric part of the clip / I-frame recipe, in the authors' order.

    [0, 1], Gaussian blur, colour jitter, random grayscale, ImageNet
    normalisation (their pretraining list is crop, flip, blur, jitter,
    grayscale, normalise; finetuning the same without grayscale). Each step
    draws once for the whole of ``data[key]`` (all frames of a clip), from a
    salt of its own and the key: the clip and the I-frame, and the steps of
    one key, draw independently.
    """
    ops = [to_unit_range(key)]
    if config.blur is not None:
        ops.append(gaussian_blur(key, config.blur))
    jitter = config.color_jitter
    if jitter is not None:
        ops.append(color_jitter(key, jitter))
        if jitter.grayscale_prob > 0:
            ops.append(random_grayscale(key, jitter.grayscale_prob))
    ops.append(normalize(key))
    return chain(*ops)


def negative_motion(config: AugmentConfig) -> Op:
    """The recipe of the negative motion clips (key NEGATIVES ``[K, L, h, w, 2]``).

    Each negative gets its own random resized crop (grid extent MV_EXTENT)
    and flip, then the vectors are clamped and scaled like the target's.
    """
    return chain(
        random_resized_crop(
            features.NEGATIVES,
            config.crop_size,
            min_area=config.min_crop_area,
            ratio=config.crop_ratio,
            independent=True,
            extent_keys={features.NEGATIVES: features.MV_EXTENT},
            methods={features.NEGATIVES: config.mv_resize_method},
        ),
        random_flip(
            features.NEGATIVES,
            prob=config.flip_prob,
            mv_keys=features.NEGATIVES,
            negate_mv_x=config.flip_negates_mv_x,
            independent=True,
        ),
        scale_motion(features.NEGATIVES, clip=config.mv_clip, div=config.mv_div),
    )

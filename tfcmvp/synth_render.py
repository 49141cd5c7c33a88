"""Rendering one synthetic clip: scene, camera drift and textured moving objects.

:func:`render_clip` draws the frames of one video of the data set that
:func:`tfcmvp.synth.make_dataset` encodes (the design is described in
:mod:`tfcmvp.synth`): a background of a scene family
(:mod:`tfcmvp.synth_scenes`) seen by a slowly drifting camera, and one or two
textured shapes moving as their class says. NumPy only.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional, Sequence

import numpy as np

from tfcmvp import synth_scenes as scenes

# classInd.txt order. Each class is invariant under a horizontal flip.
CLASSES = ("MoveUp", "MoveDown", "SwingSideways", "ZoomIn", "StayStill")

# Object texture: number of noise layers blended in the
# endless zoom, the value-noise grid of one layer, and the finest period (px).
_ZOOM_LAYERS = 3
_NOISE_GRID = 16
_FINEST_PERIOD = 40.0
# Every shape lies within this many half-sizes of its centre.
_REACH = 1.2


@dataclasses.dataclass
class RenderedClip:
    """One rendered (not yet encoded) video.

    Attributes:
      class_name: the motion class.
      scene: the scene family of the background.
      frames: uint8 ``[T, H, W, 3]`` RGB.
      object_alpha: float32 ``[T, H, W]`` in [0, 1], coverage of the frame by
        the objects (1 inside an object), for tests and inspection.
      object_centres: one float ``[T, 2]`` (x, y) screen track per object, in
        pixels (pixel centres at integers), camera drift included.
      camera_velocity: ``(vx, vy)`` of the camera in px/frame; the scene
        content moves by the opposite of it on screen.
    """

    class_name: str
    scene: str
    frames: np.ndarray
    object_alpha: np.ndarray
    object_centres: list
    camera_velocity: tuple


# ---------------------------------------------------------------------------
# Objects: shape masks and texture.


@dataclasses.dataclass
class _Shape:
    kind: str
    half_h: float
    half_w: float
    power: float
    wobble: np.ndarray  # [3, 2] amplitude and phase of radial harmonics 2..4

    def alpha(self, uy: np.ndarray, ux: np.ndarray) -> np.ndarray:
        """Anti-aliased coverage at offsets (px) from the object's centre."""
        ny, nx = uy / self.half_h, ux / self.half_w
        if self.kind == "ellipse":
            rho = np.sqrt(ny * ny + nx * nx)
        elif self.kind == "rounded_rect":
            rho = (np.abs(ny) ** self.power + np.abs(nx) ** self.power) ** (1.0 / self.power)
        else:  # blob: an ellipse whose radius wobbles with the angle
            theta = np.arctan2(ny, nx)
            harmonics = zip((2, 3, 4), self.wobble)
            radius = 1.0 + sum(a * np.cos(k * theta + p) for k, (a, p) in harmonics)
            rho = np.sqrt(ny * ny + nx * nx) / radius
        edge = (1.0 - rho) * min(self.half_h, self.half_w) + 0.5  # ~ px inside the outline
        return np.clip(edge, 0.0, 1.0).astype(np.float32)


def _random_shape(rng: np.random.Generator, area: float) -> _Shape:
    """A random shape with about ``area`` pixels of coverage."""
    kind = str(rng.choice(["ellipse", "rounded_rect", "blob"]))
    aspect = rng.uniform(0.7, 1.4)  # height / width
    # Harmonics of at most 6 % each keep a blob within 1.2 half-sizes (the render reach).
    wobble = np.stack([rng.uniform(-0.06, 0.06, 3), rng.uniform(0, 2 * np.pi, 3)], axis=-1)
    power = float(rng.uniform(3, 6))
    shape = _Shape(kind, math.sqrt(aspect), 1.0 / math.sqrt(aspect), power, wobble)
    # Scale to the wanted area, measured on a unit-scale raster.
    probe = 64.0
    yy, xx = np.mgrid[-probe:probe, -probe:probe].astype(np.float32) + 0.5
    unit = _Shape(kind, shape.half_h * probe / 2, shape.half_w * probe / 2, shape.power, wobble)
    unit_area = float(unit.alpha(yy, xx).sum())
    scale = math.sqrt(area / unit_area) * probe / 2
    shape.half_h *= scale
    shape.half_w *= scale
    return shape


@dataclasses.dataclass
class _Texture:
    """Multi-scale noise through a palette; ``level`` sets the zoom (see :func:`_zoom_texture`)."""

    grid: np.ndarray  # [_NOISE_GRID, _NOISE_GRID] value noise, period 1
    offset: np.ndarray  # [2] texture coordinate of the object's centre
    palette: np.ndarray  # [K, 3]
    gain: float

    def colour(self, uy: np.ndarray, ux: np.ndarray, level: float) -> np.ndarray:
        """Colours ``[len(uy), len(ux), 3]`` at row offsets ``uy`` x column offsets ``ux`` (px)."""
        field = _zoom_texture(self.grid, self.offset, uy, ux, level, self.gain)
        return scenes.apply_palette(field, self.palette)


def _zoom_texture(grid, offset, uy, ux, level: float, gain: float) -> np.ndarray:
    """A texture that can zoom in forever without a seam, ``[len(uy), len(ux)]`` in [0, 1].

    ``_ZOOM_LAYERS`` copies of one value noise are blended at periods
    ``_FINEST_PERIOD * 2 ** (j + f)`` (j = 0, 1, 2, f = level mod 1) with weights
    ``sin^2(pi (j + f) / L)``. Raising ``level`` magnifies every layer by the
    same factor about the centre (u = 0), i.e. a true zoom; when f wraps from 1
    to 0, layer j takes exactly the place layer j + 1 had and the layer that
    drops out has weight 0, so the texture is continuous. The weights always
    sum to L / 2.
    """
    frac = level % 1.0
    total = np.zeros((len(uy), len(ux)), np.float32)
    for j in range(_ZOOM_LAYERS):
        rank = j + frac
        period = _FINEST_PERIOD * 2.0**rank
        weight = math.sin(math.pi * rank / _ZOOM_LAYERS) ** 2
        qy = (np.asarray(uy, np.float64) / period + offset[0]) * _NOISE_GRID
        qx = (np.asarray(ux, np.float64) / period + offset[1]) * _NOISE_GRID
        total += weight * scenes.value_noise(grid, qy, qx)
    total *= 2.0 / _ZOOM_LAYERS
    return np.clip(0.5 + (total - 0.5) * gain, 0.0, 1.0)


def _random_texture(rng: np.random.Generator, saturation=(0.3, 1.0)) -> _Texture:
    return _Texture(
        grid=rng.random((_NOISE_GRID, _NOISE_GRID)).astype(np.float32),
        offset=rng.random(2).astype(np.float32),
        palette=scenes.random_palette(rng, saturation),
        gain=float(rng.uniform(2.5, 3.5)),
    )


# ---------------------------------------------------------------------------
# Motion (the class).


@dataclasses.dataclass
class _Object:
    shape: _Shape
    texture: _Texture
    centre: np.ndarray  # float [T, 2] (y, x) screen position per frame, camera included
    zoom_level: np.ndarray  # float [T] texture zoom level per frame


def _object_track(
    rng: np.random.Generator,
    class_name: str,
    shape: _Shape,
    height: int,
    width: int,
    num_frames: int,
    camera: np.ndarray,
    speed_scale: float = 1.0,
):
    """Screen centre [T, 2] (y, x) and zoom level [T] of one object of ``class_name``.

    ``speed_scale`` multiplies every speed (the held-out variant moves slower).
    """
    t = np.arange(num_frames, dtype=np.float64)
    hh, hw = shape.half_h, shape.half_w

    # Anchors (the position at mid-video) keep the object in the frame where possible.
    def anchor(half, size, margin=0.0):
        lo, hi = half + margin, size - half - margin
        return rng.uniform(lo, hi) if hi > lo else size / 2.0

    y = np.full(num_frames, anchor(hh, height))
    x = np.full(num_frames, anchor(hw, width))
    level = np.full(num_frames, rng.random())
    sliding = class_name in ("MoveUp", "MoveDown")
    if sliding:
        speed = speed_scale * rng.uniform(1.0, 3.0) * (-1.0 if class_name == "MoveUp" else 1.0)
        y = rng.uniform(0, height + 2 * _REACH * hh) + speed * t
    elif class_name == "SwingSideways":
        amplitude = rng.uniform(12.0, 24.0)
        peak_speed = speed_scale * rng.uniform(1.5, 3.5)
        omega = peak_speed / amplitude  # rad/frame
        x = np.full(num_frames, anchor(hw, width, margin=amplitude))
        x = x + amplitude * np.sin(omega * t + rng.uniform(0, 2 * np.pi))
    elif class_name == "ZoomIn":
        # Texture points at the rim move out at 1.5-3 px/frame.
        rim = math.sqrt(hh * hw)
        rate = speed_scale * rng.uniform(1.5, 3.0) / rim  # relative growth per frame
        level = level + t * math.log2(1.0 + rate)
    elif class_name == "StayStill":
        wobble = rng.uniform(0.0, 0.5)
        for axis in (y, x):
            axis += wobble * np.sin(t * rng.uniform(0.05, 0.3) + rng.uniform(0, 2 * np.pi))
    else:
        raise ValueError(f"unknown synthetic class {class_name!r}; known: {', '.join(CLASSES)}")
    centre = np.stack([y, x], axis=-1) - camera  # [T, 2]
    if sliding:
        # Wrap round on screen: leave on one side fully, re-enter on the other.
        period = height + 2 * _REACH * hh
        centre[:, 0] = centre[:, 0] % period - _REACH * hh
    return centre, level


# ---------------------------------------------------------------------------
# Rendering.


def _render_object(
    frame: np.ndarray, coverage: np.ndarray, obj: _Object, index: int, sprite_cache: dict
) -> None:
    """Alpha-composite one object into ``frame`` [H, W, 3] at frame ``index``, in place.

    The shape's coverage is rasterised once (a sprite with a one-pixel zero
    border) and moved to its sub-pixel position by a bilinear shift. A rigid
    object's colours are a sprite too; a zooming object's texture is evaluated
    anew at the exact offsets of the covered pixels from its centre.
    """
    shape = obj.shape
    reach_y = int(math.ceil(shape.half_h * _REACH)) + 1
    reach_x = int(math.ceil(shape.half_w * _REACH)) + 1
    rigid = obj.zoom_level[0] == obj.zoom_level[-1]
    key = id(obj)
    if key not in sprite_cache:
        uy = np.arange(-reach_y, reach_y + 1, dtype=np.float32)
        ux = np.arange(-reach_x, reach_x + 1, dtype=np.float32)
        alpha = shape.alpha(uy[:, None], ux[None, :])  # [h, w]
        premult = None
        if rigid:
            premult = obj.texture.colour(uy, ux, obj.zoom_level[0]) * alpha[..., None]
            premult = np.pad(premult, ((1, 1), (1, 1), (0, 0)))
        sprite_cache[key] = (np.pad(alpha, 1), premult)
    pad_a, pad_c = sprite_cache[key]

    cy, cx = obj.centre[index]
    top, left = cy - reach_y, cx - reach_x  # where sprite pixel (0, 0) goes
    iy, ix = math.floor(top), math.floor(left)
    fy, fx = np.float32(top - iy), np.float32(left - ix)

    def shift(p):  # [h + 2, w + 2, ...] -> [h + 1, w + 1, ...] moved by (fy, fx)
        rows = (1 - fy) * p[1:] + fy * p[:-1]
        return (1 - fx) * rows[:, 1:] + fx * rows[:, :-1]

    height, width = frame.shape[:2]
    y0, x0 = max(iy, 0), max(ix, 0)
    y1, x1 = min(iy + pad_a.shape[0] - 1, height), min(ix + pad_a.shape[1] - 1, width)
    if y1 <= y0 or x1 <= x0:
        return  # off screen
    crop = (slice(y0 - iy, y1 - iy), slice(x0 - ix, x1 - ix))
    alpha = shift(pad_a)[crop]  # [y1 - y0, x1 - x0]
    if rigid:
        premult = shift(pad_c)[crop]
    else:
        uy = np.arange(y0, y1, dtype=np.float64) - cy
        ux = np.arange(x0, x1, dtype=np.float64) - cx
        premult = obj.texture.colour(uy, ux, obj.zoom_level[index]) * alpha[..., None]
    region = frame[y0:y1, x0:x1]
    region *= (1 - alpha)[..., None]
    region += premult
    cov = coverage[y0:y1, x0:x1]
    cov += alpha * (1 - cov)


def render_clip(
    seed: int,
    class_name: str,
    group: int,
    clip: int,
    *,
    width: int = 160,
    height: int = 128,
    num_frames: int = 96,
    camera_speed: Optional[float] = None,
    classes: Sequence[str] = CLASSES,
    variant: str = "standard",
    scene: Optional[str] = None,
) -> RenderedClip:
    """Render video ``v_<class_name>_g<group>_c<clip>`` of the data set made with ``seed``.

    The scene (background) comes from a stream seeded by (seed, class, group),
    everything else from one seeded by (seed, class, group, clip), so the same
    arguments always give the same pixels. The scene family is
    :func:`tfcmvp.synth_scenes.scene_of` the class and group unless `scene`
    names one.

    Args:
      seed: data set seed.
      class_name: one of ``classes``.
      group, clip: 1-based UCF-style group and clip numbers.
      width, height: frame size in pixels.
      num_frames: T.
      camera_speed: largest camera drift in px/frame (direction and speed random);
        None = the variant's.
      classes: the class list (its order enters the seeds).
      variant: generator variant (``tfcmvp.synth_scenes.VARIANTS``).
      scene: scene family; None = the one of (class, group) in the variant.

    Returns:
      A :class:`RenderedClip`.
    """
    if class_name not in classes:
        raise ValueError(f"unknown synthetic class {class_name!r}; known: {', '.join(classes)}")
    label = list(classes).index(class_name)
    knobs = scenes.get_variant(variant)
    if scene is None:
        scene = knobs.scenes[scenes.scene_of(label, group, len(knobs.scenes))]
    if camera_speed is None:
        camera_speed = knobs.camera_speed
    scene_rng = np.random.default_rng([seed, label, group, 0])
    rng = np.random.default_rng([seed, label, group, clip, 1])

    # Camera: constant drift, centred on mid-video so anchors sit at their place then.
    angle = rng.uniform(0, 2 * np.pi)
    speed = rng.uniform(0, camera_speed)
    velocity = np.array([speed * math.sin(angle), speed * math.cos(angle)])  # (vy, vx)
    t = np.arange(num_frames, dtype=np.float64)
    camera = (t - (num_frames - 1) / 2.0)[:, None] * velocity  # [T, 2] (y, x)
    margin = int(math.ceil(np.abs(camera).max())) + 2
    canvas = scenes.background(
        scene_rng, height + 2 * margin, width + 2 * margin, scene, knobs.saturation
    )  # [H + 2m, W + 2m, 3]
    objects = _objects(rng, knobs, class_name, height, width, num_frames, camera)
    frames, coverage = _film(canvas, camera + margin, objects, height, width)
    return RenderedClip(
        class_name=class_name,
        scene=scene,
        frames=frames,
        object_alpha=coverage,
        object_centres=[obj.centre[:, ::-1].copy() for obj in objects],
        camera_velocity=(float(velocity[1]), float(velocity[0])),
    )


def _objects(rng, knobs, class_name: str, height, width, num_frames, camera) -> list:
    """One or two objects covering the variant's share of the frame, with their tracks."""
    # Objects: 25-40 % of the frame in total, split over one or two.
    frame_area = width * height
    total_area = rng.uniform(*knobs.object_area) * frame_area
    shares = [1.0]
    if rng.random() < 0.5:
        first = rng.uniform(0.4, 0.6)
        shares = [first, 1.0 - first]
    objects = []
    for share in shares:
        shape = _random_shape(rng, total_area * share)
        centre, level = _object_track(
            rng, class_name, shape, height, width, num_frames, camera, knobs.speed_scale
        )
        objects.append(_Object(shape, _random_texture(rng, knobs.saturation), centre, level))
    return objects


def _film(canvas, offsets, objects, height: int, width: int) -> tuple:
    """(uint8 frames [T, H, W, 3], object coverage [T, H, W]): the drifting camera's view
    of ``canvas`` (top-left corner at ``offsets[t]``, (y, x)) with the objects over it."""
    num_frames = len(offsets)
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    coverage_all = np.empty((num_frames, height, width), np.float32)
    sprite_cache: dict = {}
    for index in range(num_frames):
        # Background at a sub-pixel offset: bilinear blend of four integer crops.
        oy, ox = offsets[index]
        iy, ix = int(math.floor(oy)), int(math.floor(ox))
        fy, fx = np.float32(oy - iy), np.float32(ox - ix)
        crop = canvas[iy : iy + height + 1, ix : ix + width + 1]  # [H + 1, W + 1, 3]
        rows = (1 - fy) * crop[:-1] + fy * crop[1:]
        frame = (1 - fx) * rows[:, :-1] + fx * rows[:, 1:]  # [H, W, 3]
        coverage = np.zeros((height, width), np.float32)
        for obj in objects:
            _render_object(frame, coverage, obj, index, sprite_cache)
        frames[index] = np.clip(frame * 255.0 + 0.5, 0, 255).astype(np.uint8)
        coverage_all[index] = coverage
    return frames, coverage_all

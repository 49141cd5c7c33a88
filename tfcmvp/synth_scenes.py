"""Scenes and generator variants of the synthetic data set (:mod:`tfcmvp.synth`).

Every synthetic video carries two independent labels: its **motion** class
(how the objects move, :data:`tfcmvp.synth.CLASSES`) and its **scene** (the
family of its background). A scene family is defined by the *structure* of the
background (a grating, tiles, clouds, a horizon...), never by its colours:
every scene instance draws its own palette, so a representation can only tell
the scenes apart by layout and texture, not by colour statistics (which the
context task could match without learning anything about the scene).

Two generator variants exist, so that a recipe tuned on one can be checked on
the other:

* ``standard``: what the quickstart and the tiny configs are tuned on.
* ``heldout``: other scene families, other object sizes, speeds, camera drift
  and palettes. Nothing is ever tuned on it; it is the first check that a
  result is not an artefact of the standard generator.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from tfcmvp.errors import ConfigError

# Scene families of each variant, in label order (scene label = index).
STANDARD_SCENES = ("Stripes", "Tiles", "Clouds", "Horizon")
HELDOUT_SCENES = ("Rings", "Dots", "Waves", "Diagonal")


@dataclasses.dataclass(frozen=True)
class Variant:
    """Knobs of one generator variant.

    Attributes:
      name: "standard" or "heldout".
      scenes: scene family names (the scene labels, in order).
      object_area: (low, high) share of the frame covered by the objects.
      speed_scale: multiplies every object speed of the motion classes.
      camera_speed: largest camera drift in px/frame.
      saturation: (low, high) saturation of palette colours.
    """

    name: str
    scenes: tuple
    object_area: tuple
    speed_scale: float
    camera_speed: float
    saturation: tuple


VARIANTS = {
    "standard": Variant("standard", STANDARD_SCENES, (0.25, 0.40), 1.0, 0.25, (0.3, 1.0)),
    "heldout": Variant("heldout", HELDOUT_SCENES, (0.15, 0.28), 0.7, 0.5, (0.15, 0.7)),
}


def get_variant(name: str) -> Variant:
    """The :class:`Variant` called `name`; a ValueError naming the known ones otherwise."""
    if name not in VARIANTS:
        raise ConfigError(f"unknown synthetic variant {name!r}; known: {', '.join(VARIANTS)}")
    return VARIANTS[name]


def scene_of(label: int, group: int, num_scenes: int) -> int:
    """Scene family of group `group` (1-based) of motion class `label` (0-based).

    Rotating by the class makes the two labels independent and balanced: any
    ``num_scenes`` consecutive groups of a class cover every scene once, and so
    do the test groups (the lowest ones) when there are ``num_scenes`` of them.
    """
    return (group - 1 + label) % num_scenes


# ---------------------------------------------------------------------------
# Noise and colour.


def smoothstep(t):
    return t * t * (3.0 - 2.0 * t)


def _smooth_taps(coords: np.ndarray, size: int):
    """Lower grid index, upper grid index and smooth weight of the upper one, wrapping."""
    coords = np.asarray(coords, np.float64)
    lower = np.floor(coords)
    weight = smoothstep(coords - lower).astype(np.float32)
    lower = lower.astype(np.int64) % size
    return lower, (lower + 1) % size, weight


def value_noise(grid: np.ndarray, qy: np.ndarray, qx: np.ndarray) -> np.ndarray:
    """``grid`` [gh, gw] (periodic) sampled at grid rows ``qy`` [h] x columns ``qx`` [w] -> [h, w].

    Value noise is separable: interpolate the grid's rows at ``qy``, then the
    columns of the result at ``qx``; much cheaper than per-pixel lookups.
    """
    gh, gw = grid.shape
    y0, y1, ty = _smooth_taps(qy, gh)
    x0, x1, tx = _smooth_taps(qx, gw)
    rows = grid[y0] + (grid[y1] - grid[y0]) * ty[:, None]  # [h, gw]
    return rows[:, x0] + (rows[:, x1] - rows[:, x0]) * tx[None, :]  # [h, w]


def random_palette(rng: np.random.Generator, saturation=(0.3, 1.0)) -> np.ndarray:
    """3-5 random colours, float32 ``[K, 3]`` in [0, 1], with one dark and one bright."""
    k = int(rng.integers(3, 6))
    hue0 = rng.random()
    hues = (hue0 + rng.uniform(-0.25, 0.25, size=k)) % 1.0
    sats = rng.uniform(*saturation, size=k)
    # One dark and one bright colour: enough contrast for the encoder to find texture.
    vals = rng.uniform(0.25, 1.0, size=k)
    vals[:2] = rng.uniform(0.15, 0.4), rng.uniform(0.8, 1.0)
    vals = rng.permutation(vals)
    return hsv_to_rgb(np.stack([hues, sats, vals], axis=-1)).astype(np.float32)


def hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    """HSV in [0, 1] -> RGB in [0, 1]; any leading shape, last axis 3."""
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    i = np.floor(h * 6.0).astype(np.int64) % 6
    f = h * 6.0 - np.floor(h * 6.0)
    p = v * (1 - s)
    q = v * (1 - s * f)
    t = v * (1 - s * (1 - f))
    choices = [
        np.stack([v, t, p], -1),
        np.stack([q, v, p], -1),
        np.stack([p, v, t], -1),
        np.stack([p, q, v], -1),
        np.stack([t, p, v], -1),
        np.stack([v, p, q], -1),
    ]
    out = np.zeros(hsv.shape, dtype=np.float64)
    for index, value in enumerate(choices):
        out = np.where((i == index)[..., None], value, out)
    return out


def apply_palette(field: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Scalar field in [0, 1] -> colours, piecewise linear through ``palette`` [K, 3]."""
    k = len(palette)
    pos = np.clip(field, 0.0, 1.0) * (k - 1)
    lo = np.minimum(np.floor(pos).astype(np.int64), k - 2)
    frac = (pos - lo)[..., None].astype(np.float32)
    return palette[lo] * (1 - frac) + palette[lo + 1] * frac  # [..., 3]


def normalise(field: np.ndarray) -> np.ndarray:
    """Stretch a field to [0, 1] between its 1st and 99th percentiles."""
    lo, hi = np.percentile(field, [1, 99])
    return np.clip((field - lo) / max(hi - lo, 1e-6), 0.0, 1.0).astype(np.float32)


# ---------------------------------------------------------------------------
# Backgrounds: one scalar field per scene family, then a palette and lighting.


class _Canvas:
    """Pixel coordinates and a seeded noise source for one background."""

    def __init__(self, rng: np.random.Generator, height: int, width: int):
        self.rng, self.height, self.width = rng, height, width
        self.rows = np.arange(height, dtype=np.float32)
        self.cols = np.arange(width, dtype=np.float32)
        self.yy, self.xx = self.rows[:, None], self.cols[None, :]  # broadcast to [H, W]
        self.diag = math.hypot(height, width)

    def noise(self, cell_sizes, weights) -> np.ndarray:
        total = np.zeros((self.height, self.width), np.float32)
        for cell, weight in zip(cell_sizes, weights):
            # Grid larger than the canvas: the noise does not visibly repeat.
            grid = self.rng.random(
                (int(self.height / cell) + 2, int(self.width / cell) + 2)
            ).astype(np.float32)
            qy, qx = self.rows / cell + self.rng.random(), self.cols / cell + self.rng.random()
            total += weight * value_noise(grid, qy, qx)
        return total

    def along(self, angle: float) -> np.ndarray:
        """Distance along the direction `angle` (radians), in pixels."""
        return self.xx * np.cos(angle) + self.yy * np.sin(angle)


def _stripes(c: _Canvas) -> np.ndarray:
    # One oriented grating, mostly straight.
    period = c.rng.uniform(10, 24)
    phase = c.along(c.rng.uniform(0, np.pi)) * (2 * np.pi / period)
    return np.sin(phase + c.rng.uniform(0, 2 * np.pi)) + c.rng.uniform(0.2, 0.5) * c.noise(
        [10, 5], [1.0, 0.5]
    )


def _tiles(c: _Canvas) -> np.ndarray:
    # A rotated grid of square tiles with dark grout lines.
    size = c.rng.uniform(14, 28)
    angle = c.rng.uniform(0, np.pi / 2)
    u, v = c.along(angle) / size, c.along(angle + np.pi / 2) / size
    cell = (np.floor(u) + np.floor(v)) % 2
    grout = np.minimum(np.abs(u - np.round(u)), np.abs(v - np.round(v))) < 0.08
    return 0.6 * cell + 0.3 * c.noise([6], [1.0]) - 0.8 * grout


def _clouds(c: _Canvas) -> np.ndarray:
    # Multi-octave smooth noise: no orientation, no edges.
    base = c.rng.uniform(16, 32)
    return c.noise([base, base / 2, base / 4], [1.0, 0.5, 0.3])


def _horizon(c: _Canvas) -> np.ndarray:
    # Smooth sky above a textured ground; a wavy horizon at 35-65 % of the height.
    level = c.rng.uniform(0.35, 0.65) * c.height
    wave = c.rng.uniform(2, 6) * np.sin(c.xx / c.rng.uniform(20, 40) + c.rng.uniform(0, 6.3))
    ground = c.yy > level + wave
    sky = 0.25 + 0.25 * c.yy / c.height + 0.05 * c.noise([24], [1.0])
    soil = 0.6 + 0.4 * c.noise([6, 3], [1.0, 0.6])
    return np.where(ground, soil, sky)


def _rings(c: _Canvas) -> np.ndarray:
    # Concentric rings around a point that may lie outside the frame.
    cy, cx = c.rng.uniform(-0.3, 1.3) * c.height, c.rng.uniform(-0.3, 1.3) * c.width
    radius = np.sqrt((c.yy - cy) ** 2 + (c.xx - cx) ** 2)
    return np.sin(radius * 2 * np.pi / c.rng.uniform(10, 20)) + 0.3 * c.noise([8], [1.0])


def _dots(c: _Canvas) -> np.ndarray:
    # A jittered lattice of round spots.
    pitch = c.rng.uniform(12, 22)
    u, v = c.along(c.rng.uniform(0, np.pi)) / pitch, c.along(c.rng.uniform(0, np.pi)) / pitch
    du, dv = u - np.round(u), v - np.round(v)
    return (np.sqrt(du**2 + dv**2) < 0.3).astype(np.float32) + 0.3 * c.noise([8], [1.0])


def _waves(c: _Canvas) -> np.ndarray:
    # Horizontal bands bent by a slow sinusoid.
    period = c.rng.uniform(10, 20)
    bend = c.rng.uniform(4, 10) * np.sin(c.xx / c.rng.uniform(15, 30))
    return np.sin((c.yy + bend) * 2 * np.pi / period) + 0.2 * c.noise([10], [1.0])


def _diagonal(c: _Canvas) -> np.ndarray:
    # Two halves split by a diagonal: a smooth gradient and a fine noise.
    angle = c.rng.uniform(np.pi / 6, np.pi / 3) * c.rng.choice([-1, 1])
    side = c.along(angle) - c.rng.uniform(0.3, 0.7) * c.diag * abs(np.cos(angle))
    gradient = c.along(c.rng.uniform(0, 2 * np.pi)) / c.diag
    return np.where(side > 0, gradient, 0.5 + 0.5 * c.noise([3], [1.0]))


_FIELDS = {
    "Stripes": _stripes,
    "Tiles": _tiles,
    "Clouds": _clouds,
    "Horizon": _horizon,
    "Rings": _rings,
    "Dots": _dots,
    "Waves": _waves,
    "Diagonal": _diagonal,
}


def background(
    rng: np.random.Generator, height: int, width: int, scene: str, saturation=(0.3, 1.0)
) -> np.ndarray:
    """A background of the scene family `scene`, float32 ``[height, width, 3]`` in [0, 1].

    The structure comes from the family; the palette and the lighting are
    drawn for every instance, so colour tells nothing about the family.
    """
    if scene not in _FIELDS:
        raise ValueError(f"unknown synthetic scene {scene!r}; known: {', '.join(_FIELDS)}")
    canvas = _Canvas(rng, height, width)
    field = _FIELDS[scene](canvas)
    colour = apply_palette(normalise(field), random_palette(rng, saturation))
    # Uneven lighting, as in a real scene.
    light = canvas.along(rng.uniform(0, 2 * np.pi)) / canvas.diag
    colour *= (1.0 - rng.uniform(0.0, 0.35) * (light - light.min()))[..., None]
    return colour.astype(np.float32)

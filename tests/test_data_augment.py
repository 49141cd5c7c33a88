"""Augmentation ops of tfcmvp.data.augment, each run eagerly AND inside tf.data."""

import collections
import colorsys
import math

import numpy as np
import pytest
import tensorflow as tf

from tfcmvp.config import BlurConfig, ColorJitterConfig, DataConfig
from tfcmvp.data import augment

MODES = ["eager", "tf.data"]


def run(op, data, mode):
    """Applies ``op`` to ``data`` eagerly or as a tf.data map; returns NumPy values."""
    data = {k: tf.convert_to_tensor(v) for k, v in data.items()}
    if mode == "eager":
        out = op(data)
    else:
        out = tf.data.Dataset.from_tensors(data).map(op).get_single_element()
    return {k: np.asarray(v) for k, v in out.items()}


def seed(n=0):
    return np.array([7, n], np.int64)


def resample_reference(image, region, size, extent=(1.0, 1.0), method="bilinear"):
    """NumPy half-pixel resampling of a frame-normalised region, edges clamped."""
    h, w = image.shape[:2]
    y0, x0, y1, x1 = np.asarray(region) * np.array([extent[0], extent[1]] * 2)
    j = (np.arange(size) + 0.5) / size
    ys = (y0 + j * (y1 - y0)) * h - 0.5
    xs = (x0 + j * (x1 - x0)) * w - 0.5

    def weights(pos, n):
        lo = np.floor(pos)
        frac = pos - lo
        i0 = np.clip(lo.astype(int), 0, n - 1)
        i1 = np.clip(lo.astype(int) + 1, 0, n - 1)
        return i0, i1, frac

    if method == "nearest":
        rows = np.clip(np.floor(ys + 0.5).astype(int), 0, h - 1)
        cols = np.clip(np.floor(xs + 0.5).astype(int), 0, w - 1)
        return image[rows][:, cols].astype(np.float64)
    r0, r1, fy = weights(ys, h)
    c0, c1, fx = weights(xs, w)
    img = image.astype(np.float64)
    rows = img[r0] * (1 - fy)[:, None, None] + img[r1] * fy[:, None, None]
    return rows[:, c0] * (1 - fx)[None, :, None] + rows[:, c1] * fx[None, :, None]


# --- configs ---------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"min_crop_area": 0.0}, "min_crop_area"),
        ({"crop_ratio": (2.0, 1.0)}, "crop_ratio"),
        ({"flip_prob": 1.5}, "flip_prob"),
        ({"mv_div": 0}, "mv_div"),
        ({"mv_resize_method": "bicubic"}, "mv_resize_method"),
        ({"crop_size": 0}, "crop_size"),
    ],
)
def test_data_config_rejects_bad_augmentation_values(kwargs, word):
    with pytest.raises(ValueError, match=word):
        DataConfig(**kwargs)


def test_jitter_and_blur_sections_are_typed_or_null():
    # The augmentation reads the sections as they are: a mapping is the loader's to
    # turn into a section (tfcmvp.config.load_config), not the dataset's.
    assert DataConfig(color_jitter=None).color_jitter is None
    assert DataConfig(blur=BlurConfig(prob=1.0)).blur == BlurConfig(prob=1.0)
    with pytest.raises(ValueError, match="color_jitter=.* must be a ColorJitterConfig or null"):
        DataConfig(color_jitter={"hue": 0.1})
    with pytest.raises(ValueError, match="blur=True must be a BlurConfig or null"):
        DataConfig(blur=True)
    with pytest.raises(ValueError, match="kernel_size"):
        BlurConfig(kernel_size=4)


def test_random_op_without_seed_names_the_key():
    with pytest.raises(ValueError, match="'seed'"):
        augment.random_flip("x")({"x": tf.zeros([2, 2, 1])})


# --- crop geometry ---------------------------------------------------------


def test_sample_crop_regions_area_and_ratio():
    aspect = 40 / 32
    regions = augment.sample_crop_regions(seed(), 300, aspect, 0.2, (3 / 4, 4 / 3)).numpy()
    h = regions[:, 2] - regions[:, 0]
    w = regions[:, 3] - regions[:, 1]
    assert np.all(regions >= -1e-6) and np.all(regions <= 1 + 1e-6)
    assert np.all(h * w >= 0.2 - 1e-5) and np.all(h * w <= 1 + 1e-5)
    ratio = (w * 40) / (h * 32)  # in pixels
    assert np.all(ratio >= 3 / 4 - 1e-4) and np.all(ratio <= 4 / 3 + 1e-4)
    assert h.std() > 0.05 and regions[:, 1].std() > 0.02  # really random


def test_sample_crop_regions_fallback_is_central():
    # A square frame cannot hold a crop of ratio >= 2 with area 1: centre, ratio clamped to 2.
    region = augment.sample_crop_regions(seed(), 1, 1.0, 1.0, (2.0, 3.0)).numpy()
    np.testing.assert_allclose(region, [[0.25, 0.0, 0.75, 1.0]], atol=1e-6)


@pytest.mark.parametrize("mode", MODES)
def test_crop_resize_exact_pixels(mode):
    image = np.tile(np.arange(8, dtype=np.float32)[None, :, None], [8, 1, 1])  # value = column
    op = lambda d: {"y": augment.crop_resize(d["x"], tf.constant([[0.0, 0.25, 1.0, 0.75]]), 4)}
    out = run(op, {"x": image}, mode)["y"]
    np.testing.assert_allclose(out[0, :, 0], [2, 3, 4, 5], atol=1e-5)  # columns 2..5 exactly


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("method", ["bilinear", "nearest"])
def test_crop_resize_matches_numpy_reference(mode, method):
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 255, [13, 17, 2]).astype(np.float32)
    for region in ([0.1, 0.2, 0.9, 0.7], [0.0, 0.0, 1.0, 1.0], [0.31, 0.05, 0.52, 0.45]):
        op = lambda d, r=region: {  # noqa: E731
            "y": augment.crop_resize(d["x"], tf.constant([r]), 11, method=method)
        }
        out = run(op, {"x": image}, mode)["y"]
        expected = resample_reference(image, region, 11, method=method)
        np.testing.assert_allclose(out, expected, atol=2e-3)


def _ramps(height, width, cover_h, cover_w):
    """Pixel-centre positions (v, u) in frame units of a grid covering cover_* of its size."""
    v = (np.arange(height) + 0.5) / height / cover_h
    u = (np.arange(width) + 0.5) / width / cover_w
    return np.stack(np.meshgrid(v, u, indexing="ij"), axis=-1).astype(np.float32)  # [H, W, 2]


@pytest.mark.parametrize("mode", MODES)
def test_same_region_on_rgb_and_vector_grid_is_aligned(mode):
    # Decoded frame 76x60 px; RGB stored at 40x32; vectors on 8-px cells: ceil -> 10x8 cells
    # covering 80x64 px, so the frame is 0.95 x 0.9375 of the grid.
    extent = np.array([60 / 64, 76 / 80], np.float32)
    rgb = _ramps(32, 40, 1.0, 1.0)
    grid = _ramps(8, 10, extent[0], extent[1])
    region = [0.2, 0.15, 0.8, 0.7]

    def op(d):
        r = tf.constant([region])
        return {
            "rgb": augment.crop_resize(d["rgb"], r, 12),
            "mv": augment.crop_resize(d["mv"], r, 12, extent=d["extent"]),
        }

    out = run(op, {"rgb": rgb, "mv": grid, "extent": extent}, mode)
    # Both show the same points of the scene: the ramps agree (linear -> exact in the interior).
    np.testing.assert_allclose(out["rgb"], out["mv"], atol=1e-4)
    # And they are the expected positions: output pixel centres of the region.
    j = (np.arange(12) + 0.5) / 12
    np.testing.assert_allclose(out["rgb"][:, 0, 0], 0.2 + j * 0.6, atol=1e-4)
    np.testing.assert_allclose(out["rgb"][0, :, 1], 0.15 + j * 0.55, atol=1e-4)


@pytest.mark.parametrize("mode", MODES)
def test_random_resized_crop_shared_between_keys(mode):
    extent = np.array([1.0, 1.0], np.float32)
    data = {
        "clip": np.stack([_ramps(32, 40, 1, 1)] * 3),
        "mv": np.stack([_ramps(8, 10, 1, 1)] * 2),
        "extent": extent,
        "seed": seed(3),
    }
    op = augment.random_resized_crop(("clip", "mv"), 6, extent_keys={"mv": "extent"})
    out = run(op, data, mode)
    assert out["clip"].shape == (3, 6, 6, 2) and out["mv"].shape == (2, 6, 6, 2)
    # One region for all frames of both keys; interior agrees (borders are clamped differently).
    np.testing.assert_allclose(out["clip"][0], out["clip"][2])
    np.testing.assert_allclose(out["clip"][0, 1:-1, 1:-1], out["mv"][0, 1:-1, 1:-1], atol=0.03)
    # Same seed -> same crop; another seed -> another crop.
    np.testing.assert_array_equal(run(op, data, mode)["clip"], out["clip"])
    assert not np.allclose(run(op, dict(data, seed=seed(4)), mode)["clip"], out["clip"])


@pytest.mark.parametrize("mode", MODES)
def test_random_resized_crop_independent_items(mode):
    items = np.stack([np.stack([_ramps(8, 10, 1, 1)] * 2)] * 4)  # [K=4, L=2, 8, 10, 2]
    op = augment.random_resized_crop("neg", 5, independent=True)
    out = run(op, {"neg": items, "seed": seed(1)}, mode)["neg"]
    assert out.shape == (4, 2, 5, 5, 2)
    np.testing.assert_allclose(out[:, 0], out[:, 1])  # frames of one item share the region
    assert not np.allclose(out[0], out[1]) and not np.allclose(out[2], out[3])


@pytest.mark.parametrize("mode", MODES)
def test_center_crop_copies_central_pixels(mode):
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, [2, 32, 40, 3]).astype(np.uint8)
    op = augment.center_crop("x", 16, resize_short=32)
    out = run(op, {"x": frames}, mode)["x"]
    # Short side already 32: the central 16x16 block, pixel for pixel.
    np.testing.assert_allclose(out, frames[:, 8:24, 12:28].astype(np.float32), atol=1e-3)


def test_center_region_after_short_side_resize():
    # 171x128 frame, short side 128 -> crop 112: 112/128 of the height, 112/171 of the width.
    region = augment.center_region(171 / 128, 112, 128).numpy()[0]
    h, w = 112 / 128, 112 / 171
    np.testing.assert_allclose(
        region, [(1 - h) / 2, (1 - w) / 2, (1 + h) / 2, (1 + w) / 2], rtol=1e-5
    )


# --- flip and rotation -----------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("negate", [True, False])
def test_flip_mirrors_and_negates_vector_x(mode, negate):
    rng = np.random.default_rng(2)
    clip = rng.uniform(size=[2, 4, 5, 3]).astype(np.float32)
    mv = rng.uniform(-3, 3, size=[3, 4, 5, 2]).astype(np.float32)
    op = augment.random_flip(("clip", "mv"), prob=1.0, mv_keys="mv", negate_mv_x=negate)
    out = run(op, {"clip": clip, "mv": mv, "seed": seed()}, mode)
    np.testing.assert_array_equal(out["clip"], clip[:, :, ::-1])
    sign = np.array([-1.0, 1.0]) if negate else np.array([1.0, 1.0])
    np.testing.assert_allclose(out["mv"], mv[:, :, ::-1] * sign)
    never = augment.random_flip(("clip", "mv"), prob=0.0, mv_keys="mv")
    kept = run(never, {"clip": clip, "mv": mv, "seed": seed()}, mode)
    np.testing.assert_array_equal(kept["mv"], mv)


@pytest.mark.parametrize("mode", MODES)
def test_flip_independent_items(mode):
    rng = np.random.default_rng(3)
    mv = rng.uniform(-3, 3, size=[16, 2, 3, 4, 2]).astype(np.float32)
    op = augment.random_flip("neg", mv_keys="neg", independent=True)
    out = run(op, {"neg": mv, "seed": seed(5)}, mode)["neg"]
    flipped = [np.allclose(o, m[:, :, ::-1] * [-1, 1]) for o, m in zip(out, mv)]
    kept = [np.array_equal(o, m) for o, m in zip(out, mv)]
    assert all(f != k for f, k in zip(flipped, kept))  # each item either flipped or kept
    assert 0 < sum(flipped) < 16  # both happen across items


@pytest.mark.parametrize("mode", MODES)
def test_rotate_quarter_turn_and_vectors(mode):
    rng = np.random.default_rng(4)
    image = rng.uniform(size=[6, 6, 1]).astype(np.float32)
    field = np.zeros([6, 6, 2], np.float32)
    field[..., 0] = 1.0  # everything moves right
    op = lambda d: {
        "img": augment.rotate(d["img"], math.pi / 2),
        "mv": augment.rotate(d["mv"], math.pi / 2, vectors=True),
    }
    out = run(op, {"img": image, "mv": field}, mode)
    # Positive angles turn clockwise on screen: numpy's rot90 with k=-1.
    np.testing.assert_allclose(out["img"], np.rot90(image, k=-1), atol=1e-5)
    # Motion to the right, turned clockwise, is motion downwards (+y).
    np.testing.assert_allclose(out["mv"][..., 0], 0.0, atol=1e-5)
    np.testing.assert_allclose(out["mv"][..., 1], 1.0, atol=1e-5)


@pytest.mark.parametrize("mode", MODES)
def test_random_rotate_shared_and_bounded(mode):
    image = np.tile(np.arange(9, dtype=np.float32)[None, :, None], [9, 1, 1])
    op = augment.random_rotate(("a", "b"), 10.0)
    out = run(op, {"a": image, "b": image, "seed": seed(2)}, mode)
    np.testing.assert_allclose(out["a"], out["b"])  # one angle for both
    assert not np.allclose(out["a"], image)
    # A small angle keeps the centre pixel where it was.
    np.testing.assert_allclose(out["a"][4, 4, 0], 4.0, atol=1e-4)


@pytest.mark.parametrize("mode", MODES)
def test_rotate_turns_rgb_and_vector_grid_about_the_frame_centre(mode):
    # Decoded frame 76x60 px, RGB stored at 38x30 (2-px pixels), vectors on 8-px cells:
    # 10x8 cells covering 80x64 px, so the frame is (60/64, 76/80) of the grid. Both
    # pixel grids are square, so one angle turns the same scene in both.
    extent = np.array([60 / 64, 76 / 80], np.float32)
    rgb = _ramps(30, 38, 1.0, 1.0)  # value = (y, x) frame position of each pixel centre
    grid = _ramps(8, 10, extent[0], extent[1])
    angle = 0.35
    region = tf.constant([[0.3, 0.3, 0.7, 0.7]])

    def op(d):
        return {
            "rgb": augment.crop_resize(augment.rotate(d["rgb"], angle), region, 8),
            "mv": augment.crop_resize(
                augment.rotate(d["mv"], angle, extent=d["extent"]), region, 8, extent=d["extent"]
            ),
            "about_grid_centre": augment.crop_resize(
                augment.rotate(d["mv"], angle), region, 8, extent=d["extent"]
            ),
        }

    out = run(op, {"rgb": rgb, "mv": grid, "extent": extent}, mode)
    # NumPy reference: the output at frame point q shows the scene at
    # R(-angle) (q - c) + c, c = the frame centre, in decoded pixels (x right, y down).
    j = 0.3 + 0.4 * (np.arange(8) + 0.5) / 8
    qy, qx = np.meshgrid(j * 60, j * 76, indexing="ij")
    dx, dy = qx - 38, qy - 30
    src_x = np.cos(angle) * dx + np.sin(angle) * dy + 38
    src_y = -np.sin(angle) * dx + np.cos(angle) * dy + 30
    expected = np.stack([src_y / 60, src_x / 76], axis=-1)
    np.testing.assert_allclose(out["rgb"], expected, atol=1e-4)
    np.testing.assert_allclose(out["mv"], expected, atol=1e-4)
    # Turning the grid about its own centre (not the frame's) would misalign it.
    assert np.abs(out["about_grid_centre"] - expected).max() > 0.01


# --- photometric ------------------------------------------------------------
#
# NumPy references written from torchvision's definitions (transforms/functional):
# brightness multiplies, contrast blends with the mean of the grey frame, saturation
# blends with the grey image, hue shifts h in HSV; grey = 0.299 R + 0.587 G + 0.114 B
# (PIL's convert("L"), which the authors' code uses). Each result is clipped to [0, 1].

GRAY = np.array([0.299, 0.587, 0.114])


def np_gray(x):
    return (x @ GRAY)[..., None]


def np_brightness(x, f):
    return np.clip(x * f, 0, 1)


def np_contrast(x, f):
    mean = np_gray(x).mean(axis=(-3, -2, -1), keepdims=True)  # per frame
    return np.clip(mean + f * (x - mean), 0, 1)


def np_saturation(x, f):
    g = np_gray(x)
    return np.clip(g + f * (x - g), 0, 1)


def np_hue(x, delta):
    flat = x.reshape(-1, 3)
    out = []
    for r, g, b in flat:
        h, s, v = colorsys.rgb_to_hsv(r, g, b)
        out.append(colorsys.hsv_to_rgb((h + delta) % 1.0, s, v))
    return np.clip(np.array(out).reshape(x.shape), 0, 1)


NP_ADJUSTMENTS = (np_brightness, np_contrast, np_saturation, np_hue)  # JITTER_ADJUSTMENTS order


def np_jitter(x, factors, order=(0, 1, 2, 3)):
    x = x.astype(np.float64)
    for i in order:
        x = NP_ADJUSTMENTS[i](x, factors[i])
    return x


def clip_of_frames(n=3, h=5, w=6, seed_=5):
    """Distinct RGB frames in [0.05, 0.95], some near the top so brightness clips."""
    rng = np.random.default_rng(seed_)
    return rng.uniform(0.05, 0.95, size=[n, h, w, 3]).astype(np.float32)


def test_adjustment_order_matches_torchvision():
    assert [f.__name__ for f in augment.JITTER_ADJUSTMENTS] == [
        "adjust_brightness",
        "adjust_contrast",
        "adjust_saturation",
        "adjust_hue",
    ]


@pytest.mark.parametrize("mode", MODES)
def test_grayscale_weights(mode):
    x = np.array([[[[1, 0, 0], [0, 1, 0], [0, 0, 1], [0.2, 0.4, 0.8]]]], np.float32)
    out = run(lambda d: {"y": augment.to_grayscale(d["x"])}, {"x": x}, mode)["y"]
    np.testing.assert_allclose(
        out[0, 0, :, 0], [0.299, 0.587, 0.114, 0.4 * 0.587 + 0.2 * 0.299 + 0.8 * 0.114], atol=1e-6
    )


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "index, factors", [(0, (0.6, 1.4)), (1, (0.6, 1.4)), (2, (0.6, 1.4)), (3, (-0.1, 0.07, 0.5))]
)
def test_each_adjustment_matches_numpy(mode, index, factors):
    x = clip_of_frames()
    adjust = augment.JITTER_ADJUSTMENTS[index]
    for f in factors:
        out = run(lambda d, f=f: {"y": adjust(d["x"], f)}, {"x": x}, mode)["y"]
        expected = NP_ADJUSTMENTS[index](x.astype(np.float64), f)
        np.testing.assert_allclose(out, expected, atol=1e-5)
        assert np.abs(expected - x).max() > 0.02  # the factor does something


ORDERS = [(0, 1, 2, 3), (3, 2, 1, 0), (2, 3, 0, 1), (1, 3, 0, 2)]
FACTORS = (1.4, 0.6, 1.4, 0.1)


def test_reference_orders_differ():
    # Guards the next test: with these factors and frames the order changes the result.
    x = clip_of_frames()
    results = [np_jitter(x, FACTORS, order) for order in ORDERS]
    for i in range(len(ORDERS)):
        for k in range(i):
            assert np.abs(results[i] - results[k]).max() > 0.01, (ORDERS[i], ORDERS[k])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("order", ORDERS)
def test_jitter_colors_in_a_given_order_matches_numpy(mode, order):
    x = clip_of_frames()
    op = lambda d: {"y": augment.jitter_colors(d["x"], *FACTORS, order=d["order"])}  # noqa: E731
    out = run(op, {"x": x, "order": np.array(order, np.int32)}, mode)["y"]
    np.testing.assert_allclose(out, np_jitter(x, FACTORS, order), atol=1e-5)
    if order == (0, 1, 2, 3):  # order=None is the torchvision order
        plain = run(lambda d: {"y": augment.jitter_colors(d["x"], *FACTORS)}, {"x": x}, mode)
        np.testing.assert_allclose(plain["y"], out, atol=1e-6)


@pytest.mark.parametrize("mode", MODES)
def test_color_jitter_applies_its_draw(mode):
    # The op applies sample_color_jitter's draw of the seed folded with its salt.
    x = clip_of_frames()
    jitter = ColorJitterConfig()
    op = augment.color_jitter("clip", jitter, salt=5)
    applied = 0
    for n in range(6):
        draw = augment.sample_color_jitter(
            tf.random.experimental.stateless_fold_in(seed(n), 5), jitter
        )
        out = run(op, {"clip": x, "seed": seed(n)}, mode)["clip"]
        if draw["apply"]:
            applied += 1
            expected = np_jitter(x, draw["factors"].numpy(), draw["order"].numpy())
            np.testing.assert_allclose(out, expected, atol=1e-5)
        else:
            np.testing.assert_array_equal(out, x)
    assert 0 < applied < 6  # both cases were seen


def draws_over_seeds(fn, num):
    """``fn(seed)`` for seeds (7, 0) ... (7, num - 1), mapped in one tf.data pass (NumPy)."""
    ds = tf.data.Dataset.range(num).map(lambda n: fn(tf.stack([tf.constant(7, tf.int64), n])))
    return tf.nest.map_structure(np.asarray, ds.batch(num).get_single_element())


def assert_frequency(events, p, what):
    """The share of true events lies within 4 binomial standard deviations of p."""
    n = len(events)
    bound = 4 * math.sqrt(p * (1 - p) / n)
    assert abs(np.mean(events) - p) <= bound, (what, np.mean(events), p, bound)


def test_jitter_order_is_a_uniform_random_permutation():
    num = 4800
    draws = draws_over_seeds(lambda s: augment.sample_color_jitter(s, ColorJitterConfig()), num)
    orders = draws["order"]
    assert all(sorted(o) == [0, 1, 2, 3] for o in orders)  # permutations
    counts = collections.Counter(map(tuple, orders))
    assert len(counts) == 24  # every order occurs
    for order, count in counts.items():
        assert_frequency(np.arange(num) < count, 1 / 24, order)
    expected = num / 24
    chi2 = sum((c - expected) ** 2 / expected for c in counts.values())
    assert chi2 < 49.73, chi2  # the 0.999 quantile of chi-square with 23 degrees of freedom
    # Factors: uniform in [1 - v, 1 + v] (brightness, contrast, saturation), [-v, v] (hue).
    factors = draws["factors"]
    low, high = np.array([0.6, 0.6, 0.6, -0.1]), np.array([1.4, 1.4, 1.4, 0.1])
    assert np.all(factors >= low - 1e-6) and np.all(factors <= high + 1e-6)
    np.testing.assert_allclose(factors.mean(axis=0), (low + high) / 2, atol=0.02)
    # Without random_order: always torchvision's order.
    fixed = draws_over_seeds(
        lambda s: augment.sample_color_jitter(s, ColorJitterConfig(random_order=False)), 50
    )
    assert np.all(fixed["order"] == [0, 1, 2, 3])


def changed(before, after):
    return tf.reduce_any(tf.abs(after - before) > 1e-6)


def is_grey(x):
    return tf.reduce_all(tf.abs(x[..., 0] - x[..., 1]) < 1e-6) & tf.reduce_all(
        tf.abs(x[..., 1] - x[..., 2]) < 1e-6
    )


def test_probabilities_of_each_op_over_2000_seeds():
    clip = tf.constant(clip_of_frames(n=2, h=6, w=7))  # > the blur radius, 5
    num = 2000

    def events(s):
        data = {"clip": clip, "seed": s}
        return {
            "jitter": changed(
                clip, augment.color_jitter("clip", ColorJitterConfig())(data)["clip"]
            ),
            "grayscale": is_grey(augment.random_grayscale("clip", 0.2)(data)["clip"]),
            "blur": changed(clip, augment.gaussian_blur("clip", BlurConfig())(data)["clip"]),
            "flip": changed(clip, augment.random_flip("clip")(data)["clip"]),
        }

    got = draws_over_seeds(events, num)
    for name, p in [("jitter", 0.5), ("grayscale", 0.2), ("blur", 0.5), ("flip", 0.5)]:
        assert_frequency(got[name], p, name)
    # The default config is the authors': jitter 0.5, grayscale 0.2, blur 0.5, flip 0.5.
    defaults = DataConfig()
    assert (
        defaults.color_jitter.prob,
        defaults.color_jitter.grayscale_prob,
        defaults.blur.prob,
        defaults.flip_prob,
    ) == (0.5, 0.2, 0.5, 0.5)
    assert defaults.color_jitter.random_order


def test_clip_and_iframe_draw_independently_over_2000_seeds():
    # The photometric recipe of the clip and of the I-frame, as in pretraining, without
    # blur so that jitter and grayscale can be read off the output.
    frames = clip_of_frames(n=2, h=4, w=5)
    inputs = {"clip": tf.constant(frames * 255), "iframe": tf.constant(frames[0] * 255)}
    config = DataConfig(blur=None)
    recipe = augment.chain(
        augment.rgb_photometric("clip", config), augment.rgb_photometric("iframe", config)
    )
    mean, std = np.array(augment.IMAGENET_MEAN), np.array(augment.IMAGENET_STD)

    def events(s):
        out = recipe(dict(inputs, seed=s))
        result = {}
        for key in ("clip", "iframe"):
            x = inputs[key] / 255.0
            y = out[key] * std + mean  # back to [0, 1]
            grey = is_grey(y)
            gray_x = tf.concat([augment.to_grayscale(x)] * 3, axis=-1)
            # Grey and not jittered: exactly the grey input; otherwise changed.
            jittered = tf.where(grey, changed(gray_x, y), changed(x, y))
            result[key] = tf.stack([jittered, grey])
        return result

    got = draws_over_seeds(events, 2000)
    clip_j, clip_g = got["clip"][:, 0], got["clip"][:, 1]
    ifr_j, ifr_g = got["iframe"][:, 0], got["iframe"][:, 1]
    assert_frequency(clip_j, 0.5, "clip jitter")
    assert_frequency(ifr_j, 0.5, "iframe jitter")
    assert_frequency(clip_g, 0.2, "clip grayscale")
    assert_frequency(ifr_g, 0.2, "iframe grayscale")
    assert_frequency(clip_j & ifr_j, 0.25, "both jittered")
    assert_frequency(clip_g & ifr_g, 0.04, "both grey")
    assert_frequency(clip_j & clip_g, 0.1, "clip jittered and grey")
    assert_frequency(clip_j & ifr_g, 0.1, "clip jittered, iframe grey")


@pytest.mark.parametrize("mode", MODES)
def test_one_draw_for_all_frames_of_a_clip(mode):
    # Each frame of the clip gets what it would get alone with the same seed: the same
    # draw, applied frame by frame (the contrast mean is per frame, as in torchvision).
    frames = clip_of_frames(n=3, h=6, w=7)
    always = DataConfig(
        color_jitter=ColorJitterConfig(prob=1.0, grayscale_prob=1.0), blur=BlurConfig(prob=1.0)
    )
    ops = {
        "jitter": augment.color_jitter("clip", ColorJitterConfig(prob=1.0)),
        "grayscale": augment.random_grayscale("clip", 1.0),
        "blur": augment.gaussian_blur("clip", BlurConfig(prob=1.0)),
        "photometric": augment.rgb_photometric("clip", always),
    }
    seeds = np.stack([seed(n) for n in range(2)])

    def whole_and_alone(op):
        def compare(d):
            out = {}
            for n in range(len(seeds)):
                out[f"whole{n}"] = op({"clip": d["clip"], "seed": d["seeds"][n]})["clip"]
                out[f"alone{n}"] = tf.concat(
                    [
                        op({"clip": d["clip"][t : t + 1], "seed": d["seeds"][n]})["clip"]
                        for t in range(len(frames))
                    ],
                    axis=0,
                )
            return out

        return compare

    for name, op in ops.items():
        out = run(whole_and_alone(op), {"clip": frames, "seeds": seeds}, mode)
        for n in range(len(seeds)):
            np.testing.assert_allclose(
                out[f"whole{n}"], out[f"alone{n}"], atol=1e-5, err_msg=f"{name}, seed {n}"
            )
    # And a draw really differs between seeds and keys.
    jitter = ops["jitter"]
    a = run(jitter, {"clip": frames, "seed": seed(0)}, mode)["clip"]
    assert not np.allclose(a, run(jitter, {"clip": frames, "seed": seed(1)}, mode)["clip"])
    other = augment.color_jitter("iframe", ColorJitterConfig(prob=1.0))
    assert not np.allclose(a, run(other, {"iframe": frames, "seed": seed(0)}, mode)["iframe"])


@pytest.mark.parametrize("mode", MODES)
def test_random_grayscale(mode):
    x = clip_of_frames()
    out = run(augment.random_grayscale("clip", 1.0), {"clip": x, "seed": seed()}, mode)["clip"]
    np.testing.assert_allclose(out, np.repeat(np_gray(x), 3, axis=-1), atol=1e-6)
    off = run(augment.random_grayscale("clip", 0.0), {"clip": x, "seed": seed()}, mode)["clip"]
    np.testing.assert_array_equal(off, x)
    with pytest.raises(ValueError, match="random_grayscale prob"):
        augment.random_grayscale("clip", 1.5)


@pytest.mark.parametrize("mode", MODES)
def test_photometric_order_is_blur_jitter_grayscale(mode):
    # rgb_photometric = the ops in the authors' order (same salts: same draws); the
    # other orders give other clips, so the comparison can fail.
    frames = clip_of_frames(n=2, h=8, w=9) * 255
    jitter, blur = ColorJitterConfig(prob=1.0, grayscale_prob=1.0), BlurConfig(prob=1.0)
    config = DataConfig(color_jitter=jitter, blur=blur)
    steps = {
        "blur": augment.gaussian_blur("clip", blur),
        "jitter": augment.color_jitter("clip", jitter),
        "grayscale": augment.random_grayscale("clip", 1.0),
    }

    def recipe(*names):
        return augment.chain(
            augment.to_unit_range("clip"), *[steps[n] for n in names], augment.normalize("clip")
        )

    data = {"clip": frames, "seed": seed(3)}
    out = run(augment.rgb_photometric("clip", config), data, mode)["clip"]
    np.testing.assert_allclose(
        out, run(recipe("blur", "jitter", "grayscale"), data, mode)["clip"], atol=1e-5
    )
    for names in [("jitter", "blur", "grayscale"), ("blur", "grayscale", "jitter")]:
        assert np.abs(out - run(recipe(*names), data, mode)["clip"]).max() > 1e-3, names
    # No jitter config: neither jitter nor grayscale.
    off = run(
        augment.rgb_photometric("clip", DataConfig(color_jitter=None, blur=None)), data, mode
    )["clip"]
    np.testing.assert_allclose(off, run(recipe(), data, mode)["clip"], atol=1e-6)


def gaussian_reference(image, sigma, k):
    r = k // 2
    taps = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    taps /= taps.sum()
    padded = np.pad(image, [(r, r), (r, r), (0, 0)], mode="reflect")
    rows = sum(taps[i] * padded[i : i + image.shape[0]] for i in range(k))
    return sum(taps[i] * rows[:, i : i + image.shape[1]] for i in range(k))


@pytest.mark.parametrize("mode", MODES)
def test_blur_matches_numpy_and_keeps_constants(mode):
    rng = np.random.default_rng(7)
    image = rng.uniform(size=[12, 14, 3]).astype(np.float32)
    op = lambda d: {"y": augment.blur_images(d["x"], 1.5, 7)}
    np.testing.assert_allclose(
        run(op, {"x": image}, mode)["y"], gaussian_reference(image, 1.5, 7), atol=1e-5
    )
    flat = np.full([2, 12, 14, 3], 0.3, np.float32)
    blur = augment.gaussian_blur("clip", BlurConfig(prob=1.0, kernel_size=5))
    blurred = run(blur, {"clip": flat, "seed": seed()}, mode)["clip"]
    np.testing.assert_allclose(blurred, 0.3, atol=1e-6)
    off = augment.gaussian_blur("clip", BlurConfig(prob=0.0))
    np.testing.assert_array_equal(run(off, {"clip": image, "seed": seed()}, mode)["clip"], image)


@pytest.mark.parametrize("mode", MODES)
def test_normalisation_statistics(mode):
    mean255 = np.array(augment.IMAGENET_MEAN) * 255
    x = np.stack(
        [
            np.broadcast_to(mean255, [2, 2, 3]),
            np.broadcast_to(mean255 + 255 * np.array(augment.IMAGENET_STD), [2, 2, 3]),
        ]
    )
    op = augment.chain(augment.to_unit_range("x"), augment.normalize("x"))
    out = run(op, {"x": x.astype(np.float32)}, mode)["x"]
    np.testing.assert_allclose(out[0], 0.0, atol=1e-5)  # the mean maps to 0
    np.testing.assert_allclose(out[1], 1.0, atol=1e-5)  # mean + 1 std maps to 1
    assert out.dtype == np.float32


@pytest.mark.parametrize("mode", MODES)
def test_scale_motion_clamps_then_divides(mode):
    v = np.array([-25, -10, -3, 0, 4, 10, 30], np.float32)
    out = run(augment.scale_motion("mv", clip=10.0, div=10.0), {"mv": v}, mode)["mv"]
    np.testing.assert_allclose(out, [-1, -1, -0.3, 0, 0.4, 1, 1], atol=1e-6)
    out = run(augment.scale_motion("mv", clip=20.0, div=40.0), {"mv": v}, mode)["mv"]
    np.testing.assert_allclose(out, [-0.5, -0.25, -0.075, 0, 0.1, 0.25, 0.5], atol=1e-6)

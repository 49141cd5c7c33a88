"""Augmentation ops: small ``dict -> dict`` functions of TensorFlow ops.

Modules: ``ops`` (the op protocol, seeds, value scaling), ``geometry``
(crops, flips, rotations), ``color`` (jitter, grayscale), ``blur``,
``recipes`` (steps shared by the datasets). Settings come from the data
section of the config (:class:`tfcmvp.config.DataConfig`,
``ColorJitterConfig``, ``BlurConfig``), read directly.

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

from tfcmvp.config import RESIZE_METHODS
from tfcmvp.data.augment.blur import blur_images, gaussian_blur
from tfcmvp.data.augment.color import (
    GRAY_WEIGHTS,
    JITTER_ADJUSTMENTS,
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    color_jitter,
    jitter_colors,
    random_grayscale,
    sample_color_jitter,
    to_grayscale,
)
from tfcmvp.data.augment.geometry import (
    center_crop,
    center_region,
    crop_resize,
    flip_columns,
    random_flip,
    random_resized_crop,
    random_rotate,
    rotate,
    sample_crop_regions,
)
from tfcmvp.data.augment.ops import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Op,
    chain,
    normalize,
    scale_motion,
    to_unit_range,
)
from tfcmvp.data.augment.recipes import negative_motion, rgb_photometric

__all__ = [
    "GRAY_WEIGHTS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "JITTER_ADJUSTMENTS",
    "Op",
    "RESIZE_METHODS",
    "adjust_brightness",
    "adjust_contrast",
    "adjust_hue",
    "adjust_saturation",
    "blur_images",
    "center_crop",
    "center_region",
    "chain",
    "color_jitter",
    "crop_resize",
    "flip_columns",
    "gaussian_blur",
    "jitter_colors",
    "negative_motion",
    "normalize",
    "random_flip",
    "random_grayscale",
    "random_resized_crop",
    "random_rotate",
    "rgb_photometric",
    "rotate",
    "sample_color_jitter",
    "sample_crop_regions",
    "scale_motion",
    "to_grayscale",
    "to_unit_range",
]

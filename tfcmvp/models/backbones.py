"""Backbone registry: name -> constructor, and where each video network's memory comes from.

    model = build_backbone("r2plus1d_26", input_shape=(16, 112, 112, 3), sync_bn=True)
    maps = model(clips)                      # dict of stage outputs
    spec = memory_spec("r2plus1d_26")
    memory = PredictorMemory(width, spec.time_fold)([maps[s] for s in spec.stages])

The ResNets (RESIDUAL_BACKBONES) also take `zero_init_residual` (default
True, the authors'), and r3d_10 a `stem` ("authors" or "strided").

The table is an explicit dict of constructors (no lookup of modules by
string); keyword arguments go to the constructor unchanged, so an unknown one
fails there with Python's own message.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import keras

from tfcmvp.models.c3d import c3d
from tfcmvp.models.resnet2d import r2d_10
from tfcmvp.models.resnet3d import r2plus1d_26, r3d_10, r3d_26

BACKBONES: dict[str, Callable[..., keras.Model]] = {
    "c3d": c3d,
    "r3d_26": r3d_26,
    "r2plus1d_26": r2plus1d_26,
    "r3d_10": r3d_10,
    "r2d_10": r2d_10,
}

# The backbones built of residual blocks (they take zero_init_residual).
RESIDUAL_BACKBONES = frozenset({"r3d_26", "r2plus1d_26", "r3d_10", "r2d_10"})


@dataclasses.dataclass(frozen=True)
class MemorySpec:
    """Which stage outputs feed the predictor memory (see memory.PredictorMemory).

    Attributes:
      stages: output names, finest grid first (it sets the token grid).
      time_fold: temporal fold of the first stage.
    """

    stages: tuple[str, ...]
    time_fold: int


MEMORY_SPECS: dict[str, MemorySpec] = {
    # conv5 is already 2 x 7 x 7 at 16 x 112 x 112.
    "c3d": MemorySpec(stages=("conv5",), time_fold=1),
    # layer3 4 x 7 x 7 folded to 2 x 7 x 7, layer4 2 x 4 x 4 upsampled to it (the authors').
    "r3d_26": MemorySpec(stages=("layer3", "layer4"), time_fold=2),
    "r2plus1d_26": MemorySpec(stages=("layer3", "layer4"), time_fold=2),
    # Same recipe when R3D-10 stands in as a small video network (tiny configs).
    "r3d_10": MemorySpec(stages=("layer3", "layer4"), time_fold=2),
}


def build_backbone(backbone: str, /, **kwargs) -> keras.Model:
    """Build `backbone` (a key of BACKBONES); kwargs (input_shape, width, blocks,
    sync_bn, name, ...) go to its constructor."""
    try:
        constructor = BACKBONES[backbone]
    except KeyError:
        raise ValueError(
            f"unknown backbone {backbone!r}; expected one of {sorted(BACKBONES)}"
        ) from None
    return constructor(**kwargs)


def memory_spec(backbone: str) -> MemorySpec:
    """The predictor-memory stages of video network `backbone`."""
    try:
        return MEMORY_SPECS[backbone]
    except KeyError:
        raise ValueError(
            f"backbone {backbone!r} has no predictor memory (not a video network); "
            f"expected one of {sorted(MEMORY_SPECS)}"
        ) from None

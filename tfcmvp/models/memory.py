"""Predictor memory: V-Network stage maps -> a token sequence for the predictor.

The authors' memory for the ResNet V-Networks fuses two stages (16 x 112 x
112 clip): layer3 [B, 4, 7, 7, C3] is folded in time by 2 (steps 2t and
2t + 1 concatenated on channels: [B, 2, 7, 7, 2 C3]), layer4 [B, 2, 4, 4, C4]
is upsampled to that 2 x 7 x 7 grid, the two are concatenated on channels
and a linear map projects them to the Transformer width: 98 tokens.
C3D's conv5 is already 2 x 7 x 7 and is used alone (time_fold=1).

Memory grids at the paper's input sizes (see backbones.memory_spec):
  C3D            conv5 [2, 7, 7, 512]                      -> 98 tokens, 512 in
  R3D-26/R(2+1)D-26 layer3 [4, 7, 7, 1024] fold 2 + layer4 [2, 4, 4, 2048]
                 -> [2, 7, 7, 2048 + 2048]                  -> 98 tokens, 4096 in
"""

from __future__ import annotations

import keras
from keras import ops

from tfcmvp.models.resample import INTERPOLATIONS, resample_grid


@keras.saving.register_keras_serializable(package="tfcmvp")
class PredictorMemory(keras.layers.Layer):
    """Fuse one or more [B, T, H, W, C] stage maps into tokens [B, M, width].

    The first map sets the grid: it is folded in time by `time_fold`
    (consecutive groups of `time_fold` steps concatenated on channels, so
    T must be divisible by it). Every further map is resampled to the folded
    grid of the first. All are concatenated on channels, flattened in
    (t, y, x) order and projected by a Dense layer to `width`.

    Args:
      width: token width (the Transformer width, 512 in the paper).
      time_fold: temporal fold of the first map (2 for ResNet layer3, 1 for none).
      interpolation: "nearest" (PyTorch's interpolate default, assumed to be the
        authors') or "trilinear", for the maps resampled to the first one's grid.
    """

    def __init__(self, width: int = 512, time_fold: int = 2, interpolation: str = "nearest",
                 **kwargs):
        super().__init__(**kwargs)
        if int(width) < 1 or int(time_fold) < 1:
            raise ValueError(f"PredictorMemory: width ({width}) and time_fold ({time_fold}) "
                             "must be positive")
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"PredictorMemory: unknown interpolation {interpolation!r}; "
                             f"expected one of {INTERPOLATIONS}")
        self.width = int(width)
        self.time_fold = int(time_fold)
        self.interpolation = interpolation
        # Layers.
        self.projection = keras.layers.Dense(self.width, name="projection")

    def grid(self, input_shapes) -> tuple[int, int, int]:
        """(T, H, W) of the token grid for a list of input shapes."""
        input_shapes = self._as_shape_list(input_shapes)
        steps, height, width = input_shapes[0][1:4]
        if None in (steps, height, width):
            raise ValueError(f"PredictorMemory needs static T, H, W, got {input_shapes[0]}")
        if steps % self.time_fold:
            raise ValueError(f"PredictorMemory: the first map has T={steps} steps, not divisible "
                             f"by time_fold={self.time_fold}")
        return steps // self.time_fold, height, width

    @staticmethod
    def _as_shape_list(input_shapes):
        # A single shape is a tuple of ints/None; a list of shapes holds tuples.
        if not input_shapes or not isinstance(input_shapes[0], (tuple, list)):
            input_shapes = [input_shapes]
        for shape in input_shapes:
            if len(shape) != 5:
                raise ValueError(f"PredictorMemory expects [B, T, H, W, C] maps, got {shape}")
        return [tuple(shape) for shape in input_shapes]

    def build(self, input_shapes):
        input_shapes = self._as_shape_list(input_shapes)
        self.grid(input_shapes)
        channels = input_shapes[0][-1] * self.time_fold + sum(s[-1] for s in input_shapes[1:])
        self.projection.build((None, None, channels))
        self.built = True

    def call(self, inputs):
        maps = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        grid = self.grid([tuple(m.shape) for m in maps])
        first = maps[0]  # [B, T, H, W, C]
        if self.time_fold > 1:
            # Step f of every group of time_fold steps, concatenated on channels.
            first = ops.concatenate(
                [first[:, offset::self.time_fold] for offset in range(self.time_fold)],
                axis=-1)  # [B, T / fold, H, W, fold * C]
        parts = [first]
        for other in maps[1:]:
            parts.append(ops.cast(resample_grid(other, grid, self.interpolation), first.dtype))
        fused = ops.concatenate(parts, axis=-1) if len(parts) > 1 else first
        tokens = ops.reshape(fused, (-1, grid[0] * grid[1] * grid[2], fused.shape[-1]))
        return self.projection(tokens)  # [B, M, width]

    def compute_output_shape(self, input_shapes):
        input_shapes = self._as_shape_list(input_shapes)
        steps, height, width = self.grid(input_shapes)
        return (input_shapes[0][0], steps * height * width, self.width)

    def get_config(self):
        config = super().get_config()
        config.update({"width": self.width, "time_fold": self.time_fold,
                       "interpolation": self.interpolation})
        return config

"""Predictor memory: video network stage maps -> a token sequence for the predictor.

The authors' memory for the ResNet video networks fuses two stages (16 x 112 x
112 clip): layer3 [B, 4, 7, 7, C3] is folded in time by 2 (steps 2t and
2t + 1 concatenated on channels: [B, 2, 7, 7, 2 C3]), layer4 [B, 2, 4, 4, C4]
is upsampled (nearest) to that 2 x 7 x 7 grid, the two are ADDED
(``fusion="add"``, which needs 2 C3 = C4) and a bias-free linear map projects
the sum to the Transformer width: 98 tokens. ``fusion="concat"`` stacks the
two maps on channels instead (tfcmvp before the option; 2 C3 + C4 inputs to the
projection). C3D's conv5 is already 2 x 7 x 7 and is used alone
(time_fold=1), where the fusion does not matter.

The fused map (before the projection) is also what the authors' clip-context
query pools for a ResNet video network: :meth:`PredictorMemory.fuse` returns it.

Memory grids at the paper's input sizes (see backbones.memory_spec):
  C3D               conv5 [2, 7, 7, 512]                      -> 98 tokens, 512 in
  R3D-26/R(2+1)D-26 layer3 [4, 7, 7, 1024] fold 2 + layer4 [2, 4, 4, 2048]
                    add:    [2, 7, 7, 2048]                   -> 98 tokens, 2048 in
                    concat: [2, 7, 7, 2048 + 2048]            -> 98 tokens, 4096 in
"""

from __future__ import annotations

import keras
from keras import ops

from tfcmvp.models.initializers import check_init, linear_initializer
from tfcmvp.models.resample import INTERPOLATIONS, resample_grid

FUSIONS = ("add", "concat")


@keras.saving.register_keras_serializable(package="tfcmvp")
class PredictorMemory(keras.layers.Layer):
    """Fuse one or more [B, T, H, W, C] stage maps into tokens [B, M, width].

    The first map sets the grid: it is folded in time by `time_fold`
    (consecutive groups of `time_fold` steps concatenated on channels, so
    T must be divisible by it). Every further map is resampled to the folded
    grid of the first. The maps are then added (`fusion="add"`: equal
    channels) or concatenated on channels (`"concat"`), flattened in (t, y, x)
    order and projected by a Dense layer to `width`.

    Args:
      width: token width (the Transformer width, 512 in the paper).
      time_fold: temporal fold of the first map (2 for ResNet layer3, 1 for none).
      interpolation: "nearest" (PyTorch's interpolate default, the authors') or
        "trilinear", for the maps resampled to the first one's grid.
      fusion: "add" (the authors') or "concat"; no effect on a single map.
      use_bias: bias in the projection (the authors' has none).
      init: projection initialiser, "authors" (N(0, 0.01)) or "keras"
        (Glorot-uniform); see initializers.py.
    """

    def __init__(
        self,
        width: int = 512,
        time_fold: int = 2,
        interpolation: str = "nearest",
        fusion: str = "add",
        use_bias: bool = False,
        init: str = "authors",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if int(width) < 1 or int(time_fold) < 1:
            raise ValueError(
                f"PredictorMemory: width ({width}) and time_fold ({time_fold}) must be positive"
            )
        if interpolation not in INTERPOLATIONS:
            raise ValueError(
                f"PredictorMemory: unknown interpolation {interpolation!r}; "
                f"expected one of {INTERPOLATIONS}"
            )
        if fusion not in FUSIONS:
            raise ValueError(
                f"PredictorMemory: unknown fusion {fusion!r}; expected one of {FUSIONS}"
            )
        self.width = int(width)
        self.time_fold = int(time_fold)
        self.interpolation = interpolation
        self.fusion = fusion
        self.use_bias = bool(use_bias)
        self.init = check_init(init, "PredictorMemory")
        # Layers.
        self.projection = keras.layers.Dense(
            self.width,
            use_bias=self.use_bias,
            kernel_initializer=linear_initializer(self.init),
            name="projection",
        )

    def grid(self, input_shapes) -> tuple[int, int, int]:
        """(T, H, W) of the token grid for a list of input shapes."""
        input_shapes = self._as_shape_list(input_shapes)
        steps, height, width = input_shapes[0][1:4]
        if None in (steps, height, width):
            raise ValueError(f"PredictorMemory needs static T, H, W, got {input_shapes[0]}")
        if steps % self.time_fold:
            raise ValueError(
                f"PredictorMemory: the first map has T={steps} steps, not divisible "
                f"by time_fold={self.time_fold}"
            )
        return steps // self.time_fold, height, width

    def fused_channels(self, input_shapes) -> int:
        """Channels of the fused map (the projection's input width) for these input shapes.

        Raises ValueError naming the shapes when `fusion="add"` meets maps whose
        channels differ from the folded first map's.
        """
        input_shapes = self._as_shape_list(input_shapes)
        first = input_shapes[0][-1] * self.time_fold
        others = [shape[-1] for shape in input_shapes[1:]]
        if self.fusion == "concat":
            return first + sum(others)
        for shape, channels in zip(input_shapes[1:], others):
            if channels != first:
                raise ValueError(
                    f"PredictorMemory: fusion='add' needs equal channels, but the first map "
                    f"{input_shapes[0]} folded by time_fold={self.time_fold} has {first} and the "
                    f"map {shape} has {channels}; use fusion='concat' for these maps"
                )
        return first

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
        self.projection.build((None, None, self.fused_channels(input_shapes)))
        self.built = True

    def fuse(self, inputs):
        """The fused map [B, T / time_fold, H, W, C'] before the projection.

        C' = fold * C1 for "add" (and for a single map), fold * C1 + C2 + ... for
        "concat". The authors' clip-context query is its global mean.
        """
        maps = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        grid = self.grid([tuple(m.shape) for m in maps])
        self.fused_channels([tuple(m.shape) for m in maps])  # checks "add" channels
        first = maps[0]  # [B, T, H, W, C]
        if self.time_fold > 1:
            # Step f of every group of time_fold steps, concatenated on channels.
            first = ops.concatenate(
                [first[:, offset :: self.time_fold] for offset in range(self.time_fold)], axis=-1
            )  # [B, T / fold, H, W, fold * C]
        others = [
            ops.cast(resample_grid(other, grid, self.interpolation), first.dtype)
            for other in maps[1:]
        ]  # each [B, T / fold, H, W, C_i]
        if not others:
            return first
        if self.fusion == "add":
            fused = first
            for other in others:
                fused = fused + other
            return fused  # [B, T / fold, H, W, fold * C]
        return ops.concatenate([first, *others], axis=-1)  # [B, T / fold, H, W, sum]

    def call(self, inputs):
        fused = self.fuse(inputs)  # [B, T', H, W, C']
        steps, height, width = fused.shape[1:4]
        tokens = ops.reshape(fused, (-1, steps * height * width, fused.shape[-1]))
        return self.projection(tokens)  # [B, M, width]

    def compute_output_shape(self, input_shapes):
        input_shapes = self._as_shape_list(input_shapes)
        steps, height, width = self.grid(input_shapes)
        return (input_shapes[0][0], steps * height * width, self.width)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "width": self.width,
                "time_fold": self.time_fold,
                "interpolation": self.interpolation,
                "fusion": self.fusion,
                "use_bias": self.use_bias,
                "init": self.init,
            }
        )
        return config

"""ConvGRU motion predictor (the paper's alternative to the Transformer).

Follows DPC (Han et al. 2019): a ConvGRU aggregates the video network map over
its time steps, then rolls out one prediction per future step; each
prediction is read from the hidden state by a 1x1 conv -> ReLU -> 1x1 conv
head and fed back (after a ReLU) as the next ConvGRU input.

Mapping to the target grid: the backbone map [B, T1, H1, W1, C1] is first
resampled in space to the target H3 x W3 (time is untouched) and projected
to `width` by a 1x1 conv; the GRU reads its T1 steps and rolls out T3
steps, giving [B, T3, H3, W3, width], flattened to [B, T3*H3*W3, width] in
(t, y, x) order, the order of the Transformer's queries. For C3D at
16 x 112 x 112 (conv5 2 x 7 x 7) and an 8-frame motion target (1 x 7 x 7),
nothing is resampled: two GRU steps in, one out.

The time loop is a Python loop over the static T1 + T3 (a few steps): it is
unrolled in the graph.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops

from tfcmvp.models.resample import INTERPOLATIONS, resample_grid


@keras.saving.register_keras_serializable(package="tfcmvp")
class ConvGRUCell(keras.layers.Layer):
    """One ConvGRU step on [B, H, W, C] maps (DPC's cell).

    z, r = sigmoid(conv([x, h])); c = tanh(conv([x, r * h])); h' = (1 - z) h + z c.

    Args:
      width: hidden channels (= input channels).
      kernel_size: spatial kernel of the gate convs.
    """

    def __init__(self, width: int, kernel_size: int = 3, **kwargs):
        super().__init__(**kwargs)
        self.width = int(width)
        self.kernel_size = int(kernel_size)
        # Layers.
        self.gates = keras.layers.Conv2D(
            2 * self.width, self.kernel_size, padding="same", name="gates"
        )
        self.candidate = keras.layers.Conv2D(
            self.width, self.kernel_size, padding="same", name="candidate"
        )

    def build(self, input_shape):
        shape = (None, None, None, 2 * self.width)
        self.gates.build(shape)
        self.candidate.build(shape)
        self.built = True

    def call(self, x, h):
        """x, h: [B, H, W, width] -> new h [B, H, W, width]."""
        gates = ops.sigmoid(self.gates(ops.concatenate([x, h], axis=-1)))  # [B, H, W, 2 width]
        update, reset = gates[..., : self.width], gates[..., self.width :]
        candidate = ops.tanh(self.candidate(ops.concatenate([x, reset * h], axis=-1)))
        return (1.0 - update) * h + update * candidate

    def get_config(self):
        config = super().get_config()
        config.update({"width": self.width, "kernel_size": self.kernel_size})
        return config


@keras.saving.register_keras_serializable(package="tfcmvp")
class ConvGRUPredictor(keras.layers.Layer):
    """Predict the target grid from a backbone map: [B, T1, H1, W1, C1] -> [B, N, width].

    Args:
      target_grid: (T3, H3, W3) of the motion network output; N = T3 * H3 * W3.
      width: hidden and output channels.
      kernel_size: spatial kernel of the ConvGRU convs (DPC uses 1; 3 lets
        the hidden state move features between neighbouring cells).
      interpolation: "nearest" or "trilinear" for the spatial resampling to H3 x W3.
    """

    def __init__(
        self,
        target_grid: Sequence[int],
        width: int = 512,
        kernel_size: int = 3,
        interpolation: str = "trilinear",
        **kwargs,
    ):
        super().__init__(**kwargs)
        target_grid = tuple(int(s) for s in target_grid)
        if len(target_grid) != 3 or min(target_grid) < 1:
            raise ValueError(
                f"ConvGRUPredictor: target_grid must be (T3, H3, W3) of positive "
                f"ints, got {target_grid!r}"
            )
        if interpolation not in INTERPOLATIONS:
            raise ValueError(
                f"ConvGRUPredictor: unknown interpolation {interpolation!r}; "
                f"expected one of {INTERPOLATIONS}"
            )
        self.target_grid = target_grid
        self.width = int(width)
        self.kernel_size = int(kernel_size)
        self.interpolation = interpolation
        # Layers.
        self.input_projection = keras.layers.Dense(self.width, name="input_projection")
        self.cell = ConvGRUCell(self.width, self.kernel_size, name="cell")
        self.prediction_hidden = keras.layers.Dense(
            self.width, activation="relu", name="prediction_hidden"
        )
        self.prediction_output = keras.layers.Dense(self.width, name="prediction_output")

    def build(self, input_shape):
        if len(input_shape) != 5 or None in tuple(input_shape[1:]):
            raise ValueError(
                f"ConvGRUPredictor expects a static [B, T, H, W, C] map, got {tuple(input_shape)}"
            )
        self.input_projection.build(tuple(input_shape))
        self.cell.build((None, None, None, self.width))
        self.prediction_hidden.build((None, None, None, self.width))
        self.prediction_output.build((None, None, None, self.width))
        self.built = True

    def call(self, x):
        """x: [B, T1, H1, W1, C1] -> [B, T3 * H3 * W3, width]."""
        steps_out, height, width = self.target_grid
        x = resample_grid(x, (x.shape[1], height, width), self.interpolation)  # [B, T1, H3, W3, C1]
        x = ops.relu(self.input_projection(x))  # [B, T1, H3, W3, width]
        h = ops.zeros_like(x[:, 0])  # [B, H3, W3, width]
        for step in range(x.shape[1]):
            h = self.cell(x[:, step], h)
        predictions = []
        for _ in range(steps_out):
            prediction = self.prediction_output(self.prediction_hidden(h))  # [B, H3, W3, width]
            predictions.append(prediction)
            h = self.cell(ops.relu(prediction), h)
        out = ops.stack(predictions, axis=1)  # [B, T3, H3, W3, width]
        return ops.reshape(out, (-1, steps_out * height * width, self.width))

    def compute_output_shape(self, input_shape):
        steps_out, height, width = self.target_grid
        return (input_shape[0], steps_out * height * width, self.width)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "target_grid": list(self.target_grid),
                "width": self.width,
                "kernel_size": self.kernel_size,
                "interpolation": self.interpolation,
            }
        )
        return config

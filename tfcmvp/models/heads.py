"""Projection and regression heads.

MLPHead is the paper's two-layer head (g_V, g_I, g_M1, g_M2): Dense(2048) ->
BN -> ReLU -> Dense(512) -> BN -> L2 normalisation. It works on [B, C] and
pointwise on [B, N, C] (Dense on the last axis; BatchNorm statistics over all
B * N positions). MotionValueHead is the linear read-out of the MSE and
cross-entropy loss ablations (Table 1).

Under a mixed-precision policy both heads return float32: their last layer
runs in float32 so the L2 norm, the InfoNCE logits and the regression
targets are compared at full precision.

Initialisation (`init`, see initializers.py): the authors' heads are 1x1
nn.Conv1d layers initialised Kaiming-normal (fan-out), so under "authors"
MLPHead's Dense kernels are too (their hidden conv's bias, zero-initialised
and followed by BatchNorm, changes nothing and is left out); MotionValueHead
is a plain linear read-out and takes the authors' nn.Linear rule, N(0, 0.01)
and zero bias (the authors have no such head). "keras": Glorot-uniform.
"""

from __future__ import annotations

import keras
from keras import ops

from tfcmvp.models.conv_bn import BN_EPSILON, BN_MOMENTUM
from tfcmvp.models.initializers import check_init, head_initializer, linear_initializer

L2_EPSILON = 1e-12


@keras.saving.register_keras_serializable(package="tfcmvp")
class MLPHead(keras.layers.Layer):
    """[..., C] -> L2-normalised [..., output_units] (float32).

    Args:
      hidden_units: width of the hidden layer (2048).
      output_units: embedding width (512).
      sync_bn: synchronise BatchNorm statistics across replicas.
      init: "authors" (Kaiming fan-out) or "keras" (Glorot-uniform) Dense kernels.
    """

    def __init__(
        self,
        hidden_units: int = 2048,
        output_units: int = 512,
        sync_bn: bool = False,
        init: str = "authors",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.hidden_units = int(hidden_units)
        self.output_units = int(output_units)
        self.sync_bn = bool(sync_bn)
        self.init = check_init(init, "MLPHead")
        # Layers. No biases before BN (its beta is the bias).
        self.hidden = keras.layers.Dense(
            self.hidden_units,
            use_bias=False,
            kernel_initializer=head_initializer(self.init),
            name="hidden",
        )
        self.hidden_norm = keras.layers.BatchNormalization(
            momentum=BN_MOMENTUM, epsilon=BN_EPSILON, synchronized=self.sync_bn, name="hidden_norm"
        )
        self.output_dense = keras.layers.Dense(
            self.output_units,
            use_bias=False,
            kernel_initializer=head_initializer(self.init),
            name="output",
        )
        # float32 so the embedding leaves the head at full precision.
        self.output_norm = keras.layers.BatchNormalization(
            momentum=BN_MOMENTUM,
            epsilon=BN_EPSILON,
            synchronized=self.sync_bn,
            dtype="float32",
            name="output_norm",
        )

    def build(self, input_shape):
        channels = input_shape[-1]
        self.hidden.build((None, channels))
        self.hidden_norm.build((None, self.hidden_units))
        self.output_dense.build((None, self.hidden_units))
        self.output_norm.build((None, self.output_units))
        self.built = True

    def call(self, x, training=None):
        """x: [B, C] or [B, N, C] -> unit vectors [B, output_units] / [B, N, output_units]."""
        leading = ops.shape(x)[:-1]
        # Positions of [B, N, C] become rows, so one instance serves either rank
        # and BatchNorm normalises over all B * N positions.
        x = ops.reshape(x, (-1, x.shape[-1]))  # [B * N, C]
        x = ops.relu(self.hidden_norm(self.hidden(x), training=training))  # [B * N, hidden]
        x = self.output_norm(self.output_dense(x), training=training)  # [B * N, out] float32
        x = ops.cast(x, "float32")
        squared_norm = ops.sum(ops.square(x), axis=-1, keepdims=True)
        x = x * ops.rsqrt(ops.maximum(squared_norm, L2_EPSILON**2))
        return ops.reshape(x, (*leading, self.output_units))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "hidden_units": self.hidden_units,
                "output_units": self.output_units,
                "sync_bn": self.sync_bn,
                "init": self.init,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="tfcmvp")
class MotionValueHead(keras.layers.Layer):
    """Linear read-out [B, N, width] -> [B, N, num_outputs] (float32).

    For the MSE ablation num_outputs = 2 (mean x, y motion per target cell);
    for the cross-entropy ablation num_outputs = 2 * bins (logits of the
    quantised range of each component). Pooling the motion clip to the target
    grid and quantising it is the loss module's job.

    Args:
      num_outputs: values per position.
      init: "authors" (N(0, 0.01)) or "keras" (Glorot-uniform) kernel; zero bias.
    """

    def __init__(self, num_outputs: int, init: str = "authors", **kwargs):
        super().__init__(**kwargs)
        if int(num_outputs) < 1:
            raise ValueError(f"MotionValueHead: num_outputs must be positive, got {num_outputs}")
        self.num_outputs = int(num_outputs)
        self.init = check_init(init, "MotionValueHead")
        # Layers. float32 for regression targets / logits at full precision.
        self.readout = keras.layers.Dense(
            self.num_outputs,
            dtype="float32",
            kernel_initializer=linear_initializer(self.init),
            name="readout",
        )

    def build(self, input_shape):
        self.readout.build(tuple(input_shape))
        self.built = True

    def call(self, x):
        """x: [B, N, width] -> [B, N, num_outputs] float32."""
        return self.readout(x)

    def get_config(self):
        config = super().get_config()
        config.update({"num_outputs": self.num_outputs, "init": self.init})
        return config

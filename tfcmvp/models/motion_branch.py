"""MotionBranch: the future-motion prediction of pretraining and of the finetuning regulariser.

For a local batch of B clips, from the video network's stage maps::

    memory stages --PredictorMemory--> tokens [B, M, width]
                  --predictor--------> predicted [B, N, width]   (Transformer or ConvGRU)
                  --g_M1 (prediction_head)--> motion query [B, N, D]
    motion network features [B, K, N, C] --g_M2 (motion_head)--> motion keys [B, K, N, D]

N = T3 * H3 * W3 positions of the motion network's output grid, in flattened
(t, y, x) order on both sides; motion clip 0 is the target (future motion),
1..K-1 the hard negatives. With a value head (the mse / ce ablations of
pretraining) the predicted tokens go through the linear MotionValueHead to
per-position motion values instead, and g_M1 / g_M2 are frozen.

The motion network itself is not part of the branch: it is a backbone (saved and
exported on its own); :func:`motion_features` runs it on the motion clips.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import keras
from keras import ops

from tfcmvp.models.heads import MLPHead, MotionValueHead
from tfcmvp.models.memory import PredictorMemory
from tfcmvp.models.predictor_convgru import ConvGRUPredictor


def motion_features(m_network: keras.Model, motion, training=None):
    """Motion network features per position of every motion clip.

    motion [B, K, L, S, S, 2] -> [B, K, N, C] (N = T3 * H3 * W3).
    """
    clips = motion.shape[1]  # K = 1 + negatives
    flat = ops.reshape(motion, (-1, *motion.shape[2:]))  # [B * K, L, S, S, 2]
    features = m_network(flat, training=training)["features"]  # [B * K, T3, H3, W3, C]
    positions = math.prod(features.shape[1:4])
    return ops.reshape(features, (-1, clips, positions, features.shape[-1]))  # [B, K, N, C]


@keras.saving.register_keras_serializable(package="tfcmvp")
class MotionBranch(keras.layers.Layer):
    """Predicts the future motion of a clip from its video network maps.

    ``branch(v_maps, m_features)`` returns {"motion_query" [B, N, D],
    "motion_keys" [B, K, N, D]}; with a value head ``branch(v_maps)`` returns
    {"motion_values" [B, N, *value_shape]}.

    Args:
      memory: the PredictorMemory of the video network's stages.
      predictor: a TransformerPredictor (tokens [B, M, width] -> [B, N, width])
        or a ConvGRUPredictor (on the memory grid [B, T, H, W, width]).
      prediction_head: g_M1, on the predicted tokens.
      motion_head: g_M2, on the motion network features.
      memory_stages: the video network map names the memory reads, in order.
      target_grid: (T3, H3, W3), the motion network's output grid.
      value_head: the MotionValueHead of the mse / ce ablations, or None.
      value_shape: per-position shape of its output ((2,) for mse, (2, bins)
        for ce); needed with `value_head`.
    """

    def __init__(
        self,
        memory: PredictorMemory,
        predictor: keras.layers.Layer,
        prediction_head: MLPHead,
        motion_head: MLPHead,
        memory_stages: Sequence[str],
        target_grid: Sequence[int],
        value_head: Optional[MotionValueHead] = None,
        value_shape: Optional[Sequence[int]] = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if (value_head is None) != (value_shape is None):
            raise ValueError(
                f"MotionBranch needs both or neither of value_head and value_shape, got "
                f"value_head={value_head!r}, value_shape={value_shape!r}"
            )
        # Layers.
        self.memory = memory
        self.predictor = predictor
        self.prediction_head = prediction_head
        self.motion_head = motion_head
        self.value_head = value_head
        # Config.
        self.memory_stages = tuple(memory_stages)
        self.target_grid = tuple(int(size) for size in target_grid)
        self.num_positions = math.prod(self.target_grid)  # N
        self.value_shape = None if value_shape is None else tuple(int(s) for s in value_shape)
        if value_head is not None:
            # g_M1 / g_M2 are not part of the value objectives: keep them out of the optimizer.
            prediction_head.trainable = False
            motion_head.trainable = False

    # ------------------------------------------------------------------ build

    def build(self, v_map_shapes: dict, motion_channels: Optional[int] = None):
        """Creates every variable: `v_map_shapes` {stage: shape} of the video network's
        maps, `motion_channels` the motion network's feature channels C."""
        memory_shapes = self._memory_shapes(v_map_shapes)
        self.memory.build(memory_shapes)
        grid = self.memory.grid(memory_shapes)
        width = self.memory.width
        if isinstance(self.predictor, ConvGRUPredictor):
            self.predictor.build((None, *grid, width))
        else:
            self.predictor.build((None, math.prod(grid), width))
        prediction_shape = (None, self.num_positions, width)
        self.prediction_head.build(prediction_shape)
        self.motion_head.build((None, self.num_positions, motion_channels))
        if self.value_head is not None:
            self.value_head.build(prediction_shape)
        self.built = True

    def fused_map(self, v_maps: dict):
        """The memory's fused video network map before its projection [B, T, H, W, C]."""
        return self.memory.fuse([v_maps[stage] for stage in self.memory_stages])

    def fused_channels(self, v_map_shapes: dict) -> int:
        """Channels of :meth:`fused_map` for maps of `v_map_shapes`."""
        return self.memory.fused_channels(self._memory_shapes(v_map_shapes))

    def _memory_shapes(self, v_map_shapes: dict) -> list:
        return [tuple(v_map_shapes[stage]) for stage in self.memory_stages]

    # ---------------------------------------------------------------- forward

    def call(self, v_maps: dict, m_features=None, training=None) -> dict:
        """v_maps: the video network's maps; m_features [B, K, N, C] (see
        :func:`motion_features`; unused with a value head)."""
        predicted = self.predict_tokens(v_maps, training=training)  # [B, N, width]
        if self.value_head is not None:
            values = self.value_head(predicted)  # [B, N, prod(value_shape)]
            return {
                "motion_values": ops.reshape(values, (-1, self.num_positions, *self.value_shape))
            }
        clips = m_features.shape[1]
        flat = ops.reshape(m_features, (-1, self.num_positions, m_features.shape[-1]))
        keys = self.motion_head(flat, training=training)  # [B * K, N, D]
        return {
            "motion_query": self.prediction_head(predicted, training=training),  # [B, N, D]
            "motion_keys": ops.reshape(keys, (-1, clips, self.num_positions, keys.shape[-1])),
        }

    def predict_tokens(self, v_maps: dict, training=None):
        """The predictor's output tokens [B, N, width] for the video network's maps."""
        maps = [v_maps[stage] for stage in self.memory_stages]
        tokens = self.memory(maps)  # [B, M, width]
        if isinstance(self.predictor, ConvGRUPredictor):
            grid = self.memory.grid([tuple(m.shape) for m in maps])
            return self.predictor(ops.reshape(tokens, (-1, *grid, tokens.shape[-1])))
        return self.predictor(tokens, training=training)

    # ----------------------------------------------------------------- config

    def get_config(self):
        config = super().get_config()
        layers = ("memory", "predictor", "prediction_head", "motion_head", "value_head")
        config.update(
            {name: keras.saving.serialize_keras_object(getattr(self, name)) for name in layers}
        )
        config.update(
            {
                "memory_stages": list(self.memory_stages),
                "target_grid": list(self.target_grid),
                "value_shape": None if self.value_shape is None else list(self.value_shape),
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for name in ("memory", "predictor", "prediction_head", "motion_head", "value_head"):
            config[name] = keras.saving.deserialize_keras_object(config[name])
        return cls(**config)

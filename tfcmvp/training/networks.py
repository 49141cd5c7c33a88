"""Builders of the pretraining networks from their config sections.

The video, I-frame and motion network, the predictor memory and predictor, and the motion
branch, as :class:`~tfcmvp.training.pretrain_model.PretrainModel` and the
finetuning classifier (its motion regulariser) both build them; plus the two
small facts of the forward pass that both need (the map the context query
pools, the shape of the motion-value targets).
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from tfcmvp.config import DataConfig, LossConfig, ModelConfig
from tfcmvp.models.backbones import RESIDUAL_BACKBONES, build_backbone, memory_spec
from tfcmvp.models.heads import MLPHead, MotionValueHead
from tfcmvp.models.memory import PredictorMemory
from tfcmvp.models.motion_branch import MotionBranch
from tfcmvp.models.predictor_convgru import ConvGRUPredictor
from tfcmvp.models.predictor_transformer import TransformerPredictor


def _residual_kwargs(backbone: str, model: ModelConfig) -> dict:
    """zero_init_residual for the ResNets (C3D has no residual blocks)."""
    if backbone in RESIDUAL_BACKBONES:
        return {"zero_init_residual": model.zero_init_residual}
    return {}


def build_video_network(model: ModelConfig, data: DataConfig, sync_bn: bool = False) -> keras.Model:
    """The video network of `model` for clips of `data` (the network finetuning keeps)."""
    kwargs = dict(
        input_shape=(data.clip_len, data.crop_size, data.crop_size, 3),
        width=model.video_width,
        sync_bn=sync_bn,
        **_residual_kwargs(model.video_network, model),
    )
    if model.video_blocks is not None:
        kwargs["blocks"] = tuple(model.video_blocks)
    if model.video_network == "r3d_10":
        # R3D-10 standing in as a tiny video network keeps its stride-2 stem without
        # pool whatever model.motion_stem says (that option is the motion network's).
        kwargs["stem"] = "strided"
    return build_backbone(model.video_network, **kwargs)


def build_iframe_network(
    model: ModelConfig, data: DataConfig, sync_bn: bool = False
) -> keras.Model:
    """The I-frame network of `model` for I-frames of `data`."""
    return build_backbone(
        model.iframe_network,
        input_shape=(data.crop_size, data.crop_size, 3),
        width=model.iframe_width,
        sync_bn=sync_bn,
        **_residual_kwargs(model.iframe_network, model),
    )


def build_motion_network(
    model: ModelConfig, data: DataConfig, sync_bn: bool = False
) -> keras.Model:
    """The motion network of `model` for motion clips of `data` (2 channels: x, y)."""
    return build_backbone(
        model.motion_network,
        input_shape=(data.motion_len, data.crop_size, data.crop_size, 2),
        width=model.motion_width,
        sync_bn=sync_bn,
        stem=model.motion_stem,
        **_residual_kwargs(model.motion_network, model),
    )


def build_memory(model: ModelConfig) -> PredictorMemory:
    """The predictor memory of `model`'s video network (see models/memory.py)."""
    spec = memory_spec(model.video_network)
    return PredictorMemory(
        model.predictor_width,
        spec.time_fold,
        model.memory_interpolation,
        fusion=model.memory_fusion,
        use_bias=model.memory_bias,
        init=model.init,
        name="memory",
    )


def build_transformer_predictor(model: ModelConfig, num_queries: int) -> TransformerPredictor:
    """The Transformer predictor of `model` with `num_queries` (N) outputs."""
    return TransformerPredictor(
        num_queries,
        width=model.predictor_width,
        num_heads=model.num_heads,
        ffn_width=model.ffn_width,
        num_encoder_layers=model.encoder_layers,
        num_decoder_layers=model.decoder_layers,
        dropout=model.dropout,
        init=model.init,
        name="predictor",
    )


def build_motion_branch(
    model: ModelConfig,
    target_grid,
    *,
    predictor: str = "transformer",
    value_shape=None,
    sync_bn: bool = False,
    before_heads=None,
) -> MotionBranch:
    """The MotionBranch of `model` predicting motion on the motion network grid `target_grid`.

    Args:
      model: the networks' options (memory, predictor, heads, initialisers).
      target_grid: (T3, H3, W3) of the motion network's features.
      predictor: "transformer" or "convgru" (the finetuning regulariser
        always uses the Transformer, pretraining ``model.predictor``).
      value_shape: per-position output of a MotionValueHead ((2,) for the mse,
        (2, bins) for the ce ablation), or None for the InfoNCE heads only.
      sync_bn: BatchNorm statistics of the heads over all replicas.
      before_heads: called after the memory and the predictor are made and before
        the heads: the layers it makes draw their initialisers' seeds there.

    Layers are made in the order memory, predictor, (before_heads), prediction
    head, motion head, value head: initialisers draw their seeds when their
    layer is made, so this order is what makes a seed give the initial weights
    of the first checkpoints.
    """
    num_positions = math.prod(target_grid)  # N
    memory = build_memory(model)
    if predictor == "transformer":
        predictor_layer = build_transformer_predictor(model, num_positions)
    else:
        predictor_layer = ConvGRUPredictor(
            tuple(target_grid),
            width=model.predictor_width,
            kernel_size=model.convgru_kernel,
            name="predictor",
        )
    # g_M1 (predicted motion), g_M2 (motion keys).
    head = dict(
        hidden_units=model.head_hidden,
        output_units=model.head_out,
        sync_bn=sync_bn,
        init=model.init,
    )
    if before_heads is not None:
        before_heads()
    prediction_head = MLPHead(**head, name="prediction_head")
    motion_head = MLPHead(**head, name="motion_head")
    value_head = None
    if value_shape is not None:
        value_head = MotionValueHead(math.prod(value_shape), init=model.init, name="value_head")
    return MotionBranch(
        memory,
        predictor_layer,
        prediction_head,
        motion_head,
        memory_spec(model.video_network).stages,
        target_grid,
        value_head=value_head,
        value_shape=value_shape,
        name="motion_branch",
    )


def context_map(model: ModelConfig, v_maps: dict, branch: MotionBranch) -> "tf.Tensor":
    """The video network map [B, T, H, W, C] that the clip-context query averages.

    ``model.context_pooling="fused"``: the memory's fused map before its
    projection (the authors'; for a ResNet, layer3 folded + layer4 upsampled);
    "layer4": the last stage ("features"). Both are conv5 for C3D.
    """
    if model.context_pooling == "fused":
        return branch.fused_map(v_maps)
    return v_maps["features"]


def value_shape(loss: LossConfig):
    """Per-position output of the value head for `loss` (None for InfoNCE)."""
    if loss.motion_loss == "infonce":
        return None
    return (2,) if loss.motion_loss == "mse" else (2, loss.ce_bins)

"""The pretraining model: video, I-frame and motion network, predictor and four heads,
with the custom train / test steps that `model.fit` runs under tf.distribute.

Forward pass (paper Fig. 2), for a local batch of B videos::

    clip   [B, T, S, S, 3] --video network--> stage maps --mean--> g_V --> context query  [B, D]
                                       \\--memory--> predictor --> g_M1 --> motion query [B, N, D]
    iframe [B, S, S, 3]    --I-frame network--> map --mean--> g_I -----> context key    [B, D]
    motion [B, K, L, S, S, 2] --motion network--> [B*K, T3, H3, W3, C] --> g_M2 --> motion keys
                                                                       [B, K, N, D]

Motion clip 0 is the target (future motion), 1..K-1 the hard negatives.
N = T3 * H3 * W3 positions, in flattened (t, y, x) order on both sides.
The map g_V averages is ``model.context_pooling``: the memory's fused map
(the authors'; for a ResNet, layer3 folded + layer4 upsampled, before the
projection) or the last stage; the same conv5 for C3D.
For the value ablations (loss.motion_loss = mse / ce) the predictor output
goes through a linear MotionValueHead instead, against the target clip
average-pooled to the same grid; the motion network and g_M1 / g_M2 are then not
part of the objective and are frozen.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf
from keras import ops

from tfcmvp import losses
from tfcmvp.config import (
    DataConfig,
    LossConfig,
    ModelConfig,
    PretrainConfig,
    config_from_dict,
    config_to_dict,
)
from tfcmvp.data import keys
from tfcmvp.models.heads import MLPHead
from tfcmvp.models.motion_branch import motion_features
from tfcmvp.training import step

# The builders live in networks.py; imported here too, where callers have found them.
from tfcmvp.training.networks import (  # noqa: F401
    build_iframe_network,
    build_memory,
    build_motion_branch,
    build_motion_network,
    build_transformer_predictor,
    build_video_network,
    context_map,
    value_shape,
)
from tfcmvp.training.prebuilt import BuiltBeforeFit
from tfcmvp.training.workdir import NETWORK_WEIGHTS_STEMS

INPUT_KEYS = (keys.CLIP, keys.IFRAME, keys.MOTION)  # the batch entries read
METRIC_NAMES = ("loss", "context_loss", "motion_loss", "context_acc", "motion_acc", "lr")


@keras.saving.register_keras_serializable(package="tfcmvp")
class PretrainModel(BuiltBeforeFit, keras.Model):
    """Context and motion decoupling, trained with `fit` on dict batches.

    Batches: {"clip" [B, T, S, S, 3], "iframe" [B, S, S, 3],
    "motion" [B, 1 + negatives, L, S, S, 2]} (other keys are ignored).

    Args:
      model_config: the networks (`ModelConfig` or its dict).
      loss_config: the objective (`LossConfig` or its dict).
      data_config: the sample layout (`DataConfig` or its dict): input sizes
        and the motion value range of the mse / ce ablations.
      sync_bn: BatchNorm statistics over all replicas.
      motion_only_steps: optimizer steps at the start that minimise the motion
        loss alone (alpha = 1) before the configured alpha applies
        (``loss.motion_only_epochs`` x steps per epoch; 0 = joint from step 0).
    """

    def __init__(
        self,
        model_config: ModelConfig,
        loss_config: LossConfig,
        data_config: DataConfig,
        sync_bn: bool = False,
        motion_only_steps: int = 0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.model_config = _section(ModelConfig, model_config, "model")
        self.loss_config = _section(LossConfig, loss_config, "loss")
        self.data_config = _section(DataConfig, data_config, "data")
        self.sync_bn = bool(sync_bn)
        self.motion_only_steps = int(motion_only_steps)
        model, loss, data = self.model_config, self.loss_config, self.data_config

        # Networks. A checkpoint names each variable by its attribute path
        # (model/v_network/...), so the networks keep the attribute names of the
        # first checkpoints; code reads them as video_network, iframe_network and
        # motion_network (properties below, which no checkpoint sees).
        self.v_network = build_video_network(model, data, self.sync_bn)
        self.i_network = build_iframe_network(model, data, self.sync_bn)
        self.m_network = build_motion_network(model, data, self.sync_bn)
        self.target_grid = tuple(int(s) for s in self.motion_network.output["features"].shape[1:4])
        self.num_positions = math.prod(self.target_grid)  # N
        context_heads = []
        branch = build_motion_branch(
            model,
            self.target_grid,
            predictor=model.predictor,
            value_shape=value_shape(loss),
            sync_bn=self.sync_bn,
            # Each initialiser draws its seed when its layer is made: the context heads
            # are made between the predictor and the motion heads, as they always were,
            # so that a seed gives the same initial weights (and runs) as before.
            before_heads=lambda: context_heads.extend(_context_heads(model, self.sync_bn)),
        )
        # The branch's layers keep their own attributes here, in this order and
        # before the branch (a private attribute, so that .weights.h5 visits
        # it last): a checkpoint names each variable by its shortest attribute
        # path, the optimizer's slots follow the model's variable order and
        # .weights.h5 the attribute names, so the files of the code before the
        # branch was one layer load unchanged (tests/test_training_checkpoint_compat.py).
        self.memory = branch.memory
        self.predictor = branch.predictor
        self.clip_head, self.iframe_head = context_heads
        self.prediction_head = branch.prediction_head
        self.motion_head = branch.motion_head
        self.value_head = branch.value_head
        if self.value_head is not None:
            self.motion_network.trainable = False  # not part of the value objectives
        self._motion_branch = branch
        self.memory_stages = branch.memory_stages

        # Metrics: means over every video (and position) of the epoch.
        self.trackers = {name: keras.metrics.Mean(name=name) for name in METRIC_NAMES}

    @classmethod
    def from_pretrain_config(cls, config: PretrainConfig, **kwargs) -> "PretrainModel":
        """The model of a whole run config."""
        return cls(config.model, config.loss, config.data, sync_bn=config.train.sync_bn, **kwargs)

    # ------------------------------------------------------------------ build

    def build(self, input_shape=None):
        """Creates every variable from the configured input sizes (no data needed)."""
        v_shapes = {name: tuple(t.shape) for name, t in self.video_network.output.items()}
        m_channels = self.motion_network.output["features"].shape[-1]
        self._motion_branch.build(v_shapes, m_channels)
        context_channels = (
            self._motion_branch.fused_channels(v_shapes)
            if self.model_config.context_pooling == "fused"
            else v_shapes["features"][-1]
        )
        self.clip_head.build((None, context_channels))
        self.iframe_head.build((None, self.iframe_network.output["features"].shape[-1]))
        self.built = True

    # ---------------------------------------------------------------- forward

    def call(self, inputs, training=None):
        """Returns the embeddings (or motion values) that the losses compare.

        {"context_query" [B, D], "context_key" [B, D]} and either
        {"motion_query" [B, N, D], "motion_keys" [B, K, N, D]} (infonce) or
        {"motion_values" [B, N, 2] / [B, N, 2, bins]} (mse / ce).
        """
        clip, iframe, motion = (inputs[key] for key in INPUT_KEYS)
        v_maps = self.video_network(clip, training=training)
        pooled = context_map(self.model_config, v_maps, self._motion_branch)
        context_query = self.clip_head(
            ops.mean(pooled, axis=(1, 2, 3)),  # [B, C]
            training=training,
        )
        i_features = self.iframe_network(iframe, training=training)["features"]  # [B, h, w, C]
        context_key = self.iframe_head(ops.mean(i_features, axis=(1, 2)), training=training)
        outputs = {"context_query": context_query, "context_key": context_key}  # [B, D] each
        m_features = None
        if self.value_head is None:
            m_features = motion_features(self.motion_network, motion, training)  # [B, K, N, C]
        outputs.update(self._motion_branch(v_maps, m_features, training=training))
        return outputs

    def per_example_losses(self, inputs, outputs) -> dict:
        """Per-video losses and hits of the local batch (all [B], float32).

        Keys: loss (joint, Eq. 3 x loss.scale: the value minimised), context_loss,
        motion_loss (mean over the N positions), context_acc, motion_acc
        (fraction of positions right).
        """
        context_loss, context_hit = losses.context_infonce(
            outputs["context_query"], outputs["context_key"], self.loss_config.temperature
        )
        kind = self.loss_config.motion_loss
        if kind == "infonce":
            motion_loss, motion_hit = losses.motion_infonce(
                outputs["motion_query"], outputs["motion_keys"], self.loss_config.temperature
            )
        else:
            target = inputs[keys.MOTION][:, 0]  # [B, L, S, S, 2], the positive (future) clip
            bound = self.data_config.mv_clip / self.data_config.mv_div  # vectors lie in +-bound
            value_fn = losses.motion_mse if kind == "mse" else losses.motion_quantized_ce
            motion_loss, motion_hit = value_fn(
                outputs["motion_values"],
                target,
                bins=self.loss_config.ce_bins,
                value_range=(-bound, bound),
                grid=self.target_grid,
            )  # [B, N] each
        motion_loss = tf.reduce_mean(motion_loss, axis=-1)  # [B]
        motion_hit = tf.reduce_mean(motion_hit, axis=-1)  # [B]
        joint = losses.joint_loss(
            context_loss, motion_loss, self.current_alpha(), self.loss_config.scale
        )  # [B]
        return {
            "loss": joint,
            "context_loss": context_loss,
            "motion_loss": motion_loss,
            "context_acc": context_hit,
            "motion_acc": motion_hit,
        }

    def current_alpha(self):
        """``loss.alpha``, or 1 (motion alone) during the first ``motion_only_steps``
        optimizer steps."""
        alpha = self.loss_config.alpha
        if self.motion_only_steps > 0 and self.optimizer is not None:
            alpha = tf.where(
                self.optimizer.iterations < self.motion_only_steps,
                tf.constant(1.0),
                tf.constant(alpha, tf.float32),
            )
        return alpha

    # ------------------------------------------------------------ train / test

    def train_step(self, data):
        inputs = _inputs(data)
        return step.train_step(self, inputs, self, tf.shape(inputs[keys.CLIP])[0])

    def test_step(self, data):
        return step.test_step(self, _inputs(data), self)

    @property
    def metrics(self):
        # Listed here so that fit / evaluate reset them every epoch.
        return list(self.trackers.values())

    # ----------------------------------------------------------------- config

    @property
    def video_network(self) -> keras.Model:
        """The video network (paper: V-Network), the one finetuning keeps."""
        return self.v_network

    @property
    def iframe_network(self) -> keras.Model:
        """The I-frame network (paper: I-Network)."""
        return self.i_network

    @property
    def motion_network(self) -> keras.Model:
        """The motion network (paper: M-Network)."""
        return self.m_network

    def networks(self) -> dict:
        """{weights file stem: network} of the three networks the run saves
        (stems from :data:`~tfcmvp.training.workdir.NETWORK_WEIGHTS_STEMS`)."""
        by_name = {
            "video": self.video_network,
            "iframe": self.iframe_network,
            "motion": self.motion_network,
        }
        return {NETWORK_WEIGHTS_STEMS[name]: network for name, network in by_name.items()}

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "model_config": config_to_dict(self.model_config),
                "loss_config": config_to_dict(self.loss_config),
                "data_config": config_to_dict(self.data_config),
                "sync_bn": self.sync_bn,
                "motion_only_steps": self.motion_only_steps,
            }
        )
        return config


def _context_heads(model: ModelConfig, sync_bn: bool) -> list:
    """The heads g_V and g_I of context matching (clip query, I-frame key)."""
    head = dict(
        hidden_units=model.head_hidden,
        output_units=model.head_out,
        sync_bn=sync_bn,
        init=model.init,
    )
    return [MLPHead(**head, name=name) for name in ("clip_head", "iframe_head")]


def _inputs(data) -> dict:
    """The model inputs of a batch: a dict, or (dict,) as `train_on_batch` packs it."""
    x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
    return {key: x[key] for key in INPUT_KEYS}


def _section(cls, value, name):
    """A config section given as the dataclass or as its dict (from get_config)."""
    if isinstance(value, cls):
        return value
    return getattr(config_from_dict({name: dict(value)}, f"PretrainModel {name}_config"), name)

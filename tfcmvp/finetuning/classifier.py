"""The finetuning model: video network + global average pool + dropout + Dense classifier,
optionally regularised by the motion-prediction task (paper Table 6).

Forward pass for a local batch of B clips::

    clip [B, T, S, S, 3] --video network--> features [B, T1, H1, W1, C] --mean--> [B, C]
                                     --dropout--> Dense --> logits [B, K]

With ``motion_aux_weight = w > 0`` the same video network maps also feed the
motion predictor of pretraining, trained here from scratch: memory ->
Transformer -> head g_M1 gives the predicted motion queries [B, N, D]; the
clip's future motion (and its hard negatives) go through an motion network (R3D-10)
and head g_M2 to the keys [B, 1 + K, N, D]; the per-video loss is
CE + w x J_M with J_M the pointwise InfoNCE of Eq. 2 averaged over the N
positions. Only the video network and the classifier are kept for testing and
export. The regulariser's networks follow the same ModelConfig options as in
pretraining (memory fusion and bias, motion network stem, zero-init residual,
initialisers): the same MotionBranch layer (tfcmvp.models.motion_branch),
built by the same functions of tfcmvp.training.pretrain_model.
"""

from __future__ import annotations

import math
from typing import Optional

import keras
import tensorflow as tf
from keras import ops

from tfcmvp import losses
from tfcmvp.config import DataConfig, ModelConfig, config_to_dict
from tfcmvp.data import keys
from tfcmvp.finetuning.config import FinetuneConfig, finetune_config_from_dict
from tfcmvp.models.motion_branch import motion_features
from tfcmvp.training import step
from tfcmvp.training.prebuilt import BuiltBeforeFit
from tfcmvp.training.pretrain_model import (
    build_motion_branch,
    build_motion_network,
    build_video_network,
)

CLASSIFIER_METRICS = ("loss", "ce_loss", "acc", "lr")
MOTION_METRICS = ("motion_loss", "motion_acc")


@keras.saving.register_keras_serializable(package="tfcmvp")
class VideoClassifier(BuiltBeforeFit, keras.Model):
    """Action classifier on a video network, trained with `fit` on dict batches.

    ``model(clips)`` returns the logits ``[B, num_classes]`` (float32).
    Batches for `fit` / `evaluate`: {"clip" [B, T, S, S, 3], "label" [B]} and,
    with the motion regulariser, "motion" [B, 1 + K, L, S, S, 2] (target
    first); other keys are ignored.

    Args:
      model_config: the video network and the regulariser's networks
        (`ModelConfig` or its dict).
      data_config: the input layout (`DataConfig` or its dict: clip_len,
        crop_size, motion_len).
      num_classes: classes K.
      dropout: dropout rate before the classifier (paper: 0.3).
      motion_aux_weight: weight w of the auxiliary motion loss; 0 = off.
      motion_aux_temperature: tau of the auxiliary InfoNCE.
      sync_bn: BatchNorm statistics over all replicas.
    """

    def __init__(
        self,
        model_config: ModelConfig,
        data_config: DataConfig,
        num_classes: int,
        dropout: float = 0.3,
        motion_aux_weight: float = 0.0,
        motion_aux_temperature: float = 0.1,
        sync_bn: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.model_config = _section(ModelConfig, model_config, "model")
        self.data_config = _section(DataConfig, data_config, "data")
        if int(num_classes) < 2:
            raise ValueError(f"VideoClassifier: num_classes must be >= 2, got {num_classes!r}")
        self.num_classes = int(num_classes)
        self.dropout = float(dropout)
        self.motion_aux_weight = float(motion_aux_weight)
        self.motion_aux_temperature = float(motion_aux_temperature)
        self.sync_bn = bool(sync_bn)
        model, data = self.model_config, self.data_config

        # Layers kept after training. The networks keep the attribute names of
        # the first checkpoints (model/backbone/..., model/m_network/...: a
        # checkpoint and .weights.h5 name variables by attribute path); code
        # reads them as video_network and motion_network (properties below).
        self.backbone = build_video_network(model, data, self.sync_bn)
        self.dropout_layer = keras.layers.Dropout(self.dropout, name="dropout")
        # float32 logits under mixed precision: softmax and CE at full precision.
        self.classifier = keras.layers.Dense(self.num_classes, dtype="float32", name="classifier")

        # The motion regulariser (training only).
        if self.motion_aux:
            self.m_network = build_motion_network(model, data, self.sync_bn)
            self.target_grid = tuple(
                int(s) for s in self.motion_network.output["features"].shape[1:4]
            )
            self.num_positions = math.prod(self.target_grid)  # N
            branch = build_motion_branch(model, self.target_grid, sync_bn=self.sync_bn)
            # The branch's layers keep their own attributes, before the branch
            # (private: .weights.h5 visits it last), so that checkpoints and
            # classifier.weights.h5 of the code before the branch was one layer
            # load unchanged (see PretrainModel).
            self.memory = branch.memory
            self.predictor = branch.predictor
            self.prediction_head = branch.prediction_head
            self.motion_head = branch.motion_head
            self._motion_branch = branch

        names = CLASSIFIER_METRICS + (MOTION_METRICS if self.motion_aux else ())
        self.trackers = {name: keras.metrics.Mean(name=name) for name in names}

    @classmethod
    def from_finetune_config(
        cls, config: FinetuneConfig, num_classes: int, **kwargs
    ) -> "VideoClassifier":
        """The classifier of a whole run config."""
        return cls(
            config.model,
            config.data,
            num_classes,
            dropout=config.classifier.dropout,
            motion_aux_weight=config.train.motion_aux_weight,
            motion_aux_temperature=config.train.motion_aux_temperature,
            sync_bn=config.train.sync_bn,
            **kwargs,
        )

    @property
    def motion_aux(self) -> bool:
        """True when the motion regulariser is part of the model."""
        return self.motion_aux_weight > 0

    @property
    def video_network(self) -> keras.Model:
        """The video network (paper: V-Network) under the classifier."""
        return self.backbone

    @property
    def motion_network(self) -> Optional[keras.Model]:
        """The motion network (paper: M-Network) of the regulariser; None without it."""
        return getattr(self, "m_network", None)

    # ------------------------------------------------------------------ build

    def build(self, input_shape=None):
        """Creates every variable from the configured input sizes (no data needed)."""
        v_maps = self.video_network.output
        self.classifier.build((None, v_maps["features"].shape[-1]))
        if self.motion_aux:
            self._motion_branch.build(
                {name: tuple(t.shape) for name, t in v_maps.items()},
                self.motion_network.output["features"].shape[-1],
            )
        self.built = True

    # ---------------------------------------------------------------- forward

    def call(self, clips, training=None):
        """clips [B, T, S, S, 3] -> logits [B, num_classes] float32."""
        return self._logits(self.video_network(clips, training=training), training)

    def _logits(self, v_maps: dict, training) -> tf.Tensor:
        pooled = ops.mean(v_maps["features"], axis=(1, 2, 3))  # [B, C]
        return self.classifier(self.dropout_layer(pooled, training=training))  # [B, K]

    def forward(self, inputs: dict, training=None) -> dict:
        """{"logits" [B, K]} and, with the regulariser, {"motion_query" [B, N, D],
        "motion_keys" [B, 1 + K', N, D]} for a batch dict."""
        v_maps = self.video_network(inputs[keys.CLIP], training=training)
        outputs = {"logits": self._logits(v_maps, training)}
        if not self.motion_aux:
            return outputs
        m_features = motion_features(self.motion_network, inputs[keys.MOTION], training)
        outputs.update(self._motion_branch(v_maps, m_features, training=training))
        return outputs  # + motion_query [B, N, D], motion_keys [B, 1 + K', N, D]

    def per_example_losses(self, inputs: dict, outputs: dict) -> dict:
        """Per-video losses and hits of the local batch (all [B], float32).

        Keys: loss (CE + w x J_M), ce_loss, acc (top-1 hit) and, with the
        regulariser, motion_loss (J_M averaged over the N positions) and
        motion_acc (fraction of positions whose top-1 key is the positive).
        """
        logits = tf.cast(outputs["logits"], tf.float32)  # [B, K]
        labels = tf.cast(inputs[keys.LABEL], tf.int32)  # [B]
        # On CPU an out-of-range label raises here with its value; on GPU it
        # gives NaN, which the NaN/Inf stop of the trainer reports.
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)  # [B]
        hit = tf.cast(
            tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), labels), tf.float32
        )  # [B]
        result = {"loss": ce, "ce_loss": ce, "acc": hit}
        if self.motion_aux:
            motion_loss, motion_hit = losses.motion_infonce(
                outputs["motion_query"], outputs["motion_keys"], self.motion_aux_temperature
            )  # [B, N] each
            motion_loss = tf.reduce_mean(motion_loss, axis=-1)  # [B]
            result["motion_loss"] = motion_loss
            result["motion_acc"] = tf.reduce_mean(motion_hit, axis=-1)  # [B]
            result["loss"] = ce + self.motion_aux_weight * motion_loss
        return result

    # ------------------------------------------------------------ train / test

    def train_step(self, data):
        inputs = self._inputs(data)
        return step.train_step(self, inputs, self.forward, tf.shape(inputs[keys.CLIP])[0])

    def test_step(self, data):
        return step.test_step(self, self._inputs(data), self.forward)

    @property
    def metrics(self):
        # Listed here so that fit / evaluate reset them every epoch.
        return list(self.trackers.values())

    def _inputs(self, data) -> dict:
        """The entries of a batch the model reads: a dict, or (dict,) from `train_on_batch`."""
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        needed = (keys.CLIP, keys.LABEL) + ((keys.MOTION,) if self.motion_aux else ())
        missing = [key for key in needed if key not in x]
        if missing:
            raise KeyError(
                f"VideoClassifier batch lacks {missing} (has {sorted(x)}); the "
                f"motion regulariser needs the dataset's with_motion=True"
            )
        return {key: x[key] for key in needed}

    # ----------------------------------------------------------------- config

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "model_config": config_to_dict(self.model_config),
                "data_config": config_to_dict(self.data_config),
                "num_classes": self.num_classes,
                "dropout": self.dropout,
                "motion_aux_weight": self.motion_aux_weight,
                "motion_aux_temperature": self.motion_aux_temperature,
                "sync_bn": self.sync_bn,
            }
        )
        return config


def _section(cls, value, name):
    """A config section given as the dataclass (or a subclass) or as its dict."""
    if isinstance(value, cls):
        return value
    return getattr(
        finetune_config_from_dict({name: dict(value)}, f"VideoClassifier {name}_config"), name
    )


def load_backbone_weights(
    backbone: keras.Model, network: keras.Model, source: Optional[str] = None
) -> None:
    """Copies the weights of `network` (e.g. ``tfcmvp.export.load_keras_network``)
    into `backbone`, variable by variable.

    Raises ValueError naming the first variable whose shape differs (the
    architecture of the config and of the pretrained model disagree).
    """
    source = source or network.name
    target, given = backbone.weights, network.weights
    if len(target) != len(given):
        raise ValueError(
            f"the video network of the config has {len(target)} weights, the pretrained "
            f"network {source} has {len(given)}: the architectures differ"
        )
    for mine, theirs in zip(target, given):
        if tuple(mine.shape) != tuple(theirs.shape):
            raise ValueError(
                f"weight {mine.path} has shape {tuple(mine.shape)} in the config's "
                f"video network but {tuple(theirs.shape)} ({theirs.path}) in {source}: "
                f"the architectures differ"
            )
    for mine, theirs in zip(target, given):
        mine.assign(theirs.numpy())

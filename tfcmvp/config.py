"""Typed configuration of a pretraining run, loaded from YAML with overrides.

A run is described by one :class:`PretrainConfig`: six sections (data, model,
loss, optimizer, train, runtime), each a dataclass whose every field carries
its documentation next to it and whose default is the paper's setting (or the
authors' code where the paper is silent; see ``shared/notes/method_facts``).

YAML files give only what differs from the defaults::

    # configs/pretrain_ucf101_c3d.yaml
    model:
      video_network: c3d
    train:
      epochs: 120

A file may start from another one with ``base: other.yaml`` (a path relative
to the file); its values are merged key by key under the file's own.
Command-line overrides ``--set section.field=value`` are applied last, the
value parsed as YAML (``--set train.epochs=3``, ``--set model.predictor=convgru``,
``--set train.steps_per_epoch=null``). Reading, checking and writing are
:mod:`tfcmvp.config_io`'s (generic over the config class); its functions are
importable from here too, with :class:`PretrainConfig` as the default root.
Renamed keys are still read under their old names (``ModelConfig.RENAMED_KEYS``).

The data sections (:class:`DataConfig`, :class:`FinetuneDataConfig`,
:class:`ColorJitterConfig`, :class:`BlurConfig`) are defined in
:mod:`tfcmvp.config_data` and importable from here. They are passed down as
they are: ``tfcmvp.data.pretrain_dataset`` takes a :class:`DataConfig`,
``finetune_dataset`` a :class:`FinetuneDataConfig`, and the augmentation and
sampling code read their fields, so each data setting, its default and its
documentation are written once.

The paper's ablations are values of this config: ``data.period``
(current / future, Table 1), ``loss.motion_loss`` (infonce / mse / ce,
Table 1), ``model.predictor`` (transformer / convgru, Table 1) and
``loss.alpha`` (0 = context only, 1 = motion only, 0.5 = both; Table 4).
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any, ClassVar, Literal, Mapping, Optional, Sequence

from tfcmvp import config_io
from tfcmvp.config_checks import (  # noqa: F401  (section_checks: importable here)
    check_pretrain_ranges,
    section_checks,
)
from tfcmvp.config_data import (  # noqa: F401  (re-exported: tfcmvp.config is the public name)
    PERIODS,
    RESIZE_METHODS,
    BlurConfig,
    ColorJitterConfig,
    DataConfig,
    FinetuneDataConfig,
    data_checks,
)
from tfcmvp.config_io import (  # noqa: F401  (re-exported: tfcmvp.config is the public name)
    BASE_KEY,
    ConfigError,
    build_config,
    config_changes,
    config_differences,
    config_to_dict,
    dump_config,
    field,
    flatten,
    merge,
    parse_override,
    raise_failed_check,
    read_config_file,
    rename_deprecated_keys,
    renamed_keys,
    save_config,
    section,
)

# ---------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The networks of the framework (paper Fig. 2): video, I-frame and motion network,
    predictor memory, motion predictor and the four MLP heads."""

    # Old names of renamed fields, still read with a deprecation warning from files, --set
    # and older runs' and exports' config.yaml (tfcmvp.config_schema.rename_deprecated_keys).
    RENAMED_KEYS: ClassVar[Mapping[str, str]] = {
        "backbone": "video_network",
        "backbone_width": "video_width",
        "backbone_blocks": "video_blocks",
        "iframe_backbone": "iframe_network",
        "motion_backbone": "motion_network",
    }

    video_network: Literal["c3d", "r2plus1d_26", "r3d_26", "r3d_10"] = field(
        "c3d",
        "architecture of the video network, the network kept after pretraining (r3d_10: tiny "
        "runs only)",
    )
    video_width: int = field(
        64, "channels of the video network's first stage; the others scale with it (paper: 64)"
    )
    video_blocks: Optional[tuple[int, ...]] = field(
        None,
        "residual blocks per stage of a ResNet video network; null = the architecture's "
        "own ((2, 2, 2, 2) for the -26 nets); must be null for c3d",
    )
    iframe_network: Literal["r2d_10"] = field(
        "r2d_10", "architecture of the I-frame network (shallow 2-D ResNet)"
    )
    iframe_width: int = field(64, "channels of the I-frame network's first stage (paper: 64)")
    motion_network: Literal["r3d_10"] = field(
        "r3d_10", "architecture of the motion network (shallow 3-D ResNet)"
    )
    motion_width: int = field(64, "channels of the motion network's first stage (paper: 64)")
    memory_interpolation: Literal["nearest", "trilinear"] = field(
        "nearest", "resampling of the coarser video network stage onto the memory grid"
    )
    memory_fusion: Literal["add", "concat"] = field(
        "add",
        "fusion of a ResNet video network's folded layer3 and upsampled layer4 maps into the "
        "predictor memory: add (authors' code; 98 tokens of 2048 at paper size) or concat "
        "on channels (4096); C3D has one map",
    )
    memory_bias: bool = field(
        False, "bias in the linear map of the memory to predictor_width (authors: none)"
    )
    context_pooling: Literal["fused", "layer4"] = field(
        "fused",
        "what the clip-context query (g_V) averages for a ResNet video network: the fused "
        "memory map before its projection (authors' code; the context loss then also "
        "trains layer3) or the last stage alone (as finetuning and retrieval pool); the "
        "same map for C3D",
    )
    motion_stem: Literal["authors", "strided"] = field(
        "authors",
        "motion network stem: 3x7x7 conv at stride 1 then a 1x3x3 max pool of stride "
        "(1, 2, 2) (authors' code), or the conv at stride (1, 2, 2) without pool "
        "(a quarter of the stem's compute); same weights and output grid",
    )
    zero_init_residual: bool = field(
        True,
        "the last BatchNorm of every residual block of the video, I-frame and motion network "
        "starts "
        "at gamma 0 (authors' code)",
    )
    init: Literal["authors", "keras"] = field(
        "authors",
        "initialisers of the memory, predictor and heads: authors' code (Linear "
        "N(0, 0.01), zero bias; attention inputs Xavier-uniform; positional "
        "embeddings U(0, 1); head layers Kaiming fan-out) or Keras defaults "
        "(Glorot-uniform; embeddings N(0, 1)); tfcmvp.models.initializers",
    )
    predictor: Literal["transformer", "convgru"] = field(
        "transformer", "motion predictor from the video network memory to future motion (Table 1)"
    )
    predictor_width: int = field(512, "width of the memory tokens and the predictor")
    encoder_layers: int = field(2, "Transformer encoder layers")
    decoder_layers: int = field(4, "Transformer decoder layers")
    num_heads: int = field(8, "attention heads of the Transformer")
    ffn_width: int = field(512, "feed-forward width of the Transformer layers")
    dropout: float = field(0.1, "dropout of the Transformer layers")
    convgru_kernel: int = field(3, "spatial kernel of the ConvGRU predictor's convolutions")
    head_hidden: int = field(2048, "hidden width of the four MLP heads")
    head_out: int = field(512, "embedding width of the four MLP heads (then L2-normalised)")


# The values that ModelConfig fields added after the first release had in effect
# before they existed. A resolved config saved by that code (WORKDIR/config.yaml,
# an export's assets/config.yaml) lacks these keys; read with the new defaults it
# would describe another network (add fusion and no memory bias change the memory
# projection's shape; the authors' motion network stem and the fused context pooling
# change the computation on the same weights), so readers of saved configs fill
# them in from here (with_legacy_model_defaults, load_saved_config).
LEGACY_MODEL_DEFAULTS: dict[str, Any] = {
    "memory_fusion": "concat",
    "memory_bias": True,
    "context_pooling": "layer4",
    "motion_stem": "strided",
    "zero_init_residual": False,
    "init": "keras",
}


def with_legacy_model_defaults(values: Mapping) -> dict:
    """A copy of saved config `values` whose ``model`` section has every key of
    :data:`LEGACY_MODEL_DEFAULTS` it lacks set to the legacy value.

    Only for resolved configs written by :func:`save_config` (every field is
    present, so a missing key means an older tfcmvp wrote it); a hand-written
    config leaves fields out on purpose and gets the defaults.
    """
    values = dict(values)
    model = values.get("model")
    if isinstance(model, Mapping) or model is None:
        values["model"] = {**LEGACY_MODEL_DEFAULTS, **dict(model or {})}
    return values


def load_saved_config(path, root=None):
    """Reads a resolved config saved by :func:`save_config` (a run's or an
    export's config.yaml), with :func:`with_legacy_model_defaults` applied and
    old key names read as the new ones (:func:`rename_deprecated_keys`).

    `root`: the config class (default :class:`PretrainConfig`). Raises
    :class:`ConfigError` naming the file and the key.
    """
    root = PretrainConfig if root is None else root
    values = with_legacy_model_defaults(read_config_file(path, root))
    return build_config(root, values, str(pathlib.Path(path).resolve()))


@dataclasses.dataclass(frozen=True)
class LossConfig:
    """The pretraining objective scale x ((1 - alpha) J_I + alpha J_M) (paper Eq. 3).

    The logged ``loss`` is this scaled objective, the value that is minimised.
    """

    temperature: float = field(0.1, "tau of both InfoNCE losses (Eq. 1, Eq. 2)")
    alpha: float = field(
        0.5, "weight of the motion loss: 0 = context only, 1 = motion only (Table 4)"
    )
    scale: float = field(
        2.0,
        "factor on the whole objective (and so on its gradient). The authors minimise "
        "loss_m + loss_i = 2 x ((1 - a) J_I + a J_M) at a = 0.5: scale 2 applies their "
        "update at their lr = 5e-4 x B; 1 = Eq. 3 as printed (half their step)",
    )
    motion_loss: Literal["infonce", "mse", "ce"] = field(
        "infonce",
        "motion objective: pointwise InfoNCE on features (paper), or regress the "
        "pooled vectors (mse) / classify their quantised ranges (ce) (Table 1)",
    )
    motion_only_epochs: float = field(
        0.0,
        "epochs at the start that minimise the motion loss alone (alpha 1) before the "
        "joint objective: a curriculum for small runs, where the larger context gradients "
        "on the shared video network keep the motion task on its ln(batch) plateau (see "
        "configs/pretrain_tiny_cpu.yaml); 0 = joint from the first step (paper)",
    )
    ce_bins: int = field(
        21,
        "classes per motion component for the mse/ce ablations (odd: zero motion gets "
        "its own class); over (-mv_clip, mv_clip) px that is 1 px per class",
    )


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """SGD with a warm-up + cosine learning-rate schedule."""

    base_lr_per_sample: float = field(
        5e-4, "peak learning rate per sample of the global batch: lr = base_lr_per_sample x B"
    )
    momentum: float = field(0.9, "SGD momentum")
    nesterov: bool = field(True, "Nesterov momentum (authors' code; the paper says SGD)")
    weight_decay: Optional[float] = field(
        5e-3,
        "L2 weight decay on every weight, applied as weight_decay_mode says. Paper: "
        "5e-3; authors' code: 1e-3 (both PyTorch's coupled decay). null = off",
    )
    weight_decay_mode: Literal["coupled", "decoupled"] = field(
        "coupled",
        "coupled = the authors' update, torch.optim.SGD after clip_grad_norm_: "
        "weight_decay x w is added to the clipped gradient before momentum, and the "
        "momentum buffer holds gradients (the rate applies when stepping). "
        "decoupled = Keras SGD (our update before this option): w -= lr x "
        "weight_decay x w each step, the rate folded into the velocity. At momentum "
        "0.9 coupled decay is about 1/(1 - momentum) = 10x stronger at the same "
        "weight_decay",
    )
    warmup_epochs: float = field(5.0, "epochs of linear warm-up before the cosine decay")
    clipnorm: Optional[float] = field(
        15.0, "clip the global norm of the gradient (summed over replicas) to this; null = off"
    )


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Length of the run, batch, checkpoints and numerics."""

    epochs: int = field(120, "training epochs")
    global_batch_size: int = field(
        64, "videos per step over all replicas (UCF101: 64 on 4 GPUs; K400: 512 on 32)"
    )
    steps_per_epoch: Optional[int] = field(
        None, "optimizer steps per epoch; null = training videos // global_batch_size"
    )
    checkpoint_every_steps: Optional[int] = field(
        None,
        "also checkpoint every N steps (a killed run resumes mid-epoch); null = per epoch only",
    )
    keep_checkpoints: int = field(3, "newest checkpoints kept in WORKDIR/checkpoints")
    seed: int = field(0, "seed of weight initialisation, sampling and augmentation")
    deterministic: bool = field(
        False,
        "bit-identical runs (history, weights) for one config, data and seed on one "
        "device, same machine and TensorFlow: tf.data keeps its order through the parallel "
        "stages and TensorFlow's op determinism is on for the run (deterministic kernels: "
        "other last bits than a run without; the sample map, whose record parse holds a "
        "stateful Assert, runs on one thread). Without it two tiny runs of one seed "
        "sharing the cores differed from the first epoch on. Cost, tiny configs on 2 "
        "shared CPU cores: pretraining 5.1 vs 5.2 steps/s (medians of 10 alternated runs; "
        "on/off per pair 0.74-1.28, median 0.97), finetuning none measurable. Also "
        "verified under MirroredStrategy on virtual CPUs; replicas on GPUs or workers are "
        "unverified (it warns). A resumed run draws fresh samples from its step, so it "
        "differs from an uninterrupted one. Off by default: the paper configs run on GPUs, "
        "where the one-thread sample map can starve them",
    )
    mixed_precision: Optional[Literal["mixed_float16", "mixed_bfloat16"]] = field(
        None, "Keras dtype policy of the networks (losses stay float32); null = float32"
    )
    sync_bn: bool = field(True, "BatchNorm statistics over the global batch (SyncBN, authors)")


@dataclasses.dataclass(frozen=True)
class RuntimeConfig:
    """Where the run executes."""

    strategy: Literal["default", "mirrored", "multi_worker"] = field(
        "default",
        "tf.distribute strategy: default (one device), mirrored (all local GPUs), "
        "multi_worker (MultiWorkerMirroredStrategy, cluster from TF_CONFIG)",
    )
    virtual_cpus: int = field(
        0,
        "N >= 2 splits the CPU into N logical devices and mirrors over them (testing "
        "data parallelism without GPUs); 0 = off",
    )


@dataclasses.dataclass(frozen=True)
class PretrainConfig:
    """A complete pretraining run."""

    data: DataConfig = section(DataConfig, "sampling and augmentation")
    model: ModelConfig = section(ModelConfig, "networks")
    loss: LossConfig = section(LossConfig, "objective")
    optimizer: OptimizerConfig = section(OptimizerConfig, "SGD and learning-rate schedule")
    train: TrainConfig = section(TrainConfig, "run length, batch, checkpoints")
    runtime: RuntimeConfig = section(RuntimeConfig, "devices and distribution")

    def __post_init__(self):
        check_pretrain_ranges(self)

    @property
    def peak_learning_rate(self) -> float:
        """lr = base_lr_per_sample x global batch (paper: 5e-4 x B)."""
        return self.optimizer.base_lr_per_sample * self.train.global_batch_size


def config_from_dict(values: Mapping, source: str = "config") -> PretrainConfig:
    """Builds a :class:`PretrainConfig` from nested dicts (missing keys = defaults).

    `source` names where the values came from, for error messages.
    """
    return build_config(PretrainConfig, values, source)


def apply_overrides(values: Mapping, overrides: Sequence[str], root=PretrainConfig) -> dict:
    """:func:`tfcmvp.config_io.apply_overrides` for `root` (default :class:`PretrainConfig`)."""
    return config_io.apply_overrides(values, overrides, root)


def read_config_values(
    path=None, overrides: Sequence[str] = (), root=PretrainConfig
) -> tuple[dict, str]:
    """:func:`tfcmvp.config_io.read_config_values` for `root` (default :class:`PretrainConfig`)."""
    return config_io.read_config_values(path, overrides, root)


def load_config(path=None, overrides: Sequence[str] = (), root=PretrainConfig):
    """Loads a YAML config (defaults if `path` is None) and applies overrides.

    `root` is the config class to build (:class:`PretrainConfig`, or
    ``tfcmvp.finetuning.FinetuneConfig``). Raises :class:`ConfigError` naming
    the file or the override and the key (:func:`tfcmvp.config_io.load_config`).
    """
    return config_io.load_config(path, overrides, root)


def field_docs(cls=PretrainConfig, prefix: str = "") -> dict[str, str]:
    """``{"train.epochs": "training epochs", ...}`` for every leaf field of `cls`."""
    return config_io.field_docs(cls, prefix)

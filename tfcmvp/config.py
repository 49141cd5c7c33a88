"""Typed configuration of a pretraining run, loaded from YAML with overrides.

A run is described by one :class:`PretrainConfig`: six sections (data, model,
loss, optimizer, train, runtime), each a dataclass whose every field carries
its documentation next to it and whose default is the paper's setting (or the
authors' code where the paper is silent; see ``shared/notes/method_facts``).

YAML files give only what differs from the defaults::

    # configs/pretrain_ucf101_c3d.yaml
    model:
      backbone: c3d
    train:
      epochs: 120

A file may start from another one with ``base: other.yaml`` (a path relative
to the file); its values are merged key by key under the file's own.
Command-line overrides ``--set section.field=value`` are applied last, the
value parsed as YAML (``--set train.epochs=3``, ``--set model.predictor=convgru``,
``--set train.steps_per_epoch=null``). An unknown key, in a file or an
override, is an error that names the key and the closest valid ones; a value
of the wrong type is an error that names the key, the value and the type.

The paper's ablations are values of this config: ``data.period``
(current / future, Table 1), ``loss.motion_loss`` (infonce / mse / ce,
Table 1), ``model.predictor`` (transformer / convgru, Table 1) and
``loss.alpha`` (0 = context only, 1 = motion only, 0.5 = both; Table 4).
"""

from __future__ import annotations

import dataclasses
import difflib
import pathlib
import types
import typing
from typing import Any, Literal, Mapping, Optional, Sequence

import yaml

BASE_KEY = "base"  # YAML key naming the file a config starts from


class ConfigError(ValueError):
    """A config file or override names an unknown key or has a bad value."""


def field(default, doc: str):
    """A dataclass field with its one-line documentation (``metadata["doc"]``)."""
    return dataclasses.field(default=default, metadata={"doc": doc})


# ---------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ColorJitterConfig:
    """Colour jitter, then random grayscale, of the clip and of the I-frame
    (``tfcmvp.data.ColorJitter``).

    One draw per clip, the same for all its frames; the clip and the I-frame
    draw independently. The paper names colour jitter without values: the
    defaults are the authors' code (``dataset/transforms.py`` and the
    transform lists of ``pretrain.py``): torchvision's four adjustments at
    0.4 / 0.4 / 0.4 / 0.1 in a random order, applied with p 0.5 after the
    Gaussian blur, then a separate RandomGrayscale with p 0.2. Their
    finetuning has no grayscale (``FinetuneDataConfig`` sets 0).
    """

    brightness: float = field(0.4, "brightness factor drawn from [1 - v, 1 + v] (authors: 0.4)")
    contrast: float = field(0.4, "contrast factor drawn from [1 - v, 1 + v] (authors: 0.4)")
    saturation: float = field(0.4, "saturation factor drawn from [1 - v, 1 + v] (authors: 0.4)")
    hue: float = field(0.1, "hue shift drawn from [-v, v] turns of the colour wheel (authors: 0.1)")
    prob: float = field(
        0.5, "probability of jittering a clip at all (authors: 0.5; SimCLR / CoCLR use 0.8)"
    )
    random_order: bool = field(
        True,
        "apply the four adjustments in a random order drawn per clip, as torchvision's "
        "ColorJitter and the authors' code; false: brightness, contrast, saturation, hue",
    )
    grayscale_prob: float = field(
        0.2,
        "probability of turning the clip grey (0.299 R + 0.587 G + 0.114 B), drawn "
        "independently of the jitter and applied after it (authors: 0.2 in pretraining, "
        "none in finetuning); 0 = off",
    )


@dataclasses.dataclass(frozen=True)
class BlurConfig:
    """Gaussian blur of the clip and the I-frame, one sigma per clip, applied
    before the colour jitter (``tfcmvp.data.GaussianBlur``; sigma range and
    probability are the authors' code, the paper names blur without values)."""

    sigma_min: float = field(0.1, "smallest blur sigma in output pixels")
    sigma_max: float = field(2.0, "largest blur sigma in output pixels")
    prob: float = field(0.5, "probability of blurring a clip")
    kernel_size: int = field(11, "taps of the (odd) blur kernel")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Sampling and augmentation of pretraining samples.

    Every field is the keyword argument of the same name of
    ``tfcmvp.data.pretrain_dataset``, with the same default (tests check it).
    """

    clip_len: int = field(16, "frames in the RGB clip fed to the V-Network")
    clip_stride: int = field(
        4, "temporal stride between the clip's frames (16 x 4: a 61-frame span)"
    )
    motion_len: int = field(8, "consecutive motion-vector frames in each motion clip")
    motion_gap: int = field(
        3, "frames between the clip's last frame and the first future motion frame"
    )
    period: Literal["future", "current"] = field(
        "future", "motion target: the motion after the clip (paper) or under it (Table 1 ablation)"
    )
    num_negatives: int = field(
        3, "hard-negative motion clips per video, from non-overlapping windows of the same video"
    )
    iframe_window: int = field(
        5, "the I-frame is drawn among the I-frames within this many frames of the clip span"
    )
    iframe_excludes_clip_frames: bool = field(
        True,
        "never take an I-frame whose index is one of the clip's frame indices: from the "
        "same decode it is pixel-identical to a clip frame, a shortcut for context "
        "matching (~22% of samples at GOP 12, stride 4). The authors keep such indices but "
        "read I-frames from a separate low-bitrate re-encode, so never identical pixels; "
        "with such data (extraction --iframe_source reencode) false reproduces their "
        "sampling. Without another I-frame in the window: the nearest one that is not a "
        "clip frame (tfcmvp.data.sampling)",
    )
    crop_size: int = field(112, "side of the square training crop in pixels")
    min_crop_area: float = field(0.2, "smallest area fraction of the random resized crop")
    crop_ratio: tuple[float, ...] = field(
        (3 / 4, 4 / 3), "(low, high) range of the crop's width / height"
    )
    flip_prob: float = field(0.5, "probability of a horizontal flip")
    flip_negates_mv_x: bool = field(
        True,
        "negate the x component of motion vectors on a horizontal flip (CoViAR; the "
        "authors' code does not, which makes a flipped clip disagree with its vectors)",
    )
    mv_clip: float = field(10.0, "motion vectors are clamped to +-mv_clip pixels (authors: 10)")
    mv_div: float = field(10.0, "motion vectors are divided by mv_div after clamping (authors: 10)")
    mv_resize_method: Literal["bilinear", "nearest"] = field(
        "bilinear", "resampling of motion-vector maps to the crop"
    )
    color_jitter: Optional[ColorJitterConfig] = field(
        ColorJitterConfig(), "colour jitter of clip and I-frame; null = off"
    )
    iframe_color_jitter: Optional[ColorJitterConfig] = field(
        None,
        "colour jitter of the I-frame alone, replacing color_jitter for it; null = the "
        "same as the clip's (paper). hue 0.5 with prob 1 randomises the I-frame's "
        "colours, so that context matching cannot be solved by colour statistics "
        "(`tfcmvp probe` measures whether it is)",
    )
    blur: Optional[BlurConfig] = field(
        BlurConfig(), "Gaussian blur of clip and I-frame; null = off"
    )
    shuffle_buffer: int = field(256, "videos in the tf.data shuffle buffer (<= 1: no shuffle)")
    cycle_length: Optional[int] = field(None, "TFRecord shards read at once; null = min(shards, 8)")
    cache: Optional[str] = field(
        None,
        "keep the decompressed records after the first epoch: 'memory', or a local file "
        "prefix (room for the uncompressed dataset), so later epochs skip reading and "
        "gunzip (about 7 ms of CPU per 2 MB record); null = read the shards every epoch",
    )
    on_corrupt: Literal["fail", "skip"] = field(
        "fail",
        "a damaged training shard (bad CRC, broken gzip, truncated): fail = stop with "
        "an error naming the shard and the byte offset; skip = read it up to the damage, "
        "skip the rest, and log each damaged shard and how many records were skipped. "
        "Evaluation (finetuning's test split, retrieval) always stops: a score over part "
        "of a test set is not comparable",
    )


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The networks of the framework (paper Fig. 2): V-, I- and M-Network,
    predictor memory, motion predictor and the four MLP heads."""

    backbone: Literal["c3d", "r2plus1d_26", "r3d_26", "r3d_10"] = field(
        "c3d", "V-Network, the video backbone kept after pretraining (r3d_10: tiny runs only)"
    )
    backbone_width: int = field(
        64, "channels of the V-Network's first stage; the others scale with it (paper: 64)"
    )
    backbone_blocks: Optional[tuple[int, ...]] = field(
        None,
        "residual blocks per stage of a ResNet V-Network; null = the architecture's "
        "own ((2, 2, 2, 2) for the -26 nets); must be null for c3d",
    )
    iframe_backbone: Literal["r2d_10"] = field("r2d_10", "I-Network (shallow 2-D ResNet)")
    iframe_width: int = field(64, "channels of the I-Network's first stage (paper: 64)")
    motion_backbone: Literal["r3d_10"] = field("r3d_10", "M-Network (shallow 3-D ResNet)")
    motion_width: int = field(64, "channels of the M-Network's first stage (paper: 64)")
    memory_interpolation: Literal["nearest", "trilinear"] = field(
        "nearest", "resampling of the coarser V-Network stage onto the memory grid"
    )
    memory_fusion: Literal["add", "concat"] = field(
        "add",
        "fusion of a ResNet V-Network's folded layer3 and upsampled layer4 maps into the "
        "predictor memory: add (authors' code; 98 tokens of 2048 at paper size) or concat "
        "on channels (4096); C3D has one map",
    )
    memory_bias: bool = field(
        False, "bias in the linear map of the memory to predictor_width (authors: none)"
    )
    context_pooling: Literal["fused", "layer4"] = field(
        "fused",
        "what the clip-context query (g_V) averages for a ResNet V-Network: the fused "
        "memory map before its projection (authors' code; the context loss then also "
        "trains layer3) or the last stage alone (as finetuning and retrieval pool); the "
        "same map for C3D",
    )
    motion_stem: Literal["authors", "strided"] = field(
        "authors",
        "M-Network stem: 3x7x7 conv at stride 1 then a 1x3x3 max pool of stride "
        "(1, 2, 2) (authors' code), or the conv at stride (1, 2, 2) without pool "
        "(a quarter of the stem's compute); same weights and output grid",
    )
    zero_init_residual: bool = field(
        True,
        "the last BatchNorm of every residual block of the V-, I- and M-Network starts "
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
        "transformer", "motion predictor from the V-Network memory to future motion (Table 1)"
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
# projection's shape; the authors' M-Network stem and the fused context pooling
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
    export's config.yaml), with :func:`with_legacy_model_defaults` applied.

    `root`: the config class (default :class:`PretrainConfig`). Raises
    :class:`ConfigError` naming the file and the key.
    """
    root = PretrainConfig if root is None else root
    values = with_legacy_model_defaults(read_config_file(path))
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
        "on the shared V-Network keep the motion task on its ln(batch) plateau (see "
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

    data: DataConfig = dataclasses.field(
        default_factory=DataConfig, metadata={"doc": "sampling and augmentation"}
    )
    model: ModelConfig = dataclasses.field(
        default_factory=ModelConfig, metadata={"doc": "networks"}
    )
    loss: LossConfig = dataclasses.field(default_factory=LossConfig, metadata={"doc": "objective"})
    optimizer: OptimizerConfig = dataclasses.field(
        default_factory=OptimizerConfig, metadata={"doc": "SGD and learning-rate schedule"}
    )
    train: TrainConfig = dataclasses.field(
        default_factory=TrainConfig, metadata={"doc": "run length, batch, checkpoints"}
    )
    runtime: RuntimeConfig = dataclasses.field(
        default_factory=RuntimeConfig, metadata={"doc": "devices and distribution"}
    )

    def __post_init__(self):
        _check_ranges(self)

    @property
    def peak_learning_rate(self) -> float:
        """lr = base_lr_per_sample x global batch (paper: 5e-4 x B)."""
        return self.optimizer.base_lr_per_sample * self.train.global_batch_size


def _check_ranges(config: PretrainConfig) -> None:
    """Value checks that types alone do not catch, each naming the key."""
    loss = config.loss
    shared = section_checks(config)
    raise_failed_check(
        config,
        [
            ("loss.alpha", 0.0 <= loss.alpha <= 1.0, "must lie in [0, 1]"),
            (
                "loss.motion_only_epochs",
                0.0 <= loss.motion_only_epochs <= config.train.epochs,
                f"must lie in [0, train.epochs = {config.train.epochs}]",
            ),
            ("loss.temperature", loss.temperature > 0, "must be > 0"),
            ("loss.scale", loss.scale > 0, "must be > 0"),
            ("loss.ce_bins", loss.ce_bins >= 2, "must be >= 2"),
            *shared["train"],
            *shared["optimizer"],
            *shared["runtime"],
            *shared["data"],
            *shared["model"],
        ],
    )


def section_checks(config) -> dict[str, list[tuple[str, bool, str]]]:
    """The range checks of the sections that finetuning reuses or extends
    (data, model, optimizer, train, runtime), as ``(key, ok, requirement)``
    rows per section, for :func:`raise_failed_check`."""
    train, opt, runtime = config.train, config.optimizer, config.runtime
    return {
        "train": [
            ("train.epochs", train.epochs >= 1, "must be >= 1"),
            ("train.global_batch_size", train.global_batch_size >= 1, "must be >= 1"),
            (
                "train.steps_per_epoch",
                train.steps_per_epoch is None or train.steps_per_epoch >= 1,
                "must be >= 1 or null",
            ),
            (
                "train.checkpoint_every_steps",
                train.checkpoint_every_steps is None or train.checkpoint_every_steps >= 1,
                "must be >= 1 or null",
            ),
            ("train.keep_checkpoints", train.keep_checkpoints >= 1, "must be >= 1"),
        ],
        "optimizer": [
            (
                "optimizer.warmup_epochs",
                0 <= opt.warmup_epochs < train.epochs,
                f"must lie in [0, train.epochs = {train.epochs})",
            ),
            ("optimizer.clipnorm", opt.clipnorm is None or opt.clipnorm > 0, "must be > 0 or null"),
            ("optimizer.base_lr_per_sample", opt.base_lr_per_sample > 0, "must be > 0"),
        ],
        "runtime": [
            ("runtime.virtual_cpus", runtime.virtual_cpus >= 0, "must be >= 0"),
            (
                "runtime.virtual_cpus",
                runtime.virtual_cpus < 2 or runtime.strategy != "multi_worker",
                "cannot be combined with runtime.strategy=multi_worker",
            ),
        ],
        "data": [
            ("data.min_crop_area", 0 < config.data.min_crop_area <= 1, "must lie in (0, 1]"),
        ],
        "model": [
            (
                "model.backbone_blocks",
                config.model.backbone_blocks is None or config.model.backbone != "c3d",
                "must be null for model.backbone=c3d (C3D has no residual blocks)",
            ),
        ],
    }


def raise_failed_check(config, checks: Sequence[tuple[str, bool, str]]) -> None:
    """Raises ConfigError ``"<key>=<value> <requirement>"`` for the first
    ``(key, ok, requirement)`` row of `checks` whose `ok` is false."""
    for key, ok, requirement in checks:
        if not ok:
            raise ConfigError(f"{key}={_get_path(config, key)!r} {requirement}")


def _get_path(config, dotted: str):
    for part in dotted.split("."):
        config = getattr(config, part)
    return config


# ---------------------------------------------------------------------------
# dict <-> dataclass
# ---------------------------------------------------------------------------


def _hints(cls) -> dict:
    return typing.get_type_hints(cls)


def _section_type(tp):
    """The dataclass of a section field (plain or Optional), else None."""
    if dataclasses.is_dataclass(tp):
        return tp
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(inner) == 1 and dataclasses.is_dataclass(inner[0]):
            return inner[0]
    return None


def _nullable(tp) -> bool:
    union = typing.get_origin(tp) in (typing.Union, types.UnionType)
    return union and type(None) in typing.get_args(tp)


def _describe(tp) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " | ".join("null" if a is type(None) else _describe(a) for a in typing.get_args(tp))
    if origin is tuple:
        return f"list of {_describe(typing.get_args(tp)[0])}"
    return getattr(tp, "__name__", str(tp))


def _coerce(value, tp, key: str, source: str):
    """Checks `value` against the annotation `tp`; returns the typed value."""
    origin = typing.get_origin(tp)
    bad = ConfigError(f"{source}: {key}={value!r} is not a valid {_describe(tp)}")
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key, source)
            except ConfigError:
                pass
        raise bad
    if origin is Literal:
        if value in typing.get_args(tp) and not isinstance(value, bool):
            return value
        raise bad
    if origin is tuple:
        (item_type, _ellipsis) = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise bad
        return tuple(_coerce(v, item_type, f"{key}[{i}]", source) for i, v in enumerate(value))
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise bad
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise bad
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            # PyYAML (YAML 1.1) reads "1e-3" as a string: it wants "1.0e-3".
            try:
                return float(value)
            except ValueError:
                pass
        raise bad
    if tp is str:
        if isinstance(value, str):
            return value
        raise bad
    raise TypeError(f"config field {key} has an unsupported annotation {tp!r}")


def _unknown_key(key: str, valid: Sequence[str], source: str) -> ConfigError:
    close = difflib.get_close_matches(key.rsplit(".", 1)[-1], valid, n=3, cutoff=0.5)
    prefix = key.rsplit(".", 1)[0] + "." if "." in key else ""
    hint = (
        f"; did you mean {', '.join(prefix + c for c in close)}?"
        if close
        else f"; valid keys here: {', '.join(prefix + v for v in valid)}"
    )
    return ConfigError(f"{source}: unknown config key {key!r}{hint}")


def build_config(cls, values: Mapping, source: str, prefix: str = ""):
    if not isinstance(values, Mapping):
        raise ConfigError(
            f"{source}: {prefix.rstrip('.') or 'the config'} must be a mapping, got {values!r}"
        )
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = _hints(cls)
    kwargs = {}
    for name, value in values.items():
        key = prefix + str(name)
        if name not in fields:
            raise _unknown_key(key, list(fields), source)
        tp = hints[name]
        section = _section_type(tp)
        if section is not None:
            if value is None and _nullable(tp):
                kwargs[name] = None  # an optional section switched off
            else:
                kwargs[name] = build_config(
                    section, {} if value is None else value, source, key + "."
                )
        else:
            kwargs[name] = _coerce(value, tp, key, source)
    try:
        return cls(**kwargs)
    except ConfigError as error:  # a range check of the root's __post_init__
        raise ConfigError(f"{source}: {error}") from None


def config_from_dict(values: Mapping, source: str = "config") -> PretrainConfig:
    """Builds a :class:`PretrainConfig` from nested dicts (missing keys = defaults).

    `source` names where the values came from, for error messages.
    """
    return build_config(PretrainConfig, values, source)


def config_to_dict(config) -> dict:
    """The config as nested plain dicts / lists (YAML- and JSON-safe)."""

    def plain(value):
        if isinstance(value, tuple):
            return [plain(v) for v in value]
        return value

    return {
        f.name: (
            config_to_dict(getattr(config, f.name))
            if dataclasses.is_dataclass(getattr(config, f.name))
            else plain(getattr(config, f.name))
        )
        for f in dataclasses.fields(config)
    }


# ---------------------------------------------------------------------------
# Files and overrides
# ---------------------------------------------------------------------------


def merge(base: Mapping, top: Mapping) -> dict:
    """Recursive dict merge; `top` wins; nested mappings are merged key by key."""
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def read_config_file(path, _seen: tuple = ()) -> dict:
    """Reads a YAML config, following ``base:`` links; returns the merged dict."""
    path = pathlib.Path(path).resolve()
    if path in _seen:
        chain = " -> ".join(str(p) for p in _seen + (path,))
        raise ConfigError(f"config files include each other in a cycle: {chain}")
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from error
    if values is None:
        values = {}
    if not isinstance(values, Mapping):
        raise ConfigError(f"{path}: a config file must be a mapping of sections, got {values!r}")
    values = dict(values)
    base = values.pop(BASE_KEY, None)
    if base is not None:
        if not isinstance(base, str):
            raise ConfigError(f"{path}: {BASE_KEY}: must be a file path, got {base!r}")
        base_values = read_config_file(path.parent / base, _seen + (path,))
        values = merge(base_values, values)
    return values


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.epochs=3"`` -> (["train", "epochs"], 3); the value is parsed as YAML."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. train.epochs=3")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as error:
        raise ConfigError(f"--set {text!r}: the value is not valid YAML: {error}") from error
    return key.split("."), value


def apply_overrides(values: Mapping, overrides: Sequence[str], root=PretrainConfig) -> dict:
    """Applies ``section.field=value`` overrides to a nested config dict.

    Keys are checked against the dataclasses of `root` (the config class the
    values are for) here, so that an unknown key is reported as coming from
    ``--set`` (not from the file).
    """
    values = merge({}, values)
    for text in overrides:
        path, value = parse_override(text)
        cls = root
        node = values
        for depth, name in enumerate(path):
            key = ".".join(path[: depth + 1])
            if cls is None or not dataclasses.is_dataclass(cls):
                raise ConfigError(
                    f"--set {text!r}: {'.'.join(path[:depth])} is a value, "
                    f"not a section, so {key!r} does not exist"
                )
            names = [f.name for f in dataclasses.fields(cls)]
            if name not in names:
                raise _unknown_key(key, names, f"--set {text!r}")
            tp = _hints(cls)[name]
            section = _section_type(tp)
            last = depth == len(path) - 1
            if last:
                if (
                    section is not None
                    and not isinstance(value, Mapping)
                    and not (value is None and _nullable(tp))
                ):
                    raise ConfigError(
                        f"--set {text!r}: {key} is a section; set one of its "
                        f"fields, e.g. "
                        f"{key}.{dataclasses.fields(section)[0].name}=..."
                    )
                both_mappings = isinstance(node.get(name), Mapping) and value is not None
                if section is not None and both_mappings:
                    node[name] = merge(node[name], value)
                else:
                    node[name] = value
            else:
                child = node.get(name)
                if not isinstance(child, Mapping):
                    # Also re-enables an optional section that was null: its
                    # other fields take their defaults.
                    child = {}
                node[name] = child = dict(child)
                node = child
                cls = section
    return values


def read_config_values(
    path=None, overrides: Sequence[str] = (), root=PretrainConfig
) -> tuple[dict, str]:
    """The values of a YAML config (none if `path` is None) with the overrides
    applied, and the source that names them in error messages.

    The file is checked against `root` on its own first, so that its errors
    name the file; then each override, so that its errors name the override.
    """
    values = read_config_file(path) if path is not None else {}
    source = str(pathlib.Path(path).resolve()) if path is not None else "defaults"
    build_config(root, values, source)
    if overrides:
        values = apply_overrides(values, overrides, root)
        source = f"{source} with --set {' '.join(overrides)}"
    return values, source


def load_config(path=None, overrides: Sequence[str] = (), root=PretrainConfig):
    """Loads a YAML config (defaults if `path` is None) and applies overrides.

    `root` is the config class to build (:class:`PretrainConfig`, or
    ``tfcmvp.finetuning.FinetuneConfig``). Raises :class:`ConfigError` naming
    the file or the override and the key.
    """
    return build_config(root, *read_config_values(path, overrides, root))


def dump_config(config: PretrainConfig) -> str:
    """The full resolved config as YAML text (every field, defaults included)."""
    return yaml.safe_dump(config_to_dict(config), sort_keys=False, default_flow_style=False)


def save_config(config: PretrainConfig, path) -> pathlib.Path:
    """Writes the resolved config as YAML; :func:`load_config` reads it back equal."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dump_config(config), encoding="utf-8")
    return path


def flatten(values: Mapping, prefix: str = "") -> dict:
    """``{"section.field": value}`` of a nested config dict (sections become key prefixes)."""
    out = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            out.update(flatten(value, prefix + key + "."))
        else:
            out[prefix + key] = value
    return out


def config_changes(old: Mapping, new: Mapping, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """``[(key, old value, new value)]`` of two nested config dicts, depth first.

    A section that is null on one side (e.g. ``data.blur: null``) differs as
    one key, the section's.
    """
    changes = []
    for key in list(old) + [k for k in new if k not in old]:
        a, b = old.get(key), new.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            changes += config_changes(a, b, prefix + key + ".")
        elif a != b:
            changes.append((prefix + key, a, b))
    return changes


def config_differences(old: PretrainConfig, new: PretrainConfig) -> list[str]:
    """``["train.epochs: 2 -> 3", ...]`` for every field that differs (:func:`config_changes`)."""
    return [
        f"{key}: {a!r} -> {b!r}"
        for key, a, b in config_changes(config_to_dict(old), config_to_dict(new))
    ]


def field_docs(cls=PretrainConfig, prefix: str = "") -> dict[str, str]:
    """``{"train.epochs": "training epochs", ...}`` for every leaf field."""
    docs = {}
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        section = _section_type(hints[f.name])
        if section is not None:
            docs.update(field_docs(section, prefix + f.name + "."))
        else:
            docs[prefix + f.name] = f.metadata.get("doc", "")
    return docs

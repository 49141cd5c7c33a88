"""Typed configuration of a finetuning run: :class:`FinetuneConfig`, loaded from YAML.

The sections reuse the pretraining dataclasses of :mod:`tfcmvp.config`
(``model`` and ``runtime`` unchanged; ``data``, ``optimizer`` and ``train``
extended) with the paper's finetuning settings as defaults (section 4.1):
UCF101, lr = 1e-4 x B, weight decay 3e-3, cosine decay, batch 8, 120
epochs, dropout 0.3 before the classifier, 10 test clips. The HMDB51 values
(lr = 2e-4 x B, weight decay 2e-3) are in ``configs/finetune_hmdb51.yaml``.
The authors' code also warms up for 10 epochs and decays to 1e-6 rather than
0: ``optimizer.warmup_epochs=10``, ``optimizer.final_learning_rate=1.0e-6``.

Files, ``base:`` links and ``--set section.field=value`` overrides work as for
pretraining; unknown keys and bad values are errors naming the key.

Architecture of a pretrained model. When finetuning an export (``--model
DIR``), the video network is rebuilt as the export describes it: the fields of
:data:`ARCHITECTURE_KEYS` are taken from the export's
``assets/tfcmvp_export.json`` (its ``backbone``: the video network's
architecture; clip length, crop size) and ``assets/config.yaml`` (width,
blocks). A file or override may repeat them,
but a different value is an error that names the field. ``data.clip_stride``
is also taken from the export unless set (a different stride is allowed: it
is a sampling choice, not a weight shape).
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Optional, Sequence

import yaml

from tfcmvp.config import (  # FinetuneDataConfig: the data section, with the other data settings
    ConfigError,
    FinetuneDataConfig,
    ModelConfig,
    OptimizerConfig,
    RuntimeConfig,
    TrainConfig,
    apply_overrides,
    build_config,
    config_to_dict,
    field,
    merge,
    raise_failed_check,
    read_config_values,
    rename_deprecated_keys,
    section,
    section_checks,
)
from tfcmvp.export import read_export_config_text, read_export_info

# The transferred video network: its layers and weight shapes (architecture, width, blocks) and
# the clip it was trained on (length, crop size), which its features are tuned to.
ARCHITECTURE_KEYS = (
    "model.video_network",
    "model.video_width",
    "model.video_blocks",
    "data.clip_len",
    "data.crop_size",
)
# Taken from the export when not set, but free to differ.
INHERITED_KEYS = ("data.clip_stride",)

EXPORT_INFO_ASSET = "assets/tfcmvp_export.json"
EXPORT_CONFIG_ASSET = "assets/config.yaml"


# ---------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ClassifierConfig:
    """The task head on the video network: global average pool, dropout, Dense."""

    dropout: float = field(0.3, "dropout rate on the pooled features before the classifier")


@dataclasses.dataclass(frozen=True)
class FinetuneOptimizerConfig(OptimizerConfig):
    """SGD with warm-up + cosine decay, finetuning defaults (paper, UCF101)."""

    base_lr_per_sample: float = field(
        1e-4,
        "peak learning rate per sample of the global batch: lr = base_lr_per_sample x B "
        "(paper: 1e-4 UCF101, 2e-4 HMDB51)",
    )
    weight_decay: Optional[float] = field(
        3e-3,
        "L2 weight decay on every weight, applied as weight_decay_mode says (default "
        "coupled, PyTorch's SGD as the authors'). Paper: 3e-3 UCF101, 2e-3 HMDB51. "
        "null = off",
    )
    warmup_epochs: float = field(
        0.0, "epochs of linear warm-up before the cosine decay (paper: none; authors: 10)"
    )
    final_learning_rate: float = field(
        0.0,
        "the cosine decays from the peak to this rate at the end of training (paper: 0; "
        "authors: 1e-6)",
    )
    clipnorm: Optional[float] = field(
        None,
        "clip the global norm of the gradient (summed over replicas) to this; the paper "
        "gives none for finetuning; null = off",
    )


@dataclasses.dataclass(frozen=True)
class FinetuneTrainConfig(TrainConfig):
    """Length of the run, batch, checkpoints, numerics and the motion regulariser."""

    global_batch_size: int = field(8, "videos per step over all replicas (paper: 8 on 1 GPU)")
    sync_bn: bool = field(False, "BatchNorm statistics over the global batch (SyncBN)")
    motion_aux_weight: float = field(
        0.0,
        "weight w of the auxiliary motion-prediction loss, loss = CE + w x J_M (paper "
        "Table 6: 0.2); adds an motion network, memory, Transformer predictor and two heads, "
        "trained from scratch; 0 = off",
    )
    motion_aux_temperature: float = field(0.1, "tau of the auxiliary pointwise InfoNCE (Eq. 2)")


@dataclasses.dataclass(frozen=True)
class EvaluationConfig:
    """The test protocol: every test video as clips at uniformly spread positions."""

    num_clips: int = field(10, "clips per test video, centred in equal segments (paper: 10)")
    resize_short: int = field(128, "short side the frames are resized to before the centre crop")
    batch_size: int = field(
        2,
        "test videos per forward pass; x num_clips clips (2 x 10 = 20 clips of 16 x 112 x "
        "112 keep the activations of C3D inference within a few GB)",
    )
    eval_epochs: tuple[int, ...] = field(
        (1, 5, 10, 20, 50),
        "also test after these epochs (val_top1 / val_top5 in history.csv: the convergence "
        "curve of paper Table 3); the last epoch is always tested",
    )


@dataclasses.dataclass(frozen=True)
class FinetuneConfig:
    """A complete finetuning run."""

    data: FinetuneDataConfig = section(FinetuneDataConfig, "sampling and augmentation")
    model: ModelConfig = section(
        ModelConfig, "video network (and the networks of the motion regulariser)"
    )
    classifier: ClassifierConfig = section(ClassifierConfig, "the task head")
    optimizer: FinetuneOptimizerConfig = section(
        FinetuneOptimizerConfig, "SGD and learning-rate schedule"
    )
    train: FinetuneTrainConfig = section(
        FinetuneTrainConfig, "run length, batch, checkpoints, motion regulariser"
    )
    test: EvaluationConfig = section(EvaluationConfig, "test protocol")
    runtime: RuntimeConfig = section(RuntimeConfig, "devices and distribution")

    def __post_init__(self):
        _check_ranges(self)

    @property
    def peak_learning_rate(self) -> float:
        """lr = base_lr_per_sample x global batch (paper: 1e-4 x B on UCF101)."""
        return self.optimizer.base_lr_per_sample * self.train.global_batch_size

    @property
    def motion_aux(self) -> bool:
        """True when the motion-prediction regulariser is on."""
        return self.train.motion_aux_weight > 0


def _check_ranges(config: FinetuneConfig) -> None:
    """Value checks that types alone do not catch, each naming the key."""
    train, opt, test = config.train, config.optimizer, config.test
    shared = section_checks(config)
    raise_failed_check(
        config,
        [
            ("classifier.dropout", 0.0 <= config.classifier.dropout < 1.0, "must lie in [0, 1)"),
            *shared["train"],
            ("train.motion_aux_weight", train.motion_aux_weight >= 0, "must be >= 0"),
            ("train.motion_aux_temperature", train.motion_aux_temperature > 0, "must be > 0"),
            *shared["optimizer"],
            (
                "optimizer.final_learning_rate",
                0 <= opt.final_learning_rate < opt.base_lr_per_sample * train.global_batch_size,
                "must lie in [0, peak learning rate = base_lr_per_sample x global_batch_size)",
            ),
            *shared["data"],
            *shared["model"],
            (
                "model.predictor",
                not config.motion_aux or config.model.predictor == "transformer",
                "must be 'transformer' with train.motion_aux_weight > 0 (the regulariser of paper "
                "Table 6 uses the Transformer predictor)",
            ),
            ("test.num_clips", test.num_clips >= 1, "must be >= 1"),
            (
                "test.resize_short",
                test.resize_short >= config.data.crop_size,
                f"must be >= data.crop_size = {config.data.crop_size}",
            ),
            ("test.batch_size", test.batch_size >= 1, "must be >= 1"),
            ("test.eval_epochs", all(e >= 1 for e in test.eval_epochs), "must all be >= 1"),
            *shared["runtime"],
        ],
    )


# ---------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------


def finetune_config_from_dict(values: Mapping, source: str = "config") -> FinetuneConfig:
    """Builds a :class:`FinetuneConfig` from nested dicts (missing keys = defaults)."""
    return build_config(FinetuneConfig, values, source)


def apply_finetune_overrides(values: Mapping, overrides: Sequence[str]) -> dict:
    """Applies ``section.field=value`` overrides to a nested finetuning config dict,
    checking every key against :class:`FinetuneConfig` (see
    :func:`tfcmvp.config.apply_overrides`)."""
    return apply_overrides(values, overrides, root=FinetuneConfig)


def load_finetune_config(
    path=None, overrides: Sequence[str] = (), model_dir=None
) -> FinetuneConfig:
    """Loads a finetuning config (defaults if `path` is None), applies overrides and,
    with `model_dir`, takes the video network architecture from that export.

    Raises :class:`ConfigError` naming the file or override and the key, or
    the architecture field that disagrees with the export.
    """
    values, source = read_config_values(path, overrides, root=FinetuneConfig)
    if model_dir is not None:
        values = with_export_architecture(values, export_architecture(model_dir), source, model_dir)
    return finetune_config_from_dict(values, source)


def export_architecture(model_dir) -> dict:
    """``{"model.video_network": ..., "data.clip_len": ..., ...}`` of a tfcmvp export.

    The keys are :data:`ARCHITECTURE_KEYS` and :data:`INHERITED_KEYS`, read
    from the export's info (``backbone``, input shape, stride) and its config
    (width, blocks; under their old names in an older export). Raises
    ConfigError when the export is not a video network (an ExportError when
    the folder is not an export).
    """
    info = read_export_info(model_dir)
    if info["network"] != "video":
        raise ConfigError(
            f"{model_dir}: finetuning starts from a video network export (network 'video'), but "
            f"{EXPORT_INFO_ASSET} says network={info['network']!r}"
        )
    inputs = info["input"]
    shape = inputs["shape"]  # [T, S, S, 3], checked by read_export_info
    if shape[1] != shape[2]:
        raise ConfigError(
            f"{model_dir}: {EXPORT_INFO_ASSET} input.shape={shape!r} is not a "
            f"square clip [T, S, S, 3]"
        )
    # An older export's config.yaml names the keys backbone_width / backbone_blocks.
    exported = rename_deprecated_keys(
        ModelConfig,
        (yaml.safe_load(read_export_config_text(model_dir)) or {}).get("model") or {},
        f"{model_dir}/{EXPORT_CONFIG_ASSET}",
        "model.",
    )
    architecture = {
        "model.video_network": info["backbone"],
        "model.video_width": exported.get("video_width", ModelConfig.video_width),
        "model.video_blocks": exported.get("video_blocks", ModelConfig.video_blocks),
        "data.clip_len": int(shape[0]),
        "data.crop_size": int(shape[1]),
    }
    if inputs.get("stride") is not None:
        architecture["data.clip_stride"] = int(inputs["stride"])
    if architecture["model.video_blocks"] is not None:
        architecture["model.video_blocks"] = list(architecture["model.video_blocks"])
    return architecture


def with_export_architecture(
    values: Mapping, architecture: Mapping, source: str, model_dir
) -> dict:
    """`values` with the export's architecture filled in where not set.

    A set architecture field that differs from the export's is a ConfigError
    naming the field, both values and where each came from. `values` may use
    old key names (read as the new ones, :func:`rename_deprecated_keys`).
    """
    values = rename_deprecated_keys(FinetuneConfig, merge({}, values), source)
    for key, exported in architecture.items():
        section, name = key.split(".")
        node = values.get(section) if isinstance(values.get(section), Mapping) else {}
        if name in node and key in ARCHITECTURE_KEYS and not _same(node[name], exported):
            raise ConfigError(
                f"{source}: {key}={node[name]!r} disagrees with the pretrained model {model_dir} "
                f"({key}={exported!r}); leave {key} out of the config file and --set to finetune "
                f"that model"
            )
        if name not in node:
            values = merge(values, {section: {name: exported}})
    return values


def _same(a, b) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return list(a) == list(b)
    return a == b


def check_architecture(config: FinetuneConfig, model_dir) -> None:
    """Raises ConfigError naming the first architecture field where `config`
    differs from the export in `model_dir` (the library-level check of
    :func:`tfcmvp.finetuning.finetune`; :func:`load_finetune_config` already
    fills these fields from the export)."""
    architecture = export_architecture(model_dir)
    flat = {
        f"{s}.{k}": v
        for s, fields in config_to_dict(config).items()
        if isinstance(fields, dict)
        for k, v in fields.items()
    }
    for key in ARCHITECTURE_KEYS:
        if not _same(flat[key], architecture[key]):
            raise ConfigError(
                f"{key}={flat[key]!r} in the finetuning config disagrees with the pretrained "
                f"model {model_dir} ({key}={architecture[key]!r}); load the config with "
                f"load_finetune_config(..., model_dir=...) to take the model's architecture"
            )

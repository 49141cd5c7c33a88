"""Human-readable description of an export folder (``tfcmvp describe``).

:func:`describe_export` prints the input contract (and the ``embed_frames``
contract of video exports that have it), the signatures as the
SavedModel itself declares them (TensorSpecs read from the loaded model, not
from the JSON), the provenance, versions and the key training-config values.
:func:`export_summary` is the few lines ``tfcmvp export`` prints at the end.
"""

from __future__ import annotations

import pathlib
from typing import Mapping, Optional

import yaml

from tfcmvp.config import ConfigError, PretrainConfig, rename_deprecated_keys
from tfcmvp.export import contract as ct
from tfcmvp.export.loading import load_export, read_export_config_text

# Config values shown by describe, per network (dotted keys of assets/config.yaml).
KEY_CONFIG_VALUES = {
    "video": (
        "model.video_network",
        "model.video_width",
        "model.video_blocks",
        "data.clip_len",
        "data.clip_stride",
        "data.crop_size",
    ),
    "iframe": ("model.iframe_network", "model.iframe_width", "data.crop_size"),
    "motion": (
        "model.motion_network",
        "model.motion_width",
        "data.motion_len",
        "data.crop_size",
        "data.mv_clip",
        "data.mv_div",
        "data.flip_negates_mv_x",
    ),
}
KEY_CONFIG_VALUES["classifier"] = KEY_CONFIG_VALUES["video"]  # a finetuned video network
# Shown for every export: the objective and the run that trained it.
RUN_CONFIG_VALUES = (
    "data.period",
    "model.predictor",
    "loss.alpha",
    "loss.motion_loss",
    "loss.temperature",
    "train.epochs",
    "train.global_batch_size",
    "optimizer.base_lr_per_sample",
    "train.seed",
)


def _shape_text(shape) -> str:
    return "[" + ", ".join("N" if d is None else str(d) for d in shape) + "]"


def _spec_text(spec) -> str:
    dims = "[" + ", ".join("None" if d is None else str(d) for d in spec.shape.as_list()) + "]"
    return f"{spec.dtype.name} {dims}"


def input_lines(info: Mapping) -> list[str]:
    """The input contract, one fact per line."""
    contract = info["input"]
    shape = contract["shape"]
    lines = [
        f"shape: {_shape_text([None, *shape])} {contract.get('dtype')}"
        + (f"  ({contract['layout']})" if contract.get("layout") else "")
    ]
    frames, stride = contract.get("frames"), contract.get("stride")
    if frames is not None:
        span = (frames - 1) * (stride or 1) + 1
        lines.append(f"frames: {frames} at stride {stride} (spanning {span} frames)")
    else:
        lines.append("frames: one image per example")
    height, width = contract.get("size", shape[-3:-1])
    lines.append(f"size: {height}x{width}, {contract.get('channels')} channels")
    lines.append(f"value range: {contract.get('value_range')}")
    lines.append(f"normalisation: {contract.get('normalisation')}")
    if contract.get("mean") is not None:
        lines.append(f"mean (RGB): {contract['mean']}, std (RGB): {contract.get('std')}")
    if contract.get("mv_clip") is not None:
        lines.append(
            f"vector scaling: clamp to +-{contract['mv_clip']:g} px, divide by "
            f"{contract.get('mv_div'):g}"
        )
    if contract.get("preprocessing"):
        lines.append(f"preprocessing: {contract['preprocessing']}")
    if contract.get("resize_short") is not None:
        lines.append(f"resize_short: {contract['resize_short']}")
    return lines


def frames_lines(info: Mapping) -> list[str]:
    """The ``embed_frames`` contract (``frames_signature``), one fact per line; [] without it."""
    spec = info.get(ct.FRAMES_SIGNATURE_KEY)
    if spec is None:
        return []
    outputs = spec.get("outputs") or {}
    return [
        f"input: {spec.get('input')} {spec.get('dtype')} [T, H, W, 3]  ({spec.get('layout')})",
        f"clips: {spec.get('num_clips')} at the {spec.get('positions')!r} positions",
        f"stored frames: short side {spec.get('stored_short_side')}, JPEG quality "
        f"{spec.get('jpeg_quality')}",
        f"preprocessing: {spec.get('preprocessing')}",
        "outputs: " + ", ".join(f"{key} {value}" for key, value in outputs.items()),
    ]


def signature_lines(loaded) -> list[str]:
    """``name: clips float32 [None, ...] -> embedding float32 [None, D]`` per signature."""
    lines = []
    for name in sorted(loaded.signatures, key=lambda n: (n == ct.SERVING_DEFAULT, n)):
        function = loaded.signatures[name]
        _, inputs = function.structured_input_signature
        outputs = function.structured_outputs
        ins = ", ".join(f"{key} {_spec_text(spec)}" for key, spec in sorted(inputs.items()))
        outs = ", ".join(f"{key} {_spec_text(spec)}" for key, spec in sorted(outputs.items()))
        alias = f"  (= {ct.EMBED})" if name == ct.SERVING_DEFAULT else ""
        lines.append(f"{name}: {ins} -> {outs}{alias}")
    return lines


def source_text(source: Mapping) -> str:
    """One line of provenance: pretrained from WORKDIR (epoch E) / random init (seed S)."""
    kind = source.get("kind")
    if kind == "pretrained":
        planned = source.get("planned_epochs")  # only in exports of unfinished runs
        of = f" of {planned} planned: an unfinished run" if planned else ""
        return f"pretrained in {source.get('workdir')} (epoch {source.get('epoch')}{of})"
    if kind == "random_init":
        return f"random init (seed {source.get('seed')}), untrained: the scratch baseline"
    extras = ", ".join(f"{k} {v}" for k, v in source.items() if k != "kind" and v is not None)
    return f"{kind}" + (f" ({extras})" if extras else "")


def _flatten(values, prefix: str = "") -> dict:
    flat = {}
    for key, value in (values or {}).items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def config_lines(
    info: Mapping, config_yaml: Optional[str], source: str = f"{ct.ASSETS_DIR}/{ct.CONFIG_NAME}"
) -> list[str]:
    """The key values of the export's training config (those it has), under the
    keys' current names (an older export's config uses old ones; `source` names
    the file in their deprecation warning)."""
    if config_yaml is None:
        return [f"(no {ct.ASSETS_DIR}/{ct.CONFIG_NAME})"]
    try:
        flat = _flatten(rename_deprecated_keys(PretrainConfig, yaml.safe_load(config_yaml), source))
    except (yaml.YAMLError, AttributeError) as error:
        return [f"({ct.ASSETS_DIR}/{ct.CONFIG_NAME} is not a YAML mapping: {error})"]
    except ConfigError as error:  # an old and a new name of one key
        return [f"({error})"]
    keys = KEY_CONFIG_VALUES.get(info["network"], ()) + RUN_CONFIG_VALUES
    return [f"{key}: {flat[key]}" for key in keys if key in flat]


def describe_export(model_dir) -> str:
    """The description ``tfcmvp describe MODEL_DIR`` prints (loads the SavedModel).

    Raises NotAnExportError / ExportError naming the folder when it is not a
    tfcmvp export.
    """
    model_dir = pathlib.Path(model_dir)
    loaded, info = load_export(model_dir)
    try:
        config_yaml = read_export_config_text(model_dir)
    except ct.NotAnExportError:
        config_yaml = None
    indent = "  "
    sections = [
        (
            f"tfcmvp export {model_dir.resolve()}",
            [
                f"network: {info['network']} (backbone {info['backbone']}), format "
                f"v{info['format_version']}",
                f"source: {source_text(info['source'])}",
                f"embedding: {info['embedding_dim']}-d (global average of the feature map "
                f"{_shape_text([None, *info['feature_shape']])})",
                f"created {info['created']} with tfcmvp {info['tfcmvp_version']}, TensorFlow "
                f"{info['tensorflow_version']}, Keras {info['keras_version']}",
            ]
            + ([f"classes: {info.get('num_classes')}"] if info["network"] == "classifier" else []),
        ),
        (f"input contract ({ct.INPUT_NAME})", input_lines(info)),
    ]
    if info.get(ct.FRAMES_SIGNATURE_KEY) is not None:
        sections.append((f"{ct.EMBED_FRAMES} contract ({ct.FRAMES_INPUT})", frames_lines(info)))
    sections += [
        ("signatures (from saved_model.pb)", signature_lines(loaded)),
        (
            f"key config values ({ct.ASSETS_DIR}/{ct.CONFIG_NAME})",
            config_lines(info, config_yaml, str(model_dir / ct.ASSETS_DIR / ct.CONFIG_NAME)),
        ),
        (
            "assets",
            [
                f"{ct.ASSETS_DIR}/{name}"
                for name in (ct.INFO_NAME, ct.CONFIG_NAME, ct.WEIGHTS_NAME)
                if (model_dir / ct.ASSETS_DIR / name).is_file()
            ],
        ),
    ]
    out = []
    for title, lines in sections:
        out.append(title)
        out.extend(indent + line for line in lines)
    return "\n".join(out)


def export_summary(model_dir, info: Mapping) -> str:
    """What ``tfcmvp export`` prints when it is done."""
    contract = info["input"]
    signatures = [
        f"{name} (serving_default)" if name == ct.EMBED else name for name in info["signatures"]
    ]
    frames = (
        f"{contract['frames']} frames at stride {contract['stride']}, "
        if contract.get("frames") is not None
        else "one image, "
    )
    if contract.get("mv_clip") is not None:
        values = (
            f"vectors clamped to +-{contract['mv_clip']:g} px and divided by "
            f"{contract.get('mv_div'):g}"
        )
    else:
        values = "RGB in [0, 1], then (x - mean) / std, ImageNet statistics"
    return "\n".join(
        [
            f"exported the {info['network']} network ({info['backbone']}, "
            f"{source_text(info['source'])}) to {pathlib.Path(model_dir).resolve()}",
            f"  signatures: {', '.join(signatures)}",
            f"  input: {ct.INPUT_NAME} float32 {_shape_text([None, *contract['shape']])} "
            f"({frames}{values})",
            f"  embedding dim: {info['embedding_dim']} (features "
            f"{_shape_text([None, *info['feature_shape']])})",
            f"  details: tfcmvp describe {model_dir}",
        ]
    )

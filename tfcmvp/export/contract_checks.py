"""Validation of an export description (:mod:`tfcmvp.export.contract`), naming every problem.

:func:`validate_export_info` checks a description before it is written and after
it is read (:func:`loads_export_info`); :func:`export_info_problems` lists every
way one breaks the contract, :func:`frames_contract_problems` the same for its
optional ``frames_signature`` entry.
"""

from __future__ import annotations

import json
from typing import Any

from tfcmvp.export.contract import (
    BASE_SIGNATURES,
    CLASSIFY,
    EMBED_FRAMES,
    FORMAT_VERSION,
    FRAMES_SIGNATURE_KEY,
    NETWORKS,
    SOURCE_KINDS,
    ExportError,
)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_shape(value) -> bool:
    return isinstance(value, list) and bool(value) and all(_is_int(d) and d > 0 for d in value)


def frames_contract_problems(spec: Any) -> list[str]:
    """Every way a ``frames_signature`` entry breaks :func:`frames_contract`'s form."""
    if not isinstance(spec, dict):
        return [f"{FRAMES_SIGNATURE_KEY} must be an object, got {spec!r}"]
    problems = []
    for key in ("num_clips", "stored_short_side"):
        value = spec.get(key)
        if not _is_int(value) or value < 1:
            problems.append(f"{FRAMES_SIGNATURE_KEY}.{key} must be a positive int, got {value!r}")
    quality = spec.get("jpeg_quality")
    if quality is not None and (not _is_int(quality) or not 1 <= quality <= 100):
        problems.append(
            f"{FRAMES_SIGNATURE_KEY}.jpeg_quality must be null or an int in [1, 100], "
            f"got {quality!r}"
        )
    if spec.get("positions") not in ("vcop", "authors"):
        problems.append(
            f"{FRAMES_SIGNATURE_KEY}.positions must be 'vcop' or 'authors' (a fixed clip "
            f"count), got {spec.get('positions')!r}"
        )
    if spec.get("signature") != EMBED_FRAMES:
        problems.append(
            f"{FRAMES_SIGNATURE_KEY}.signature must be {EMBED_FRAMES!r}, "
            f"got {spec.get('signature')!r}"
        )
    return problems


def export_info_problems(info: Any) -> list[str]:
    """Every way `info` breaks the contract (empty when it is a valid description)."""
    if not isinstance(info, dict):
        return [f"must be a JSON object, got {type(info).__name__}"]
    network = info.get("network")
    return [
        *_identity_problems(info),
        *_input_problems(info.get("input"), network),
        *_output_problems(info),
        *_signature_problems(info, network),
        *_provenance_problems(info, network),
    ]


def _identity_problems(info: dict) -> list[str]:
    """format_version, network, backbone."""
    problems = []
    version = info.get("format_version")
    if not _is_int(version) or not 1 <= version <= FORMAT_VERSION:
        problems.append(
            f"format_version must be an int in [1, {FORMAT_VERSION}] (this tfcmvp "
            f"reads up to {FORMAT_VERSION}), got {version!r}"
        )
    network = info.get("network")
    if network not in NETWORKS:
        problems.append(f"network must be one of {list(NETWORKS)}, got {network!r}")
    if not isinstance(info.get("backbone"), str):
        problems.append(f"backbone must be a string, got {info.get('backbone')!r}")
    return problems


def _input_problems(contract: Any, network: Any) -> list[str]:
    """The input contract, against the network's input rank."""
    problems = []
    if not isinstance(contract, dict):
        problems.append(f"input must be an object, got {contract!r}")
    else:
        shape = contract.get("shape")
        if not _is_shape(shape):
            problems.append(f"input.shape must be a list of positive ints, got {shape!r}")
        else:
            rank = {"iframe": 3, "video": 4, "motion": 4}.get(network)
            if rank is not None and len(shape) != rank:
                problems.append(
                    f"input.shape {shape} must have {rank} entries for a {network} network"
                )
            if contract.get("channels") != shape[-1]:
                problems.append(
                    f"input.channels {contract.get('channels')!r} must equal the "
                    f"last entry of input.shape {shape}"
                )
            if contract.get("size") != shape[-3:-1]:
                problems.append(
                    f"input.size {contract.get('size')!r} must equal input.shape {shape}[-3:-1]"
                )
            if len(shape) == 4 and contract.get("frames") != shape[0]:
                problems.append(
                    f"input.frames {contract.get('frames')!r} must equal input.shape {shape}[0]"
                )
        if contract.get("dtype") != "float32":
            problems.append(f"input.dtype must be 'float32', got {contract.get('dtype')!r}")
    return problems


def _output_problems(info: dict) -> list[str]:
    """embedding_dim and feature_shape."""
    problems = []
    dim = info.get("embedding_dim")
    if not _is_int(dim) or dim < 1:
        problems.append(f"embedding_dim must be a positive int, got {dim!r}")
    feature_shape = info.get("feature_shape")
    if not _is_shape(feature_shape):
        problems.append(f"feature_shape must be a list of positive ints, got {feature_shape!r}")
    elif _is_int(dim) and feature_shape[-1] != dim:
        problems.append(f"feature_shape {feature_shape} must end with embedding_dim {dim}")
    return problems


def _signature_problems(info: dict, network: Any) -> list[str]:
    """The signatures and the optional frames_signature entry."""
    problems = []
    signatures = info.get("signatures")
    if not isinstance(signatures, list) or not all(isinstance(s, str) for s in signatures):
        problems.append(f"signatures must be a list of names, got {signatures!r}")
    else:
        required = list(BASE_SIGNATURES) + ([CLASSIFY] if network == "classifier" else [])
        missing = [name for name in required if name not in signatures]
        if missing:
            problems.append(f"signatures {signatures} lack {missing}")
        # Optional (exports written before it have neither); a listed
        # embed_frames needs its parameters, or no one can say what it does.
        frames = info.get(FRAMES_SIGNATURE_KEY)
        if frames is None and EMBED_FRAMES in signatures:
            problems.append(
                f"signatures {signatures} list {EMBED_FRAMES!r} but {FRAMES_SIGNATURE_KEY} is "
                f"missing: {EMBED_FRAMES!r} needs its {FRAMES_SIGNATURE_KEY} entry"
            )
        if frames is not None:
            problems.extend(frames_contract_problems(frames))
            if network != "video":
                problems.append(
                    f"{FRAMES_SIGNATURE_KEY} is for video networks, got network {network!r}"
                )
    return problems


def _provenance_problems(info: dict, network: Any) -> list[str]:
    """source, versions, and a classifier's classes."""
    problems = []
    source = info.get("source")
    if not isinstance(source, dict) or source.get("kind") not in SOURCE_KINDS:
        problems.append(
            f"source must be an object whose kind is one of {list(SOURCE_KINDS)}, got {source!r}"
        )
    for key in ("tfcmvp_version", "tensorflow_version", "keras_version", "created"):
        if not isinstance(info.get(key), str):
            problems.append(f"{key} must be a string, got {info.get(key)!r}")
    if network == "classifier":
        classes = info.get("num_classes")
        if not _is_int(classes) or classes < 1:
            problems.append(f"num_classes must be a positive int, got {classes!r}")
        names = info.get("class_names")
        if names is not None and (not isinstance(names, list) or len(names) != classes):
            problems.append(
                f"class_names must be null or a list of num_classes={classes!r} "
                f"names, got {names!r}"
            )
    return problems


def validate_export_info(info: Any, where: str = "export description") -> dict:
    """Returns `info` if it is a valid description, else raises :class:`ExportError`.

    The message names `where` (e.g. the JSON file) and every problem.
    """
    problems = export_info_problems(info)
    if problems:
        raise ExportError(
            f"{where} is not a valid tfcmvp export description: " + "; ".join(problems)
        )
    return info


def loads_export_info(text: str, where: str) -> dict:
    """Parses and validates the JSON text of a description read from `where`."""
    try:
        info = json.loads(text)
    except json.JSONDecodeError as error:
        raise ExportError(f"{where}: not valid JSON: {error}") from error
    return validate_export_info(info, where)

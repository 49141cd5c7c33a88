"""Reading and writing typed configs: YAML files, ``base:`` links, ``--set`` overrides.

Generic over the config class (a *root*: see :mod:`tfcmvp.config_schema`,
whose names are importable from here too). The schemas themselves live in
:mod:`tfcmvp.config` (pretraining) and :mod:`tfcmvp.finetuning.config`.

A file may start from another one with ``base: other.yaml`` (a path relative
to the file); its values are merged key by key under the file's own.
Overrides ``--set section.field=value`` are applied last, the value parsed
as YAML. An unknown key, in a file or an override, is an error that names
the key and the closest valid ones; a value of the wrong type is an error
that names the key, the value and the type. A renamed key is read under its
old name too, in each file of a ``base:`` chain and in ``--set``, with a
deprecation warning (:func:`tfcmvp.config_schema.rename_deprecated_keys`).
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any, Mapping, Sequence

import yaml

from tfcmvp.config_schema import (  # noqa: F401  (field ... field_docs: importable here)
    RENAMED_KEYS_ATTR,
    both_given_error,
    build_config,
    config_to_dict,
    field,
    field_docs,
    is_nullable,
    raise_failed_check,
    rename_deprecated_keys,
    renamed_keys,
    section,
    section_type,
    type_hints,
    unknown_key_error,
    warn_renamed,
)
from tfcmvp.errors import ConfigError

BASE_KEY = "base"  # YAML key naming the file a config starts from


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


def read_config_file(path, root=None, _seen: tuple = ()) -> dict:
    """Reads a YAML config, following ``base:`` links; returns the merged dict.

    With `root` (the config class the file is for), the old names of renamed
    keys are replaced by the new ones in each file before the files are merged
    (:func:`rename_deprecated_keys`, the file as the source), so that a
    ``base:`` file may use either name.
    """
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
    if root is not None:
        values = rename_deprecated_keys(root, values, str(path))
    if base is not None:
        if not isinstance(base, str):
            raise ConfigError(f"{path}: {BASE_KEY}: must be a file path, got {base!r}")
        base_values = read_config_file(path.parent / base, root, _seen + (path,))
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


def apply_overrides(values: Mapping, overrides: Sequence[str], root) -> dict:
    """Applies ``section.field=value`` overrides to a nested config dict.

    Keys are checked against the dataclasses of `root` (the config class the
    values are for) here, so that an unknown key is reported as coming from
    ``--set`` (not from the file). An old name of a renamed key sets the new
    one (a deprecation warning names both and the override); the old and the
    new name of one key both in `overrides` is an error naming both.
    """
    values = merge({}, values)
    spellings: dict[str, dict[str, str]] = {}  # key set -> {key as given: its override}
    for text in overrides:
        given, key = _apply_override(values, text, root)
        spellings.setdefault(key, {})[given] = text
    for key, given in spellings.items():
        if len(given) > 1:  # an old name and its new name
            old = next(name for name in given if name != key)
            raise both_given_error(old, key, f"--set {given[old]!r} and --set {given[key]!r}")
    return values


def _apply_override(values: dict, text: str, root) -> tuple[str, str]:
    """Applies the override `text` to `values` in place (:func:`apply_overrides`);
    returns the dotted key as given and the key it set (the new name of a renamed one)."""
    path, value = parse_override(text)
    given = ".".join(path)
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
        if name not in names and name in renamed_keys(cls):
            path[depth] = name = renamed_keys(cls)[name]
            warn_renamed(key, ".".join(path[: depth + 1]), f"--set {text!r}")
            key = ".".join(path[: depth + 1])
        if name not in names:
            raise unknown_key_error(key, names, f"--set {text!r}")
        tp = type_hints(cls)[name]
        section_cls = section_type(tp)
        if depth < len(path) - 1:
            child = node.get(name)
            if not isinstance(child, Mapping):
                # Also re-enables an optional section that was null: its
                # other fields take their defaults.
                child = {}
            node[name] = child = dict(child)
            node = child
            cls = section_cls
            continue
        if section_cls is not None and not isinstance(value, Mapping):
            if not (value is None and is_nullable(tp)):
                raise ConfigError(
                    f"--set {text!r}: {key} is a section; set one of its fields, e.g. "
                    f"{key}.{dataclasses.fields(section_cls)[0].name}=..."
                )
        elif section_cls is not None:
            value = rename_deprecated_keys(section_cls, value, f"--set {text!r}", key + ".")
            if isinstance(node.get(name), Mapping):
                value = merge(node[name], value)
        node[name] = value
    return given, ".".join(path)


def read_config_values(path, overrides: Sequence[str], root) -> tuple[dict, str]:
    """The values of a YAML config (none if `path` is None) with the overrides
    applied, and the source that names them in error messages.

    The file is checked against `root` on its own first, so that its errors
    name the file; then each override, so that its errors name the override.
    """
    values = read_config_file(path, root) if path is not None else {}
    source = str(pathlib.Path(path).resolve()) if path is not None else "defaults"
    build_config(root, values, source)
    if overrides:
        values = apply_overrides(values, overrides, root)
        source = f"{source} with --set {' '.join(overrides)}"
    return values, source


def load_config(path, overrides: Sequence[str], root):
    """Loads a YAML config (defaults if `path` is None) and applies overrides.

    `root` is the config class to build (``tfcmvp.config.PretrainConfig``,
    ``tfcmvp.finetuning.FinetuneConfig``). Raises :class:`ConfigError` naming
    the file or the override and the key.
    """
    return build_config(root, *read_config_values(path, overrides, root))


def dump_config(config) -> str:
    """The full resolved config as YAML text (every field, defaults included)."""
    return yaml.safe_dump(config_to_dict(config), sort_keys=False, default_flow_style=False)


def save_config(config, path) -> pathlib.Path:
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


def config_differences(old, new) -> list[str]:
    """``["train.epochs: 2 -> 3", ...]`` for every field that differs (:func:`config_changes`)."""
    return [
        f"{key}: {a!r} -> {b!r}"
        for key, a, b in config_changes(config_to_dict(old), config_to_dict(new))
    ]

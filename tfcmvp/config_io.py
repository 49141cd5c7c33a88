"""Reading and writing typed configs: YAML files, ``base:`` links, ``--set`` overrides.

Generic over the config class: a *root* is a frozen dataclass whose fields
are values (bool, int, float, str, Literal, tuples of them, Optional) or
sections (nested dataclasses, optionally null). The schemas themselves live in
:mod:`tfcmvp.config` (pretraining) and :mod:`tfcmvp.finetuning.config`.

A file may start from another one with ``base: other.yaml`` (a path relative
to the file); its values are merged key by key under the file's own.
Overrides ``--set section.field=value`` are applied last, the value parsed
as YAML. An unknown key, in a file or an override, is an error that names
the key and the closest valid ones; a value of the wrong type is an error
that names the key, the value and the type.
"""

from __future__ import annotations

import dataclasses
import difflib
import pathlib
import types
import typing
from typing import Any, Literal, Mapping, Sequence

import yaml

from tfcmvp.errors import ConfigError

BASE_KEY = "base"  # YAML key naming the file a config starts from


def field(default, doc: str):
    """A dataclass field with its one-line documentation (``metadata["doc"]``)."""
    return dataclasses.field(default=default, metadata={"doc": doc})


def section(cls, doc: str):
    """A config section: a field holding a ``cls()`` by default, with its one-line
    documentation (``metadata["doc"]``)."""
    return dataclasses.field(default_factory=cls, metadata={"doc": doc})


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
    """The dataclass `cls` from nested dicts `values` (missing keys = defaults).

    Keys and types are checked field by field; errors are :class:`ConfigError`
    naming `source` (the file or override) and the dotted key (`prefix` is
    the path of `cls` inside the root).
    """
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
    except ConfigError as error:
        # A range check of the class's __post_init__: a section names its
        # fields relative to itself, the root with their full key.
        raise ConfigError(f"{source}: {prefix}{error}") from None


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


def apply_overrides(values: Mapping, overrides: Sequence[str], root) -> dict:
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


def read_config_values(path, overrides: Sequence[str], root) -> tuple[dict, str]:
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


def field_docs(cls, prefix: str = "") -> dict[str, str]:
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

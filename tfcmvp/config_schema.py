"""Typed config sections as nested dicts and back: the schema machinery of the configs.

Generic over the config class: a *root* is a frozen dataclass whose fields
are values (bool, int, float, str, Literal, tuples of them, Optional) or
sections (nested dataclasses, optionally null), each declared with
:func:`field` (default and one-line documentation). :func:`build_config`
checks nested dicts against it key by key (an unknown key is an error that
names the key and the closest valid ones; a value of the wrong type one that
names the key, the value and the type); :func:`config_to_dict` goes back.
The schemas themselves live in :mod:`tfcmvp.config` (pretraining) and
:mod:`tfcmvp.finetuning.config`; YAML files and ``--set`` overrides are
:mod:`tfcmvp.config_io`'s.

Renamed keys: a section class may list the old names of its renamed fields in
a class attribute ``RENAMED_KEYS = {"old_name": "new_name"}``
(:data:`RENAMED_KEYS_ATTR`). An old name is read as the new one wherever
values come in (a YAML file and each file of its ``base:`` chain, ``--set``,
a saved ``config.yaml``, :func:`build_config`), with one logged deprecation
warning per key and source that names the old key, the new key and the
source; the old and the new name of one key in one file (or one ``--set``
list) is an error naming both. Configs are written with the new names only.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import types
import typing
from typing import Literal, Mapping, Sequence

from tfcmvp.errors import ConfigError

# Class attribute of a section dataclass: {old field name: new field name}.
RENAMED_KEYS_ATTR = "RENAMED_KEYS"

logger = logging.getLogger(__name__)
# (old key, new key, source) already warned about: a resumed run reads its saved
# config.yaml more than once, and one warning per key and source is enough.
_warned_renames: set[tuple[str, str, str]] = set()


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


def type_hints(cls) -> dict:
    """``{field name: annotation}`` of the dataclass `cls`, string annotations resolved."""
    return typing.get_type_hints(cls)


def section_type(tp):
    """The dataclass of a section field (plain or Optional), else None."""
    if dataclasses.is_dataclass(tp):
        return tp
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(inner) == 1 and dataclasses.is_dataclass(inner[0]):
            return inner[0]
    return None


def is_nullable(tp) -> bool:
    """True when the annotation `tp` admits None (``Optional[...]``)."""
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


def unknown_key_error(key: str, valid: Sequence[str], source: str) -> ConfigError:
    """The error for the unknown dotted `key` from `source`, naming the closest of
    `valid` (the field names at its level), or all of them when none is close."""
    close = difflib.get_close_matches(key.rsplit(".", 1)[-1], valid, n=3, cutoff=0.5)
    prefix = key.rsplit(".", 1)[0] + "." if "." in key else ""
    hint = (
        f"; did you mean {', '.join(prefix + c for c in close)}?"
        if close
        else f"; valid keys here: {', '.join(prefix + v for v in valid)}"
    )
    return ConfigError(f"{source}: unknown config key {key!r}{hint}")


def renamed_keys(cls) -> Mapping[str, str]:
    """``{old field name: new field name}`` of the section dataclass `cls` (empty if none)."""
    return getattr(cls, RENAMED_KEYS_ATTR, None) or {}


def warn_renamed(old: str, new: str, source: str) -> None:
    """Logs that `source` (a file, or ``--set '...'``) names the key `new` by its old
    name `old`; once per process for each (old, new, source)."""
    if (old, new, source) in _warned_renames:
        return
    _warned_renames.add((old, new, source))
    logger.warning(
        "%s: config key %s is deprecated; read as its new name %s (rename it)", source, old, new
    )


def both_given_error(old: str, new: str, source: str) -> ConfigError:
    """The error for `source` giving a key under both its old and its new name."""
    return ConfigError(
        f"{source}: both {old} and {new} are given, but {old} is the old name of {new}; "
        f"keep only {new}"
    )


def _rename_level(cls, values: Mapping, source: str, prefix: str) -> Mapping:
    """`values` with the old names of `cls`'s renamed fields replaced (this level only)."""
    renamed = renamed_keys(cls)
    if not renamed or not any(name in renamed for name in values):
        return values
    out = {}
    for name, value in values.items():
        new = renamed.get(name)
        if new is not None:
            if new in values:
                raise both_given_error(prefix + name, prefix + new, source)
            warn_renamed(prefix + name, prefix + new, source)
            name = new
        out[name] = value
    return out


def rename_deprecated_keys(cls, values, source: str, prefix: str = ""):
    """A copy of nested config dict `values` with every old key name of the
    section classes of `cls` replaced by its new name (see the module docstring).

    Logs one deprecation warning per old key and `source` (the file, or the
    ``--set`` override); raises :class:`ConfigError` naming both keys when a
    mapping holds an old name and its new name. Keys that are not fields of
    `cls` are kept as they are (:func:`build_config` reports them), and a
    value that is not a mapping is returned unchanged.
    """
    if not isinstance(values, Mapping):
        return values
    values = dict(_rename_level(cls, values, source, prefix))
    fields = {f.name for f in dataclasses.fields(cls)}
    hints = None
    for name, value in values.items():
        if name in fields and isinstance(value, Mapping):
            hints = hints or type_hints(cls)
            section_cls = section_type(hints[name])
            if section_cls is not None:
                values[name] = rename_deprecated_keys(
                    section_cls, value, source, f"{prefix}{name}."
                )
    return values


def build_config(cls, values: Mapping, source: str, prefix: str = ""):
    """The dataclass `cls` from nested dicts `values` (missing keys = defaults).

    Keys and types are checked field by field; errors are :class:`ConfigError`
    naming `source` (the file or override) and the dotted key (`prefix` is
    the path of `cls` inside the root). Old names of renamed fields are read
    as the new ones (:func:`rename_deprecated_keys`).
    """
    if not isinstance(values, Mapping):
        raise ConfigError(
            f"{source}: {prefix.rstrip('.') or 'the config'} must be a mapping, got {values!r}"
        )
    values = _rename_level(cls, values, source, prefix)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = type_hints(cls)
    kwargs = {}
    for name, value in values.items():
        key = prefix + str(name)
        if name not in fields:
            raise unknown_key_error(key, list(fields), source)
        tp = hints[name]
        section_cls = section_type(tp)
        if section_cls is not None:
            if value is None and is_nullable(tp):
                kwargs[name] = None  # an optional section switched off
            else:
                kwargs[name] = build_config(
                    section_cls, {} if value is None else value, source, key + "."
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


def field_docs(cls, prefix: str = "") -> dict[str, str]:
    """``{"train.epochs": "training epochs", ...}`` for every leaf field."""
    docs = {}
    hints = type_hints(cls)
    for f in dataclasses.fields(cls):
        section_cls = section_type(hints[f.name])
        if section_cls is not None:
            docs.update(field_docs(section_cls, prefix + f.name + "."))
        else:
            docs[prefix + f.name] = f.metadata.get("doc", "")
    return docs

"""Typed overrides of frozen dataclass configs, and the documentation of their fields.

Everything here works on any frozen dataclass config (the loop's, every algorithm's, a plugin's) from its
type hints and its docstring alone:

* :func:`field_docs` reads the ``Attributes:`` section of a config class's docstring (one parser for
  the whole package: the conformance kit checks with it that every field is documented, and
  ``gcrl-bench describe`` prints what it reads).
* :func:`coerce` turns a command-line string (``--set tau=0.01``) or a TOML value into the type a field
  declares (``bool``, ``int``, ``float``, ``str``, ``Literal[...]``, ``X | None``, ``tuple[...]``),
  without ``eval``.
* :func:`resolve_overrides` matches ``KEY=VALUE`` overrides against several configs at once: a plain key
  applies to every config that has the field, ``SCOPE.KEY`` to one config only, and dotted keys reach
  fields of nested dataclass configs (``relabel.strategy``).
* :func:`apply_overrides` returns a config with resolved overrides applied, nested configs included.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from typing import Any, Iterable, Literal, Mapping, Sequence, Union

from gcrl_bench.errors import ConfigError, GcrlBenchError

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
_NONE = ("none", "null")

# ---------------------------------------------------------------------------------------------------------
# Docstrings

_ATTRIBUTE_LINE = re.compile(r"^(\s*)([A-Za-z_]\w*(?:\s*,\s*[A-Za-z_]\w*)*)\s*:(.*)$")


def field_docs(cls: type) -> dict[str, str]:
    """Field name -> documentation, from the ``Attributes:`` section of a class docstring (Google style).

    An entry is a line indented one level below ``Attributes:`` of the form ``name: text`` or
    ``name_a, name_b: text`` (both names get the text); deeper-indented lines continue the previous entry
    and are joined to it with single spaces. The section ends at the first non-blank line indented no
    deeper than ``Attributes:``. Only ``cls``'s own docstring is read (not its bases').
    """
    lines = (cls.__doc__ or "").expandtabs().splitlines()
    parts: dict[str, list[str]] = {}
    for i, line in enumerate(lines):
        if line.strip() != "Attributes:":
            continue
        section_indent = len(line) - len(line.lstrip())
        entry_indent = None
        current: list[str] | None = None
        for entry in lines[i + 1:]:
            if not entry.strip():
                continue
            indent = len(entry) - len(entry.lstrip())
            if indent <= section_indent:
                break
            if entry_indent is None:
                entry_indent = indent
            if indent == entry_indent:
                match = _ATTRIBUTE_LINE.match(entry)
                current = [match.group(3).strip()] if match else None
                if match:
                    for name in match.group(2).split(","):
                        parts[name.strip()] = current
            elif current is not None:
                current.append(entry.strip())
    return {name: " ".join(p for p in text if p) for name, text in parts.items()}


_AS_IN = re.compile(r"^as in :class:`[^`]+`\.?$")


def inherited_field_docs(cls: type) -> dict[str, str]:
    """Like :func:`field_docs`, over the class and its bases: a field a subclass documents only as
    "as in :class:`Base`" (or not at all) keeps its base class's text, and a subclass entry that starts
    with "default " (a changed default) is appended to it."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        for name, text in field_docs(klass).items():
            if name in docs and _AS_IN.match(text):
                continue
            if name in docs and text.startswith("default "):
                text = f"{docs[name]} In {klass.__name__}: {text}"
            docs[name] = text
    return docs


# ---------------------------------------------------------------------------------------------------------
# Types


def config_fields(cls: type) -> dict[str, Any]:
    """Field name -> resolved type hint of a dataclass config (fields settable through ``__init__``)."""
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise ConfigError(f"{cls!r} is not a dataclass config class")
    try:
        hints = typing.get_type_hints(cls)
    except Exception as exc:  # a plugin's unresolvable annotation
        raise ConfigError(f"cannot read the type hints of {cls.__name__} ({type(exc).__name__}: {exc}); "
                          "annotate its fields with importable types") from None
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(cls) if f.init}


def is_config_class(hint: Any) -> bool:
    """True when a field's type is itself a dataclass config (a nested group of settings)."""
    return isinstance(hint, type) and dataclasses.is_dataclass(hint)


def _union_args(hint: Any) -> tuple | None:
    return typing.get_args(hint) if typing.get_origin(hint) in (Union, types.UnionType) else None


def type_name(hint: Any) -> str:
    """A short readable name of a field type: ``int``, ``one of first, fresh``, ``float or none``, ..."""
    if hint is type(None):
        return "none"
    if typing.get_origin(hint) is Literal:
        return "one of " + ", ".join(str(a) for a in typing.get_args(hint))
    members = _union_args(hint)
    if members is not None:
        return " or ".join(type_name(m) for m in members)
    if typing.get_origin(hint) is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"tuple of {type_name(args[0])}"
        return "tuple (" + ", ".join(type_name(a) for a in args) + ")"
    if isinstance(hint, type):
        return hint.__name__
    return str(hint).replace("typing.", "")


class _Mismatch(Exception):
    """A value that does not fit a type; :func:`coerce` turns it into one ConfigError line."""


def _split_sequence(text: str) -> list[str]:
    text = text.strip()
    if len(text) >= 2 and text[0] + text[-1] in ("()", "[]"):
        text = text[1:-1]
    return [] if not text.strip() else [part.strip() for part in text.split(",")]


def _convert(value: Any, hint: Any) -> Any:
    """``value`` (a command-line string or a TOML value) as an instance of ``hint``; raises _Mismatch."""
    text = value if isinstance(value, str) else None
    if hint is Any:
        raise _Mismatch("its type is not declared, so it cannot be set from the command line")
    if hint is bool:
        if isinstance(value, bool):
            return value
        if text is not None and text.strip().lower() in _TRUE + _FALSE:
            return text.strip().lower() in _TRUE
        raise _Mismatch("expected true or false")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if text is not None:
            cleaned = text.strip().replace("_", "")
            try:
                return int(cleaned)
            except ValueError:
                pass
            try:
                number = float(cleaned)
            except ValueError:
                number = None
            if number is not None and number.is_integer():
                return int(number)  # 1e6
        raise _Mismatch("expected an integer")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if text is not None:
            try:
                return float(text.strip())
            except ValueError:
                pass
        raise _Mismatch("expected a number")
    if hint is str:
        if text is not None:
            return text
        raise _Mismatch("expected a string")
    if hint is type(None):
        if value is None or (text is not None and text.strip().lower() in _NONE):
            return None
        raise _Mismatch("expected none")
    origin = typing.get_origin(hint)
    if origin is Literal:
        allowed = typing.get_args(hint)
        for option in allowed:
            try:
                candidate = _convert(value, type(option))
            except _Mismatch:
                continue
            if candidate == option and type(candidate) is type(option):
                return option
        raise _Mismatch("expected one of " + ", ".join(str(a) for a in allowed))
    members = _union_args(hint)
    if members is not None:
        # "none" means None when the union allows it, unless a Literal member lists the word itself
        ordered = [m for m in members if m is not type(None)]
        if type(None) in members:
            literal_words = {a for m in ordered if typing.get_origin(m) is Literal for a in typing.get_args(m)}
            if value is None or (text is not None and text.strip().lower() in _NONE and text.strip() not in literal_words):
                return None
        for member in ordered:
            try:
                return _convert(value, member)
            except _Mismatch:
                continue
        raise _Mismatch(f"expected {type_name(hint)}")
    if origin is tuple:
        args = typing.get_args(hint)
        if text is not None:
            items: Sequence[Any] = _split_sequence(text)
        elif isinstance(value, (list, tuple)):
            items = value
        else:
            raise _Mismatch(f"expected {type_name(hint)} (comma-separated on the command line)")
        if len(args) == 2 and args[1] is Ellipsis:
            args = (args[0],) * len(items)
        elif not args:
            return tuple(items)
        elif len(items) != len(args):
            raise _Mismatch(f"expected {len(args)} comma-separated values ({type_name(hint)}), got {len(items)}")
        out = []
        for item, arg in zip(items, args):
            try:
                out.append(_convert(item, arg))
            except _Mismatch as exc:
                raise _Mismatch(f"expected {type_name(hint)} ({item!r}: {exc})") from None
        return tuple(out)
    if is_config_class(hint):
        raise _Mismatch(f"it is a group of settings ({hint.__name__}); set its fields with dotted keys")
    raise _Mismatch(f"its type {type_name(hint)} cannot be set from the command line or a sweep file")


def coerce(value: Any, hint: Any, where: str) -> Any:
    """``value`` converted to the field type ``hint``.

    Args:
      value: a command-line string (``"0.01"``, ``"true"``, ``"4,8"``, ``"none"``) or a TOML value
        (bool, int, float, str, list).
      hint: the field's resolved type hint (see :func:`config_fields`).
      where: the start of the error line, naming the override and the field, e.g. ``"--set tau=x: sac's tau"``.

    Raises:
      ConfigError: one line: ``where``, what the field accepts and the value given.
    """
    try:
        return _convert(value, hint)
    except _Mismatch as exc:
        raise ConfigError(f"{where} {exc}, got {value!r}") from None


# ---------------------------------------------------------------------------------------------------------
# Paths into nested configs


def _lookup(cls: type, path: str) -> tuple[str, Any] | None:
    """("leaf", hint) or ("group", nested class) for a dotted field path of ``cls``; None if absent."""
    hint: Any = cls
    for part in path.split("."):
        if not is_config_class(hint):
            return None
        fields = config_fields(hint)
        if part not in fields:
            return None
        hint = fields[part]
    return ("group", hint) if is_config_class(hint) else ("leaf", hint)


def leaf_paths(cls: type, prefix: str = "") -> list[str]:
    """Dotted paths of every settable leaf field of ``cls``, nested configs expanded, in field order."""
    out = []
    for name, hint in config_fields(cls).items():
        if is_config_class(hint):
            out.extend(leaf_paths(hint, f"{prefix}{name}."))
        else:
            out.append(prefix + name)
    return out


@dataclasses.dataclass(frozen=True)
class Override:
    """One ``KEY=VALUE`` override as given.

    Attributes:
      key: ``field``, ``nested.field``, ``SCOPE.field`` or ``SCOPE.nested.field``.
      value: the value: a string from the command line, or a TOML value from a sweep file.
      origin: how error lines name it, e.g. ``--set tau=0.01`` or ``sweep.toml [set] tau``.
    """

    key: str
    value: Any
    origin: str


def _refusal(path: str, refused: Mapping[str, str]) -> str | None:
    parts = path.split(".")
    for n in range(len(parts), 0, -1):
        reason = refused.get(".".join(parts[:n]))
        if reason is not None:
            return reason
    return None


def _label(scope: str) -> str:
    return "the loop config" if scope == "loop" else f"algorithm {scope}"


def resolve_overrides(
    overrides: Iterable[Override],
    configs: Mapping[str, type],
    *,
    other_scopes: Iterable[str] = (),
    refused: Mapping[str, str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Matches overrides with the configs they apply to and converts their values to the fields' types.

    A key whose first dotted component(s) name a scope of ``configs`` (the longest such prefix wins)
    applies to that config only; any other key applies to every config that has the field, and at least
    one must. Within one config, scoped overrides win over plain ones, and among equals the later wins.

    Args:
      overrides: in the order given (a sweep file's first, then the command line's).
      configs: scope name -> config class, e.g. ``{"loop": LoopConfig, "crl": CRLConfig, "sac": SACConfig}``.
      other_scopes: scope names that exist but were not chosen (registered algorithms not in the sweep);
        a key scoped by one of them is refused with a line saying so.
      refused: field path (or group path) -> reason: paths that are set some other way; a key reaching
        one of them is refused with the reason.

    Returns:
      scope -> {dotted field path: converted value}, one entry per config in ``configs`` (possibly empty).

    Raises:
      ConfigError: one line for an unknown key (close matches and the known keys), a scope that is not
        chosen, a group given a value, a refused path, or a value that does not fit the field's type.
    """
    refused = dict(refused or {})
    scopes = sorted(configs, key=len, reverse=True)
    others = sorted(set(other_scopes) - set(configs), key=len, reverse=True)
    plain: dict[str, dict[str, Any]] = {scope: {} for scope in configs}
    scoped: dict[str, dict[str, Any]] = {scope: {} for scope in configs}

    def known_keys() -> list[str]:
        keys: set[str] = set()
        for cls in configs.values():
            keys.update(p for p in leaf_paths(cls) if _refusal(p, refused) is None)
        return sorted(keys)

    def convert(item: Override, scope: str, path: str, found: tuple[str, Any]) -> Any:
        reason = _refusal(path, refused)
        if reason is not None:
            raise ConfigError(f"{item.origin}: {path} is not set with --set; {reason}")
        kind, hint = found
        if kind == "group":
            fields = leaf_paths(hint, f"{path}.")
            raise ConfigError(f"{item.origin}: {path} is a group of settings in {_label(scope)}; set one of its "
                              f"fields instead: {', '.join(fields)}")
        return coerce(item.value, hint, f"{item.origin}: {_label(scope)}'s {path}")

    for item in overrides:
        key = item.key.strip()
        if not key or any(not part for part in key.split(".")):
            raise ConfigError(f"{item.origin}: {key!r} is not a field name; e.g. batch_size or sac.tau")
        scope = next((s for s in scopes if key.startswith(s + ".")), None)
        if scope is None:
            other = next((s for s in others if key.startswith(s + ".")), None)
            if other is not None and not any(_lookup(cls, key) for cls in configs.values()):
                chosen = ", ".join(s for s in configs if s != "loop")
                raise ConfigError(f"{item.origin}: {other!r} is not one of the chosen algorithms ({chosen}); "
                                  f"add it to --algos or drop the '{other}.' scope")
        if scope is not None:
            path = key[len(scope) + 1:]
            found = _lookup(configs[scope], path)
            if found is None:
                known = [p for p in leaf_paths(configs[scope]) if _refusal(p, refused) is None]
                raise ConfigError(f"{item.origin}: unknown hyperparameter {path!r} for {_label(scope)}"
                                  f"{_did_you_mean(path, known)}; its keys: {', '.join(known)}")
            scoped[scope][path] = convert(item, scope, path, found)
            continue
        matches = {s: found for s, cls in configs.items() if (found := _lookup(cls, key)) is not None}
        if not matches:
            known = known_keys()
            raise ConfigError(f"{item.origin}: unknown hyperparameter {key!r}: no chosen config has it"
                              f"{_did_you_mean(key, known)}; known: {', '.join(known)}")
        for s, found in matches.items():
            plain[s][key] = convert(item, s, key, found)
    return {scope: {**plain[scope], **scoped[scope]} for scope in configs}


def _did_you_mean(key: str, known: Sequence[str]) -> str:
    last = key.rsplit(".", 1)[-1]
    close = [k for k in known if k != key and k.rsplit(".", 1)[-1] == last]
    close += [k for k in difflib.get_close_matches(key, known, n=3) if k not in close]
    return f" (did you mean {', '.join(close[:3])}?)" if close else ""


def apply_overrides(config: Any, changes: Mapping[str, Any], owner: str) -> Any:
    """``config`` with ``changes`` (dotted field path -> converted value, see :func:`resolve_overrides`)
    applied through ``dataclasses.replace``; nested configs are replaced the same way.

    Raises:
      ConfigError: the config class rejects the new values (its own one-line error, or one line naming
        ``owner`` and the exception of a config class that raises something else).
    """
    if not changes:
        return config
    direct: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for path, value in changes.items():
        head, _, rest = path.partition(".")
        if rest:
            nested.setdefault(head, {})[rest] = value
        else:
            direct[head] = value
    for head, sub in nested.items():
        direct[head] = apply_overrides(getattr(config, head), sub, f"{owner} {head}")
    try:
        return dataclasses.replace(config, **direct)
    except GcrlBenchError:
        raise
    except (TypeError, ValueError) as exc:
        shown = ", ".join(f"{k}={v!r}" for k, v in changes.items())
        raise ConfigError(f"{owner}: {type(config).__name__} rejects {shown}: {' '.join(str(exc).split())}") from None


# ---------------------------------------------------------------------------------------------------------
# Documentation rows


@dataclasses.dataclass(frozen=True)
class FieldRow:
    """One line of ``gcrl-bench describe``.

    Attributes:
      path: dotted field path, e.g. ``network.depth``.
      type: readable type (:func:`type_name`), or the nested class's name for a group.
      value: the value shown (the default, or the given instance's); ``dataclasses.MISSING`` if none.
      doc: the field's documentation from its class's docstring ('' if undocumented).
      group: True for a nested config (its fields follow as their own rows).
    """

    path: str
    type: str
    value: Any
    doc: str
    group: bool = False


def _default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return dataclasses.MISSING


def field_rows(cls: type, instance: Any = None, prefix: str = "") -> list[FieldRow]:
    """Every field of ``cls``, nested configs expanded after their group row, with type, documentation and
    value: ``instance``'s when given, else the field's default."""
    hints = config_fields(cls)
    docs = inherited_field_docs(cls)
    rows = []
    for f in dataclasses.fields(cls):
        if f.name not in hints:
            continue
        hint = hints[f.name]
        value = getattr(instance, f.name) if instance is not None else _default(f)
        path = prefix + f.name
        if is_config_class(hint):
            rows.append(FieldRow(path, hint.__name__, dataclasses.MISSING, docs.get(f.name, ""), group=True))
            inner = value if isinstance(value, hint) else None
            rows.extend(field_rows(hint, inner, path + "."))
        else:
            rows.append(FieldRow(path, type_name(hint), value, docs.get(f.name, "")))
    return rows

"""Declared schemas for what users write (settings, model.yaml, request bodies): msgspec types, and
errors that name the field, the rule and the value given.

A field may carry its rule as a person reads it (`rule("threshold must be a number from 0 to 1",
ge=0, le=1)`); a value that breaks it is refused with that sentence. Other fields get a sentence
built from their type ("preprocessing.resize must be one of [...], not 'squash'").
"""
from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec
from msgspec import inspect as mi

T = TypeVar("T")
_AT = re.compile(r"^(?P<reason>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_TOKEN = re.compile(r"\.([^.\[]+)|\[(\d+)\]")
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<name>[^`]*)`")
_MISSING = re.compile(r"^Object missing required field `(?P<name>[^`]*)`")
_ABSENT = object()  # a required field that is missing: no value to show
MAX_SHOWN = 60  # characters of a refused value quoted back (a request body may hold megabytes)


class SchemaError(ValueError):
    """A value that does not fit its declared type; the message says which field and why."""


def rule(sentence: str, inner: bool = False, **constraints: Any) -> msgspec.Meta:
    """Constraints (ge, le, min_length, ...) with the sentence a person reads when a value breaks them.

    The sentence covers the value and its items; with `inner`, the fields of a mapping below it too."""
    return msgspec.Meta(**constraints, extra={"rule": sentence, "inner": inner})


def convert(data: Any, kind: type[T], root: str = "", strict: bool = True) -> T:
    """`data` (parsed JSON or YAML; strings too where not `strict`) as `kind`, or a SchemaError.

    `root` names where `data` sits in the document, for the message ("preprocessing")."""
    try:
        return msgspec.convert(data, kind, strict=strict)
    except msgspec.ValidationError as exc:
        raise SchemaError(explain(str(exc), data, kind, root)) from None


def unknown_keys(data: Any, kind: type, root: str = "") -> None:
    """Refuse keys of the mapping `data` that the struct `kind` does not declare (all of them named)."""
    known = [f.encode_name for f in msgspec.structs.fields(kind)]
    if isinstance(data, dict) and set(data) - set(known):
        raise SchemaError(_unknown(data, known, root))


def explain(message: str, data: Any, kind: Any, root: str = "") -> str:
    """msgspec's error (`Expected int >= 1 - at $.a.b[0]`) as a sentence about the field and its value."""
    found = _AT.match(message)
    reason, path = (found["reason"], found["path"] or "") if found else (message, "")
    tokens: list[str | int] = [m[1] if m[1] is not None else int(m[2]) for m in _TOKEN.finditer(path)]
    nodes = [mi.type_info(kind)]
    for token in tokens:
        nodes.append(_child(nodes[-1], token))
    unknown, missing = _UNKNOWN.match(reason), _MISSING.match(reason)
    if unknown and isinstance(struct := _struct(nodes[-1]), mi.StructType):
        return _unknown(_value(data, tokens), [f.encode_name for f in struct.fields], _label(root, tokens))
    if missing:
        tokens.append(missing["name"])
        nodes.append(_child(nodes[-1], missing["name"]))
    for depth in range(len(tokens), -1, -1):  # the field's own rule, else its list's, else an `inner` one
        sentence, inner = _rule(nodes[depth])
        if sentence and (inner or all(isinstance(t, int) for t in tokens[depth:])):
            return sentence + _shown(_value(data, tokens[:depth]))
    label = _label(root, tokens) or "the value"
    expected = _expected(nodes[-1])
    if missing:
        return f"{label} is required" + (f": {expected}" if expected else "")
    if expected is None:
        return f"{label}: {reason}"
    return f"{label} must be {expected}" + _shown(_value(data, tokens))


def _unknown(data: dict, known: list[str], label: str) -> str:
    extra = sorted(str(k) for k in set(data) - set(known))
    return f"unknown {label + ' ' if label else ''}keys {extra}; known: {sorted(known)}"


def _label(root: str, tokens: list[str | int]) -> str:
    text = root
    for token in tokens:
        text += f"[{token}]" if isinstance(token, int) else (f".{token}" if text else token)
    return text


def _value(data: Any, tokens: list[str | int]) -> Any:
    for token in tokens:
        try:
            data = data[token]
        except (KeyError, IndexError, TypeError):
            return _ABSENT
    return data


def _shown(value: Any) -> str:
    if value is _ABSENT:
        return ""
    text = repr(value)
    return f", not {text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN] + '...'}"


def _bare(node: Any) -> Any:
    while isinstance(node, mi.Metadata):
        node = node.type
    return node


def _rule(node: Any) -> tuple[str | None, bool]:
    """(sentence, inner) of a type's rule, or of one member of a union (`Annotated[int, rule(...)] | None`)."""
    while isinstance(node, mi.Metadata):
        if node.extra and node.extra.get("rule"):
            return str(node.extra["rule"]), bool(node.extra.get("inner"))
        node = node.type
    if isinstance(node, mi.UnionType):
        return next((r for r in map(_rule, node.types) if r[0]), (None, False))
    return None, False


def _struct(node: Any) -> Any:
    node = _bare(node)
    if isinstance(node, mi.UnionType):
        return next((t for t in map(_bare, node.types) if isinstance(t, mi.StructType)), None)
    return node


def _child(node: Any, token: str | int) -> Any:
    """The declared type at `token` (a field name or an index) below `node`, or None."""
    node = _bare(node)
    if isinstance(node, mi.UnionType):
        return next((c for c in (_child(t, token) for t in node.types) if c is not None), None)
    if isinstance(token, str):
        if isinstance(node, (mi.StructType, mi.DataclassType, mi.TypedDictType)):
            return next((f.type for f in node.fields if f.encode_name == token), None)
        return node.value_type if isinstance(node, mi.DictType) else None
    if isinstance(node, (mi.ListType, mi.VarTupleType, mi.SetType, mi.FrozenSetType)):
        return node.item_type
    if isinstance(node, mi.TupleType):
        return node.item_types[token] if token < len(node.item_types) else None
    return None


def _bounds(node: Any) -> str:
    if node.ge is not None and node.le is not None:
        return f" from {node.ge} to {node.le}"
    return "".join(f" {op} {v}" for op, v in ((">=", node.ge), (">", node.gt), ("<=", node.le), ("<", node.lt))
                   if v is not None)


def _expected(node: Any) -> str | None:
    """What a type takes, in words ("an integer >= 1", "one of ['a', 'b']"); None where words would not help."""
    node = _bare(node)
    if isinstance(node, mi.UnionType):
        words = [_expected(t) for t in node.types if not isinstance(_bare(t), mi.NoneType)]
        return None if None in words else " or ".join(w for w in words if w)
    if isinstance(node, mi.LiteralType):
        return f"one of {list(node.values)}"
    if isinstance(node, mi.BoolType):
        return "true or false"
    if isinstance(node, (mi.IntType, mi.FloatType)):
        return ("an integer" if isinstance(node, mi.IntType) else "a number") + _bounds(node)
    if isinstance(node, mi.StrType):
        return "a string"
    if isinstance(node, mi.TupleType):
        return f"a list of {len(node.item_types)}"
    if isinstance(node, (mi.ListType, mi.VarTupleType)):
        return "a non-empty list" if node.min_length else "a list"
    if isinstance(node, (mi.StructType, mi.DictType, mi.DataclassType, mi.TypedDictType)):
        return "an object"
    return None

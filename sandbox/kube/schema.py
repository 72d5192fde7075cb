"""A CRD's structural schema applied as kube-apiserver applies it: prune, default, validate.

Pruning drops fields the schema does not declare (each one a warning) and nulls of
non-nullable fields; defaulting fills `default:` values; validation reports the OpenAPI
checks (type, required, enum, bounds, lengths, item counts, pattern) and the list-type
invariants (`x-kubernetes-list-type: map/set`) with the apiserver's field-error wording.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

Schema = dict[str, Any]

# Errors of these types stop the CEL rules from running (apiextensions' hasBlockingErr).
BLOCKING = frozenset({"FieldValueNotSupported", "FieldValueRequired", "FieldValueTooLong",
                      "FieldValueTooMany", "FieldValueTypeInvalid"})


@dataclass(frozen=True)
class Cause:
    """One field error, as it appears in a Status' `details.causes`."""

    reason: str
    field: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"reason": self.reason, "message": self.message, "field": self.field}


def show(value: Any) -> str:
    """A value as Go's field errors print it (strings quoted, composites as JSON)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def child(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _json_type(value: Any) -> tuple[str, str]:
    """The JSON type and Go format the decoder gives ``value``."""
    if isinstance(value, bool):
        return "boolean", ""
    if isinstance(value, int):
        return "integer", "int64"
    if isinstance(value, float):
        return "number", "float64"
    if isinstance(value, str):
        return "string", ""
    if isinstance(value, list):
        return "array", ""
    if isinstance(value, dict):
        return "object", ""
    return "null", ""


def _preserves(schema: Schema) -> bool:
    return bool(schema.get("x-kubernetes-preserve-unknown-fields")) or bool(
        schema.get("x-kubernetes-embedded-resource"))


def prune(value: Any, schema: Schema, path: str, warnings: list[str]) -> Any:
    """Drop undeclared fields (warning for each) and nulls the schema does not allow."""
    if isinstance(value, dict):
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        out: dict[str, Any] = {}
        for key, item in value.items():
            sub = props.get(key) if isinstance(props, dict) else None
            if sub is None and isinstance(extra, dict):
                sub = extra
            if sub is None:
                if props is not None and not _preserves(schema) and path != "metadata":
                    warnings.append(f'unknown field "{child(path, key)}"')
                    continue
                out[key] = item
                continue
            if item is None and not sub.get("nullable"):
                continue
            out[key] = prune(item, sub, child(path, key), warnings)
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [prune(item, schema["items"], f"{path}[{i}]", warnings)
                for i, item in enumerate(value)]
    return value


def default(value: Any, schema: Schema) -> Any:
    """Fill `default:` values for absent (or pruned null) properties, recursively."""
    if isinstance(value, dict):
        props = schema.get("properties")
        if isinstance(props, dict):
            for key, sub in props.items():
                if key not in value and "default" in sub:
                    value[key] = copy.deepcopy(sub["default"])
            for key, item in value.items():
                if isinstance(props.get(key), dict):
                    value[key] = default(item, props[key])
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key, item in value.items():
                if not isinstance(props, dict) or key not in props:
                    value[key] = default(item, extra)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [default(item, schema["items"]) for item in value]
    return value


def integral_floats(value: Any) -> Any:
    """Whole floats as integers, as the apiserver's JSON decoding yields them (`10.0` is 10)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: integral_floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [integral_floats(v) for v in value]
    return value


class _Walk:
    """Collects causes while validating one value against one schema."""

    def __init__(self) -> None:
        self.causes: list[Cause] = []

    def add(self, reason: str, field: str, message: str) -> None:
        self.causes.append(Cause(reason, field or "<nil>", message))

    def invalid(self, field: str, value: Any, detail: str) -> None:
        self.add("FieldValueInvalid", field, f"Invalid value: {show(value)}: {detail}")

    def node(self, value: Any, schema: Schema, path: str) -> None:
        if not self._type(value, schema, path):
            return
        if isinstance(value, dict):
            self._object(value, schema, path)
        elif isinstance(value, list):
            self._array(value, schema, path)
        else:
            self._scalar(value, schema, path)

    def _type(self, value: Any, schema: Schema, path: str) -> bool:
        want = schema.get("type")
        if not want or schema.get("x-kubernetes-int-or-string"):
            return True
        if value is None:
            if schema.get("nullable"):
                return True
            self._type_error(path, want, "null")
            return False
        kind, fmt = _json_type(value)
        if kind == want or (kind == "integer" and want == "number"):
            return True
        whole = isinstance(value, float) and value.is_integer()
        if kind == "number" and want == "integer" and whole:
            return True
        declared = schema.get("format", "")
        if declared and kind not in ("string", "array") and fmt != declared:
            self._type_error(path, declared, fmt)  # Go's format of the value: "" if none
            if kind == "number" and want == "integer":
                self.add("FieldValueInvalid", "", f'Invalid value: "": Checked value must be of '
                         f"type integer with format {declared} in {path}")
            return False
        self._type_error(path, want, kind)
        return False

    def _type_error(self, path: str, want: str, got: str) -> None:
        self.add("FieldValueTypeInvalid", path,
                 f'Invalid value: "{got}": {path} in body must be of type {want}: "{got}"')

    def _object(self, value: dict[str, Any], schema: Schema, path: str) -> None:
        for key in schema.get("required") or ():
            if key not in value:
                self.add("FieldValueRequired", child(path, key), "Required value")
        if "maxProperties" in schema and len(value) > schema["maxProperties"]:
            self.add("FieldValueTooMany", path, f"Too many: {len(value)}: must have at most "
                     f"{schema['maxProperties']} items")
        if "minProperties" in schema and len(value) < schema["minProperties"]:
            self.invalid(path, len(value), f"{path} in body should have at least "
                         f"{schema['minProperties']} properties")
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            sub = props.get(key) or (extra if isinstance(extra, dict) else None)
            if sub is not None:
                self.node(item, sub, child(path, key))

    def _array(self, value: list[Any], schema: Schema, path: str) -> None:
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            self.add("FieldValueTooMany", path,
                     f"Too many: {len(value)}: must have at most {schema['maxItems']} items")
        if "minItems" in schema and len(value) < schema["minItems"]:
            self.invalid(path, len(value),
                         f"{path} in body should have at least {schema['minItems']} items")
        items = schema.get("items")
        if isinstance(items, dict):
            for i, item in enumerate(value):
                self.node(item, items, f"{path}[{i}]")

    def _scalar(self, value: Any, schema: Schema, path: str) -> None:
        if "enum" in schema and value not in schema["enum"]:
            supported = ", ".join(show(e) for e in schema["enum"])
            self.add("FieldValueNotSupported", path,
                     f"Unsupported value: {show(value)}: supported values: {supported}")
        if isinstance(value, str):
            self._string(value, schema, path)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            self._number(value, schema, path)

    def _string(self, value: str, schema: Schema, path: str) -> None:
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            self.add("FieldValueTooLong", path,
                     f"Too long: may not be more than {schema['maxLength']} bytes")
        if "minLength" in schema and len(value) < schema["minLength"]:
            self.invalid(path, value,
                         f"{path} in body should be at least {schema['minLength']} chars long")
        pattern = schema.get("pattern")
        if pattern is not None and not re.search(pattern, value):
            self.invalid(path, value, f"{path} in body should match '{pattern}'")

    def _number(self, value: float, schema: Schema, path: str) -> None:
        shown = int(value) if isinstance(value, float) and value.is_integer() else value
        if "maximum" in schema:
            limit = schema["maximum"]
            if value > limit or (schema.get("exclusiveMaximum") and value == limit):
                word = "less than" if schema.get("exclusiveMaximum") else \
                    "less than or equal to"
                self.invalid(path, shown, f"{path} in body should be {word} {limit}")
        if "minimum" in schema:
            limit = schema["minimum"]
            if value < limit or (schema.get("exclusiveMinimum") and value == limit):
                word = "greater than" if schema.get("exclusiveMinimum") else \
                    "greater than or equal to"
                self.invalid(path, shown, f"{path} in body should be {word} {limit}")


def validate(value: Any, schema: Schema) -> list[Cause]:
    """The OpenAPI schema errors of ``value`` (the whole object, paths from its root)."""
    walk = _Walk()
    walk.node(value, schema, "")
    return walk.causes


def _nodes(value: Any, schema: Schema, path: str) -> Iterator[tuple[Any, Schema, str]]:
    """Every (value, schema, path) pair of the tree, parents first."""
    yield value, schema, path
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            sub = props.get(key) or (extra if isinstance(extra, dict) else None)
            if isinstance(sub, dict):
                yield from _nodes(item, sub, child(path, key))
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            yield from _nodes(item, schema["items"], f"{path}[{i}]")


def list_types(value: Any, schema: Schema) -> list[Cause]:
    """Duplicate keys in `x-kubernetes-list-type: map` lists and duplicates in sets."""
    causes: list[Cause] = []
    for node, sub, path in _nodes(value, schema, ""):
        kind = sub.get("x-kubernetes-list-type")
        if not isinstance(node, list) or kind not in ("map", "set"):
            continue
        seen: list[Any] = []
        for i, item in enumerate(node):
            if kind == "map" and isinstance(item, dict):
                keys = sub.get("x-kubernetes-list-map-keys") or []
                key: Any = {k: item[k] for k in keys if k in item}
            else:
                key = item
            if key in seen:
                causes.append(Cause("FieldValueDuplicate", f"{path}[{i}]",
                                    f"Duplicate value: {show(key)}"))
            else:
                seen.append(key)
    return causes


def nodes(value: Any, schema: Schema) -> Iterator[tuple[Any, Schema, str]]:
    """The tree's nodes with their schemas, parents first (for the CEL rules)."""
    return _nodes(value, schema, "")

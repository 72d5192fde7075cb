"""The `x-kubernetes-validations` rules of a CRD, evaluated with the cel-python library.

Each rule runs with `self` bound to the node that declares it, as kube-apiserver runs it;
a false result becomes a field error with the rule's `message` (or `messageExpression`),
`fieldPath` and `reason`. Field names that are CEL keywords are escaped as Kubernetes
escapes them (`namespace` is `__namespace__`).
"""

from __future__ import annotations

import functools
import json
import logging
import re
from typing import Any

import celpy
from celpy.adapter import json_to_cel

from sandbox.kube.schema import Cause, Schema, nodes

_log = logging.getLogger(__name__)
_RESERVED = frozenset({
    "true", "false", "null", "in", "as", "break", "const", "continue", "else", "for",
    "function", "if", "import", "let", "loop", "package", "namespace", "return", "var",
    "void", "while",
})
_ENV = celpy.Environment()
_HAS = re.compile(r"has\([^)]*\)")
_FIELD = re.compile(r"\.\s*([A-Za-z_][A-Za-z0-9_]*)(\s*\()?")
_MISSING = re.compile(r"no such member in mapping: \\*'([^'\\]+)")


def _escape(key: str) -> str:
    if key in _RESERVED:
        return f"__{key}__"
    return (key.replace("__", "__underscores__").replace(".", "__dot__")
            .replace("-", "__dash__").replace("/", "__slash__"))


def _escaped(value: Any) -> Any:
    if isinstance(value, dict):
        return {_escape(k): _escaped(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_escaped(v) for v in value]
    return value


@functools.lru_cache(maxsize=4096)
def _program(expression: str) -> Any:
    return _ENV.program(_ENV.compile(expression))


def _evaluate(expression: str, value: Any) -> Any:
    return _program(expression).evaluate({"self": json_to_cel(_escaped(value))})


_RESULTS: dict[tuple[str, str], Any] = {}
_RESULTS_MAX = 50_000


def _outcome(expression: str, value: Any) -> Any:
    """The rule's result (or the error it raised), memoized by the node's JSON.

    cel-python interprets a parse tree (a few milliseconds a rule), and a write mostly
    re-submits nodes already seen, so an outcome is computed once per distinct node value.
    """
    key = (expression, json.dumps(value, sort_keys=True, separators=(",", ":")))
    if key not in _RESULTS:
        if len(_RESULTS) >= _RESULTS_MAX:
            _RESULTS.clear()
        try:
            _RESULTS[key] = _evaluate(expression, value)
        except Exception as exc:  # the library raises its own error types
            _RESULTS[key] = exc
    return _RESULTS[key]


def has_rules(schema: Schema) -> bool:
    """Whether any node of ``schema`` declares `x-kubernetes-validations`."""
    if schema.get("x-kubernetes-validations"):
        return True
    subs = list((schema.get("properties") or {}).values())
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            subs.append(schema[key])
    return any(has_rules(s) for s in subs)


def _failure(rule: dict[str, Any], value: Any, path: str) -> Cause:
    message = rule.get("message") or f"failed rule: {rule['rule']}"
    if rule.get("messageExpression"):
        try:
            message = str(_evaluate(rule["messageExpression"], value))
        except Exception:  # the apiserver falls back to `message` when the expression fails
            _log.debug("messageExpression failed", exc_info=True)
    field = path
    if rule.get("fieldPath"):
        field = f"{path}{rule['fieldPath']}" if path else str(rule["fieldPath"]).lstrip(".")
    return Cause(rule.get("reason") or "FieldValueInvalid", field or "<nil>",
                 f"Invalid value: {message}")


def _first_absent_field(rule: str, value: Any) -> str | None:
    """The first field the rule reads (outside `has()`) that the node's objects lack.

    cel-python wraps a missing-key error inside the error of the operator that met it, so the
    key is found from the rule itself, in the order the apiserver's evaluator would meet it.
    """
    unguarded = _HAS.sub("", rule)
    fields = [m.group(1) for m in _FIELD.finditer(unguarded) if not m.group(2)]
    objects = [value] if isinstance(value, dict) else []
    if isinstance(value, list):
        objects = [v for v in value if isinstance(v, dict)]
    for field in fields:
        name = field[2:-2] if field.startswith("__") and field.endswith("__") else field
        if any(name not in obj for obj in objects):
            return field
    return None


def _runtime_error(rule: dict[str, Any], schema: Schema, value: Any, path: str,
                   error: Any) -> Cause:
    """A rule that could not be evaluated, worded as the apiserver words it."""
    missing = _MISSING.search(repr(error))
    key = missing.group(1) if missing else _first_absent_field(rule["rule"], value)
    detail = f"no such key: {key}" if key else str(error)
    kind = schema.get("type") or type(value).__name__
    said = rule.get("message") or f"failed rule: {rule['rule']}"
    return Cause("FieldValueInvalid", path or "<nil>",
                 f'Invalid value: "{kind}": {detail} evaluating rule: {said}')


def validate(value: Any, schema: Schema) -> list[Cause]:
    """The failed rules of the whole tree, parents before children."""
    causes: list[Cause] = []
    for node, sub, path in nodes(value, schema):
        for rule in sub.get("x-kubernetes-validations") or ():
            if "oldSelf" in rule["rule"]:
                continue  # transition rules need the stored object: not evaluated on create
            ok = _outcome(rule["rule"], node)
            if isinstance(ok, celpy.celtypes.BoolType | bool):
                if not ok:
                    causes.append(_failure(rule, node, path))
                continue
            causes.append(_runtime_error(rule, sub, node, path, ok))
    return causes

"""Label and field selectors, parsed like the apiserver's so list and watch filter alike.

A parse error is a 400 BadRequest, as the real server answers it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sandbox.kube.errors import bad_request

_KEY = r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?"
_VALUE = r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_SET_RE = re.compile(rf"^\s*({_KEY})\s+(in|notin)\s*\(([^)]*)\)\s*$")
_OP_RE = re.compile(rf"^\s*({_KEY})\s*(==|!=|=)\s*({_VALUE})\s*$")
_EXISTS_RE = re.compile(rf"^\s*(!?)\s*({_KEY})\s*$")


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!exists"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "exists":
            return present
        if self.op == "!exists":
            return not present
        if self.op in ("=", "in"):
            return present and value in self.values
        # "!=" and "notin" match objects without the label, as on the real server.
        return not present or value not in self.values


def _split(selector: str) -> list[str]:
    """Split on commas outside parentheses."""
    parts: list[str] = []
    depth = 0
    current = ""
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return [p for p in parts if p.strip()]


def parse_label_selector(selector: str) -> list[Requirement]:
    """Parse ``k=v,k!=v,k in (a,b),k notin (a),k,!k``; raise 400 when it does not parse."""
    reqs: list[Requirement] = []
    for part in _split(selector):
        if m := _SET_RE.match(part):
            values = tuple(v.strip() for v in m.group(4).split(",") if v.strip())
            reqs.append(Requirement(m.group(1), m.group(3), values))
        elif m := _OP_RE.match(part):
            op = "=" if m.group(3) in ("=", "==") else "!="
            reqs.append(Requirement(m.group(1), op, (m.group(4),)))
        elif m := _EXISTS_RE.match(part):
            reqs.append(Requirement(m.group(2), "!exists" if m.group(1) else "exists"))
        else:
            raise bad_request(
                f"unable to parse requirement: found '{part.strip()}', expected a valid "
                "label selector requirement"
            )
    return reqs


def _dig(obj: Mapping[str, Any], path: str) -> str | None:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return None
        cur = cur[part]
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return None if cur is None else str(cur)


def parse_field_selector(
    selector: str, *, any_field: bool
) -> Callable[[Mapping[str, Any]], bool]:
    """Parse ``metadata.name=x,metadata.namespace!=y``.

    Custom resources support only ``metadata.name`` and ``metadata.namespace`` (400 otherwise);
    ``any_field`` allows any dotted path, for the core kinds whose real selectable fields vary.
    """
    checks: list[tuple[str, bool, str]] = []
    for part in _split(selector):
        m = re.match(r"^\s*([A-Za-z0-9_.]+)\s*(==|!=|=)\s*(.*?)\s*$", part)
        if not m:
            raise bad_request(f"invalid selector: '{selector}'; can't understand '{part}'")
        field, op, value = m.groups()
        if not any_field and field not in ("metadata.name", "metadata.namespace"):
            raise bad_request(f'field label not supported: {field}')
        checks.append((field, op != "!=", value))

    def matches(obj: Mapping[str, Any]) -> bool:
        for field, equal, value in checks:
            actual = _dig(obj, field) or ""
            if (actual == value) != equal:
                return False
        return True

    return matches


def object_matcher(
    label_selector: str | None, field_selector: str | None, *, any_field: bool
) -> Callable[[Mapping[str, Any]], bool]:
    """One predicate for both selectors (errors surface here, before any response starts)."""
    reqs = parse_label_selector(label_selector) if label_selector else []
    fields = (
        parse_field_selector(field_selector, any_field=any_field) if field_selector else None
    )

    def matches(obj: Mapping[str, Any]) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        if not all(r.matches(labels) for r in reqs):
            return False
        return fields is None or fields(obj)

    return matches


__all__ = ["Requirement", "object_matcher", "parse_label_selector"]

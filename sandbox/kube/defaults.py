"""CRD defaults applied on every write, as the apiserver does from each CRD's ``default:``.

Only fields whose official CRD declares a default are filled: a bot that reads back what it
wrote must see exactly what a real cluster would show (e.g. a backendRef's ``weight: 1``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from sandbox.kube import resources as r

_PATH_DEFAULT = {"type": "PathPrefix", "value": "/"}
_POOL_REF = {"group": r.POOL_GROUP, "kind": "InferencePool"}
_PENDING = {
    "lastTransitionTime": "1970-01-01T00:00:00Z",
    "message": "Waiting for controller",
    "reason": "Pending",
    "status": "Unknown",
}


def _fill(obj: Any, defaults: dict[str, Any]) -> None:
    if isinstance(obj, dict):
        for key, value in defaults.items():
            obj.setdefault(key, copy.deepcopy(value))


def _dicts(parent: Any, key: str) -> list[dict[str, Any]]:
    value = parent.get(key) if isinstance(parent, dict) else None
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _sub(parent: Any, key: str) -> Any:
    return parent.get(key) if isinstance(parent, dict) else None


def _parent_status_refs(obj: dict[str, Any], key: str) -> None:
    for entry in _dicts(_sub(obj, "status"), key):
        _fill(entry.get("parentRef"), {"group": r.GATEWAY_GROUP, "kind": "Gateway"})


def _httproute(obj: dict[str, Any]) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    for ref in _dicts(spec, "parentRefs"):
        _fill(ref, {"group": r.GATEWAY_GROUP, "kind": "Gateway"})
    spec.setdefault("rules", [{"matches": [{"path": dict(_PATH_DEFAULT)}]}])
    for rule in _dicts(spec, "rules"):
        rule.setdefault("matches", [{"path": dict(_PATH_DEFAULT)}])
        for match in _dicts(rule, "matches"):
            match.setdefault("path", dict(_PATH_DEFAULT))
            _fill(match.get("path"), _PATH_DEFAULT)
            for header in _dicts(match, "headers") + _dicts(match, "queryParams"):
                header.setdefault("type", "Exact")
        for ref in _dicts(rule, "backendRefs"):
            _fill(ref, {"group": "", "kind": "Service", "weight": 1})
    _parent_status_refs(obj, "parents")


def _pool(obj: dict[str, Any]) -> None:
    spec = obj.get("spec")
    if isinstance(spec, dict):
        spec.setdefault("appProtocol", "http")
        _fill(spec.get("endpointPickerRef"),
              {"failureMode": "FailClose", "group": "", "kind": "Service"})
    _parent_status_refs(obj, "parents")


def _legacy_pool(obj: dict[str, Any]) -> None:
    _fill(_sub(obj.get("spec"), "extensionRef"),
          {"failureMode": "FailClose", "group": "", "kind": "Service"})
    obj.setdefault(
        "status",
        {"parent": [{"conditions": [{**_PENDING, "type": "Accepted"}],
                     "parentRef": {"kind": "Status", "name": "default"}}]},
    )
    for entry in _dicts(obj.get("status"), "parent"):
        entry.setdefault("conditions", [{**_PENDING, "type": "Accepted"}])
    _parent_status_refs(obj, "parent")


def _objective(obj: dict[str, Any]) -> None:
    _fill(_sub(obj.get("spec"), "poolRef"), _POOL_REF)
    _fill(obj.get("status"), {"conditions": [{**_PENDING, "type": "Ready"}]})


def _rewrite(obj: dict[str, Any]) -> None:
    spec = obj.get("spec")
    _fill(_sub(spec, "poolRef"), _POOL_REF)
    for rule in _dicts(spec, "rules"):
        for match in _dicts(rule, "matches"):
            _fill(match.get("model"), {"type": "Exact"})
    _fill(obj.get("status"), {"conditions": [{**_PENDING, "type": "Accepted"}]})


_DEFAULTERS: dict[tuple[str, str], Callable[[dict[str, Any]], None]] = {
    r.HTTPROUTES.key: _httproute,
    r.POOLS.key: _pool,
    r.LEGACY_POOLS.key: _legacy_pool,
    r.OBJECTIVES.key: _objective,
    r.LEGACY_OBJECTIVES.key: _objective,
    r.REWRITES.key: _rewrite,
    r.LEGACY_REWRITES.key: _rewrite,
}


def apply_defaults(rt: r.ResourceType, obj: dict[str, Any]) -> None:
    """Fill the CRD defaults of ``rt`` into ``obj`` in place."""
    defaulter = _DEFAULTERS.get(rt.key)
    if defaulter is not None:
        defaulter(obj)

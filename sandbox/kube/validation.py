"""Schema rules from the official CRDs, for the fields the bot writes and a little around them.

These are hand-written from the CRDs in the project's shared reference copies (never copied
into the project). A violation becomes a 422 Invalid whose ``details.causes[]`` name field
paths and whose messages follow the apiserver's OpenAPI validation wording.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from sandbox.kube import errors
from sandbox.kube import resources as r

MAX_WEIGHT = 1_000_000
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
GROUP_PATTERN = r"^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
KIND_PATTERN = r"^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$"
LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
HOSTNAME_PATTERN = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"

_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return '"object"'
    if isinstance(value, list):
        return '"array"'
    return json.dumps(value)


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


class Checker:
    """Collects field errors while walking an object; helpers return the value if well typed."""

    def __init__(self) -> None:
        self.causes: list[dict[str, str]] = []

    def add(self, reason: str, field: str, message: str) -> None:
        self.causes.append({"reason": reason, "message": message, "field": field})

    def required(self, field: str) -> None:
        self.add("FieldValueRequired", field, "Required value")

    def invalid(self, field: str, value: Any, detail: str) -> None:
        self.add("FieldValueInvalid", field, f"Invalid value: {_show(value)}: {detail}")

    def _typed(self, parent: Any, key: str, field: str, want: str, required: bool) -> Any:
        if not isinstance(parent, dict) or key not in parent or parent[key] is None:
            if required:
                self.required(field)
            return None
        value = parent[key]
        if _json_type(value) != want:
            kind = _json_type(value)
            self.add(
                "FieldValueTypeInvalid", field,
                f'Invalid value: "{kind}": {field} in body must be of type {want}: "{kind}"',
            )
            return None
        return value

    def obj(self, parent: Any, key: str, field: str, *, required: bool = False) -> Any:
        return self._typed(parent, key, field, "object", required)

    def lst(
        self, parent: Any, key: str, field: str, *, required: bool = False,
        min_items: int | None = None, max_items: int | None = None,
    ) -> list[Any]:
        value = self._typed(parent, key, field, "array", required)
        if value is None:
            return []
        if max_items is not None and len(value) > max_items:
            self.add("FieldValueTooMany", field,
                     f"Too many: {len(value)}: must have at most {max_items} items")
        if min_items is not None and len(value) < min_items:
            self.invalid(field, len(value), f"{field} in body should have at least "
                         f"{min_items} items")
        return list(value)

    def integer(
        self, parent: Any, key: str, field: str, *, required: bool = False,
        minimum: int | None = None, maximum: int | None = None,
    ) -> int | None:
        value = self._typed(parent, key, field, "integer", required)
        if value is None:
            return None
        if minimum is not None and value < minimum:
            self.invalid(field, value,
                         f"{field} in body should be greater than or equal to {minimum}")
        if maximum is not None and value > maximum:
            self.invalid(field, value,
                         f"{field} in body should be less than or equal to {maximum}")
        return int(value)

    def string(
        self, parent: Any, key: str, field: str, *, required: bool = False,
        min_len: int | None = None, max_len: int | None = None,
        pattern: str | None = None, enum: tuple[str, ...] | None = None,
    ) -> str | None:
        value = self._typed(parent, key, field, "string", required)
        if value is None:
            return None
        if max_len is not None and len(value) > max_len:
            self.add("FieldValueTooLong", field, f"Too long: may not be more than {max_len} bytes")
        if min_len is not None and len(value) < min_len:
            self.invalid(field, value, f"{field} in body should be at least {min_len} chars long")
        if pattern is not None and not re.search(pattern, value):
            self.invalid(field, value, f"{field} in body should match '{pattern}'")
        if enum is not None and value not in enum:
            supported = ", ".join(f'"{e}"' for e in enum)
            self.add("FieldValueNotSupported", field,
                     f'Unsupported value: "{value}": supported values: {supported}')
        return str(value)

    def string_map(self, value: Any, field: str) -> None:
        if isinstance(value, dict):
            for k in value:
                self.string(value, k, f"{field}.{k}", max_len=63, pattern=LABEL_VALUE_PATTERN)


def _name(c: Checker, obj: dict[str, Any], rt: r.ResourceType) -> None:
    meta = obj.get("metadata") or {}
    name = meta.get("name")
    if not name:
        c.required("metadata.name")
        return
    if rt is r.NAMESPACES:
        if len(name) > 63:
            c.invalid("metadata.name", name, "must be no more than 63 characters")
        if not DNS1123_LABEL.match(name):
            c.invalid("metadata.name", name, _LABEL_MSG)
        return
    if len(name) > 253:
        c.invalid("metadata.name", name, "must be no more than 253 characters")
    if not DNS1123_SUBDOMAIN.match(name):
        c.invalid("metadata.name", name, _SUBDOMAIN_MSG)


def _ref_fields(c: Checker, ref: Any, f: str) -> None:
    c.string(ref, "name", f"{f}.name", required=True, min_len=1, max_len=253)
    c.string(ref, "group", f"{f}.group", max_len=253, pattern=GROUP_PATTERN)
    c.string(ref, "kind", f"{f}.kind", min_len=1, max_len=63, pattern=KIND_PATTERN)
    c.string(ref, "namespace", f"{f}.namespace", min_len=1, max_len=63,
             pattern=DNS1123_LABEL.pattern)
    c.integer(ref, "port", f"{f}.port", minimum=1, maximum=65535)


def _httproute(c: Checker, spec: Any) -> None:
    for i, ref in enumerate(c.lst(spec, "parentRefs", "spec.parentRefs", max_items=32)):
        f = f"spec.parentRefs[{i}]"
        if c.obj({"x": ref}, "x", f) is not None:
            _ref_fields(c, ref, f)
            c.string(ref, "sectionName", f"{f}.sectionName", min_len=1, max_len=253,
                     pattern=DNS1123_SUBDOMAIN.pattern)
    for i, host in enumerate(c.lst(spec, "hostnames", "spec.hostnames", max_items=16)):
        c.string({"x": host}, "x", f"spec.hostnames[{i}]", min_len=1, max_len=253,
                 pattern=HOSTNAME_PATTERN)
    rules = c.lst(spec, "rules", "spec.rules", min_items=1, max_items=16)
    total_matches = 0
    for i, rule in enumerate(rules):
        f = f"spec.rules[{i}]"
        if c.obj({"x": rule}, "x", f) is None:
            continue
        matches = c.lst(rule, "matches", f"{f}.matches", max_items=64)
        total_matches += len(matches)
        for j, match in enumerate(matches):
            path = c.obj(match, "path", f"{f}.matches[{j}].path")
            if path is None:
                continue
            pf = f"{f}.matches[{j}].path"
            kind = c.string(path, "type", f"{pf}.type",
                            enum=("Exact", "PathPrefix", "RegularExpression"))
            value = c.string(path, "value", f"{pf}.value", max_len=1024)
            if kind in ("Exact", "PathPrefix") and value is not None and not value.startswith("/"):
                c.invalid(pf, path, "value must be an absolute path and start with '/' when "
                          "type one of ['Exact', 'PathPrefix']")
        refs = c.lst(rule, "backendRefs", f"{f}.backendRefs", max_items=16)
        for j, ref in enumerate(refs):
            bf = f"{f}.backendRefs[{j}]"
            if c.obj({"x": ref}, "x", bf) is None:
                continue
            _ref_fields(c, ref, bf)
            c.integer(ref, "weight", f"{bf}.weight", minimum=0, maximum=MAX_WEIGHT)
            if ref.get("group") == "" and ref.get("kind") == "Service" and "port" not in ref:
                c.invalid(bf, ref, "Must have port for Service reference")
    if total_matches > 128:
        c.invalid("spec.rules", rules, "While 16 rules and 64 matches per rule are allowed, the "
                  "total number of matches across all rules in a route must be less than 128")


def _pool(c: Checker, spec: Any) -> None:
    selector = c.obj(spec, "selector", "spec.selector", required=True)
    if selector is not None:
        labels = c.obj(selector, "matchLabels", "spec.selector.matchLabels", required=True)
        if labels is not None:
            if not 1 <= len(labels) <= 64:
                c.invalid("spec.selector.matchLabels", labels,
                          "spec.selector.matchLabels in body should have at least 1 properties")
            c.string_map(labels, "spec.selector.matchLabels")
    ports = c.lst(spec, "targetPorts", "spec.targetPorts", required=True, min_items=1,
                  max_items=8)
    numbers = []
    for i, port in enumerate(ports):
        numbers.append(c.integer(port, "number", f"spec.targetPorts[{i}].number", required=True,
                                 minimum=1, maximum=65535))
    if len(set(numbers)) != len(numbers):
        c.invalid("spec.targetPorts", ports, "port number must be unique")
    c.string(spec, "appProtocol", "spec.appProtocol", enum=("http", "kubernetes.io/h2c"))
    epp = c.obj(spec, "endpointPickerRef", "spec.endpointPickerRef")
    if epp is not None:
        f = "spec.endpointPickerRef"
        c.string(epp, "name", f"{f}.name", required=True, min_len=1, max_len=253)
        c.string(epp, "group", f"{f}.group", max_len=253, pattern=GROUP_PATTERN)
        c.string(epp, "kind", f"{f}.kind", min_len=1, max_len=63, pattern=KIND_PATTERN)
        c.string(epp, "failureMode", f"{f}.failureMode", enum=("FailOpen", "FailClose"))
        port = c.obj(epp, "port", f"{f}.port")
        if port is not None:
            c.integer(port, "number", f"{f}.port.number", required=True, minimum=1,
                      maximum=65535)
        elif epp.get("kind", "Service") == "Service":
            c.invalid(f, epp, "port is required when kind is 'Service' or unspecified "
                      "(defaults to 'Service')")


def _legacy_pool(c: Checker, spec: Any) -> None:
    selector = c.obj(spec, "selector", "spec.selector", required=True)
    c.string_map(selector, "spec.selector")
    c.integer(spec, "targetPortNumber", "spec.targetPortNumber", required=True, minimum=1,
              maximum=65535)
    ext = c.obj(spec, "extensionRef", "spec.extensionRef", required=True)
    if ext is not None:
        f = "spec.extensionRef"
        c.string(ext, "name", f"{f}.name", required=True, min_len=1, max_len=253)
        c.string(ext, "group", f"{f}.group", max_len=253, pattern=GROUP_PATTERN)
        c.string(ext, "kind", f"{f}.kind", min_len=1, max_len=63, pattern=KIND_PATTERN)
        c.integer(ext, "portNumber", f"{f}.portNumber", minimum=1, maximum=65535)
        c.string(ext, "failureMode", f"{f}.failureMode", enum=("FailOpen", "FailClose"))


def _pool_ref(c: Checker, spec: Any) -> None:
    ref = c.obj(spec, "poolRef", "spec.poolRef", required=True)
    if ref is not None:
        c.string(ref, "name", "spec.poolRef.name", required=True, min_len=1, max_len=253)
        c.string(ref, "group", "spec.poolRef.group", max_len=253, pattern=GROUP_PATTERN)
        c.string(ref, "kind", "spec.poolRef.kind", min_len=1, max_len=63, pattern=KIND_PATTERN)


def _objective(c: Checker, spec: Any) -> None:
    _pool_ref(c, spec)
    c.integer(spec, "priority", "spec.priority", minimum=-(2**31), maximum=2**31 - 1)


def _rewrite(c: Checker, spec: Any) -> None:
    _pool_ref(c, spec)
    for i, rule in enumerate(c.lst(spec, "rules", "spec.rules", required=True)):
        f = f"spec.rules[{i}]"
        if c.obj({"x": rule}, "x", f) is None:
            continue
        for j, match in enumerate(c.lst(rule, "matches", f"{f}.matches")):
            model = c.obj(match, "model", f"{f}.matches[{j}].model", required=True)
            if model is not None:
                mf = f"{f}.matches[{j}].model"
                c.string(model, "type", f"{mf}.type", enum=("Exact",))
                c.string(model, "value", f"{mf}.value", required=True, min_len=1)
        targets = c.lst(rule, "targets", f"{f}.targets", min_items=1)
        weighted = 0
        for j, target in enumerate(targets):
            tf = f"{f}.targets[{j}]"
            if c.obj({"x": target}, "x", tf) is None:
                continue
            c.string(target, "modelRewrite", f"{tf}.modelRewrite", required=True)
            c.integer(target, "weight", f"{tf}.weight", minimum=1, maximum=MAX_WEIGHT)
            if target.get("weight") is not None:
                weighted += 1
        if 0 < weighted < len(targets):
            c.invalid(f"{f}.targets", targets, "if a weight is set for any target, it must be "
                      "set for all targets")


def _gateway(c: Checker, spec: Any) -> None:
    c.string(spec, "gatewayClassName", "spec.gatewayClassName", required=True, min_len=1,
             max_len=253)
    listeners = c.lst(spec, "listeners", "spec.listeners", required=True, min_items=1,
                      max_items=64)
    for i, listener in enumerate(listeners):
        f = f"spec.listeners[{i}]"
        c.string(listener, "name", f"{f}.name", required=True, min_len=1, max_len=253)
        c.integer(listener, "port", f"{f}.port", required=True, minimum=1, maximum=65535)
        c.string(listener, "protocol", f"{f}.protocol", required=True, min_len=1, max_len=255)


def _pod(c: Checker, spec: Any) -> None:
    containers = c.lst(spec, "containers", "spec.containers", required=True, min_items=1)
    for i, container in enumerate(containers):
        c.string(container, "name", f"spec.containers[{i}].name", required=True, min_len=1)
        c.string(container, "image", f"spec.containers[{i}].image", required=True, min_len=1)


_SPEC_RULES: dict[tuple[str, str], Callable[[Checker, Any], None]] = {
    r.HTTPROUTES.key: _httproute,
    r.GATEWAYS.key: _gateway,
    r.POOLS.key: _pool,
    r.LEGACY_POOLS.key: _legacy_pool,
    r.OBJECTIVES.key: _objective,
    r.LEGACY_OBJECTIVES.key: _objective,
    r.REWRITES.key: _rewrite,
    r.LEGACY_REWRITES.key: _rewrite,
    r.PODS.key: _pod,
}


def validate(rt: r.ResourceType, obj: dict[str, Any]) -> None:
    """Raise a 422 Invalid ``ApiError`` listing every violation; return if ``obj`` is valid."""
    c = Checker()
    _name(c, obj, rt)
    rule = _SPEC_RULES.get(rt.key)
    if rule is not None:
        spec = c.obj(obj, "spec", "spec", required=True)
        if spec is not None:
            rule(c, spec)
    if c.causes:
        name = (obj.get("metadata") or {}).get("name") or ""
        raise errors.invalid(rt.group, rt.kind, name, c.causes)

"""Admission of writes: the official CRDs' schemas for custom kinds, a few rules for core kinds.

Custom resources are pruned, defaulted and validated from the CRD documents the emulator is
given (structural schema, list-type invariants, then the CEL rules unless a blocking schema
error stops them), as kube-apiserver's apiextensions strategy does. Object names and the core
kinds the emulator serves (Namespace, Pod) keep small hand-written checks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sandbox.kube import cel, errors, schema
from sandbox.kube import resources as r
from sandbox.kube.schema import Cause

Obj = dict[str, Any]
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
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
_QUALIFIED = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_QUALIFIED_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
    "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
_LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
    "'my_value',  or '12345', regex used for validation is "
    "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
_NOT_CHECKED = ("Invalid value: null: some validation rules were not checked because the "
                "object was invalid; correct the existing errors to complete validation")


@dataclass(frozen=True)
class KindSchema:
    """The storage version's schema of one custom kind, and whether it has CEL rules."""

    schema: Obj
    has_rules: bool


def _qualified_name(key: str) -> list[str]:
    """apimachinery's IsQualifiedName: an optional DNS-subdomain prefix, then a name part."""
    parts = key.split("/")
    if len(parts) > 2:
        return [f"a valid label key {_QUALIFIED_MSG} with an optional DNS subdomain prefix and "
                "'/' (e.g. 'example.com/MyName')"]
    problems = []
    name = parts[-1]
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            problems.append("prefix part must be non-empty")
        else:
            if len(prefix) > 253:
                problems.append("prefix part must be no more than 253 characters")
            if not DNS1123_SUBDOMAIN.match(prefix):
                problems.append(f"prefix part {_SUBDOMAIN_MSG}")
    if not name:
        problems.append("name part must be non-empty")
    elif len(name) > 63:
        problems.append("name part must be no more than 63 characters")
    if not _QUALIFIED.match(name):
        problems.append(f"name part {_QUALIFIED_MSG}")
    return problems


def _labels_and_annotations(meta: Obj) -> list[Cause]:
    """Label keys and values, then annotation keys, as ValidateObjectMeta checks them."""
    causes = []
    labels = meta.get("labels")
    for key, value in labels.items() if isinstance(labels, dict) else ():
        causes += [Cause("FieldValueInvalid", "metadata.labels",
                         f"Invalid value: {schema.show(key)}: {problem}")
                   for problem in _qualified_name(key)]
        text = value if isinstance(value, str) else ""
        if len(text) > 63:
            causes.append(Cause("FieldValueInvalid", "metadata.labels",
                                f"Invalid value: {schema.show(value)}: must be no more than 63 "
                                "characters"))
        if not _LABEL_VALUE.match(text):
            causes.append(Cause("FieldValueInvalid", "metadata.labels",
                                f"Invalid value: {schema.show(value)}: {_LABEL_VALUE_MSG}"))
    annotations = meta.get("annotations")
    for key in annotations if isinstance(annotations, dict) else ():
        causes += [Cause("FieldValueInvalid", "metadata.annotations",
                         f"Invalid value: {schema.show(key)}: {problem}")
                   for problem in _qualified_name(key.lower())]
    return causes


def _name(name: str, rt: r.ResourceType) -> list[Cause]:
    causes = []
    shown = schema.show(name)
    if rt is r.NAMESPACES:
        if len(name) > 63:
            causes.append(Cause("FieldValueInvalid", "metadata.name",
                                f"Invalid value: {shown}: must be no more than 63 characters"))
        if not DNS1123_LABEL.match(name):
            causes.append(Cause("FieldValueInvalid", "metadata.name",
                                f"Invalid value: {shown}: {_LABEL_MSG}"))
        return causes
    if len(name) > 253:
        causes.append(Cause("FieldValueInvalid", "metadata.name",
                            f"Invalid value: {shown}: must be no more than 253 characters"))
    if not DNS1123_SUBDOMAIN.match(name):
        causes.append(Cause("FieldValueInvalid", "metadata.name",
                            f"Invalid value: {shown}: {_SUBDOMAIN_MSG}"))
    return causes


def _metadata(obj: Obj, rt: r.ResourceType) -> list[Cause]:
    """Object-meta errors in ValidateObjectMeta's order: name, labels, annotations."""
    meta = obj.get("metadata") or {}
    name = meta.get("name")
    named = _name(name, rt) if name else [
        Cause("FieldValueRequired", "metadata.name", "Required value")]
    return named + _labels_and_annotations(meta)


def _pod(obj: Obj) -> list[Cause]:
    spec = obj.get("spec")
    containers = spec.get("containers") if isinstance(spec, dict) else None
    if not isinstance(containers, list) or not containers:
        return [Cause("FieldValueRequired", "spec.containers", "Required value")]
    causes = []
    for i, container in enumerate(containers):
        for key in ("name", "image"):
            if not isinstance(container, dict) or not container.get(key):
                causes.append(Cause("FieldValueRequired", f"spec.containers[{i}].{key}",
                                    "Required value"))
    return causes


class Admission:
    """Pruning, defaulting and validation for every kind the emulator serves."""

    def __init__(self, crds: list[Obj]) -> None:
        self._kinds: dict[tuple[str, str], KindSchema] = {}
        for crd in crds:
            spec = crd.get("spec") or {}
            group, plural = spec.get("group"), (spec.get("names") or {}).get("plural")
            rt = next((t for t in r.ALL if t.key == (group, plural)), None)
            if rt is None:
                continue
            for version in spec.get("versions") or ():
                if version.get("name") == rt.storage_version:
                    body = (version.get("schema") or {}).get("openAPIV3Schema") or {}
                    self._kinds[rt.key] = KindSchema(body, cel.has_rules(body))

    def unchecked_kinds(self) -> list[r.ResourceType]:
        """Custom kinds served without a schema: their writes are not validated."""
        return [rt for rt in r.ALL if rt.group and rt.key not in self._kinds]

    def admit(self, rt: r.ResourceType, obj: Obj) -> tuple[Obj, list[str]]:
        """``obj`` pruned and defaulted from its kind's schema, and the pruning warnings."""
        kind = self._kinds.get(rt.key)
        if kind is None or obj.get("kind") != rt.kind:
            return obj, []  # another kind's object is neither pruned nor defaulted
        warnings: list[str] = []
        meta = obj.get("metadata")
        pruned = schema.prune(schema.integral_floats(obj), kind.schema, "", warnings)
        pruned["metadata"] = meta
        return schema.default(pruned, kind.schema), warnings

    def validate(self, rt: r.ResourceType, obj: Obj) -> None:
        """Raise a 422 Invalid listing every violation, in the apiserver's order."""
        causes = []
        sent_kind = str(obj.get("kind") or rt.kind)
        if sent_kind != rt.kind:
            causes.append(Cause("FieldValueInvalid", "kind",
                                f"Invalid value: {schema.show(sent_kind)}: must be {rt.kind}"))
        causes += _metadata(obj, rt)
        kind = self._kinds.get(rt.key)
        if rt is r.PODS:
            causes += _pod(obj)
        elif kind is not None:
            body = {k: v for k, v in obj.items() if k != "metadata"}
            found = schema.validate(body, kind.schema)
            found += schema.list_types(body, kind.schema)
            if kind.has_rules:
                if any(c.reason in schema.BLOCKING for c in found):
                    found.append(Cause("FieldValueInvalid", "<nil>", _NOT_CHECKED))
                else:
                    found += cel.validate(body, kind.schema)
            causes += found
        if causes:
            name = (obj.get("metadata") or {}).get("name") or ""
            raise errors.invalid(rt.group, sent_kind, name, [c.as_dict() for c in causes])

"""A minimal OpenAPI v3 index so ``kubectl apply`` finds server-side field validation.

kubectl (``--validate=strict``, the default) downloads ``/openapi/v3`` to learn whether the
server takes the ``fieldValidation`` query parameter; without any OpenAPI it refuses to apply
("failed to download openapi"). Each group-version document lists, per resource, a PATCH
operation tagged with ``x-kubernetes-group-version-kind`` that accepts ``fieldValidation`` and
the merge/JSON/apply patch types, but not strategic merge patch: like a real server's CRD
documents, which makes ``kubectl apply`` compute a JSON merge patch. No schemas are published.
"""

from __future__ import annotations

from typing import Any

from sandbox.kube import resources as r

_HASH = "sandbox0001"
_PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json",
                "application/apply-patch+yaml")


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def index() -> dict[str, Any]:
    """``/openapi/v3``: where each group-version's document lives."""
    paths: dict[str, Any] = {}
    for rt in r.ALL:
        for version in rt.versions:
            gv = _gv_path(rt.group, version)
            paths[gv] = {"serverRelativeURL": f"/openapi/v3/{gv}?hash={_HASH}"}
    return {"paths": paths}


def _patch_operation(rt: r.ResourceType, version: str) -> dict[str, Any]:
    params = [{"name": name, "in": "query", "schema": {"type": "string"}, "uniqueItems": True}
              for name in ("dryRun", "fieldManager", "fieldValidation")]
    return {
        "operationId": f"patch{rt.kind}",
        "parameters": params,
        "requestBody": {"content": {t: {"schema": {"type": "object"}} for t in _PATCH_TYPES},
                        "required": True},
        "responses": {"200": {"description": "OK"}},
        "x-kubernetes-action": "patch",
        "x-kubernetes-group-version-kind": {"group": rt.group, "version": version,
                                            "kind": rt.kind},
    }


def group_version(subpath: str) -> dict[str, Any] | None:
    """``/openapi/v3/<api/v1 | apis/group/version>``, or None if not served."""
    parts = subpath.strip("/").split("/")
    if parts[:1] == ["api"] and len(parts) == 2:
        group, version = "", parts[1]
    elif parts[:1] == ["apis"] and len(parts) == 3:
        group, version = parts[1], parts[2]
    else:
        return None
    kinds = r.in_group_version(group, version)
    if not kinds:
        return None
    prefix = "/" + _gv_path(group, version)
    paths: dict[str, Any] = {}
    for rt in kinds:
        scope = f"{prefix}/namespaces/{{namespace}}" if rt.namespaced else prefix
        paths[f"{scope}/{rt.plural}/{{name}}"] = {"patch": _patch_operation(rt, version)}
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0-sandbox"},
        "paths": paths,
        "components": {"schemas": {}},
    }

"""A double of the official client's custom-objects calls over one object: every JSON patch
applied as the API server applies it (a failed `test` is 422, a stale resourceVersion 409, a
write moves the resourceVersion), and counted."""

from __future__ import annotations

import copy
from typing import Any

from kubernetes.client.exceptions import ApiException

Obj = dict[str, Any]


def _unescape(part: str) -> str:
    return part.replace("~1", "/").replace("~0", "~")


def apply_ops(obj: Obj, ops: list[Obj]) -> Obj:
    """The ops on a copy of `obj`, as the API server applies a JSON patch: a failed `test`
    is 422, a stale resourceVersion 409, and a write moves the resourceVersion."""
    out = copy.deepcopy(obj)
    for op in ops:
        *parents, last = [_unescape(p) for p in op["path"].split("/")[1:]]
        node: Any = out
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        key: Any = int(last) if isinstance(node, list) else last
        if op["op"] == "test" and node[key] != op["value"]:
            raise ApiException(status=422)
        if op["op"] in ("add", "replace"):
            node[key] = op["value"]
        elif op["op"] == "remove":
            del node[key]
    if out["metadata"]["resourceVersion"] != obj["metadata"]["resourceVersion"]:
        raise ApiException(status=409)
    out["metadata"]["resourceVersion"] = str(int(obj["metadata"]["resourceVersion"]) + 1)
    return out


class Cluster:
    """One object; every PATCH is applied as the API server applies it, and counted."""

    def __init__(self, obj: Obj) -> None:
        self.obj = obj
        self.patches = 0

    def get_namespaced_custom_object(self, *args: Any, **kwargs: Any) -> Obj:
        return copy.deepcopy(self.obj)

    def patch_namespaced_custom_object(self, *args: Any, **kwargs: Any) -> Obj:
        self.patches += 1
        self.obj = apply_ops(self.obj, args[5])
        return copy.deepcopy(self.obj)

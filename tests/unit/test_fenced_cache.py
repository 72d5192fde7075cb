"""The fenced writer tells the namespace cache of every version it writes, the fence-off
bump after a lost answer too (doubles of the official client and of the cache)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from urllib3.exceptions import ProtocolError

from rollout.adapters.kube.fenced import FencedObjects, Kind, Obj
from rollout.adapters.kube.httproute import HTTPROUTE
from rollout.domain.errors import ClusterUnavailable


class _Api:
    """One route; its first PATCH's answer is lost without landing, the next lands."""

    def __init__(self) -> None:
        self.route: Obj = {"metadata": {"name": "r", "resourceVersion": "7", "annotations": {}},
                           "spec": {}}
        self.patches = 0

    def get_namespaced_custom_object(self, *args: Any, **kwargs: Any) -> Obj:
        return copy.deepcopy(self.route)

    def patch_namespaced_custom_object(self, *args: Any, **kwargs: Any) -> Obj:
        self.patches += 1
        if self.patches == 1:
            raise ProtocolError("connection dropped")
        self.route["metadata"]["resourceVersion"] = "8"
        return copy.deepcopy(self.route)


class _Cache:
    def __init__(self) -> None:
        self.written: list[str] = []

    def listed(self, kind: Kind, namespace: str) -> list[Obj] | None:
        return None

    def wrote(self, kind: Kind, namespace: str, obj: Obj) -> None:
        self.written.append(obj["metadata"]["resourceVersion"])

    def held(self, kind: Kind, namespace: str, name: str) -> Obj | None:
        return None


def test_the_fence_off_bump_after_a_lost_answer_is_told_to_the_cache() -> None:
    api, cache = _Api(), _Cache()
    routes = FencedObjects(api, HTTPROUTE, cache=cache)  # type: ignore[arg-type]
    current = routes.get("default", "r")
    with pytest.raises(ClusterUnavailable):  # fenced off: the write did not land
        routes.send("default", "r", current, [], fence=3)
    assert api.patches == 2 and cache.written == ["8"]

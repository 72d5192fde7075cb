"""The fenced write against the real kube-apiserver, whose 422 for a failed JSON-patch `test`
carries only a generic message: the bot decides by status code and by what it reads back."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from rollout.adapters.kube.fenced import FencedObjects
from rollout.adapters.kube.httproute import HTTPROUTE
from rollout.adapters.kube.markers import FENCE, pointer
from rollout.domain.errors import ClusterRejected, FenceBehind
from sandbox.kube import Fault
from tests.support.gateway_controller import wait_until_settled
from tests.support.kube_api import close_api
from tests.support.real_cluster import RealCluster

GW = ("gateway.networking.k8s.io", "v1", "httproutes", "default")


@pytest.fixture
def routes(cluster: RealCluster) -> Iterator[FencedObjects]:
    api = client.ApiClient(cluster.bot_configuration())
    try:
        yield FencedObjects(client.CustomObjectsApi(api), HTTPROUTE, timeout=(5.0, 10.0))
    finally:
        close_api(api)


def _write(routes: FencedObjects, name: str, ops_for: Any, *, fence: int) -> None:
    """What the router does around the writer: decide on the latest read, send, and decide
    again on the fresh read a conflict leaves."""
    for _attempt in range(routes.conflict_retries + 1):
        current = routes.latest("default", name, fence=fence)
        if routes.send("default", name, current, ops_for(current), fence=fence) is not None:
            return
    raise routes.kept_changing("default", name)


def _set_weight(value: int) -> Any:
    def mutate(_obj: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"op": "replace", "path": "/spec/rules/0/backendRefs/1/weight", "value": value}]
    return mutate


def _reads(cluster: RealCluster) -> int:
    return sum(1 for r in cluster.requests if r.verb == "get" and r.resource == "httproutes")


def _patches(cluster: RealCluster, name: str) -> list[int]:
    return [r.status for r in cluster.requests
            if r.verb == "patch" and r.resource == "httproutes" and r.name == name]


def test_a_failed_fence_test_is_recognised_by_reading_back(
    cluster: RealCluster, routes: FencedObjects,
) -> None:
    _write(routes, "routes-to-llm", _set_weight(0), fence=5)
    # Hold the next write; meanwhile a rollback's holder (fence 9) writes the route.
    cluster.inject(Fault(verb="patch", resource="httproutes", status=None, count=1,
                         stall_seconds=1.0, name="routes-to-llm"))
    outcome: list[BaseException | None] = []

    def stale_writer() -> None:
        try:
            _write(routes, "routes-to-llm", _set_weight(10), fence=6)
            outcome.append(None)
        except BaseException as exc:  # asserted below
            outcome.append(exc)

    reads = _reads(cluster)
    writer = threading.Thread(target=stale_writer)
    writer.start()
    deadline = time.monotonic() + 10
    while _reads(cluster) == reads:  # the writer has read fence 5; its PATCH is held
        assert time.monotonic() < deadline, "the writer never read the route"
        time.sleep(0.01)
    admin = client.CustomObjectsApi(cluster.world.admin)
    admin.patch_namespaced_custom_object(
        GW[0], GW[1], "default", GW[2], "routes-to-llm",
        [{"op": "add", "path": pointer(FENCE), "value": "9"}],
        _content_type="application/json-patch+json")
    writer.join(timeout=30)
    assert len(outcome) == 1 and isinstance(outcome[0], FenceBehind), outcome
    assert _patches(cluster, "routes-to-llm")[-1] == 422
    route = cluster.get_object(*GW, "routes-to-llm")
    assert route is not None
    assert route["spec"]["rules"][0]["backendRefs"][1]["weight"] == 0


def test_an_invalid_object_is_refused_once_even_on_a_route_named_latest(
    cluster: RealCluster, routes: FencedObjects,
) -> None:
    route = cluster.get_object(*GW, "routes-to-llm")
    assert route is not None
    route["metadata"] = {"name": "latest", "namespace": "default"}
    cluster.put_object({k: v for k, v in route.items() if k != "status"})
    with pytest.raises(ClusterRejected) as refused:  # not a temporary failure
        _write(routes, "latest", _set_weight(2_000_000), fence=1)
    assert _patches(cluster, "latest") == [422]
    assert str(refused.value).startswith(
        "the Kubernetes API refused HTTPRoute default/latest as invalid "
        "(spec.rules[0].backendRefs[1].weight: ")


def test_a_human_edit_between_the_read_and_the_patch_is_never_written_over(
    cluster: RealCluster, routes: FencedObjects,
) -> None:
    """The resourceVersion precondition is the only guard against an edit that lands after
    the bot read the route and before its PATCH: the PATCH gets 409 and the bot decides again
    from a fresh read that shows the edit."""
    admin = client.CustomObjectsApi(cluster.world.admin)
    seen: list[int] = []

    def mutate(obj: dict[str, Any]) -> list[dict[str, Any]]:
        seen.append(obj["spec"]["rules"][0]["backendRefs"][0]["weight"])
        if len(seen) == 1:  # a person edits the stable weight right after the bot's read
            admin.patch_namespaced_custom_object(
                GW[0], GW[1], "default", GW[2], "routes-to-llm",
                [{"op": "replace", "path": "/spec/rules/0/backendRefs/0/weight", "value": 42}],
                _content_type="application/json-patch+json")
            # the gateway's status write after the edit, too, lands before the bot reads again
            wait_until_settled(cluster.world.objects, "default", "routes-to-llm")
        return [{"op": "replace", "path": "/spec/rules/0/backendRefs/1/weight",
                 "value": 100 - seen[-1]}]

    _write(routes, "routes-to-llm", mutate, fence=3)
    # (the gateway's status write for the person's generation may cost one more 409)
    assert seen[:2] == [100, 42] and set(seen[1:]) == {42}, \
        "the write was not decided again from a fresh read"
    statuses = _patches(cluster, "routes-to-llm")[-len(seen):]
    assert statuses == [409] * (len(seen) - 1) + [200]
    route = cluster.get_object(*GW, "routes-to-llm")
    assert route is not None
    refs = route["spec"]["rules"][0]["backendRefs"]
    assert (refs[0]["weight"], refs[1]["weight"]) == (42, 58)

"""Invariant 9: bad input gets a clear answer and changes nothing (cluster and store)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import cast

import pytest

from rollout.domain.errors import (
    Ambiguous,
    Conflict,
    InvalidInput,
    NeedsOperator,
    NotFound,
    Refused,
)
from rollout.domain.plan import build_plan
from rollout.service import Ref
from tests.integration.conftest import ALICE, BOB, World

POOL = "llm-pool-version-2"


def _snapshot(world: World) -> tuple[object, ...]:
    routes = tuple(world.route(n)["metadata"]["resourceVersion"]
                   for n in ("routes-to-llm", "llm-route"))
    keys = tuple(sorted(world.store.client.keys(world.store.key("*"))))
    return routes, keys


def _refused(world: World, call: Callable[[], object], kind: type[Exception], match: str) -> None:
    before = _snapshot(world)
    with pytest.raises(kind, match=match):
        call()
    assert _snapshot(world) == before


def test_unknown_pool(world: World) -> None:
    _refused(world, lambda: world.service.start(namespace="default", canary="llm-pool-v9",
                                                actor=ALICE, plan=build_plan()),
             NotFound, "InferencePool llm-pool-v9 not found")


def test_no_route_references_the_pool(world: World) -> None:
    _refused(world, lambda: world.service.start(namespace="default", canary="llm-new",
                                                actor=ALICE, plan=build_plan()),
             NotFound, "no HTTPRoute in default references InferencePool llm-new.*--route")


def test_named_route_does_not_exist(world: World) -> None:
    _refused(world, lambda: world.service.start(namespace="default", canary="llm-new",
                                                route="nope", actor=ALICE, plan=build_plan()),
             NotFound, "HTTPRoute default/nope not found")


def test_two_routes_reference_the_pool(world: World) -> None:
    twin = copy.deepcopy(world.route())
    twin["metadata"] = {"name": "routes-to-llm-copy", "namespace": "default"}
    twin.pop("status", None)
    world.emulator.put_object(twin)
    _refused(world, lambda: world.service.start(namespace="default", canary=POOL, actor=ALICE,
                                                plan=build_plan()),
             Ambiguous,
             r"\(routes-to-llm rule 0, routes-to-llm-copy rule 0\): pick one with --route")
    out = world.service.start(namespace="default", canary=POOL, route="routes-to-llm-copy",
                              actor=ALICE, plan=build_plan())
    assert out.ok and out.rollout is not None
    assert out.rollout.target.name == "routes-to-llm-copy"


@pytest.mark.parametrize(("steps", "why"), [
    ([], "empty"), ([10, 5, 100], "strictly increase"), ([10, 120], "over 100"),
    ([10, 50], "must be 100"),
])
def test_invalid_steps(world: World, steps: list[int], why: str) -> None:
    _refused(world, lambda: world.service.start(namespace="default", canary=POOL, actor=ALICE,
                                                plan=build_plan(steps)),
             InvalidInput, why)


def test_second_start_on_an_active_target(world: World) -> None:
    world.service.start(namespace="default", canary=POOL, actor=ALICE, plan=build_plan())
    _refused(world, lambda: world.service.start(namespace="default", canary=POOL, actor=BOB,
                                                plan=build_plan()),
             Conflict, "already has an active rollout")


def test_approve_with_nothing_pending(world: World) -> None:
    _refused(world, lambda: world.service.approve(Ref(canary=POOL), actor=BOB),
             NotFound, "no rollout of llm-pool-version-2")
    world.service.start(namespace="default", canary=POOL, actor=ALICE, plan=build_plan())
    world.service.promote(Ref(canary=POOL), actor=BOB)
    _refused(world, lambda: world.service.approve(Ref(canary=POOL), actor=BOB),
             Conflict, "completed: nothing to approve")


def test_self_approval_is_refused(world: World) -> None:
    world.service.start(namespace="default", canary=POOL, actor=ALICE, plan=build_plan())
    _refused(world, lambda: world.service.approve(Ref(canary=POOL), actor=ALICE),
             Refused, "two-person rule")


def test_canary_that_already_has_traffic_is_refused(world: World) -> None:
    route = world.route()
    route["spec"]["rules"][0]["backendRefs"][1]["weight"] = 5
    world.emulator.put_object(route)
    _refused(world, lambda: world.service.start(namespace="default", canary=POOL, actor=ALICE,
                                                plan=build_plan()),
             Conflict, "already receives traffic")


def test_a_marker_without_a_record_is_refused_until_an_operator_decides(world: World) -> None:
    world.service.start(namespace="default", canary=POOL, actor=ALICE, plan=build_plan())
    world.store.client.flushdb()  # Redis lost
    _refused(world, lambda: world.service.start(namespace="default", canary=POOL, actor=ALICE,
                                                plan=build_plan()),
             NeedsOperator, "does not know")


@pytest.mark.parametrize("name", ["llm-pool/status", "LLM-Pool", "llm\npool", "x" * 254])
def test_a_name_kubernetes_would_refuse_is_refused_before_any_request(
    world: World, name: str,
) -> None:
    """`llm-pool/status` would address a subresource and could land in a live route as a
    backendRef: the naming rules are applied before the cluster is asked anything."""
    world.emulator.clear_requests()
    _refused(world, lambda: world.service.start(namespace="default", canary=name,
                                                route="routes-to-llm", actor=ALICE,
                                                plan=build_plan()),
             InvalidInput, "is not a Kubernetes name")
    assert world.emulator.requests == []


def _route_with(world: World, refs: list[tuple[str, int]]) -> None:
    route = copy.deepcopy(world.route())
    route["spec"]["rules"][0]["backendRefs"] = [
        {"group": "inference.networking.k8s.io", "kind": "InferencePool", "name": n, "weight": w}
        for n, w in refs]
    route.pop("status", None)
    world.emulator.put_object(route)


@pytest.mark.parametrize(("refs", "role"), [
    ([("llm-pool", 50), ("llm-pool", 50), (POOL, 0)], "stable llm-pool 2 times"),
    ([("llm-pool", 100), (POOL, 0), (POOL, 0)], f"canary {POOL} 2 times"),
])
def test_a_rule_listing_a_managed_pool_twice_is_refused(
    world: World, refs: list[tuple[str, int]], role: str,
) -> None:
    """With the stable pool listed twice a "10%" step would give the canary 6.7%."""
    _route_with(world, refs)
    _refused(world, lambda: world.service.start(namespace="default", canary=POOL, actor=ALICE,
                                                plan=build_plan()),
             Conflict, f"routes-to-llm rule 0 lists the {role}: merge them")


@pytest.mark.parametrize("refs", [
    [("llm-pool", 50), ("llm-new", 50), (POOL, 0)],
    [("llm-pool", 1), ("llm-new", 1)],
])
def test_a_pair_too_coarse_to_keep_the_other_backends_share_is_refused(
    world: World, refs: list[tuple[str, int]],
) -> None:
    """Written on a total of 100, a pair whose weights sum to 50 would leave llm-new a
    third of the rule at the first step instead of half."""
    _route_with(world, refs)
    factor = 2 if refs[0][1] == 50 else 100
    _refused(world, lambda: world.service.start(namespace="default", canary=POOL, actor=ALICE,
                                                route="routes-to-llm", stable="llm-pool",
                                                plan=build_plan()),
             Conflict, r"routes-to-llm rule 0 also sends traffic to llm-new \(weight "
                       rf"{refs[1][1]}\), .* Multiply every weight in the rule by {factor} ")


def test_a_pair_of_100_or_more_moves_its_weights_and_keeps_the_others_share(
        world: World) -> None:
    _route_with(world, [("llm-pool", 100), ("llm-new", 100), (POOL, 0)])
    world.service.start(namespace="default", canary=POOL, actor=ALICE, stable="llm-pool",
                        plan=build_plan())
    assert world.service.approve(Ref(canary=POOL), actor=BOB).ok
    refs = world.route()["spec"]["rules"][0]["backendRefs"]
    assert [(r["name"], r["weight"]) for r in refs] == [
        ("llm-pool", 90), ("llm-new", 100), (POOL, 10)]


def test_a_second_active_rollout_of_a_pool_on_another_route_is_refused(world: World) -> None:
    """Commands by the pool's name reach its latest rollout: a second one running on another
    rule would leave the first out of reach of `rollback llm-pool-version-2`."""
    twin = copy.deepcopy(world.route())
    twin["metadata"] = {"name": "routes-to-llm-copy", "namespace": "default"}
    twin.pop("status", None)
    world.emulator.put_object(twin)
    first = world.service.start(namespace="default", canary=POOL, route="routes-to-llm",
                                actor=ALICE, plan=build_plan())
    assert first.rollout is not None
    routes, keys = _snapshot(world)
    copy_before = world.route("routes-to-llm-copy")["metadata"]
    with pytest.raises(Conflict, match=rf"{POOL} already has an active rollout "
                                       rf"\({first.rollout.id}\) in default: a pool \(or "
                                       r"adapter\) is rolled out on one rule at a time"):
        world.service.start(namespace="default", canary=POOL, route="routes-to-llm-copy",
                            actor=ALICE, plan=build_plan())
    routes_after, keys_after = _snapshot(world)
    fence = world.store.key("fence", "httproute/default/routes-to-llm-copy")
    assert routes_after == routes  # the routes as they were
    assert world.route("routes-to-llm-copy")["metadata"] == copy_before
    assert set(cast(tuple[str, ...], keys_after)) - {fence} == set(
        cast(tuple[str, ...], keys))  # its lock's fence count only
    assert world.service.rollback(Ref(canary=POOL), actor=BOB).ok  # by name: that one
    again = world.service.start(namespace="default", canary=POOL, route="routes-to-llm-copy",
                                actor=ALICE, plan=build_plan())
    assert again.ok and again.rollout is not None
    assert again.rollout.target.name == "routes-to-llm-copy"

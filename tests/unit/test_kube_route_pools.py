"""Which InferencePool a route rule's backendRef names: a ref into another namespace is not the
bot's to move (its lookups and preflight read the route's namespace), and a canary the bot adds
names the group its pool exists in (a double of the official client: objects by group, plural,
namespace and name)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from rollout.adapters.kube.httproute import HTTPRouteSplit
from rollout.domain.errors import Ambiguous, Conflict, NeedsOperator
from rollout.domain.machine import ApplyStep, Prepare, Restore
from rollout.domain.models import Baseline
from rollout.domain.split import Pair
from tests.unit.builders import started

GA, LEGACY = "inference.networking.k8s.io", "inference.networking.x-k8s.io"
ROUTES = ("gateway.networking.k8s.io", "httproutes", "default", "r")
Obj = dict[str, Any]
Key = tuple[str, str, str, str]


class Objects:
    """Custom objects by (group, plural, namespace, name); no PATCH is expected."""

    def __init__(self, objs: dict[Key, Obj]) -> None:
        self.objs = objs

    def get_namespaced_custom_object(self, group: str, version: str, namespace: str,
                                     plural: str, name: str, **kwargs: Any) -> Obj:
        try:
            return copy.deepcopy(self.objs[(group, plural, namespace, name)])
        except KeyError:
            raise ApiException(status=404, reason="Not Found") from None

    def list_namespaced_custom_object(self, group: str, version: str, namespace: str,
                                      plural: str, **kwargs: Any) -> Obj:
        return {"items": [copy.deepcopy(o) for (g, p, n, _), o in self.objs.items()
                          if (g, p, n) == (group, plural, namespace)]}

    def patch_namespaced_custom_object(self, *args: Any, **kwargs: Any) -> Obj:
        raise AssertionError("nothing is written")


def _route(refs: list[Obj]) -> Obj:
    return {"metadata": {"name": "r", "namespace": "default", "resourceVersion": "5"},
            "spec": {"rules": [{"backendRefs": refs}]}}


def _pool(group: str, name: str, namespace: str = "default") -> dict[Key, Obj]:
    return {(group, "inferencepools", namespace, name): {"metadata": {"name": name}}}


def _ref(name: str, weight: int, group: str = GA, **extra: str) -> Obj:
    return {"group": group, "kind": "InferencePool", "name": name, "weight": weight, **extra}


@pytest.mark.parametrize("foreign", ["canary", "stable"])
def test_a_pool_ref_into_another_namespace_is_refused(foreign: str) -> None:
    """The default/new pool exists too: the bot would check it while the gateway sent the
    canary's traffic to team-b/new."""
    old = _ref("old", 100, **({"namespace": "team-b"} if foreign == "stable" else {}))
    new = _ref("new", 0, **({"namespace": "team-b"} if foreign == "canary" else {}))
    api = Objects({ROUTES: _route([old, new]), **_pool(GA, "old"), **_pool(GA, "new")})
    with pytest.raises(Conflict) as refused:
        HTTPRouteSplit(api).locate(  # type: ignore[arg-type]
            namespace="default", canary="new", target_name=None, stable=None)
    name = "new" if foreign == "canary" else "old"
    assert (f"HTTPRoute default/r rule 0 references InferencePool {name} in namespace "
            "team-b, not the route's (default): a cross-namespace backendRef needs a "
            "ReferenceGrant and is not managed by the bot") in str(refused.value)


def test_a_ref_naming_the_routes_own_namespace_is_the_routes_pool() -> None:
    refs = [_ref("old", 100, namespace="default"), _ref("new", 0)]
    api = Objects({ROUTES: _route(refs), **_pool(GA, "old"), **_pool(GA, "new")})
    located = HTTPRouteSplit(api).locate(  # type: ignore[arg-type]
        namespace="default", canary="new", target_name=None, stable=None)
    assert (located.stable, located.canary) == ("old", "new")


def test_a_managed_ref_moved_into_another_namespace_needs_an_operator() -> None:
    """Mid-rollout, someone points the canary's ref at team-b: no write moves that ref."""
    route = _route([_ref("llm-pool", 75),
                    _ref("llm-pool-version-2", 25, namespace="team-b")])
    with pytest.raises(NeedsOperator, match="in namespace team-b, not the route's"):
        HTTPRouteSplit.observed(route, 0, "llm-pool", "llm-pool-version-2")


def _node_update(stable_group: str) -> tuple[Obj, Any]:
    """A rule with only the stable pool, and a rollout that adds the canary (no baseline
    canary: a node update)."""
    stable = _ref("llm-pool", 100, group=stable_group)
    r = started(baseline=Baseline(stable=stable, canary=None, stable_weight=100,
                                  canary_weight=0))
    return _route([stable]), r


@pytest.mark.parametrize("effect", [Prepare(), ApplyStep(step=0, percent=10)])
def test_a_canary_ref_the_bot_adds_names_the_group_its_pool_is_in(effect: Any) -> None:
    """The stable is in the legacy group, the new pool only in GA: a ref at the stable's
    group would name a pool that does not exist, and the gateway would drop its share."""
    route, r = _node_update(LEGACY)
    api = Objects({ROUTES: route, **_pool(LEGACY, "llm-pool"),
                   **_pool(GA, "llm-pool-version-2")})
    (op,) = HTTPRouteSplit(api).spec_ops(route, r, effect)  # type: ignore[arg-type]
    stable, added = op["value"]
    assert (added["name"], added["group"]) == ("llm-pool-version-2", GA)
    assert (stable["name"], stable["group"]) == ("llm-pool", LEGACY)


def test_a_canary_pool_in_both_groups_takes_the_stables() -> None:
    route, r = _node_update(LEGACY)
    api = Objects({ROUTES: route, **_pool(LEGACY, "llm-pool"), **_pool(GA, "llm-pool-version-2"),
                   **_pool(LEGACY, "llm-pool-version-2")})
    (op,) = HTTPRouteSplit(api).spec_ops(route, r, Prepare())  # type: ignore[arg-type]
    assert op["value"][-1]["group"] == LEGACY


# ---- a rule's 17th backendRef -----------------------------------------------------------------


def _services(n: int) -> list[Obj]:
    return [{"kind": "Service", "name": f"svc-{i}", "port": 8080, "weight": 0} for i in range(n)]


def test_a_canary_that_would_be_the_rules_17th_backend_ref_is_refused_with_what_to_do() -> None:
    """The CRD allows 16 backendRefs per rule: the first write would be refused by the API
    server, after the rollout was recorded."""
    refs = [_ref("old", 100), *_services(15)]
    api = Objects({ROUTES: _route(refs), **_pool(GA, "old"), **_pool(GA, "new")})
    with pytest.raises(Conflict) as refused:
        HTTPRouteSplit(api).locate(  # type: ignore[arg-type]
            namespace="default", canary="new", target_name="r", stable=None)
    assert str(refused.value) == (
        "HTTPRoute default/r rule 0 already has 16 backendRefs, the most a rule may have: "
        "InferencePool new would be its 17th. Remove a backendRef the rule no longer needs "
        "(or put InferencePool new at weight 0 in its place), then start again")


@pytest.mark.parametrize("refs", [
    [_ref("old", 100), *_services(14)],  # the canary is added as the 16th
    [_ref("old", 100), _ref("new", 0), *_services(14)],  # the canary is among the 16
])
def test_a_rule_the_canary_fits_in_is_located(refs: list[Obj]) -> None:
    api = Objects({ROUTES: _route(refs), **_pool(GA, "old"), **_pool(GA, "new")})
    located = HTTPRouteSplit(api).locate(  # type: ignore[arg-type]
        namespace="default", canary="new", target_name="r", stable=None)
    assert (located.stable, located.canary) == ("old", "new")


# ---- one pool name in both API groups (a move from the legacy group to GA) --------------------


@pytest.mark.parametrize("first", [LEGACY, GA])
def test_a_pool_listed_in_both_groups_is_two_entries_and_the_ga_one_is_managed(first: str) -> None:
    """Mid-migration, legacy `llm` and GA `llm` are two pools, not one listed twice: the GA
    entry is the stable (whatever the order), the legacy one another backend of the rule."""
    second = GA if first == LEGACY else LEGACY
    refs = [_ref("llm", 60 if first == GA else 40, group=first),
            _ref("llm", 60 if second == GA else 40, group=second)]
    api = Objects({ROUTES: _route(refs), **_pool(LEGACY, "llm"), **_pool(GA, "llm"),
                   **_pool(GA, "llm-new")})
    located = HTTPRouteSplit(api).locate(  # type: ignore[arg-type]
        namespace="default", canary="llm-new", target_name="r", stable=None)
    assert located.stable == "llm"
    assert located.baseline.stable == _ref("llm", 60, group=GA)
    assert located.others == ((f"llm in group {LEGACY}", 40),)
    assert located.observed.pair.stable == 60


def test_a_pool_listed_twice_in_one_group_is_still_refused() -> None:
    refs = [_ref("llm", 50, group=LEGACY), _ref("llm", 50), _ref("llm", 50)]
    api = Objects({ROUTES: _route(refs), **_pool(LEGACY, "llm"), **_pool(GA, "llm"),
                   **_pool(GA, "llm-new")})
    with pytest.raises(Conflict, match=r"^r rule 0 lists the stable llm 2 times: merge them "):
        HTTPRouteSplit(api).locate(  # type: ignore[arg-type]
            namespace="default", canary="llm-new", target_name="r", stable=None)


def test_a_step_moves_the_ga_entry_and_keeps_the_legacy_one() -> None:
    """Observed, written and rolled back on the same entry, wherever the rule lists it."""
    legacy, ga = _ref("llm", 100, group=LEGACY), _ref("llm", 100)
    r = started(baseline=Baseline(stable=ga, canary=None, stable_weight=100, canary_weight=0))
    r = r.model_copy(update={"stable": "llm", "canary": "llm-new"})
    route = _route([legacy, ga])
    api = Objects({ROUTES: route, **_pool(LEGACY, "llm"), **_pool(GA, "llm"),
                   **_pool(GA, "llm-new")})
    (op,) = HTTPRouteSplit(api).spec_ops(  # type: ignore[arg-type]
        route, r, ApplyStep(step=0, percent=10))
    assert op["value"] == [legacy, _ref("llm", 90), _ref("llm-new", 10)]
    stepped = _route(op["value"])
    assert HTTPRouteSplit.observed(stepped, 0, "llm", "llm-new").pair == Pair(stable=90,
                                                                             canary=10)
    back = HTTPRouteSplit._next_refs(op["value"], r, Restore())
    assert back == [legacy, ga]


# ---- two rules of one route with the same pool --------------------------------------------------


def _rules(*rules: tuple[str, list[Obj]]) -> Obj:
    return {"metadata": {"name": "r", "namespace": "default", "resourceVersion": "5"},
            "spec": {"rules": [
                {"matches": [{"headers": [{"name": "x-tier", "value": tier}]}], "backendRefs": refs}
                for tier, refs in rules]}}


@pytest.mark.parametrize("stable", [None, "llm"])
def test_two_rules_sending_to_the_stable_are_refused_without_a_loop(stable: str | None) -> None:
    """`--stable llm` cannot pick one of two rules that both send to llm: the answer must
    not send the person round to it again."""
    route = _rules(("gold", [_ref("llm", 100)]), ("free", [_ref("llm", 100)]))
    api = Objects({ROUTES: route, **_pool(GA, "llm"), **_pool(GA, "llm-new")})
    with pytest.raises(Ambiguous) as refused:
        HTTPRouteSplit(api).locate(  # type: ignore[arg-type]
            namespace="default", canary="llm-new", target_name="r", stable=stable)
    assert str(refused.value) == (
        "HTTPRoute r has 2 rules sending to InferencePool llm (rule 0: header x-tier: gold; "
        "rule 1: header x-tier: free): a rollout moves the weights of one rule, and no option "
        "picks one of these. Split them into separate HTTPRoutes, or give each rule its own "
        "InferencePool, then start again")


def test_two_rules_with_their_own_pools_are_picked_with_stable() -> None:
    route = _rules(("gold", [_ref("llm-a", 100)]), ("free", [_ref("llm-b", 100)]))
    api = Objects({ROUTES: route, **_pool(GA, "llm-a"), **_pool(GA, "llm-b"),
                   **_pool(GA, "llm-new")})
    split = HTTPRouteSplit(api)  # type: ignore[arg-type]
    with pytest.raises(Ambiguous) as refused:
        split.locate(namespace="default", canary="llm-new", target_name="r", stable=None)
    assert str(refused.value) == (
        "HTTPRoute r has 2 rules with InferencePool backends (rule 0: header x-tier: gold; "
        "rule 1: header x-tier: free): pick the stable pool with --stable (llm-a for rule 0, "
        "llm-b for rule 1)")
    located = split.locate(namespace="default", canary="llm-new", target_name="r",
                           stable="llm-b")
    assert (located.target.rule, located.stable) == (1, "llm-b")


def test_a_canary_in_two_rules_of_one_route_is_refused_without_a_loop() -> None:
    """Not "pick one with --route": both rules are in the route named."""
    both = [_ref("llm", 100), _ref("llm-new", 0)]
    route = _rules(("gold", both), ("free", copy.deepcopy(both)))
    api = Objects({ROUTES: route, **_pool(GA, "llm"), **_pool(GA, "llm-new")})
    for target in (None, "r"):
        with pytest.raises(Ambiguous) as refused:
            HTTPRouteSplit(api).locate(  # type: ignore[arg-type]
                namespace="default", canary="llm-new", target_name=target, stable="llm")
        assert str(refused.value).startswith(
            "HTTPRoute r has 2 rules referencing InferencePool llm-new (rule 0: header x-tier: "
            "gold; rule 1: header x-tier: free): a rollout moves the weights of one rule, and "
            "no option picks one of these.")


def test_a_canary_in_two_rules_with_their_own_stables_is_picked_with_stable() -> None:
    route = _rules(("gold", [_ref("llm-a", 100), _ref("llm-new", 0)]),
                   ("free", [_ref("llm-b", 100), _ref("llm-new", 0)]))
    api = Objects({ROUTES: route, **_pool(GA, "llm-a"), **_pool(GA, "llm-b"),
                   **_pool(GA, "llm-new")})
    split = HTTPRouteSplit(api)  # type: ignore[arg-type]
    with pytest.raises(Ambiguous, match=r"pick the stable pool with --stable \(llm-a for rule "
                                        r"0, llm-b for rule 1\)$"):
        split.locate(namespace="default", canary="llm-new", target_name="r", stable=None)
    located = split.locate(namespace="default", canary="llm-new", target_name=None,
                           stable="llm-a")
    assert (located.target.rule, located.stable) == (0, "llm-a")
    with pytest.raises(Ambiguous, match=r"pick the stable pool with --stable \(llm-a for rule "
                                        r"0, llm-b for rule 1\)$"):  # not in either rule
        split.locate(namespace="default", canary="llm-new", target_name="r", stable="llm-c")


@pytest.mark.parametrize(("matches", "said"), [
    ([], "every request"),
    ([{"path": {"type": "PathPrefix", "value": "/v1"}, "method": "POST"}], "path /v1, method POST"),
    ([{"path": {"type": "PathPrefix", "value": "/"}, "headers": [{"name": "x", "value": "y"}]},
      {"path": {"type": "PathPrefix", "value": "/"}}],  # the API server's default path
     "header x: y or every request"),
    ([{"path": {"type": "Exact", "value": "/chat"}},
      {"queryParams": [{"name": "m", "value": "x", "type": "RegularExpression"}]}],
     "path = /chat or query m ~ x"),
    ([{"headers": [{"name": "a", "value": str(i)}]} for i in range(5)],
     "header a: 0 or header a: 1 or header a: 2 or 2 more"),
])
def test_a_rule_is_described_by_its_matches(matches: list[Obj], said: str) -> None:
    route = {"metadata": {"name": "r", "namespace": "default", "resourceVersion": "5"},
             "spec": {"rules": [{"matches": matches, "backendRefs": [_ref("llm", 1)]},
                                {"backendRefs": [_ref("llm", 1)]}]}}
    api = Objects({ROUTES: route, **_pool(GA, "llm"), **_pool(GA, "llm-new")})
    with pytest.raises(Ambiguous) as refused:
        HTTPRouteSplit(api).locate(  # type: ignore[arg-type]
            namespace="default", canary="llm-new", target_name="r", stable="llm")
    assert f"(rule 0: {said}; rule 1: every request)" in str(refused.value)

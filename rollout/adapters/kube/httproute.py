"""HTTPRoute pool split: node updates and base model updates.

Moves traffic between two InferencePool backendRefs of one HTTPRoute rule. Only the managed
pair's entries change; every other rule, backendRef, field and annotation is written back
exactly as it was read. A pool is known by its API group and name: mid-way through a move
from the legacy group to GA a rule may list `llm` in both, as two backends.
"""

from __future__ import annotations

import copy
import difflib
from typing import Any, NoReturn

from kubernetes.client import CustomObjectsApi

from rollout.adapters.kube.fenced import FencedObjects, Kind, Listing, Obj
from rollout.adapters.kube.markers import (
    decode_marker,
    decode_record,
)
from rollout.adapters.kube.writes import (
    baseline_of,
    fingerprint,
    last_writer,
    recorded_rule,
    rule_entries,
)
from rollout.domain import patch
from rollout.domain.errors import Ambiguous, ClusterUnavailable, Conflict, NeedsOperator, NotFound
from rollout.domain.gates import gateway_problem
from rollout.domain.machine import ApplyStep, Effect, Prepare, Restore, Retire
from rollout.domain.models import Rollout, Target, TargetKind
from rollout.domain.patch import Ops
from rollout.domain.split import (
    MarkerState,
    Observed,
    Pair,
    expected_pair,
    require_single_entries,
)
from rollout.ports import Located, Marked

HTTPROUTE = Kind("gateway.networking.k8s.io", "v1", "httproutes", "HTTPRoute")
POOL_KINDS = (
    Kind("inference.networking.k8s.io", "v1", "inferencepools", "InferencePool"),
    Kind("inference.networking.x-k8s.io", "v1alpha2", "inferencepools", "InferencePool"),
)
POOL_GROUPS = frozenset(k.group for k in POOL_KINDS)
#: which of a rule's two entries for one pool name the bot manages, where the rule lists the
#: name in both groups: the GA one first
GROUP_RANK = {kind.group: rank for rank, kind in enumerate(POOL_KINDS)}
DEFAULT_WEIGHT = 1
#: spec.rules[].backendRefs maxItems in the HTTPRoute CRD: a write of a 17th is refused (422)
MAX_BACKEND_REFS = 16
#: how many of a rule's matches a refusal that lists rules describes
MAX_MATCHES_SAID = 3


def is_pool_ref(ref: dict[str, Any], name: str | None = None) -> bool:
    return (
        ref.get("kind") == "InferencePool"
        and ref.get("group") in POOL_GROUPS
        and (name is None or ref.get("name") == name)
    )


def foreign(ref: dict[str, Any], namespace: str | None) -> bool:
    """Whether a backendRef points into another namespace than its route's: the bot's
    lookups, preflight and rollback read the route's namespace, while the gateway would send
    that ref's traffic elsewhere (and only with a ReferenceGrant the bot does not manage)."""
    return ref.get("namespace") not in (None, namespace)


def refuse_foreign(refs: list[dict[str, Any]], pools: tuple[str, ...], *,
                   namespace: str | None, where: str, error: type[Exception]) -> None:
    """A managed pool's ref that points into another namespace is not the bot's to move."""
    for ref in refs:
        if is_pool_ref(ref) and ref.get("name") in pools and foreign(ref, namespace):
            raise error(
                f"{where} references InferencePool {ref['name']} in namespace "
                f"{ref['namespace']}, not the route's ({namespace}): a cross-namespace "
                "backendRef needs a ReferenceGrant and is not managed by the bot; point "
                "the rule at a pool in its own namespace, or move the rollout there"
            )


def pool_hint(name: str, pools: list[str], namespace: str) -> str:
    """What to say after `pool not found`: the closest name, then every pool there is."""
    if not pools:
        return f"; there are no InferencePools in namespace {namespace}"
    close = difflib.get_close_matches(name, pools, n=1, cutoff=0.6)
    guess = f"; did you mean {close[0]}?" if close else ""
    return f"{guess} (InferencePools in {namespace}: {', '.join(pools)})"


def weight_of(ref: dict[str, Any]) -> int:
    weight = ref.get("weight", DEFAULT_WEIGHT)
    return int(weight) if isinstance(weight, int) else DEFAULT_WEIGHT


def _refs(route: Obj, rule: int) -> list[dict[str, Any]]:
    return rule_entries(route, rule, "backendRefs") or []


def _index(refs: list[dict[str, Any]], pool: str) -> int | None:
    """The rule's entry for InferencePool `pool`: the ref that names it; where the rule names
    it in both groups (a move from the legacy group to GA under way), the GA one, and the
    other is another backend of the rule. Never by position: a reordered rule keeps it."""
    found = [i for i, ref in enumerate(refs) if is_pool_ref(ref, pool)]
    return min(found, key=lambda i: GROUP_RANK[str(refs[i]["group"])]) if found else None


def _key(ref: dict[str, Any]) -> tuple[str, str]:
    """What tells pools apart: their group and name."""
    return str(ref.get("group")), str(ref.get("name"))


def _shown(ref: dict[str, Any], refs: list[dict[str, Any]]) -> str:
    """A backend's name as a refusal says it: with its group where the rule lists that name
    in the other group too."""
    name = str(ref.get("name"))
    twin = is_pool_ref(ref) and any(is_pool_ref(r, name) and _key(r) != _key(ref) for r in refs)
    return f"{name} in group {ref['group']}" if twin else name


def _pools(rule: dict[str, Any], *, but: str) -> list[str]:
    """The names of a rule's InferencePool backends but `but`, each once, in order."""
    return list(dict.fromkeys(str(ref.get("name")) for ref in rule.get("backendRefs") or []
                              if is_pool_ref(ref) and ref.get("name") != but))


def _rule_said(rule: dict[str, Any], index: int) -> str:
    """`rule 1: header x-tier: gold`: a rule by its index (and name), and what it matches."""
    label = f"rule {index}" + (f" ({rule['name']})" if rule.get("name") else "")
    matches = [_match_said(m) for m in rule.get("matches") or [] if isinstance(m, dict)]
    if not matches:
        return f"{label}: every request"
    more = len(matches) - MAX_MATCHES_SAID
    return f"{label}: " + " or ".join(matches[:MAX_MATCHES_SAID]
                                      + ([f"{more} more"] if more > 0 else []))


def _match_said(match: dict[str, Any]) -> str:
    """One HTTPRouteMatch, briefly (`path = /chat, header x-tier: gold`). The path prefix `/`
    the API server fills in for a match that names none matches everything: not said."""
    parts = []
    path = match.get("path") or {}
    kind = path.get("type", "PathPrefix")
    if path.get("value") not in (None, "/") or kind != "PathPrefix":
        op = {"PathPrefix": " ", "Exact": " = "}.get(kind, " ~ ")
        parts.append(f"path{op}{path.get('value', '/')}")
    for header in match.get("headers") or []:
        op = ": " if header.get("type", "Exact") == "Exact" else " ~ "
        parts.append(f"header {header.get('name')}{op}{header.get('value')}")
    for query in match.get("queryParams") or []:
        op = "=" if query.get("type", "Exact") == "Exact" else " ~ "
        parts.append(f"query {query.get('name')}{op}{query.get('value')}")
    if match.get("method"):
        parts.append(f"method {match['method']}")
    return ", ".join(parts) or "every request"


class HTTPRouteSplit:
    """The KindSplit of HTTPRoutes: the backendRefs weights of one rule."""

    def __init__(self, api: CustomObjectsApi, *, timeout: tuple[float, float] = (3.0, 5.0),
                 cache: Listing | None = None) -> None:
        self.routes = FencedObjects(api, HTTPROUTE, timeout=timeout, cache=cache)
        self.pools = [FencedObjects(api, kind, timeout=timeout) for kind in POOL_KINDS]

    # -- locate --------------------------------------------------------------------------

    def locate(
        self, *, namespace: str, canary: str, target_name: str | None, stable: str | None
    ) -> Located:
        self._require_pool(namespace, canary)
        route, rule = self._find_rule(namespace, canary, target_name, stable,
                                      self.routes.list(namespace))
        # the listing may come from the watch cache, behind a write another replica just
        # made: the baseline is taken from a fresh read of the route found (which the first
        # write then starts from), and the rule found again on it when it moved
        fresh = self.routes.get(namespace, route["metadata"]["name"])
        if fresh["metadata"].get("resourceVersion") != route["metadata"].get("resourceVersion"):
            route, rule = self._find_rule(namespace, canary, route["metadata"]["name"], stable,
                                          [fresh])
        route = fresh
        refs = _refs(route, rule)
        stable_name = self._pick_stable(route, rule, refs, canary, stable)
        if stable_name == canary:
            raise Conflict(f"the stable and the canary pool are both {canary}")
        where = f"HTTPRoute {namespace}/{route['metadata']['name']} rule {rule}"
        refuse_foreign(refs, (stable_name, canary), namespace=namespace, where=where,
                       error=Conflict)
        managed = (_index(refs, stable_name), _index(refs, canary))
        keys = {_key(refs[i]) for i in managed if i is not None}
        require_single_entries([str(r.get("name")) for r in refs
                                if is_pool_ref(r) and _key(r) in keys],
                               stable=stable_name, canary=canary,
                               where=f"{route['metadata']['name']} rule {rule}")
        if managed[1] is None and len(refs) >= MAX_BACKEND_REFS:
            raise Conflict(
                f"{where} already has {len(refs)} backendRefs, the most a rule may have: "
                f"InferencePool {canary} would be its {MAX_BACKEND_REFS + 1}th. Remove a "
                "backendRef the rule no longer needs (or put InferencePool "
                f"{canary} at weight 0 in its place), then start again")
        self._require_pool(namespace, stable_name)
        baseline = baseline_of(refs, *managed, weight_of)
        target = Target(kind=TargetKind.ROUTE, namespace=namespace,
                        name=route["metadata"]["name"], rule=rule,
                        fingerprint=fingerprint(route, rule))
        return Located(target=target, stable=stable_name, canary=canary, baseline=baseline,
                       observed=self.observed(route, rule, stable_name, canary),
                       others=tuple((_shown(r, refs), weight_of(r))  # absent weight: 1
                                    for i, r in enumerate(refs) if i not in managed))

    def _find_rule(self, namespace: str, canary: str, target_name: str | None,
                   stable: str | None, routes: list[Obj]) -> tuple[Obj, int]:
        """The route rule that references the canary, else (a node update) the one of the
        named route with the stable pool."""
        matches = [
            (route, i)
            for route in routes
            if target_name in (None, route["metadata"]["name"])
            for i, rule in enumerate(route.get("spec", {}).get("rules") or [])
            if any(is_pool_ref(ref, canary) for ref in rule.get("backendRefs") or [])
        ]
        if stable is not None and len(matches) > 1:  # --stable picks among them where it can
            matches = [(r, i) for r, i in matches
                       if stable in _pools(r["spec"]["rules"][i], but=canary)] or matches
        if len({r["metadata"]["name"] for r, _ in matches}) > 1:
            listed = ", ".join(f"{r['metadata']['name']} rule {i}" for r, i in matches)
            raise Ambiguous(
                f"InferencePool {canary} is referenced by more than one route rule ({listed}): "
                "pick one with --route"
            )
        if len(matches) > 1:  # rules of one route: --route cannot pick
            self._refuse_rules(matches[0][0], [i for _, i in matches], canary=canary,
                               stable=stable, referenced=canary)
        if matches:
            return matches[0]
        return self._rule_for_new_canary(namespace, canary, target_name, stable, routes)

    def _require_pool(self, namespace: str, pool: str) -> None:
        for api in self.pools:
            try:
                api.get(namespace, pool)
                return
            except NotFound:
                continue
        raise NotFound(f"InferencePool {pool} not found in namespace {namespace}"
                       + self._pools_hint(namespace, pool))

    def _pools_hint(self, namespace: str, pool: str) -> str:
        """`; did you mean llm-pool-version-2? pools in default: ...`, for a mistyped name."""
        names: set[str] = set()
        listed = False
        for api in self.pools:  # every group: a cluster may serve pools in either
            try:
                names.update(p["metadata"]["name"] for p in api.list(namespace))
                listed = True
            except (NotFound, ClusterUnavailable):  # not served here, or not allowed
                continue
        return pool_hint(pool, sorted(names), namespace) if listed else ""

    def _rule_for_new_canary(
        self, namespace: str, canary: str, target_name: str | None, stable: str | None,
        routes: list[Obj],
    ) -> tuple[Obj, int]:
        """Node update: the canary is not referenced yet, so --route names where it goes."""
        if target_name is None:
            raise NotFound(
                f"no HTTPRoute in {namespace} references InferencePool {canary}; to add it "
                "next to the current pool (a node update), name the route with --route"
            )
        route = next((r for r in routes if r["metadata"]["name"] == target_name), None)
        if route is None:
            raise NotFound(f"HTTPRoute {namespace}/{target_name} not found")
        rules = [
            i for i, rule in enumerate(route.get("spec", {}).get("rules") or [])
            if any(is_pool_ref(ref, stable) for ref in rule.get("backendRefs") or [])
        ]
        if not rules:
            which = f"InferencePool {stable}" if stable else "an InferencePool backendRef"
            raise NotFound(f"HTTPRoute {target_name} has no rule with {which}")
        if len(rules) > 1:
            self._refuse_rules(route, rules, canary=canary, stable=stable)
        return route, rules[0]

    @staticmethod
    def _refuse_rules(route: Obj, rules: list[int], *, canary: str, stable: str | None,
                      referenced: str | None = None) -> NoReturn:
        """Several rules of one route fit: say which, and, where --stable tells them apart
        (a pool that only one of them sends to) and was not given, or named none of their
        pools, how to pick one; else that no option does, and what to change (a rollout moves
        one rule, and --stable and --route both name what these rules share)."""
        name = route["metadata"]["name"]
        spec_rules = route["spec"]["rules"]
        listed = "; ".join(_rule_said(spec_rules[i], i) for i in rules)
        pools = {i: _pools(spec_rules[i], but=canary) for i in rules}
        picks = [f"{own[0]} for rule {i}" for i in rules
                 if (own := [p for p in pools[i]
                             if not any(p in pools[j] for j in rules if j != i)])]
        if stable is not None and not any(stable in pools[i] for i in rules):
            stable = None  # a pool of none of them: what would pick one is the answer
        if stable is None and picks:
            raise Ambiguous(
                f"HTTPRoute {name} has {len(rules)} rules with InferencePool backends "
                f"({listed}): pick the stable pool with --stable ({', '.join(picks)})")
        shared = [stable] if stable is not None else \
            [p for p in pools[rules[0]] if all(p in pools[j] for j in rules)]
        what = (f"referencing InferencePool {referenced}" if referenced is not None else
                f"sending to InferencePool {shared[0]}" if len(shared) == 1 else
                f"sending to InferencePools {', '.join(shared)}" if shared else
                "with InferencePool backends")
        raise Ambiguous(
            f"HTTPRoute {name} has {len(rules)} rules {what} ({listed}): a rollout moves the "
            "weights of one rule, and no option picks one of these. Split them into separate "
            "HTTPRoutes, or give each rule its own InferencePool, then start again")

    @staticmethod
    def _pick_stable(
        route: Obj, rule: int, refs: list[dict[str, Any]], canary: str, stable: str | None
    ) -> str:
        others = [str(r["name"]) for r in refs if is_pool_ref(r) and r.get("name") != canary]
        name = route["metadata"]["name"]
        if stable is not None:
            if stable not in others:
                raise NotFound(f"InferencePool {stable} is not a backend of {name} rule {rule}")
            return stable
        if not others:
            raise NotFound(f"{name} rule {rule} has no other InferencePool to shift from")
        if len(set(others)) > 1:
            raise Ambiguous(
                f"{name} rule {rule} has several other pools "
                f"({', '.join(dict.fromkeys(others))}): pick the stable one with --stable"
            )
        return others[0]

    # -- markers (for an emptied Redis) ----------------------------------------------------

    def find_marked(self, *, namespace: str, canary: str) -> list[Marked]:
        """Rules that reference `canary` and carry the bot's marker."""
        found = []
        for route in self.routes.list(namespace):
            annotations = route["metadata"].get("annotations") or {}
            for i, rule in enumerate(route.get("spec", {}).get("rules") or []):
                if not any(is_pool_ref(ref, canary) for ref in rule.get("backendRefs") or []):
                    continue
                marker = decode_marker(annotations, i)
                if marker is None:
                    continue
                record = decode_record(annotations, i)
                target = Target(kind=TargetKind.ROUTE, namespace=namespace,
                                name=route["metadata"]["name"], rule=i,
                                fingerprint=recorded_rule(record, route, i))
                found.append(Marked(target=target, marker=marker, record=record))
        return found

    # -- what the router reads and writes -------------------------------------------------

    def objects(self, target: Target) -> FencedObjects:
        return self.routes

    @staticmethod
    def observed(route: Obj, rule: int, stable: str, canary: str) -> Observed:
        refs = _refs(route, rule)
        stable_i, canary_i = _index(refs, stable), _index(refs, canary)
        name = route["metadata"]["name"]
        annotations = route["metadata"].get("annotations") or {}
        marker = decode_marker(annotations, rule)
        retired = marker is not None and marker.state is MarkerState.RETIRED
        if stable_i is None and not retired:
            raise NeedsOperator(
                f"{name} rule {rule} no longer references the stable pool {stable}; "
                "the route was restructured outside the bot"
            )
        refuse_foreign(refs, (stable, canary), namespace=route["metadata"].get("namespace"),
                       where=f"{name} rule {rule}", error=NeedsOperator)
        pair = Pair(
            stable=0 if stable_i is None else weight_of(refs[stable_i]),
            canary=None if canary_i is None else weight_of(refs[canary_i]),
        )
        return Observed(pair=pair, marker=marker,
                        resource_version=str(route["metadata"].get("resourceVersion", "")),
                        problem=gateway_problem(route),
                        writer=last_writer(route, kind="HTTPRoute", group=HTTPROUTE.group))

    def spec_ops(self, route: Obj, rollout: Rollout, effect: Effect) -> Ops:
        rule = rollout.target.rule
        refs = _refs(route, rule)
        group = self._added_group(refs, rollout, effect)
        refs = HTTPRouteSplit._next_refs(refs, rollout, effect, canary_group=group)
        return [patch.replace(f"/spec/rules/{rule}/backendRefs", refs)]

    def _added_group(self, refs: list[dict[str, Any]], rollout: Rollout,
                     effect: Effect) -> str | None:
        """The group of the canary backendRef this write adds (None when it adds none): the
        group its pool exists in. The stable's group is not always it: a node update can move
        from the legacy group to GA, and a ref in a group without the pool resolves to
        nothing at the gateway."""
        if isinstance(effect, Restore | Retire) or _index(refs, rollout.canary) is not None:
            return None
        stable = str(rollout.baseline.stable.get("group") or POOL_KINDS[0].group)
        return self._pool_group(rollout.target.namespace, rollout.canary, prefer=stable)

    def _pool_group(self, namespace: str, pool: str, *, prefer: str) -> str:
        """The group `pool` exists in, `prefer` first; `prefer` when no group has it (the
        preflight refuses a start on a missing pool)."""
        for objects in sorted(self.pools, key=lambda o: o.kind.group != prefer):
            try:
                objects.glance(namespace, pool)
            except NotFound:
                continue
            return objects.kind.group
        return prefer

    @staticmethod
    def pair_after(rollout: Rollout, effect: Effect) -> Pair:
        if isinstance(effect, Restore):
            base = rollout.baseline
            return Pair(stable=base.stable_weight,
                        canary=None if base.canary is None else base.canary_weight)
        if isinstance(effect, Prepare):
            return expected_pair(rollout, -1)
        if isinstance(effect, Retire):
            return Pair(stable=0, canary=expected_pair(rollout).canary)
        return expected_pair(rollout, effect.step)

    @staticmethod
    def _next_refs(
        refs: list[dict[str, Any]], rollout: Rollout, effect: Effect, *,
        canary_group: str | None = None,
    ) -> list[dict[str, Any]]:
        refs = copy.deepcopy(refs)
        stable_i, canary_i = _index(refs, rollout.stable), _index(refs, rollout.canary)
        assert stable_i is not None
        base = rollout.baseline
        if isinstance(effect, Retire):
            del refs[stable_i]
            return refs
        if isinstance(effect, Restore):
            refs[stable_i] = copy.deepcopy(base.stable)
            if base.canary is None:
                if canary_i is not None:
                    del refs[canary_i]
            elif canary_i is not None:
                refs[canary_i] = copy.deepcopy(base.canary)
            else:
                refs.append(copy.deepcopy(base.canary))
            return refs
        if canary_i is None:
            group = canary_group or base.stable.get("group", POOL_KINDS[0].group)
            added = {"group": group, "kind": "InferencePool", "name": rollout.canary,
                     "weight": 0}
            # the stable's filters (a header set, a URL rewrite) apply to the canary's share
            # too: without them the two pools would not serve alike
            if refs[stable_i].get("filters"):
                added["filters"] = copy.deepcopy(refs[stable_i]["filters"])
            refs.append(added)
            canary_i = len(refs) - 1
        if isinstance(effect, ApplyStep):
            pair = expected_pair(rollout, effect.step)
            refs[stable_i]["weight"] = pair.stable
            refs[canary_i]["weight"] = pair.canary
        return refs


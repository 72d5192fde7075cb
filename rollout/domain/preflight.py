"""Preflight gates: refuse a rollout that cannot go well, before it starts or steps.

Each check is a pure function of `ClusterFacts` returning findings: what is wrong and what
to do about it, one item each. `preflight` gathers them into a verdict: REFUSE (at start:
nothing changes), WAIT (a step that would overload the canary waits and says why), or
PROCEED. Where a rule follows the endpoint picker, the docstring names the upstream code.
"""

from __future__ import annotations

from dataclasses import dataclass

from rollout.domain.facts import (
    LEGACY_GROUP,
    POOL_GROUP,
    POOL_VERSIONS,
    ClusterFacts,
    ObjectiveFacts,
    PodFacts,
    PoolFacts,
    RewriteFacts,
    RewriteRule,
)
from rollout.domain.findings import Check, Finding, Outcome, Verdict
from rollout.domain.gitops import BOT_MANAGER, check_gitops
from rollout.domain.wording import counted


@dataclass(frozen=True, kw_only=True)
class CapacityPolicy:
    """How many Ready endpoints the canary needs.

    `minimum`: at any time. `headroom_percent`: before a step to share s%, the canary needs
    ceil(s% x stable's Ready endpoints x (100 + headroom)%): the stable pool is sized for all
    of the traffic, so the canary needs its proportional part of that, plus a margin.
    `rollback_percent`: before each step the stable pool keeps at least this share of the
    Ready endpoints it had at start, so that a rollback can still put all traffic back.
    """

    minimum: int = 1
    headroom_percent: int = 0
    rollback_percent: int = 100


def _qualified(group: str) -> str:
    return f"{group}/{POOL_VERSIONS.get(group, '?')}"


# ---- 1. the pool ------------------------------------------------------------------------


@dataclass(frozen=True)
class PoolReferrer:
    """What names the pool, as a refusal tells it: who refers to which group, through
    which field a person changes, and what a wrong group does."""

    who: str
    field: str
    consequence: str


#: a route's backendRef: the gateway resolves it
ROUTE_REFERRER = PoolReferrer(who="the route", field="the route's backendRef",
                              consequence="the gateway would not resolve it")


def rewrite_referrer(rewrite: str) -> PoolReferrer:
    """A rewrite's poolRef: the endpoint picker takes a rewrite only for its own pool."""
    return PoolReferrer(who=f"InferenceModelRewrite {rewrite}",
                        field=f"InferenceModelRewrite {rewrite}'s spec.poolRef",
                        consequence="the endpoint picker would ignore the rewrite")


def check_pool(facts: ClusterFacts, *, name: str, group: str = POOL_GROUP,
               gateways: tuple[str, ...] = (),
               referrer: PoolReferrer = ROUTE_REFERRER) -> tuple[Finding, ...]:
    """The pool (the canary; the stable one too, for a rollback) exists in the group the
    route (or the rewrite) refers to, is not being deleted, is Accepted where a gateway
    wrote status for it, and its endpoint picker Service exists."""
    pool = facts.pool(name, group)
    if pool is None:
        return (_missing_pool(facts, name=name, group=group, referrer=referrer),)
    found: list[Finding] = []
    if pool.deleting:
        found.append(Finding(
            check=Check.POOL, problem=f"InferencePool {name} is being deleted",
            remedy="Wait until it is gone and create it again: a deleted object cannot be "
                   "kept, and traffic moved onto it would be lost with it"))
    found += _gateway_status(pool, gateways)
    found += _picker(facts, pool)
    return tuple(found)


def _missing_pool(facts: ClusterFacts, *, name: str, group: str,
                  referrer: PoolReferrer) -> Finding:
    elsewhere = [p for p in facts.pools_named(name) if p.group != group]
    if elsewhere:
        other = elsewhere[0].group
        return Finding(
            check=Check.POOL,
            problem=f"InferencePool {name} exists only as {_qualified(other)}, but "
                    f"{referrer.who} refers to group {group}: {referrer.consequence}",
            remedy=(f"Create {name} as {_qualified(group)} (the GA API), or point "
                    f"{referrer.field} at group {other}" if other == LEGACY_GROUP else
                    f"Point {referrer.field} at group {other}"))
    if group not in facts.served_pool_groups:
        return Finding(
            check=Check.POOL,
            problem=f"the cluster does not serve InferencePool in group {group}",
            remedy=f"Install the {_qualified(group)} InferencePool CRD, or use the group the "
                   f"cluster serves ({', '.join(sorted(facts.served_pool_groups)) or 'none'})")
    known = sorted(p.name for p in facts.pools if p.group == group)
    return Finding(
        check=Check.POOL,
        problem=f"InferencePool {name} not found in namespace {facts.namespace}",
        remedy="Create it first (same model configuration as the stable pool)"
               + (f"; pools there: {', '.join(known)}" if known else ""))


def _gateway_status(pool: PoolFacts, gateways: tuple[str, ...]) -> list[Finding]:
    found: list[Finding] = []
    for parent in pool.parents:
        if parent.kind == "Status":
            continue  # the CRD's placeholder (`kind: Status, name: default`): no gateway yet
        if gateways and parent.name not in gateways:
            continue
        for kind in ("Accepted", "ResolvedRefs"):
            cond = parent.condition(kind)
            if cond is None or cond.status == "True":
                continue
            if (pool.generation is not None and cond.observed_generation is not None
                    and cond.observed_generation != pool.generation):
                continue  # about an older spec: says nothing yet
            detail = f" ({cond.reason}{': ' + cond.message if cond.message else ''})" \
                if cond.reason else ""
            found.append(Finding(
                check=Check.POOL,
                problem=f"gateway {parent.name} reports {kind}={cond.status} for InferencePool "
                        f"{pool.name}{detail}",
                remedy="Fix what the gateway reports on the pool's status.parents, then start "
                       "again"))
    return found


def _picker(facts: ClusterFacts, pool: PoolFacts) -> list[Finding]:
    ref = pool.picker
    if ref is None:
        return [Finding(check=Check.POOL,
                        problem=f"InferencePool {pool.name} names no endpoint picker",
                        remedy="Set spec.endpointPickerRef to the pool's endpoint picker "
                               "Service")]
    if ref.kind != "Service" or ref.group != "":
        return []  # not a Service: nothing the bot can look up
    if ref.name in facts.services:
        return []
    return [Finding(
        check=Check.POOL,
        problem=f"the endpoint picker Service {ref.name} of InferencePool {pool.name} does "
                f"not exist",
        remedy="Deploy the pool's endpoint picker (its Service and Deployment) before moving "
               "traffic; without it the gateway cannot route to the pool")]


# ---- 2. objectives ------------------------------------------------------------------------


def objectives_of(facts: ClusterFacts, pool: PoolFacts) -> tuple[ObjectiveFacts, ...]:
    """The objectives the pool's endpoint picker loads: its `poolRef` names the pool, in the
    pool's group (llm-d-router pkg/epp/controller/inferenceobjective_reconciler.go,
    eventPredicate), and the object is not being deleted."""
    return tuple(o for o in facts.objectives
                 if o.pool == pool.name and o.pool_group == pool.group and not o.deleting)


def _objective_key(objective: ObjectiveFacts) -> str:
    """Objective names are unique in a namespace, so each pool carries its own copy; a copy
    named `<pool>-<suffix>` is compared by its suffix, any other name whole."""
    prefix = f"{objective.pool}-"
    return objective.name.removeprefix(prefix) if objective.name.startswith(prefix) \
        else objective.name


def check_objectives(facts: ClusterFacts, *, stable: PoolFacts,
                     canary: PoolFacts) -> tuple[Finding, ...]:
    """The canary has the same objectives (name and priority) as the stable pool, read from
    the group the endpoint picker reads; every difference is listed."""
    if facts.objective_group is None:
        return ()  # no InferenceObjective served at all: both pools run without objectives
    old = {_objective_key(o): o for o in objectives_of(facts, stable)}
    new = {_objective_key(o): o for o in objectives_of(facts, canary)}
    differences: list[str] = []
    for key in sorted(old.keys() - new.keys()):
        differences.append(f"missing on {canary.name}: {key} (priority {old[key].priority}, "
                           f"as {old[key].name} on {stable.name})")
    for key in sorted(new.keys() - old.keys()):
        differences.append(f"only on {canary.name}: {new[key].name} "
                           f"(priority {new[key].priority})")
    for key in sorted(old.keys() & new.keys()):
        if old[key].priority != new[key].priority:
            differences.append(f"{key}: priority {new[key].priority} on {canary.name}, "
                               f"{old[key].priority} on {stable.name}")
    if not differences:
        return ()
    return (Finding(
        check=Check.OBJECTIVES,
        problem=f"InferenceObjectives ({facts.objective_group}) differ between {stable.name} "
                f"and {canary.name}: " + "; ".join(differences),
        remedy=f"Give {canary.name} the same objectives (name and priority) as {stable.name} "
               f"so both pools serve alike"),)


# ---- 3. capacity ----------------------------------------------------------------------------


def _serves(pod: PodFacts, pool: PoolFacts) -> frozenset[int]:
    """The target ports a pod takes traffic on, as the endpoint picker counts them: Ready,
    matching the selector, with an address, not terminating; one endpoint per target port,
    narrowed by the pod's active-ports annotation (llm-d-router pkg/epp/datastore/
    datastore.go, podResyncAll and extractActivePorts). Container ports are not read, as
    the picker does not read them: llm-d's routing proxy serves the target port from a
    sidecar in `initContainers`, and a pod need not declare a port it listens on."""
    if not pod.ready or pod.deleting or not pod.ip:
        return frozenset()
    if not pool.selector or any(pod.labels.get(k) != v for k, v in pool.selector.items()):
        return frozenset()
    ports = frozenset(pool.target_ports)
    if pod.active_ports is not None:
        ports &= pod.active_ports
    return ports


def ready_endpoints(facts: ClusterFacts, pool: PoolFacts) -> int:
    return sum(len(_serves(pod, pool)) for pod in facts.selectable(pool.selector))


def required_endpoints(*, share_percent: int, stable_ready: int, policy: CapacityPolicy) -> int:
    need = share_percent * stable_ready * (100 + policy.headroom_percent)
    proportional = -(-need // 10_000)  # ceiling, in integers
    return max(policy.minimum, proportional)


def check_capacity(facts: ClusterFacts, *, stable: PoolFacts, canary: PoolFacts,
                   share_percent: int | None, policy: CapacityPolicy) -> tuple[Finding, ...]:
    """The canary's Ready endpoints reach the minimum and, before a step to `share_percent`,
    its share of the stable pool's. Pods become Ready on their own: the answer is to wait."""
    have = ready_endpoints(facts, canary)
    if share_percent is None:
        need, why = policy.minimum, f"at least {policy.minimum} are required"
    else:
        stable_ready = ready_endpoints(facts, stable)
        need = required_endpoints(share_percent=share_percent, stable_ready=stable_ready,
                                  policy=policy)
        why = (f"{share_percent}% of the traffic {stable.name} serves with {stable_ready} "
               f"needs {need}" + (f" (with {policy.headroom_percent}% headroom)"
                                  if policy.headroom_percent else "")
               + (f"; the minimum is {policy.minimum}" if need == policy.minimum else ""))
    if have >= need:
        return ()
    return (Finding(
        check=Check.CAPACITY, outcome=Outcome.WAIT,
        problem=f"{canary.name} has {counted(have, 'Ready endpoint')}: {why}",
        remedy=f"Scale {canary.name}'s model servers up (or wait for them to become Ready); "
               f"the step goes ahead once {need} are Ready"),)


def check_rollback(facts: ClusterFacts, *, stable: str, group: str, had: int,
                   policy: CapacityPolicy) -> tuple[Finding, ...]:
    """The stable pool can still take all traffic back: the pool checks pointed at it (the
    route's own gateways' status only, as for the canary), and its Ready endpoints at least
    `rollback_percent` of the `had` it had at start."""
    gateways = facts.route.gateways if facts.route is not None else ()
    found = [Finding(check=Check.ROLLBACK, problem=f.problem,
                     remedy=f"Make {stable} whole again (it takes all the traffic back on a "
                            "rollback), then resume; a rollback asked for now still goes "
                            "ahead")
             for f in check_pool(facts, name=stable, group=group, gateways=gateways)]
    pool = facts.pool(stable, group)
    if pool is None:
        return tuple(found)
    have = ready_endpoints(facts, pool)
    need = -(-had * policy.rollback_percent // 100)
    if have < need:
        found.append(Finding(
            check=Check.ROLLBACK,
            problem=f"{stable}: {have} of {had} Ready endpoints; a rollback now would overload "
                    f"it" + (f" (it needs {need}, {policy.rollback_percent}% of what it had at "
                             f"start)" if need != had else ""),
            remedy=f"Scale {stable}'s model servers back up (or wait for them to become "
                   f"Ready), then resume; a rollback asked for now still goes ahead"))
    return tuple(found)


# ---- 4. the adapter rewrite -------------------------------------------------------------


def check_rewrite(facts: ClusterFacts, *, rewrite: str, rule: int,
                  group: str = "") -> tuple[Finding, ...]:
    """Rule `rule` of `rewrite` is the one the endpoint picker applies to its models.

    Within a pool, an exact match beats a catch-all rule (one without matches), and among
    rules of the same kind the rewrite created first wins: a younger rewrite for the same
    model is silently ignored (llm-d-router / gateway-api-inference-extension
    pkg/epp/datastore, the model rewrite store's getRule, rules sorted by creation time).
    Creation times have a one-second grain and the picker's sort is not stable: rules created
    in the same second (two rules of one rewrite, or two rewrites) have no defined order, so
    the bot's rule must be the only one for its models in that second too.
    """
    ours = facts.rewrite(rewrite)
    if ours is None and group and facts.rewrite_group and group != facts.rewrite_group:
        return (Finding(check=Check.REWRITE,
                        problem=f"InferenceModelRewrite {rewrite} is in group {group}, but the "
                                f"cluster serves {facts.rewrite_group}, the group the endpoint "
                                f"picker reads: it ignores {rewrite}, so its weights move no "
                                f"traffic",
                        remedy=f"Create the rewrite as {facts.rewrite_group}/v1alpha2 and roll "
                               f"out on that one"),)
    if ours is None:
        known = sorted(r.name for r in facts.rewrites)
        return (Finding(check=Check.REWRITE,
                        problem=f"InferenceModelRewrite {rewrite} not found in namespace "
                                f"{facts.namespace}"
                                + (f" ({facts.rewrite_group})" if facts.rewrite_group else ""),
                        remedy="Name an existing rewrite"
                               + (f": {', '.join(known)}" if known else "")),)
    if not 0 <= rule < len(ours.rules):
        return (Finding(check=Check.REWRITE,
                        problem=f"InferenceModelRewrite {rewrite} has no rule {rule}",
                        remedy=f"It has {counted(len(ours.rules), 'rule')}; name one of them"),)
    found: list[Finding] = []
    if ours.deleting:
        found.append(Finding(check=Check.REWRITE,
                             problem=f"InferenceModelRewrite {rewrite} is being deleted",
                             remedy="Recreate it before rolling out on it"))
    models = ours.rules[rule].models
    found += _shadowed_within(ours, rule)
    wanted: tuple[str | None, ...] = models or (None,)
    for wanted_model in wanted:
        older = _older_rivals(facts, ours=ours, model=wanted_model)
        if not older:
            continue
        what = (f"model {wanted_model}" if wanted_model is not None
                else "any model (a catch-all rule)")
        rival = older[0]
        if rival.created == ours.created:
            why = (f"was created in the same second as {rewrite} ({ours.created}): which of "
                   f"the two the endpoint picker applies is not defined")
        else:
            why = (f"is older than {rewrite} (created {rival.created} and {ours.created}): the "
                   f"endpoint picker applies the oldest and silently ignores {rewrite}")
        found.append(Finding(
            check=Check.REWRITE,
            problem=f"InferenceModelRewrite {rival.name} also matches {what} on pool "
                    f"{ours.pool} and {why}",
            remedy=f"Roll out on {rival.name} instead (--rewrite {rival.name}), or remove that "
                   f"match from it"))
    return tuple(found)


def _shadowed_within(ours: RewriteFacts, rule: int) -> list[Finding]:
    """Another rule of the same rewrite that matches what rule `rule` matches (a model, or,
    for a catch-all, any): the rules of one rewrite share its creation time, and the picker
    orders them by it alone (an unstable sort), so which one applies is not defined."""
    rewrite, models = ours.name, ours.rules[rule].models
    found: list[Finding] = []
    for model in models:
        other = next((i for i, r in enumerate(ours.rules) if model in r.models and i != rule),
                     None)
        if other is not None:
            found.append(Finding(
                check=Check.REWRITE,
                problem=f"model {model} is matched by rules {min(rule, other)} and "
                        f"{max(rule, other)} of {rewrite}: which one the endpoint picker "
                        "applies is not defined",
                remedy=f"Keep model {model} in one rule of {rewrite}"))
    if not models:  # a catch-all: another catch-all of the same rewrite competes with it
        other = next((i for i, r in enumerate(ours.rules) if not r.models and i != rule), None)
        if other is not None:
            found.append(Finding(
                check=Check.REWRITE,
                problem=f"rules {min(rule, other)} and {max(rule, other)} of {rewrite} are "
                        "both catch-alls (no matches): which one the endpoint picker applies "
                        "is not defined",
                remedy=f"Keep one catch-all rule in {rewrite}"))
    return found


def _matches(rule: RewriteRule, model: str | None) -> bool:
    return model in rule.models if model is not None else not rule.models


def _older_rivals(facts: ClusterFacts, *, ours: RewriteFacts,
                  model: str | None) -> list[RewriteFacts]:
    rivals = [r for r in facts.rewrites
              if r.name != ours.name and r.pool == ours.pool and r.pool_group == ours.pool_group
              and not r.deleting and any(_matches(rule, model) for rule in r.rules)
              and r.created <= ours.created]
    return sorted(rivals, key=lambda r: (r.created, r.name))


# ---- all of them ----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class PreflightRequest:
    """What is about to happen: a start (`share_percent` None) or a step to a share.

    Pool rollouts name `stable` and `canary` pools in `pool_group` (the group the route's
    backendRefs use); adapter rollouts name the `rewrite` and the `rule` the bot writes (the
    pool checks then apply to the rewrite's pool).
    """

    stable: str
    canary: str
    pool_group: str = POOL_GROUP
    #: the group the route's canary backendRef uses, where it differs (a move from the
    #: legacy group to GA); None: `pool_group`, or for a canary the bot adds (not
    #: `canary_in_rule`) the group the bot will name: the stable's where the pool exists
    #: there, else the one it exists in
    canary_group: str | None = None
    canary_in_rule: bool = True
    gateways: tuple[str, ...] = ()
    share_percent: int | None = None
    rewrite: str | None = None
    rule: int = 0
    rewrite_group: str = ""  # the group the bot found the rewrite in, where it knows it
    allow_gitops: bool = False
    own_managers: tuple[str, ...] = (BOT_MANAGER,)


def _stable_missing(facts: ClusterFacts, request: PreflightRequest) -> Finding:
    """The stable pool is not in the group the rule names it in. Where a pool of that name
    is in the other group (a move between the API groups half done), say so: "not found"
    alone sends a person looking for a pool they can see."""
    other = next((p.group for p in facts.pools_named(request.stable)), None)
    if other is None:
        return Finding(check=Check.POOL,
                       problem=f"the stable InferencePool {request.stable} was not found",
                       remedy="Keep the stable pool alive: it takes the traffic back on a "
                              "rollback")
    return Finding(check=Check.POOL,
                   problem=f"the rule sends the stable traffic to InferencePool "
                           f"{request.stable} in {request.pool_group}, which has none of "
                           f"that name; there is one in {other}",
                   remedy=f"Point the rule's backendRef at {other} (its `group`), or "
                          f"create {request.stable} in {request.pool_group} first")


def preflight(facts: ClusterFacts, request: PreflightRequest,
              policy: CapacityPolicy) -> Verdict:
    """Every gate that applies to the request, in the order a person would fix them."""
    if request.rewrite is not None:
        return _adapter_preflight(facts, request)
    gateways = request.gateways or (facts.route.gateways if facts.route is not None else ())
    canary_group = request.canary_group or _canary_group(facts, request)
    found = list(check_pool(facts, name=request.canary, group=canary_group,
                            gateways=gateways))
    stable = facts.pool(request.stable, request.pool_group)
    canary = facts.pool(request.canary, canary_group)
    if stable is None:
        found.append(_stable_missing(facts, request))
    if stable is not None and canary is not None:
        found += check_objectives(facts, stable=stable, canary=canary)
        found += check_capacity(facts, stable=stable, canary=canary,
                                share_percent=request.share_percent, policy=policy)
    if facts.route is not None:
        found += check_gitops(facts.route, allow_gitops=request.allow_gitops,
                              own=request.own_managers)
    return Verdict(findings=tuple(found))


def _canary_group(facts: ClusterFacts, request: PreflightRequest) -> str:
    """The group the canary is checked in when the request names none: the stable's, or,
    for a canary the bot will add to the rule, the group its write names (the stable's
    where the pool exists there, else the one group it exists in), so that a GA canary
    next to a legacy stable is not refused for a group nothing will refer to."""
    if request.canary_in_rule or facts.pool(request.canary, request.pool_group) is not None:
        return request.pool_group
    groups = {p.group for p in facts.pools_named(request.canary)}
    return groups.pop() if len(groups) == 1 else request.pool_group


def _adapter_preflight(facts: ClusterFacts, request: PreflightRequest) -> Verdict:
    """An adapter rollout moves traffic within one pool: the rewrite must win for its models
    and its pool must be there; capacity and objectives are the pool's own."""
    assert request.rewrite is not None
    found = list(check_rewrite(facts, rewrite=request.rewrite, rule=request.rule,
                               group=request.rewrite_group))
    ours = facts.rewrite(request.rewrite)
    if ours is not None:
        found += check_pool(facts, name=ours.pool, group=ours.pool_group,
                            gateways=request.gateways, referrer=rewrite_referrer(ours.name))
        if ours.object is not None:
            found += check_gitops(ours.object, allow_gitops=request.allow_gitops,
                                  own=request.own_managers)
    return Verdict(findings=tuple(found))

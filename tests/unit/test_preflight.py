"""Preflight gates as pure functions: bad facts give itemised, actionable refusals; good facts
give none."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from rollout.domain.admission import request_for
from rollout.domain.facts import (
    LEGACY_GROUP,
    LLMD_GROUP,
    POOL_GROUP,
    Condition,
    ObjectFacts,
    ObjectiveFacts,
    ParentStatus,
    PodFacts,
    RewriteFacts,
    RewriteRule,
    label_index,
)
from rollout.domain.findings import Check, Outcome
from rollout.domain.models import Baseline
from rollout.domain.preflight import (
    CapacityPolicy,
    PreflightRequest,
    check_capacity,
    check_objectives,
    check_pool,
    check_rewrite,
    check_rollback,
    preflight,
    ready_endpoints,
    required_endpoints,
)
from tests.unit.builders import TARGET
from tests.unit.facts_builders import CANARY, STABLE, objectives, pods, pool, world

# ---- the canary pool --------------------------------------------------------------------


def test_a_healthy_canary_pool_passes() -> None:
    assert check_pool(world(), name=CANARY, gateways=("inference-gateway",)) == ()


def test_a_missing_pool_is_refused_with_the_pools_there_are() -> None:
    (finding,) = check_pool(world(), name="llm-pool-version-3")
    assert finding.check is Check.POOL and finding.outcome is Outcome.REFUSE
    assert "llm-pool-version-3 not found in namespace default" in finding.problem
    assert "llm-pool, llm-pool-version-2" in finding.remedy


def test_a_pool_only_in_the_legacy_group_is_refused_naming_both_groups() -> None:
    facts = world(pools=(pool(STABLE), pool(CANARY, group=LEGACY_GROUP)))
    (finding,) = check_pool(facts, name=CANARY, group=POOL_GROUP)
    assert f"exists only as {LEGACY_GROUP}/v1alpha2" in finding.problem
    assert f"refers to group {POOL_GROUP}" in finding.problem
    assert "backendRef at group" in finding.remedy


def test_a_group_the_cluster_does_not_serve_is_named() -> None:
    facts = world(served_pool_groups=frozenset({LEGACY_GROUP}), pools=())
    (finding,) = check_pool(facts, name=CANARY)
    assert f"does not serve InferencePool in group {POOL_GROUP}" in finding.problem


def test_a_pool_being_deleted_is_refused() -> None:
    facts = world(pools=(pool(STABLE), pool(CANARY, deleting=True)))
    (finding,) = check_pool(facts, name=CANARY)
    assert "is being deleted" in finding.problem


def test_a_pool_the_gateway_does_not_accept_is_refused_with_its_reason() -> None:
    parents = (ParentStatus(name="inference-gateway", conditions=(
        Condition(type="Accepted", status="False", reason="NotAllowed", message="no grant",
                  observed_generation=1),)),)
    facts = world(pools=(pool(STABLE), pool(CANARY, parents=parents)))
    (finding,) = check_pool(facts, name=CANARY, gateways=("inference-gateway",))
    assert "Accepted=False" in finding.problem and "NotAllowed: no grant" in finding.problem


def test_status_about_an_older_generation_another_gateway_or_none_says_nothing() -> None:
    stale = (ParentStatus(name="inference-gateway", conditions=(
        Condition(type="Accepted", status="False", observed_generation=0),)),
        ParentStatus(name="other-gateway", conditions=(
            Condition(type="Accepted", status="False", observed_generation=1),)),
        ParentStatus(name="default", kind="Status", conditions=(
            Condition(type="Accepted", status="Unknown", reason="Pending"),)))
    facts = world(pools=(pool(STABLE), pool(CANARY, parents=stale)))
    assert check_pool(facts, name=CANARY, gateways=("inference-gateway",)) == ()


def _refused_by(gateway: str) -> tuple[ParentStatus, ...]:
    return (ParentStatus(name=gateway, conditions=(
        Condition(type="Accepted", status="False", reason="NotAllowed",
                  observed_generation=1),)),)


def test_the_pool_gate_reads_the_status_of_the_routes_own_gateways() -> None:
    """A gateway the route is not attached to says nothing about this rollout's traffic; with
    no gateway named (a route without parentRefs), every gateway on the pool's status counts."""
    route = ObjectFacts(kind="HTTPRoute", group="gateway.networking.k8s.io",
                        name="routes-to-llm", gateways=("inference-gateway",))
    request = PreflightRequest(stable=STABLE, canary=CANARY)
    other = world(pools=(pool(STABLE), pool(CANARY, parents=_refused_by("other-gateway"))),
                  route=route)
    assert preflight(other, request, CapacityPolicy()).ok
    ours = replace(other, pools=(pool(STABLE),
                                 pool(CANARY, parents=_refused_by("inference-gateway"))))
    [finding] = preflight(ours, request, CapacityPolicy()).findings
    assert finding.check is Check.POOL and "gateway inference-gateway reports Accepted=False" \
        in finding.problem
    unattached = replace(other, route=replace(route, gateways=()))
    [finding] = preflight(unattached, request, CapacityPolicy()).findings
    assert "gateway other-gateway reports Accepted=False" in finding.problem
    named = PreflightRequest(stable=STABLE, canary=CANARY, gateways=("other-gateway",))
    assert not preflight(ours, named, CapacityPolicy()).findings


def test_the_crds_placeholder_parent_is_not_a_gateways_answer() -> None:
    placeholder = (ParentStatus(name="default", kind="Status", conditions=(
        Condition(type="Accepted", status="Unknown", reason="Pending"),)),)
    facts = world(pools=(pool(STABLE), pool(CANARY, parents=placeholder)))
    assert check_pool(facts, name=CANARY) == ()


def test_a_missing_endpoint_picker_service_is_refused() -> None:
    facts = world(services=frozenset({f"{STABLE}-epp"}))
    (finding,) = check_pool(facts, name=CANARY)
    assert f"Service {CANARY}-epp of InferencePool {CANARY} does not exist" in finding.problem


def test_a_pool_without_an_endpoint_picker_is_refused() -> None:
    facts = world(pools=(pool(STABLE), pool(CANARY, picker=None)))
    (finding,) = check_pool(facts, name=CANARY)
    assert "names no endpoint picker" in finding.problem


def test_every_problem_of_the_pool_is_listed_at_once() -> None:
    facts = world(pools=(pool(STABLE), pool(CANARY, deleting=True)), services=frozenset())
    assert len(check_pool(facts, name=CANARY)) == 2


# ---- objectives -------------------------------------------------------------------------


def test_matching_objectives_pass() -> None:
    facts = world()
    assert check_objectives(facts, stable=pool(STABLE), canary=pool(CANARY)) == ()


def test_every_objective_difference_is_listed() -> None:
    facts = world(objectives=objectives(STABLE, ("chat", 10), ("batch", 0), ("eval", 5))
                  + objectives(CANARY, ("chat", 20), ("extra", 1)))
    (finding,) = check_objectives(facts, stable=pool(STABLE), canary=pool(CANARY))
    assert finding.check is Check.OBJECTIVES and finding.outcome is Outcome.REFUSE
    text = finding.problem
    assert f"missing on {CANARY}: batch (priority 0" in text
    assert f"missing on {CANARY}: eval (priority 5" in text
    assert f"only on {CANARY}: {CANARY}-extra (priority 1)" in text
    assert f"chat: priority 20 on {CANARY}, 10 on {STABLE}" in text
    assert LLMD_GROUP in text


def test_a_canary_without_objectives_is_refused() -> None:
    facts = world(objectives=objectives(STABLE, ("chat", 10)))
    (finding,) = check_objectives(facts, stable=pool(STABLE), canary=pool(CANARY))
    assert f"missing on {CANARY}: chat" in finding.problem


def test_objectives_of_another_group_or_being_deleted_do_not_count() -> None:
    other_group = ObjectiveFacts(name=f"{CANARY}-chat", pool=CANARY, pool_group=LEGACY_GROUP,
                                 priority=10)
    deleting = ObjectiveFacts(name=f"{CANARY}-batch", pool=CANARY, priority=0, deleting=True)
    facts = world(objectives=(*objectives(STABLE, ("chat", 10), ("batch", 0)), other_group,
                              deleting))
    (finding,) = check_objectives(facts, stable=pool(STABLE), canary=pool(CANARY))
    assert "missing on" in finding.problem and "chat" in finding.problem
    assert "batch" in finding.problem


def test_no_objective_group_served_means_nothing_to_compare() -> None:
    facts = world(objective_group=None, objectives=())
    assert check_objectives(facts, stable=pool(STABLE), canary=pool(CANARY)) == ()


# ---- capacity ---------------------------------------------------------------------------


def test_ready_endpoints_follow_selector_readiness_ports_and_address() -> None:
    canary = pool(CANARY, target_ports=(8000, 8001))
    odd = (
        PodFacts(name="not-ready", labels={"app": CANARY}, ready=False, ip="10.0.0.1"),
        PodFacts(name="no-ip", labels={"app": CANARY}, ready=True),
        PodFacts(name="other", labels={"app": "x"}, ready=True, ip="10.0.0.2"),
        PodFacts(name="terminating", labels={"app": CANARY}, ready=True, ip="10.0.0.3",
                 deleting=True),
        PodFacts(name="none-active", labels={"app": CANARY}, ready=True, ip="10.0.0.4",
                 active_ports=frozenset({9999})),
        PodFacts(name="two-ports", labels={"app": CANARY}, ready=True, ip="10.0.0.5"),
        PodFacts(name="one-active", labels={"app": CANARY}, ready=True, ip="10.0.0.6",
                 active_ports=frozenset({8001})),
    )
    assert ready_endpoints(world(pods=odd), canary) == 3


_LABELS = st.dictionaries(st.sampled_from(["app", "tier", "zone"]), st.sampled_from("abc"),
                          max_size=3)


@given(labels=st.lists(_LABELS, max_size=12), selector=_LABELS)
def test_endpoints_counted_from_the_label_index_are_those_of_every_pod(
        labels: list[dict[str, str]], selector: dict[str, str]) -> None:
    """The count looks only at the pods carrying the selector's rarest label: the same as
    looking at every pod of the namespace, for any labels and selector."""
    candidates = tuple(PodFacts(name=f"pod-{i}", labels=pod_labels, ready=True,
                                ip=f"10.0.1.{i}") for i, pod_labels in enumerate(labels))
    target = pool(CANARY, selector=selector)
    every_pod = sum(1 for pod in candidates
                    if selector and all(pod.labels.get(k) == v for k, v in selector.items()))
    assert ready_endpoints(world(pods=candidates), target) == every_pod
    # the index a reader keeps across reads (the namespace cache) counts the same
    given = replace(world(pods=candidates), pod_labels=label_index(candidates))
    assert ready_endpoints(given, target) == every_pod
    assert given == world(pods=candidates)  # the index is not part of what was read


def test_required_endpoints_round_up_and_respect_the_minimum() -> None:
    policy = CapacityPolicy(minimum=2, headroom_percent=25)
    assert required_endpoints(share_percent=10, stable_ready=8, policy=policy) == 2
    assert required_endpoints(share_percent=50, stable_ready=8, policy=policy) == 5
    assert required_endpoints(share_percent=100, stable_ready=8, policy=policy) == 10
    assert required_endpoints(share_percent=50, stable_ready=8,
                              policy=CapacityPolicy(minimum=1)) == 4
    # a part of an endpoint is a whole one: 3.3 needs 4, 0.75 needs 1
    assert required_endpoints(share_percent=30, stable_ready=10,
                              policy=CapacityPolicy(minimum=0, headroom_percent=10)) == 4
    assert required_endpoints(share_percent=25, stable_ready=3,
                              policy=CapacityPolicy(minimum=0)) == 1


def test_too_few_ready_pods_at_start_wait_and_say_why() -> None:
    facts = world(pods=pods(STABLE, 4) + pods(CANARY, 2, ready=False) + pods(CANARY, 1, start=5))
    (finding,) = check_capacity(facts, stable=pool(STABLE), canary=pool(CANARY),
                                share_percent=None, policy=CapacityPolicy(minimum=2))
    assert finding.check is Check.CAPACITY and finding.outcome is Outcome.WAIT
    assert f"{CANARY} has 1 Ready endpoint: at least 2 are required" in finding.problem
    assert "once 2 are Ready" in finding.remedy


def test_a_step_too_big_for_the_canary_waits_with_the_numbers() -> None:
    facts = world(pods=pods(STABLE, 8) + pods(CANARY, 2))
    policy = CapacityPolicy(minimum=1, headroom_percent=25)
    assert check_capacity(facts, stable=pool(STABLE), canary=pool(CANARY), share_percent=10,
                          policy=policy) == ()
    (finding,) = check_capacity(facts, stable=pool(STABLE), canary=pool(CANARY),
                                share_percent=50, policy=policy)
    assert f"{CANARY} has 2 Ready endpoints: 50% of the traffic {STABLE} serves with 8 " \
           f"needs 5 (with 25% headroom)" in finding.problem


def test_capacity_clears_when_pods_become_ready() -> None:
    policy = CapacityPolicy(minimum=1)
    before = world(pods=pods(STABLE, 4) + pods(CANARY, 4, ready=False))
    after = world(pods=pods(STABLE, 4) + pods(CANARY, 4))
    args = {"stable": pool(STABLE), "canary": pool(CANARY), "share_percent": 100,
            "policy": policy}
    assert check_capacity(before, **args)  # type: ignore[arg-type]
    assert check_capacity(after, **args) == ()  # type: ignore[arg-type]


# ---- the adapter rewrite ----------------------------------------------------------------


def rewrite(name: str, created: str, *models: str, pool_name: str = STABLE,
            deleting: bool = False) -> RewriteFacts:
    return RewriteFacts(name=name, pool=pool_name, created=created, deleting=deleting,
                        rules=(RewriteRule(models=models, targets=(f"{name}-v1",)),))


def test_the_oldest_exact_rewrite_for_its_model_passes() -> None:
    facts = world(rewrites=(rewrite("lora", "2026-01-01T00:00:00Z", "lora"),
                            rewrite("lora-b", "2026-01-02T00:00:00Z", "lora"),
                            rewrite("fallback", "2025-01-01T00:00:00Z")))
    assert check_rewrite(facts, rewrite="lora", rule=0) == ()


def test_a_younger_rewrite_for_the_same_model_is_refused_naming_the_older() -> None:
    facts = world(rewrites=(rewrite("lora", "2026-01-01T00:00:00Z", "lora"),
                            rewrite("lora-b", "2026-01-02T00:00:00Z", "lora")))
    (finding,) = check_rewrite(facts, rewrite="lora-b", rule=0)
    assert finding.check is Check.REWRITE and finding.outcome is Outcome.REFUSE
    assert "InferenceModelRewrite lora also matches model lora on pool llm-pool" in \
        finding.problem
    assert "silently ignores lora-b" in finding.problem
    assert "--rewrite lora" in finding.remedy


def test_rewrites_created_in_the_same_second_have_no_defined_winner() -> None:
    facts = world(rewrites=(rewrite("lora", "2026-01-01T00:00:00Z", "lora"),
                            rewrite("lora-b", "2026-01-01T00:00:00Z", "lora")))
    for name in ("lora", "lora-b"):
        (finding,) = check_rewrite(facts, rewrite=name, rule=0)
        assert "same second" in finding.problem and "not defined" in finding.problem


def test_rewrites_of_another_pool_or_being_deleted_do_not_compete() -> None:
    facts = world(rewrites=(rewrite("other", "2025-01-01T00:00:00Z", "lora", pool_name=CANARY),
                            rewrite("gone", "2025-01-01T00:00:00Z", "lora", deleting=True),
                            rewrite("lora", "2026-01-01T00:00:00Z", "lora")))
    assert check_rewrite(facts, rewrite="lora", rule=0) == ()


def test_an_older_catch_all_wins_over_a_younger_catch_all() -> None:
    facts = world(rewrites=(rewrite("any-old", "2025-01-01T00:00:00Z"),
                            rewrite("any-new", "2026-01-01T00:00:00Z")))
    (finding,) = check_rewrite(facts, rewrite="any-new", rule=0)
    assert "any model (a catch-all rule)" in finding.problem


def test_a_model_in_two_rules_of_one_rewrite_is_refused_on_either() -> None:
    two = RewriteFacts(name="lora", pool=STABLE, created="2026-01-01T00:00:00Z", rules=(
        RewriteRule(models=("lora",), targets=("a",)),
        RewriteRule(models=("lora", "other"), targets=("b",))))
    for rule in (1, 0):  # the rules of one rewrite have no order the picker keeps
        (finding,) = check_rewrite(world(rewrites=(two,)), rewrite="lora", rule=rule)
        assert "model lora is matched by rules 0 and 1 of lora" in finding.problem
    (other,) = check_rewrite(world(rewrites=(two,)), rewrite="lora", rule=1)
    assert "other" not in other.problem


def test_two_catch_all_rules_of_one_rewrite_are_refused_on_either() -> None:
    two = RewriteFacts(name="lora", pool=STABLE, created="2026-01-01T00:00:00Z", rules=(
        RewriteRule(models=(), targets=("a",)),
        RewriteRule(models=(), targets=("b",))))
    for rule in (1, 0):
        (finding,) = check_rewrite(world(rewrites=(two,)), rewrite="lora", rule=rule)
        assert finding.problem == ("rules 0 and 1 of lora are both catch-alls (no matches): "
                                   "which one the endpoint picker applies is not defined")
    one = RewriteFacts(name="lora", pool=STABLE, created="2026-01-01T00:00:00Z", rules=(
        RewriteRule(models=("lora",), targets=("a",)), RewriteRule(models=(), targets=("b",))))
    assert check_rewrite(world(rewrites=(one,)), rewrite="lora", rule=1) == ()


def test_a_missing_rewrite_or_rule_is_refused() -> None:
    facts = world(rewrites=(rewrite("lora", "2026-01-01T00:00:00Z", "lora"),))
    (missing,) = check_rewrite(facts, rewrite="nope", rule=0)
    assert "nope not found" in missing.problem and "lora" in missing.remedy
    (no_rule,) = check_rewrite(facts, rewrite="lora", rule=3)
    assert "has no rule 3" in no_rule.problem


# ---- all together -----------------------------------------------------------------------


def test_preflight_on_a_good_world_proceeds() -> None:
    verdict = preflight(world(), PreflightRequest(stable=STABLE, canary=CANARY),
                        CapacityPolicy(minimum=2))
    assert verdict.ok and verdict.outcome is Outcome.PROCEED and verdict.explain() == ""


def test_preflight_lists_every_finding_and_refusal_beats_waiting() -> None:
    facts = world(objectives=objectives(STABLE, ("chat", 10)), pods=pods(STABLE, 4),
                  services=frozenset({f"{STABLE}-epp"}))
    verdict = preflight(facts, PreflightRequest(stable=STABLE, canary=CANARY),
                        CapacityPolicy(minimum=1))
    assert verdict.outcome is Outcome.REFUSE
    lines = verdict.explain().splitlines()
    assert [line.split("]")[0] for line in lines] == ["• [pool", "• [objectives",
                                                      "• [capacity"]


def test_a_capacity_shortfall_alone_waits() -> None:
    facts = world(pods=pods(STABLE, 4) + pods(CANARY, 1))
    verdict = preflight(facts, PreflightRequest(stable=STABLE, canary=CANARY, share_percent=50),
                        CapacityPolicy())
    assert verdict.outcome is Outcome.WAIT


def test_a_missing_stable_pool_is_refused() -> None:
    verdict = preflight(world(pools=(pool(CANARY),)),
                        PreflightRequest(stable=STABLE, canary=CANARY), CapacityPolicy())
    assert "stable InferencePool llm-pool was not found" in verdict.explain()


def test_an_adapter_rollout_checks_the_rewrite_and_its_pool() -> None:
    facts = world(rewrites=(rewrite("lora", "2026-01-01T00:00:00Z", "lora"),
                            rewrite("lora-b", "2026-01-02T00:00:00Z", "lora")),
                  services=frozenset())
    verdict = preflight(facts, PreflightRequest(stable="lora-v1", canary="lora-v2",
                                                rewrite="lora-b"), CapacityPolicy())
    checks = [f.check for f in verdict.findings]
    assert checks == [Check.REWRITE, Check.POOL]


def test_an_adapter_rollouts_pool_in_another_group_points_at_the_rewrites_pool_ref() -> None:
    """An adapter rollout has no route: the fix of a group mismatch is the rewrite's poolRef
    (its group defaults to the GA one, so a legacy pool on an older cluster meets it)."""
    facts = world(pools=(pool(STABLE, group=LEGACY_GROUP),),
                  rewrites=(rewrite("lora", "2026-01-01T00:00:00Z", "lora"),))
    verdict = preflight(facts, PreflightRequest(stable="lora-v1", canary="lora-v2",
                                                rewrite="lora"), CapacityPolicy())
    (finding,) = verdict.findings
    assert (finding.check, finding.problem, finding.remedy) == (
        Check.POOL,
        "InferencePool llm-pool exists only as inference.networking.x-k8s.io/v1alpha2, but "
        "InferenceModelRewrite lora refers to group inference.networking.k8s.io: the "
        "endpoint picker would ignore the rewrite",
        "Create llm-pool as inference.networking.k8s.io/v1 (the GA API), or point "
        "InferenceModelRewrite lora's spec.poolRef at group inference.networking.x-k8s.io")


def _gateway_refuses(name: str) -> ParentStatus:
    return ParentStatus(name=name, conditions=(Condition(
        type="ResolvedRefs", status="False", reason="InvalidExtensionRef",
        observed_generation=1),))


def test_the_rollback_check_reads_only_the_routes_own_gateways_as_the_canarys_does() -> None:
    route = ObjectFacts(kind="HTTPRoute", group="gateway.networking.k8s.io",
                        name="routes-to-llm", gateways=("inference-gateway",))
    elsewhere = world(route=route, pools=(
        replace(pool(STABLE), parents=(_gateway_refuses("internal-gateway"),)), pool(CANARY)))
    assert check_rollback(elsewhere, stable=STABLE, group=POOL_GROUP, had=4,
                          policy=CapacityPolicy()) == ()
    ours = world(route=route, pools=(
        replace(pool(STABLE), parents=(_gateway_refuses("inference-gateway"),)), pool(CANARY)))
    (finding,) = check_rollback(ours, stable=STABLE, group=POOL_GROUP, had=4,
                                policy=CapacityPolicy())
    assert finding.check is Check.ROLLBACK and "then resume" in finding.remedy


def test_a_canary_ref_in_another_group_than_the_stables_is_checked_in_its_own() -> None:
    """A move from a legacy stable pool to a GA canary: the route's canary ref says GA."""
    baseline = Baseline(
        stable={"group": LEGACY_GROUP, "kind": "InferencePool", "name": STABLE, "weight": 100},
        canary={"group": POOL_GROUP, "kind": "InferencePool", "name": CANARY, "weight": 0},
        stable_weight=100, canary_weight=0)
    request = request_for(target=TARGET, stable=STABLE, canary=CANARY, baseline=baseline,
                          share_percent=None, allow_gitops=False)
    assert (request.pool_group, request.canary_group) == (LEGACY_GROUP, POOL_GROUP)
    facts = world(pools=(pool(STABLE, group=LEGACY_GROUP), pool(CANARY)), objectives=())
    assert preflight(facts, request, CapacityPolicy()).findings == ()
    same = request_for(target=TARGET, stable=STABLE, canary=CANARY,
                       baseline=baseline.model_copy(update={"canary": None}),
                       share_percent=None, allow_gitops=False)
    assert same.canary_group is None and not same.canary_in_rule


def test_a_canary_the_bot_adds_is_checked_in_the_group_its_write_names() -> None:
    """The rule has no canary ref yet: the bot's write names the group the pool exists in,
    the stable's where it exists there; a ref already in the rule is checked as it is."""
    added = Baseline(
        stable={"group": LEGACY_GROUP, "kind": "InferencePool", "name": STABLE, "weight": 100},
        canary=None, stable_weight=100, canary_weight=0)
    request = request_for(target=TARGET, stable=STABLE, canary=CANARY, baseline=added,
                          share_percent=None, allow_gitops=False)
    ga_only = world(pools=(pool(STABLE, group=LEGACY_GROUP), pool(CANARY)), objectives=())
    assert preflight(ga_only, request, CapacityPolicy()).findings == ()
    both = world(pools=(pool(STABLE, group=LEGACY_GROUP), pool(CANARY, group=LEGACY_GROUP),
                        replace(pool(CANARY), deleting=True)), objectives=())
    assert preflight(both, request, CapacityPolicy()).findings == ()  # the stable's group
    in_rule = added.model_copy(update={"canary": {
        "group": LEGACY_GROUP, "kind": "InferencePool", "name": CANARY, "weight": 0}})
    named = request_for(target=TARGET, stable=STABLE, canary=CANARY, baseline=in_rule,
                        share_percent=None, allow_gitops=False)
    (finding,) = preflight(ga_only, named, CapacityPolicy()).findings
    assert "exists only as" in finding.problem
    nowhere = world(pools=(pool(STABLE, group=LEGACY_GROUP),), objectives=())
    (missing,) = preflight(nowhere, request, CapacityPolicy()).findings
    assert missing.problem.startswith(f"InferencePool {CANARY} not found")

"""Preflight gates, sentence by sentence: what each check reports to the person starting or
stepping a rollout, and which facts it reads (the pool's group, the gateways asked about,
the bot's own field managers)."""

from __future__ import annotations

from collections.abc import Mapping

from rollout.domain.facts import (
    LEGACY_GROUP,
    POOL_GROUP,
    Condition,
    ManagedField,
    ObjectFacts,
    ParentStatus,
    PickerRef,
    PodFacts,
    RewriteFacts,
    RewriteRule,
)
from rollout.domain.findings import Check, Finding, Outcome
from rollout.domain.preflight import (
    CapacityPolicy,
    PreflightRequest,
    check_capacity,
    check_pool,
    check_rewrite,
    check_rollback,
    preflight,
    ready_endpoints,
    required_endpoints,
)
from tests.unit.facts_builders import CANARY, STABLE, pods, pool, world

GW = "inference-gateway"
WEIGHTS: Mapping[str, object] = {"f:spec": {"f:rules": {}}}


def _gateway(name: str, *conditions: Condition, kind: str = "Gateway") -> ParentStatus:
    return ParentStatus(name=name, kind=kind, conditions=conditions)


def _cond(kind: str, status: str, generation: int = 1, reason: str = "",
          message: str = "") -> Condition:
    return Condition(type=kind, status=status, reason=reason, message=message,
                     observed_generation=generation)


def _object(*entries: ManagedField) -> ObjectFacts:
    return ObjectFacts(kind="InferenceModelRewrite", group="llm-d.ai", name="lora",
                       managed_fields=entries)


def _rewrite(name: str, created: str, *models: str, pool_group: str = POOL_GROUP,
             obj: ObjectFacts | None = None) -> RewriteFacts:
    return RewriteFacts(name=name, pool=STABLE, pool_group=pool_group, created=created,
                        rules=(RewriteRule(models=models, targets=(f"{name}-v1",)),), object=obj)


# ---- the pool ------------------------------------------------------------------------------


def test_a_group_the_cluster_does_not_serve_names_the_groups_it_does() -> None:
    (finding,) = check_pool(world(pools=()), name=CANARY, group="example.com")
    assert finding == Finding(
        check=Check.POOL,
        problem="the cluster does not serve InferencePool in group example.com",
        remedy=f"Install the example.com/? InferencePool CRD, or use the group the cluster "
               f"serves ({POOL_GROUP}, {LEGACY_GROUP})")


def test_only_a_current_false_condition_of_an_asked_gateway_is_reported() -> None:
    """The CRD's placeholder, a gateway not asked about, a condition about an older spec and a
    True condition say nothing; the parents and conditions after them are still read."""
    parents = (
        _gateway("default", _cond("Accepted", "Unknown"), kind="Status"),
        _gateway("other-gateway", _cond("Accepted", "False")),
        _gateway(GW, _cond("Accepted", "False", generation=0),
                 _cond("ResolvedRefs", "False", reason="BackendNotFound", message="no epp")),
        _gateway("second", _cond("Accepted", "True"), _cond("ResolvedRefs", "True")),
    )
    facts = world(pools=(pool(STABLE), pool(CANARY, parents=parents)))
    assert check_pool(facts, name=CANARY, gateways=(GW, "second")) == (Finding(
        check=Check.POOL,
        problem=f"gateway {GW} reports ResolvedRefs=False for InferencePool {CANARY} "
                f"(BackendNotFound: no epp)",
        remedy="Fix what the gateway reports on the pool's status.parents, then start again"),)


def test_an_endpoint_picker_that_is_not_a_service_is_not_looked_up() -> None:
    picker = PickerRef(name="elsewhere", kind="Backend", group="")
    facts = world(pools=(pool(STABLE), pool(CANARY, picker=picker)))
    assert check_pool(facts, name=CANARY) == ()


# ---- capacity ------------------------------------------------------------------------------


def test_active_ports_narrow_the_target_ports_and_never_add_to_them() -> None:
    pod = PodFacts(name="p", labels={"app": CANARY}, ready=True, ip="10.0.0.9",
                   active_ports=frozenset({8000, 9000}))
    assert ready_endpoints(world(pods=(pod,)), pool(CANARY)) == 1


def test_a_hair_over_a_whole_endpoint_needs_another_one() -> None:
    # 73% of 1 endpoint with 37% headroom is 1.0001 endpoints
    policy = CapacityPolicy(minimum=0, headroom_percent=37)
    assert required_endpoints(share_percent=73, stable_ready=1, policy=policy) == 2


def test_a_step_held_at_the_minimum_says_that_it_is_the_minimum() -> None:
    facts = world(pods=pods(STABLE, 4) + pods(CANARY, 1))
    (finding,) = check_capacity(facts, stable=pool(STABLE), canary=pool(CANARY),
                                share_percent=10, policy=CapacityPolicy(minimum=2))
    assert finding.problem == (f"{CANARY} has 1 Ready endpoint: 10% of the traffic {STABLE} "
                               f"serves with 4 needs 2; the minimum is 2")


# ---- rollback ------------------------------------------------------------------------------


def test_a_stable_pool_short_of_what_it_had_is_refused_with_the_way_out() -> None:
    """67% of 3 endpoints is 2.01: a rollback needs all 3 back."""
    facts = world(pods=pods(STABLE, 2) + pods(CANARY, 4))
    policy = CapacityPolicy(rollback_percent=67)
    assert check_rollback(facts, stable=STABLE, group=POOL_GROUP, had=3, policy=policy) == (
        Finding(check=Check.ROLLBACK,
                problem=f"{STABLE}: 2 of 3 Ready endpoints; a rollback now would overload it",
                remedy=f"Scale {STABLE}'s model servers back up (or wait for them to become "
                       f"Ready), then resume; a rollback asked for now still goes ahead"),)


def test_the_rollback_check_reads_the_stable_pool_in_its_own_group() -> None:
    facts = world(pools=(pool(STABLE, group=LEGACY_GROUP), pool(CANARY, group=LEGACY_GROUP)))
    assert check_rollback(facts, stable=STABLE, group=LEGACY_GROUP, had=4,
                          policy=CapacityPolicy()) == ()


def test_a_stable_pool_gone_is_the_rollback_checks_only_finding() -> None:
    (finding,) = check_rollback(world(pools=(pool(CANARY),)), stable=STABLE, group=POOL_GROUP,
                                had=4, policy=CapacityPolicy())
    assert finding.check is Check.ROLLBACK
    assert finding.problem == f"InferencePool {STABLE} not found in namespace default"
    assert finding.remedy == (f"Make {STABLE} whole again (it takes all the traffic back on a "
                              "rollback), then resume; a rollback asked for now still goes "
                              "ahead")


# ---- the adapter rewrite -------------------------------------------------------------------


def test_a_rewrite_in_a_group_the_picker_does_not_read_is_refused_naming_both() -> None:
    facts = world(rewrite_group="llm-d.ai")
    assert check_rewrite(facts, rewrite="lora", rule=0, group=LEGACY_GROUP) == (Finding(
        check=Check.REWRITE,
        problem=f"InferenceModelRewrite lora is in group {LEGACY_GROUP}, but the cluster serves "
                f"llm-d.ai, the group the endpoint picker reads: it ignores lora, so its "
                f"weights move no traffic",
        remedy="Create the rewrite as llm-d.ai/v1alpha2 and roll out on that one"),)


def test_a_rule_just_past_the_last_is_refused() -> None:
    facts = world(rewrites=(_rewrite("lora", "2026-01-01T00:00:00Z", "lora"),))
    (finding,) = check_rewrite(facts, rewrite="lora", rule=1)
    assert finding.problem == "InferenceModelRewrite lora has no rule 1"
    assert finding.remedy == "It has 1 rule; name one of them"


def test_a_model_matched_by_an_earlier_rule_is_refused_with_the_remedy() -> None:
    two = RewriteFacts(name="lora", pool=STABLE, created="2026-01-01T00:00:00Z", rules=(
        RewriteRule(models=("lora",), targets=("a",)),
        RewriteRule(models=("lora",), targets=("b",))))
    (finding,) = check_rewrite(world(rewrites=(two,)), rewrite="lora", rule=1)
    assert finding.check is Check.REWRITE
    assert finding.remedy == "Keep model lora in one rule of lora"


def test_every_model_of_the_rule_is_checked_for_an_older_rival() -> None:
    facts = world(rewrites=(_rewrite("lora", "2026-01-01T00:00:00Z", "free", "taken"),
                            _rewrite("old", "2025-01-01T00:00:00Z", "taken")))
    (finding,) = check_rewrite(facts, rewrite="lora", rule=0)
    assert "InferenceModelRewrite old also matches model taken" in finding.problem


def test_the_oldest_rival_is_named_and_a_tie_goes_by_name() -> None:
    facts = world(rewrites=(_rewrite("b-old", "2025-06-01T00:00:00Z", "lora"),
                            _rewrite("a-oldest", "2025-01-01T00:00:00Z", "lora"),
                            _rewrite("lora", "2026-01-01T00:00:00Z", "lora")))
    (finding,) = check_rewrite(facts, rewrite="lora", rule=0)
    assert finding.remedy.startswith("Roll out on a-oldest instead (--rewrite a-oldest)")
    tied = world(rewrites=(_rewrite("z-same", "2025-01-01T00:00:00Z", "lora"),
                           _rewrite("m-same", "2025-01-01T00:00:00Z", "lora"),
                           _rewrite("lora", "2026-01-01T00:00:00Z", "lora")))
    (finding,) = check_rewrite(tied, rewrite="lora", rule=0)
    assert finding.remedy.startswith("Roll out on m-same instead")


# ---- all of them ---------------------------------------------------------------------------


def test_a_pool_rollout_reads_its_pools_group_the_asked_gateways_and_its_own_managers() -> None:
    parents = (_gateway("other-gateway", _cond("Accepted", "False")),)
    route = ObjectFacts(kind="HTTPRoute", group="gateway.networking.k8s.io", name="r",
                        managed_fields=(ManagedField(manager="my-bot", operation="Apply",
                                                     fields=WEIGHTS),))
    facts = world(pools=(pool(STABLE, group=LEGACY_GROUP),
                         pool(CANARY, group=LEGACY_GROUP, parents=parents)), route=route)
    request = PreflightRequest(stable=STABLE, canary=CANARY, pool_group=LEGACY_GROUP,
                               gateways=(GW,), own_managers=("my-bot",))
    verdict = preflight(facts, request, CapacityPolicy())
    assert verdict.ok, verdict.explain()


def test_an_adapter_rollout_on_a_good_rewrite_proceeds() -> None:
    """Its pool is read in the rewrite's pool group, only the asked gateways count, and the
    bot's own field managers do not keep the rewrite."""
    parents = (_gateway("other-gateway", _cond("Accepted", "False")),)
    mine = _object(ManagedField(manager="my-bot", operation="Apply", fields=WEIGHTS))
    facts = world(pools=(pool(STABLE, group=LEGACY_GROUP, parents=parents),),
                  rewrite_group="llm-d.ai",
                  rewrites=(_rewrite("lora", "2026-01-01T00:00:00Z", "lora",
                                     pool_group=LEGACY_GROUP, obj=mine),))
    request = PreflightRequest(stable="lora-v1", canary="lora-v2", rewrite="lora",
                               rewrite_group="llm-d.ai", gateways=(GW,),
                               own_managers=("my-bot",))
    verdict = preflight(facts, request, CapacityPolicy())
    assert verdict.ok, verdict.explain()


def test_an_adapter_rollout_allowed_gitops_keeps_its_other_findings() -> None:
    argo = _object(ManagedField(manager="argocd-controller", operation="Apply",
                                fields=WEIGHTS))
    facts = world(rewrites=(_rewrite("old", "2025-01-01T00:00:00Z", "lora"),
                            _rewrite("lora", "2026-01-01T00:00:00Z", "lora", obj=argo)))
    request = PreflightRequest(stable="lora-v1", canary="lora-v2", rewrite="lora",
                               allow_gitops=True)
    verdict = preflight(facts, request, CapacityPolicy())
    assert [f.check for f in verdict.findings] == [Check.REWRITE]
    assert verdict.findings[0].problem.startswith("InferenceModelRewrite old also matches")
    refused = preflight(facts, PreflightRequest(stable="lora-v1", canary="lora-v2",
                                                rewrite="lora"), CapacityPolicy())
    assert [f.check for f in refused.findings] == [Check.REWRITE, Check.GITOPS]


def test_an_adapter_rollout_on_a_rewrite_in_the_wrong_group_says_so() -> None:
    request = PreflightRequest(stable="lora-v1", canary="lora-v2", rewrite="lora",
                               rewrite_group=LEGACY_GROUP)
    verdict = preflight(world(rewrite_group="llm-d.ai"), request, CapacityPolicy())
    (finding,) = verdict.findings
    assert finding.outcome is Outcome.REFUSE
    assert finding.problem.startswith(f"InferenceModelRewrite lora is in group {LEGACY_GROUP}")

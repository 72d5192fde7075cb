"""What the service asks the gates, pinned whole: the request a target gets, the stable pool's
count a rollback relies on, the hold and warning a person reads, the GitOps evidence and
remedy, the gateway's answer, and the analysis port of a bot without Prometheus."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rollout.domain.admission import (
    Hold,
    request_for,
    rollback_hold,
    rollback_warning,
    stable_ready,
)
from rollout.domain.analysis import QueryResult, ResultKind
from rollout.domain.canary import Unconfigured
from rollout.domain.facts import LEGACY_GROUP, ManagedField, ObjectFacts
from rollout.domain.findings import Check
from rollout.domain.gates import gateway_problem
from rollout.domain.gitops import check_gitops, reverted_by
from rollout.domain.models import Baseline, Rollout, Target, TargetKind
from rollout.domain.preflight import CapacityPolicy, PreflightRequest
from tests.unit.builders import BASELINE, T0, started
from tests.unit.facts_builders import CANARY, STABLE, pods, pool, world

REWRITE = Target(kind=TargetKind.REWRITE, namespace="default", name="food-review", rule=2,
                 api_group="llm-d.ai")
LEGACY = Baseline(stable={**BASELINE.stable, "group": LEGACY_GROUP},
                  canary={**(BASELINE.canary or {}), "group": LEGACY_GROUP},
                  stable_weight=100, canary_weight=0)
WEIGHTS: Mapping[str, object] = {"f:spec": {"f:rules": {}}}


def _recorded(had: int | None, *, baseline: Baseline = BASELINE,
              target: Target | None = None) -> Rollout:
    r = started(baseline=baseline)
    update: dict[str, Any] = {"stable_ready": had}
    if target is not None:
        update["target"] = target
    copied: Rollout = r.model_copy(update=update)
    return copied


def _route(*entries: ManagedField, labels: dict[str, str] | None = None,
           annotations: dict[str, str] | None = None) -> ObjectFacts:
    return ObjectFacts(kind="HTTPRoute", group="gateway.networking.k8s.io", name="routes-to-llm",
                       labels=labels or {}, annotations=annotations or {},
                       managed_fields=entries)


# ---- the request ---------------------------------------------------------------------------


def test_an_adapter_steps_request_carries_its_share_and_the_gitops_allowance() -> None:
    assert request_for(target=REWRITE, stable="a1", canary="a2", baseline=BASELINE,
                       share_percent=25, allow_gitops=True) == PreflightRequest(
        stable="a1", canary="a2", rewrite="food-review", rule=2, rewrite_group="llm-d.ai",
        share_percent=25, allow_gitops=True)


def test_a_pool_rollout_is_gated_in_the_group_its_baseline_recorded() -> None:
    request = request_for(target=started().target, stable="s", canary="c", baseline=LEGACY,
                          share_percent=None, allow_gitops=False)
    assert request.pool_group == LEGACY_GROUP


def test_an_adapter_rollout_records_no_stable_count_even_beside_a_pool_of_that_name() -> None:
    request = PreflightRequest(stable=STABLE, canary=CANARY, rewrite="food-review")
    assert stable_ready(world(), request) is None


# ---- a rollback's stable pool --------------------------------------------------------------


def test_a_stable_pool_short_of_its_start_count_pauses_with_the_numbers() -> None:
    facts = world(pods=pods(STABLE, 2) + pods(CANARY, 4))
    hold = rollback_hold(facts, _recorded(4), policy=CapacityPolicy())
    assert hold == Hold(reason=f"{STABLE} could not take the traffic back:\n"
                               f"• [rollback] {STABLE}: 2 of 4 Ready endpoints; a rollback now "
                               f"would overload it. Scale {STABLE}'s model servers back up (or "
                               f"wait for them to become Ready), then resume; a rollback asked "
                               f"for now still goes ahead", pause=True)


def test_the_stable_pool_is_checked_in_the_group_the_baseline_recorded() -> None:
    facts = world(pools=(pool(STABLE, group=LEGACY_GROUP), pool(CANARY, group=LEGACY_GROUP)))
    assert rollback_hold(facts, _recorded(4, baseline=LEGACY), policy=CapacityPolicy()) is None


def test_only_a_pool_rollout_that_recorded_its_count_is_checked() -> None:
    gone = world(pools=(pool(CANARY),))
    assert rollback_hold(gone, _recorded(None), policy=CapacityPolicy()) is None
    assert rollback_hold(gone, _recorded(4, target=REWRITE), policy=CapacityPolicy()) is None


def test_a_rollback_warns_once_per_finding_and_goes_ahead() -> None:
    facts = world(pools=(pool(STABLE, deleting=True), pool(CANARY)),
                  pods=pods(STABLE, 2) + pods(CANARY, 4))
    assert rollback_warning(facts, _recorded(4), policy=CapacityPolicy()) == (
        f"Warning: InferencePool {STABLE} is being deleted; rolling back anyway.\n"
        f"Warning: {STABLE}: 2 of 4 Ready endpoints; a rollback now would overload it; "
        f"rolling back anyway.\n")


# ---- GitOps ----------------------------------------------------------------------------------


def test_the_bots_own_field_managers_neither_keep_nor_revert_the_weights() -> None:
    mine = ManagedField(manager="my-bot", operation="Apply", time="2026-11-26T06:00:00Z",
                        fields=WEIGHTS)
    argo = ManagedField(manager="argocd-controller", operation="Apply",
                        time="2026-11-26T05:00:00Z", fields=WEIGHTS)
    assert check_gitops(_route(mine), own=("my-bot",)) == ()
    owner = reverted_by(_route(argo, mine), own=("my-bot",))
    assert owner is not None and owner.manager == "argocd-controller"


def test_every_tracking_mark_of_a_tool_is_listed() -> None:
    (finding,) = check_gitops(_route(labels={"app.kubernetes.io/instance": "inference"},
                                     annotations={"argocd.argoproj.io/tracking-id": "a:b"}))
    assert ("Argo CD tracks it (label app.kubernetes.io/instance=inference; annotation "
            "argocd.argoproj.io/tracking-id=a:b)") in finding.problem


def test_flux_found_by_its_labels_alone_gets_the_kustomize_remedy() -> None:
    (finding,) = check_gitops(_route(labels={"kustomize.toolkit.fluxcd.io/name": "apps"}))
    assert finding.check is Check.GITOPS
    assert finding.remedy.startswith("In Git, annotate HTTPRoute routes-to-llm with "
                                     "kustomize.toolkit.fluxcd.io/ssa: IfNotPresent")


def test_every_other_server_side_applier_is_named_in_the_remedy() -> None:
    (finding,) = check_gitops(_route(
        ManagedField(manager="ci-a", operation="Apply", time="2026-11-26T06:00:00Z",
                     fields=WEIGHTS),
        ManagedField(manager="ci-b", operation="Apply", time="2026-11-26T05:00:00Z",
                     fields=WEIGHTS)))
    assert finding.remedy.startswith("Whoever applies it as field manager ci-a, ci-b puts its "
                                     "weights back on the next apply")


# ---- the gateway -----------------------------------------------------------------------------


def test_a_stale_condition_does_not_hide_a_current_one_after_it() -> None:
    route = {"metadata": {"generation": 2}, "status": {"parents": [
        {"parentRef": {"name": "g"}, "conditions": [
            {"type": "Accepted", "status": "False", "reason": "Old", "observedGeneration": 1},
            {"type": "ResolvedRefs", "status": "False", "reason": "BackendNotFound",
             "observedGeneration": 2}]}]}}
    assert gateway_problem(route) == "gateway g reports ResolvedRefs=False (BackendNotFound)"


# ---- analysis without Prometheus -------------------------------------------------------------


def test_without_prometheus_every_query_is_unavailable_and_says_why() -> None:
    assert Unconfigured().query("up", T0) == QueryResult(
        kind=ResultKind.UNAVAILABLE, reason="PROMETHEUS_URL is not configured on this bot")

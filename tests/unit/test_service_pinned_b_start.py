"""What a start and a recovery check and record, through the service over the fakes: every
name it carries is checked before anything is read, the GitOps gate holds unless allowed, a
rule marked by a rollout the store lost is refused with what to do, the analysis it runs fits
its kind and names its pool and model, and a first write whose answer was lost is told as
such."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from rollout.domain.analysis import AnalysisFile, SubjectKind
from rollout.domain.canary import AnalysisSetup
from rollout.domain.clock import ManualClock
from rollout.domain.errors import (
    ClusterUnavailable,
    InvalidInput,
    NeedsOperator,
    NotFound,
    NotReady,
    WriteUnknown,
)
from rollout.domain.facts import LLMD_GROUP, ObjectFacts, RewriteFacts, RewriteRule
from rollout.domain.models import AuditAction, PauseKind, Phase, Rollout, Target, TargetKind
from rollout.domain.plan import build_plan
from rollout.domain.split import Marker, Observed, Pair
from rollout.ports import Located
from rollout.service import Gates, Ref, RolloutService, ServiceOptions
from tests.unit.analysis_builders import spec
from tests.unit.builders import ALICE, BASELINE, BOB, CAROL, T0, TARGET
from tests.unit.facts_builders import world
from tests.unit.fakes import (
    FakeAnalysis,
    FakeFacts,
    FakeFreezes,
    FakeStore,
    FakeTarget,
    FakeTraffic,
    one_route_world,
    open_gates,
)

CANARY = "llm-pool-version-2"
REF = Ref(canary=CANARY)
PLAN = build_plan([10, 50, 100], interval_seconds=60)
NOT_A_NAME = ("is not a Kubernetes name: use at most 253 lowercase letters, digits, `-` and "
              "`.`, starting and ending with a letter or digit")
ANALYSES = AnalysisFile(default="quick", analyses={"quick": spec(),
                                                   "strict": spec(failure_limit=0)})


class NamedTraffic(FakeTraffic):
    """The fake traffic, locating as the cluster does: the rule in the namespace the start
    names (by its name when one is given), and reading a rule's pair only for the pools (or
    adapters) it holds; an adapter's rewrite says which pool and model it serves."""

    def __init__(self, *targets: FakeTarget, pool: str = "", model: str = "") -> None:
        super().__init__(*targets)
        self.pool, self.model = pool, model

    def locate_kind(
        self, kind: TargetKind, *, namespace: str, canary: str, target_name: str | None,
        stable: str | None,
    ) -> Located:
        for t in self.targets.values():
            if t.target.kind is kind and t.target.namespace == namespace and (
                    t.target.name == target_name if target_name else t.canary == canary):
                return Located(target=t.target, stable=t.stable, canary=canary,
                               baseline=t.baseline, observed=self._observed(t),
                               pool=self.pool, model=self.model)
        raise NotFound(f"nothing routes to {canary} in {namespace}")

    def observe_target(self, target: Target, *, stable: str, canary: str) -> Observed:
        t = self.targets[target.key]
        if (stable, canary) != (t.stable, t.canary):
            raise NotFound(f"{target.describe()} holds no {stable} and {canary}")
        observed: Observed = self._observed(t)
        return observed


def _service(traffic: FakeTraffic, store: FakeStore | None = None, *,
             measuring: bool = True, gates: Gates | None = None) -> RolloutService:
    options = ServiceOptions(analyses=ANALYSES, analysis=FakeAnalysis() if measuring else None)
    return RolloutService(store=store or FakeStore(), traffic=traffic, clock=ManualClock(T0),
                          gates=gates or open_gates(), options=options,
                          new_id=lambda canary, now: "r1")


def _route(target: Target = TARGET, canary: str = CANARY) -> FakeTarget:
    return FakeTarget(target=target, stable="llm-pool", canary=canary, baseline=BASELINE,
                      pair=Pair(stable=100, canary=0))


# ---- names and gates --------------------------------------------------------------------


@pytest.mark.parametrize(("names", "refused"), [
    ({"route": "Bad_Route"}, "route `Bad_Route`"),
    ({"stable": "Bad_Pool"}, "stable pool `Bad_Pool`"),
    ({"rewrite": "Bad_Rewrite"}, "rewrite `Bad_Rewrite`"),
])
def test_every_name_a_start_carries_is_checked_before_anything_is_read_or_written(
    names: dict[str, Any], refused: str,
) -> None:
    service, store, target, _ = one_route_world(CANARY)
    with pytest.raises(InvalidInput) as answer:
        service.start(namespace="default", canary=CANARY, plan=PLAN, actor=ALICE, **names)
    assert str(answer.value) == f"{refused} {NOT_A_NAME}"
    assert store.saves == [] and target.writes == [] and target.reads == 0


def test_a_start_that_does_not_allow_gitops_is_refused_on_a_route_argo_cd_keeps() -> None:
    argo = ObjectFacts(kind="HTTPRoute", group="gateway.networking.k8s.io",
                       name="routes-to-llm",
                       annotations={"argocd.argoproj.io/tracking-id": "llm:gateway/x"})
    store, target = FakeStore(), _route()
    service = RolloutService(store=store, traffic=FakeTraffic(target), clock=ManualClock(T0),
                             gates=Gates(facts=FakeFacts(world(route=argo)),
                                         freezes=store.freezes))
    with pytest.raises(NotReady, match=r"\[gitops\].*kept by Argo CD"):
        service.start(namespace="default", canary=CANARY, plan=PLAN, actor=ALICE)
    assert store.saves == [] and target.writes == []


def test_a_start_takes_the_rule_in_the_namespace_it_names() -> None:
    staging = TARGET.model_copy(update={"namespace": "staging"})
    service = _service(NamedTraffic(_route(), _route(staging)), measuring=False)
    out = service.start(namespace="staging", canary=CANARY, plan=PLAN, actor=ALICE)
    assert out.rollout is not None and out.rollout.target == staging


# ---- rules marked by a rollout the store lost ---------------------------------------------


def _store_lost_r0(target: FakeTarget) -> None:
    target.marker = Marker(rollout_id="r0", step=0)
    target.pair = Pair(stable=90, canary=10)


def test_a_start_of_a_pool_an_unknown_rollout_was_moving_is_refused_with_its_commands() -> None:
    target = _route()
    _store_lost_r0(target)
    store = FakeStore()
    service = _service(FakeTraffic(target), store, measuring=False)
    with pytest.raises(NeedsOperator) as refused:
        service.start(namespace="default", canary=CANARY, plan=PLAN, actor=ALICE)
    assert str(refused.value) == (
        "HTTPRoute default/routes-to-llm rule 0 is marked as owned by rollout r0 at step 1, "
        "which the store does not know (was Redis emptied?). New steps on it are refused until "
        "an operator decides: `rollout-bot recover llm-pool-version-2` rebuilds the rollout "
        "from the route (paused), or `rollout-bot release llm-pool-version-2` drops the marker "
        "and leaves the weights as they are")
    assert store.saves == [] and target.writes == []


def test_a_start_of_another_pool_on_a_rule_an_unknown_rollout_owns_is_refused() -> None:
    target = _route(canary="llm-pool-version-1")  # r0 moved traffic to version-1 here
    _store_lost_r0(target)
    store = FakeStore()
    service = _service(NamedTraffic(target), store, measuring=False)
    with pytest.raises(NeedsOperator) as refused:
        service.start(namespace="default", canary=CANARY, plan=PLAN, actor=ALICE,
                      route="routes-to-llm")
    assert str(refused.value) == (
        "HTTPRoute default/routes-to-llm rule 0 is marked as owned by rollout r0 at step 1, "
        "which the store does not know (was Redis emptied?). A new rollout on it is refused "
        "until an operator decides: `rollout-bot recover POOL` with the pool (or adapter) that "
        "rollout was moving traffic to rebuilds it (paused), or `rollout-bot release POOL` "
        "drops the marker")
    assert store.saves == [] and target.writes == []


# ---- the analysis a start and a recovery choose -------------------------------------------


def test_without_prometheus_asking_for_an_analysis_says_why_and_what_to_do() -> None:
    service = _service(FakeTraffic(_route()), measuring=False)
    with pytest.raises(InvalidInput) as refused:
        service.start(namespace="default", canary=CANARY, plan=PLAN, actor=ALICE,
                      analysis="quick")
    assert str(refused.value) == ("--analysis quick: this bot runs no canary analysis "
                                  "(PROMETHEUS_URL is not configured); start without it")


def test_an_adapter_rollout_runs_its_analysis_on_adapters_of_the_rewrite_pool_and_model(
) -> None:
    rewrite = Target(kind=TargetKind.REWRITE, namespace="default", name="small-segment-lora",
                     rule=0)
    adapter = FakeTarget(target=rewrite, stable="lora-a", canary="lora-b", baseline=BASELINE,
                         pair=Pair(stable=100, canary=0))
    lora = RewriteFacts(name="small-segment-lora", pool="llm-pool",
                        rules=(RewriteRule(models=("llama-3",), targets=("lora-a",)),))
    gates = Gates(facts=FakeFacts(world(rewrite_group=LLMD_GROUP, rewrites=(lora,))),
                  freezes=FakeFreezes())
    service = _service(NamedTraffic(adapter, pool="llm-pool", model="llama-3"), gates=gates)
    out = service.start(namespace="default", canary="lora-b", plan=PLAN, actor=ALICE,
                        rewrite="small-segment-lora")
    assert out.rollout is not None
    assert out.rollout.analysis == AnalysisSetup(name="quick", spec=spec(),
                                                 kind=SubjectKind.ADAPTER, pool="llm-pool",
                                                 model="llama-3")


def test_a_recovered_rollout_runs_the_analysis_its_record_names_on_its_pools() -> None:
    target = _route()
    before = _service(NamedTraffic(target))
    before.start(namespace="default", canary=CANARY, plan=PLAN, actor=ALICE, analysis="strict")
    before.approve(REF, actor=BOB)
    service = _service(NamedTraffic(target))  # Redis emptied: a new store, the same cluster
    out = service.recover(namespace="default", canary=CANARY, actor=CAROL)
    assert out.rollout is not None
    assert out.rollout.analysis == AnalysisSetup(name="strict", spec=spec(failure_limit=0),
                                                 kind=SubjectKind.POOL)
    assert (out.rollout.step, out.rollout.phase) == (0, Phase.PAUSED)


# ---- a first write whose answer was lost --------------------------------------------------


def _starting(arm: Callable[[FakeTarget], None]) -> tuple[RolloutService, FakeStore,
                                                           FakeTarget]:
    target = _route()
    arm(target)
    store = FakeStore()
    return _service(FakeTraffic(target), store, measuring=False), store, target


def _start(service: RolloutService) -> Any:
    return service.start(namespace="default", canary=CANARY, plan=PLAN, actor=ALICE)


def test_a_first_write_that_landed_though_its_answer_was_lost_is_the_start_as_recorded(
) -> None:
    def lose(t: FakeTarget) -> None:
        t.lose_answer = WriteUnknown("the API server did not answer")

    service, store, _ = _starting(lose)
    out = _start(service)
    recorded = service.get(REF)
    assert out.rollout == recorded and recorded.version == 1
    assert out.events == tuple(store.events) and [e.action for e in out.events] == [
        AuditAction.STARTED]
    assert out.ok and out.message.startswith("Rollout r1 started: llm-pool → llm-pool-version-2;")


def _paused_with(service: RolloutService, store: FakeStore, message: str) -> None:
    out = _start(service)
    assert (out.ok, out.message) == (False, message)
    r: Rollout = service.get(REF)
    assert r.pause is not None
    assert (r.pause.kind, r.pause.reason, r.pause.by) == (PauseKind.FAILURE, message, ALICE)
    assert (store.events[-1].action, store.events[-1].detail) == (AuditAction.PAUSED, message)


def test_a_first_write_a_fresh_read_does_not_show_pauses_saying_it_may_still_land() -> None:
    def lose(t: FakeTarget) -> None:
        t.fail_next = WriteUnknown("the API server did not answer")

    service, store, target = _starting(lose)
    _paused_with(service, store, (
        "Not known whether this landed: the API server did not answer; a fresh read shows it "
        "has not landed, but the write may still be in flight. The rollout is paused; the "
        "scheduler's sweep records the change if it lands."))
    assert target.pair == Pair(stable=100, canary=0)


def test_a_first_write_the_cluster_cannot_be_read_after_pauses_saying_so() -> None:
    def lose(t: FakeTarget) -> None:
        t.fail_next = WriteUnknown("the API server did not answer")
        t.then_unreadable = ClusterUnavailable("the API server is unreachable")

    service, store, _ = _starting(lose)
    _paused_with(service, store, (
        "Not known whether this landed: the API server did not answer; the cluster could not "
        "be read again to tell. The rollout is paused; the scheduler's sweep records the "
        "change if it lands."))

"""The command path's writes and saves over fakes, on an injected clock: what a save that
fails after its change landed answers, a write whose answer was lost keeps what reconcile
found, a rollback by id preempts, a vanished rollout gives its lock back, the sweep decides
on the reloaded state, and the scheduler's analysis acts as the scheduler."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from rollout.domain.analysis import AnalysisFile
from rollout.domain.clock import ManualClock
from rollout.domain.errors import (
    ClusterUnavailable,
    LockLapsed,
    NotFound,
    NotReady,
    Superseded,
    Unrecorded,
    WriteUnknown,
)
from rollout.domain.facts import ClusterFacts
from rollout.domain.models import Actor, AuditAction, PauseKind, Phase, Target, TargetKind
from rollout.domain.plan import build_plan
from rollout.domain.split import Marker, MarkerState, Pair, expected_pair
from rollout.lock_keeper import LockKeeper
from rollout.ports import Lease, Opening
from rollout.service import Gates, Outcome, Ref, RolloutService, ServiceOptions
from tests.unit.analysis_builders import spec
from tests.unit.builders import ALICE, BASELINE, BOB, CAROL, T0, TARGET
from tests.unit.facts_builders import CANARY, STABLE, pods, world
from tests.unit.fakes import (
    FakeAnalysis,
    FakeFacts,
    FakeStore,
    FakeTarget,
    FakeTraffic,
    open_gates,
)

REF = Ref(canary=CANARY)


class World:
    def __init__(self, *, options: ServiceOptions | None = None) -> None:
        self.store = FakeStore()
        self.target = FakeTarget(target=TARGET, stable=STABLE, canary=CANARY,
                                 baseline=BASELINE, pair=Pair(stable=100, canary=0))
        self.clock = ManualClock(T0)
        self.facts = FakeFacts(world())
        self.service = RolloutService(
            store=self.store, traffic=FakeTraffic(self.target), clock=self.clock,
            gates=Gates(facts=self.facts, freezes=self.store.freezes), options=options,
            new_id=lambda canary, now: "r1")

    def start(self, steps: list[int], *, interval: int = 0) -> None:
        self.service.start(namespace="default", canary=CANARY, actor=ALICE,
                           plan=build_plan(steps, interval_seconds=interval))

    def at_first_step(self, *, interval: int = 0) -> None:
        self.start([10, 50, 100], interval=interval)
        assert self.service.approve(REF, actor=BOB).ok


# ---- a save that fails after the change landed ------------------------------------------------


def test_a_step_whose_save_a_rollback_overtook_says_the_rollback_undoes_it() -> None:
    w = World()
    w.start([10, 50, 100])
    w.store.fail_saves = Superseded("rollout r1 changed while this operation ran")
    with pytest.raises(Superseded) as overtaken:
        w.service.approve(REF, actor=BOB)
    assert overtaken.value.landed
    assert str(overtaken.value) == (
        "the change landed in the cluster, then a rollback took over this target before it "
        "was recorded; the rollback puts the weights back as they were before the rollout")


def test_a_step_whose_lock_lapsed_before_its_save_says_it_landed_and_is_safe_to_repeat() -> None:
    w = World()
    w.start([10, 50, 100])
    w.store.fail_saves = LockLapsed("the lock expired", retry_after=3)
    with pytest.raises(Unrecorded) as unrecorded:
        w.service.approve(REF, actor=BOB)
    assert unrecorded.value.retry_after == 3
    assert str(unrecorded.value) == (
        "the change landed in the cluster but could not be recorded: this command's lock "
        "lapsed before the save. The next command or the scheduler's sweep finds it on the "
        "route and records it; repeating this is safe")
    assert w.target.pair == Pair(stable=90, canary=10)


# ---- writes ---------------------------------------------------------------------------------


def test_a_lost_answer_after_an_adopted_step_pauses_with_the_reason_and_keeps_the_adoption(
) -> None:
    w = World()
    w.at_first_step()
    w.clock.advance(seconds=3600)
    r = w.service.get(REF)
    w.target.pair, w.target.marker = expected_pair(r, 1), Marker(rollout_id="r1", step=1)
    w.target.fail_next = WriteUnknown("the API did not answer")
    out = w.service.approve(REF, actor=BOB)
    assert out.ok is False
    assert out.message == (
        "Not known whether this landed: the API did not answer; a fresh read shows it has not "
        "landed, but the write may still be in flight. The rollout is paused; the scheduler's "
        "sweep records the change if it lands.")
    r = w.service.get(REF)
    assert r.step == 1 and r.phase is Phase.PAUSED and r.pause is not None
    assert (r.pause.kind, r.pause.reason, r.pause.by) == (PauseKind.FAILURE, out.message, BOB)
    assert [e.action for e in w.store.events[-2:]] == [AuditAction.RECOVERED,
                                                       AuditAction.PAUSED]


def test_a_retire_over_weights_changed_by_hand_answers_with_the_rollout_unchanged() -> None:
    w = World()
    w.start([100])
    assert w.service.approve(REF, actor=BOB).ok
    done = w.service.get(REF)
    assert done.phase is Phase.COMPLETED
    w.target.pair = Pair(stable=10, canary=90)
    out = w.service.retire(REF, actor=CAROL)
    assert (out.rollout, out.changed, out.ok) == (done, False, False)
    assert w.service.get(REF) == done


def test_a_rollback_by_id_preempts_an_operation_holding_the_lock() -> None:
    w = World()
    w.at_first_step()
    w.store.acquire(TARGET.object_key)  # another command is still working on the rule
    out = w.service.rollback(Ref(rollout_id="r1"), actor=BOB, reason="bad answers")
    assert out.ok and w.service.get(REF).phase is Phase.ROLLED_BACK
    assert w.target.pair == Pair(stable=100, canary=0)


def test_a_rollout_gone_between_the_reads_is_refused_and_its_lock_given_back() -> None:
    w = World()
    w.at_first_step()
    real_open = w.store.open

    def gone(**kwargs: Any) -> Opening:
        opening: Opening = real_open(**kwargs)
        return replace(opening, rollout=None)

    w.store.open = gone  # type: ignore[method-assign]
    with pytest.raises(NotFound):
        w.service.approve(REF, actor=BOB)
    assert w.store.locks == {}


def test_a_start_opens_its_targets_lock_as_a_plain_command_not_a_preempting_one() -> None:
    """The store is told a boolean (the Redis store encodes it as 0 or 1)."""
    w = World()
    asked: list[dict[str, Any]] = []
    real_open = w.store.open

    def opening(**kwargs: Any) -> Opening:
        asked.append(kwargs)
        result: Opening = real_open(**kwargs)
        return result

    w.store.open = opening  # type: ignore[method-assign]
    w.start([10, 50, 100])
    [first] = asked
    assert first["key"] == TARGET.object_key and first.get("preempt", False) is False


# ---- the scheduler ----------------------------------------------------------------------------


def test_a_sweep_of_a_rollout_paused_since_it_was_read_changes_nothing() -> None:
    w = World()
    w.at_first_step(interval=900)
    seen = w.service.get(REF)
    assert seen.phase is Phase.BAKING
    w.facts.facts = world(pods=pods(STABLE, 1) + pods(CANARY, 4))
    w.service.pause(REF, actor=CAROL, reason="looking")
    paused = w.service.get(REF)
    out = w.service.watch(seen)
    assert out is not None
    assert (out.rollout, out.message, out.changed, out.ok) == (paused, "", False, True)
    assert w.service.get(REF) == paused


def _failing_analysis(error: ClusterUnavailable) -> tuple[World, Outcome | None]:
    """An analysis run at step 1 that fails the canary, whose rollback meets `error`."""
    metrics = FakeAnalysis({("err", CANARY): 0.2, ("err", STABLE): 0.01,
                            ("ttft", CANARY): 1.0, ("ttft", STABLE): 1.0,
                            ("req_total", CANARY): 100, ("req_total", STABLE): 900})
    analyses = AnalysisFile(default="strict", analyses={"strict": spec(failure_limit=0)})
    w = World(options=ServiceOptions(analyses=analyses, analysis=metrics))
    w.at_first_step(interval=120)
    w.clock.advance(seconds=90)
    w.target.fail_next = error
    return w, w.service.analyse(w.service.get(REF))


def test_an_analysis_rollback_that_cannot_be_written_pauses_keeping_the_failure() -> None:
    """The canary failed its analysis and the rollback did not land: the pause, the audit and
    the answer still say that it failed, and the failure stays counted."""
    w, out = _failing_analysis(ClusterUnavailable("the API server is unreachable"))
    assert out is not None and out.ok is False
    r = w.service.get(REF)
    assert r.phase is Phase.PAUSED and r.pause is not None
    assert (r.pause.kind, r.pause.by) == (PauseKind.FAILURE, Actor.scheduler())
    assert w.target.pair == Pair(stable=90, canary=10)
    verdict = "canary analysis `strict` of step 1 (10%): check error-rate failed 1 time"
    met = "; rolling back: the API server is unreachable"
    assert r.pause.reason.startswith(verdict) and r.pause.reason.endswith(met)
    assert r.step_analysis is not None and r.step_analysis.failures == 1
    failed, paused = w.store.events[-2:]
    assert (failed.action, failed.step, paused.action) == (
        AuditAction.ANALYSIS_FAILED, 0, AuditAction.PAUSED)
    assert paused.detail == r.pause.reason
    assert out.message.startswith(verdict)
    assert out.message.endswith("; rolling back: Not applied: the API server "
                                "is unreachable. The rollout is paused; resume or roll back "
                                "once the cause is fixed.")


def test_an_analysis_rollback_whose_answer_was_lost_keeps_the_failure_too() -> None:
    w, out = _failing_analysis(WriteUnknown("the API did not answer"))
    assert out is not None and out.ok is False
    r = w.service.get(REF)
    assert r.phase is Phase.PAUSED and r.pause is not None
    assert r.pause.reason.startswith("canary analysis `strict` of step 1 (10%): check "
                                     "error-rate failed 1 time")
    assert "; rolling back: Not known whether this landed" in r.pause.reason
    assert r.step_analysis is not None and r.step_analysis.failures == 1
    assert [e.action for e in w.store.events[-2:]] == [AuditAction.ANALYSIS_FAILED,
                                                      AuditAction.PAUSED]


# ---- release and the gates' reads -------------------------------------------------------------


def test_release_keeps_its_lock_with_the_keeper_while_it_clears_the_marker() -> None:
    keeper = LockKeeper(1.0, clock=lambda: 0.0, background=False)
    w = World(options=ServiceOptions(lock_keeper=keeper))
    w.target.pair = Pair(stable=90, canary=10)
    w.target.marker = Marker(rollout_id="r0", step=0, state=MarkerState.ACTIVE)
    kept: list[int] = []
    real_confirm = w.store.confirm

    def confirm(lease: Lease) -> None:
        kept.append(keeper.held())
        real_confirm(lease)

    w.store.confirm = confirm  # type: ignore[method-assign]
    out = w.service.release(namespace="default", canary=CANARY, actor=CAROL)
    assert out.message.startswith("Released HTTPRoute default/routes-to-llm rule 0")
    assert kept == [1] and keeper.held() == 0 and w.target.marker is None


def test_the_gates_of_an_adapter_rollout_read_the_namespace_with_its_rewrite() -> None:
    rewrite = Target(kind=TargetKind.REWRITE, namespace="default", name="small-segment-lora",
                     rule=0)
    target = FakeTarget(target=rewrite, stable="lora-a", canary="lora-b", baseline=BASELINE,
                        pair=Pair(stable=100, canary=0))
    seeded: ClusterFacts = world()
    facts = FakeFacts(seeded)
    asked: list[str | None] = []

    def read(namespace: str, *, route: str | None = None,
             rewrite: str | None = None) -> ClusterFacts:
        asked.append(rewrite)
        return seeded

    facts.read = read  # type: ignore[method-assign]
    service = RolloutService(gates=Gates(facts=facts, freezes=open_gates().freezes),
                             store=FakeStore(), traffic=FakeTraffic(target),
                             clock=ManualClock(T0))
    with pytest.raises(NotReady, match="InferenceModelRewrite small-segment-lora not found"):
        service.start(namespace="default", canary="lora-b", plan=build_plan([10, 100]),
                      actor=ALICE, rewrite="small-segment-lora")
    assert asked == ["small-segment-lora"]

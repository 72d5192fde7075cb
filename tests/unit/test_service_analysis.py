"""Canary analysis through the service over fakes, on an injected clock: a step's analysis
gates the approval request and the automatic step-up, a failure rolls back or pauses with the
failing check's values, inconclusive never passes, and a split mismatch pauses."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest

from handlers.analysis_view import analysis_view
from handlers.cards import render_card
from rollout.domain.analysis import AnalysisFile, QueryResult, ResultKind, SubjectKind
from rollout.domain.clock import ManualClock
from rollout.domain.errors import ClusterUnavailable, Conflict, InvalidInput, NeedsOperator
from rollout.domain.models import PauseKind, Phase, Rollout, TargetKind
from rollout.domain.plan import build_plan
from rollout.domain.split import Pair
from rollout.service import Gates, Ref, RolloutService, ServiceOptions
from tests.unit.analysis_builders import spec
from tests.unit.builders import ALICE, BASELINE, BOB, CAROL, T0, TARGET
from tests.unit.facts_builders import pods, world
from tests.unit.fakes import (
    FakeAnalysis,
    FakeFacts,
    FakeStore,
    FakeTarget,
    FakeTraffic,
)

STABLE, CANARY = "llm-pool", "llm-pool-version-2"
REF = Ref(canary=CANARY)
BAKE = 120  # warm-up 60s, then a run every 30s: the first run is due at +90s


def healthy(share: float = 0.10) -> dict[tuple[str, str], float]:
    canary = round(1000 * share)
    return {("err", CANARY): 0.01, ("err", STABLE): 0.01, ("ttft", CANARY): 1.0,
            ("ttft", STABLE): 1.0, ("req_total", CANARY): canary,
            ("req_total", STABLE): 1000 - canary}


class World:
    def __init__(self, *, port: bool = True, **spec_overrides: Any) -> None:
        self.store = FakeStore()
        self.target = FakeTarget(target=TARGET, stable=STABLE, canary=CANARY,
                                 baseline=BASELINE, pair=Pair(stable=100, canary=0))
        self.clock = ManualClock(T0)
        self.metrics = FakeAnalysis(healthy())
        analyses = AnalysisFile(default="quick", analyses={
            "quick": spec(**spec_overrides), "strict": spec(failure_limit=0)})
        options = ServiceOptions(analyses=analyses, analysis=self.metrics if port else None)
        gates = Gates(facts=FakeFacts(world()), freezes=self.store.freezes)
        self.service = RolloutService(store=self.store, traffic=FakeTraffic(self.target),
                                      clock=self.clock, gates=gates, options=options,
                                      new_id=lambda canary, now: "r1")

    def start(self, steps: tuple[int, ...] = (10, 50, 100), auto: bool = False,
              analysis: str | None = None) -> Rollout:
        out = self.service.start(namespace="default", canary=CANARY, actor=ALICE,
                                 plan=build_plan(steps, interval_seconds=BAKE, auto=auto),
                                 analysis=analysis)
        assert out.rollout is not None
        return out.rollout

    def at(self, seconds: float) -> Rollout:
        """Move the clock to T0 + seconds and do what the scheduler would: tick, analyse."""
        self.clock.set(T0)
        self.clock.advance(seconds)
        r = self.service.get(REF)
        if r.next_due_at is not None and r.next_due_at <= self.clock.now():
            self.service.tick(r.id)
        self.service.analyse(self.service.get(REF))
        return self.service.get(REF)

    def _service_recorded(self, recorded: object) -> object:
        return self.service._recorded_analysis(recorded, TargetKind.ROUTE)

    def events(self) -> list[str]:
        return [e.action for e in self.service.history(REF)]


def test_the_next_step_is_requested_only_once_the_analysis_passed() -> None:
    w = World()
    w.start()
    w.metrics.asked.clear()  # the start's check of the queries, on the stable side
    w.service.approve(REF, actor=BOB)  # step 1 (10%) lands at T0
    assert w.at(60).step_analysis is not None  # warming up: nothing asked yet
    assert w.metrics.asked == []
    w.metrics.down = True  # the one run before the bake ends is inconclusive
    r = w.at(90)
    assert len(w.metrics.asked) == 1  # once unreachable, the rest of the run is not asked
    assert r.phase is Phase.BAKING and "analysis_passed" not in w.events()
    r = w.at(BAKE)  # the bake is over, the analysis has not passed: no approval request
    assert r.phase is Phase.BAKING and r.next_due_at is None
    assert w.events()[-1] == "analysis_awaited"
    with pytest.raises(Conflict, match="waits for the canary analysis of step 1"):
        w.service.approve(REF, actor=BOB)
    w.metrics.down = False
    w.metrics.instants.clear()
    r = w.at(150)  # the next run passes: the approval opens now
    assert r.phase is Phase.AWAITING_APPROVAL
    # the run's queries share its instant
    assert len(w.metrics.instants) > 1 and set(w.metrics.instants) == {w.clock.now()}
    assert w.events()[-2:] == ["analysis_passed", "approval_requested"]
    assert r.step_analysis is not None and r.step_analysis.latest is not None
    assert {c.name for c in r.step_analysis.latest.checks} == {"error-rate", "ttft-p95"}


def test_an_automatic_step_up_waits_for_the_analysis_then_applies() -> None:
    w = World()
    w.start(auto=True)
    w.service.approve_plan(REF, actor=BOB)
    w.at(0)  # step 1 applies on its own (no analysis before the first step)
    assert w.target.pair == Pair(stable=90, canary=10)
    w.metrics.values.update({("req_total", CANARY): 10, ("req_total", STABLE): 90})  # few
    w.at(90)
    r = w.at(BAKE)
    assert r.step == 0 and w.target.pair == Pair(stable=90, canary=10)
    w.metrics.values.update(healthy())
    r = w.at(150)
    assert r.step == 1 and w.target.pair == Pair(stable=50, canary=50)
    assert r.step_analysis is not None and r.step_analysis.step == 1  # a fresh analysis


def test_a_failure_past_the_limit_rolls_back_with_the_failing_check_and_its_values() -> None:
    w = World()
    w.start()
    w.service.approve(REF, actor=BOB)
    w.metrics.values[("err", CANARY)] = 0.2
    r = w.at(90)  # one failure is within the limit of 1: the step waits
    assert r.phase is Phase.BAKING and r.step_analysis is not None
    assert r.step_analysis.failures == 1
    r = w.at(120)
    assert r.phase is Phase.ROLLED_BACK
    assert w.target.pair == Pair(stable=100, canary=0)
    failed = [e for e in w.service.history(REF) if e.action == "analysis_failed"]
    assert len(failed) == 1
    assert "error-rate" in failed[0].detail and "canary 0.2 " in failed[0].detail
    assert "threshold 0.02" in failed[0].detail
    assert w.events()[-1] == "rolled_back"


def test_an_analysis_that_pauses_on_failure_pauses_and_starts_over_on_resume() -> None:
    w = World(on_failure="pause", failure_limit=0)
    w.start()
    w.service.approve(REF, actor=BOB)
    w.metrics.values[("ttft", CANARY)] = 2.0  # 2.0 > 1.2 x 1.0
    r = w.at(90)
    assert r.phase is Phase.PAUSED and r.pause is not None
    assert r.pause.kind is PauseKind.ANALYSIS and "ttft-p95" in r.pause.reason
    assert w.target.pair == Pair(stable=90, canary=10)  # weights stay for a person to look
    w.metrics.values.update(healthy())
    w.clock.advance(10)
    resumed = w.service.resume(REF, actor=BOB).rollout
    assert resumed is not None and resumed.step_analysis is not None
    assert resumed.step_analysis.failures == 0
    assert resumed.step_analysis.started_at == w.clock.now()


def test_inconclusive_never_passes_and_pauses_after_its_timeout() -> None:
    w = World(inconclusive_timeout="2m")
    w.start()
    w.service.approve(REF, actor=BOB)
    w.metrics.down = True
    for seconds in (90, 120, 150, 180):
        r = w.at(seconds)
        assert r.phase is Phase.BAKING  # waiting, never passing
    r = w.at(210)  # inconclusive since +90: 2m at +210
    assert r.phase is Phase.PAUSED and r.pause is not None
    assert r.pause.kind is PauseKind.ANALYSIS
    assert "inconclusive for 2m" in r.pause.reason and "unreachable" in r.pause.reason
    assert "approval_requested" not in w.events()
    assert w.events()[-2:] == ["analysis_inconclusive", "paused"]


def test_a_split_that_does_not_follow_the_weights_pauses() -> None:
    w = World()
    w.start()
    w.service.approve(REF, actor=BOB)
    w.metrics.values.update(healthy(share=0.5))  # a gateway that ignores the weights
    r = w.at(90)
    assert r.phase is Phase.PAUSED and r.pause is not None
    assert r.step_analysis is not None and r.step_analysis.mismatch is not None
    assert "split mismatch" in r.pause.reason and "the route says 10.0%" in r.pause.reason


def test_an_unknown_analysis_is_refused_and_nothing_changes() -> None:
    w = World()
    with pytest.raises(InvalidInput, match="no analysis 'nope': choose one of quick, strict"):
        w.start(analysis="nope")
    assert w.store.saves == [] and w.target.writes == []
    assert w.start(analysis="strict").analysis is not None


def test_without_prometheus_steps_are_not_gated_and_analysis_is_refused() -> None:
    w = World(port=False)
    with pytest.raises(InvalidInput, match="PROMETHEUS_URL is not configured"):
        w.start(analysis="quick")
    assert w.store.saves == []
    r = w.start()
    assert r.analysis is None
    w.service.approve(REF, actor=BOB)
    assert w.at(BAKE).phase is Phase.AWAITING_APPROVAL  # no analysis to wait for


def test_a_run_taken_before_the_step_moved_is_not_counted() -> None:
    w = World()
    w.start()
    w.service.approve(REF, actor=BOB)
    w.clock.advance(90)
    stale = w.service.get(REF)  # the scheduler read this, then a person paused
    w.service.pause(REF, actor=BOB)
    assert w.service.analyse(stale) is not None
    r = w.service.get(REF)
    assert r.step_analysis is not None and r.step_analysis.latest is None


def test_a_rollout_saved_before_analysis_existed_still_loads() -> None:
    w = World()
    data = w.start().model_dump(mode="json")
    del data["analysis"], data["step_analysis"]
    old = Rollout.model_validate(data)
    assert old.analysis is None and old.step_analysis is None


def test_a_recovery_record_names_its_analysis_and_the_bot_runs_it_again_from_its_file() -> None:
    w = World()
    setup = w.service._recorded_analysis({"name": "strict", "pool": "p", "model": "m"},
                                         TargetKind.ROUTE)
    assert setup is not None
    assert (setup.name, setup.pool, setup.model, setup.kind) == \
        ("strict", "p", "m", SubjectKind.POOL)
    assert setup.spec.failure_limit == 0
    adapter = w.service._recorded_analysis({"name": "quick"}, TargetKind.REWRITE)
    assert adapter is not None and (adapter.pool, adapter.model) == ("", "")
    assert adapter.kind is SubjectKind.ADAPTER


def test_a_recorded_analysis_without_an_analysis_file_is_refused_saying_so() -> None:
    w = World()
    w.service.options = replace(w.service.options, analyses=None)
    with pytest.raises(NeedsOperator) as refused:
        w._service_recorded({"name": "quick"})
    assert str(refused.value) == (
        "the rollout ran canary analysis 'quick', which this bot cannot run (this bot has no "
        "analysis file); brought back without it, its steps would go on unmeasured. Put the "
        "analysis back in ROLLOUT_ANALYSIS_FILE, or recover with --without-analysis to go on "
        "gated by approvals and bake times alone")


def _lost_and_redeployed_without(w: World, name: str) -> None:
    """Redis emptied and the bot redeployed with an analysis file that lacks `name`."""
    analyses = w.service.options.analyses
    assert analyses is not None
    left = {n: a for n, a in analyses.analyses.items() if n != name}
    after = RolloutService(
        store=FakeStore(), traffic=FakeTraffic(w.target), clock=w.clock,
        gates=Gates(facts=FakeFacts(world()), freezes=FakeStore().freezes),
        options=ServiceOptions(analyses=AnalysisFile(default=next(iter(left)), analyses=left),
                               analysis=w.metrics))
    w.service, w.store = after, after.store  # type: ignore[assignment]


def test_recover_refuses_an_analysis_gone_from_the_file_unless_told() -> None:
    w = World()
    w.start(auto=True)
    w.service.approve_plan(REF, actor=BOB)
    assert w.at(0).step == 0
    _lost_and_redeployed_without(w, "quick")
    with pytest.raises(NeedsOperator, match="canary analysis 'quick', which this bot cannot"):
        w.service.recover(namespace="default", canary=CANARY, actor=CAROL)
    assert w.store.saves == []
    w.service.recover(namespace="default", canary=CANARY, actor=CAROL, without_analysis=True)
    recovered = w.service.get(REF)
    assert recovered.analysis is None and recovered.phase is Phase.PAUSED


def test_a_record_naming_no_analysis_comes_back_without_one() -> None:
    assert World()._service_recorded(None) is None


@pytest.mark.parametrize(("recorded", "why"), [
    ("quick", "the record's analysis cannot be read"),
    ({}, "the record's analysis cannot be read"),
    ({"name": 3}, "the record's analysis cannot be read"),
    ({"name": "gone"}, "no analysis 'gone': choose one of quick, strict"),
])
def test_a_record_naming_an_analysis_this_bot_cannot_run_is_refused_unless_told(
    recorded: object, why: str,
) -> None:
    """Brought back without it, the rollout would step on unmeasured."""
    w = World()
    with pytest.raises(NeedsOperator) as refused:
        w._service_recorded(recorded)
    assert f"which this bot cannot run ({why}); brought back without it" in str(refused.value)
    assert "--without-analysis" in str(refused.value)
    assert w.service._recorded_analysis(recorded, TargetKind.ROUTE, without=True) is None


def test_without_prometheus_a_recorded_analysis_is_kept_and_never_passes() -> None:
    """A rollout recovered by a bot without PROMETHEUS_URL: resumed, its bake ends and no
    step follows; its runs are inconclusive until the timeout pauses it."""
    w = World()
    w.start(auto=True)
    w.service.approve_plan(REF, actor=BOB)
    assert w.at(0).step == 0
    after = RolloutService(  # Redis emptied; the bot redeployed without PROMETHEUS_URL
        store=FakeStore(), traffic=FakeTraffic(w.target), clock=w.clock,
        gates=Gates(facts=FakeFacts(world()), freezes=FakeStore().freezes),
        options=ServiceOptions(analyses=w.service.options.analyses, analysis=None))
    w.service, w.store = after, after.store  # type: ignore[assignment]
    w.service.recover(namespace="default", canary=CANARY, actor=CAROL)
    recovered = w.service.get(REF)
    assert recovered.analysis is not None and recovered.analysis.name == "quick"
    w.service.resume(REF, actor=BOB)
    r = w.at(BAKE + 600)
    assert r.step == 0 and w.target.pair == Pair(stable=90, canary=10)
    r = w.at(BAKE + 600 + 11 * 60)
    assert r.phase is Phase.PAUSED and r.pause is not None
    assert r.pause.kind is PauseKind.ANALYSIS and w.target.pair == Pair(stable=90, canary=10)


def _bake_over_before_the_analysis_passed(w: World) -> None:
    """An automatic rollout whose bake of step 1 ended before its analysis passed (too few
    requests); the metrics are healthy from here, so the run at +150 s passes and moves it
    on to step 2."""
    w.start(auto=True)
    w.service.approve_plan(REF, actor=BOB)
    w.at(0)  # step 1 applies on its own
    w.metrics.values.update({("req_total", CANARY): 10, ("req_total", STABLE): 90})  # few
    w.at(90)
    assert w.at(BAKE).next_due_at is None  # the bake is over, the analysis has not passed
    w.metrics.values.update(healthy())


def _held_by_a_freeze_when_the_analysis_passes(w: World) -> Rollout:
    """Frozen when the run that passes comes (at +150 s): the pass moves the rollout on to
    a step the freeze holds."""
    _bake_over_before_the_analysis_passed(w)
    w.service.freeze(actor=BOB, reason="incident 42")
    return w.at(150)


def test_an_approve_refused_for_the_analysis_names_the_freeze_that_holds_after_it() -> None:
    """Told only to wait for the analysis, a reviewer would wait, approve, and only then be
    refused for the freeze: the first refusal says both."""
    w = World()
    w.start()
    w.service.approve(REF, actor=BOB)
    w.service.freeze(actor=CAROL, reason="incident 42")
    with pytest.raises(Conflict) as baking:
        w.service.approve(REF, actor=BOB)
    assert str(baking.value) == (
        "step 1 (10%) is still baking for 2m; approval of step 2 (50%) opens at 12:02:00 UTC; "
        "rollouts are also frozen by carol since 2026-01-01 12:00:00 UTC: incident 42, and "
        "step-ups wait until an approver runs unfreeze")
    w.metrics.down = True
    w.at(BAKE)  # the bake is over, the analysis has not passed
    with pytest.raises(Conflict) as analysed:
        w.service.approve(REF, actor=BOB)
    assert str(analysed.value).startswith(
        "step 2 (50%) waits for the canary analysis of step 1 (10%): ")
    assert str(analysed.value).endswith(
        "; rollouts are also frozen by carol since 2026-01-01 12:00:00 UTC: incident 42, and "
        "step-ups wait until an approver runs unfreeze")
    w.service.unfreeze(actor=CAROL)
    with pytest.raises(Conflict) as thawed:
        w.service.approve(REF, actor=BOB)
    assert str(thawed.value) == str(analysed.value).partition("; rollouts are also")[0]


def test_a_refusal_that_is_not_a_wait_does_not_name_the_freeze() -> None:
    w = World()
    w.start()
    w.service.approve(REF, actor=BOB)
    w.service.pause(REF, actor=BOB, reason="looking")
    w.service.freeze(actor=CAROL, reason="incident 42")
    with pytest.raises(Conflict) as paused:
        w.service.approve(REF, actor=BOB)
    assert str(paused.value) == f"{CANARY} is paused: looking. Resume it first"


def test_an_analysis_pass_that_a_freeze_holds_is_kept_and_the_step_applies_once_lifted() -> None:
    w = World()
    r = _held_by_a_freeze_when_the_analysis_passes(w)
    assert r.step == 0 and w.target.pair == Pair(stable=90, canary=10)  # held
    assert r.step_analysis is not None and r.step_analysis.latest is not None
    assert r.step_analysis.latest.at == w.clock.now()  # the passing run is recorded
    assert "analysis_passed" in w.events()
    assert r.next_due_at == w.clock.now()  # the step is due, for the next tick
    asked = len(w.metrics.asked)
    w.at(155)  # held still, and the run is not asked again before its interval
    assert len(w.metrics.asked) == asked
    w.service.unfreeze(actor=BOB)
    r = w.at(160)  # the next tick applies it; no other analysis run is waited for
    assert r.step == 1 and w.target.pair == Pair(stable=50, canary=50)
    assert len(w.metrics.asked) == asked


def test_an_analysis_pass_that_waits_for_capacity_is_kept_and_the_wait_noted_once() -> None:
    w = World()
    facts = w.service.gates.facts
    assert isinstance(facts, FakeFacts)
    _bake_over_before_the_analysis_passed(w)
    facts.facts = world(pods=pods(STABLE, 4) + pods(CANARY, 1))  # 50% of 4 needs 2
    r = w.at(150)
    assert r.step == 0 and r.held.startswith("step to 50% waits")
    assert r.step_analysis is not None and r.step_analysis.passes_in_row == 1
    assert w.events()[-2:] == ["analysis_passed", "step_held"]
    facts.facts = world()  # the canary's pods became Ready
    r = w.at(160)
    assert r.step == 1 and w.target.pair == Pair(stable=50, canary=50) and r.held == ""


def test_an_analysis_pass_whose_step_fails_to_write_pauses_with_the_pass_kept() -> None:
    w = World()
    _bake_over_before_the_analysis_passed(w)
    w.target.fail_next = ClusterUnavailable("the API server did not answer")
    r = w.at(150)
    assert r.phase is Phase.PAUSED and r.pause is not None and r.step == 0
    assert "passing run; stepping up to step 2 (50%): the API server" in r.pause.reason
    assert r.step_analysis is not None and r.step_analysis.passes_in_row == 1
    assert w.events()[-2:] == ["analysis_passed", "paused"]  # resume starts it over


def test_an_open_approval_waits_again_while_a_later_run_does_not_pass() -> None:
    w = World()
    w.start()
    w.service.approve(REF, actor=BOB)  # step 1 (10%)
    assert w.at(150).phase is Phase.AWAITING_APPROVAL  # passed: the approval is open
    w.metrics.down = True
    assert "rollout_approve" in str(render_card(w.service.get(REF), now=w.clock.now()).blocks)
    w.at(180)  # the next run is inconclusive
    before = w.service.get(REF)
    # the card no longer offers Approve
    assert "rollout_approve" not in str(render_card(before, now=w.clock.now()).blocks)
    with pytest.raises(Conflict, match=r"step 2 \(50%\) waits for the canary analysis of "
                                       r"step 1 \(10%\) to pass again: inconclusive"):
        w.service.approve(REF, actor=CAROL)
    assert w.service.get(REF) == before and w.target.pair == Pair(stable=90, canary=10)
    w.metrics.values[("err", CANARY)] = 0.03  # a failure, within the limit of 1
    w.metrics.down = False
    assert w.at(210).phase is Phase.AWAITING_APPROVAL
    with pytest.raises(Conflict, match="to pass again: "):
        w.service.approve(REF, actor=CAROL)
    w.metrics.values.update(healthy())
    w.at(240)  # passes again
    assert w.service.approve(REF, actor=CAROL).ok
    assert w.target.pair == Pair(stable=50, canary=50)


def test_after_a_resume_over_weights_changed_by_hand_the_split_is_measured_against_those() -> None:
    w = World()
    w.start()
    w.service.approve(REF, actor=BOB)  # step 1: 90 / 10
    w.target.pair = Pair(stable=70, canary=30)  # changed by hand
    w.service.watch(w.service.get(REF))
    assert w.service.get(REF).phase is Phase.PAUSED
    w.clock.set(T0 + timedelta(seconds=5))
    w.service.resume(REF, actor=BOB)  # the person's weights stand until the next step
    w.metrics.values.update(healthy(share=0.30))  # traffic follows them
    r = w.at(100)  # warm-up over, the first run
    assert r.phase is Phase.BAKING, r.pause
    assert r.step_analysis is not None and r.step_analysis.latest is not None
    assert r.step_analysis.latest.split is not None
    assert r.step_analysis.latest.split.expected == pytest.approx(0.30)


def test_a_rollout_stopped_during_warm_up_does_not_promise_a_first_run() -> None:
    for stop in ("rollback", "pause"):
        w = World()
        w.start()
        w.service.approve(REF, actor=BOB)
        getattr(w.service, stop)(REF, actor=BOB, reason="look")
        w.clock.advance(3600)
        headline = analysis_view(w.service.get(REF), w.clock.now()).headline
        assert "first run at" not in headline
        assert headline == "canary analysis `quick` of step 1: pending " + (
            "(no run came before it was rolled back)" if stop == "rollback"
            else "(no run while paused; resuming starts it over)")


def test_a_rollout_stopped_after_a_run_keeps_that_runs_reason() -> None:
    w = World()
    w.start()
    w.service.approve(REF, actor=BOB)
    w.metrics.values[("err", CANARY)] = 0.2  # a failure within the limit: pending
    w.at(90)
    w.service.rollback(REF, actor=BOB, reason="look")
    headline = analysis_view(w.service.get(REF), w.clock.now()).headline
    assert "failed 1 time" in headline and "no run came" not in headline


def test_while_the_analysis_holds_an_open_approval_no_reminder_or_timeout_counts() -> None:
    w = World(inconclusive_timeout="2h")
    w.service.options = replace(w.service.options, approval_timeout_seconds=600,
                                reminder_seconds=120)
    w.start()
    w.service.approve(REF, actor=BOB)
    assert w.at(150).phase is Phase.AWAITING_APPROVAL  # opened at +150 s
    w.metrics.down = True  # every run from here is inconclusive
    held = w.at(180)
    assert held.approval_held_at == w.clock.now() and held.next_due_at is None
    for t in range(210, 1200, 30):  # past the 10 min timeout counted from the opening
        r = w.at(t)
        assert r.phase is Phase.AWAITING_APPROVAL, r.pause
    assert "reminder" not in w.events()
    w.metrics.down = False
    reopened = w.at(1200)  # passes again: the clocks go on where they stopped, at +30 s
    assert reopened.approval_held_at is None
    assert reopened.awaiting_since == T0 + timedelta(seconds=150 + (1200 - 180))
    assert w.events()[-1] == "analysis_passed"  # no new request: nobody is pinged again
    assert w.events().count("approval_requested") == 1
    assert w.service.approve(REF, actor=CAROL).ok


def test_a_flapping_analysis_neither_pings_at_each_pass_nor_keeps_the_timeout_off() -> None:
    """Runs every 30 s, alternately inconclusive and passing: the approval is held half of
    the time, so the 10 min timeout comes after 20 min, and the reminders every 4 min."""
    w = World(inconclusive_timeout="2h")
    w.service.options = replace(w.service.options, approval_timeout_seconds=600,
                                reminder_seconds=120)
    w.start()
    w.service.approve(REF, actor=BOB)
    assert w.at(150).phase is Phase.AWAITING_APPROVAL
    t = 150
    while w.service.get(REF).phase is Phase.AWAITING_APPROVAL and t < 3600:
        t += 30
        w.metrics.down = not w.metrics.down
        w.at(t)
    r = w.service.get(REF)
    assert r.phase is Phase.PAUSED and r.pause is not None and r.pause.kind is PauseKind.TIMEOUT
    assert 150 + 2 * 600 - 60 <= t <= 150 + 2 * 600 + 60
    assert w.events().count("approval_requested") == 1
    assert 3 <= w.events().count("reminder") <= 5


def test_an_analysis_pass_whose_step_meets_drift_pauses_with_the_pass_kept() -> None:
    w = World()
    _bake_over_before_the_analysis_passed(w)
    w.target.edit_before_write = Pair(stable=80, canary=20)  # a person, between read and write
    r = w.at(150)
    assert r.phase is Phase.PAUSED and r.pause is not None and r.pause.kind is PauseKind.DRIFT
    assert r.step_analysis is not None and r.step_analysis.passes_in_row == 1
    assert w.events()[-2:] == ["analysis_passed", "paused"]


def test_a_released_approval_reminds_at_the_last_reminder_plus_the_interval_moved_on() -> None:
    w = World(inconclusive_timeout="2h")
    w.service.options = replace(w.service.options, reminder_seconds=120)
    w.start()
    w.service.approve(REF, actor=BOB)
    assert w.at(150).phase is Phase.AWAITING_APPROVAL  # opened at +150 s
    assert w.at(270).last_reminder_at == T0 + timedelta(seconds=270)  # reminded
    w.metrics.down = True
    w.at(300)  # held from +300 s
    w.metrics.down = False
    released = w.at(600)  # 300 s held: the last reminder counts as at +570 s
    assert released.last_reminder_at == T0 + timedelta(seconds=570)
    assert released.next_due_at == T0 + timedelta(seconds=690)


def test_a_run_that_stops_passing_during_the_bake_leaves_the_bake_to_end_as_it_would() -> None:
    w = World(interval="10s")  # runs at +60, +70, … s
    w.start()
    w.service.approve(REF, actor=BOB)  # step 1, a bake of 120 s
    w.at(90)  # passes
    w.metrics.down = True
    r = w.at(100)  # inconclusive, still baking
    assert r.phase is Phase.BAKING and r.approval_held_at is None
    assert r.next_due_at == T0 + timedelta(seconds=BAKE)
    w.at(BAKE)
    assert w.events()[-1] == "analysis_awaited"


def test_a_start_whose_analysis_query_prometheus_refuses_changes_nothing() -> None:
    """Found at the first step, the rollout would sit inconclusive with traffic moved."""
    w = World()
    w.metrics.refused.add("ttft")
    writes = list(w.target.writes)
    with pytest.raises(InvalidInput) as refused:
        w.start()
    assert str(refused.value) == (
        "Prometheus refuses the query ttft-p95/stable of canary analysis 'quick' (bad_data: "
        "parse error): fix it in the analysis file (ROLLOUT_ANALYSIS_FILE) and start again; "
        "nothing was changed")
    assert w.store.saves == [] and w.target.writes == writes
    assert all('job="llm-pool"' in q for q in w.metrics.asked)  # the stable side only
    assert set(w.metrics.instants) == {w.clock.now()}


LOGIN_PAGE = ("Prometheus at http://prometheus.example did not answer as Prometheus' query "
              "API (HTTP 401)")


class Answering(FakeAnalysis):
    """A server that answers every query with `result`, as the adapter read it."""

    def __init__(self, result: QueryResult) -> None:
        super().__init__()
        self.result = result

    def query(self, promql: str, at: datetime) -> QueryResult:
        self.asked.append(promql)
        return self.result


def not_prometheus(*, flagged: bool = True) -> Answering:
    """A 401 page; `flagged` False keeps the wording and drops the adapter's mark."""
    return Answering(QueryResult(kind=ResultKind.ERROR, reason=LOGIN_PAGE,
                                 not_prometheus=flagged))


def _answered_by(w: World, port: FakeAnalysis) -> FakeAnalysis:
    w.service.options = replace(w.service.options, analysis=port)
    return port


def _refusal(w: World, port: FakeAnalysis) -> str:
    """What `start` answers when `port` answers its check: a refusal after one query, with
    nothing saved or written."""
    _answered_by(w, port)
    writes = list(w.target.writes)
    with pytest.raises(InvalidInput) as refused:
        w.start()
    assert w.store.saves == [] and w.target.writes == writes
    assert len(port.asked) == 1
    return str(refused.value)


def test_a_start_where_the_server_is_not_prometheus_points_at_the_url_and_changes_nothing(
        ) -> None:
    """A 401 or a wrong path is PROMETHEUS_URL's fault or its credentials', not a query's:
    the start is refused all the same, saying where to look."""
    w = World()
    assert _refusal(w, not_prometheus()) == (
        f"{LOGIN_PAGE}: check PROMETHEUS_URL and its credentials "
        "(PROMETHEUS_BEARER_TOKEN_FILE, PROMETHEUS_HEADERS) and start again; nothing was "
        "changed")


def test_the_advice_follows_the_adapters_mark_not_the_reasons_wording() -> None:
    w = World()
    _answered_by(w, not_prometheus(flagged=False))
    with pytest.raises(InvalidInput, match=r"fix it in the analysis file \(ROLLOUT_ANALYSIS_FILE"):
        w.start()


def _paused_by_inconclusive_runs(port: FakeAnalysis) -> str:
    """A rollout baking its first step while `port` answers every query: still baking at
    90 s, paused after its 2m inconclusive timeout; the pause's reason."""
    w = World(inconclusive_timeout="2m")
    w.start()
    w.service.approve(REF, actor=BOB)
    _answered_by(w, port)
    assert w.at(90).phase is Phase.BAKING
    r = w.at(210)
    assert r.phase is Phase.PAUSED and r.pause is not None
    assert "inconclusive for 2m" in r.pause.reason
    return r.pause.reason


def test_runs_a_server_not_prometheus_answers_stay_inconclusive() -> None:
    """Once started, such answers count as they did: inconclusive, never a pass."""
    assert "HTTP 401" in _paused_by_inconclusive_runs(not_prometheus())


def not_evaluated(*, flagged: bool = True) -> Answering:
    """A Prometheus (or Thanos with a store down) that fails evaluating every query
    (``execution``); `flagged` False drops the mark."""
    return Answering(QueryResult(
        kind=ResultKind.ERROR, evaluation_failed=flagged,
        reason="Prometheus refused the query (HTTP 422, execution): expanding series: no "
               "StoreAPIs matched"))


def test_a_start_whose_query_prometheus_fails_evaluating_names_both_causes() -> None:
    """Thanos or Mimir with a store down refuses a query as `execution`, as it refuses a
    many-to-many match: the answer does not send people to rewrite a correct query."""
    w = World()
    assert _refusal(w, not_evaluated()) == (
        "Prometheus could not evaluate the query requests/stable of canary analysis 'quick' "
        "(Prometheus refused the query (HTTP 422, execution): expanding series: no "
        "StoreAPIs matched): fix it in the analysis file (ROLLOUT_ANALYSIS_FILE), or, if a "
        "store behind Prometheus (Thanos, Mimir) is down, start again once it answers; "
        "nothing was changed")
    _answered_by(w, not_evaluated(flagged=False))
    with pytest.raises(InvalidInput, match=r"^Prometheus refuses the query requests/stable"):
        w.start()


UNTRUSTED = ("Prometheus at https://prometheus.example: TLS: certificate verify failed "
             "(self-signed certificate)")


def untrusted(*, flagged: bool = True) -> Answering:
    """A Prometheus whose certificate the bot does not trust: unavailable to a run, marked
    untrusted (`flagged` False drops the mark)."""
    return Answering(QueryResult(kind=ResultKind.UNAVAILABLE, reason=UNTRUSTED,
                                 untrusted=flagged))


def test_a_start_against_an_untrusted_certificate_points_at_it_and_changes_nothing() -> None:
    """A certificate that does not verify will not verify later: the runs would stay
    inconclusive until the rollout paused, with traffic moved, and nobody told why at
    start."""
    w = World()
    assert _refusal(w, untrusted()) == (
        f"{UNTRUSTED}: check PROMETHEUS_URL and the certificates the bot trusts "
        "(SSL_CERT_FILE) and start again; nothing was changed")


def test_an_unavailable_prometheus_not_marked_untrusted_lets_the_start_go_ahead() -> None:
    """The advice follows the adapter's mark, never the reason's wording."""
    w = World()
    _answered_by(w, untrusted(flagged=False))
    assert w.start().phase is Phase.AWAITING_APPROVAL


def test_a_start_whose_tls_handshake_is_refused_for_good_changes_nothing() -> None:
    """https:// to a plain HTTP port fails the same way at every run: refused at start by
    the adapter's mark, with what to check, not left to pause the rollout later."""
    w = World()
    reason = "Prometheus at https://prometheus.example: TLS: wrong version number"
    refused = Answering(QueryResult(kind=ResultKind.UNAVAILABLE, reason=reason,
                                    handshake_refused=True))
    assert _refusal(w, refused) == (
        f"{reason}: check PROMETHEUS_URL's scheme and port (https:// to a port that speaks "
        "plain HTTP fails so) and whether the server asks for a client certificate or a "
        "TLS version the bot does not offer, and start again; nothing was changed")
    _answered_by(w, Answering(QueryResult(kind=ResultKind.UNAVAILABLE, reason=reason)))
    assert w.start().phase is Phase.AWAITING_APPROVAL


def test_runs_against_an_untrusted_certificate_stay_inconclusive() -> None:
    """Once started (the certificate changed since), such answers are unavailable: the
    runs wait, and the rollout pauses as for an outage, never passes."""
    assert "self-signed" in _paused_by_inconclusive_runs(untrusted())


def test_a_start_while_prometheus_does_not_answer_goes_ahead() -> None:
    w = World()
    w.metrics.down = True
    assert w.start().phase is Phase.AWAITING_APPROVAL
    assert len(w.metrics.asked) == 1  # once unreachable, nothing more is asked


def test_status_tells_the_analysis_as_of_its_reading_not_the_last_save() -> None:
    """Inconclusive since +90 with a 2m timeout, last saved at +180: read at +215, before
    the scheduler's next pass, the stretch is past its limit, and `status` says so."""
    from bot.text import status_lines
    from handlers.commands import CommandRequest, CommandResult, Verb
    from handlers.replies import result_reply

    w = World(inconclusive_timeout="2m")
    w.start()
    w.service.approve(REF, actor=BOB)
    w.metrics.down = True
    for seconds in (90, 120, 150, 180):
        w.at(seconds)
    w.clock.set(T0 + timedelta(seconds=215))
    status = w.service.status(REF)
    assert status.read_at == w.clock.now() and status.rollout is not None
    assert status.rollout.updated_at < w.clock.now()
    slack = result_reply(CommandResult(CommandRequest(verb=Verb.STATUS, pool=CANARY),
                                       status=status))
    cli = "\n".join(status_lines(status))
    for said in (slack, cli):
        assert "inconclusive for 125s (limit 2m)" in said
        assert "inconclusive, waiting" not in said

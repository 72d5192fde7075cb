"""The service's answers at the edges of the command path: refused starts, status, the lock
and its token, idempotency, listeners and who owns a rule; on the fakes, exactly."""

from __future__ import annotations

import logging
from datetime import datetime

import pytest

from rollout.domain.clock import ManualClock
from rollout.domain.errors import (
    ClusterUnavailable,
    Conflict,
    InvalidInput,
    NeedsOperator,
)
from rollout.domain.models import AuditAction, PauseKind, Phase, Target, TargetKind
from rollout.domain.plan import build_plan
from rollout.domain.split import Marker, MarkerState, Pair
from rollout.service import Outcome, Ref, RolloutService, ServiceOptions, Status
from tests.unit.builders import ALICE, BASELINE, BOB, T0, TARGET
from tests.unit.fakes import FakeStore, FakeTarget, FakeTraffic, open_gates
from tests.unit.test_service import CANARY, REF, _started, _world

PLAN = build_plan([10, 50, 100])


def _start(service: RolloutService, *, route: str | None = None, stable: str | None = None,
           rewrite: str | None = None) -> Outcome:
    return service.start(namespace="default", canary=CANARY, plan=PLAN, actor=ALICE,
                         route=route, stable=stable, rewrite=rewrite)


def test_route_and_rewrite_together_are_refused_before_anything_is_read() -> None:
    service, store, target, _ = _world()
    with pytest.raises(InvalidInput) as refused:
        _start(service, route="routes-to-llm", rewrite="small-segment-lora")
    assert str(refused.value) == ("give --route (a pool rollout) or --rewrite (an adapter "
                                  "rollout), not both")
    assert store.saves == [] and target.reads == 0


def test_start_locates_the_kind_it_is_told_with_the_names_given() -> None:
    service, _, _, _ = _world()
    traffic = service.traffic
    assert isinstance(traffic, FakeTraffic)
    _start(service, route="routes-to-llm", stable="llm-pool")
    assert traffic.located == [(TargetKind.ROUTE, "routes-to-llm", "llm-pool")]


def test_an_adapter_start_locates_the_rewrite() -> None:
    rewrite = Target(kind=TargetKind.REWRITE, namespace="default", name="small-segment-lora",
                     rule=0)
    target = FakeTarget(target=rewrite, stable="lora-a", canary="lora-b", baseline=BASELINE,
                        pair=Pair(stable=100, canary=5))
    traffic = FakeTraffic(target)
    service = RolloutService(gates=open_gates(),
                             store=FakeStore(), traffic=traffic, clock=ManualClock(T0))
    with pytest.raises(Conflict) as refused:
        service.start(namespace="default", canary="lora-b", plan=PLAN, actor=ALICE,
                      rewrite="small-segment-lora")
    assert traffic.located == [(TargetKind.REWRITE, "small-segment-lora", None)]
    assert str(refused.value) == (
        "lora-b already receives traffic (weight 5) on InferenceModelRewrite "
        "default/small-segment-lora rule 0: a rollout starts from 0; remove it from the rule "
        "or roll back the earlier change first")


def test_a_pool_that_already_has_traffic_is_refused_with_how_to_undo_it() -> None:
    service, store, target, _ = _world()
    target.pair = Pair(stable=90, canary=10)
    with pytest.raises(Conflict) as refused:
        _start(service)
    assert str(refused.value) == (
        "llm-pool-version-2 already receives traffic (weight 10) on HTTPRoute "
        "default/routes-to-llm rule 0: a rollout starts from 0; set its weight to 0 or roll "
        "back the earlier change first")
    assert store.saves == []


def test_a_second_start_names_the_owner() -> None:
    service, _, _, _ = _started()
    with pytest.raises(Conflict) as refused:
        _start(service)
    assert str(refused.value) == ("HTTPRoute default/routes-to-llm rule 0 already has an active "
                                  "rollout (r1); finish or roll it back first")


def test_the_service_defaults_fill_the_plan_and_the_plan_s_own_values_win() -> None:
    store = FakeStore()
    target = FakeTarget(target=TARGET, stable="llm-pool", canary=CANARY, baseline=BASELINE,
                        pair=Pair(stable=100, canary=0))
    ids: list[tuple[str, datetime]] = []

    def new_id(canary: str, now: datetime) -> str:
        ids.append((canary, now))
        return f"r{len(ids)}"

    service = RolloutService(gates=open_gates(),
                             store=store, traffic=FakeTraffic(target), clock=ManualClock(T0),
                             options=ServiceOptions(reminder_seconds=300,
                                                    approval_timeout_seconds=900),
                             new_id=new_id)
    plan = _start(service).rollout
    assert plan is not None
    assert (plan.plan.reminder_seconds, plan.plan.approval_timeout_seconds) == (300, 900)
    assert ids == [(CANARY, T0)]
    service.rollback(REF, actor=BOB)
    own = service.start(namespace="default", canary=CANARY, actor=ALICE,
                        plan=PLAN.model_copy(update={"reminder_seconds": 60,
                                                     "approval_timeout_seconds": 120}))
    assert own.rollout is not None and own.rollout.id == "r2"
    assert (own.rollout.plan.reminder_seconds, own.rollout.plan.approval_timeout_seconds) == (
        60, 120)


def test_status_of_a_rollout_the_store_does_not_know() -> None:
    service, _, _, _ = _world()
    assert service.status(Ref(canary="mistral")) == Status(
        rollout=None, observed=None, message="no rollout of default/mistral is recorded",
        read_at=T0)


def test_status_of_an_orphaned_rule_says_what_the_operator_can_do() -> None:
    service, _, target, _ = _world()
    target.marker = Marker(rollout_id="r9", step=1)
    status = service.status(REF)
    assert (status.rollout, status.observed) == (None, None)
    assert status.message == "no rollout of default/llm-pool-version-2 is recorded"
    assert status.cluster_note.startswith("HTTPRoute default/routes-to-llm rule 0 is marked as "
                                          "owned by rollout r9 at step 2")


def test_status_shows_the_state_and_what_the_cluster_shows() -> None:
    service, _, target, _ = _started()
    status = service.status(REF)
    assert status.rollout == service.get(REF)
    assert status.observed is not None and status.observed.pair == Pair(stable=100, canary=0)
    assert (status.message, status.cluster_note) == (
        "llm-pool-version-2: awaiting approval at 0% (step 0/3)", "")
    service.approve(REF, actor=BOB)
    assert service.status(REF).message == "llm-pool-version-2: baking at 10% (step 1/3)"
    target.pair = Pair(stable=80, canary=20)
    assert service.status(REF).cluster_note == "the cluster shows stable 80 / canary 20 (drift)"
    target.unreadable = ClusterUnavailable("the Kubernetes API did not answer")
    status = service.status(REF)
    assert (status.rollout, status.observed) == (service.get(REF), None)
    assert (status.message, status.cluster_note) == (
        "llm-pool-version-2: baking at 10% (step 1/3)", "the Kubernetes API did not answer")


def test_a_rule_that_cannot_be_read_any_more_pauses_the_rollout_for_drift_once() -> None:
    service, store, target, _ = _started()
    target.unreadable = NeedsOperator("the route was restructured outside the bot")
    o = service.watch(service.get(REF))
    assert o is not None and (o.message, o.ok, o.changed) == (
        "llm-pool-version-2 paused at 0%: the route was restructured outside the bot.",
        True, False)
    assert [(e.action, e.actor.id) for e in o.events] == [(AuditAction.PAUSED, "scheduler")]
    pause = service.get(REF).pause
    assert pause is not None and pause.kind is PauseKind.DRIFT
    again = service.watch(service.get(REF))
    assert again is not None and (again.message, again.changed, again.events) == ("", False, ())
    assert store.saves == [("r1", 1), ("r1", 2)]


def test_a_person_s_edit_between_the_read_and_the_write_is_never_written_over() -> None:
    service, _, target, _ = _started()
    target.edit_before_write = Pair(stable=70, canary=30)
    o = service.approve(REF, actor=BOB)
    assert not o.ok and o.message.startswith("Not applied: weights changed outside the bot")
    assert target.pair == Pair(stable=70, canary=30) and len(target.writes) == 1


def test_a_token_redis_forgot_is_raised_above_the_one_on_the_object() -> None:
    service, store, target, _ = _started()
    target.fence = 41
    service.approve(REF, actor=BOB)
    assert target.pair == Pair(stable=90, canary=10) and target.fence == 42
    assert store.fences[TARGET.object_key] == 42


def test_a_repeated_request_is_answered_once_and_remembered_for_a_day() -> None:
    service, store, target, _ = _started()
    first = service.approve(REF, actor=BOB, request_id="click-1")
    again = service.approve(REF, actor=BOB, request_id="click-1")
    assert (again.rollout, again.message, again.ok, again.changed) == (
        None, f"Already handled: {first.message}", True, False)
    assert store.ttls == {"request:click-1": 24 * 3600} and len(target.writes) == 2


def test_listeners_hear_each_outcome_and_a_failing_one_is_only_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    heard: list[Outcome] = []

    def deaf(_: Outcome) -> None:
        raise RuntimeError("chat is down")

    store = FakeStore()
    target = FakeTarget(target=TARGET, stable="llm-pool", canary=CANARY, baseline=BASELINE,
                        pair=Pair(stable=100, canary=0))
    service = RolloutService(gates=open_gates(),
                             store=store, traffic=FakeTraffic(target), clock=ManualClock(T0),
                             options=ServiceOptions(listeners=[deaf, heard.append]))
    started = _start(service)
    with caplog.at_level(logging.ERROR, logger="rollout.service"):
        approved = service.approve(REF, actor=BOB)
    assert heard == [started, approved]
    assert [r.getMessage() for r in caplog.records] == ["a rollout listener failed"] * 2


def test_a_lock_redis_cannot_take_back_is_left_to_expire(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A command that wrote nothing answers as it would; the lock Redis could not take back
    lapses by itself. (One that wrote something learns from the same round trip that its
    save failed: the tests of failed saves.)"""
    service, store, _, _ = _started()
    service.pause(REF, actor=BOB)
    store.release_fails = True
    with caplog.at_level(logging.WARNING, logger="rollout.service"):
        o = service.pause(REF, actor=BOB)
    assert o.ok and not o.changed and service.get(REF).phase is Phase.PAUSED
    assert [r.getMessage() for r in caplog.records] == [
        f"could not release the lock on {TARGET.object_key}; it expires by itself"]


def test_a_finished_rollout_never_rolls_back_the_rule_a_later_one_took() -> None:
    service, _store, target, _ = _started()
    service.promote(REF, actor=BOB)
    target.marker = Marker(rollout_id="r2", step=0, state=MarkerState.COMPLETED)
    with pytest.raises(Conflict) as refused:
        service.rollback(Ref(rollout_id="r1"), actor=BOB)
    assert str(refused.value) == (
        "rollout r1 is completed and HTTPRoute default/routes-to-llm rule 0 now belongs to "
        "rollout r2: rolling back this one would undo that one. Roll back r2 instead")
    target.marker = Marker(rollout_id="r1", step=2, state=MarkerState.COMPLETED)
    assert service.rollback(Ref(rollout_id="r1"), actor=BOB).ok
    assert target.pair == Pair(stable=100, canary=0)


def test_a_finished_rollout_whose_rule_cannot_be_read_is_left_to_the_write_to_answer() -> None:
    service, _, target, _ = _started()
    service.promote(REF, actor=BOB)
    target.unreadable = ClusterUnavailable("the Kubernetes API did not answer")
    o = service.rollback(Ref(rollout_id="r1"), actor=BOB)
    assert o.ok and o.rollout is not None and o.rollout.phase is Phase.ROLLED_BACK


def test_a_refusal_without_a_rollout_is_audited_with_what_was_named() -> None:
    service, store, _, clock = _world()
    service.record_denial(actor=BOB, action="start", ref=None, reason="not allowed")
    service.record_denial(actor=BOB, action="approve", ref=Ref(canary="mistral"),
                          reason="not an approver")
    assert [(e.rollout_id, e.target, e.refused, e.detail, e.at) for e in store.events] == [
        ("", "", "start", "not allowed", clock.now()),
        ("", "default/mistral", "approve", "not an approver", clock.now()),
    ]


def test_a_refusal_whose_audit_fails_is_logged_and_raises_nothing(
        caplog: pytest.LogCaptureFixture) -> None:
    service, store, _, _ = _world()

    def broken(event: object) -> None:
        raise RuntimeError("the audit stream refused the entry")

    store.record = broken  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR, logger="rollout.service"):
        recorded = service.record_denial(actor=BOB, action="approve", ref=REF,
                                         reason="not an approver")
    assert recorded is False  # the CLI says the audit lacks it
    assert [r.getMessage() for r in caplog.records] == [
        "could not audit the refusal of approve by U0BOB"]


def test_status_of_an_unknown_rollout_id_says_so_and_reads_nothing_else() -> None:
    service, _, target, clock = _world()
    assert service.status(Ref(rollout_id="nope")) == Status(
        rollout=None, observed=None, message="no rollout of nope is recorded",
        read_at=clock.now())
    assert target.reads == 0

"""After Redis lost a rollout: the marker refuses new steps, `recover` rebuilds the rollout
paused from the record on the rule, `release` drops the marker; on the fakes, in milliseconds."""

from __future__ import annotations

import pytest

from rollout.domain.clock import ManualClock
from rollout.domain.errors import NeedsOperator, NotFound
from rollout.domain.models import AuditAction, Card, PauseKind, Phase
from rollout.domain.plan import build_plan
from rollout.domain.split import MarkerState, Pair
from rollout.service import Ref, RolloutService
from tests.unit.builders import ALICE, BASELINE, BOB, CAROL, T0, TARGET
from tests.unit.fakes import FakeStore, FakeTarget, FakeTraffic, open_gates

CANARY = "llm-pool-version-2"
REF = Ref(canary=CANARY)
PLAN = build_plan([10, 50, 100], interval_seconds=60)
ORPHAN = (
    "HTTPRoute default/routes-to-llm rule 0 is marked as owned by rollout r1 at step 1, which "
    "the store does not know (was Redis emptied?). New steps on it are refused until an "
    "operator decides: `rollout-bot recover llm-pool-version-2` rebuilds the rollout from the "
    "route (paused), or `rollout-bot release llm-pool-version-2` drops the marker and leaves "
    "the weights as they are"
)


def _lost() -> tuple[RolloutService, FakeStore, FakeTarget, ManualClock]:
    """A rollout at step 1 (10%) whose Redis was then emptied: a new store, the same cluster."""
    target = FakeTarget(target=TARGET, stable="llm-pool", canary=CANARY, baseline=BASELINE,
                        pair=Pair(stable=100, canary=0))
    traffic, clock = FakeTraffic(target), ManualClock(T0)
    before = RolloutService(gates=open_gates(), store=FakeStore(), traffic=traffic, clock=clock,
                            new_id=lambda canary, now: "r1")
    before.start(namespace="default", canary=CANARY, plan=PLAN, actor=ALICE)
    before.approve(REF, actor=BOB)
    clock.advance(600)
    store = FakeStore()
    return RolloutService(gates=open_gates(),
                          store=store, traffic=traffic, clock=clock), store, target, clock


def test_an_orphaned_marker_refuses_commands_and_a_new_start_with_what_to_do() -> None:
    service, store, _, _ = _lost()
    assert [m.marker.rollout_id for m in service.orphans("default", CANARY)] == ["r1"]
    with pytest.raises(NeedsOperator) as refused:
        service.approve(REF, actor=BOB)
    assert str(refused.value) == ORPHAN
    with pytest.raises(NeedsOperator, match="rollout r1 at step 1"):
        service.start(namespace="default", canary=CANARY, plan=PLAN, actor=ALICE)
    assert store.saves == [] and store.events == []


def test_a_refusal_naming_an_orphaned_pool_is_audited() -> None:
    """DESIGN invariant 8: the audit of a refusal reads no cluster, so the rule's orphan,
    which refuses commands, does not keep it from being recorded."""
    service, store, _, _clock = _lost()
    service.record_denial(actor=CAROL, action="approve", ref=REF, reason="not an approver")
    assert [(e.target, e.refused, e.actor) for e in store.events] == [
        (f"default/{CANARY}", "approve", CAROL)]


def test_recover_rebuilds_the_rollout_paused_from_the_record_on_the_rule() -> None:
    service, store, target, clock = _lost()
    outcome = service.recover(namespace="default", canary=CANARY, actor=CAROL)
    assert outcome.message == ("Rollout r1 of llm-pool-version-2 recovered at 10% and paused: "
                               "check it, then resume or roll back.")
    r = service.get(REF)
    assert (r.id, r.phase, r.step, r.stable, r.canary) == ("r1", Phase.PAUSED, 0, "llm-pool",
                                                           CANARY)
    assert (r.plan, r.baseline, r.requester, r.created_at) == (PLAN, BASELINE, ALICE, T0)
    assert r.pause is not None and r.pause.kind is PauseKind.MANUAL and r.pause.by == CAROL
    assert r.updated_at == clock.now() and r.target == TARGET
    assert store.saves == [("r1", 1)]
    [event] = store.events
    assert (event.action, event.actor, event.step, event.percent) == (
        AuditAction.RECOVERED, CAROL, 0, 10)
    assert event.detail == ("rebuilt from the route's annotations after the state was lost; "
                            "check and resume")
    assert service.orphans("default", CANARY) == []
    service.resume(REF, actor=BOB)  # the step baked long ago: the next one waits for approval
    assert service.get(REF).phase is Phase.AWAITING_APPROVAL
    assert target.pair == Pair(stable=90, canary=10)  # recovering writes nothing


def test_recover_pauses_for_drift_when_the_weights_are_not_the_steps() -> None:
    service, _, target, _ = _lost()
    target.pair = Pair(stable=70, canary=30)  # someone edited the route meanwhile
    service.recover(namespace="default", canary=CANARY, actor=CAROL)
    pause = service.get(REF).pause
    assert pause is not None and pause.kind is PauseKind.DRIFT
    assert pause.reason.endswith("(the cluster shows stable 70 / canary 30, the step expects "
                                 "stable 90 / canary 10)")


def test_an_unreadable_record_gets_the_clear_answer_and_changes_nothing() -> None:
    service, store, target, _ = _lost()
    target.record = None  # missing, or did not validate: the adapter gives None for both
    with pytest.raises(NeedsOperator) as refused:
        service.recover(namespace="default", canary=CANARY, actor=CAROL)
    assert str(refused.value) == (
        "HTTPRoute default/routes-to-llm rule 0 names rollout r1 but its record annotation is "
        "missing or unreadable; use `release llm-pool-version-2` and restore the weights by hand"
    )
    assert store.saves == [] and store.events == [] and target.marker is not None


def test_recover_and_release_with_nothing_orphaned_say_so() -> None:
    service, store, target, _ = _lost()
    with pytest.raises(NotFound) as nothing:
        service.recover(namespace="default", canary="other", actor=CAROL)
    assert str(nothing.value) == ("no rule referencing other in default carries an active "
                                  "rollout the store does not know; nothing to recover")
    with pytest.raises(NotFound) as no_marker:
        service.release(namespace="default", canary="other", actor=CAROL)
    assert str(no_marker.value) == "no orphaned rollout marker for other in default"
    assert target.marker is not None and target.marker.state is MarkerState.ACTIVE
    assert store.events == []


def test_release_drops_the_marker_and_leaves_the_weights() -> None:
    service, store, target, clock = _lost()
    began = len(store.people_began)
    outcome = service.release(namespace="default", canary=CANARY, actor=CAROL)
    # a person's command: it said when it ran, and that it was done, under one name
    assert len(store.people_began) == began + 1
    assert store.people_ended[-1:] == store.people_began[-1:]
    detail = "dropped the marker of rollout r1 at step 1; weights left as they are"
    assert outcome.message == f"Released HTTPRoute default/routes-to-llm rule 0: {detail}."
    assert outcome.rollout is None
    assert target.marker is None and target.record is None
    assert target.pair == Pair(stable=90, canary=10)
    [event] = store.events
    assert (event.action, event.rollout_id, event.target, event.actor, event.detail,
            event.at) == (AuditAction.RELEASED, "r1", TARGET.key, CAROL, detail, clock.now())
    assert store.locks == {}  # the lock is given back
    assert service.orphans("default", CANARY) == []


def test_release_raises_a_token_redis_forgot_and_writes_above_it() -> None:
    service, store, target, _ = _lost()
    target.fence = 41  # the old Redis had handed out tokens up to here
    service.release(namespace="default", canary=CANARY, actor=CAROL)
    assert target.marker is None and target.fence == 42
    assert store.fences[TARGET.object_key] == 42 and store.locks == {}


def test_a_mistyped_name_gets_the_close_one_and_an_unknown_one_how_to_start() -> None:
    service, _, _, _ = _lost()
    service.recover(namespace="default", canary=CANARY, actor=CAROL)
    with pytest.raises(NotFound) as typo:
        service.get(Ref(canary="llm-pool-version2"))
    assert str(typo.value) == (
        "no rollout of llm-pool-version2 in namespace default; did you mean "
        "llm-pool-version-2? (rollouts in default: llm-pool-version-2)")
    with pytest.raises(NotFound) as unknown:
        service.get(Ref(canary="mistral"))
    assert str(unknown.value) == ("no rollout of mistral in namespace default; start one with "
                                  "`start mistral`")
    with pytest.raises(NotFound) as elsewhere:
        service.get(Ref(namespace="other", canary="llm-pool-version2"))
    assert str(elsewhere.value).endswith("in namespace other; start one with "
                                         "`start llm-pool-version2`")
    with pytest.raises(NotFound) as unnamed:
        service.get(Ref())
    assert str(unnamed.value) == "name the pool (or adapter) of the rollout"


def test_a_card_is_attached_without_a_new_version() -> None:
    service, store, _, _ = _lost()
    service.recover(namespace="default", canary=CANARY, actor=CAROL)
    card = Card(channel="C0ROLLOUT", ts="1700000000.000100")
    assert service.attach_card("r1", card) == card
    r = service.get(Ref(rollout_id="r1"))
    assert r.card == card and r.version == 1 and store.saves == [("r1", 1)]


def test_a_card_replaces_only_the_card_it_names() -> None:
    """A second first card gives way to the one attached; a repost takes the place of the
    deleted card it names."""
    service, _, _, _ = _lost()
    service.recover(namespace="default", canary=CANARY, actor=CAROL)
    first, second = Card(channel="C0", ts="1.0"), Card(channel="C0", ts="2.0")
    assert service.attach_card("r1", first) == first
    assert service.attach_card("r1", second) == first
    assert service.attach_card("r1", second, replacing=first) == second
    assert service.get(Ref(rollout_id="r1")).card == second


def test_recover_keeps_the_rollouts_keep_period_or_takes_the_installs() -> None:
    """It came back with none: completed, the old pool was due to be retired at once."""
    service, _, target, _ = _lost()
    assert target.record is not None
    target.record = target.record.model_copy(update={"keep_seconds": 3 * 24 * 3600})
    service.recover(namespace="default", canary=CANARY, actor=CAROL)
    assert service.get(REF).keep_seconds == 3 * 24 * 3600
    service, _, target, _ = _lost()
    assert target.record is not None
    target.record = target.record.model_copy(update={"keep_seconds": None})  # an older record
    service.options.keep_seconds = 3600
    service.recover(namespace="default", canary=CANARY, actor=CAROL)
    assert service.get(REF).keep_seconds == 3600


def test_a_rollout_recovered_over_drift_goes_on_once_resumed() -> None:
    service, _, target, _ = _lost()
    target.pair = Pair(stable=80, canary=20)
    service.recover(namespace="default", canary=CANARY, actor=CAROL)
    r = service.get(REF)
    assert r.pause is not None and r.pause.kind is PauseKind.DRIFT
    assert service.resume(REF, actor=CAROL).ok
    assert service.watch(service.get(REF)) is None  # the weights the pause named, kept
    assert service.get(REF).phase is not Phase.PAUSED

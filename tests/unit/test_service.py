"""The service over in-memory fakes: the one command path, in milliseconds.

The integration tier runs the same service over Redis and the real API server; here the
ports are fakes, so each test states one rule of the command path and runs without I/O.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from rollout.domain.clock import ManualClock
from rollout.domain.errors import (
    Busy,
    ClusterUnavailable,
    Conflict,
    DriftDetected,
    LockLapsed,
    Refused,
    StoreUnavailable,
    StoreUnknown,
    Superseded,
    Throttled,
    Unrecorded,
    WriteUnknown,
)
from rollout.domain.freeze import Freeze
from rollout.domain.models import Actor, AuditAction, Click, PauseKind, Phase, Rollout
from rollout.domain.plan import build_plan
from rollout.domain.split import Marker, Observed, Pair
from rollout.lock_keeper import LockKeeper
from rollout.ports import Lease
from rollout.service import Ref, RolloutService, _Hold
from tests.unit.builders import ALICE, BOB, CAROL, T0, TARGET
from tests.unit.fakes import FakeStore, FakeTarget, one_route_world

CANARY = "llm-pool-version-2"
REF = Ref(canary=CANARY)


def _world() -> tuple[RolloutService, FakeStore, FakeTarget, ManualClock]:
    return one_route_world(CANARY)


def _started() -> tuple[RolloutService, FakeStore, FakeTarget, ManualClock]:
    service, store, target, clock = _world()
    service.start(namespace="default", canary=CANARY, plan=build_plan([10, 50, 100]),
                  actor=ALICE)
    return service, store, target, clock


def test_a_start_claims_the_target_and_writes_its_marker() -> None:
    service, store, target, _ = _started()
    assert store.saves == [("r1", 1)]
    assert target.marker is not None and target.marker.rollout_id == "r1"
    assert service.get(REF).phase is Phase.AWAITING_APPROVAL


def test_an_approval_applies_its_step_once_and_saves_one_version() -> None:
    service, store, target, _ = _started()
    outcome = service.approve(REF, actor=BOB, request_id="click-1")
    again = service.approve(REF, actor=BOB, request_id="click-1")
    assert outcome.ok and outcome.changed
    assert again.message.startswith("Already handled")
    assert target.writes[-1] == Pair(stable=90, canary=10)
    assert len(target.writes) == 2  # prepare, then the one step
    assert store.saves == [("r1", 1), ("r1", 2)]


def test_drift_found_by_a_command_is_saved_with_its_decision_as_one_version() -> None:
    service, store, target, _ = _started()
    target.pair = Pair(stable=70, canary=30)  # a person edited the route
    with pytest.raises(Conflict):
        service.approve(REF, actor=BOB)  # paused for drift: nothing to approve
    r = service.get(REF)
    assert r.phase is Phase.PAUSED and "outside the bot" in (r.pause.reason if r.pause else "")
    assert store.saves == [("r1", 1), ("r1", 2)]
    assert target.pair == Pair(stable=70, canary=30)  # the bot never overwrites a human


def test_rollback_preempts_a_holder_in_flight_whose_later_write_is_refused() -> None:
    service, store, target, _ = _started()
    holder = store.acquire(TARGET.object_key)  # a step in flight holds the lock
    with pytest.raises(Busy):
        service.pause(REF, actor=BOB)  # an ordinary command waits its turn
    outcome = service.rollback(REF, actor=BOB)
    assert outcome.ok and service.get(REF).phase is Phase.ROLLED_BACK
    assert target.pair == Pair(stable=100, canary=0)
    with pytest.raises(Superseded):
        store.confirm(holder)  # the holder's write can no longer land


def test_a_click_is_audited_with_where_it_came_from() -> None:
    service, store, _, _ = _started()
    service.approve(REF, actor=BOB)
    approved = [e for e in store.events if e.action == "approved"]
    assert approved and approved[0].actor.channel == BOB.channel == "C0ROLLOUT"


def test_a_scheduler_tick_steps_an_automatic_plan_after_its_bake() -> None:
    service, _, target, clock = _world()
    service.start(namespace="default", canary=CANARY, actor=ALICE,
                  plan=build_plan([10, 100], interval_seconds=60, auto=True))
    service.approve_plan(REF, actor=BOB)
    service.tick("r1")
    assert target.pair == Pair(stable=90, canary=10)
    service.tick("r1")  # the bake is not over: nothing moves
    assert target.pair == Pair(stable=90, canary=10)
    clock.advance(61)
    service.tick("r1")
    assert target.pair == Pair(stable=0, canary=100)
    assert service.get(REF).phase is Phase.COMPLETED


def test_a_watch_sweep_pauses_on_drift_and_stays_quiet_otherwise() -> None:
    service, _, target, _ = _started()
    assert service.watch(service.get(REF)) is None
    target.pair = Pair(stable=60, canary=40)
    outcome = service.watch(service.get(REF))
    assert outcome is not None and service.get(REF).phase is Phase.PAUSED
    assert service.watch(service.get(REF)) is None  # already paused for it


def test_a_rollout_resumed_over_drift_goes_on_and_its_next_step_writes_the_plans_weights(
        ) -> None:
    """Resumed over weights changed by hand, the rollout paused again at the next look (the
    weights still differed from the plan's) and refused every approval, so `resume` after a
    drift pause led nowhere. Those weights are the person's until the next step writes."""
    service, store, target, clock = _started()
    assert service.approve(REF, actor=BOB).ok  # 90/10
    target.pair = Pair(stable=80, canary=20)
    assert service.watch(service.get(REF)) is not None  # paused: drift
    assert service.resume(REF, actor=BOB).ok
    assert service.watch(service.get(REF)) is None  # the person's weights, kept
    clock.advance(3600)  # the rest of the bake
    service.tick("r1")
    assert service.get(REF).phase is Phase.AWAITING_APPROVAL
    assert service.approve(REF, actor=BOB).ok
    assert target.pair == Pair(stable=50, canary=50)  # the plan's, over the manual change
    r = service.get(REF)
    assert r.accepted_weights is None and r.step == 1
    target.pair = Pair(stable=80, canary=20)  # the same hand-made weights again: drift now
    assert service.watch(service.get(REF)) is not None
    assert service.get(REF).phase is Phase.PAUSED
    assert [e.action for e in store.events][-1] == "paused"


def _resumed_over_drift() -> tuple[RolloutService, FakeTarget]:
    """At 10%, weights changed by hand to 80/20, the drift pause resumed over."""
    service, _, target, _ = _started()
    assert service.approve(REF, actor=BOB).ok
    target.pair = Pair(stable=80, canary=20)
    assert service.watch(service.get(REF)) is not None
    assert service.resume(REF, actor=BOB).ok
    return service, target


def test_weights_changed_again_after_resuming_over_drift_pause_again() -> None:
    service, target = _resumed_over_drift()
    target.pair = Pair(stable=70, canary=30)  # not what the person resumed over
    assert service.watch(service.get(REF)) is not None
    paused = service.get(REF)
    assert paused.phase is Phase.PAUSED and paused.pause is not None
    assert "the cluster has stable 70 / canary 30" in paused.pause.reason


def test_a_rollback_over_accepted_drift_restores_the_baseline_and_forgets_it() -> None:
    service, target = _resumed_over_drift()
    assert service.rollback(REF, actor=BOB).ok
    assert target.pair == Pair(stable=100, canary=0)
    assert service.get(REF).accepted_weights is None


def test_the_cli_is_audited_as_the_cli() -> None:
    service, store, _, _ = _started()
    service.pause(REF, actor=Actor(id="cli:carol", name="carol", via="cli"))
    paused = [e for e in store.events if e.action == "paused"]
    assert paused[0].actor.via == "cli"


def test_a_write_the_cluster_refuses_pauses_with_the_reason_and_keeps_the_step() -> None:
    service, store, target, _ = _started()
    target.fail_next = ClusterUnavailable("the Kubernetes API failed: 500")
    outcome = service.approve(REF, actor=BOB)
    r = service.get(REF)
    assert not outcome.ok and outcome.message.startswith("Not applied: the Kubernetes API")
    assert r.phase is Phase.PAUSED and r.step == -1
    assert target.pair == Pair(stable=100, canary=0)
    assert store.saves[-1] == ("r1", 2)


def test_weights_moved_between_reconcile_and_write_pause_for_drift() -> None:
    service, _, target, _ = _started()
    target.fail_next = DriftDetected("weights changed outside the bot: 70/30")
    outcome = service.approve(REF, actor=BOB)
    assert not outcome.ok and "Not applied: weights changed outside the bot" in outcome.message
    r = service.get(REF)
    assert r.phase is Phase.PAUSED and r.pause is not None and r.pause.kind is PauseKind.DRIFT


def test_a_gateway_objection_after_a_step_is_saved_in_the_steps_own_version() -> None:
    service, store, target, _ = _started()
    target.objects_to_writes = "ResolvedRefs False: BackendNotFound"
    outcome = service.approve(REF, actor=BOB)
    r = service.get(REF)
    assert not outcome.ok and r.step == 0 and r.phase is Phase.PAUSED
    assert store.saves == [("r1", 1), ("r1", 2)]
    assert {"step_applied", "paused"} <= {e.action for e in outcome.events}


def test_a_start_whose_first_write_fails_ends_and_frees_the_target() -> None:
    service, store, target, _ = _world()
    target.fail_next = ClusterUnavailable("the Kubernetes API timed out")
    outcome = service.start(namespace="default", canary=CANARY, plan=build_plan([10, 100]),
                            actor=ALICE)
    assert not outcome.ok and service.get(REF).phase is Phase.FAILED
    assert store.active_on(TARGET.key) is None and target.marker is None


@pytest.mark.parametrize("where", [{"namespace": "prod"}, {"route": "other-route"},
                                   {"stable": "other-stable"}])
def test_a_start_naming_a_rule_the_cluster_does_not_have_is_refused_and_changes_nothing(
        where: dict[str, str]) -> None:
    service, store, target, _ = _world()
    with pytest.raises(Refused, match=r"^no httproute in namespace "):
        service.start(**{"namespace": "default", **where}, canary=CANARY,  # type: ignore[arg-type]
                      plan=build_plan([10, 100]), actor=ALICE)
    assert store.saves == [] and target.marker is None and service.active() == []


class _Holds:
    def __init__(self, until: datetime | None) -> None:
        self.until = until

    def hold(self, until: datetime) -> None:
        self.until = until

    def held_until(self) -> datetime | None:
        return self.until


def test_status_carries_the_schedulers_hold_while_one_is_recorded() -> None:
    service, _, _, _ = _started()
    assert service.status(REF).ticks_held_until is None  # no record kept at all
    service.options.tick_holds = _Holds(None)
    assert service.status(REF).ticks_held_until is None
    service.options.tick_holds = _Holds(T0 + timedelta(seconds=9))
    assert service.status(REF).ticks_held_until == T0 + timedelta(seconds=9)


def test_a_second_start_on_an_owned_rule_is_refused() -> None:
    service, _, _, _ = _started()
    with pytest.raises(Conflict, match="already has an active rollout"):
        service.start(namespace="default", canary=CANARY, plan=build_plan([10, 100]),
                      actor=ALICE)


def test_status_names_drift_and_history_and_list_show_the_rollout() -> None:
    service, _, target, _ = _started()
    assert service.status(REF).cluster_note == ""
    target.pair = Pair(stable=80, canary=20)
    status = service.status(REF)
    assert "(drift)" in status.cluster_note and status.rollout is not None
    assert [e.action for e in service.history(REF)][:1] == ["started"]
    assert [r.id for r in service.list_rollouts()] == ["r1"]
    assert [r.id for r in service.active()] == ["r1"]


def test_a_refusal_is_audited_against_the_rollout() -> None:
    service, store, _, _ = _started()
    service.record_denial(actor=BOB, action="approve", ref=REF, reason="not an approver")
    denied = [e for e in store.events if e.action is AuditAction.DENIED]
    assert [(e.refused, e.rollout_id, e.actor.channel) for e in denied] == [
        ("approve", "r1", "C0ROLLOUT")]


def test_promote_and_pause_resume_take_the_same_path() -> None:
    service, store, target, _ = _started()
    service.pause(REF, actor=BOB)
    assert service.get(REF).phase is Phase.PAUSED
    service.resume(REF, actor=BOB)
    service.promote(REF, actor=BOB)
    assert target.pair == Pair(stable=0, canary=100)
    assert service.get(REF).phase is Phase.COMPLETED
    assert [v for _, v in store.saves] == [1, 2, 3, 4]


def test_a_throttled_step_changes_nothing_and_is_taken_when_asked_again() -> None:
    """A 429 is refused before it is served: no pause for a person to lift, no save; the
    same approval goes through once the API server takes it."""
    service, store, target, _ = _started()
    saves = list(store.saves)
    target.fail_next = Throttled("the Kubernetes API is throttling the bot's requests",
                                 retry_after=2.0)
    with pytest.raises(Throttled) as refused:
        service.approve(REF, actor=BOB)
    assert refused.value.retry_after == 2.0
    assert store.saves == saves and target.pair == Pair(stable=100, canary=0)
    assert service.get(REF).phase is Phase.AWAITING_APPROVAL
    assert service.approve(REF, actor=BOB).ok
    assert target.pair == Pair(stable=90, canary=10)


def test_a_throttled_tick_leaves_the_automatic_step_due_for_the_next_tick() -> None:
    service, _, target, _ = _world()
    service.start(namespace="default", canary=CANARY, actor=ALICE,
                  plan=build_plan([10, 100], interval_seconds=60, auto=True))
    service.approve_plan(REF, actor=BOB)
    target.fail_next = Throttled("the Kubernetes API is throttling the bot's requests")
    with pytest.raises(Throttled):
        service.tick("r1")
    rollout = service.get(REF)
    assert rollout.phase is not Phase.PAUSED and rollout.step == -1
    service.tick("r1")
    assert target.pair == Pair(stable=90, canary=10)


def test_a_write_whose_answer_was_lost_but_landed_is_recorded_as_applied() -> None:
    service, store, target, _ = _started()
    target.lose_answer = WriteUnknown("the Kubernetes API did not answer writing")
    out = service.approve(REF, actor=BOB)
    assert out.ok and out.changed and "Not" not in out.message
    assert service.get(REF).step == 0 and service.get(REF).phase is Phase.BAKING
    assert store.saves[-1] == ("r1", 2)


def test_a_write_of_unknown_fate_that_has_not_landed_pauses_and_says_so() -> None:
    service, _, target, _ = _started()
    target.fail_next = WriteUnknown("the Kubernetes API did not answer writing")
    out = service.approve(REF, actor=BOB)
    assert not out.ok
    assert out.message.startswith("Not known whether this landed: the Kubernetes API did not "
                                  "answer writing; a fresh read shows it has not landed")
    rollout = service.get(REF)
    assert rollout.phase is Phase.PAUSED and rollout.step == -1
    assert rollout.pause is not None and rollout.pause.kind is PauseKind.FAILURE


def test_a_write_of_unknown_fate_on_an_unreadable_cluster_says_it_cannot_tell() -> None:
    service, _, target, _ = _started()
    target.fail_next = WriteUnknown("lost")
    target.then_unreadable = ClusterUnavailable("the Kubernetes API did not answer")
    out = service.approve(REF, actor=BOB)
    assert not out.ok and "the cluster could not be read again to tell" in out.message
    assert service.get(REF).phase is Phase.PAUSED


def test_a_start_whose_first_write_landed_unanswered_is_started() -> None:
    service, _, target, _ = _world()
    target.lose_answer = WriteUnknown("the Kubernetes API did not answer writing")
    out = service.start(namespace="default", canary=CANARY, plan=build_plan([10, 50, 100]),
                        actor=ALICE)
    assert out.ok and "Not" not in out.message
    assert target.marker is not None and target.marker.rollout_id == "r1"
    assert service.get(REF).phase is Phase.AWAITING_APPROVAL


@pytest.mark.parametrize("unreadable", [False, True], ids=["not landed yet", "unreadable"])
def test_a_start_whose_first_write_is_of_unknown_fate_pauses_and_keeps_the_target(
        unreadable: bool) -> None:
    service, _, target, _ = _world()
    target.fail_next = WriteUnknown("the Kubernetes API did not answer writing")
    if unreadable:
        target.then_unreadable = ClusterUnavailable("the Kubernetes API did not answer")
    out = service.start(namespace="default", canary=CANARY, plan=build_plan([10, 50, 100]),
                        actor=ALICE)
    assert not out.ok and out.message.startswith("Not known whether this landed")
    rollout = service.get(REF)
    assert rollout.phase is Phase.PAUSED and rollout.active  # the target stays claimed
    assert rollout.pause is not None and rollout.pause.kind is PauseKind.FAILURE


@pytest.mark.parametrize("failure, cause, said", [
    (StoreUnavailable("Redis is unavailable (refused); nothing was changed", retry_after=7.0),
     ConnectionRefusedError("Connection refused"),
     "the change landed in the cluster but could not be recorded: Redis is unavailable "
     "(Connection refused). The next command or the scheduler's sweep finds it on the route "
     "and records it; repeating this is safe"),
    (StoreUnknown("Redis did not answer whether this change was recorded", retry_after=7.0),
     TimeoutError("Timeout reading from socket"),
     "the change landed in the cluster, and Redis did not answer whether it was recorded "
     "(Timeout reading from socket). If it was not, the next command or the scheduler's "
     "sweep finds it on the route and records it; repeating this is safe"),
], ids=["refused", "not known"])
def test_redis_failing_after_a_write_landed_does_not_say_nothing_changed(
        failure: StoreUnavailable, cause: Exception, said: str) -> None:
    service, store, target, _ = _started()
    failure.__cause__ = cause  # as the store raises
    store.fail_saves = failure
    with pytest.raises(Unrecorded) as raised:
        service.approve(REF, actor=BOB)
    assert str(raised.value) == said
    assert raised.value.retry_after == 7.0  # Redis's wait, passed on
    assert target.writes[-1] == Pair(stable=90, canary=10)


def test_a_save_of_unknown_fate_with_nothing_landed_is_answered_as_not_known() -> None:
    service, store, _, _ = _started()
    store.fail_saves = StoreUnknown("Redis did not answer whether this change was recorded")
    with pytest.raises(StoreUnknown):
        service.pause(REF, actor=BOB)


def _completed() -> tuple[RolloutService, FakeStore, FakeTarget, ManualClock]:
    service, store, target, clock = _world()
    service.start(namespace="default", canary=CANARY, plan=build_plan([10, 100],
                  interval_seconds=0), actor=ALICE)
    service.approve(REF, actor=BOB)
    service.approve(REF, actor=BOB)
    assert service.get(REF).phase is Phase.COMPLETED
    return service, store, target, clock


def test_a_rollback_of_a_completed_rollout_that_landed_unsaved_is_swept_into_the_store() -> None:
    service, store, target, _ = _completed()
    unavailable = StoreUnavailable("Redis is unavailable")
    unavailable.__cause__ = ConnectionRefusedError("refused")
    store.fail_saves = unavailable
    with pytest.raises(Unrecorded):
        service.rollback(REF, actor=BOB)
    store.fail_saves = None
    assert target.pair == Pair(stable=100, canary=0)
    finishing = service.in_flight()
    assert [r.id for r in finishing] == ["r1"]
    assert "rolled back before a crash" in service.status(REF).cluster_note
    service.watch(finishing[0])
    assert service.get(REF).phase is Phase.ROLLED_BACK
    assert service.in_flight() == [] and store.in_flight == set()


def test_a_finished_rollouts_write_that_never_landed_ends_its_mark_and_changes_nothing() -> None:
    service, store, target, _ = _completed()
    version = service.get(REF).version
    target.fail_next = ClusterUnavailable("the Kubernetes API failed")
    out = service.rollback(REF, actor=BOB)
    assert not out.ok
    assert store.in_flight == {"r1"}
    assert service.watch(service.get(REF)) is not None
    assert store.in_flight == set()
    assert service.get(REF).phase is Phase.COMPLETED and service.get(REF).version == version



def test_a_step_that_landed_before_a_rollback_took_over_says_it_landed() -> None:
    """The rollback takes the lock after the step's write landed and before its save: the
    step's answer says it landed and a rollback took over, never that it did not land."""
    service, store, target, _ = _started()
    target.on_write = lambda: store.acquire(TARGET.object_key, preempt=True)
    with pytest.raises(Superseded) as raised:
        service.approve(REF, actor=BOB)
    assert raised.value.landed
    assert "landed in the cluster, then a rollback took over" in str(raised.value)
    assert target.writes[-1] == Pair(stable=90, canary=10)


def test_a_rollback_over_a_step_that_landed_unrecorded_puts_that_step_in_the_audit() -> None:
    """A rollback that preempts a step in flight writes over the step's marker: the step
    carried traffic, so the audit names it before the rollback."""
    service, store, target, _ = _started()
    started = service.get(REF)
    target.pair = Pair(stable=90, canary=10)  # step 1 landed; its save never happened
    target.marker = Marker(rollout_id=started.id, step=0)
    # the rollback's own reconcile read must not see it yet: it landed after that read
    seen = [False]
    real_observe = service.traffic.observe

    def observe_before_the_step_landed(rollout: Rollout) -> Observed:
        if not seen[0]:
            seen[0] = True
            return Observed(pair=Pair(stable=100, canary=0),
                            marker=Marker(rollout_id=started.id, step=-1))
        return real_observe(rollout)

    service.traffic.observe = observe_before_the_step_landed  # type: ignore[method-assign]
    out = service.rollback(REF, actor=BOB)
    assert out.ok and service.get(REF).phase is Phase.ROLLED_BACK
    actions = [(e.action, e.step) for e in store.events]
    assert actions[-2:] == [(AuditAction.RECOVERED, 0), (AuditAction.ROLLED_BACK, -1)]
    assert "step 1 (10%) landed before the rollback took over" in store.events[-2].detail


class _CountingStore(FakeStore):
    def __init__(self, *, fail_after: int | None = None) -> None:
        super().__init__()
        self.confirms = 0
        self.fail_after = fail_after

    def confirm(self, lease: Lease) -> None:
        self.confirms += 1
        if self.fail_after is not None and self.confirms > self.fail_after:
            raise Superseded("a rollback took over")
        super().confirm(lease)


def test_a_hold_renews_its_lock_until_it_is_released_or_the_lock_is_lost() -> None:
    """The keeper's renewal confirms the lease; a lost lease, or a release, ends it."""
    key = "httproute/default/routes-to-llm"
    store = _CountingStore()
    hold = _Hold(store, store.open(key=key))
    assert [hold.renew() for _ in range(5)] == [True] * 5 and store.confirms == 5
    losing = _CountingStore(fail_after=2)
    hold = _Hold(losing, losing.open(key=key))
    assert [hold.renew() for _ in range(3)] == [True, True, False]
    released = _CountingStore()
    hold = _Hold(released, released.open(key=key))
    hold.close()
    assert not hold.renew() and released.confirms == 0


def test_a_command_keeps_its_lock_with_the_keeper_only_while_it_runs() -> None:
    """Each command's hold is kept from its opening and let go when it closes, whatever
    the command's answer."""
    keeper = LockKeeper(1.0, clock=lambda: 0.0, background=False)
    service, store, target, _ = _world()
    seen: list[int] = []
    service.options.lock_keeper = keeper
    confirmed: list[Lease] = []
    real_confirm = store.confirm

    def confirm(lease: Lease) -> None:
        confirmed.append(lease)
        real_confirm(lease)

    store.confirm = confirm  # type: ignore[method-assign]

    def mid_write() -> None:  # the keeper's renewal falls due while the write is out
        seen.append(keeper.held())
        before = len(confirmed)
        keeper.renew_due(1.0 + len(seen))
        assert len(confirmed) == before + 1

    target.on_write = mid_write
    service.start(namespace="default", canary=CANARY, plan=build_plan([10, 50, 100]),
                  actor=ALICE)
    target.on_write = mid_write
    service.approve(REF, actor=BOB)
    assert seen == [1, 1] and keeper.held() == 0


def test_a_write_that_landed_while_redis_failed_names_the_cause_in_its_answer() -> None:
    service, store, _, _ = _started()
    unavailable = StoreUnavailable("Redis is unavailable; nothing was changed", retry_after=7)
    unavailable.__cause__ = ConnectionRefusedError("Connection refused")
    store.fail_saves = unavailable
    with pytest.raises(Unrecorded) as raised:
        service.approve(REF, actor=BOB)
    assert str(raised.value) == (
        "the change landed in the cluster but could not be recorded: Redis is unavailable "
        "(Connection refused). The next command or the scheduler's sweep finds it on the "
        "route and records it; repeating this is safe")
    assert raised.value.retry_after == 7


def test_a_write_that_landed_after_the_lock_lapsed_says_so() -> None:
    service, store, _, _ = _started()
    store.fail_saves = LockLapsed("the lock lapsed", retry_after=3)
    with pytest.raises(Unrecorded) as raised:
        service.approve(REF, actor=BOB)
    assert str(raised.value).startswith("the change landed in the cluster but could not be "
                                        "recorded: this command's lock lapsed before the save")
    assert raised.value.retry_after == 3


def test_a_request_whose_save_failed_runs_again_and_its_lock_is_given_back() -> None:
    """The save, the request's answer and the lock's release are one round trip: a save
    refused keeps no answer (a retry runs again) and still gives the lock back."""
    service, store, _, _ = _started()
    service.pause(REF, actor=BOB)
    store.fail_saves = Superseded("rollout r1 changed while this operation ran")
    with pytest.raises(Superseded):
        service.resume(REF, actor=BOB, request_id="click-9")
    assert store.locks == {} and store.memos == {}
    store.fail_saves = None
    again = service.resume(REF, actor=BOB, request_id="click-9")
    assert again.ok and again.changed and service.get(REF).phase is not Phase.PAUSED
    assert store.memos == {"request:click-9": again.message} and store.locks == {}


def test_a_step_opens_once_and_reads_the_freeze_from_its_opening() -> None:
    service, store, target, _ = _started()
    opened = store.opens
    store.freezes.current = Freeze(by="U0ALICE", since=T0, reason="incident")
    held = service.approve(REF, actor=BOB)
    assert not held.ok and "frozen by U0ALICE" in held.message
    assert store.opens == opened + 1 and len(target.writes) == 1 and store.locks == {}
    store.freezes.current = None
    assert service.approve(REF, actor=BOB).ok and store.opens == opened + 2
    assert target.writes[-1] == Pair(stable=90, canary=10)


def test_a_persons_commands_say_when_they_run_and_the_schedulers_do_not() -> None:
    """Each command of a person, refused or not, says it went to work and that it is done,
    under one name (the scheduler's ticks make way meanwhile); a tick says nothing."""
    service, store, _target, clock = _started()
    service.approve(REF, actor=BOB)
    with pytest.raises(Refused):
        service.approve(REF, actor=BOB, click=Click(rollout_id="r1", step=7))  # refused
    clock.advance(3600)
    opens = store.opens
    service.tick("r1")
    assert store.opens == opens + 1
    service.rollback(REF, actor=CAROL)
    assert len(store.people_began) == 4  # the start, the approve, the refusal, the rollback
    assert store.people_ended == store.people_began
    assert len(set(store.people_began)) == 4


def test_weights_set_back_to_the_plans_after_resuming_over_drift_agree_with_it() -> None:
    """The person's weights are accepted beside the plan's, not instead of them."""
    service, target = _resumed_over_drift()
    target.pair = Pair(stable=90, canary=10)  # put back as the plan has it
    assert service.watch(service.get(REF)) is None
    assert service.get(REF).phase is not Phase.PAUSED


def test_a_rollout_completed_after_resuming_over_drift_forgets_the_accepted_weights() -> None:
    """Retire checks the weights against the completed rollout's: the hand-made ones the
    person once resumed over are not the completed rollout's."""
    service, _ = _resumed_over_drift()
    assert service.promote(REF, actor=CAROL).ok
    r = service.get(REF)
    assert r.phase is Phase.COMPLETED and r.accepted_weights is None

"""Commands and queries after a start, through the service over the fakes: what a rollback
answers and audits, what the sweep and status say about a finished rollout whose write was in
flight, what a freeze tells each card, a retried retire, a failed promote's pause, and the
scheduler's queries (reminders, history, due times, active rollouts, loads)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from rollout.domain.clock import ManualClock
from rollout.domain.errors import ClusterUnavailable, StaleView, StoreUnavailable, Unrecorded
from rollout.domain.facts import ClusterFacts
from rollout.domain.machine import Effect
from rollout.domain.models import AuditAction, AuditEvent, PauseKind, Phase, Rollout
from rollout.domain.plan import build_plan
from rollout.domain.split import Marker, MarkerState, Observed, Pair
from rollout.ports import ClusterFactsReader
from rollout.service import Gates, Outcome, Ref, RolloutService, ServiceOptions
from tests.unit.builders import ALICE, BASELINE, BOB, CAROL, T0, TARGET, started
from tests.unit.facts_builders import world
from tests.unit.fakes import FakeFacts, FakeStore, FakeTarget, FakeTraffic

CANARY = "llm-pool-version-2"
REF = Ref(canary=CANARY)
RESTORED = "llm-pool-version-2 rolled back: stable 100 / canary 0 restored."


class World:
    def __init__(self) -> None:
        self.store = FakeStore()
        self.target = FakeTarget(target=TARGET, stable="llm-pool", canary=CANARY,
                                 baseline=BASELINE, pair=Pair(stable=100, canary=0))
        self.clock = ManualClock(T0)
        self.heard: list[Outcome] = []
        self.service = self.replica(FakeFacts(world()))

    def replica(self, facts: ClusterFactsReader,
                traffic: FakeTraffic | None = None) -> RolloutService:
        """A service over this world's store and cluster, reading the namespace with `facts`."""
        return RolloutService(
            store=self.store, traffic=traffic or FakeTraffic(self.target), clock=self.clock,
            gates=Gates(facts=facts, freezes=self.store.freezes),
            options=ServiceOptions(listeners=[self.heard.append]),
            new_id=lambda canary, now: "r1")

    def start(self) -> Rollout:
        out = self.service.start(namespace="default", canary=CANARY, actor=ALICE,
                                 plan=build_plan([50, 100]))
        assert out.rollout is not None
        return out.rollout

    def completed(self) -> Rollout:
        self.start()
        self.service.approve(REF, actor=BOB)
        self.clock.advance(900)  # the bake of the first step
        self.service.approve(REF, actor=BOB)
        r = self.service.get(REF)
        assert r.phase is Phase.COMPLETED and not r.active
        return r


class UnreadableFacts:
    """A namespace read that fails (the API server is unreachable)."""

    def read(self, namespace: str, *, route: str | None = None,
             rewrite: str | None = None) -> ClusterFacts:
        raise ClusterUnavailable("the API server is unreachable")


# ---- rollback -------------------------------------------------------------------------------


def test_a_rollback_without_a_reason_answers_the_restore_and_audits_who_asked() -> None:
    w = World()
    w.start()
    out = w.service.rollback(REF, actor=BOB)
    assert out.message == RESTORED
    event = w.store.events[-1]
    assert (event.action, event.actor, event.detail) == (AuditAction.ROLLED_BACK, BOB,
                                                          "requested by bob")


def test_a_rollback_the_namespace_cannot_be_read_for_still_rolls_back_without_a_warning(
) -> None:
    w = World()
    w.start()
    w.service.approve(REF, actor=BOB)
    out = w.replica(UnreadableFacts()).rollback(REF, actor=BOB)
    assert (out.ok, out.message) == (True, RESTORED)
    assert w.target.pair == Pair(stable=100, canary=0)
    assert w.service.get(REF).phase is Phase.ROLLED_BACK


# ---- a finished rollout whose write was in flight ------------------------------------------


def test_a_rollback_of_a_completed_rollout_that_did_not_land_is_let_go_by_the_sweep() -> None:
    w = World()
    done = w.completed()
    w.target.fail_next = ClusterUnavailable("the API server is unreachable")
    assert not w.service.rollback(REF, actor=CAROL).ok
    assert w.store.in_flight == {"r1"}
    assert w.service.status(REF).cluster_note == ""  # nothing landed: nothing to tell
    out = w.service.watch(w.service.get(REF))
    assert out is not None
    assert (out.rollout, out.message, out.changed) == (done, "", False)
    assert w.store.in_flight == set() and w.service.get(REF) == done


def test_status_tells_of_a_rollback_that_landed_and_is_not_recorded_yet() -> None:
    w = World()
    w.completed()
    w.store.fail_saves = StoreUnavailable("Redis did not answer")
    with pytest.raises(Unrecorded):  # landed, not recorded: the answer says so
        w.service.rollback(REF, actor=CAROL)
    w.store.fail_saves = None
    assert w.store.in_flight == {"r1"}
    assert w.service.status(REF).cluster_note == (
        "the cluster shows stable 100 / canary 0: llm-pool-version-2 was rolled back before a "
        "crash; recorded. (the scheduler's sweep records it)")


def test_status_of_a_finished_rollout_with_no_write_in_flight_adds_no_cluster_note() -> None:
    w = World()
    done = w.completed()
    w.target.pair = Pair(stable=100, canary=0)
    w.target.marker = Marker(rollout_id="r1", step=done.step, state=MarkerState.ROLLED_BACK)
    status = w.service.status(REF)
    assert (status.rollout, status.cluster_note) == (done, "")


class CatchingUpTraffic(FakeTraffic):
    """The fake traffic, counting the writes refused for being sent on the namespace cache's
    copy; the cache then catches up (its copy is dropped)."""

    refused = 0

    def apply(self, rollout: Rollout, effect: Effect, *, fence: int,
              before: tuple[Pair, ...] | None = None, recalled: bool = False) -> Observed:
        try:
            observed: Observed = super().apply(rollout, effect, fence=fence, before=before,
                                               recalled=recalled)
        except StaleView:
            self.refused += 1
            self.targets[rollout.target.key].copy = None
            raise
        return observed


def test_a_rollback_of_a_completed_rollout_is_written_on_a_fresh_read_not_the_cache() -> None:
    w = World()
    w.completed()
    traffic = CatchingUpTraffic(w.target)
    w.target.copy = Observed(pair=Pair(stable=50, canary=50),
                             marker=Marker(rollout_id="r1", step=0))  # trails the cluster
    assert w.replica(FakeFacts(world()), traffic).rollback(REF, actor=CAROL).ok
    assert traffic.refused == 0 and w.target.pair == Pair(stable=100, canary=0)
    assert w.service.get(REF).phase is Phase.ROLLED_BACK


# ---- the freeze on each card -------------------------------------------------------------


def test_a_freeze_tells_each_active_rollouts_card_what_it_recorded_there() -> None:
    w = World()
    w.start()
    w.heard.clear()  # the start's own outcome
    w.service.freeze(actor=BOB, reason="incident 42")
    r = w.service.get(REF)
    [event] = [e for e in w.store.events if e.rollout_id == "r1"
               and e.action is AuditAction.FROZEN]
    assert (event.actor, event.detail, event.target) == (BOB, "incident 42", r.target.key)
    assert w.heard == [Outcome(r, "incident 42", changed=False, events=(event,))]


# ---- retire and promote ----------------------------------------------------------------------


def test_a_retried_retire_gets_the_first_answer() -> None:
    w = World()
    w.completed()
    first = w.service.retire(REF, actor=CAROL, request_id="req-1")
    assert first.changed and first.message.startswith("llm-pool retired (before the keep")
    again = w.service.retire(REF, actor=CAROL, request_id="req-1")
    assert (again.message, again.changed) == (f"Already handled: {first.message}", False)


def test_a_promote_whose_write_fails_pauses_by_whoever_promoted() -> None:
    w = World()
    w.start()
    w.service.approve(REF, actor=BOB)
    w.target.fail_next = ClusterUnavailable("the API server is unreachable")
    out = w.service.promote(REF, actor=CAROL)
    assert not out.ok
    r = w.service.get(REF)
    assert r.pause is not None and (r.pause.kind, r.pause.by) == (PauseKind.FAILURE, CAROL)
    assert (w.store.events[-1].action, w.store.events[-1].actor) == (AuditAction.PAUSED, CAROL)
    assert w.target.pair == Pair(stable=50, canary=50)


# ---- the scheduler's queries ---------------------------------------------------------------


def _kept_over(i: int) -> Rollout:
    kept: Rollout = started().model_copy(update={
        "id": f"r{i:02}", "version": 1, "phase": Phase.COMPLETED, "finished_at": T0,
        "keep_until": T0})
    return kept


def test_a_new_leader_indexes_the_keep_periods_of_the_fifty_most_recent_rollouts() -> None:
    """States written before the keep index existed, which the reminder used to find among
    the 50 most recent: the leader indexes those when it takes the lease, no more."""
    w = World()
    for i in range(51):
        r = _kept_over(i)
        w.store.rollouts[r.id] = r  # put there directly: not in the index
    w.clock.advance(60)
    assert w.service.remind_kept() == []
    w.service.index_kept()
    told = w.service.remind_kept()
    assert len(told) == 50
    assert not w.service.get(Ref(rollout_id="r00")).keep_reminded
    assert w.service.get(Ref(rollout_id="r01")).keep_reminded
    assert w.store.kept == {}  # each reminder's save took its rollout out


def test_indexing_keep_periods_leaves_out_rollouts_with_no_reminder_to_come() -> None:
    w = World()
    told = _kept_over(1).model_copy(update={"keep_reminded": True})
    retired = _kept_over(2).model_copy(update={"retired_at": T0})
    later = _kept_over(3).model_copy(update={"keep_until": T0 + timedelta(hours=1)})
    for r in (told, retired, started(), later):
        w.store.rollouts[r.id] = r
    w.service.index_kept()
    assert w.store.kept == {"r03": T0 + timedelta(hours=1)}


def test_the_keep_reminder_drops_indexed_rollouts_with_no_reminder_to_come() -> None:
    """Indexed by a new leader while its reminder was being told (or gone): left out of the
    index untold, so that no later pass reads it again; one not due yet stays."""
    w = World()
    told = _kept_over(1).model_copy(update={"keep_reminded": True})
    later = _kept_over(2).model_copy(update={"keep_until": T0 + timedelta(hours=1)})
    for r in (told, later):
        w.store.rollouts[r.id] = r
    w.store.kept = {"r01": T0, "gone": T0, "r02": T0 + timedelta(hours=1)}
    w.clock.advance(60)
    assert w.service.remind_kept() == []
    assert w.store.kept == {"r02": T0 + timedelta(hours=1)}
    assert not w.store.saves  # nothing written


def test_history_gives_the_last_two_hundred_events_by_default() -> None:
    w = World()
    for i in range(201):
        w.store.record(AuditEvent(at=T0 + timedelta(seconds=i), rollout_id="r1",
                                  target=TARGET.key, action=AuditAction.PAUSED, actor=ALICE,
                                  detail=str(i)))
    shown = w.service.history(Ref(rollout_id="r1"))
    assert [e.detail for e in shown] == [str(i) for i in range(1, 201)]


def test_only_active_rollouts_that_have_a_due_time_are_indexed() -> None:
    w = World()
    reminded = started(reminder_seconds=600).model_copy(update={"id": "r2"})
    idle = started()  # awaits approval with no reminder: nothing is due
    finished = reminded.model_copy(update={"id": "r3", "phase": Phase.ROLLED_BACK})
    assert idle.next_due_at is None and finished.next_due_at is not None
    for r in (idle, reminded, finished):
        w.store.rollouts[r.id] = r
    w.service.index_due([idle, reminded, finished])
    assert w.service.due_until(T0 + timedelta(days=365)) == {"r2": reminded.next_due_at}


def test_a_due_time_is_indexed_with_the_version_it_was_read_at() -> None:
    """The store puts a due time back only where the rollout has not been saved since."""
    w = World()
    read = started(reminder_seconds=600).model_copy(update={"id": "r2"})
    w.store.rollouts["r2"] = read.model_copy(update={"version": read.version + 1})
    w.service.index_due([read])
    assert w.service.due_until(T0 + timedelta(days=365)) == {}
    w.store.rollouts["r2"] = read
    w.service.index_due([read])
    assert w.service.due_until(T0 + timedelta(days=365)) == {"r2": read.next_due_at}


def test_active_skips_what_the_index_still_lists_that_has_finished_or_gone() -> None:
    class TrailingIndex(FakeStore):
        def active_ids(self) -> list[str]:
            return ["r0", "gone", "r1"]

    store = TrailingIndex()
    store.rollouts["r0"] = started().model_copy(update={"id": "r0",
                                                         "phase": Phase.ROLLED_BACK})
    store.rollouts["r1"] = started()
    service = RolloutService(store=store, traffic=FakeTraffic(), clock=ManualClock(T0),
                             gates=Gates(facts=FakeFacts(world()), freezes=store.freezes))
    assert service.active() == [store.rollouts["r1"]]


def test_load_gives_each_id_its_rollout_and_none_for_one_that_is_gone() -> None:
    w = World()
    r = w.start()
    assert w.service.load(["r1", "gone"]) == {"r1": r, "gone": None}

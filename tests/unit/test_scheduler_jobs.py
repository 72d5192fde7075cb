"""The scheduler's jobs over the in-memory service: whatever order a sweep, a change and a
tick come in, a rollout's job ends at the due time of its newest state. APScheduler runs
paused here, so no job fires on its own and nothing sleeps."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime

import pytest
from apscheduler.job import Job
from apscheduler.schedulers.background import BackgroundScheduler

from rollout.domain.errors import Busy, StoreUnavailable
from rollout.domain.models import Rollout
from rollout.domain.plan import build_plan
from rollout.ports import Changes
from rollout.scheduler import RolloutScheduler, background_scheduler
from rollout.service import Outcome, Ref, RolloutService
from tests.unit.builders import ALICE, BOB, started
from tests.unit.fakes import FakeStore
from tests.unit.test_service import CANARY, REF, _world

BAKE = 60


class _HeldLease:
    """A lease this replica always holds."""

    is_leader = True
    token = 1
    holder = "test"

    def refresh(self) -> bool:
        return True

    def release(self) -> None:
        pass


@pytest.fixture
def stepped() -> Iterator[tuple[RolloutScheduler, Rollout]]:
    """An automatic rollout whose first step applied, with its job at the end of the bake."""
    service, store, _target, _clock = _world()
    jobs = background_scheduler()
    jobs.start(paused=True)
    scheduler = RolloutScheduler(service=service, lease=_HeldLease(),  # type: ignore[arg-type]
                                 scheduler=jobs)
    service.options.listeners.append(scheduler.on_change)
    try:
        service.start(namespace="default", canary=CANARY, actor=ALICE,
                      plan=build_plan([10, 100], interval_seconds=BAKE, auto=True))
        service.approve_plan(REF, actor=BOB)
        store.stale_due = dict(store.due)  # type: ignore[attr-defined]
        service.tick("r1")
        rollout = service.get(Ref(rollout_id="r1"))
        assert rollout.step == 0 and rollout.next_due_at is not None
        assert _job(scheduler) == rollout.next_due_at
        yield scheduler, rollout
    finally:
        jobs.shutdown(wait=False)


def _job(scheduler: RolloutScheduler) -> datetime | None:
    return scheduler.due_times().get("r1")


def test_a_due_index_read_before_a_step_never_moves_the_job_back(
        stepped: tuple[RolloutScheduler, Rollout]) -> None:
    """A sweep reads the due index, then a tick steps and reschedules: the sweep's older due
    time would fire a tick at once, which finds nothing due, and leave no job for a sweep."""
    scheduler, rollout = stepped
    store = scheduler.service.store
    store.due = store.stale_due  # type: ignore[attr-defined]
    scheduler.sweep()
    assert _job(scheduler) == rollout.next_due_at


def test_a_tick_that_finds_nothing_due_leaves_the_job_at_the_due_time_it_read(
        stepped: tuple[RolloutScheduler, Rollout]) -> None:
    scheduler, rollout = stepped
    scheduler.scheduler.remove_job("due:r1")  # spent, as a date job is once it has fired
    scheduler.fire("r1")  # early: the bake is not over, and the outcome says so
    assert _job(scheduler) == rollout.next_due_at


class _PassRemovesSpentJobs(BackgroundScheduler):  # type: ignore[misc]
    """APScheduler whose own pass removes every job, as spent date jobs, just after a caller
    has looked them up (the listing and the removal are under different locks)."""

    def get_jobs(self, jobstore: str | None = None, pending: bool | None = None) -> list[Job]:
        jobs = list(super().get_jobs(jobstore, pending))
        self.remove_all_jobs()
        return jobs

    def get_job(self, job_id: str, jobstore: str | None = None) -> Job | None:
        job = super().get_job(job_id, jobstore)
        self.remove_all_jobs()
        return job


def test_jobs_apscheduler_removed_meanwhile_never_fail_a_sweep_or_a_removal(
        stepped: tuple[RolloutScheduler, Rollout]) -> None:
    scheduler, rollout = stepped
    racing = _PassRemovesSpentJobs()
    racing.start(paused=True)
    try:
        scheduler.scheduler = racing
        racing.add_job(print, "date", run_date=rollout.next_due_at, id="due:gone")
        racing.add_job(print, "date", run_date=rollout.next_due_at, id="due:r1")
        scheduler.sync([rollout])  # `gone` is no longer wanted, and vanished meanwhile
        assert _job(scheduler) == rollout.next_due_at  # r1 is still scheduled
        scheduler._remove("r1")  # its job vanished between the look and the removal
        assert _job(scheduler) is None
        scheduler._drop_jobs()
    finally:
        racing.shutdown(wait=False)


@pytest.fixture
def leading() -> Iterator[tuple[RolloutScheduler, RolloutService, FakeStore]]:
    """A scheduler that leads, over the in-memory service, APScheduler paused, its first
    sweep made (nothing active), listening to the service's outcomes."""
    service, store, _target, _clock = _world()
    jobs = background_scheduler()
    jobs.start(paused=True)
    scheduler = RolloutScheduler(service=service, lease=_HeldLease(),  # type: ignore[arg-type]
                                 scheduler=jobs)
    scheduler.sweep()
    service.options.listeners.append(scheduler.on_change)
    try:
        yield scheduler, service, store
    finally:
        jobs.shutdown(wait=False)


def _automatic(service: RolloutService) -> None:
    service.start(namespace="default", canary=CANARY, actor=ALICE,
                  plan=build_plan([10, 100], interval_seconds=BAKE, auto=True))


def _reading_then(service: RolloutService, person: Callable[[], object]) -> None:
    """The service's read of every active rollout is followed by `person`'s command."""
    read = service.active

    def read_then_a_person_acts() -> list[Rollout]:
        snapshot = read()
        person()
        return snapshot

    service.active = read_then_a_person_acts  # type: ignore[method-assign]


def _overran(store: FakeStore) -> None:
    """The change index no longer reaches back to what the leader saw: it reloads all."""
    real = store.changes_since
    store.changes_since = lambda seen: Changes(  # type: ignore[method-assign]
        seq=real(seen).seq, ids=[], complete=False)


def test_a_full_reload_keeps_a_newer_state_the_leader_heard_while_it_read(
        leading: tuple[RolloutScheduler, RolloutService, FakeStore]) -> None:
    """The reload read a plan not approved yet; a person approved it on this replica
    meanwhile: the job the approval made, ahead of the rest, stays."""
    scheduler, service, store = leading
    _automatic(service)
    _reading_then(service, lambda: service.approve_plan(REF, actor=BOB))
    _overran(store)
    scheduler.sweep()
    assert _job(scheduler) == service.get(REF).next_due_at
    assert scheduler.lane.in_lane == 1


def test_a_job_the_sweep_drops_gives_its_place_in_the_ahead_lane_back(
        leading: tuple[RolloutScheduler, RolloutService, FakeStore]) -> None:
    scheduler, service, store = leading
    _automatic(service)
    service.approve_plan(REF, actor=BOB)  # a person here: the step goes ahead of the rest
    assert scheduler.lane.in_lane == 1
    service.options.listeners.remove(scheduler.on_change)  # another replica, unheard
    service.rollback(REF, actor=BOB)
    _overran(store)
    scheduler.sweep()
    assert _job(scheduler) is None and scheduler.lane.in_lane == 0


def test_one_rollout_whose_check_fails_does_not_stop_the_drift_watch_of_the_others(
        leading: tuple[RolloutScheduler, RolloutService, FakeStore]) -> None:
    scheduler, service, _store = leading
    seen: list[str] = []

    def watch(r: Rollout) -> None:
        seen.append(r.id)
        if r.id == "r1":
            raise KeyError("spec")  # a bug, or a state of a shape this code does not know

    service.watch = watch  # type: ignore[method-assign, assignment]
    scheduler.watch([started().model_copy(update={"id": f"r{i}"}) for i in range(1, 4)])
    assert seen == ["r1", "r2", "r3"]


class _ToggledLease(_HeldLease):
    """A lease the test takes away and gives back."""

    def __init__(self) -> None:
        self.is_leader = True

    def refresh(self) -> bool:
        return self.is_leader


Toggled = tuple[RolloutScheduler, RolloutService, FakeStore, _ToggledLease]


@pytest.fixture
def toggled() -> Iterator[Toggled]:
    """A scheduler whose lease the test takes away, gives back, or renews under a new
    token; APScheduler paused, its first sweep made (nothing active)."""
    service, store, _target, _clock = _world()
    jobs = background_scheduler()
    jobs.start(paused=True)
    lease = _ToggledLease()
    scheduler = RolloutScheduler(service=service, lease=lease,  # type: ignore[arg-type]
                                 scheduler=jobs)
    scheduler.sweep()
    try:
        yield scheduler, service, store, lease
    finally:
        jobs.shutdown(wait=False)


def test_a_new_term_as_leader_keeps_nothing_of_the_last_one(toggled: Toggled) -> None:
    """Redis emptied and the rollout recovered under the same id starts its versions again:
    a copy kept from the last term, with a higher version, must not win over the reload."""
    scheduler, service, _store, lease = toggled
    old = started().model_copy(update={"id": "r1", "version": 5})
    scheduler._remember("r1", old)  # heard in the last term
    lease.is_leader = False
    scheduler.sweep()
    assert scheduler._cached() == []
    lease.is_leader = True
    _automatic(service)  # version 1 in the store now
    scheduler.sweep()
    assert [r.version for r in scheduler._cached()] == [1]


def test_a_lease_regained_under_a_new_token_is_a_new_term(toggled: Toggled) -> None:
    """The lease lapsed between two sweeps and this replica took it again (another leader
    may have led meanwhile, or Redis was emptied): its memory says it led all along, the
    token says otherwise. The sweep reloads everything and keeps nothing of the last term,
    though the change index looks complete (an emptied Redis counts its writes again)."""
    scheduler, service, store, lease = toggled
    scheduler._remember("r9", started().model_copy(update={"id": "r9", "version": 5}))
    _automatic(service)
    service.approve_plan(REF, actor=BOB)  # unheard: no listener, as on another leader
    real = store.changes_since
    store.changes_since = lambda seen: Changes(  # type: ignore[method-assign]
        seq=real(seen).seq, ids=[], complete=True)
    scheduler.sweep()
    assert "r9" in {r.id for r in scheduler._cached()}  # the same term: no full reload
    lease.token = 2
    scheduler.sweep()
    assert _job(scheduler) == service.get(REF).next_due_at
    assert [r.id for r in scheduler._cached()] == ["r1"]


def test_a_takeover_whose_reload_failed_reloads_at_the_next_sweep(
        toggled: Toggled, monkeypatch: pytest.MonkeyPatch) -> None:
    """A new term begins with a full reload; one that Redis did not answer (a blip, as at a
    failover, when terms change) is tried again at the next sweep. Once the term was counted
    as begun, that sweep read only the changes since the last term's: every rollout not
    written since had no job, no drift watch and no analysis for the whole term."""
    scheduler, service, _store, lease = toggled
    _automatic(service)
    service.approve_plan(REF, actor=BOB)  # unheard: no listener, as on another leader
    scheduler.sweep()  # the term that saw it
    lease.token = 2  # lapsed and regained: a new term
    real = service.active
    calls = iter([StoreUnavailable("Redis did not answer")])

    def active() -> list[Rollout]:
        failure = next(calls, None)
        if failure is not None:
            raise failure
        return real()

    monkeypatch.setattr(service, "active", active)
    scheduler.sweep()
    assert scheduler._cached() == []
    scheduler.sweep()
    assert [r.id for r in scheduler._cached()] == ["r1"]
    assert _job(scheduler) == service.get(REF).next_due_at


def test_one_rollout_whose_analysis_fails_does_not_stop_the_analysis_of_the_others(
        leading: tuple[RolloutScheduler, RolloutService, FakeStore],
        monkeypatch: pytest.MonkeyPatch) -> None:
    scheduler, service, _store = leading
    rollouts = [started().model_copy(update={"id": f"r{i}"}) for i in range(1, 4)]
    for r in rollouts:
        scheduler._remember(r.id, r)
    monkeypatch.setattr("rollout.scheduler.gating.due", lambda r, now: True)
    service.load = lambda ids: {i: next(r for r in rollouts if r.id == i)  # type: ignore
                                for i in ids}
    asked: list[str] = []

    def analyse(r: Rollout) -> None:
        asked.append(r.id)
        if r.id == "r1":
            raise KeyError("checks")  # a bug, or a state this code cannot read

    service.analyse = analyse  # type: ignore[method-assign, assignment]
    scheduler.analyse()
    assert sorted(asked) == ["r1", "r2", "r3"]


def test_a_keep_reminder_that_fails_does_not_stop_the_analysis_of_any_rollout(
        leading: tuple[RolloutScheduler, RolloutService, FakeStore],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Only a RolloutError of the reminder was caught: any other (a bug, a state this code
    cannot read) left the pass before its analyses, every pass while it lasted, so that no
    failing canary was rolled back and no gated step passed."""
    scheduler, service, _store = leading
    r = started()
    scheduler._remember(r.id, r)
    monkeypatch.setattr("rollout.scheduler.gating.due", lambda r, now: True)
    service.load = lambda ids: {i: r for i in ids}  # type: ignore[method-assign, assignment]

    def remind_kept() -> list[Outcome]:
        raise ValueError("a kept rollout this code cannot read")

    asked: list[str] = []

    def analyse(loaded: Rollout) -> None:
        asked.append(loaded.id)

    service.remind_kept = remind_kept  # type: ignore[method-assign]
    service.analyse = analyse  # type: ignore[method-assign, assignment]
    scheduler.analyse()
    assert asked == [r.id]


def _baking(service: RolloutService) -> Rollout:
    """An automatic rollout whose first step applied: baking, due at the end of the bake."""
    _automatic(service)
    service.approve_plan(REF, actor=BOB)
    service.tick("r1")
    baking = service.get(REF)
    assert baking.step == 0 and baking.next_due_at is not None
    return baking


def test_a_pause_redis_lost_is_not_kept_by_the_reload_it_causes(
        leading: tuple[RolloutScheduler, RolloutService, FakeStore]) -> None:
    """Redis failed over to a replica without the leader's last write (a pause a person
    made on this replica), the lease surviving: the change sequence went back, so the sweep
    reloads. The reload kept the cached copy, higher in version, over Redis' own:
    the rollout, baking and due in Redis, had no job until someone wrote it again."""
    scheduler, service, store = leading
    baking = _baking(service)
    before = store.snapshot()
    service.pause(REF, actor=BOB)
    scheduler.sweep()  # the pause is seen: heard here, counted by the change index
    assert _job(scheduler) is None
    store.restore(before)  # and lost
    scheduler.sweep()
    assert _job(scheduler) == baking.next_due_at
    assert [r.version for r in scheduler._cached()] == [baking.version]


def _pause_lost_unseen(service: RolloutService, store: FakeStore) -> None:
    """A person pauses the rollout here, and Redis loses the write; the writes since number
    past what the leader saw, so its change index looks complete and lists nothing lost."""
    before = store.snapshot()
    service.pause(REF, actor=BOB)
    store.restore(before)
    real = store.changes_since
    store.changes_since = lambda seen: Changes(  # type: ignore[method-assign]
        seq=max(seen, real(seen).seq), ids=[], complete=True)


def test_a_pause_redis_lost_is_found_once_the_due_index_names_the_rollout(
        leading: tuple[RolloutScheduler, RolloutService, FakeStore]) -> None:
    """As above, but the writes since numbered past what the leader saw before its sweep,
    so the change index looks complete and lists nothing lost: the due index, which names
    the rollout as its bake ends, and the cache, which holds it paused, disagree; Redis'
    copy decides."""
    scheduler, service, store = leading
    baking = _baking(service)
    _pause_lost_unseen(service, store)
    scheduler.sweep()
    assert _job(scheduler) is None  # not due within the horizon yet: nothing read
    service.clock.advance(BAKE - 1)  # type: ignore[attr-defined]
    scheduler.sweep()
    assert _job(scheduler) == baking.next_due_at
    assert [r.version for r in scheduler._cached()] == [baking.version]


def test_a_due_index_behind_the_cache_changes_nothing(
        leading: tuple[RolloutScheduler, RolloutService, FakeStore]) -> None:
    """The due index read before a pause heard here names the rollout: Redis' copy, read
    again, is the paused one the cache holds, and the rollout stays without a job."""
    scheduler, service, store = leading
    baking = _baking(service)
    assert baking.next_due_at is not None
    service.pause(REF, actor=BOB)
    paused = service.get(REF)
    store.due["r1"] = baking.next_due_at  # as read before the pause's save
    service.clock.advance(BAKE - 1)  # type: ignore[attr-defined]
    scheduler.sweep()
    assert _job(scheduler) is None
    assert [r.version for r in scheduler._cached()] == [paused.version]


def test_a_full_reload_replaces_with_the_newest_what_it_heard_while_it_read(
        leading: tuple[RolloutScheduler, RolloutService, FakeStore]) -> None:
    """A reload read the rollout baking; a person paused it on this replica meanwhile: the
    paused state, heard during the read, is kept and the rollout has no job."""
    scheduler, service, store = leading
    _baking(service)
    _reading_then(service, lambda: service.pause(REF, actor=BOB))
    _overran(store)
    scheduler.sweep()
    assert _job(scheduler) is None
    assert [r.version for r in scheduler._cached()] == [service.get(REF).version]


def test_a_full_reload_schedules_what_it_heard_after_it_kept_the_read(
        leading: tuple[RolloutScheduler, RolloutService, FakeStore]) -> None:
    """The reload kept what it read; a person paused the rollout here before the reload
    made its jobs: the jobs follow the cache under the lock, not the list read (which put
    the baking rollout's job back, to fire a tick for nothing)."""
    scheduler, service, store = leading
    _baking(service)
    kept = scheduler._reloaded

    def kept_then_a_person_pauses(rollouts: list[Rollout]) -> None:
        kept(rollouts)
        service.pause(REF, actor=BOB)

    scheduler._reloaded = kept_then_a_person_pauses  # type: ignore[method-assign]
    _overran(store)
    scheduler.sweep()
    assert _job(scheduler) is None


def test_a_state_heard_while_the_due_index_check_reads_wins_over_its_read(
        leading: tuple[RolloutScheduler, RolloutService, FakeStore]) -> None:
    """The check of a lost pause reads Redis' copy (baking); a person pauses the rollout
    again here meanwhile: the pause heard is newer than the read, and stays."""
    scheduler, service, store = leading
    _baking(service)
    _pause_lost_unseen(service, store)
    load = service.load

    def read_then_a_person_pauses(ids: list[str]) -> dict[str, Rollout | None]:
        read = load(ids)
        service.pause(REF, actor=BOB)
        return read

    service.load = read_then_a_person_pauses  # type: ignore[method-assign, assignment]
    service.clock.advance(BAKE - 1)  # type: ignore[attr-defined]
    scheduler.sweep()
    assert _job(scheduler) is None
    assert [r.version for r in scheduler._cached()] == [service.get(REF).version]


def test_a_persons_step_asked_while_a_failing_tick_runs_is_not_dropped(
        stepped: tuple[RolloutScheduler, Rollout]) -> None:
    """A tick of the rollout runs when a person's change makes it due and its job fires
    ahead: the job asks the running tick to go once more. The running tick then failed (the
    person's command held the lock), and the ask went with it: the person's step waited for
    the next sweep, on the default executor, its place ahead lost."""
    scheduler, _rollout = stepped
    service = scheduler.service
    asked: list[str] = []

    def tick(rollout_id: str) -> Outcome:
        asked.append(rollout_id)
        if len(asked) == 1:
            scheduler.fire(rollout_id, ahead=True)  # the person's job, while this runs
            raise Busy(f"another operation on {rollout_id} is still running", retry_after=0)
        return Outcome(None, "nothing due", changed=False)

    service.tick = tick  # type: ignore[method-assign]
    scheduler.fire("r1")
    assert asked == ["r1", "r1"]


def test_a_new_leader_lets_records_kept_without_a_retention_go_once() -> None:
    """Records written while ROLLOUT_RETENTION was 0 are never written again: the leader
    asks the store to give them their time to live when it takes the lease, not at every
    sweep, and in the analysis job's housekeeping, not in the sweep: a scan of a Redis
    shared with other keys must not hold up the lease's renewal and the ticks (the store's
    side: tests/integration/test_store_retention.py)."""
    service, store, _target, clock = _world()
    jobs = background_scheduler()
    jobs.start(paused=True)
    scheduler = RolloutScheduler(service=service, lease=_HeldLease(),  # type: ignore[arg-type]
                                 scheduler=jobs)
    try:
        scheduler.sweep()
        scheduler.sweep()
        assert store.expiry_passes == []  # the sweep only asks
        scheduler.analyse()
        scheduler.analyse()
        assert store.expiry_passes == [clock.now()]
    finally:
        jobs.shutdown(wait=False)


def test_a_retention_pass_that_fails_is_tried_again_at_the_next_analysis() -> None:
    service, store, _target, clock = _world()
    jobs = background_scheduler()
    jobs.start(paused=True)
    scheduler = RolloutScheduler(service=service, lease=_HeldLease(),  # type: ignore[arg-type]
                                 scheduler=jobs)
    failures = iter([StoreUnavailable("Redis did not answer"), RuntimeError("a bug")])
    passes = store.expire_finished

    def expire_finished(now: datetime) -> int:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return passes(now)

    store.expire_finished = expire_finished  # type: ignore[method-assign]
    try:
        scheduler.sweep()
        scheduler.analyse()  # Redis did not answer
        scheduler.analyse()  # the pass's own bug: logged, the analysis goes on
        assert store.expiry_passes == []
        scheduler.analyse()
        scheduler.analyse()
        assert store.expiry_passes == [clock.now()]
    finally:
        jobs.shutdown(wait=False)

"""The scheduler under a throttling Kubernetes API: a 429 holds every tick until its
Retry-After (a tick falling due meanwhile is moved to the hold's end, and asks nothing), then
the ticks resume without waiting for a sweep. APScheduler runs paused here, so no job fires
on its own and nothing sleeps; the service is a stand-in that answers each tick as told."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

import pytest

from rollout.domain.clock import ManualClock
from rollout.domain.errors import ClusterUnavailable, StoreUnavailable, Throttled
from rollout.domain.models import Rollout
from rollout.pacing import TickPacer
from rollout.ports import Changes
from rollout.scheduler import RolloutScheduler, background_scheduler
from rollout.service import Outcome, ServiceOptions
from tests.unit.builders import T0, started
from tests.unit.test_scheduler_jobs import _HeldLease


class _Holds:
    """The record of the scheduler's holds, as `status` reads it; `failing`: Redis is gone."""

    def __init__(self) -> None:
        self.recorded: list[datetime] = []
        self.failing: Exception | None = None

    def hold(self, until: datetime) -> None:
        if self.failing is not None:
            raise self.failing
        self.recorded.append(until)

    def held_until(self) -> datetime | None:
        return self.recorded[-1] if self.recorded else None


class _Ticks:
    """The service as the scheduler calls it: each tick of a rollout takes the next answer
    queued for it (an error to raise, an outcome, or a slow tick), else changes
    something."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.asked: list[str] = []
        self.answers: dict[str, list[Exception | Outcome | _Slow]] = {}
        self.holds = _Holds()
        self.options = ServiceOptions(tick_holds=self.holds)

    def tick(self, rollout_id: str) -> Outcome:
        self.asked.append(rollout_id)
        queued = self.answers.get(rollout_id)
        answer = queued.pop(0) if queued else None
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, _Slow):
            answer.begun.set()
            assert answer.release.wait(10)
            if answer.then is not None:
                raise answer.then
        if isinstance(answer, Outcome):
            return answer
        return Outcome(None, "stepped", changed=True)

    # what a sweep asks: nothing is active
    def changes_since(self, seq: int) -> Changes:
        return Changes(seq=seq, ids=[], complete=True)

    def active(self) -> list[Rollout]:
        return []

    def index_due(self, rollouts: list[Rollout]) -> None:
        pass

    def index_kept(self) -> None:
        pass

    def expire_finished(self) -> int:
        return 0

    def due_until(self, horizon: object) -> list[str]:
        return []


def _throttle(seconds: float) -> Throttled:
    return Throttled("the Kubernetes API is throttling the bot's requests", retry_after=seconds)


@pytest.fixture
def world() -> Iterator[tuple[RolloutScheduler, _Ticks, ManualClock]]:
    clock = ManualClock(T0)
    ticks = _Ticks(clock)
    jobs = background_scheduler()
    jobs.start(paused=True)
    scheduler = RolloutScheduler(service=ticks, lease=_HeldLease(),  # type: ignore[arg-type]
                                 scheduler=jobs)
    try:
        yield scheduler, ticks, clock
    finally:
        if jobs.running:
            jobs.shutdown(wait=False)


def _due(rollout_id: str, at: timedelta) -> Rollout:
    return started().model_copy(update={"id": rollout_id, "next_due_at": T0 + at})


def test_a_throttled_tick_holds_every_tick_until_the_retry_after_then_they_run(
        world: tuple[RolloutScheduler, _Ticks, ManualClock]) -> None:
    scheduler, ticks, clock = world
    ticks.answers["r1"] = [_throttle(3.0)]
    scheduler.fire("r1")
    hold_end = T0 + timedelta(seconds=3)
    assert scheduler.due_times()["r1"] == hold_end  # retried then, not at the next sweep
    scheduler.fire("r2")  # due during the hold: moved, nothing asked of the cluster
    assert ticks.asked == ["r1"] and scheduler.due_times()["r2"] == hold_end
    assert scheduler.pacer.window == 16
    clock.advance(3.0)
    scheduler.fire("r1")
    scheduler.fire("r2")
    assert ticks.asked == ["r1", "r1", "r2"]


def test_a_hold_is_recorded_once_for_status_and_again_only_when_it_grows(
        world: tuple[RolloutScheduler, _Ticks, ManualClock]) -> None:
    """`status` on any replica says why the steps are late; the 429s of the ticks already
    in flight only repeat the hold, and record nothing more unless they extend it."""
    scheduler, ticks, clock = world
    in_flight = _Slow(then=_throttle(1.0))  # sent before the server began refusing
    ticks.answers = {"r1": [_throttle(3.0)], "r2": [in_flight], "r3": [_throttle(5.0)]}
    second = threading.Thread(target=scheduler.fire, args=["r2"])
    second.start()
    assert in_flight.begun.wait(5)
    scheduler.fire("r1")
    assert ticks.holds.recorded == [T0 + timedelta(seconds=3)]
    in_flight.release.set()
    second.join(5)
    assert scheduler.pacer.throttles == 2
    assert ticks.holds.recorded == [T0 + timedelta(seconds=3)]
    clock.advance(3.0)
    scheduler.fire("r3")  # a new hold, after the first
    assert ticks.holds.recorded == [T0 + timedelta(seconds=3), T0 + timedelta(seconds=8)]


def test_a_hold_that_cannot_be_recorded_still_holds_and_says_so(
        world: tuple[RolloutScheduler, _Ticks, ManualClock],
        caplog: pytest.LogCaptureFixture) -> None:
    scheduler, ticks, _clock = world
    ticks.holds.failing = StoreUnavailable("Redis is unreachable")
    ticks.answers["r1"] = [_throttle(3.0)]
    with caplog.at_level("WARNING", logger="rollout.scheduler"):
        scheduler.fire("r1")
    assert scheduler.due_times()["r1"] == T0 + timedelta(seconds=3)
    assert scheduler.pacer.held_until() == T0 + timedelta(seconds=3)
    assert ("could not record the scheduler's hold until 2026-01-01T12:00:03+00:00: Redis "
            "is unreachable") in [r.getMessage() for r in caplog.records]


def test_a_job_scheduled_during_the_hold_is_placed_at_its_end_and_a_later_one_kept(
        world: tuple[RolloutScheduler, _Ticks, ManualClock]) -> None:
    """A sweep or another replica's change schedules a rollout while the hold lasts: a due
    time inside the hold would only fire to be moved, so it is set at the hold's end."""
    scheduler, ticks, _clock = world
    ticks.answers["r1"] = [_throttle(5.0)]
    scheduler.fire("r1")
    scheduler.on_change(Outcome(_due("r2", timedelta(seconds=1)), ""))
    scheduler.on_change(Outcome(_due("r3", timedelta(seconds=9)), ""))
    assert scheduler.due_times()["r2"] == T0 + timedelta(seconds=5)
    assert scheduler.due_times()["r3"] == T0 + timedelta(seconds=9)


def test_a_tick_that_fails_otherwise_leaves_the_window_as_it_was_and_holds_nothing(
        world: tuple[RolloutScheduler, _Ticks, ManualClock]) -> None:
    """A 5xx or a timeout is no throttle: that tick waits for the next sweep, as before, and
    the other ticks go on."""
    scheduler, ticks, _clock = world
    ticks.answers["r1"] = [ClusterUnavailable("the Kubernetes API failed on the route: 500")]
    scheduler.fire("r1")
    assert scheduler.pacer.held_until() is None
    assert scheduler.pacer.window == 32 and scheduler.pacer.in_flight == 0
    assert "r1" not in scheduler.due_times()
    scheduler.fire("r2")
    assert ticks.asked == ["r1", "r2"]


def test_a_tick_that_raises_something_unexpected_still_gives_its_place_back(
        world: tuple[RolloutScheduler, _Ticks, ManualClock]) -> None:
    scheduler, ticks, _clock = world
    bug = RuntimeError("a bug")
    ticks.answers["r1"] = [bug]
    with pytest.raises(RuntimeError) as raised:
        scheduler.fire("r1")
    assert raised.value is bug  # the tick's own error, not one of the pacer's
    assert scheduler.pacer.in_flight == 0


def test_the_window_grows_back_as_ticks_land_after_a_throttle(
        world: tuple[RolloutScheduler, _Ticks, ManualClock]) -> None:
    scheduler, ticks, clock = world
    ticks.answers["r1"] = [_throttle(1.0)]
    scheduler.fire("r1")
    clock.advance(1.0)
    for _ in range(16):
        scheduler.fire("r1")
    assert scheduler.pacer.window == 17
    ticks.answers["r1"] = [Outcome(None, "nothing due", changed=False)] * 40
    for _ in range(40):
        scheduler.fire("r1")
    assert scheduler.pacer.window == 17  # ticks that sent nothing are no evidence


class _Slow:
    """A tick that holds its place until released, and says when it has begun."""

    def __init__(self, then: Exception | None = None) -> None:
        self.begun, self.release = threading.Event(), threading.Event()
        #: raised once released (a tick in flight refused when it reaches the server)
        self.then = then


class _WatchedPacer(TickPacer):
    """Says when a tick has begun waiting for a place in a full window."""

    def __init__(self, clock: ManualClock, *, ceiling: int) -> None:
        super().__init__(clock, ceiling=ceiling, poll_seconds=60.0)  # only a wake ends it
        self.waiting = threading.Event()

    def enter(self, give_up: Callable[[], bool], *, ahead: bool = False,
              key: str = "") -> bool:
        def looks() -> bool:
            if self.in_flight >= self.window:
                self.waiting.set()
            return give_up()

        return super().enter(looks, ahead=ahead, key=key)


class _Lease(_HeldLease):
    """A lease this replica holds until the test says it lost it."""

    def refresh(self) -> bool:
        return self.is_leader


@pytest.mark.parametrize("ending", ["halt", "lease lost"])
def test_a_tick_waiting_for_a_place_gives_up_when_the_scheduler_stops_leading(
        ending: str) -> None:
    """A window of one, its place held by a slow tick: a second tick waits for it, and a stop
    (or a sweep that finds the lease lost) must not wait for the slow tick's cluster before
    that one gives up."""
    clock = ManualClock(T0)
    ticks = _Ticks(clock)
    jobs = background_scheduler()
    jobs.start(paused=True)
    pacer = _WatchedPacer(clock, ceiling=1)
    lease = _Lease()
    scheduler = RolloutScheduler(service=ticks, lease=lease,  # type: ignore[arg-type]
                                 scheduler=jobs, pacer=pacer)
    scheduler.sweep()  # leads
    slow = _Slow()
    ticks.answers["r1"] = [slow]
    first = threading.Thread(target=scheduler.fire, args=["r1"])
    second = threading.Thread(target=scheduler.fire, args=["r2"])
    first.start()
    try:
        assert slow.begun.wait(5)
        second.start()
        assert pacer.waiting.wait(5)
        if ending == "halt":
            scheduler.halt()
        else:
            lease.is_leader = False
            scheduler.sweep()
        second.join(5)
        assert not second.is_alive() and ticks.asked == ["r1"]
    finally:
        slow.release.set()
        first.join(5)
        if jobs.running:
            jobs.shutdown(wait=False)
    assert pacer.in_flight == 0


def test_a_tick_waiting_for_a_place_when_a_throttle_comes_waits_for_the_holds_end() -> None:
    """A window of two held by two slow ticks, a third waiting for a place: both slow ones
    are refused with a 429. The place the first frees went to the waiting tick, which was
    sent at once, in the middle of the hold the 429 asked for."""
    clock = ManualClock(T0)
    ticks = _Ticks(clock)
    jobs = background_scheduler()
    jobs.start(paused=True)
    pacer = _WatchedPacer(clock, ceiling=2)
    scheduler = RolloutScheduler(service=ticks, lease=_HeldLease(),  # type: ignore[arg-type]
                                 scheduler=jobs, pacer=pacer)
    sent_during_hold: list[str] = []
    tick = ticks.tick

    def watched(rollout_id: str) -> Outcome:
        if pacer.held_until() is not None:
            sent_during_hold.append(rollout_id)
        return tick(rollout_id)

    ticks.tick = watched  # type: ignore[method-assign]
    slow = [_Slow(then=_throttle(30)), _Slow(then=_throttle(30))]
    ticks.answers["r1"], ticks.answers["r2"] = [slow[0]], [slow[1]]
    threads = [threading.Thread(target=scheduler.fire, args=[rid]) for rid in ("r1", "r2")]
    try:
        for thread in threads:
            thread.start()
        assert slow[0].begun.wait(5) and slow[1].begun.wait(5)
        waiting = threading.Thread(target=scheduler.fire, args=["r3"])
        waiting.start()
        threads.append(waiting)
        assert pacer.waiting.wait(5)
        for s in slow:
            s.release.set()
        for thread in threads:
            thread.join(5)
        assert sent_during_hold == []
        assert scheduler.due_times()["r3"] == T0 + timedelta(seconds=30)  # at the hold's end
    finally:
        for s in slow:
            s.release.set()
        jobs.shutdown(wait=False)

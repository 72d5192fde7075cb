"""The injected clocks: the system clock is UTC, the manual one moves only when told to."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rollout.domain.clock import ManualClock, SystemClock
from rollout.domain.models import Actor, Via


def test_the_manual_clock_starts_at_its_documented_instant_and_moves_when_told() -> None:
    clock = ManualClock()
    assert clock.now() == datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert clock.advance(90) == datetime(2026, 1, 1, 12, 1, 30, tzinfo=UTC) == clock.now()
    later = datetime(2026, 3, 1, tzinfo=UTC)
    clock.set(later)
    assert clock.now() == later and ManualClock(later).now() == later


def test_the_system_clock_is_aware_utc() -> None:
    now = SystemClock().now()
    assert now.tzinfo is UTC and abs(datetime.now(UTC) - now) < timedelta(seconds=5)


def test_the_scheduler_acts_under_its_own_name() -> None:
    assert Actor.scheduler() == Actor(id="scheduler", name="scheduler", via=Via.SCHEDULER)
    assert Actor.scheduler().label == "scheduler"

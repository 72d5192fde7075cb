"""The graceful stop's waits share one deadline (ROLLOUT_STOP_TIMEOUT): each is given what
is left of it, and a stop still running when it passes ends the process. An injected clock
moves time; nothing here sleeps (a wait whose deadline has passed returns at once)."""

from __future__ import annotations

import logging
import threading

import pytest

from bot.graceful_stop import EXIT_STOP_CUT_SHORT, Deadline, Step, stop_gracefully
from bot.settings import SettingsError, load_settings


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _taking(clock: FakeClock, seconds: float, given: list[float]) -> Step:
    """A step that records what it was given and takes `seconds` of it (all, if less)."""

    def step(deadline: Deadline) -> None:
        given.append(deadline.remaining())
        clock.now += min(seconds, deadline.remaining())

    return (f"{seconds}s", step)


def test_each_wait_is_given_what_is_left_of_one_deadline() -> None:
    clock, given, exits = FakeClock(), list[float](), list[int]()
    steps = [_taking(clock, 20, given), _taking(clock, 12, given), _taking(clock, 3, given)]
    stop_gracefully(steps, Deadline(50, clock=clock), exit=exits.append)
    assert given == [50, 30, 18]
    assert clock.now - 1000 == 35 and exits == []


def test_a_deadline_used_up_leaves_nothing_to_the_waits_after_it(
        caplog: pytest.LogCaptureFixture) -> None:
    """The scheduler's tick took the whole deadline: the server's waits get 0 s (they close
    without waiting) and the process ends, naming the step that used it up."""
    clock, given, exits = FakeClock(), list[float](), list[int]()
    steps = [_taking(clock, 60, given), _taking(clock, 5, given), _taking(clock, 5, given)]
    with caplog.at_level(logging.ERROR):
        stop_gracefully(steps, Deadline(50, clock=clock), exit=exits.append)
    assert given == [50, 0, 0] and clock.now - 1000 == 50
    assert exits == [EXIT_STOP_CUT_SHORT]
    (line,) = [r for r in caplog.records if getattr(r, "event", "") == "stop_deadline_passed"]
    assert vars(line)["step"] == "60s"


def test_a_step_still_running_at_the_deadline_ends_the_process(
        caplog: pytest.LogCaptureFixture) -> None:
    """A tick in flight that never ends holds `scheduler.stop` (it has no timeout): the main
    thread does not wait for it past the deadline."""
    clock, held, exits = FakeClock(), threading.Event(), list[int]()
    later: list[float] = []

    def stuck(deadline: Deadline) -> None:
        held.wait()

    deadline = Deadline(50, clock=clock)
    clock.now += 50  # spent before the stop: the main thread waits no more
    try:
        with caplog.at_level(logging.ERROR):
            stop_gracefully([("scheduler", stuck), _taking(clock, 1, later)], deadline,
                            exit=exits.append)
        assert exits == [EXIT_STOP_CUT_SHORT] and later == []
        (line,) = [r for r in caplog.records
                   if getattr(r, "event", "") == "stop_deadline_passed"]
        assert vars(line)["step"] == "scheduler"
    finally:
        held.set()


def test_a_failing_step_is_logged_and_the_next_still_runs(
        caplog: pytest.LogCaptureFixture) -> None:
    clock, given, exits = FakeClock(), list[float](), list[int]()

    def broken(deadline: Deadline) -> None:
        raise RuntimeError("boom")

    stop_gracefully([("scheduler", broken), _taking(clock, 1, given)],
                    Deadline(50, clock=clock), exit=exits.append)
    assert given == [50] and exits == []
    assert any(getattr(r, "event", "") == "stop_failed" for r in caplog.records)


def test_a_deadline_counts_down_and_never_below_zero() -> None:
    clock = FakeClock()
    deadline = Deadline(50, clock=clock)
    clock.now += 20
    assert deadline.remaining() == 30 and not deadline.passed
    clock.now += 40
    assert deadline.remaining() == 0 and deadline.passed
    assert Deadline.of(deadline) is deadline


def test_the_stop_timeout_is_fifty_seconds_and_configurable() -> None:
    assert load_settings().rollout_stop_timeout == 50
    assert load_settings(rollout_stop_timeout="20").rollout_stop_timeout == 20


@pytest.mark.parametrize("value", ["0", "-5", "soon", "3601"])
def test_a_bad_stop_timeout_is_refused_naming_it(value: str) -> None:
    with pytest.raises(SettingsError, match=r"ROLLOUT_STOP_TIMEOUT: "):
        load_settings(rollout_stop_timeout=value)

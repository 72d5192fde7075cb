"""The lane's bookkeeping on its own: which change goes ahead, for how long it is remembered,
and when a place in the lane frees (the scheduler's use of it: test_scheduler_ahead.py)."""

from __future__ import annotations

from datetime import timedelta

from rollout.ahead_lane import AHEAD_THREADS, AHEAD_WITHIN, AheadLane
from tests.unit.builders import T0

REMEMBER = timedelta(seconds=10)
SECOND = timedelta(seconds=1)


def _lane(threads: int = 2) -> AheadLane:
    return AheadLane(REMEMBER, threads=threads)


def test_the_defaults_are_a_few_threads_for_a_step_due_within_a_second() -> None:
    lane = AheadLane(REMEMBER)
    assert (lane.threads, lane.within) == (AHEAD_THREADS, AHEAD_WITHIN)
    assert (AHEAD_THREADS, AHEAD_WITHIN) == (4, SECOND)
    assert lane.remember_for == REMEMBER and lane.in_lane == 0


def test_only_a_change_heard_goes_ahead() -> None:
    lane = _lane()
    assert not lane.admit("r1", T0, T0)
    lane.hear("r1", T0)
    assert not lane.admit("r2", T0, T0)
    assert lane.admit("r1", T0, T0)
    assert lane.in_lane == 1


def test_it_goes_ahead_when_due_within_the_bound_and_not_after() -> None:
    lane = _lane()
    lane.hear("r1", T0)
    assert lane.admit("r1", T0 + AHEAD_WITHIN, T0)
    assert not lane.admit("r1", T0 + AHEAD_WITHIN + timedelta(microseconds=1), T0)
    assert lane.in_lane == 0  # a job moved out of the lane gives its place back
    assert lane.admit("r1", T0 - SECOND, T0)  # overdue: at once


def test_a_change_is_remembered_for_its_time_and_not_a_moment_longer() -> None:
    lane = _lane()
    lane.hear("r1", T0)
    end = T0 + REMEMBER
    assert lane.heard_lately("r1", end - timedelta(microseconds=1))
    assert not lane.heard_lately("r1", end)
    assert not lane.admit("r1", end, end)
    assert not lane.heard_lately("r2", T0)


def test_hearing_again_renews_the_memory() -> None:
    lane = _lane()
    lane.hear("r1", T0)
    lane.hear("r1", T0 + REMEMBER - SECOND)
    assert lane.heard_lately("r1", T0 + REMEMBER)


def test_stale_changes_are_forgotten_when_another_is_heard() -> None:
    lane = _lane()
    lane.hear("old", T0)
    lane.hear("fresh", T0 + REMEMBER - SECOND)
    lane.hear("new", T0 + REMEMBER)  # "old" expires now; "fresh" is still remembered
    assert set(lane._heard) == {"fresh", "new"}


def test_the_lane_holds_at_most_its_threads_and_a_holder_keeps_its_place() -> None:
    lane = _lane(threads=2)
    for rid in ("a", "b", "c"):
        lane.hear(rid, T0)
    assert [lane.admit(rid, T0, T0) for rid in ("a", "b", "c")] == [True, True, False]
    assert lane.admit("a", T0, T0)  # rescheduled while it holds its place
    assert lane.in_lane == 2


def test_a_served_change_frees_its_place_and_is_forgotten() -> None:
    lane = _lane(threads=1)
    for rid in ("a", "b"):
        lane.hear(rid, T0)
    assert lane.admit("a", T0, T0)
    lane.served("a")
    assert lane.in_lane == 0 and not lane.heard_lately("a", T0)
    assert not lane.admit("a", T0, T0)  # its next step queues with the others
    assert lane.admit("b", T0, T0)


def test_a_released_rollout_frees_its_place_but_a_new_job_may_still_go_ahead() -> None:
    lane = _lane(threads=1)
    lane.hear("a", T0)
    lane.hear("b", T0)
    assert lane.admit("a", T0, T0)
    lane.release("a")
    assert lane.in_lane == 0 and lane.heard_lately("a", T0)
    assert lane.admit("b", T0, T0)


def test_clear_forgets_everything() -> None:
    lane = _lane(threads=1)
    lane.hear("a", T0)
    assert lane.admit("a", T0, T0)
    lane.clear()
    assert lane.in_lane == 0 and not lane.heard_lately("a", T0)
    lane.hear("b", T0)
    assert lane.admit("b", T0, T0)


def test_a_job_served_after_its_change_was_forgotten_frees_its_place_all_the_same() -> None:
    lane = _lane(threads=1)
    lane.hear("a", T0)
    assert lane.admit("a", T0, T0)
    lane.hear("b", T0 + REMEMBER)  # "a" is forgotten here, its job still in the lane
    lane.served("a")
    assert lane.in_lane == 0
    lane.served("never heard")

"""The lock keeper's schedule, on an injected clock: each hold renewed every period while
its limit allows, never after it is let go or found lost."""

from __future__ import annotations

import pytest

from rollout.lock_keeper import LockKeeper


class _Hold:
    def __init__(self, *, lost_after: int | None = None) -> None:
        self.renewals = 0
        self.lost_after = lost_after

    def renew(self) -> bool:
        self.renewals += 1
        return self.lost_after is None or self.renewals <= self.lost_after


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _keeper(clock: _Clock, *, every: float = 1.0, limit: float = 5.5) -> LockKeeper:
    return LockKeeper(every, limit=limit, clock=clock, background=False)


def test_a_hold_is_renewed_every_period_until_its_limit() -> None:
    clock = _Clock()
    keeper = _keeper(clock)
    hold = _Hold()
    keeper.keep(hold)
    keeper.renew_due(0.99)
    assert hold.renewals == 0  # not before its first period
    for t in range(1, 11):
        keeper.renew_due(float(t))
    assert hold.renewals == 5  # at 1..5; 6 is past the limit
    assert keeper.held() == 0


def test_a_hold_found_lost_is_not_renewed_again() -> None:
    keeper = _keeper(_Clock(), limit=100)
    hold = _Hold(lost_after=2)
    keeper.keep(hold)
    for t in range(1, 11):
        keeper.renew_due(float(t))
    assert hold.renewals == 3 and keeper.held() == 0


def test_a_hold_let_go_is_not_renewed() -> None:
    keeper = _keeper(_Clock(), limit=100)
    hold, other = _Hold(), _Hold()
    key = keeper.keep(hold)
    keeper.keep(other)
    keeper.renew_due(1.0)
    keeper.let_go(key)
    keeper.renew_due(2.0)
    assert (hold.renewals, other.renewals) == (1, 2) and keeper.held() == 1


def test_holds_kept_at_different_times_fall_due_in_their_own_periods() -> None:
    clock = _Clock()
    keeper = _keeper(clock, limit=100)
    early, late = _Hold(), _Hold()
    keeper.keep(early)
    clock.now = 0.5
    keeper.keep(late)
    keeper.renew_due(1.0)
    assert (early.renewals, late.renewals) == (1, 0)
    keeper.renew_due(1.5)
    assert (early.renewals, late.renewals) == (1, 1)


def test_the_schedule_does_not_grow_with_the_holds_let_go() -> None:
    """A busy process keeps and lets go hundreds of holds a second, each let go long before
    its first renewal: what is left of them stays bounded."""
    keeper = _keeper(_Clock(), limit=100)
    for _ in range(10_000):
        keeper.let_go(keeper.keep(_Hold()))
    assert keeper.held() == 0 and len(keeper._due) <= 64 + 1


@pytest.mark.parametrize("every", [0.0, -1.0])
def test_a_keeper_refuses_a_period_that_is_not_positive(every: float) -> None:
    with pytest.raises(ValueError, match="positive period"):
        LockKeeper(every)


class _Failing:
    """A renewal that raises what it did not expect (a read-only Redis's error reply)."""

    def __init__(self) -> None:
        self.renewals = 0

    def renew(self) -> bool:
        self.renewals += 1
        raise RuntimeError("READONLY You can't write against a read only replica.")


def test_a_renewal_that_raises_drops_its_hold_and_the_others_go_on() -> None:
    """It used to end the keeper's thread: no lock in the process was renewed after it."""
    clock = _Clock()
    keeper = _keeper(clock)
    failing, other = _Failing(), _Hold()
    keeper.keep(failing)
    keeper.keep(other)
    keeper.renew_due(1.0)
    assert failing.renewals == 1 and other.renewals == 1 and keeper.held() == 1
    keeper.renew_due(2.0)
    assert failing.renewals == 1 and other.renewals == 2

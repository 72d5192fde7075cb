"""The scheduler's hold-back under a throttling Kubernetes API: the window of ticks in flight
halves once per hold and grows back by one per window of ticks that changed something; a
full window makes a tick wait for a place, and a stop ends the wait."""

from __future__ import annotations

import threading
from datetime import timedelta
from functools import partial

import pytest

from rollout.domain.clock import ManualClock
from rollout.pacing import MAKE_WAY_SECONDS, MAKE_WAY_WINDOW, TickPacer
from tests.support.polling import eventually
from tests.unit.builders import T0

ROUNDS = 20


def _never() -> bool:
    return False


Waiter = tuple[threading.Thread, threading.Event, threading.Event]


def _entered_are(waiters: list[Waiter], count: int) -> bool:
    return sum(e.is_set() for _t, _w, e in waiters) == count


def _pacer(ceiling: int = 32, *, poll: float = 60.0) -> tuple[TickPacer, ManualClock]:
    """`poll`: a waiting tick looks whether to give up this often; a minute here, so that
    only a freed place or a wake ends a wait."""
    clock = ManualClock(T0)
    return TickPacer(clock, ceiling=ceiling, poll_seconds=poll), clock


def _waiter(pacer: TickPacer, *, ahead: bool = False,
            stop: threading.Event | None = None,
            ) -> tuple[threading.Thread, threading.Event, threading.Event]:
    """A tick on a thread of its own: `waiting` once it found no place, `entered` once in;
    it gives up once `stop` is set."""
    waiting, entered = threading.Event(), threading.Event()

    def looks() -> bool:  # asked only while no place is free
        waiting.set()
        return stop is not None and stop.is_set()

    def enters() -> None:  # an ordinary tick as the scheduler's callers make it: no flag
        if pacer.enter(looks, ahead=True) if ahead else pacer.enter(looks):
            entered.set()

    thread = threading.Thread(target=enters, daemon=True)  # a failed test leaves none behind
    thread.start()
    return thread, waiting, entered


def _halved(pacer: TickPacer, clock: ManualClock, times: int = 1) -> None:
    for _ in range(times):
        pacer.enter(_never)
        pacer.throttled(1.0)
        clock.advance(1.0)


def test_a_new_pacer_lets_in_the_whole_window_and_holds_nothing() -> None:
    pacer, _ = _pacer(3)
    assert pacer.window == 3 and pacer.held_until() is None
    assert all(pacer.enter(_never) for _ in range(3))
    assert pacer.in_flight == 3


def test_a_window_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^the window of ticks in flight is at least 1$"):
        TickPacer(ManualClock(T0), ceiling=0)


def test_a_throttle_holds_every_tick_until_its_retry_after_and_halves_the_window() -> None:
    pacer, clock = _pacer()
    pacer.enter(_never)
    until = pacer.throttled(3.0)
    assert until == T0 + timedelta(seconds=3)
    assert pacer.held_until() == until and pacer.window == 16 and pacer.in_flight == 0
    clock.advance(2.999)
    assert pacer.held_until() == until
    clock.advance(0.001)
    assert pacer.held_until() is None


def test_a_burst_of_throttles_from_ticks_already_in_flight_halves_the_window_once() -> None:
    """Every tick in flight when the server began refusing gets its 429: one hold, one
    halving, and the longest Retry-After named stands."""
    pacer, clock = _pacer()
    for _ in range(4):
        pacer.enter(_never)
    pacer.throttled(2.0)
    clock.advance(0.5)
    assert pacer.throttled(1.0) == T0 + timedelta(seconds=2)  # shorter: the hold stands
    assert pacer.throttled(4.0) == T0 + timedelta(seconds=4.5)  # longer: it extends
    pacer.throttled(0.0)
    assert pacer.window == 16 and pacer.throttles == 4 and pacer.in_flight == 0
    clock.advance(4.0)
    pacer.enter(_never)
    pacer.throttled(1.0)  # after the hold: the server still refuses, halve again
    assert pacer.window == 8


def test_the_window_never_falls_below_one() -> None:
    pacer, clock = _pacer(2)
    for _ in range(3):
        pacer.enter(_never)
        pacer.throttled(1.0)
        clock.advance(1.0)
    assert pacer.window == 1


def test_the_window_grows_back_by_one_per_window_of_ticks_that_changed_something() -> None:
    pacer, clock = _pacer(4)
    for _ in range(2):  # 4 -> 2 -> 1
        pacer.enter(_never)
        pacer.throttled(1.0)
        clock.advance(1.0)
    assert pacer.window == 1
    grown = []
    for _ in range(7):
        pacer.enter(_never)
        pacer.leave(changed=True)
        grown.append(pacer.window)
    # 1 -> 2 after one tick; 2 -> 3 after two more; 3 -> 4 after three more, then no further
    assert grown == [2, 2, 3, 3, 3, 4, 4]


def test_ticks_that_changed_nothing_do_not_grow_the_window() -> None:
    """A tick that found nothing due made no request: no evidence the cluster takes more."""
    pacer, clock = _pacer(4)
    pacer.enter(_never)
    pacer.throttled(1.0)
    clock.advance(1.0)
    for _ in range(10):
        pacer.enter(_never)
        pacer.leave(changed=False)
    assert pacer.window == 2 and pacer.in_flight == 0


def test_a_full_window_makes_a_tick_wait_until_a_place_frees() -> None:
    pacer, _ = _pacer(1)
    assert pacer.enter(_never)
    waiter, waiting, entered = _waiter(pacer)
    assert waiting.wait(5) and pacer.in_flight == 1 and not entered.is_set()
    pacer.leave(changed=False)
    assert entered.wait(5)
    waiter.join(5)
    assert pacer.in_flight == 1


def test_a_stop_ends_the_wait_of_a_tick_for_a_place_without_taking_one() -> None:
    pacer, _ = _pacer(1)
    pacer.enter(_never)
    stopping = threading.Event()
    answers: list[bool] = []
    waiter = threading.Thread(target=lambda: answers.append(pacer.enter(stopping.is_set)))
    waiter.start()
    stopping.set()
    pacer.wake()
    waiter.join(5)
    assert answers == [False] and pacer.in_flight == 1


def test_a_tick_asked_to_give_up_before_it_enters_takes_no_place() -> None:
    pacer, _ = _pacer(2)
    assert not pacer.enter(lambda: True)
    assert pacer.in_flight == 0


def test_many_threads_never_hold_more_places_than_the_window() -> None:
    """Real threads entering and leaving at once: the window is the most ever inside."""
    pacer, _ = _pacer(3)
    lock = threading.Lock()
    inside = [0]
    most = [0]

    def tick() -> None:
        for _ in range(200):
            assert pacer.enter(_never)
            with lock:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            with lock:
                inside[0] -= 1
            pacer.leave(changed=False)

    threads = [threading.Thread(target=tick) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert most[0] <= 3 and pacer.in_flight == 0


def test_an_odd_window_halves_to_a_whole_number() -> None:
    pacer, clock = _pacer(5)
    _halved(pacer, clock)
    assert pacer.window == 2 and isinstance(pacer.window, int)


def test_after_a_halving_the_window_grows_only_once_a_whole_window_changed_something() -> None:
    pacer, clock = _pacer(4)
    _halved(pacer, clock)
    assert pacer.window == 2
    pacer.enter(_never)
    pacer.leave(changed=True)
    assert pacer.window == 2  # one of two
    pacer.enter(_never)
    pacer.leave(changed=True)
    assert pacer.window == 3


def test_a_whole_window_never_grows_past_its_ceiling() -> None:
    pacer, _ = _pacer(3)
    for _ in range(10):
        pacer.enter(_never)
        pacer.leave(changed=True)
    assert pacer.window == 3


def test_a_retry_after_of_zero_holds_nothing_but_still_halves() -> None:
    pacer, _ = _pacer(8)
    pacer.enter(_never)
    assert pacer.throttled(0.0) == T0
    assert pacer.held_until() is None and pacer.window == 4


def test_a_window_that_grows_lets_a_waiting_tick_in_at_once() -> None:
    """A place freed and the window grown: the tick waiting is woken, not left to its
    poll."""
    pacer, clock = _pacer(2)
    _halved(pacer, clock)
    assert pacer.window == 1
    pacer.enter(_never)  # the window is full
    waiter, waiting, entered = _waiter(pacer)
    assert waiting.wait(5)
    pacer.leave(changed=True)  # 1 of 1 changed something: the window grows to 2
    assert pacer.window == 2
    assert entered.wait(5)
    waiter.join(5)


def test_a_tick_whose_replica_stops_leading_gives_up_at_its_next_look() -> None:
    """A lease can lapse between sweeps with no wake: the waiting tick looks again on its
    own, every poll."""
    pacer, _ = _pacer(1, poll=0.001)
    pacer.enter(_never)
    leading = threading.Event()
    leading.set()
    answers: list[bool] = []
    waiter = threading.Thread(target=lambda: answers.append(
        pacer.enter(lambda: not leading.is_set())))
    waiter.start()
    leading.clear()
    waiter.join(5)
    assert answers == [False]


def test_the_log_says_when_the_hold_begins_and_when_the_window_is_whole_again(
        caplog: pytest.LogCaptureFixture) -> None:
    pacer, clock = _pacer(2)
    with caplog.at_level("INFO", logger="rollout.pacing"):
        pacer.enter(_never)
        pacer.enter(_never)
        pacer.throttled(3.0)
        pacer.throttled(4.0)  # the same hold, a little longer: not said again
        clock.advance(4.0)
        pacer.enter(_never)
        pacer.leave(changed=True)
        pacer.enter(_never)
        pacer.leave(changed=True)  # whole already: said once
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "the Kubernetes API is throttling the scheduler's ticks: none until "
                    "2026-01-01T12:00:03+00:00, then up to 1 at once"),
        ("INFO", "the Kubernetes API takes the scheduler's ticks again: up to 2 at once"),
    ]


# -- making way for people's commands ---------------------------------------------------------

def test_while_a_persons_command_runs_only_the_make_way_window_of_ticks_is_let_in() -> None:
    """The command's end lets a waiting tick in at once: the bound here is an hour away."""
    pacer = TickPacer(ManualClock(T0), ceiling=32, poll_seconds=3600, make_way_seconds=3600)
    assert pacer.admitting == 32
    pacer.person_began("key:7")
    assert pacer.people == 1 and pacer.window == 32 and pacer.admitting == MAKE_WAY_WINDOW
    assert all(pacer.enter(_never) for _ in range(MAKE_WAY_WINDOW))
    waiter, waiting, entered = _waiter(pacer)
    assert waiting.wait(5) and not entered.is_set()
    assert pacer.in_flight == MAKE_WAY_WINDOW
    pacer.person_ended("key:7")
    assert entered.wait(5)
    waiter.join(5)
    assert pacer.people == 0 and pacer.in_flight == MAKE_WAY_WINDOW + 1
    assert pacer.admitting == 32
    assert all(pacer.enter(_never) for _ in range(32 - MAKE_WAY_WINDOW - 1))


def test_ticks_already_in_flight_when_a_person_begins_are_not_undone() -> None:
    """The make-way window bounds the ticks let in, not those already at work."""
    pacer, _ = _pacer(8)
    assert all(pacer.enter(_never) for _ in range(6))
    pacer.person_began("key:1")
    waiter, waiting, entered = _waiter(pacer)
    assert waiting.wait(5) and pacer.in_flight == 6
    for _ in range(6 - MAKE_WAY_WINDOW + 1):
        pacer.leave(changed=True)
    assert entered.wait(5)
    waiter.join(5)
    assert pacer.in_flight == MAKE_WAY_WINDOW


def test_the_ticks_make_way_while_any_of_several_people_runs() -> None:
    pacer, _ = _pacer(4)
    pacer.person_began("a:1")
    pacer.person_began("b:2")
    pacer.person_ended("a:1")
    assert pacer.people == 1 and pacer.admitting == MAKE_WAY_WINDOW
    pacer.person_ended("b:2")
    assert pacer.people == 0 and pacer.admitting == 4


def test_a_command_whose_end_never_comes_is_made_way_for_only_so_long() -> None:
    pacer, clock = _pacer(4)
    pacer.person_began("lost:3")  # its replica died before its close
    assert all(pacer.enter(_never) for _ in range(MAKE_WAY_WINDOW))
    waiter, waiting, entered = _waiter(pacer)
    assert waiting.wait(5)
    clock.advance(MAKE_WAY_SECONDS - 0.001)
    assert pacer.people == 1 and pacer.admitting == MAKE_WAY_WINDOW
    clock.advance(0.001)
    assert pacer.admitting == 4
    pacer.wake()
    assert entered.wait(5)
    waiter.join(5)
    assert pacer.people == 0


def test_an_end_nothing_began_and_an_end_said_twice_change_nothing() -> None:
    pacer, _ = _pacer(4)
    pacer.person_ended("never:1")
    pacer.person_began("once:2")
    pacer.person_ended("once:2")
    pacer.person_ended("once:2")
    assert pacer.people == 0 and pacer.admitting == 4


def test_a_window_a_throttle_halved_below_the_make_way_window_stays_as_it_is() -> None:
    pacer, clock = _pacer(4)
    _halved(pacer, clock, times=2)
    assert pacer.window == 1
    pacer.person_began("key:1")
    assert pacer.admitting == 1


def test_a_tick_waiting_behind_a_person_looks_again_when_the_bound_is_reached() -> None:
    """A waiting tick sleeps no longer than the time left to the earliest bound of the
    commands it makes way for (or the poll, if sooner): an end that never comes does not
    keep it waiting a whole poll past the bound."""
    clock = ManualClock(T0)
    pacer = TickPacer(clock, ceiling=4, poll_seconds=60.0, make_way_seconds=0.25)
    pacer.person_began("lost:1")
    assert all(pacer.enter(_never) for _ in range(MAKE_WAY_WINDOW))
    waits: list[float] = []
    real_wait = pacer._cond.wait

    def recorded(timeout: float | None = None) -> bool:
        waits.append(timeout if timeout is not None else -1.0)
        clock.advance(0.25)  # time passes while it sleeps
        return real_wait(0)

    pacer._cond.wait = recorded  # type: ignore[method-assign]
    assert pacer.enter(_never)
    assert waits == [0.25]


def test_commands_whose_end_was_lost_are_forgotten_where_no_tick_asks() -> None:
    """A replica that does not lead hears every person's command and never lets a tick in:
    those whose end never came do not pile up there."""
    pacer, clock = _pacer(4)
    for i in range(100):
        pacer.person_began(f"lost:{i}")
        clock.advance(MAKE_WAY_SECONDS)
    assert len(pacer._people) == 1


def test_a_tick_going_ahead_takes_the_next_free_place_before_ticks_that_waited_longer(
) -> None:
    """The tick a person's change made due is not queued behind the backlog: a tick that
    waited first, and is woken first, still waits. Many rounds: whichever thread the
    condition wakes first."""
    for _ in range(ROUNDS):
        pacer, _clock = _pacer(1)
        assert pacer.enter(_never)
        behind, behind_waiting, behind_entered = _waiter(pacer)
        assert behind_waiting.wait(5)
        ahead, ahead_waiting, ahead_entered = _waiter(pacer, ahead=True)
        assert ahead_waiting.wait(5)
        pacer.leave(changed=True)
        assert ahead_entered.wait(5)
        ahead.join(5)
        assert pacer.in_flight == 1 and not behind_entered.is_set()
        pacer.leave(changed=True)
        assert behind_entered.wait(5)
        behind.join(5)


def test_a_throttled_tick_hands_its_place_to_the_tick_going_ahead() -> None:
    """The second throttle of a hold frees a place (the window halved at the first)."""
    pacer, _clock = _pacer(2)
    assert pacer.enter(_never) and pacer.enter(_never)
    pacer.throttled(10.0)  # the window halves to 1, and one place is still taken
    behind, behind_waiting, behind_entered = _waiter(pacer)
    assert behind_waiting.wait(5)
    ahead, ahead_waiting, ahead_entered = _waiter(pacer, ahead=True)
    assert ahead_waiting.wait(5)
    pacer.throttled(10.0)  # the same hold: the window stays, a place frees
    assert ahead_entered.wait(5)
    ahead.join(5)
    assert not behind_entered.is_set()
    pacer.leave(changed=False)
    assert behind_entered.wait(5)
    behind.join(5)


def test_a_tick_going_ahead_that_gives_up_holds_back_no_other() -> None:
    pacer, _clock = _pacer(1)
    assert pacer.enter(_never)
    stop = threading.Event()
    ahead, ahead_waiting, ahead_entered = _waiter(pacer, ahead=True, stop=stop)
    assert ahead_waiting.wait(5)
    stop.set()
    pacer.wake()
    ahead.join(5)
    assert not ahead.is_alive() and not ahead_entered.is_set()
    pacer.leave(changed=False)
    assert pacer.enter(_never)


def test_a_tick_going_ahead_with_a_place_free_takes_it_at_once() -> None:
    pacer, _clock = _pacer(2)
    assert pacer.enter(_never)
    assert pacer.enter(_never, ahead=True)
    assert pacer.in_flight == 2


def test_two_places_freed_at_once_go_to_the_tick_ahead_and_the_tick_behind_it() -> None:
    """The tick behind, woken first, finds the one ahead still waiting and waits again: the
    one ahead, once in, must wake it for the place left. Many rounds."""
    for _ in range(ROUNDS):
        pacer, _clock = _pacer(2)
        assert pacer.enter(_never) and pacer.enter(_never)
        behind, behind_waiting, behind_entered = _waiter(pacer)
        assert behind_waiting.wait(5)
        ahead, ahead_waiting, ahead_entered = _waiter(pacer, ahead=True)
        assert ahead_waiting.wait(5)
        pacer.leave(changed=False)
        pacer.leave(changed=False)
        assert ahead_entered.wait(5) and behind_entered.wait(5)
        ahead.join(5)
        behind.join(5)
        assert pacer.in_flight == 2


def test_two_ticks_going_ahead_both_enter_before_the_tick_behind_them() -> None:
    for _ in range(ROUNDS):
        pacer, _clock = _pacer(1)
        assert pacer.enter(_never)
        behind, behind_waiting, behind_entered = _waiter(pacer)
        assert behind_waiting.wait(5)
        aheads = [_waiter(pacer, ahead=True) for _ in range(2)]
        assert all(waiting.wait(5) for _thread, waiting, _entered in aheads)
        assert pacer.ahead_waiting == 2
        for went in range(1, 3):
            pacer.leave(changed=True)
            eventually(partial(_entered_are, aheads, went), timeout=5)
            assert not behind_entered.is_set()
        assert pacer.ahead_waiting == 0
        pacer.leave(changed=True)
        assert behind_entered.wait(5)
        for thread, _waiting, _entered in aheads:
            thread.join(5)
        behind.join(5)


def _keyed(pacer: TickPacer, key: str) -> Waiter:
    """A tick of `key`, an ordinary one, on a thread of its own (as `_waiter`)."""
    waiting, entered = threading.Event(), threading.Event()

    def looks() -> bool:
        waiting.set()
        return False

    def enters() -> None:
        if pacer.enter(looks, key=key):
            entered.set()

    thread = threading.Thread(target=enters, daemon=True)
    thread.start()
    return thread, waiting, entered


def test_a_waiting_tick_moved_ahead_takes_the_next_place_before_ticks_that_waited_longer(
) -> None:
    """A person's change made a rollout due whose own tick already waits behind the
    backlog: moved ahead, it goes next. Many rounds: whichever thread the condition wakes."""
    for _ in range(ROUNDS):
        pacer, _clock = _pacer(1)
        assert pacer.enter(_never)
        behind, behind_waiting, behind_entered = _waiter(pacer)
        assert behind_waiting.wait(5)
        moved, moved_waiting, moved_entered = _keyed(pacer, "due:r1")
        assert moved_waiting.wait(5)
        pacer.move_ahead("due:r1")
        assert pacer.ahead_waiting == 1  # counted at once: a place freed now is its
        pacer.leave(changed=True)
        assert moved_entered.wait(5)
        moved.join(5)
        assert not behind_entered.is_set() and pacer.ahead_waiting == 0
        pacer.leave(changed=True)
        assert behind_entered.wait(5)
        behind.join(5)


def test_a_move_ahead_before_the_tick_asks_is_taken_by_its_next_ask_once() -> None:
    """The rollout's tick was running on a state from before the change: the tick it runs
    once more (the one that serves the change) goes ahead; the one after queues again, and
    moves a replica made before it stopped leading are forgotten."""
    pacer, _clock = _pacer(1)
    assert pacer.enter(_never)
    pacer.move_ahead("due:r2")
    pacer.forget_moves()
    pacer.move_ahead("due:r1")
    others = [_waiter(pacer), _keyed(pacer, "due:r2")]
    assert all(waiting.wait(5) for _t, waiting, _e in others)
    assert pacer.ahead_waiting == 0
    first, first_waiting, first_entered = _keyed(pacer, "due:r1")
    assert first_waiting.wait(5) and pacer.ahead_waiting == 1
    pacer.leave(changed=True)
    assert first_entered.wait(5) and not any(e.is_set() for _t, _w, e in others)
    first.join(5)
    again = _keyed(pacer, "due:r1")
    assert again[1].wait(5) and pacer.ahead_waiting == 0
    waiters = [*others, again]
    for went in range(1, 4):
        pacer.leave(changed=True)
        eventually(partial(_entered_are, waiters, went), timeout=5)
    for thread, _w, _e in waiters:
        thread.join(5)


def test_moves_are_counted_once_and_a_tick_that_got_in_is_no_longer_waiting() -> None:
    """A waiting tick moved ahead twice counts once beside a tick already going ahead; once
    in, a move of its key waits for its next ask rather than counting a tick that waits for
    nothing (which would hold every ordinary tick back)."""
    pacer, _clock = _pacer(1)
    assert pacer.enter(_never)
    ahead = _waiter(pacer, ahead=True)
    moved = _keyed(pacer, "due:r1")
    assert ahead[1].wait(5) and moved[1].wait(5)
    pacer.move_ahead("due:r1")
    pacer.move_ahead("due:r1")
    assert pacer.ahead_waiting == 2
    for went in (1, 2):
        pacer.leave(changed=True)
        eventually(partial(_entered_are, [ahead, moved], went), timeout=5)
    for thread, _w, _e in (ahead, moved):
        thread.join(5)
    assert pacer.ahead_waiting == 0
    pacer.move_ahead("due:r1")  # its tick is in: nothing waits to be counted
    assert pacer.ahead_waiting == 0
    plain = _keyed(pacer, "due:r2")  # waits, then gets in as an ordinary tick
    assert plain[1].wait(5)
    pacer.leave(changed=True)
    assert plain[2].wait(5)
    plain[0].join(5)
    pacer.move_ahead("due:r2")
    assert pacer.ahead_waiting == 0
    pacer.leave(changed=True)
    assert pacer.enter(_never)  # an ordinary tick is not held back by either

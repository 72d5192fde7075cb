"""How hard the scheduler's ticks press the Kubernetes API when it throttles them.

A 429 (the API server's priority and fairness, or its in-flight limit) means the server is
the limit: it answered the same to every tick in flight, and will to every tick sent before
the Retry-After it named has passed. So the scheduler holds back as a whole, not tick by
tick: no tick starts until the hold ends (a tick that falls due meanwhile is moved to its
end, holding no thread, lock or request), and the ticks let in at once (the window) halve at
each hold and grow back by one for each window of ticks that changed something, as a
congestion window does. A burst of 429s from the ticks already in flight makes one hold and
one halving.

Only the scheduler's ticks are paced: a person's command, a rollback among them, goes to the
cluster as it comes, so under a throttle the automatic steps give way to people. They give
way to people on a cluster that is merely busy too: while a person's command is in flight
(its replica announces its start and its end), no more than `MAKE_WAY_WINDOW` ticks are let
in at once, so that the person's reads and write do not queue behind the automatic steps'
backlog. A command whose end is never announced (its replica died) is made way for at most
`MAKE_WAY_SECONDS`. And the tick a person's change just made due (a plan approved, a
rollout resumed) takes the next place that frees, ahead of the ticks of the backlog (a tick
of that rollout already waiting is moved ahead): the person waits for that step."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from rollout.domain.clock import Clock

log = logging.getLogger(__name__)

#: how long a tick waiting for a place in the window sleeps before it looks again whether it
#: should give up (a place freed, or `wake`, ends the wait at once; this is for a lease lost
#: between sweeps)
WAIT_POLL_SECONDS = 0.5
#: ticks let in at once while a person's command is in flight
MAKE_WAY_WINDOW = 2
#: the longest the ticks make way for one person's command (a command ends within its
#: Kubernetes timeouts; one whose end was lost is not waited for longer)
MAKE_WAY_SECONDS = 2.0


class TickPacer:
    """The window of ticks in flight, and the hold the last throttle named. Thread-safe."""

    def __init__(self, clock: Clock, *, ceiling: int,
                 poll_seconds: float = WAIT_POLL_SECONDS,
                 make_way_seconds: float = MAKE_WAY_SECONDS) -> None:
        if ceiling < 1:
            raise ValueError("the window of ticks in flight is at least 1")
        self._clock = clock
        self._poll = poll_seconds
        self._make_way = make_way_seconds
        self.ceiling = ceiling
        self._window = ceiling
        #: ticks that changed something since the window last grew
        self._credit = 0
        self._in_flight = 0
        self._held_until: datetime | None = None
        #: people's commands in flight, each until when it is made way for at most
        self._people: dict[str, datetime] = {}
        #: ticks waiting for a place that go ahead of the others (`enter(ahead=True)`)
        self._ahead_waiting = 0
        #: the keys of ordinary ticks waiting for a place now (one tick at a time per key)
        self._waiting: set[str] = set()
        #: waiting ticks a person's change moved ahead (`move_ahead`), counted in
        #: `_ahead_waiting` already, until each notices
        self._promoted: set[str] = set()
        #: keys moved ahead while no tick of theirs waited: the next to ask goes ahead once
        self._moving: set[str] = set()
        self._cond = threading.Condition()
        #: throttles met since start, for the metrics
        self.throttles = 0

    @property
    def window(self) -> int:
        """How many ticks may be in flight at once now."""
        with self._cond:
            return self._window

    @property
    def in_flight(self) -> int:
        """How many ticks hold a place in the window now."""
        with self._cond:
            return self._in_flight

    @property
    def ahead_waiting(self) -> int:
        """How many ticks a person waits for are waiting for the next free place now."""
        with self._cond:
            return self._ahead_waiting

    @property
    def admitting(self) -> int:
        """How many ticks may be in flight at once now: the window, or fewer while a
        person's command runs."""
        with self._cond:
            return self._limit(self._clock.now())

    @property
    def people(self) -> int:
        """How many people's commands the ticks make way for now."""
        with self._cond:
            return len(self._making_way(self._clock.now()))

    def person_began(self, command: str) -> None:
        """A person's command (`command` names it, as its end will) went to work: let fewer
        ticks in until it ends, or `MAKE_WAY_SECONDS` have passed."""
        with self._cond:
            now = self._clock.now()
            # those whose end was lost are dropped here too: a replica that does not lead
            # hears every command and never asks for a place
            self._making_way(now)
            self._people[command] = now + timedelta(seconds=self._make_way)

    def person_ended(self, command: str) -> None:
        """A person's command is done: the ticks it held back go on (unless another runs)."""
        with self._cond:
            if self._people.pop(command, None) is not None:
                self._cond.notify_all()

    def _making_way(self, now: datetime) -> dict[str, datetime]:
        """The people's commands still made way for (those past their bound are dropped)."""
        for command in [c for c, until in self._people.items() if until <= now]:
            del self._people[command]
        return self._people

    def _limit(self, now: datetime) -> int:
        """Ticks let in at once now: the window, or fewer while a person's command runs."""
        if self._making_way(now):
            return min(self._window, MAKE_WAY_WINDOW)
        return self._window

    def _wait_seconds(self, now: datetime) -> float:
        """How long a waiting tick sleeps before it looks again: the poll, or less when a
        person's command it makes way for reaches its bound sooner."""
        bounds = [(until - now).total_seconds() for until in self._people.values()]
        return max(0.0, min([self._poll, *bounds]))

    def held_until(self) -> datetime | None:
        """The end of the hold the last throttle named, while it lasts; else None."""
        with self._cond:
            return self._hold(self._clock.now())

    def _hold(self, now: datetime) -> datetime | None:
        if self._held_until is not None and now < self._held_until:
            return self._held_until
        return None

    def enter(self, give_up: Callable[[], bool], *, ahead: bool = False,
              key: str = "") -> bool:
        """Take a place in the window, waiting for one while it is full; False (no place
        taken) once `give_up()` is true: the replica stops or no longer leads. A tick that
        goes `ahead` takes a place before any other tick waiting for one; so does one whose
        `key` was moved ahead, before it asked or while it waits (`move_ahead`)."""
        with self._cond:
            ahead = self._ask(key, ahead)
            try:
                while True:
                    ahead = ahead or self._take_promotion(key)
                    if self._in_flight < self._limit(self._clock.now()) and (
                            ahead or not self._ahead_waiting):
                        break
                    if give_up():
                        return False
                    self._cond.wait(self._wait_seconds(self._clock.now()))
                if give_up():
                    return False
                self._in_flight += 1
                return True
            finally:
                self._done_asking(key, ahead)

    def _ask(self, key: str, ahead: bool) -> bool:
        """Under the lock: a tick asks for a place; whether it goes ahead (a move made
        before it asked counts once)."""
        if key in self._moving:
            self._moving.discard(key)
            ahead = True
        if ahead:
            self._ahead_waiting += 1
        elif key:
            self._waiting.add(key)
        return ahead

    def _take_promotion(self, key: str) -> bool:
        """Under the lock: whether the waiting tick of `key` was moved ahead (it is
        counted ahead already), taking the move."""
        if key in self._promoted:
            self._promoted.discard(key)
            return True
        return False

    def _done_asking(self, key: str, ahead: bool) -> None:
        """Under the lock: a tick got its place or gave up; one counted ahead (moved ahead
        as it gave up, too) is no longer, and those it kept waiting look again."""
        self._waiting.discard(key)
        if self._take_promotion(key) or ahead:
            self._ahead_waiting -= 1
            self._cond.notify_all()

    def move_ahead(self, key: str) -> None:
        """A person's change made the tick of `key` due: the one waiting for a place now, or
        else the next to ask, goes ahead of the others (once). The tick the scheduler fired
        for the change may find the rollout's own tick already waiting behind the backlog,
        and only asks it to go once more: the person's step would have waited there. A
        waiting tick counts as going ahead from this moment, so that a place freed before it
        wakes is not taken by a tick behind it."""
        with self._cond:
            if key in self._waiting:
                self._waiting.discard(key)
                self._promoted.add(key)
                self._ahead_waiting += 1
                self._cond.notify_all()
            elif key not in self._promoted:
                self._moving.add(key)

    def forget_move(self, key: str) -> None:
        """Drop the move ahead of `key` not asked for yet: the run it was kept for (the
        running tick's once more) will not come, as that tick failed or was held."""
        with self._cond:
            self._moving.discard(key)

    def forget_moves(self) -> None:
        """Drop every move ahead not asked for yet (the replica stopped leading)."""
        with self._cond:
            self._moving.clear()

    def leave(self, *, changed: bool) -> None:
        """A tick that got past the cluster's throttle is done; one that changed something
        is evidence the cluster takes the window, which grows by one for each window of
        them."""
        with self._cond:
            self._in_flight -= 1
            grew = 0
            if changed and self._window < self.ceiling:
                self._credit += 1
                if self._credit >= self._window:
                    self._window, self._credit, grew = self._window + 1, 0, 1
                    if self._window == self.ceiling:
                        log.info("the Kubernetes API takes the scheduler's ticks again: up "
                                 "to %d at once", self.ceiling)
            self._freed(1 + grew)

    def throttled(self, retry_after: float) -> datetime:
        """A tick was refused with a 429 naming `retry_after` seconds: leave the window,
        hold every tick until then (a longer hold already named stands), halve the window
        unless this throttle belongs to a hold already under way. Returns the hold's end."""
        with self._cond:
            self._in_flight -= 1
            self.throttles += 1
            now = self._clock.now()
            current = self._hold(now)
            if current is None:
                self._window, self._credit = max(1, self._window // 2), 0
            until = now + timedelta(seconds=max(0.0, retry_after))
            if current is not None and current > until:
                until = current
            self._held_until = until
            if current is None:
                log.warning("the Kubernetes API is throttling the scheduler's ticks: none "
                            "until %s, then up to %d at once", until.isoformat(),
                            self._window)
            self._freed(1)
            return until

    def _freed(self, places: int) -> None:
        """Under the lock: `places` freed. A tick going ahead waits for them, so while one
        does every waiting tick looks (a notified one kept waiting would hold back the one
        that may go)."""
        if self._ahead_waiting:
            self._cond.notify_all()
        else:
            self._cond.notify(places)

    def wake(self) -> None:
        """Every tick waiting for a place looks again whether it should give up (a stop)."""
        with self._cond:
            self._cond.notify_all()

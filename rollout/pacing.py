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
cluster as it comes, so under a throttle the automatic steps give way to people."""

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


class TickPacer:
    """The window of ticks in flight, and the hold the last throttle named. Thread-safe."""

    def __init__(self, clock: Clock, *, ceiling: int,
                 poll_seconds: float = WAIT_POLL_SECONDS) -> None:
        if ceiling < 1:
            raise ValueError("the window of ticks in flight is at least 1")
        self._clock = clock
        self._poll = poll_seconds
        self.ceiling = ceiling
        self._window = ceiling
        #: ticks that changed something since the window last grew
        self._credit = 0
        self._in_flight = 0
        self._held_until: datetime | None = None
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

    def held_until(self) -> datetime | None:
        """The end of the hold the last throttle named, while it lasts; else None."""
        with self._cond:
            return self._hold(self._clock.now())

    def _hold(self, now: datetime) -> datetime | None:
        if self._held_until is not None and now < self._held_until:
            return self._held_until
        return None

    def enter(self, give_up: Callable[[], bool]) -> bool:
        """Take a place in the window, waiting for one while it is full; False (no place
        taken) once `give_up()` is true: the replica stops or no longer leads."""
        with self._cond:
            while self._in_flight >= self._window:
                if give_up():
                    return False
                self._cond.wait(self._poll)
            if give_up():
                return False
            self._in_flight += 1
            return True

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
            self._cond.notify(1 + grew)

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
            self._cond.notify()
            return until

    def wake(self) -> None:
        """Every tick waiting for a place looks again whether it should give up (a stop)."""
        with self._cond:
            self._cond.notify_all()

"""One thread renews the target locks of every command in flight in a process.

A write and its fence-off may take several Kubernetes timeouts, longer than a lock's TTL,
and a lock that lapsed under a write in flight would leave the answer and the store behind
what landed; so a command's lock is renewed while it works. A thread of its own for each
command cost a thread's start and end on every tick (about 0.1 ms of CPU, a few percent of
a step under load); one keeper renews them all, in the order they fall due, and ends when
nothing has been held for a whole period (the next hold starts it again). Renewals run one
after another: a Redis that stalls one stalls the rest, as it would stall each on a thread
of its own."""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger(__name__)


class Renewable(Protocol):
    def renew(self) -> bool:
        """Renew once; False when there is nothing left to renew (released, or lost)."""


class LockKeeper:
    """Renews each kept lock every `every` seconds, for at most `limit` seconds."""

    def __init__(self, every: float, *, limit: float = 120.0,
                 clock: Callable[[], float] = time.monotonic, background: bool = True) -> None:
        """`background=False`: no thread; the caller renews with `renew_due` (tests)."""
        if every <= 0:
            raise ValueError("a lock keeper renews at a positive period")
        self.every = every
        self.limit = limit
        self._clock = clock
        self._cond = threading.Condition()
        #: (next renewal, key): a key whose hold was let go stays only as these two numbers
        self._due: list[tuple[float, int]] = []
        #: key -> (the hold, the last moment it may be renewed)
        self._held: dict[int, tuple[Renewable, float]] = {}
        self._keys = itertools.count()
        self._thread: threading.Thread | None = None
        self._background = background

    def keep(self, hold: Renewable) -> int:
        """Renew `hold` from one period on; returns the key that lets it go."""
        now = self._clock()
        with self._cond:
            key = next(self._keys)
            self._held[key] = (hold, now + self.limit)
            idle = not self._due
            heapq.heappush(self._due, (now + self.every, key))
            if self._background and self._thread is None:
                self._thread = threading.Thread(target=self._run, name="lock keeper",
                                                daemon=True)
                self._thread.start()
            elif idle:  # a keeper waiting out its idle period waits for this one instead
                self._cond.notify()
        return key

    def let_go(self, key: int) -> None:
        """Stop renewing; the hold is no longer referenced from here. The keys of holds let
        go are dropped from the schedule once they outnumber the rest."""
        with self._cond:
            self._held.pop(key, None)
            if len(self._due) > 2 * len(self._held) + 64:
                self._due = [(at, k) for at, k in self._due if k in self._held]
                heapq.heapify(self._due)

    def held(self) -> int:
        with self._cond:
            return len(self._held)

    def renew_due(self, now: float) -> None:
        """Renew every hold due by `now`; a hold renewed is due again one period later,
        while its limit allows."""
        due: list[tuple[int, Renewable, float]] = []
        with self._cond:
            while self._due and self._due[0][0] <= now:
                _, key = heapq.heappop(self._due)
                kept = self._held.get(key)
                if kept is not None:
                    due.append((key, *kept))
        for key, hold, until in due:  # outside the lock: each renewal is a round trip
            renewed = _renewed(hold)
            with self._cond:
                if renewed and now + self.every <= until and key in self._held:
                    heapq.heappush(self._due, (now + self.every, key))
                else:
                    self._held.pop(key, None)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._due or self._due[0][0] > self._clock():
                    if not self._due:
                        if not self._cond.wait(self.every) and not self._due:
                            self._thread = None  # idle for a period: the next keep starts one
                            return
                        continue
                    self._cond.wait(self._due[0][0] - self._clock())
            self.renew_due(self._clock())


def _renewed(hold: Renewable) -> bool:
    """One renewal; an error it did not expect (a Redis that turned read-only answers a
    write with an error reply) counts as not renewed. Raised, it ended the keeper's thread,
    which no later hold started again: no lock in the process was renewed after it."""
    try:
        return hold.renew()
    except Exception:  # the keeper outlives any one hold's failure
        log.exception("renewing a lock failed; it is no longer renewed")
        return False

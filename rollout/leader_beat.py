"""The leader's jobs kept to a beat of the monotonic clock.

APScheduler's interval jobs fall due by the wall clock: a clock stepped back (NTP correcting
an hour) held the sweep, and with it the lease's renewal, the drift watch and the canary
analysis, for as long as the step. With one replica nothing led meanwhile, so a failing
canary was not rolled back. The beat notes when each of those jobs begins and ends, and has
any that is not running and has neither begun nor ended for `LATE_PERIODS` periods of the
monotonic clock run at once; once run, its interval counts again from the clock as it now
reads. A pass longer than that (a drift watch over many targets) is not late: its interval's
next run comes within a period of its end.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)

#: how many periods a job may go without beginning or ending before the beat runs it: its
#: interval's next run comes within one; two is a clock that moved
LATE_PERIODS = 2


class LeaderBeat:
    """Runs late jobs by the monotonic clock; `run_now(job)` makes a job fire at once."""

    def __init__(self, period: float, run_now: Callable[[str], None], *,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.period = period
        self._run_now = run_now
        self._monotonic = monotonic
        self._lock = threading.Lock()
        #: when each job last began or ended, by the monotonic clock, and how many runs of it
        #: are on
        self._active_at: dict[str, float] = {}
        self._running: dict[str, int] = {}
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def follow(self, *jobs: str) -> None:
        """Count `jobs` as begun now: none is late before its first interval."""
        now = self._monotonic()
        with self._lock:
            for job in jobs:
                self._active_at[job] = now

    @contextmanager
    def running(self, job: str) -> Iterator[None]:
        """A run of `job`: not late while it runs, nor for two periods after it ends."""
        with self._lock:
            self._active_at[job] = self._monotonic()
            self._running[job] = self._running.get(job, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                self._running[job] -= 1
                self._active_at[job] = self._monotonic()

    def late(self) -> list[str]:
        """The jobs followed that are not running and neither began nor ended in the last
        `LATE_PERIODS` periods."""
        now = self._monotonic()
        with self._lock:
            return [job for job, at in self._active_at.items()
                    if not self._running.get(job) and now - at > LATE_PERIODS * self.period]

    def beat(self) -> None:
        """Run each late job now (and count it begun: a job APScheduler cannot run yet is
        asked again two periods later, not at every beat)."""
        for job in self.late():
            log.warning("the %s job has not run for over %s s by the monotonic clock (the "
                        "wall clock went back?): running it now", job,
                        f"{LATE_PERIODS * self.period:g}")
            self.follow(job)
            self._run_now(job)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="leader-beat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()

    def _loop(self) -> None:
        # Event.wait times out by the monotonic clock (Python 3.11 and glibc 2.30 or later)
        while not self._stopping.wait(self.period):
            try:
                self.beat()
            except Exception:  # the beat must outlive one failed nudge
                log.exception("the leader's beat failed to run a late job")

"""What the bot depends on, and whether it answers: reported, never a reason to stop serving.

Readiness means "this process can take Slack requests and answer them". A Redis or
Kubernetes outage does not change that: the bot still answers every request ("Redis is
unavailable … try again"), so failing readiness would only empty the Service of every
replica at once. The outage shows in `/readyz`'s body and in the `rollout_bot_dependency_up`
gauge instead.

The checks run in the background, at most every `max_age` seconds, and `/readyz` answers
from the last results at once: a dependency that hangs (a connect timeout) must not make the
probe itself time out, which would fail readiness after all.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

Check = Callable[[], str | None]  # None when fine, else what is wrong
Spawn = Callable[[Callable[[], None]], None]


def _thread(work: Callable[[], None]) -> None:
    threading.Thread(target=work, name="dependency-checks", daemon=True).start()


class Dependencies(Collector):
    """The named checks, refreshed in the background; also a Prometheus collector."""

    def __init__(self, checks: dict[str, Check], *, max_age: float = 2.0,
                 first_wait: float = 1.0, clock: Callable[[], float] = time.monotonic,
                 spawn: Spawn = _thread) -> None:
        self._checks = checks
        self._max_age = max_age
        self._first_wait = first_wait
        self._clock = clock
        self._spawn = spawn
        self._lock = threading.Lock()
        self._first = threading.Event()
        self._checked_at: float | None = None
        self._results: dict[str, str | None] = dict.fromkeys(checks, "not checked yet")
        self._running = False
        self._idle = threading.Event()
        self._idle.set()
        self._closed = False

    def close(self, timeout: float = 5.0) -> None:
        """No new checks; wait for one in flight, so the clients it uses can be closed."""
        with self._lock:
            self._closed = True
        self._idle.wait(timeout)

    def status(self) -> dict[str, str | None]:
        """Each dependency's problem, or None when it answered its last check."""
        with self._lock:
            stale = self._checked_at is None or \
                self._clock() - self._checked_at >= self._max_age
            start = stale and not self._running and not self._closed
            if start:
                self._running = True
                self._idle.clear()
        if start:
            self._spawn(self._refresh)
        self._first.wait(self._first_wait)  # only the very first call waits, briefly
        with self._lock:
            return dict(self._results)

    def _refresh(self) -> None:
        try:
            results = {name: _run(check) for name, check in self._checks.items()}
            with self._lock:
                self._results, self._checked_at = results, self._clock()
        finally:
            with self._lock:
                self._running = False
            self._idle.set()
            self._first.set()

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily("rollout_bot_dependency_up",
                                  "1 when the dependency answered its last check",
                                  labels=["dependency"])
        for name, problem in sorted(self.status().items()):
            gauge.add_metric([name], 0 if problem else 1)
        yield gauge


def _run(check: Check) -> str | None:
    try:
        return check()
    except Exception as exc:  # a check that raises reports the dependency as down
        return str(exc) or type(exc).__name__

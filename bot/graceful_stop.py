"""The graceful stop of `serve` and `scheduler`: its waits share one deadline.

Each part of the stop (the scheduler's tick in flight, the HTTP server's requests, the Slack
work already acked, the card updates, the namespace cache's watches) once waited with a
timeout of its own, so together they could outlast the pod's grace period, and Kubernetes
killed the process mid-stop. Now every wait is given what is left of one deadline
(`ROLLOUT_STOP_TIMEOUT`), and a stop still running when it passes ends the process.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from bot.stop_signal import WAKE_SECONDS, Exit, exit_now

log = logging.getLogger(__name__)

#: the exit code of a graceful stop that its deadline cut short (one that ends in time
#: exits 0; a second signal, 128 + its number)
EXIT_STOP_CUT_SHORT = 1


class Deadline:
    """A point in time `seconds` from now, by `clock` (seconds, monotonic)."""

    def __init__(self, seconds: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._end = clock() + seconds

    @classmethod
    def of(cls, timeout: float | Deadline) -> Deadline:
        """A deadline passed on as it is; seconds as a deadline of their own from now."""
        return timeout if isinstance(timeout, Deadline) else cls(timeout)

    def remaining(self) -> float:
        """Seconds left, never below 0: what the next wait may take."""
        return max(0.0, self._end - self._clock())

    @property
    def passed(self) -> bool:
        return self.remaining() <= 0


#: a part of the stop: its name (for the log) and the stop itself, given the deadline
Step = tuple[str, Callable[[Deadline], object]]


def stop_gracefully(steps: Sequence[Step], deadline: Deadline, *, exit: Exit = exit_now,
                    wake: float = WAKE_SECONDS) -> None:
    """Run the steps on a thread of their own while this (the main) thread waits in short
    wakes, so that a second signal's handler runs at once whichever thread the kernel handed
    it to. A step that fails is logged and the next one still runs.

    Once the deadline passes, with a step still running (the scheduler's tick in flight has
    no timeout of its own) or a wait that ran out (work left running would hold the
    interpreter's exit), one log line names that step and the process ends
    (`EXIT_STOP_CUT_SHORT`) rather than outlast the grace period."""
    finished = threading.Event()
    running = [steps[0][0] if steps else ""]
    overran: list[str] = []

    def run() -> None:
        for name, step in steps:
            running[0] = name
            try:
                step(deadline)
            except Exception:
                log.exception("stopping %s failed", name, extra={"event": "stop_failed",
                                                                 "step": name})
            if deadline.passed and not overran:
                overran.append(name)
        finished.set()

    threading.Thread(target=run, name="rollout-bot-stop", daemon=True).start()
    while not finished.wait(min(wake, deadline.remaining())) and not deadline.passed:
        pass
    if finished.is_set() and not overran:
        return
    step = overran[0] if finished.is_set() else running[0]
    log.error("the graceful stop did not end within its %gs (at: %s): exiting now",
              deadline.seconds, step,
              extra={"event": "stop_deadline_passed", "step": step,
                     "deadline_seconds": deadline.seconds, "exit_code": EXIT_STOP_CUT_SHORT})
    exit(EXIT_STOP_CUT_SHORT)

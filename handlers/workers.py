"""The bot's own bounded pool for the work after a Slack ack.

Bolt runs each listener with `process_before_response`, so the ack is the listener's return
and goes out from the HTTP request thread; the command itself is handed here. The pool takes
at most `workers + backlog` pieces of work at once: past that, `submit` says no at once and
the listener answers that the bot is busy, rather than queueing work Slack's user is not
told about.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger(__name__)

DEFAULT_WORKERS = 8
DEFAULT_BACKLOG = 32
BUSY = (":hourglass: The bot is busy with other requests right now; nothing was done. "
        "Try again in a moment.")


def side_workers() -> Workers:
    """A small pool for what a listener owes beside its ack (a busy answer, an audit): two
    threads, and room for 64 more waiting."""
    return Workers(workers=2, backlog=64)


def rollback_workers() -> Workers:
    """The rollbacks' own pool: a Roll back (the dialog's opening, whose trigger lasts 3 s,
    its submission, the command) never waits behind other commands on a slow cluster. Two
    threads, and room for 16 more waiting."""
    return Workers(workers=2, backlog=16)


class Workers:
    """A thread pool that refuses work beyond its bound instead of queueing without end."""

    def __init__(self, *, workers: int = DEFAULT_WORKERS,
                 backlog: int = DEFAULT_BACKLOG) -> None:
        if workers < 1 or backlog < 0:
            raise ValueError("workers must be at least 1 and backlog at least 0")
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="slack-work")
        self._slots = threading.BoundedSemaphore(workers + backlog)
        self._taken = 0
        self._count = threading.Condition()

    @property
    def busy(self) -> int:
        """Pieces of work taken and not yet done (running or waiting for a worker)."""
        return self._taken

    def submit(self, work: Callable[[], None]) -> bool:
        """Run `work` on the pool; False, at once, when the pool is full or shut down."""
        if not self._slots.acquire(blocking=False):
            return False
        self._add(1)

        def run() -> None:
            try:
                work()
            except Exception:
                log.exception("work after a Slack ack failed")
            finally:
                self._done()

        try:
            future = self._pool.submit(run)
        except RuntimeError:  # shut down
            self._done()
            return False
        # dropped by a drain before it began: `run` never runs, so its slot is freed here
        future.add_done_callback(lambda f: self._done() if f.cancelled() else None)
        return True

    def _add(self, n: int) -> None:
        with self._count:
            self._taken += n
            if not self._taken:
                self._count.notify_all()

    def _done(self) -> None:
        self._add(-1)
        self._slots.release()

    def drain(self, timeout: float) -> int:
        """Refuse new work and give the work already taken (acked in Slack, so its user is
        waiting for the answer) up to ``timeout`` seconds to end; then drop what has not
        begun. Returns how many pieces were still running or waiting at the deadline."""
        self._pool.shutdown(wait=False)
        with self._count:
            self._count.wait_for(lambda: not self._taken, timeout=timeout)
            left = self._taken
        if left:
            self._pool.shutdown(wait=False, cancel_futures=True)
            log.warning("%d piece(s) of Slack work had not ended when the bot stopped", left,
                        extra={"event": "stop_work_left", "left": left})
        return left

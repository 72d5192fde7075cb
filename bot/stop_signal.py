"""Waiting in the main thread until SIGINT or SIGTERM asks the process to stop, and ending it
at once on a second signal.

Python runs a signal handler only in the main thread, between bytecodes. When the kernel
hands the signal to another of the process' threads, a main thread blocked in an untimed
wait is never woken to run the handler, and the process sits through SIGTERM until
Kubernetes kills it (a `serve` in the tests did, for minutes). So the wait wakes every
`WAKE_SECONDS` to let a pending handler run.

The first signal asks for a graceful stop; a second, while that stop runs (a person pressing
Ctrl-C again, an operator's second `kill`), ends the process at once: a stop held by a stuck
call otherwise left nothing short of SIGKILL to end it.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable

WAKE_SECONDS = 0.5

log = logging.getLogger(__name__)

Exit = Callable[[int], object]


def exit_now(code: int) -> None:
    """End the process without waiting for any thread, its log lines written first (a
    stream that cannot be flushed, a closed pipe, does not keep it alive)."""
    try:
        for handler in logging.getLogger().handlers:
            handler.flush()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


class SignalStop:
    """The handler of SIGINT and SIGTERM: the first sets `stop`; any after it ends the
    process with 128 + the signal's number, as a shell reports a process a signal ended
    (130 for Ctrl-C), after one log line saying so."""

    def __init__(self, stop: threading.Event, *, exit: Exit = exit_now) -> None:
        self.stop = stop
        self._exit = exit

    def __call__(self, signum: int, _frame: object = None) -> None:
        if not self.stop.is_set():
            self.stop.set()
            return
        code = 128 + signum
        log.warning("a second %s during the graceful stop: exiting now, with %d",
                    signal.Signals(signum).name, code,
                    extra={"event": "forced_exit", "signal": signal.Signals(signum).name,
                           "exit_code": code})
        self._exit(code)


def stop_on_signals(*, exit: Exit = exit_now) -> threading.Event:
    """An event that SIGINT and SIGTERM set, a second signal ending the process (handlers
    can only be installed from the main thread; elsewhere the event is only set by whoever
    holds it)."""
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        handler = SignalStop(stop, exit=exit)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, handler)
    return stop


def wait_until(stop: threading.Event) -> None:
    """Block until `stop` is set, waking often enough for a signal's handler to run."""
    while not stop.wait(WAKE_SECONDS):
        pass

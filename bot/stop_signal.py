"""Waiting in the main thread until SIGINT or SIGTERM asks the process to stop.

Python runs a signal handler only in the main thread, between bytecodes. When the kernel
hands the signal to another of the process' threads, a main thread blocked in an untimed
wait is never woken to run the handler, and the process sits through SIGTERM until
Kubernetes kills it (a `serve` in the tests did, for minutes). So the wait wakes every
`WAKE_SECONDS` to let a pending handler run.
"""

from __future__ import annotations

import signal
import threading

WAKE_SECONDS = 0.5


def stop_on_signals() -> threading.Event:
    """An event that SIGINT and SIGTERM set (handlers can only be installed from the main
    thread; elsewhere the event is only set by whoever holds it)."""
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
    return stop


def wait_until(stop: threading.Event) -> None:
    """Block until `stop` is set, waking often enough for a signal's handler to run."""
    while not stop.wait(WAKE_SECONDS):
        pass

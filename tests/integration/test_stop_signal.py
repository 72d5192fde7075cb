"""SIGTERM stops the foreground commands even when the kernel hands it to a thread other than
the main one (here forced with pthread_kill): the main thread's wait must wake to run the
handler. A second signal, or the stop's deadline, ends a graceful stop that is held. Real
processes, real signals."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

STOPPED_FROM_ANOTHER_THREAD = """
import signal, threading
from bot.stop_signal import stop_on_signals, wait_until

stop = stop_on_signals()
threading.Timer(0.2, lambda: signal.pthread_kill(threading.get_ident(), signal.SIGTERM)).start()
wait_until(stop)
print("stopped", flush=True)
"""


def test_a_sigterm_taken_by_another_thread_still_ends_the_wait() -> None:
    done = subprocess.run([sys.executable, "-c", STOPPED_FROM_ANOTHER_THREAD], cwd=ROOT,
                          capture_output=True, text=True, timeout=10, check=False)
    assert (done.returncode, done.stdout.strip()) == (0, "stopped"), done.stderr


HELD_STOP = """
import sys, threading
from bot import logs
from bot.graceful_stop import Deadline, stop_gracefully
from bot.stop_signal import stop_on_signals, wait_until

logs.configure("INFO")
stop = stop_on_signals()
print("waiting", flush=True)
wait_until(stop)
print("stopping", flush=True)
stop_gracefully([("held", lambda _: threading.Event().wait())], Deadline(float(sys.argv[1])))
print("stopped", flush=True)
"""


def _held(deadline: float) -> subprocess.Popen[str]:
    process = subprocess.Popen([sys.executable, "-c", HELD_STOP, str(deadline)], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "waiting"
    return process


def _events(stderr: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def test_a_second_sigterm_ends_a_stop_that_is_held() -> None:
    """The graceful stop waits on something that never ends (its deadline an hour away): the
    second SIGTERM ends the process at once, 128 + 15, with one JSON line saying so."""
    process = _held(3600)
    try:
        assert process.stdout is not None
        process.send_signal(signal.SIGTERM)
        assert process.stdout.readline().strip() == "stopping"
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
        assert time.monotonic() - started < 3
    finally:
        process.kill()
    assert process.returncode == 128 + signal.SIGTERM and "stopped" not in out, err
    (forced,) = [e for e in _events(err) if e.get("event") == "forced_exit"]
    assert forced["signal"] == "SIGTERM" and forced["exit_code"] == 143


def test_a_stop_held_past_its_deadline_ends_the_process() -> None:
    process = _held(0.5)
    try:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=10)
    finally:
        process.kill()
    assert process.returncode == 1 and "stopped" not in out, err
    (passed,) = [e for e in _events(err) if e.get("event") == "stop_deadline_passed"]
    assert passed["step"] == "held" and passed["deadline_seconds"] == 0.5

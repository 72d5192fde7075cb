"""SIGTERM stops the foreground commands even when the kernel hands it to a thread other than
the main one (here forced with pthread_kill): the main thread's wait must wake to run the
handler. A real process, a real signal."""

from __future__ import annotations

import subprocess
import sys
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

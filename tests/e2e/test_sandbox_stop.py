"""`rollout-bot sandbox` as a process, stopped as a person stops it: one SIGTERM stops it
cleanly; a second, while a stuck Redis holds that stop, ends it at once (128 + 15); a stop
that outlasts ROLLOUT_STOP_TIMEOUT ends it with 1. Either way its Redis and Prometheus,
processes of their own, end with it: a forced exit used to leave them running, and the stop
had no deadline."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest

from sandbox.ports import free_port
from tests.support.polling import eventually

ROOT = Path(__file__).resolve().parents[2]
#: the banner's lines naming a server that runs as a process of its own
PROCESS_LINE = re.compile(r"^\s+(redis|prometheus)\s+\S+://127\.0\.0\.1:(\d+)")


class RunningSandbox:
    def __init__(self, tmp_path: Path, **env: str) -> None:
        self.log = tmp_path / "sandbox.log"
        with self.log.open("w") as sink:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bot", "sandbox", "--no-browser",
                 "--port", str(free_port())],
                cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT), **env},
                stdout=subprocess.PIPE, stderr=sink, text=True,
                start_new_session=True)  # a group of its own, as in a terminal
        self.ports: dict[str, int] = {}
        self._read_until(self._banner_line)

    def _banner_line(self, line: str) -> bool:
        """Note the ports of its Redis and Prometheus; whether the banner ended."""
        if match := PROCESS_LINE.match(line):
            self.ports[match[1]] = int(match[2])
        return line.startswith("Drive it without Slack")

    def _read_until(self, last: Callable[[str], bool]) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if last(line):
                return
        raise AssertionError(f"its output ended early; its log:\n{self._tail()}")

    def _tail(self) -> str:
        return self.log.read_text()[-3000:]

    def freeze_redis(self) -> None:
        """Stop its redis-server (SIGSTOP), as a stalled host would: every call to it waits."""
        os.kill(self._child("redis-server"), signal.SIGSTOP)

    def _child(self, name: str) -> int:
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
                command = (stat.parent / "cmdline").read_bytes()
            except OSError:
                continue
            if int(fields[1]) == self.proc.pid and name.encode() in command:
                return int(stat.parent.name)
        raise AssertionError(f"no {name} among the sandbox's children")

    def sigterm(self) -> None:
        self.proc.send_signal(signal.SIGTERM)

    def ctrl_c(self) -> None:
        """As a terminal's Ctrl-C: SIGINT to every process of its foreground group."""
        os.killpg(self.proc.pid, signal.SIGINT)

    def stopping(self) -> None:
        """Wait until it says it is stopping: the first signal was taken."""
        self._read_until(lambda line: line.startswith("Stopping the sandbox"))

    def exit_code(self) -> int:
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"did not stop; its log:\n{self._tail()}") from None

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., RunningSandbox]]:
    boxes: list[RunningSandbox] = []

    def started(**env: str) -> RunningSandbox:
        boxes.append(RunningSandbox(tmp_path, **env))
        return boxes[-1]

    yield started
    for box in boxes:
        box.close()


def _closed(port: int) -> bool | None:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return None
    except OSError:
        return True


def _all_gone(ports: dict[str, int]) -> None:
    assert "redis" in ports
    for name, port in ports.items():
        eventually(partial(_closed, port), timeout=10,
                   message=f"the sandbox's {name} still listens on {port}")


def test_one_sigterm_stops_the_sandbox_and_its_processes(
        start: Callable[..., RunningSandbox]) -> None:
    box = start()
    began = time.monotonic()
    box.sigterm()
    assert box.exit_code() == 0
    assert time.monotonic() - began < 30
    _all_gone(box.ports)


def test_ctrl_c_in_a_terminal_stops_the_sandbox_before_its_redis(
        start: Callable[..., RunningSandbox]) -> None:
    """The terminal signals the whole group: Redis and Prometheus, in the same group, exited
    at once, and the sandbox's graceful stop found no Redis to give the lease back to."""
    box = start()
    box.ctrl_c()
    assert box.exit_code() == 0
    _all_gone(box.ports)
    assert "could not release the leader lease" not in box.log.read_text()


def test_a_second_sigterm_while_redis_holds_the_stop_ends_it_at_once(
        start: Callable[..., RunningSandbox]) -> None:
    box = start()
    box.freeze_redis()
    box.sigterm()
    box.stopping()
    box.sigterm()
    assert box.exit_code() == 128 + signal.SIGTERM
    _all_gone(box.ports)


def test_a_stop_that_outlasts_its_deadline_ends_the_sandbox_and_its_processes(
        start: Callable[..., RunningSandbox]) -> None:
    box = start(ROLLOUT_STOP_TIMEOUT="1")
    box.freeze_redis()
    began = time.monotonic()
    box.sigterm()
    assert box.exit_code() == 1
    assert time.monotonic() - began < 10  # the frozen Redis alone holds it for 5 s a call
    _all_gone(box.ports)
    assert "the graceful stop did not end within its 1s" in box.log.read_text()

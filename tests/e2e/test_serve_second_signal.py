"""`rollout-bot serve` as a process: SIGTERM while a command acked in Slack waits on a
stalled Kubernetes API starts a graceful stop that waits for that work. A second SIGTERM
ends the process at once, 128 + 15, with one JSON line saying so; and the whole stop ends
within ROLLOUT_STOP_TIMEOUT."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from sandbox.kube import Fault
from sandbox.ports import free_port
from sandbox.redis_server import RedisServer
from sandbox.slack import SlackEmulator
from tests.e2e.conftest import CANARY, CHANNEL, SECRET, TOKEN
from tests.support.polling import eventually, healthz_up
from tests.support.real_cluster import RealCluster


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()
            if line.startswith("{")]


class HeldServe:
    """`rollout-bot serve` with a start acked in Slack and waiting on a stalled API."""

    def __init__(self, kube: RealCluster, redis_server: RedisServer, slack: SlackEmulator,
                 tmp_path: Path, **settings: str) -> None:
        port, self.log_file = free_port(), tmp_path / "serve.log"
        env = {**os.environ, "SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": SECRET,
               "SLACK_API_URL": slack.api_url, "REDIS_URL": redis_server.url,
               "KUBECONFIG": str(kube.write_kubeconfig(tmp_path / "kubeconfig")),
               "ROLLOUT_APPROVERS": "U0BOB", "ROLLOUT_KUBE_TIMEOUT": "30",
               "ROLLOUT_KEY_PREFIX": f"held-stop-{time.monotonic_ns()}", **settings}
        with self.log_file.open("w") as sink:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bot", "serve", "--port", str(port)],
                env=env, stdout=sink, stderr=sink)
        self.kube = kube
        eventually(lambda: healthz_up(port), timeout=30, message="serve answering /healthz")
        for verb in ("get", "list"):
            kube.inject(Fault(verb=verb, resource="httproutes", status=None, count=1,
                              stall_seconds=20))
        slack.events_url = f"http://127.0.0.1:{port}/slack/events"
        assert slack.send_slash_command("U0ALICE", CHANNEL, f"{CANARY} start")[0] == 200
        eventually(lambda: kube.proxy.book.armed() < 2, timeout=10,
                   message="the acked start waiting on the stalled API")

    def lines(self) -> list[dict[str, Any]]:
        return _lines(self.log_file)

    def sigterm(self) -> None:
        self.proc.send_signal(signal.SIGTERM)

    def close(self) -> None:
        self.kube.clear_faults()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def test_a_second_sigterm_ends_a_stop_held_by_acked_work(
        kube: RealCluster, redis_server: RedisServer, slack: SlackEmulator,
        tmp_path: Path) -> None:
    serve = HeldServe(kube, redis_server, slack, tmp_path)
    try:
        serve.sigterm()
        eventually(lambda: any(x.get("event") == "shutdown" for x in serve.lines()),
                   message="the graceful stop begun")
        time.sleep(0.5)  # into the stop's wait for the acked work
        assert serve.proc.poll() is None, "the stop did not wait for the acked work"
        sent = time.monotonic()
        serve.sigterm()
        serve.proc.wait(timeout=10)
        took = time.monotonic() - sent
    finally:
        serve.close()
    assert serve.proc.returncode == 128 + signal.SIGTERM
    # the acked work holds the stop for 20 s: well under it, with room for a loaded machine
    assert took < 10, f"the second SIGTERM took {took:.1f}s"
    (forced,) = [x for x in serve.lines() if x.get("event") == "forced_exit"]
    assert forced["signal"] == "SIGTERM" and forced["exit_code"] == 143


def test_the_whole_stop_ends_within_rollout_stop_timeout(
        kube: RealCluster, redis_server: RedisServer, slack: SlackEmulator,
        tmp_path: Path) -> None:
    """The acked work would hold the stop for 20 s: ROLLOUT_STOP_TIMEOUT=2 ends the whole
    stop, every wait of it, at 2 s (each wait once had 5 s of its own), exit code 1."""
    serve = HeldServe(kube, redis_server, slack, tmp_path, ROLLOUT_STOP_TIMEOUT="2")
    try:
        sent = time.monotonic()
        serve.sigterm()
        serve.proc.wait(timeout=30)
        took = time.monotonic() - sent
    finally:
        serve.close()
    assert serve.proc.returncode == 1
    assert 2 <= took < 10, f"the stop took {took:.1f}s"  # not the acked work's 20 s
    (passed,) = [x for x in serve.lines() if x.get("event") == "stop_deadline_passed"]
    assert passed["step"] == "server" and passed["deadline_seconds"] == 2

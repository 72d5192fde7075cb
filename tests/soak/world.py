"""The processes of a soak: `rollout-bot serve` replicas and a `rollout-bot scheduler` on one
Redis (AOF on), the real API server behind the logging proxy, and the Slack emulator; each can
be SIGKILLed and started again, and the CLI runs as a person runs it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from sandbox.kube.seed import pool_objects, route_object
from sandbox.ports import free_port
from tests.support.polling import healthz_up
from tests.support.real_cluster import KubeWorld, RealCluster

SECRET = "soak-signing-secret"
TOKEN = "xoxb-soak"
CHANNEL = "C0ROLLOUT"
NAMESPACE = "default"


@dataclass(frozen=True)
class Target:
    """One route of the soak, splitting two pools of its own; rollouts swap them in turn."""

    index: int
    route: str
    pools: tuple[str, str]
    slack: bool  # driven through Slack (its answers arrive later) or through the CLI

    @property
    def name(self) -> str:
        return f"route {self.route}"


def seed_targets(world: KubeWorld, cluster: RealCluster, count: int, *,
                 slack_every: int) -> list[Target]:
    """`count` routes, each with a pool at 100 and one at 0 (every `slack_every`th via Slack)."""
    targets = []
    for i in range(count):
        a, b = f"soak-{i}-a", f"soak-{i}-b"
        for obj in pool_objects(a, 100 + 2 * i) + pool_objects(b, 101 + 2 * i):
            world.put(obj)
        cluster.put_object(route_object(f"soak-route-{i}", [(a, 100), (b, 0)]))
        targets.append(Target(i, f"soak-route-{i}", (a, b), slack=(i % slack_every == 1)))
    return targets


def bot_env(kubeconfig: Path, redis_url: str, prefix: str, slack_api_url: str) -> dict[str, str]:
    """What every replica, the scheduler and the CLI share: short leases so kills heal fast."""
    return {
        **os.environ,
        "SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": SECRET, "SLACK_API_URL": slack_api_url,
        "REDIS_URL": redis_url, "KUBECONFIG": str(kubeconfig),
        "ROLLOUT_APPROVER_GROUPS": "S0REVIEWERS", "ROLLOUT_NOTIFY_CHANNEL": CHANNEL,
        "ROLLOUT_KEY_PREFIX": prefix, "ROLLOUT_LEADER_TTL": "2s", "ROLLOUT_TICK": "1s",
        "ROLLOUT_LOCK_TTL": "6s", "ROLLOUT_KUBE_TIMEOUT": "2", "ROLLOUT_REMINDER": "",
    }


class Process:
    """A bot process that can be killed (SIGKILL) and started again with the same command."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.argv, self.env, self.log = argv, env, log
        self.proc: subprocess.Popen[bytes] | None = None
        #: when it was killed (time.time()), to tell a request it took and never answered
        self.kills: list[float] = []

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "bot", *self.argv], env=self.env,
                                         stdout=out, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.kills.append(time.time())
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


class Replica(Process):
    """`rollout-bot serve` in HTTP mode on a port of its own."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        super().__init__(["serve", "--port", str(self.port)], env, log)

    @property
    def events_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/slack/events"

    @property
    def listening(self) -> bool:
        """Whether its port takes connections now (a replica just started is alive well before
        it listens; a load balancer sends Slack's requests only to ready pods)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def wait_healthy(self, timeout: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive:
                return False
            if healthz_up(self.port):
                return True
            time.sleep(0.2)
        return False


@dataclass(frozen=True)
class Answer:
    """One CLI command as the soak ran it: what it asked, when, and what it was told."""

    verb: str
    canary: str
    rollout_id: str | None  # the rollout the command was aimed at, as the route's marker named it
    step: int | None  # approve: the step index (0-based) the command named
    started: float
    ended: float
    code: int
    output: str


@dataclass(frozen=True)
class SlackAsk:
    """One Slack request the soak sent (a slash command or a click): what it asked, and the
    response URL its answer comes to, later than the ack."""

    route: str
    verb: str
    canary: str
    rollout_id: str | None
    step: int | None  # approve: the step index (0-based) the command or button named
    started: float
    url_id: str


@dataclass(frozen=True)
class SlackDelivery:
    """What Slack saw when it delivered a request: the HTTP status (None when nobody
    answered: the replica was down, or did not answer within the delivery timeout) and the
    ack's body (the bot answers there only when it does nothing, e.g. "busy")."""

    status: int | None
    ack: str = ""
    card_changed: bool = False  # a click: its card changed while its answer was awaited
    replica: int | None = None  # which replica it was sent to
    at: float = 0.0  # when (time.time())

    @property
    def awaits_answer(self) -> bool:
        """Acked with an empty body: the answer is to come through the response URL."""
        return self.status == 200 and not self.ack.strip()


def run_cli(env: dict[str, str], args: list[str], timeout: float = 90.0) -> tuple[int, str]:
    """One `rollout-bot` CLI command: (exit code, stdout and stderr); -9 when it hung."""
    try:
        done = subprocess.run([sys.executable, "-m", "bot", *args], env=env, capture_output=True,
                              text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return -9, "timed out"
    return done.returncode, (done.stdout + done.stderr).strip()

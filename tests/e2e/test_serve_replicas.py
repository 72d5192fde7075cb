"""Two `rollout-bot serve` processes on one Redis, one cluster and one Slack: an automatic
plan runs unattended, the leader is killed with SIGKILL mid-rollout, the other replica takes
over, every step lands exactly once, and the card and its thread say so."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.bootstrap import build
from bot.settings import Settings
from rollout.domain.models import Actor, Phase
from rollout.domain.plan import build_plan
from rollout.service import Ref
from sandbox.ports import free_port
from sandbox.redis_server import RedisServer
from sandbox.slack import SlackEmulator
from tests.e2e.conftest import CANARY, CHANNEL, SECRET, TOKEN
from tests.support import weight_writes
from tests.support.polling import healthz_up
from tests.support.real_cluster import RealCluster


class Serve:
    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "serve", "--port", str(self.port)],
            env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while not self._healthy():
            assert self.proc.poll() is None, "serve exited at start"
            assert time.monotonic() < deadline, "serve did not come up"
            time.sleep(0.1)

    def _healthy(self) -> bool:
        return healthz_up(self.port)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def replicas(kube: RealCluster, redis_server: RedisServer, slack: SlackEmulator,
             tmp_path: Path) -> Iterator[tuple[list[Serve], Settings]]:
    kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig")
    prefix = f"replicas-{time.monotonic_ns()}"
    env = {
        "SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": SECRET, "SLACK_API_URL": slack.api_url,
        "REDIS_URL": redis_server.url, "KUBECONFIG": str(kubeconfig),
        "ROLLOUT_APPROVER_GROUPS": "S0REVIEWERS", "ROLLOUT_NOTIFY_CHANNEL": CHANNEL,
        "ROLLOUT_KEY_PREFIX": prefix, "ROLLOUT_LEADER_TTL": "2s", "ROLLOUT_TICK": "1s",
        "ROLLOUT_LOCK_TTL": "2s",
    }
    servers = [Serve(env), Serve(env)]
    settings = Settings(redis_url=redis_server.url, kubeconfig=str(kubeconfig),
                        rollout_key_prefix=prefix)
    try:
        yield servers, settings
    finally:
        for server in servers:
            server.stop()


def test_two_replicas_finish_an_automatic_plan_after_the_leader_is_killed(
    replicas: tuple[list[Serve], Settings], kube: RealCluster, slack: SlackEmulator,
) -> None:
    servers, settings = replicas
    container = build(settings)
    try:
        service = container.service
        leader_key = container.store.key("leader")
        out = service.start(namespace="default", canary=CANARY, actor=Actor(id="cli:alice"),
                            plan=build_plan([10, 50, 100], interval_seconds=2, auto=True))
        assert out.ok
        service.approve_plan(Ref(canary=CANARY), actor=Actor(id="cli:bob"))  # not alice
        deadline = time.monotonic() + 20
        while service.get(Ref(canary=CANARY)).step < 0:  # the first automatic step landed
            assert time.monotonic() < deadline
            time.sleep(0.05)
        holder = str(container.store.client.get(leader_key))
        pid = int(holder.split(":")[1])
        leader = next(s for s in servers if s.proc.pid == pid)
        leader.kill()
        killed = time.monotonic()
        while service.get(Ref(canary=CANARY)).phase is not Phase.COMPLETED:
            assert time.monotonic() < killed + 2 + 1 + 2 * 2 + 10, "the survivor did not finish"
            time.sleep(0.1)
        new_holder = str(container.store.client.get(leader_key))
        assert int(new_holder.split(":")[1]) != pid
    finally:
        container.close()
    assert weight_writes(kube) == [[100, 0], [90, 10], [50, 50], [0, 100]]
    deadline = time.monotonic() + 10
    while True:  # the card (posted by a replica for this CLI-started rollout) and its thread;
        # a leader killed between posting a card and recording it leaves that one behind
        cards = [m for m in slack.messages(CHANNEL, top_level_only=True) if m.blocks]
        thread = slack.thread(CHANNEL, cards[-1].ts) if cards else []
        text = " ".join(m.text for m in thread)
        if cards and "100%" in cards[-1].text and "complete" in text.lower():
            break
        assert time.monotonic() < deadline, [m.text for m in thread]
        time.sleep(0.1)

"""Two scheduler processes on one Redis and one cluster; the leader is killed with SIGKILL
at random points of an automatic plan, 20 times: every step still lands exactly once."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rollout.domain.clock import SystemClock
from rollout.domain.models import Phase
from rollout.domain.plan import build_plan
from rollout.service import Ref
from sandbox.redis_server import RedisServer
from tests.integration.conftest import ALICE, BOB, World, make_world
from tests.support import weight_writes
from tests.support.kube_api import close_api
from tests.support.real_cluster import RealCluster
from tests.support.server_log import ServerLog

POOL = "llm-pool-version-2"
REF = Ref(canary=POOL)
LEASE_TTL = 1.0


class Replica:
    def __init__(self, kubeconfig: Path, redis_url: str, prefix: str) -> None:
        env = {**os.environ, "ROLLOUT_KEY_PREFIX": prefix, "ROLLOUT_LEADER_TTL": "1s",
               "ROLLOUT_TICK": "1s", "ROLLOUT_LOCK_TTL": "1s", "ROLLOUT_KUBE_TIMEOUT": "2"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "scheduler", "--kubeconfig", str(kubeconfig),
             "--redis-url", redis_url],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        assert self.proc.stderr is not None
        self.holder = str(ServerLog(self.proc.stderr).wait_started()["holder"])

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def live(cluster: RealCluster, redis_server: RedisServer,
         tmp_path: Path) -> Iterator[tuple[World, Path]]:
    w = make_world(cluster, redis_server.url)
    w.service.clock = SystemClock()
    kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig")
    yield w, kubeconfig
    w.store.client.close()
    close_api(w.api)


def _leader(world: World, replicas: list[Replica]) -> Replica | None:
    value = world.store.client.get(world.store.key("leader"))
    if not value:
        return None
    holder = str(value).rsplit(":", 1)[0]
    return next((r for r in replicas if r.holder == holder), None)


@pytest.mark.slow
def test_killing_the_leader_mid_rollout_twenty_times(live: tuple[World, Path]) -> None:
    world, kubeconfig = live
    prefix = world.store.key("x").rsplit(":", 1)[0]
    rng = random.Random(11)
    replicas = [Replica(kubeconfig, _url(world), prefix) for _ in range(2)]
    try:
        for run in range(20):
            world.emulator.clear_requests()
            world.service.start(namespace="default", canary=POOL, actor=ALICE,
                                plan=build_plan([10, 50, 100], interval_seconds=1, auto=True))
            world.service.approve_plan(REF, actor=BOB)  # by someone other than alice
            time.sleep(rng.uniform(0.0, 2.0))
            leader = _leader(world, replicas)
            killed_at = time.monotonic()
            if leader is not None:
                leader.kill()
                replicas.remove(leader)
            deadline = killed_at + LEASE_TTL + 1.0 + 2 * 1.0 + 5.0
            while world.service.get(REF).phase is not Phase.COMPLETED:
                assert time.monotonic() < deadline, (run, world.service.get(REF))
                time.sleep(0.05)
            assert weight_writes(world.emulator) == [[100, 0], [90, 10], [50, 50], [0, 100]], run
            world.service.rollback(REF, actor=BOB)
            while len(replicas) < 2:
                replicas.append(Replica(kubeconfig, _url(world), prefix))
    finally:
        for replica in replicas:
            replica.stop()


def _url(world: World) -> str:
    kwargs = world.store.client.connection_pool.connection_kwargs
    return f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs.get('db', 0)}"

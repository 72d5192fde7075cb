"""Redis's memory limit and eviction policy, read from a real redis-server: the operator is
warned at start where Redis may evict the bot's keys, and only there."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from rollout.adapters.redis_eviction import eviction_warning
from sandbox.redis_server import RedisServer
from tests.support.real_cluster import RealCluster
from tests.support.server_log import ServerLog

PASSWORD = "5b1e0c7d9a2f48e6b3c1d0a9f8e7d6c5"


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    config = (f"user no-info on >{PASSWORD} ~* &* +@all -info\n"
              "user default on nopass ~* &* +@all")
    with RedisServer(config=config) as running:
        yield running


@pytest.fixture
def admin(server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis(port=server.port)
    yield client
    client.config_set("maxmemory", "0")
    client.config_set("maxmemory-policy", "noeviction")
    client.close()


@pytest.mark.parametrize(("policy", "named"), [
    ("allkeys-lru", "rollout states"),
    ("allkeys-random", "rollout states"),
    ("volatile-lru", "the leader lease"),
    ("volatile-ttl", "the leader lease"),
])
def test_a_limit_with_an_evicting_policy_is_named(admin: redis.Redis, policy: str,
                                                  named: str) -> None:
    admin.config_set("maxmemory", str(512 * 1024 * 1024))
    admin.config_set("maxmemory-policy", policy)
    warning = eviction_warning(admin)
    assert warning is not None
    assert named in warning and policy in warning and "536870912 bytes" in warning
    assert "noeviction" in warning
    if policy.startswith("volatile"):
        assert "rollout states" not in warning
        kept = eviction_warning(admin, finished_expire=True)
        assert kept is not None and "finished rollouts' states and history, completed ones " \
            "still offering rollback included" in kept


@pytest.mark.parametrize(("limit", "policy"), [
    ("0", "allkeys-lru"),  # no limit: nothing is evicted, whatever the policy
    (str(512 * 1024 * 1024), "noeviction"),
])
def test_redis_that_cannot_evict_says_nothing(admin: redis.Redis, limit: str,
                                              policy: str) -> None:
    admin.config_set("maxmemory", limit)
    admin.config_set("maxmemory-policy", policy)
    assert eviction_warning(admin) is None


def test_a_user_refused_info_or_a_redis_gone_says_nothing(admin: redis.Redis,
                                                          server: RedisServer) -> None:
    admin.config_set("maxmemory", str(512 * 1024 * 1024))
    admin.config_set("maxmemory-policy", "allkeys-lru")
    refused = redis.Redis(port=server.port, username="no-info", password=PASSWORD)
    assert eviction_warning(refused) is None
    refused.close()
    assert eviction_warning(redis.Redis(port=1, socket_connect_timeout=1)) is None


def test_the_scheduler_process_says_it_at_start(admin: redis.Redis, server: RedisServer,
                                                cluster: RealCluster, tmp_path: Path) -> None:
    admin.config_set("maxmemory", str(512 * 1024 * 1024))
    admin.config_set("maxmemory-policy", "allkeys-lru")
    kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig")
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "scheduler", "--kubeconfig", str(kubeconfig),
         "--redis-url", f"redis://127.0.0.1:{server.port}/0"],
        env={**os.environ, "ROLLOUT_KEY_PREFIX": "eviction"}, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    log = ServerLog(proc.stderr)
    try:
        log.wait_started()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    said = [line for line in log.entries() if line.get("event") == "redis_may_evict"]
    assert len(said) == 1 and "allkeys-lru" in said[0]["message"], log.lines

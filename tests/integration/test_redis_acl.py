"""The bundled Redis's ACL, as the manifest writes it, against a real redis-server: the bot's
user can do everything the bot does (a whole rollout, the leader lease, history), an
anonymous client can do nothing, and the bot's user cannot flush, read config or reach keys
outside its prefix."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.exceptions import AuthenticationError, NoPermissionError, ResponseError

from rollout.adapters.change_feed import ChangeFeed
from rollout.adapters.leadership import LeaderLease
from rollout.adapters.store import RedisStore
from rollout.domain.plan import build_plan
from rollout.service import Ref
from sandbox.redis_server import RedisServer
from tests.integration.conftest import ALICE, BOB, make_world
from tests.support.kube_api import close_api
from tests.support.manifests import Doc, find, helm_template, kustomize, pod_spec, redis_acl
from tests.support.polling import eventually
from tests.support.real_cluster import RealCluster

PASSWORD = "0f3c9d1e2b7a45c8a1d6e9f0b3c7a2d4"


@pytest.fixture(scope="module")
def acl_redis() -> Iterator[RedisServer]:
    rules = redis_acl(find(kustomize(), "StatefulSet", "rollout-redis"))
    config = f"user default off\nuser rollout-bot on >{PASSWORD} {rules}"
    with RedisServer(config=config) as server:
        yield server


def _url(server: RedisServer, user: str = "rollout-bot", password: str = PASSWORD) -> str:
    return f"redis://{user}:{password}@127.0.0.1:{server.port}/0"


def test_the_bot_user_runs_a_whole_rollout(acl_redis: RedisServer,
                                           cluster: RealCluster) -> None:
    world = make_world(cluster, _url(acl_redis), prefix="rollout-bot")
    try:
        world.store.ping()
        ref = Ref(canary="llm-pool-version-2")
        world.service.start(namespace="default", canary="llm-pool-version-2", actor=ALICE,
                            plan=build_plan([50, 100], interval_seconds=0))
        assert world.service.approve(ref, actor=BOB).ok
        assert world.service.rollback(ref, actor=BOB).ok
        assert [e.action for e in world.service.history(ref)][-1] == "rolled_back"
        assert world.service.list_rollouts()
        # a leader's pass over records kept without a retention (SCAN, PTTL, a script)
        rolled_back = world.service.get(ref).id
        later = RedisStore(world.store.client, prefix="rollout-bot", retention_seconds=3600)
        assert later.expire_finished(world.clock.now()) >= 1
        assert world.store.client.pttl(world.store.key("rollout", rolled_back)) > 0
        lease = LeaderLease(world.store.client, key=world.store.key("leader"), holder="a",
                            ttl_seconds=5)
        assert lease.refresh()
        lease.release()
    finally:
        world.store.client.close()
        close_api(world.api)


def test_anonymous_and_wrong_password_clients_get_nothing(acl_redis: RedisServer) -> None:
    anonymous = redis.Redis(port=acl_redis.port)
    with pytest.raises((AuthenticationError, ResponseError)):
        anonymous.get("rollout-bot:anything")
    with pytest.raises(AuthenticationError):
        redis.Redis.from_url(_url(acl_redis, password="wrong")).ping()


def test_the_bot_user_announces_its_writes_on_its_own_channel(
        acl_redis: RedisServer, cluster: RealCluster) -> None:
    """The change feed works under the shipped ACL: a write is published (inside the save's
    script) and heard by a subscriber of the bot's user."""
    world = make_world(cluster, _url(acl_redis), prefix="rollout-bot", feed=True)
    feed = ChangeFeed(redis.Redis.from_url(_url(acl_redis)), channel="rollout-bot:changed")
    heard = threading.Event()
    feed.listen(lambda _rollout: heard.set(), quiet_while=lambda: False)
    try:
        deadline = time.monotonic() + 10
        while not heard.is_set() and time.monotonic() < deadline:  # until it has subscribed
            world.service.start(namespace="default", canary="llm-pool-version-2",
                                actor=ALICE, plan=build_plan([50, 100]))
            heard.wait(0.2)
            world.service.rollback(Ref(canary="llm-pool-version-2"), actor=BOB)
        assert heard.is_set()
    finally:
        feed.close()
        world.store.client.close()
        close_api(world.api)


def test_the_bot_user_says_when_a_persons_command_runs(
        acl_redis: RedisServer, cluster: RealCluster) -> None:
    """Under the shipped ACL, a person's command's first and last scripts publish on the
    people's channel, and the leader's subscription (the bot's user) hears both."""
    world = make_world(cluster, _url(acl_redis), prefix="rollout-bot", feed=True)
    feed = ChangeFeed.of_install(redis.Redis.from_url(_url(acl_redis)), "rollout-bot")
    heard: list[tuple[str, bool]] = []
    feed.listen(lambda _rollout: None, quiet_while=lambda: False,
                on_person=lambda name, began: heard.append((name, began)))
    try:
        def start_and_roll_back() -> None:
            world.service.start(namespace="default", canary="llm-pool-version-2",
                                actor=ALICE, plan=build_plan([50, 100]))
            world.service.rollback(Ref(canary="llm-pool-version-2"), actor=BOB)

        # Until it has subscribed (a message published before is lost): one probe heard, and
        # nothing else in flight, so the four below are the commands' own (a round of commands
        # as the probe, with a sleep for "all arrived", let a late one in among them).
        probe = redis.Redis.from_url(_url(acl_redis))
        eventually(lambda: probe.publish(feed.people_channel, "+probe") > 0, timeout=10,
                   message="the feed subscribed")
        eventually(lambda: heard == [("probe", True)], timeout=10, message="the probe heard")
        probe.close()
        heard.clear()
        start_and_roll_back()
        eventually(lambda: len(heard) == 4, timeout=30, step=0.02)
        (start, began), (same, ended), (rollback, began_again), (same_again, done) = heard
        assert (start, began, ended) == (same, True, False)
        assert (rollback, began_again, done) == (same_again, True, False)
        assert start != rollback
    finally:
        feed.close()
        world.store.client.close()
        close_api(world.api)


@pytest.mark.parametrize("command", [("FLUSHALL",), ("CONFIG", "GET", "*"), ("KEYS", "*"),
                                     ("SET", "other-app:key", "1"), ("ACL", "LIST"),
                                     ("PUBLISH", "other-app:events", "1")])
def test_the_bot_user_cannot_administer_or_leave_its_prefix(acl_redis: RedisServer,
                                                            command: tuple[str, ...]) -> None:
    client = redis.Redis.from_url(_url(acl_redis))
    with pytest.raises(NoPermissionError):
        client.execute_command(*command)  # type: ignore[no-untyped-call]  # unannotated in redis-py


def test_a_user_refused_time_still_gets_tokens_from_the_counter() -> None:
    """An ACL user of an install's own without `+time`: the tokens come from the counter
    alone, as before they were floored by the clock, rather than every command refused."""
    rules = redis_acl(find(kustomize(), "StatefulSet", "rollout-redis")).replace(" +time", "")
    config = f"user default off\nuser rollout-bot on >{PASSWORD} {rules}"
    with RedisServer(config=config) as server:
        store = RedisStore.from_url(_url(server), prefix="rollout-bot")
        first = store.acquire("default/httproute/routes-to-llm/0")
        store.release(first)
        assert store.acquire("default/httproute/routes-to-llm/0").token == first.token + 1
        store.client.close()


def _probe(workload: Doc) -> list[str]:
    (container,) = pod_spec(workload)["containers"]
    command: list[str] = container["readinessProbe"]["exec"]["command"]
    return command


@pytest.mark.parametrize("render", ["kustomize", "helm"])
def test_the_redis_probe_passes_with_the_password_on_no_command_line(
        acl_redis: RedisServer, tmp_path: Path, render: str) -> None:
    """The readiness probe, as shipped, run by `sh` against the ACL'd server (a `redis-cli`
    first on PATH adds the test server's port and records its arguments): it answers, and
    the password is on no process's command line, where anyone in the container could read
    it from /proc."""
    docs = kustomize() if render == "kustomize" else helm_template()
    command = _probe(find(docs, "StatefulSet", "rollout-redis"))
    real = shutil.which("redis-cli")
    if real is None:
        pytest.skip("redis-cli is not installed")
    seen = tmp_path / "argv"
    shim = tmp_path / "redis-cli"
    shim.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" >> {seen}\n'
                    f'exec {real} -p {acl_redis.port} "$@"\n')
    shim.chmod(0o755)
    env = {"PATH": f"{tmp_path}:{os.environ['PATH']}", "REDIS_PASSWORD": PASSWORD}
    ok = subprocess.run(command, env=env, capture_output=True, text=True, timeout=10,
                        check=False)
    assert ok.returncode == 0, ok.stderr
    assert PASSWORD not in seen.read_text()
    env["REDIS_PASSWORD"] = "wrong"
    refused = subprocess.run(command, env=env, capture_output=True, text=True, timeout=10,
                             check=False)
    assert refused.returncode != 0

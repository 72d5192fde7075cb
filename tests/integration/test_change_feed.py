"""The change feed on a real Redis and the real API server: a change saved on a replica that
does not lead wakes the leader at once, the leader's own writes announce nothing, and the
feed survives a Redis restart and a user without channel rights."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from rollout.adapters.change_feed import ChangeFeed
from rollout.adapters.leadership import LeaderLease
from rollout.domain.clock import SystemClock
from rollout.domain.models import Phase
from rollout.domain.plan import build_plan
from rollout.redis_connect import connect
from rollout.scheduler import RolloutScheduler
from rollout.service import Ref
from sandbox.redis_server import RedisServer
from tests.integration.conftest import ALICE, BOB, World, make_world, unique_prefix
from tests.support.kube_api import close_api
from tests.support.polling import eventually
from tests.support.real_cluster import RealCluster

POOL = "llm-pool-version-2"
REF = Ref(canary=POOL)


def _replica(cluster: RealCluster, url: str, prefix: str) -> World:
    world = make_world(cluster, url, prefix=prefix, feed=True)
    world.service.clock = SystemClock()
    return world


@pytest.fixture
def replicas(cluster: RealCluster, redis_server: RedisServer) -> Iterator[tuple[World, World]]:
    """Two replicas of one install: the first will lead, the second only takes commands."""
    prefix = unique_prefix()
    worlds = (_replica(cluster, redis_server.url, prefix),
              _replica(cluster, redis_server.url, prefix))
    yield worlds
    for w in worlds:
        w.store.client.close()
        close_api(w.api)


def _leader(world: World, *, sweep: float) -> RolloutScheduler:
    lease = LeaderLease(world.store.client, key=world.store.key("leader"), holder="leader",
                        ttl_seconds=60)
    scheduler = RolloutScheduler(service=world.service, lease=lease, sweep_seconds=sweep,
                                 feed=world.feed)
    world.service.options.listeners.append(scheduler.on_change)
    scheduler.start()
    eventually(lambda: lease.is_leader, timeout=5, step=0.02)
    return scheduler


class _Heard:
    """A subscriber of its own on the channel: what was announced."""

    def __init__(self, client: redis.Redis, channel: str) -> None:
        self.ids: list[str] = []
        self._pubsub = client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        self._pubsub.subscribe(**{channel: lambda m: self.ids.append(m["data"])})
        self._worker = self._pubsub.run_in_thread(sleep_time=0.05, daemon=True)

    def close(self) -> None:
        self._worker.stop()
        self._worker.join(2)
        self._pubsub.close()


def test_a_plan_approved_on_another_replica_steps_without_waiting_for_the_sweep(
    replicas: tuple[World, World],
) -> None:
    """The leader sweeps every 60 s here: only the announcement can schedule the second step
    of a plan whose bakes last 1 s."""
    leading, other = replicas
    scheduler = _leader(leading, sweep=60)
    try:
        other.service.start(namespace="default", canary=POOL, actor=ALICE,
                            plan=build_plan([10, 50, 100], interval_seconds=1, auto=True))
        other.service.approve_plan(REF, actor=BOB)  # the first step applies here
        eventually(lambda: other.service.get(REF).phase is Phase.COMPLETED, timeout=10,
                   step=0.05)
    finally:
        scheduler.stop()
    steps = [e for e in other.service.history(REF) if e.action == "step_applied"]
    assert [(e.step, e.actor.id) for e in steps][1:] == [(1, "scheduler"), (2, "scheduler")]


def test_only_a_replica_that_does_not_lead_announces_its_writes(
    replicas: tuple[World, World],
) -> None:
    leading, other = replicas
    assert other.feed is not None
    heard = _Heard(other.store.client, other.feed.channel)
    scheduler = _leader(leading, sweep=60)
    try:
        out = other.service.start(namespace="default", canary=POOL, actor=ALICE,
                                  plan=build_plan([10, 100]))
        assert out.rollout is not None
        rid = out.rollout.id
        eventually(lambda: heard.ids.count(rid) == 1, timeout=5, step=0.02)
        leading.service.approve(REF, actor=BOB)  # the leader's own: announced nowhere
        leading.service.pause(REF, actor=BOB)
        other.service.resume(REF, actor=BOB)
        # Redis delivers to a subscriber in the order it ran the PUBLISHes: anything
        # announced above is heard before this last word of the test's own
        other.store.client.publish(other.feed.channel, "end")
        eventually(lambda: "end" in heard.ids, timeout=5, step=0.02)
        assert heard.ids == [rid, rid, "end"]
    finally:
        scheduler.stop()
        heard.close()


def test_the_leader_hears_which_rollout_another_replica_changed(
    replicas: tuple[World, World], redis_server: RedisServer,
) -> None:
    """The id goes to the scheduler's `wake`: the step a person's change made due there
    goes ahead of the backlog (`tests/unit/test_scheduler_ahead.py`)."""
    _leading, other = replicas
    assert other.feed is not None
    channel = other.feed.channel
    heard: list[str] = []
    subscribed = threading.Event()

    def on_change(rollout_id: str) -> None:
        heard.append(rollout_id)
        subscribed.set()

    listener = ChangeFeed(connect(redis_server.url), channel=channel)
    listener.listen(on_change, quiet_while=lambda: True)
    publisher = connect(redis_server.url)
    try:
        assert _until_heard(lambda: publisher.publish(channel, "ping"), subscribed)
        out = other.service.start(namespace="default", canary=POOL, actor=ALICE,
                                  plan=build_plan([10, 100]))
        assert out.rollout is not None
        rid = out.rollout.id
        eventually(lambda: rid in heard, timeout=5)
        assert set(heard) == {"ping", rid}
    finally:
        listener.close()
        publisher.close()


def test_a_persons_command_on_any_replica_makes_the_leaders_ticks_make_way(
    replicas: tuple[World, World],
) -> None:
    """Its first script says it went to work, its last that it is done, under one name; the
    leader's pacer makes way for it in between. Commands on the leader itself say so too;
    the scheduler's ticks say nothing."""
    leading, other = replicas
    assert other.feed is not None and other.feed.people_channel
    heard = _Heard(other.store.client, other.feed.people_channel)
    scheduler = _leader(leading, sweep=60)
    try:
        lease = other.store.open(key="people-test", person=True).lease
        assert lease is not None and lease.person == f"people-test:{lease.token}"
        eventually(lambda: scheduler.pacer.people == 1, timeout=5, step=0.02)
        other.store.close(lease)
        eventually(lambda: scheduler.pacer.people == 0, timeout=5, step=0.02)
        out = other.service.start(namespace="default", canary=POOL, actor=ALICE,
                                  plan=build_plan([10, 50, 100], interval_seconds=0))
        assert out.rollout is not None
        leading.service.approve(REF, actor=BOB)
        leading.service.tick(out.rollout.id)  # the scheduler's: says nothing
        leading.service.rollback(REF, actor=BOB)
        other.store.client.publish(other.feed.people_channel, "end")  # heard after the rest
        eventually(lambda: "end" in heard.ids, timeout=5, step=0.02)
        began = [m[1:] for m in heard.ids if m.startswith("+")]
        assert len(began) == 4  # the open above, the start, the approve, the rollback
        assert heard.ids == [*(m for name in began for m in ("+" + name, "-" + name)), "end"]
        # the leader's subscription is a connection of its own: it hears the last end when
        # it does, not when the test's did
        eventually(lambda: scheduler.pacer.people == 0, timeout=5, step=0.02)
    finally:
        scheduler.stop()
        heard.close()


def _listening(url: str, channel: str) -> tuple[ChangeFeed, threading.Event]:
    feed = ChangeFeed(connect(url), channel=channel)
    woken = threading.Event()
    feed.listen(lambda _rollout: woken.set(), quiet_while=lambda: False)
    return feed, woken


def _until_heard(publish: Callable[[], Any], woken: threading.Event) -> bool:
    """Publish until the listener hears one: messages sent before it subscribed are lost."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        publish()
        if woken.wait(0.1):
            return True
    return False


def test_the_leaders_subscription_comes_back_after_redis_restarts() -> None:
    with RedisServer() as server:
        feed, woken = _listening(server.url, "t:changed")
        publisher = connect(server.url)
        try:
            assert _until_heard(lambda: publisher.publish("t:changed", "r1"), woken)
            server.restart()
            woken.clear()
            assert _until_heard(lambda: _publish_once_up(publisher), woken)
        finally:
            feed.close()
            publisher.close()


def _publish_once_up(client: redis.Redis) -> None:
    with contextlib.suppress(redis.ConnectionError):  # still coming back
        client.publish("t:changed", "r1")


def test_a_user_without_channel_rights_still_saves_and_the_feed_stops(
    cluster: RealCluster, caplog: pytest.LogCaptureFixture,
) -> None:
    """ACL `resetchannels`: PUBLISH and SUBSCRIBE are refused. The save's `pcall` ignores
    the refusal; the listener says once that sweeps alone follow changes, and stops."""
    with RedisServer() as server:
        admin = connect(server.url)
        admin.acl_setuser("nochannels", enabled=True, passwords=["+secret"], keys=["*"],
                          commands=["+@all"], reset_channels=True)
        host_port = server.url.removeprefix("redis://")
        url = f"redis://nochannels:secret@{host_port}"
        world = make_world(cluster, url, feed=True)
        feed = ChangeFeed(connect(url), channel="t:changed")
        try:
            out = world.service.start(namespace="default", canary=POOL, actor=ALICE,
                                      plan=build_plan([10, 100]))
            assert out.ok and world.service.get(REF).phase is Phase.AWAITING_APPROVAL
            with caplog.at_level("WARNING", logger="rollout.adapters.change_feed"):
                feed.listen(lambda _rollout: None, quiet_while=lambda: False)
                eventually(lambda: "may not subscribe" in caplog.text, timeout=5, step=0.02)
            worker = feed._worker
            assert worker is not None
            worker.join(5)
            assert not worker.is_alive()
        finally:
            feed.close()
            world.store.client.close()
            close_api(world.api)
            admin.close()


def test_a_failure_acting_on_a_change_does_not_end_the_feed(redis_server: RedisServer) -> None:
    calls: list[int] = []
    heard_again = threading.Event()

    def on_change(_rollout: str) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("the scheduler could not be woken")
        heard_again.set()

    channel = f"{unique_prefix()}:changed"
    feed = ChangeFeed(connect(redis_server.url), channel=channel)
    feed.listen(on_change, quiet_while=lambda: False)
    publisher = connect(redis_server.url)
    try:
        assert _until_heard(lambda: publisher.publish(channel, "r1"), heard_again)
    finally:
        feed.close()
        publisher.close()


def test_a_feed_started_before_redis_answers_subscribes_once_it_does() -> None:
    """Redis not yet up when a replica starts (pods starting together): `listen` raised out
    of `serve` and `scheduler`, which exited with a traceback. It keeps trying instead, and
    an announcement made once Redis is up reaches the listener."""
    server = RedisServer()  # its port chosen, nothing listening on it yet
    client = connect(server.url)
    feed = ChangeFeed(client, channel="test:changed")
    heard: list[str] = []
    try:
        feed.listen(heard.append, quiet_while=lambda: False)  # returns, Redis down
        server.start()
        publisher = redis.Redis.from_url(server.url)
        try:
            def announced() -> bool | None:
                publisher.publish("test:changed", "r1")
                return bool(heard) or None

            eventually(announced, timeout=15, step=0.2, message="the feed never subscribed")
        finally:
            publisher.close()
        assert heard[0] == "r1"
    finally:
        feed.close()
        client.close()
        server.stop()

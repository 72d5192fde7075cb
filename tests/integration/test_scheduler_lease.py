"""The leader keeps its lease while the drift watch takes long: a pass over many targets on
a loaded cluster outlasted the lease, the replica then stopped firing (a tick on a lease its
own clock says may have lapsed never runs), and every rollout waited for the next sweep.

Over the in-memory service, with APScheduler running and a sweep every 50 ms: real time,
waited on by polling, never slept (but the wall clock test waits past its lease's TTL)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import redis

from rollout.adapters.leadership import LeaderLease
from rollout.domain.models import Rollout
from rollout.domain.plan import build_plan
from rollout.domain.split import Observed
from rollout.scheduler import ANALYSIS_JOB, SWEEP_JOB, WATCH_JOB, RolloutScheduler
from rollout.service import Outcome
from sandbox.redis_server import RedisServer
from tests.integration.conftest import unique_prefix
from tests.support.polling import eventually
from tests.unit.builders import ALICE, BOB
from tests.unit.fakes import FakeTarget, FakeTraffic
from tests.unit.test_service import CANARY, REF, _world


class _StuckTraffic(FakeTraffic):
    """A cluster whose reads for the drift watch do not answer until told to."""

    def __init__(self, *targets: FakeTarget) -> None:
        super().__init__(*targets)
        self.answer = threading.Event()
        self.asked = threading.Event()

    def glance(self, rollout: Rollout) -> Observed:
        self.asked.set()
        self.answer.wait(timeout=30)
        return super().glance(rollout)


class _CountedLease:
    is_leader = True
    token = 1
    holder = "test"

    def __init__(self) -> None:
        self.renewals = 0

    def refresh(self) -> bool:
        self.renewals += 1
        return True

    def release(self) -> None:
        pass


def test_the_lease_is_renewed_while_the_drift_watch_waits_on_the_cluster() -> None:
    service, _store, target, _clock = _world()
    traffic = _StuckTraffic(target)
    service.traffic = traffic
    service.start(namespace="default", canary=CANARY, actor=ALICE, plan=build_plan([10, 100]))
    service.approve(REF, actor=BOB)
    lease = _CountedLease()
    scheduler = RolloutScheduler(service=service, lease=lease,  # type: ignore[arg-type]
                                 sweep_seconds=0.05)
    scheduler.start()
    try:
        eventually(traffic.asked.is_set, message="the drift watch to look at the target")
        renewed = lease.renewals
        eventually(lambda: lease.renewals >= renewed + 3,
                   message="the sweep to renew the lease while the watch waits")
    finally:
        traffic.answer.set()
        scheduler.stop()


def test_the_leader_keeps_its_lease_and_its_passes_when_the_wall_clock_goes_back(
        redis_server: RedisServer) -> None:
    """A wall clock stepped back an hour leaves APScheduler's interval jobs due an hour later
    by it: the same as moving each of the leader's jobs an hour ahead, which this does. The
    sweep (and the lease's renewal), the drift watch and the analysis still run, on the
    beat of the monotonic clock; before it, the lease lapsed after its TTL and a single
    replica watched and analysed nothing for the hour."""
    service, _store, _target, _clock = _world()
    client = redis.Redis.from_url(redis_server.url)
    key = f"{unique_prefix()}:leader"
    lease = LeaderLease(client, key=key, holder="a", ttl_seconds=2.0)
    runs = {"watch": 0, "analysis": 0}
    in_flight, remind_kept = service.in_flight, service.remind_kept

    def counted_in_flight() -> list[Rollout]:
        runs["watch"] += 1
        return in_flight()

    def counted_remind_kept() -> list[Outcome]:
        runs["analysis"] += 1
        return remind_kept()

    service.in_flight = counted_in_flight  # type: ignore[method-assign]
    service.remind_kept = counted_remind_kept  # type: ignore[method-assign]
    scheduler = RolloutScheduler(service=service, lease=lease, sweep_seconds=0.1)
    scheduler.start()
    try:
        eventually(lambda: lease.is_leader and runs["watch"] and runs["analysis"],
                   message="the leader's first passes")
        later = datetime.now(UTC) + timedelta(hours=1)
        for job in (SWEEP_JOB, WATCH_JOB, ANALYSIS_JOB):
            scheduler.scheduler.modify_job(job, next_run_time=later)
        before = dict(runs)
        past_ttls = time.monotonic() + 4.5  # the lease's TTL twice over, and some
        eventually(lambda: time.monotonic() > past_ttls
                   and all(runs[j] >= before[j] + 3 for j in runs), timeout=10,
                   message="the drift watch and the analysis to run again")
        # renewed all along (the key would be gone, nobody renewing it, after its TTL); the
        # token is not compared: a renewal late by the TTL on a loaded machine takes a new one
        held = client.get(key)
        assert isinstance(held, bytes) and held.startswith(b"a:")
    finally:
        scheduler.stop()
        client.close()

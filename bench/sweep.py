"""What an idle scheduler leader costs Redis: commands per sweep (and per second at the
default 5 s tick) at 100 and 1,000 active rollouts, counted with Redis's own INFO
commandstats. Against the sweep as it was before the indexes, loading and parsing every
active rollout each time (and again for the analysis job), measured in the same run on the
same data, interleaved."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import redis

from bench.redis_count import commands
from rollout.adapters.freeze_store import FreezeStore
from rollout.adapters.leadership import LeaderLease
from rollout.adapters.store import RedisStore
from rollout.domain import machine
from rollout.domain.clock import ManualClock
from rollout.domain.facts import ClusterFacts
from rollout.domain.models import Actor, Baseline, Rollout, Target, TargetKind
from rollout.domain.plan import build_plan
from rollout.domain.split import Observed, expected_pair
from rollout.scheduler import RolloutScheduler
from rollout.service import Gates, RolloutService
from sandbox.redis_server import RedisServer

TICK_SECONDS = 5.0
SWEEPS = 5
NOW = datetime(2026, 1, 1, tzinfo=UTC)


class SteadyTraffic:
    """Every target shows what its rollout expects: no drift, so the drift watch makes no
    Redis call (its Kubernetes read is per active rollout by design and not counted)."""

    def glance(self, rollout: Rollout) -> Observed:
        return Observed(pair=expected_pair(rollout))

    def __getattr__(self, name: str) -> Any:
        raise NotImplementedError(f"the sweep benchmark does not {name}")


class NoFacts:
    def read(self, namespace: str, *, route: str | None = None,
             rewrite: str | None = None) -> ClusterFacts:
        raise NotImplementedError("the sweep benchmark starts nothing")


def seed(store: RedisStore, count: int) -> None:
    """`count` active rollouts, each due in an hour (a long bake), each of a canary of its own
    (a canary has one active rollout at a time)."""
    for i in range(count):
        canary = f"b{i}"
        baseline = Baseline(stable={"name": "a", "weight": 100},
                            canary={"name": canary, "weight": 0},
                            stable_weight=100, canary_weight=0)
        target = Target(kind=TargetKind.ROUTE, namespace="bench", name=f"route-{i}", rule=0)
        r = machine.start(rollout_id=f"r{i:05d}", target=target, stable="a", canary=canary,
                          plan=build_plan([10, 100], interval_seconds=3600), baseline=baseline,
                          actor=Actor(id="cli:alice"), now=NOW).rollout
        r = r.model_copy(update={"next_due_at": NOW + timedelta(hours=1)})
        lease = store.acquire(target.key)
        store.create(r, lease=lease, events=())
        store.release(lease)


def bench_sweep(counts: tuple[int, ...] = (100, 1000)) -> list[str]:
    lines = []
    with RedisServer() as server:
        for count in counts:
            client = redis.Redis.from_url(server.url, decode_responses=True)
            prefix = f"bench-sweep-{count}"
            store = RedisStore(client, prefix=prefix)
            seed(store, count)
            service = RolloutService(store=store, traffic=SteadyTraffic(),
                                     clock=ManualClock(NOW),
                                     gates=Gates(facts=NoFacts(),
                                                 freezes=FreezeStore(client, prefix=prefix)))
            lease = LeaderLease(client, key=store.key("leader"), holder="bench",
                                ttl_seconds=60)
            scheduler = RolloutScheduler(service=service, lease=lease,
                                         sweep_seconds=TICK_SECONDS)
            scheduler.scheduler.start(paused=True)  # jobs are kept, none fires
            scheduler.sweep()  # takes the lease: the one full load
            assert len(scheduler.due_times()) == count

            def now_sweep(s: RolloutScheduler = scheduler) -> None:
                s.sweep()
                s.look()
                s.analyse()

            def full_reload(s: RolloutScheduler = scheduler,
                            svc: RolloutService = service) -> None:
                s.lease.refresh()  # the sweep before the indexes: everything, every time
                rollouts = svc.active()
                s.sync(rollouts)
                s.watch(rollouts + svc.in_flight())
                svc.remind_kept()  # the analysis job: the keep-period reminder, as now
                for r in svc.active():  # and then loaded them all again
                    svc.analyse(r)

            now_cost, floor_cost = [], []
            for _ in range(SWEEPS):  # interleaved
                now_cost.append(_count(client, now_sweep))
                floor_cost.append(_count(client, full_reload))
            scheduler.scheduler.shutdown(wait=False)
            now_avg, floor_avg = sum(now_cost) / SWEEPS, sum(floor_cost) / SWEEPS
            lines.append(
                f"idle leader, {count:>5} active rollouts: {now_avg:6.0f} Redis commands/sweep "
                f"({now_avg / TICK_SECONDS:6.1f}/s at a {TICK_SECONDS:.0f} s tick)   before "
                f"(full reload per sweep): {floor_avg:6.0f}/sweep "
                f"({floor_avg / TICK_SECONDS:6.1f}/s)   ratio {now_avg / floor_avg:.3f}x")
            client.close()
    return lines


def _count(client: redis.Redis, sweep: Callable[[], None]) -> int:
    before = commands(client)
    sweep()
    return commands(client) - before

"""What a step costs Redis: the round trips of one approve's store calls (open by pool name,
confirm, close with the save), counted on the client's connection, and their time against
a floor of one EVALSHA of a script that does nothing, interleaved sample by sample on one
redis-server."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import redis
from redis.connection import Connection

from bench.harness import spread_line
from rollout.adapters.store import RedisStore
from rollout.domain import machine
from rollout.domain.models import Actor, Baseline, Target, TargetKind
from rollout.domain.plan import build_plan
from rollout.ports import Saving
from sandbox.redis_server import RedisServer

NAMESPACE, CANARY = "bench", "b"


class _Counting(Connection):
    """A connection that counts its sends: each is one round trip."""

    sends = 0

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        type(self).sends += 1
        super().send_packed_command(command, check_health)  # type: ignore[no-untyped-call]


def bench_redis_step(samples: int) -> list[str]:
    with RedisServer() as server:
        pool = redis.ConnectionPool(port=server.port, decode_responses=True,
                                    connection_class=_Counting)
        client = redis.Redis(connection_pool=pool)
        store = RedisStore(client, prefix="bench-step")
        target = Target(kind=TargetKind.ROUTE, namespace=NAMESPACE, name="route", rule=0)
        rollout = machine.start(
            rollout_id="r1", target=target, stable="a", canary=CANARY,
            plan=build_plan([10, 100], interval_seconds=0),
            baseline=Baseline(stable={"name": "a", "weight": 100},
                              canary={"name": CANARY, "weight": 0},
                              stable_weight=100, canary_weight=0),
            actor=Actor(id="cli:alice"), now=datetime(2026, 1, 1, tzinfo=UTC)).rollout
        lease = store.acquire(target.object_key)
        store.create(rollout, lease=lease, events=())
        store.release(lease)
        floor_script = client.register_script("return 1")

        def step() -> None:
            """An approve's Redis part: the click's id looked up with the lock and the state,
            the confirm before the cluster write, the next version saved as the lock goes."""
            opening = store.open(latest=(NAMESPACE, CANARY), memo="request:bench")
            assert opening.lease is not None and opening.rollout is not None
            store.confirm(opening.lease)
            store.close(opening.lease, saving=Saving(opening.rollout, opening.rollout.version))

        step()
        floor_script()  # both scripts known to the server before anything is timed
        steps: list[float] = []
        floors: list[float] = []
        trips = 0
        for _ in range(samples):
            started = time.perf_counter()
            floor_script()
            floors.append(time.perf_counter() - started)
            before = _Counting.sends
            started = time.perf_counter()
            step()
            steps.append(time.perf_counter() - started)
            trips += _Counting.sends - before
        client.close()
    return [spread_line("redis per approve (open, confirm, close)", steps, "1 EVALSHA", floors),
            f"redis round trips per approve: {trips / samples:.1f}   floor 1 EVALSHA: 1"]

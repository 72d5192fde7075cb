"""The scheduler's hold record against a real redis-server: nothing for a hold already over,
and a key that lapses with the hold's end."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rollout.adapters.tick_holds import RedisTickHolds
from rollout.domain.clock import ManualClock
from rollout.domain.errors import StoreUnavailable
from rollout.redis_connect import connect
from sandbox.redis_server import RedisServer
from tests.integration.conftest import unique_prefix


def test_a_hold_already_over_is_not_recorded_and_one_recorded_lapses_with_its_end(
        redis_server: RedisServer) -> None:
    client = connect(redis_server.url)
    prefix = unique_prefix()
    clock = ManualClock(datetime.now(UTC))
    holds = RedisTickHolds(client, clock=clock, prefix=prefix)
    holds.hold(clock.now())
    assert client.exists(f"{prefix}:scheduler:held-until") == 0
    holds.hold(clock.now() + timedelta(seconds=30))
    assert 29_000 < client.pttl(f"{prefix}:scheduler:held-until") <= 30_000


def test_a_redis_that_refuses_writes_is_answered_unavailable_not_an_error_reply() -> None:
    """A Redis out of memory (or read-only, or denying the command) answers the record with
    an error reply: it is the store unavailable to the scheduler, which then logs it and
    keeps the hold, rather than a traceback out of the tick."""
    with RedisServer() as server:  # its own: this test fills its memory limit
        client = connect(server.url)
        clock = ManualClock(datetime.now(UTC))
        holds = RedisTickHolds(client, clock=clock, prefix=unique_prefix())
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", "1")
        with pytest.raises(StoreUnavailable, match="Redis refused the command"):
            holds.hold(clock.now() + timedelta(seconds=30))
        assert holds.held_until() is None  # reads still answer
        client.close()

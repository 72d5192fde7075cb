"""Redis adapter for the scheduler's hold: how long the Kubernetes API's throttle holds every
automatic step back, where any replica's `status` can read it.

A hold is the leader's own memory (`rollout.pacing`); without this record a person asking
why a step is overdue, on another replica or the CLI, was told nothing. One key beside the
rollout state (`<prefix>:scheduler:held-until`), whose TTL is the hold: it is gone when the
hold ends, and a leader that dies mid-hold leaves nothing behind for longer."""

from __future__ import annotations

import math
from datetime import datetime

import redis

from rollout.adapters.store import unavailable_as_error
from rollout.domain.clock import Clock
from rollout.domain.errors import StoreUnavailable


class RedisTickHolds:
    def __init__(self, client: redis.Redis, *, clock: Clock,
                 prefix: str = "rollout-bot") -> None:
        self._r = client
        self._clock = clock
        self._key = f"{prefix}:scheduler:held-until"

    def hold(self, until: datetime) -> None:
        """Record a hold until `until`; one already past records nothing."""
        millis = math.ceil((until - self._clock.now()).total_seconds() * 1000)
        if millis <= 0:
            return
        try:
            with unavailable_as_error():
                self._r.set(self._key, until.isoformat(), px=millis)
        except redis.RedisError as exc:  # an error reply (READONLY, OOM, NOPERM): the hold
            # is the leader's own; only its record for `status` is missing
            raise StoreUnavailable(f"Redis refused the record of the hold ({exc})",
                                   retry_after=5.0) from exc

    def held_until(self) -> datetime | None:
        """The end of the hold recorded, while it lasts by this replica's clock."""
        with unavailable_as_error():
            raw = self._r.get(self._key)
        if not raw:
            return None
        until = datetime.fromisoformat(raw.decode() if isinstance(raw, bytes) else str(raw))
        return until if until > self._clock.now() else None

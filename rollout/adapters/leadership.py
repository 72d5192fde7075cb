"""The leader lease: one replica at a time runs the scheduler's jobs.

A Redis key with a TTL holds the leader's token (a fencing number on each grant, floored by
the server's clock as the store's are: a Redis that lost its counter never gives a new term
the number of the last).
The leader renews it well before it expires; a replica that cannot renew, or whose last
renewal is older than the TTL by its own clock, stops acting as leader at once, before any
other replica can have taken over.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import redis
from redis.exceptions import RedisError

from rollout.adapters.store import GRANT

log = logging.getLogger(__name__)

_ACQUIRE = GRANT + """
local holder = redis.call('GET', KEYS[1])
if holder == false then
  local token = grant(KEYS[2])
  redis.call('SET', KEYS[1], ARGV[1] .. ':' .. token, 'PX', ARGV[2])
  return token
end
if string.sub(holder, 1, string.len(ARGV[1]) + 1) == ARGV[1] .. ':' then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return tonumber(string.sub(holder, string.len(ARGV[1]) + 2))
end
return false
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class LeaderLease:
    """Acquire-or-renew in one call; `is_leader` answers from local time, without I/O."""

    def __init__(
        self, client: redis.Redis, *, key: str, holder: str, ttl_seconds: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._r = client
        self._key = key
        self._holder = holder
        self._ttl = ttl_seconds
        self._now = monotonic
        self._acquire = client.register_script(_ACQUIRE)
        self._release = client.register_script(_RELEASE)
        self._lock = threading.Lock()
        self._token: int | None = None
        self._valid_until = 0.0

    @property
    def holder(self) -> str:
        return self._holder

    @property
    def token(self) -> int | None:
        return self._token if self.is_leader else None

    @property
    def is_leader(self) -> bool:
        with self._lock:
            return self._token is not None and self._now() < self._valid_until

    def refresh(self) -> bool:
        """Acquire the lease or renew ours. Returns whether we lead now."""
        started = self._now()
        try:
            token = self._acquire(keys=[self._key, self._key + ":fence"],
                                  args=[self._holder, int(self._ttl * 1000)])
        except RedisError as exc:
            log.warning("leader lease not renewed (%s); standing down", exc)
            token = None
        with self._lock:
            if token:
                # counted from before the call: the key may have been set that long ago
                self._token, self._valid_until = int(token), started + self._ttl
            else:
                self._token, self._valid_until = None, 0.0
            # an answer that came after the TTL by our clock renewed a lease already lapsed
            return self._token is not None and self._now() < self._valid_until

    def release(self) -> None:
        with self._lock:
            token, self._token, self._valid_until = self._token, None, 0.0
        if token is not None:
            try:
                self._release(keys=[self._key], args=[f"{self._holder}:{token}"])
            except RedisError:
                log.warning("could not release the leader lease; it expires by itself")

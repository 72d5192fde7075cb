"""Redis adapter: rollout state with compare-and-set, target locks with fencing tokens,
audit streams and idempotency keys.

Every multi-key write is one Lua script, so a lost connection leaves either the old state or
the new one, never half of each. Connection failures surface as StoreUnavailable.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from rollout.domain.errors import (
    Busy,
    Conflict,
    LockLapsed,
    NotFound,
    RolloutError,
    StoreUnavailable,
    Superseded,
)
from rollout.domain.models import AuditEvent, Card, Rollout
from rollout.ports import Changes, Lease
from rollout.redis_connect import connect

T = TypeVar("T")

GLOBAL_AUDIT_MAXLEN = 10_000
ROLLOUT_AUDIT_MAXLEN = 2_000
RECENT_KEEP = 50
#: writes the change index remembers: a reader further behind reloads everything
CHANGES_KEPT = 100_000

# A preempting acquire (a rollback) also leaves its token in KEYS[3], so that a holder that
# lost its lock can tell "a rollback took over" from "the lock lapsed".
_ACQUIRE = """
if ARGV[2] == '1' or redis.call('EXISTS', KEYS[1]) == 0 then
  local token = redis.call('INCR', KEYS[2])
  redis.call('SET', KEYS[1], token, 'PX', ARGV[1])
  if ARGV[2] == '1' then redis.call('SET', KEYS[3], token, 'PX', ARGV[3]) end
  return token
end
return false
"""

# A holder whose lock is intact may move the counter past a token Redis forgot (after a
# flush or a restart without persistence) and take a fresh, higher token, atomically.
_REGRANT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return false end
local current = tonumber(redis.call('GET', KEYS[2]) or '0')
if current < tonumber(ARGV[2]) then redis.call('SET', KEYS[2], ARGV[2]) end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], token, 'PX', ARGV[3])
return token
"""

_SET_CARD = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'card', ARGV[1])
return 1
"""

_CONFIRM = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# KEYS: state, lock, active set, target-active, pool-latest, pool-list, rollout audit,
#       global audit, recent zset, in-flight set (a saved version ends a write in flight),
#       due zset (active rollouts by next due time, ms), change zset (id by the sequence
#       number of its last write), change sequence
# ARGV: mode(create|save), expected version, state json, token, id, active(1|0), new version,
#       created score, maxlen rollout audit, maxlen global, recent keep, due ms ('' for
#       none), changes kept, events...
_WRITE = """
if redis.call('GET', KEYS[2]) ~= ARGV[4] then return {'LOCK'} end
if ARGV[1] == 'create' then
  local owner = redis.call('GET', KEYS[4])
  if owner then return {'ACTIVE', owner} end
  if redis.call('EXISTS', KEYS[1]) == 1 then return {'EXISTS'} end
  redis.call('SET', KEYS[5], ARGV[5])
  redis.call('LPUSH', KEYS[6], ARGV[5])
  redis.call('ZADD', KEYS[9], ARGV[8], ARGV[5])
  local extra = redis.call('ZCARD', KEYS[9]) - tonumber(ARGV[11])
  if extra > 0 then redis.call('ZREMRANGEBYRANK', KEYS[9], 0, extra - 1) end
else
  local current = redis.call('HGET', KEYS[1], 'version')
  if current ~= ARGV[2] then return {'VERSION', current or ''} end
end
redis.call('HSET', KEYS[1], 'version', ARGV[7], 'data', ARGV[3])
redis.call('SREM', KEYS[10], ARGV[5])
if ARGV[6] == '1' then
  redis.call('SADD', KEYS[3], ARGV[5])
  redis.call('SET', KEYS[4], ARGV[5])
else
  redis.call('SREM', KEYS[3], ARGV[5])
  if redis.call('GET', KEYS[4]) == ARGV[5] then redis.call('DEL', KEYS[4]) end
end
if ARGV[6] == '1' and ARGV[12] ~= '' then
  redis.call('ZADD', KEYS[11], ARGV[12], ARGV[5])
else
  redis.call('ZREM', KEYS[11], ARGV[5])
end
local seq = redis.call('INCR', KEYS[13])
redis.call('ZADD', KEYS[12], seq, ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[12], '-inf', '(' .. (seq - tonumber(ARGV[13])))
for i = 14, #ARGV do
  redis.call('XADD', KEYS[7], 'MAXLEN', '~', ARGV[9], '*', 'event', ARGV[i])
  redis.call('XADD', KEYS[8], 'MAXLEN', '~', ARGV[10], '*', 'event', ARGV[i])
end
return {'OK'}
"""

# KEYS: change zset, change sequence. ARGV: the sequence number the reader has seen.
# Returns the current sequence number, then the ids written after ARGV[1].
_CHANGES = """
local seq = tonumber(redis.call('GET', KEYS[2]) or '0')
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf')
table.insert(ids, 1, tostring(seq))
return ids
"""


class RedisStore:
    """The one place rollout state is kept. Keys live under `prefix`."""

    def __init__(
        self, client: redis.Redis, *, prefix: str = "rollout-bot", lock_ttl_seconds: float = 30.0,
        lock_wait_seconds: float = 10.0, sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._r = client
        self._p = prefix
        self._ttl_ms = int(lock_ttl_seconds * 1000)
        self._wait = lock_wait_seconds
        self._sleep = sleep
        self._acquire = client.register_script(_ACQUIRE)
        self._confirm = client.register_script(_CONFIRM)
        self._regrant = client.register_script(_REGRANT)
        self._set_card = client.register_script(_SET_CARD)
        self._release = client.register_script(_RELEASE)
        self._write = client.register_script(_WRITE)
        self._changes = client.register_script(_CHANGES)

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> RedisStore:
        return cls(connect(url), **kwargs)

    @property
    def client(self) -> redis.Redis:
        return self._r

    def key(self, *parts: str) -> str:
        return ":".join((self._p, *parts))

    # -- locks ---------------------------------------------------------------------------

    def acquire(self, key: str, *, preempt: bool = False) -> Lease:
        """Take the lock on `key`. A preempting caller (rollback) takes it from any holder;
        the holder's later writes fail on the fencing token."""
        lock, fence, taken = (self.key("lock", key), self.key("fence", key),
                              self.key("preempted", key))
        deadline = time.monotonic() + self._wait
        delay = 0.005
        while True:
            token = self._guard(
                lambda: self._acquire(keys=[lock, fence, taken],
                                      args=[self._ttl_ms, int(preempt), self._ttl_ms * 20])
            )
            if token:
                return Lease(key=key, token=int(token))
            if time.monotonic() >= deadline:
                raise Busy(f"another operation on {key} is still running; try again shortly",
                           retry_after=2.0)
            self._sleep(delay)
            delay = min(delay * 2, 0.1)

    def confirm(self, lease: Lease) -> None:
        """Raise Superseded unless the lease is still ours; extends it when it is."""
        held = self._guard(
            lambda: self._confirm(keys=[self.key("lock", lease.key)],
                                  args=[lease.token, self._ttl_ms])
        )
        if not held:
            raise self._lost(lease, "")

    def _lost(self, lease: Lease, recorded: str) -> RolloutError:
        """Why a lease is no longer ours: a rollback took it, or it lapsed under load."""
        taken = self._guard(lambda: self._r.get(self.key("preempted", lease.key)))
        if taken is not None and int(taken) > lease.token:
            return Superseded(f"a rollback took over this target while this ran{recorded}")
        return LockLapsed(f"the lock on {lease.key} lapsed before this finished (Redis or the "
                          f"cluster was slow){recorded or '; nothing was changed'}",
                          retry_after=2.0)

    def regrant(self, lease: Lease, *, floor: int) -> Lease:
        """A new token above `floor` for a lease that is still ours, or Superseded."""
        token = self._guard(lambda: self._regrant(
            keys=[self.key("lock", lease.key), self.key("fence", lease.key)],
            args=[lease.token, floor, self._ttl_ms]))
        if not token:
            raise self._lost(lease, "")
        return Lease(key=lease.key, token=int(token))

    def release(self, lease: Lease) -> None:
        self._guard(lambda: self._release(keys=[self.key("lock", lease.key)], args=[lease.token]))

    # -- state ---------------------------------------------------------------------------

    def create(self, rollout: Rollout, *, lease: Lease, events: tuple[AuditEvent, ...]) -> Rollout:
        created = rollout.model_copy(update={"version": 1})
        self._run_write("create", created, expected_version=0, lease=lease, events=events)
        return created

    def save(
        self, rollout: Rollout, *, expected_version: int, lease: Lease,
        events: tuple[AuditEvent, ...],
    ) -> Rollout:
        saved = rollout.model_copy(update={"version": expected_version + 1})
        self._run_write("save", saved, expected_version=expected_version, lease=lease,
                        events=events)
        return saved

    def _run_write(
        self, mode: str, r: Rollout, *, expected_version: int, lease: Lease,
        events: tuple[AuditEvent, ...],
    ) -> None:
        keys = [
            self.key("rollout", r.id), self.key("lock", lease.key), self.key("active"),
            self.key("target", r.target.key), self.key("pool", r.target.namespace, r.canary),
            self.key("pool", r.target.namespace, r.canary, "rollouts"),
            self.key("audit", r.id), self.key("audit"), self.key("recent"),
            self.key("inflight"), self.key("due"), self.key("changes"),
            self.key("changes", "seq"),
        ]
        due = str(_ms(r.next_due_at)) if r.active and r.next_due_at else ""
        args: list[Any] = [
            mode, str(expected_version), r.model_dump_json(exclude={"card"}), str(lease.token),
            r.id,
            "1" if r.active else "0", str(r.version), r.created_at.timestamp(),
            ROLLOUT_AUDIT_MAXLEN, GLOBAL_AUDIT_MAXLEN, RECENT_KEEP, due, CHANGES_KEPT,
            *(e.model_dump_json() for e in events),
        ]
        result = self._guard(lambda: self._write(keys=keys, args=args))
        status = result[0]
        if status == "OK":
            return
        if status == "LOCK":
            raise self._lost(lease, "; this change was not recorded (a write that reached "
                                    "the cluster is found and recorded by the next command "
                                    "or tick)")
        if status == "ACTIVE":
            raise Conflict(f"{r.target.describe()} already has an active rollout ({result[1]})")
        if status == "EXISTS":
            raise Conflict(f"rollout id {r.id} is already taken")
        raise Superseded(f"rollout {r.id} changed while this operation ran "
                         f"(version {result[1]}, expected {expected_version})")

    def get(self, rollout_id: str) -> Rollout | None:
        raw, card = self._guard(
            lambda: self._r.hmget(self.key("rollout", rollout_id), ["data", "card"]))
        if not raw:
            return None
        rollout = Rollout.model_validate_json(raw)
        if not card:
            return rollout
        return rollout.model_copy(update={"card": Card.model_validate_json(card)})

    def set_card(self, rollout_id: str, card: Card) -> None:
        """Where the rollout's chat card lives. Kept beside the state, not in it: pointing at a
        message changes no decision, so it takes no version and outdates no button."""
        key = self.key("rollout", rollout_id)
        written = self._guard(lambda: self._set_card(keys=[key], args=[card.model_dump_json()]))
        if not written:
            raise NotFound(f"rollout {rollout_id} not found")

    def active_on(self, target_key: str) -> str | None:
        value = self._guard(lambda: self._r.get(self.key("target", target_key)))
        return str(value) if value else None

    def latest_for(self, namespace: str, canary: str) -> str | None:
        value = self._guard(lambda: self._r.get(self.key("pool", namespace, canary)))
        return str(value) if value else None

    def active_ids(self) -> list[str]:
        members = self._guard(lambda: self._r.smembers(self.key("active")))
        return sorted(str(m) for m in members)

    def due_until(self, until: datetime) -> dict[str, datetime]:
        """Active rollouts due at or before `until`, with their due times: one command,
        whatever the number of active rollouts."""
        pairs = cast(list[tuple[str, float]], self._guard(lambda: self._r.zrangebyscore(
            self.key("due"), "-inf", _ms(until), withscores=True)))
        return {str(rid): datetime.fromtimestamp(score / 1000, UTC) for rid, score in pairs}

    def index_due(self, due: dict[str, datetime]) -> None:
        """Add due times the index lacks (state written before it existed); a due time the
        save script wrote since is newer and stays."""
        if due:
            mapping = {rid: _ms(at) for rid, at in due.items()}
            self._guard(lambda: self._r.zadd(self.key("due"), mapping, nx=True))

    def changes_since(self, seen: int) -> Changes:
        """The rollouts written since write number `seen`, in one round trip. `complete` is
        False when more than CHANGES_KEPT writes passed since (or Redis lost its counter):
        the reader must reload all."""
        reply = self._guard(lambda: self._changes(
            keys=[self.key("changes"), self.key("changes", "seq")], args=[seen]))
        seq = int(reply[0])
        return Changes(seq=seq, ids=[str(i) for i in reply[1:]],
                       complete=0 <= seq - seen <= CHANGES_KEPT)

    def mark_in_flight(self, rollout_id: str) -> None:
        """A finished rollout is about to be written (a rollback of a completed one): until
        a save ends it, the scheduler's sweep looks at its target too, so a write that lands
        and is not saved (a crash) is still recorded."""
        self._guard(lambda: self._r.sadd(self.key("inflight"), rollout_id))

    def clear_in_flight(self, rollout_id: str) -> None:
        self._guard(lambda: self._r.srem(self.key("inflight"), rollout_id))

    def in_flight_ids(self) -> list[str]:
        members = self._guard(lambda: self._r.smembers(self.key("inflight")))
        return sorted(str(m) for m in members)

    def recent_ids(self, limit: int = 20) -> list[str]:
        ids = self._guard(lambda: self._r.zrevrange(self.key("recent"), 0, limit - 1))
        return [str(i) for i in ids]

    # -- audit ---------------------------------------------------------------------------

    def audit(self, rollout_id: str, *, limit: int = 200) -> list[AuditEvent]:
        entries = self._guard(lambda: self._r.xrange(self.key("audit", rollout_id), count=limit))
        return _events(entries)

    def global_audit(self, *, limit: int = 200) -> list[AuditEvent]:
        entries = self._guard(lambda: self._r.xrevrange(self.key("audit"), count=limit))
        return _events(entries)

    def record(self, event: AuditEvent) -> None:
        """Audit a decision that changed no rollout (a refusal, a denial)."""
        payload = {"event": event.model_dump_json()}
        self._guard(lambda: self._r.xadd(self.key("audit"), payload,  # type: ignore[arg-type]
                                         maxlen=GLOBAL_AUDIT_MAXLEN, approximate=True))
        if event.rollout_id:
            self._guard(lambda: self._r.xadd(self.key("audit", event.rollout_id),
                                             payload,  # type: ignore[arg-type]
                                             maxlen=ROLLOUT_AUDIT_MAXLEN, approximate=True))

    # -- idempotency and small caches ----------------------------------------------------

    def remember(self, key: str, value: str, *, ttl_seconds: int) -> str | None:
        """Store `value` under `key` unless something is there; returns what was there."""
        full = self.key("idem", key)
        stored = self._guard(lambda: self._r.set(full, value, nx=True, ex=ttl_seconds))
        if stored:
            return None
        existing = self._guard(lambda: self._r.get(full))
        return str(existing) if existing is not None else None

    def recall(self, key: str) -> str | None:
        """What `remember` stored under `key`, if anything."""
        value = self._guard(lambda: self._r.get(self.key("idem", key)))
        return str(value) if value is not None else None

    def cache_get(self, key: str) -> Any:
        raw = self._guard(lambda: self._r.get(self.key("cache", key)))
        return json.loads(raw) if raw else None

    def cache_put(self, key: str, value: Any, *, ttl_seconds: int) -> None:
        self._guard(lambda: self._r.set(self.key("cache", key), json.dumps(value),
                                        ex=ttl_seconds))

    def ping(self) -> None:
        self._guard(self._r.ping)

    @staticmethod
    def _guard(call: Callable[[], T]) -> T:
        with unavailable_as_error():
            return call()


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def _events(entries: Any) -> list[AuditEvent]:
    return [AuditEvent.model_validate_json(fields["event"]) for _id, fields in entries or ()]


@contextmanager
def unavailable_as_error() -> Iterator[None]:
    """Redis unreachable, as the error every Redis adapter raises: nothing was changed."""
    try:
        yield
    except (RedisConnectionError, RedisTimeoutError) as exc:
        raise StoreUnavailable(f"Redis is unavailable ({exc}); nothing was changed",
                               retry_after=5.0) from exc

"""Redis adapter: rollout state with compare-and-set, target locks with fencing tokens,
audit streams and idempotency keys.

Every multi-key write is one Lua script, so a lost connection leaves either the old state or
the new one, never half of each. A command costs three round trips: `open` (the request's
answer, or the lock with the state, the in-flight mark and the freeze read under it),
`confirm` before its cluster write, `close` (the save, the answer, the release). Connection
failures surface as StoreUnavailable; a create or close whose answer never came is decided by
a read back (`_settled`), which takes the lock back unless the write is found, so that it
cannot land later.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

import redis
from pydantic import ValidationError
from redis.exceptions import BusyLoadingError, NoPermissionError, OutOfMemoryError, ReadOnlyError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from rollout.adapters.change_feed import ChangeFeed
from rollout.domain.errors import (
    Busy,
    Conflict,
    LockLapsed,
    NotFound,
    RolloutError,
    StoreUnavailable,
    StoreUnknown,
    Superseded,
    Unreadable,
)
from rollout.domain.freeze import Freeze, freeze_of
from rollout.domain.models import AuditEvent, Card, Rollout
from rollout.ports import Changes, Lease, Memo, Opening, Saving
from rollout.redis_connect import connect

T = TypeVar("T")

#: Redis's refusals of a command it did not run: a replica (READONLY, a managed failover
#: behind one name), out of memory under `noeviction` (OOM: a script is refused at its first
#: write, so none is written in part), a user without the right (NOPERM), still loading its
#: data (LOADING). Told apart by the class redis-py gives each reply's code
REFUSALS = (ReadOnlyError, OutOfMemoryError, NoPermissionError, BusyLoadingError)

GLOBAL_AUDIT_MAXLEN = 10_000
ROLLOUT_AUDIT_MAXLEN = 2_000
RECENT_KEEP = 50
#: rollouts the change index remembers (each by its last write): a reader behind the
#: oldest write it let go of reloads everything
CHANGES_KEPT = 100_000

# A fencing token: the counter's next number, but never below the server's clock in
# microseconds. Redis can lose its latest writes (a failover with asynchronous replication, a
# restart without persistence), counter included; a counter that merely went on from where
# the loss left it would hand a second holder the token a first one still holds, and both
# their locks and their writes would pass for the same holder's. Floored by the clock, a
# token granted after the loss is above every token granted before it (the nodes' clocks
# kept within the failover's own duration of each other). An ACL user refused TIME gets the
# counter alone, as before, rather than every command refused. Formatted in Lua: a number
# that large is written "1.8e+15" by Lua's own conversion to a string.
GRANT = """
local function grant(fence)
  local now, floor = redis.pcall('TIME'), 0
  if type(now) == 'table' and now[2] then
    floor = tonumber(now[1]) * 1000000 + tonumber(now[2])
  end
  local token = redis.call('INCR', fence)
  if token < floor then
    token = floor
    redis.call('SET', fence, string.format('%.0f', floor))
  end
  return string.format('%.0f', token)
end
"""

# A preempting acquire (a rollback) also leaves its token in KEYS[3], so that a holder that
# lost its lock can tell "a rollback took over" from "the lock lapsed".
_ACQUIRE = GRANT + """
if ARGV[2] == '1' or redis.call('EXISTS', KEYS[1]) == 0 then
  local token = grant(KEYS[2])
  redis.call('SET', KEYS[1], token, 'PX', ARGV[1])
  if ARGV[2] == '1' then redis.call('SET', KEYS[3], token, 'PX', ARGV[3]) end
  return token
end
return false
"""

# A holder whose lock is intact may move the counter past a token Redis forgot (after a
# flush or a restart without persistence) and take a fresh, higher token, atomically.
_REGRANT = GRANT + """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return false end
local current = tonumber(redis.call('GET', KEYS[2]) or '0')
if current < tonumber(ARGV[2]) then redis.call('SET', KEYS[2], ARGV[2]) end
local token = grant(KEYS[2])
redis.call('SET', KEYS[1], token, 'PX', ARGV[3])
return token
"""

# KEYS: the rollout's hash. ARGV: the card, then the channel and ts of the card it replaces
# ('' for a first card). Returns 0 when the rollout is gone, else the card it now has: the
# one given, unless another process attached another first (then that one; a card held that
# cannot be read is replaced).
_SET_CARD = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local held = redis.call('HGET', KEYS[1], 'card')
if held then
  local ok, card = pcall(cjson.decode, held)
  if ok and type(card) == 'table' and type(card.channel) == 'string'
      and type(card.ts) == 'string' and (card.channel ~= ARGV[2] or card.ts ~= ARGV[3]) then
    return held
  end
end
redis.call('HSET', KEYS[1], 'card', ARGV[1])
return ARGV[1]
"""

# KEYS: lock, freeze. The freeze as it stands, read in the same round trip: a step-up
# decided before a freeze was recorded does not land after the freeze answered.
_CONFIRM = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {1, redis.call('GET', KEYS[2]) or ''}
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# The body of every state write, as a Lua function the create and close scripts share.
# KEYS: state, lock, active set, target-active, pool-latest, rollout audit,
#       global audit, recent zset, in-flight set (a saved version ends a write in flight),
#       due zset (active rollouts by next due time, ms), change zset (id by the sequence
#       number of its last write), change sequence, keep zset (completed rollouts whose
#       keep-period reminder is still to come, by the end of the keep period, ms), change
#       cut (the highest sequence number the change zset let go of)
# A write's sequence number is granted as a fencing token is (GRANT): after a loss of the
# latest writes, the next write's number is still above every number a reader saw.
# The state hash keeps, beside the data, the receipts of its last 8 writes (the
# writer's token and the version it wrote), so that a writer whose answer was lost can tell
# its write from a later one (_SETTLE).
# ARGV: mode(create|save), expected version, state json, token, id, active(1|0), new version,
#       created score, maxlen rollout audit, maxlen global, recent keep, due ms ('' for
#       none), changes kept, object key (the lock `open` takes for this rollout), the
#       channel the write is announced on ('' for none; `pcall`: a user without channel
#       rights still saves), the end of the keep period in ms ('' when no reminder is to
#       come), in how long the record goes (ms from this write, so that Redis's clock and
#       ours need not agree; '' while it stays: active, or no retention), then the
#       arguments of the script around it, then from ARGV[first] the events. A record that
#       goes takes its audit stream and, while it is the pool's latest, that marker with
#       it; the indexes that name it let it go by rank, and their readers pass over a
#       missing rollout.
_WRITE = GRANT + """
local function write(first)
  if redis.call('GET', KEYS[2]) ~= ARGV[4] then return {'LOCK'} end
  if ARGV[1] == 'create' then
    local owner = redis.call('GET', KEYS[4])
    if owner then return {'ACTIVE', owner} end
    local latest = redis.call('GET', KEYS[5])
    if latest and redis.call('SISMEMBER', KEYS[3], latest) == 1 then return {'POOL', latest} end
    if redis.call('EXISTS', KEYS[1]) == 1 then return {'EXISTS'} end
    redis.call('SET', KEYS[5], ARGV[5])
    redis.call('ZADD', KEYS[8], ARGV[8], ARGV[5])
    local extra = redis.call('ZCARD', KEYS[8]) - tonumber(ARGV[11])
    if extra > 0 then redis.call('ZREMRANGEBYRANK', KEYS[8], 0, extra - 1) end
  else
    local current = redis.call('HGET', KEYS[1], 'version')
    if current ~= ARGV[2] then return {'VERSION', current or ''} end
  end
  local receipts = {ARGV[4] .. ':' .. ARGV[7]}
  for receipt in string.gmatch(redis.call('HGET', KEYS[1], 'receipts') or '', '%S+') do
    if #receipts == 8 then break end
    receipts[#receipts + 1] = receipt
  end
  redis.call('HSET', KEYS[1], 'version', ARGV[7], 'data', ARGV[3], 'lock', ARGV[14],
             'receipts', table.concat(receipts, ' '))
  redis.call('SREM', KEYS[9], ARGV[5])
  if ARGV[6] == '1' then
    redis.call('SADD', KEYS[3], ARGV[5])
    redis.call('SET', KEYS[4], ARGV[5])
  else
    redis.call('SREM', KEYS[3], ARGV[5])
    if redis.call('GET', KEYS[4]) == ARGV[5] then redis.call('DEL', KEYS[4]) end
  end
  if ARGV[6] == '1' and ARGV[12] ~= '' then
    redis.call('ZADD', KEYS[10], ARGV[12], ARGV[5])
  else
    redis.call('ZREM', KEYS[10], ARGV[5])
  end
  if ARGV[16] ~= '' then
    redis.call('ZADD', KEYS[13], ARGV[16], ARGV[5])
  else
    redis.call('ZREM', KEYS[13], ARGV[5])
  end
  redis.call('ZADD', KEYS[11], grant(KEYS[12]), ARGV[5])
  local extra = redis.call('ZCARD', KEYS[11]) - tonumber(ARGV[13])
  if extra > 0 then
    local cut = redis.call('ZRANGE', KEYS[11], extra - 1, extra - 1, 'WITHSCORES')[2]
    redis.call('ZREMRANGEBYRANK', KEYS[11], 0, extra - 1)
    redis.call('SET', KEYS[14], cut)
  end
  for i = first, #ARGV do
    redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[9], '*', 'event', ARGV[i])
    redis.call('XADD', KEYS[7], 'MAXLEN', '~', ARGV[10], '*', 'event', ARGV[i])
  end
  if ARGV[17] ~= '' then
    redis.call('PEXPIRE', KEYS[1], ARGV[17])
    redis.call('PEXPIRE', KEYS[6], ARGV[17])
    if redis.call('GET', KEYS[5]) == ARGV[5] then redis.call('PEXPIRE', KEYS[5], ARGV[17]) end
  end
  if ARGV[15] ~= '' then redis.pcall('PUBLISH', ARGV[15], ARGV[5]) end
  return {'OK'}
end
"""
_WRITE_ARGS = 17  # the arguments before the events
_WRITE_KEYS = 14

_CREATE = _WRITE + f"return write({_WRITE_ARGS + 1})\n"

# A command's last round trip: the write, then (only if it was accepted) the request's
# memo, then the lock given back, whatever the write's answer, then a person's command says
# it is done. KEYS as _WRITE, then the memo key; ARGV as _WRITE, then memo answer ('' for
# none), memo ttl (s), the people's channel ('' for none), the command's name, events.
_CLOSE = _WRITE + f"""local result = write({_WRITE_ARGS + 5})
if result[1] == 'OK' and ARGV[{_WRITE_ARGS + 1}] ~= '' then
  redis.call('SET', KEYS[{_WRITE_KEYS + 1}], ARGV[{_WRITE_ARGS + 1}], 'NX', 'EX',
             ARGV[{_WRITE_ARGS + 2}])
end
if redis.call('GET', KEYS[2]) == ARGV[4] then redis.call('DEL', KEYS[2]) end
if ARGV[{_WRITE_ARGS + 3}] ~= '' then
  redis.pcall('PUBLISH', ARGV[{_WRITE_ARGS + 3}], '-' .. ARGV[{_WRITE_ARGS + 4}])
end
return result
"""

# The same without a write. KEYS: lock, memo key. ARGV: token, memo answer ('' for none),
# memo ttl (s), the people's channel ('' for none), the command's name.
_LEAVE = """
if ARGV[2] ~= '' then redis.call('SET', KEYS[2], ARGV[2], 'NX', 'EX', ARGV[3]) end
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
if ARGV[4] ~= '' then redis.pcall('PUBLISH', ARGV[4], '-' .. ARGV[5]) end
return 1
"""

# After a state write whose answer never came (it may have run, or may still run): whether
# it ran, by its receipt (a later write may have followed it: its release let the next
# command in); unless it ran, the lock is taken back if it is still ours, so that the write,
# if it has not run yet, never will (it checks the lock first). A write that ran keeps what
# it left: a close has given the lock back, a create holds it.
# KEYS: lock, state. ARGV: token, the version the write carries. Returns 1 when it ran.
_SETTLE = """
local receipt = ARGV[1] .. ':' .. ARGV[2]
for found in string.gmatch(redis.call('HGET', KEYS[2], 'receipts') or '', '%S+') do
  if found == receipt then return 1 end
end
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
"""

# The latest rollout of a namespace's canary, in one round trip. KEYS: pool-latest.
# ARGV: prefix. Returns {} or {state json, card json}.
_LATEST = """
local id = redis.call('GET', KEYS[1])
if not id then return {} end
local found = redis.call('HMGET', ARGV[1] .. ':rollout:' .. id, 'data', 'card')
return {found[1] or '', found[2] or ''}
"""

# A command's first round trip. The keys it reads follow from each other (the pool's latest
# rollout, then that rollout's lock), so the script builds them from the prefix: one Redis
# (or a Sentinel-managed primary), not a Redis Cluster.
# ARGV: prefix, how the subject is named (id|latest|key), then the id, namespace and canary,
#       or object key and id ('' for none), lock ttl ms, preempt (1|0), preempted-mark ttl
#       ms, memo key ('' for none), the people's channel a person's command says it went to
#       work on, as "+object:token" ('' for none; `pcall`, as a write's announcement).
# Returns {'DONE', answer} | {'NONE'} (nothing recorded under that name) | {'NOKEY', id}
# (a state written before it named its lock) | {'BUSY'} |
# {'OK', token, object key, id, state json, card json, in flight (1|0), freeze json}.
_OPEN = GRANT + """
local p = ARGV[1]
if ARGV[8] ~= '' then
  local answer = redis.call('GET', p .. ':idem:' .. ARGV[8])
  if answer then return {'DONE', answer} end
end
local id, object = ARGV[3], nil
if ARGV[2] == 'key' then
  object, id = ARGV[3], ARGV[4]
else
  if ARGV[2] == 'latest' then
    id = redis.call('GET', p .. ':pool:' .. ARGV[3] .. ':' .. ARGV[4])
    if not id then return {'NONE'} end
  end
  object = redis.call('HGET', p .. ':rollout:' .. id, 'lock')
  if not object then
    if redis.call('EXISTS', p .. ':rollout:' .. id) == 0 then return {'NONE'} end
    return {'NOKEY', id}
  end
end
local lock = p .. ':lock:' .. object
if ARGV[6] ~= '1' and redis.call('EXISTS', lock) == 1 then return {'BUSY'} end
local token = grant(p .. ':fence:' .. object)
redis.call('SET', lock, token, 'PX', ARGV[5])
if ARGV[6] == '1' then redis.call('SET', p .. ':preempted:' .. object, token, 'PX', ARGV[7]) end
if ARGV[9] ~= '' then redis.pcall('PUBLISH', ARGV[9], '+' .. object .. ':' .. token) end
local state, card, flying = '', '', 0
if id ~= '' then
  local found = redis.call('HMGET', p .. ':rollout:' .. id, 'data', 'card')
  state, card = found[1] or '', found[2] or ''
  flying = redis.call('SISMEMBER', p .. ':inflight', id)
end
local freeze = redis.call('GET', p .. ':freeze') or ''
return {'OK', token, object, id, state, card, tostring(flying), freeze}
"""

# A decision that changed no rollout (a refusal, a freeze's line on each card), in both its
# streams at once, so that the audit has it in both or in neither. The rollout's own stream
# lasts as long as the rollout's record (ROLLOUT_RETENTION): a line added after the record
# was given its time would otherwise keep the stream, alone, for ever.
# KEYS: global audit, the rollout's audit ('' for none), the rollout's state.
# ARGV: the event json, maxlen global, maxlen rollout audit.
_RECORD = """
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'event', ARGV[1])
if KEYS[2] ~= '' then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'event', ARGV[1])
  local left = redis.call('PTTL', KEYS[3])
  if left > 0 then redis.call('PEXPIRE', KEYS[2], left) end
end
return 1
"""

# A finished rollout written while the retention was off: the time to live its next write
# would have given it, unless written since (the version it was read at) or given one.
# KEYS: the state, its audit stream, the pool's marker; ARGV: id, version, ms.
_EXPIRE_LATE = """
if redis.call('HGET', KEYS[1], 'version') ~= ARGV[2] then return 0 end
if redis.call('PTTL', KEYS[1]) ~= -1 then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
if redis.call('GET', KEYS[3]) == ARGV[1] then redis.call('PEXPIRE', KEYS[3], ARGV[3]) end
return 1
"""

# KEYS: due zset, active set, then each rollout's state hash. ARGV: triples of rollout id,
# due time (ms) and the version it was read at. Adds the due time of each rollout still
# active, still at that version, and with none indexed: a rollout a save finished, paused or
# otherwise moved (and took out of the index) after the caller read it is not put back.
_INDEX_DUE = """
for i = 1, #ARGV, 3 do
  if redis.call('SISMEMBER', KEYS[2], ARGV[i]) == 1
      and redis.call('HGET', KEYS[2 + (i + 2) / 3], 'version') == ARGV[i + 2] then
    redis.call('ZADD', KEYS[1], 'NX', ARGV[i + 1], ARGV[i])
  end
end
return 0
"""

# KEYS: change zset, change sequence, change cut. ARGV: the sequence number the reader has
# seen. Returns the current sequence number, the cut, then the ids written after ARGV[1].
_CHANGES = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf')
table.insert(ids, 1, redis.call('GET', KEYS[3]) or '0')
table.insert(ids, 1, redis.call('GET', KEYS[2]) or '0')
return ids
"""


class RedisStore:
    """The one place rollout state is kept. Keys live under `prefix`."""

    def __init__(
        self, client: redis.Redis, *, prefix: str = "rollout-bot", lock_ttl_seconds: float = 30.0,
        lock_wait_seconds: float = 10.0, sleep: Callable[[float], None] = time.sleep,
        feed: ChangeFeed | None = None, retention_seconds: float = 0.0,
    ) -> None:
        self._r = client
        self._retention_ms = int(retention_seconds * 1000)  # 0: finished rollouts stay
        self._feed = feed  # announces this replica's writes to the leader
        self._p = prefix
        self._ttl_ms = int(lock_ttl_seconds * 1000)
        self._wait = lock_wait_seconds
        self._sleep = sleep
        self._acquire = client.register_script(_ACQUIRE)
        self._confirm = client.register_script(_CONFIRM)
        self._regrant = client.register_script(_REGRANT)
        self._set_card = client.register_script(_SET_CARD)
        self._release = client.register_script(_RELEASE)
        self._create = client.register_script(_CREATE)
        self._open = client.register_script(_OPEN)
        self._latest = client.register_script(_LATEST)
        self._close = client.register_script(_CLOSE)
        self._leave = client.register_script(_LEAVE)
        self._settle = client.register_script(_SETTLE)
        self._changes = client.register_script(_CHANGES)
        self._index_due = client.register_script(_INDEX_DUE)
        self._expire_late = client.register_script(_EXPIRE_LATE)
        self._record = client.register_script(_RECORD)

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> RedisStore:
        return cls(connect(url), **kwargs)

    @property
    def client(self) -> redis.Redis:
        return self._r

    @property
    def finished_expire(self) -> bool:
        """Whether finished rollouts' keys are given a time to live (ROLLOUT_RETENTION)."""
        return self._retention_ms > 0

    def key(self, *parts: str) -> str:
        return ":".join((self._p, *parts))

    # -- locks ---------------------------------------------------------------------------

    def acquire(self, key: str, *, preempt: bool = False) -> Lease:
        """Take the lock on `key` alone (commands take theirs with `open`). A preempting
        caller (rollback) takes it from any holder; the holder's later writes fail on the
        fencing token."""
        lock, fence, taken = (self.key("lock", key), self.key("fence", key),
                              self.key("preempted", key))
        token = self._waiting(key, lambda: self._acquire(
            keys=[lock, fence, taken], args=[self._ttl_ms, int(preempt), self._ttl_ms * 20]))
        return Lease(key=key, token=int(token))

    def open(
        self, *, key: str | None = None, rollout_id: str | None = None,
        latest: tuple[str, str] | None = None, preempt: bool = False, memo: str | None = None,
        person: bool = False,
    ) -> Opening:
        """The request's earlier answer, or the lock and what a command starts from, in one
        round trip (two, once, for a state written before it named its lock). A `person`'s
        command says on the feed's people channel that it went to work, and its close that
        it is done (the lease carries its name)."""
        if key is not None:
            subject = ["key", key, rollout_id or ""]
        elif rollout_id is not None:
            subject = ["id", rollout_id, ""]
        elif latest is not None:
            subject = ["latest", *latest]
        else:
            raise ValueError("name a rollout id, a namespace's latest rollout, or a key")
        people = self._feed.people_channel if person and self._feed is not None else ""
        reply = self._opening(subject, preempt=preempt, memo=memo, people=people)
        if reply[0] == "NOKEY":
            found = self.get(str(reply[1]))
            if found is None:
                return Opening(lease=None)
            reply = self._opening(["key", found.target.object_key, found.id],
                                  preempt=preempt, memo=memo, people=people)
        if reply[0] == "DONE":
            return Opening(lease=None, answer=str(reply[1]))
        if reply[0] != "OK":
            return Opening(lease=None)
        _, token, object_key, _id, state, card, flying, freeze = reply
        name = f"{object_key}:{token}" if people else ""
        lease = Lease(key=str(object_key), token=int(token), person=name)
        try:
            rollout = _rollout(state, card)
        except Unreadable:  # nothing is decided on it: the lock goes back at once (or,
            with suppress(StoreUnavailable):  # Redis gone meanwhile, lapses by itself)
                self.release(lease)
            raise
        return Opening(lease=lease, rollout=rollout, in_flight=flying == "1",
                       freeze=freeze_of(freeze, where=self.key("freeze")) if freeze else None)

    def _opening(self, subject: list[str], *, preempt: bool, memo: str | None,
                 people: str) -> list[Any]:
        """The open script, run again while the lock is taken until the wait is over."""
        args: list[str | int] = [self._p, *subject, self._ttl_ms, int(preempt),
                                 self._ttl_ms * 20, memo or "", people]

        def attempt() -> list[Any] | None:
            reply = cast(list[Any], self._open(keys=[], args=args))
            return None if reply[0] == "BUSY" else reply

        return self._waiting("/".join(subject[1:3]).strip("/"), attempt)

    def _waiting(self, key: str, attempt: Callable[[], T | None]) -> T:
        """Retry `attempt` (None: the lock is taken) with backoff; Busy once the wait is
        over."""
        deadline = time.monotonic() + self._wait
        delay = 0.005
        while True:
            got = self._guard(attempt)
            if got:
                return got
            if time.monotonic() >= deadline:
                raise Busy(f"another operation on {key} is still running; try again shortly",
                           retry_after=2.0)
            self._sleep(delay)
            delay = min(delay * 2, 0.1)

    def confirm(self, lease: Lease) -> Freeze | None:
        """Raise Superseded unless the lease is still ours; extends it when it is, and
        answers the freeze as it stands now."""
        held = self._guard(
            lambda: self._confirm(keys=[self.key("lock", lease.key), self.key("freeze")],
                                  args=[lease.token, self._ttl_ms])
        )
        if not held:
            raise self._lost(lease, "")
        freeze = cast(list[Any], held)[1]
        return freeze_of(freeze, where=self.key("freeze")) if freeze else None

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
        return replace(lease, token=int(token))

    def release(self, lease: Lease) -> None:
        self._guard(lambda: self._release(keys=[self.key("lock", lease.key)], args=[lease.token]))

    # -- state ---------------------------------------------------------------------------

    def create(self, rollout: Rollout, *, lease: Lease, events: tuple[AuditEvent, ...]) -> Rollout:
        """Record a rollout's first version now, keeping the lock (a start claims its
        target before the cluster names it)."""
        saving = Saving(rollout, 0, events)
        keys, args = self._writing(saving, lease)
        try:
            result = self._create(keys=keys, args=[*args, *_events(saving)])
        except REFUSALS as exc:
            raise refusal(exc) from exc
        except (RedisConnectionError, RedisTimeoutError) as exc:
            _refused(exc)
            self._settled(saving, lease, lost=exc)
            return saving.saved
        self._answer(result, saving, lease)
        return saving.saved

    def close(self, lease: Lease, *, saving: Saving | None = None,
              memo: Memo | None = None) -> None:
        """Write, keep the request's answer, give the lock back: one round trip. A write
        refused (the lock lost, the version moved on) still gives back a lock that is ours."""
        memo_key = self.key("idem", memo.key if memo else "")
        answer, ttl = (memo.answer, memo.ttl_seconds) if memo else ("", 0)
        done = [self._feed.people_channel if lease.person and self._feed is not None else "",
                lease.person]
        if saving is None:
            self._guard(lambda: self._leave(keys=[self.key("lock", lease.key), memo_key],
                                            args=[lease.token, answer, ttl, *done]))
            return
        keys, args = self._writing(saving, lease)
        try:
            result = self._close(keys=[*keys, memo_key], args=[*args, answer, ttl, *done,
                                                               *_events(saving)])
        except REFUSALS as exc:
            raise refusal(exc) from exc
        except (RedisConnectionError, RedisTimeoutError) as exc:
            _refused(exc)
            self._settled(saving, lease, lost=exc)
            return
        self._answer(result, saving, lease)

    def _settled(self, saving: Saving, lease: Lease, *,
                 lost: RedisConnectionError | RedisTimeoutError) -> None:
        """After a create or a close whose answer never came: returns when the save is
        recorded (its receipt is on the state, whatever wrote after it); raises
        StoreUnavailable when it is not and, fenced off, never will be; StoreUnknown when
        Redis does not answer long enough to tell. Decided by what is read back, never by
        the error."""
        try:
            ran = self._settle(keys=[self.key("lock", lease.key),
                                     self.key("rollout", saving.saved.id)],
                               args=[lease.token, saving.saved.version])
        except (RedisConnectionError, RedisTimeoutError, *REFUSALS) as exc:
            raise StoreUnknown(
                f"Redis did not answer whether this change was recorded ({lost}); `status` "
                "shows it once Redis answers", retry_after=5.0) from exc
        if ran == 1:
            return
        raise StoreUnavailable(f"Redis did not answer ({lost}) and the change was not "
                               "recorded; nothing was changed", retry_after=5.0) from lost

    def _writing(self, saving: Saving, lease: Lease) -> tuple[list[str], list[Any]]:
        """The keys and leading arguments of a state write (_WRITE)."""
        r = saving.saved
        keys = [
            self.key("rollout", r.id), self.key("lock", lease.key), self.key("active"),
            self.key("target", r.target.key), self.key("pool", r.target.namespace, r.canary),
            self.key("audit", r.id), self.key("audit"), self.key("recent"),
            self.key("inflight"), self.key("due"), self.key("changes"),
            self.key("changes", "seq"), self.key("kept"), self.key("changes", "cut"),
        ]
        due = str(_ms(r.next_due_at)) if r.active and r.next_due_at else ""
        keep = r.keep_reminder_at
        args: list[Any] = [
            "create" if saving.expected_version == 0 else "save", str(saving.expected_version),
            r.model_dump_json(exclude={"card"}), str(lease.token), r.id,
            "1" if r.active else "0", str(r.version), r.created_at.timestamp(),
            ROLLOUT_AUDIT_MAXLEN, GLOBAL_AUDIT_MAXLEN, RECENT_KEEP, due, CHANGES_KEPT,
            r.target.object_key, self._feed.announced_on() if self._feed is not None else "",
            str(_ms(keep)) if keep is not None else "", self._goes_in(r),
        ]
        assert len(keys) == _WRITE_KEYS and len(args) == _WRITE_ARGS
        return keys, args

    def _goes_in(self, r: Rollout) -> str:
        """In how long (ms from this write) the rollout's record is to go, or '' while it
        stays. At least a second: a record written late (a retire long after its keep
        period) still answers the command that wrote it."""
        done = r.done_at
        if not self._retention_ms or done is None:
            return ""
        return str(max(1000, _ms(done) + self._retention_ms - _ms(r.updated_at)))

    def _answer(self, result: list[Any], saving: Saving, lease: Lease) -> None:
        """Raise what a refused write means."""
        status, r = result[0], saving.rollout
        if status == "OK":
            return
        if status == "LOCK":
            raise self._lost(lease, "; this change was not recorded (a write that reached "
                                    "the cluster is found and recorded by the next command "
                                    "or tick)")
        if status == "ACTIVE":
            raise Conflict(f"{r.target.describe()} already has an active rollout ({result[1]})")
        if status == "POOL":
            raise Conflict(one_active_per_pool(r, result[1]))
        if status == "EXISTS":
            raise Conflict(f"rollout id {r.id} is already taken")
        raise Superseded(f"rollout {r.id} changed while this operation ran "
                         f"(version {result[1]}, expected {saving.expected_version})")

    def get(self, rollout_id: str) -> Rollout | None:
        raw, card = self._guard(
            lambda: self._r.hmget(self.key("rollout", rollout_id), ["data", "card"]))
        return _rollout(str(raw or ""), str(card or ""))

    def latest(self, namespace: str, canary: str) -> Rollout | None:
        """The latest rollout of `canary` in `namespace`, found and read in one round trip."""
        reply = cast(list[str], self._guard(lambda: self._latest(
            keys=[self.key("pool", namespace, canary)], args=[self._p])))
        return _rollout(*reply) if reply else None

    def set_card(self, rollout_id: str, card: Card, *, replacing: Card | None = None) -> Card:
        """Where the rollout's chat card lives. Kept beside the state, not in it: pointing at a
        message changes no decision, so it takes no version and outdates no button. Set only
        over the card it replaces (none: a first card), so that two processes that each
        posted one agree on one; the card the rollout has now."""
        key = self.key("rollout", rollout_id)
        was = ("", "") if replacing is None else (replacing.channel, replacing.ts)
        held = self._guard(lambda: self._set_card(
            keys=[key], args=[card.model_dump_json(), *was]))
        if not held:
            raise NotFound(f"rollout {rollout_id} not found")
        return Card.model_validate_json(str(held))

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

    def index_due(self, due: dict[str, tuple[datetime, int]]) -> None:
        """Add due times the index lacks (state written before it existed), each given with
        the version it was read at; a due time the save script wrote since is newer and
        stays, and a rollout saved since (finished, paused: its save took it out of the
        index) is not put back: one script, checking each is active and unchanged."""
        if due:
            ids = list(due)
            args = [part for rid in ids for part in (rid, _ms(due[rid][0]), due[rid][1])]
            keys = [self.key("due"), self.key("active"),
                    *(self.key("rollout", rid) for rid in ids)]
            self._guard(lambda: self._index_due(keys=keys, args=args))

    def kept_until(self, until: datetime) -> list[str]:
        """Completed rollouts whose keep period ended by `until` and whose approvers were not
        told yet: one command, whatever the number of rollouts kept."""
        ids = self._guard(lambda: self._r.zrangebyscore(self.key("kept"), "-inf", _ms(until)))
        return [str(i) for i in ids]

    def index_kept(self, ends: dict[str, datetime]) -> None:
        """Add keep-period ends the index lacks (state written before it existed); an end
        the save script wrote since, or its removal, is newer and stays."""
        if ends:
            mapping = {rid: _ms(at) for rid, at in ends.items()}
            self._guard(lambda: self._r.zadd(self.key("kept"), mapping, nx=True))

    def expire_finished(self, now: datetime) -> int:
        """Give each finished rollout that has no time to live the one its next write would
        give it (from `done_at`, at least a second): one written while the retention was 0,
        or before it was set, is never written again, and stayed for ever. Rollouts written
        since they were read, and states this version cannot read, are left alone. How many
        were given one; nothing without a retention. Active rollouts (no time to live
        either) are known from their index and never loaded: the states read are those of
        the candidates only, in one round trip."""
        if not self._retention_ms:
            return 0
        prefix = self.key("rollout", "")
        keys = self._guard(lambda: [str(k) for k in self._r.scan_iter(
            match=f"{prefix}*", count=1000, _type="HASH")])
        ttls = self._guard(lambda: self._ttls(keys))
        active = set(self.active_ids())
        timeless = [key for key, ttl in zip(keys, ttls, strict=True)
                    if ttl == -1 and key.removeprefix(prefix) not in active]
        given = 0
        for key, (raw, card) in zip(timeless, self._guard(lambda: self._states(timeless)),
                                    strict=True):
            try:
                r = _rollout(str(raw or ""), str(card or ""))
            except Unreadable:
                continue
            if r is None or r.done_at is None:
                continue
            ms = max(1000, _ms(r.done_at) + self._retention_ms - _ms(now))
            given += self._expire_one(key, r, ms)
        return given

    def _states(self, keys: list[str]) -> list[list[Any]]:
        pipe = self._r.pipeline(transaction=False)
        for key in keys:
            pipe.hmget(key, ["data", "card"])
        return cast(list[list[Any]], pipe.execute())

    def _expire_one(self, key: str, r: Rollout, ms: int) -> int:
        keys = [key, self.key("audit", r.id), self.key("pool", r.target.namespace, r.canary)]
        return int(self._guard(lambda: self._expire_late(keys=keys,
                                                         args=[r.id, r.version, ms])))

    def _ttls(self, keys: list[str]) -> list[int]:
        pipe = self._r.pipeline(transaction=False)
        for key in keys:
            pipe.pttl(key)
        return [int(t) for t in pipe.execute()]

    def unindex_kept(self, rollout_ids: list[str]) -> None:
        """Drop rollouts with no keep-period reminder to come from the keep index."""
        if rollout_ids:
            self._guard(lambda: self._r.zrem(self.key("kept"), *rollout_ids))

    def changes_since(self, seen: int) -> Changes:
        """The rollouts written since write number `seen`, in one round trip. `complete` is
        False when the index let go of a write after `seen`, or when Redis is behind `seen`
        (it lost the writes the reader saw, and nothing came since): the reader must reload
        all."""
        reply = self._guard(lambda: self._changes(
            keys=[self.key("changes"), self.key("changes", "seq"), self.key("changes", "cut")],
            args=[seen]))
        seq, cut = int(reply[0]), int(float(reply[1]))  # a score may read as 1.8e+15
        return Changes(seq=seq, ids=[str(i) for i in reply[2:]],
                       complete=cut <= seen <= seq)

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
        """The rollout's last `limit` events, oldest first."""
        entries = self._guard(lambda: self._r.xrevrange(self.key("audit", rollout_id),
                                                        count=limit))
        return _stream(entries)[::-1]

    def global_audit(self, *, limit: int = 200) -> list[AuditEvent]:
        entries = self._guard(lambda: self._r.xrevrange(self.key("audit"), count=limit))
        return _stream(entries)

    def record(self, event: AuditEvent) -> None:
        """Audit a decision that changed no rollout (a refusal, a denial)."""
        rid = event.rollout_id
        keys = [self.key("audit"), self.key("audit", rid) if rid else "",
                self.key("rollout", rid) if rid else ""]
        self._guard(lambda: self._record(keys=keys, args=[
            event.model_dump_json(), GLOBAL_AUDIT_MAXLEN, ROLLOUT_AUDIT_MAXLEN]))

    # -- idempotency and small caches ----------------------------------------------------

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


def one_active_per_pool(r: Rollout, active: str) -> str:
    """Why a start is refused while its canary has an active rollout on another rule."""
    return (f"{r.canary} already has an active rollout ({active}) in {r.target.namespace}: a "
            "pool (or adapter) is rolled out on one rule at a time, so that a command by its "
            "name reaches that rollout; finish or roll it back first (`status` says where)")


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def _rollout(state: str, card: str) -> Rollout | None:
    """A stored state with the card kept beside it; None when there is none. Unreadable
    when this version cannot parse it (a newer version's state in a rolling upgrade)."""
    if not state:
        return None
    try:
        rollout = Rollout.model_validate_json(state)
        if not card:
            return rollout
        return rollout.model_copy(update={"card": Card.model_validate_json(card)})
    except ValidationError as exc:
        rid = _stored_id(state)
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        where = field or "the state"
        raise Unreadable(
            f"the recorded state of rollout {rid or '(unnamed)'} cannot be read by this version "
            f"of the bot ({where}: {first['msg']}); it was written by a newer version, or "
            "damaged. Nothing was changed: run the version that wrote it, or roll back with "
            "the CLI of that version", rollout_id=rid, field=field) from exc


def _stored_id(state: str) -> str:
    """The id a stored state names, if it is JSON with one; else empty."""
    try:
        found = json.loads(state).get("id")
    except (ValueError, AttributeError):
        return ""
    return found if isinstance(found, str) else ""


def _events(saving: Saving) -> list[str]:
    return [e.model_dump_json() for e in saving.events]


def _stream(entries: Any) -> list[AuditEvent]:
    return [AuditEvent.model_validate_json(fields["event"]) for _id, fields in entries or ()]


def _refused(exc: RedisConnectionError | RedisTimeoutError) -> None:
    """A write whose first trouble was a refused connection never left this process: not
    recorded, for sure, though the read-back would be refused too. Raises StoreUnavailable
    then (the lock lapses by itself). A refusal met while reconnecting after the write was
    sent (its answer lost first) is not one. Decided by the socket's error (ECONNREFUSED)
    at the root of the chain, not by the message."""
    root: BaseException = exc
    while (earlier := root.__cause__ or root.__context__) is not None:
        root = earlier
    if isinstance(root, ConnectionRefusedError):
        raise StoreUnavailable(f"Redis refused the connection ({exc}) and the change was not "
                               "recorded; nothing was changed", retry_after=5.0) from exc


def refusal(exc: Exception) -> StoreUnavailable:
    """A command Redis refused and did not run (`REFUSALS`): nothing was recorded."""
    return StoreUnavailable(f"Redis refused the command ({type(exc).__name__}: {exc}); nothing "
                            "was changed", retry_after=5.0)


@contextmanager
def unavailable_as_error() -> Iterator[None]:
    """Redis unreachable, or refusing commands, as the error every Redis adapter raises:
    nothing was changed."""
    try:
        yield
    except REFUSALS as exc:
        raise refusal(exc) from exc
    except (RedisConnectionError, RedisTimeoutError) as exc:
        raise StoreUnavailable(f"Redis is unavailable ({exc}); nothing was changed",
                               retry_after=5.0) from exc

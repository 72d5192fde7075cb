"""Redis adapter for the install-wide freeze: one key beside the rollout state.

The key lives under the same prefix as `RedisStore`'s (`<prefix>:freeze`), so that one
Redis serves several installs apart, and so that `RedisStore.open` reads it in a command's
first round trip (a step-up asks no extra read). Setting is SET NX and lifting a script that
reads and deletes at once (GETDEL would need Redis 6.2): two approvers racing get one answer
each, never a freeze recorded twice or lifted twice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import redis

from rollout.adapters.store import unavailable_as_error
from rollout.domain.errors import Conflict
from rollout.domain.freeze import Freeze, freeze_of

T = TypeVar("T")

#: GETDEL as a script, for every Redis the bot supports (GETDEL came in 6.2)
_LIFT = """
local found = redis.call('GET', KEYS[1])
if found then redis.call('DEL', KEYS[1]) end
return found
"""


class FreezeStore:
    def __init__(self, client: redis.Redis, *, prefix: str = "rollout-bot") -> None:
        self._r = client
        self._key = f"{prefix}:freeze"
        self._lift = client.register_script(_LIFT)

    def get(self) -> Freeze | None:
        raw = _guard(lambda: self._r.get(self._key))
        return freeze_of(raw, where=self._key) if raw else None

    def put(self, freeze: Freeze) -> Freeze:
        """Record `freeze` unless one is there already (Conflict, naming it)."""
        stored = _guard(lambda: self._r.set(self._key, freeze.model_dump_json(), nx=True))
        if stored:
            return freeze
        current = self.get()
        raise Conflict(f"rollouts are already {current.describe()}" if current
                       else "another freeze was being recorded; try again")

    def lift(self) -> Freeze:
        """Remove the freeze and return it (for the audit); Conflict when there is none."""
        raw = _guard(lambda: self._lift(keys=[self._key]))
        if not raw:
            raise Conflict("rollouts are not frozen")
        return freeze_of(raw, where=self._key)


def _guard(call: Callable[[], T]) -> T:
    with unavailable_as_error():
        return call()


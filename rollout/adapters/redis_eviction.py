"""Whether the Redis the bot keeps its state in may evict the bot's keys for memory.

A key evicted is a lock or the leader lease lapsed early and, under an `allkeys` policy, a
rollout's state or its audit gone. The bot stays safe through both (fencing tokens, the
route's annotations), but rollouts then pause for a person and history is lost: the operator
should hear of it at start, not after an incident. Managed Redis services often ship a
`volatile-lru` or `allkeys-lru` default.
"""

from __future__ import annotations

import logging

import redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)


def eviction_warning(client: redis.Redis, *, finished_expire: bool = False) -> str | None:
    """A sentence for the operator when Redis has a memory limit and a policy that evicts;
    None when it cannot evict, or when it does not say (INFO refused by an ACL, or Redis
    not answering: the commands that follow will tell). `finished_expire`: finished
    rollouts' keys carry a time to live (ROLLOUT_RETENTION), so `volatile-*` may take them."""
    try:
        memory = client.info("memory")
    except RedisError as exc:
        log.debug("could not read Redis's eviction policy: %s", type(exc).__name__)
        return None
    limit = int(memory.get("maxmemory") or 0)
    policy = str(memory.get("maxmemory_policy") or "noeviction")
    if limit == 0 or policy == "noeviction":
        return None
    if policy.startswith("volatile"):
        what = "the keys it gives a time to live (locks, the leader lease, request answers" + (
            ", and, under ROLLOUT_RETENTION, finished rollouts' states and history, completed "
            "ones still offering rollback included)" if finished_expire else ")")
    else:
        what = "any of its keys (locks, the leader lease, rollout states, the audit)"
    return (f"Redis may evict {what} once it holds its maxmemory of {limit} bytes "
            f"(maxmemory-policy {policy}): set maxmemory-policy noeviction, under which a "
            "full Redis refuses writes and the bot answers that nothing was changed")

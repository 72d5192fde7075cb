"""Who may do what, from where: a pure policy, and a cached resolver of Slack user groups.

The policy is data and one function, so every rule has a unit test. Group membership comes
from Slack's `usergroups.users.list`, cached with a TTL in the store (behind the small Cache
protocol: handlers never import Redis) so repeated checks stay fast. The two-person rule and
the count of distinct approvers are the domain's, not this module's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from handlers.commands import Verb
from rollout.domain.errors import TemporaryFailure

log = logging.getLogger(__name__)

ANYONE = "*"


class Cache(Protocol):
    """A small TTL cache; the Redis store implements it."""

    def cache_get(self, key: str) -> Any: ...

    def cache_put(self, key: str, value: Any, *, ttl_seconds: int) -> None: ...


class Need(StrEnum):
    NOTHING = "nothing"  # read-only: anyone, anywhere
    CHANNEL = "channel"  # anyone in an allowed channel
    APPROVER = "approver"  # an approver in an allowed channel


NEEDS: dict[Verb, Need] = {
    Verb.START: Need.CHANNEL,
    Verb.PAUSE: Need.CHANNEL,  # a safety action: anyone may stop the line
    Verb.ROLLBACK: Need.CHANNEL,  # likewise
    Verb.APPROVE: Need.APPROVER,
    Verb.APPROVE_PLAN: Need.APPROVER,
    Verb.PROMOTE: Need.APPROVER,
    Verb.RETIRE: Need.APPROVER,  # ends the possibility of a rollback
    Verb.RESUME: Need.APPROVER,
    Verb.STATUS: Need.NOTHING,
    Verb.LIST: Need.NOTHING,
    Verb.HISTORY: Need.NOTHING,
    Verb.HELP: Need.NOTHING,
    Verb.FREEZE: Need.APPROVER,  # holds every rollout of the install
    Verb.UNFREEZE: Need.APPROVER,
}


@dataclass(frozen=True)
class Policy:
    approvers: frozenset[str] = frozenset()
    approver_groups: tuple[str, ...] = ()
    allowed_channels: frozenset[str] = frozenset()

    @classmethod
    def of(cls, *, approvers: Iterable[str] = (), approver_groups: Iterable[str] = (),
           allowed_channels: Iterable[str] = ()) -> Policy:
        return cls(frozenset(approvers), tuple(approver_groups), frozenset(allowed_channels))

    def channel_allowed(self, channel_id: str | None) -> bool:
        return not self.allowed_channels or channel_id in self.allowed_channels

    def approver_by_id(self, user_id: str) -> bool:
        return ANYONE in self.approvers or user_id in self.approvers


def decide(
    policy: Policy, verb: Verb, *, user_id: str, channel_id: str | None,
    groups_with_user: Callable[[], set[str]] = set,
    group_label: Callable[[str], str] = lambda group: f"<!subteam^{group}>",
) -> str | None:
    """None when allowed, else the reason for the denial. `groups_with_user` is called only
    when the decision depends on group membership; a denial to a non-approver names who can
    approve (`group_label` says how a group reads)."""
    need = NEEDS[verb]
    if need is Need.NOTHING:
        return None
    if not policy.channel_allowed(channel_id):
        return (f"`{verb.value}` is not allowed in this channel; use one of "
                + ", ".join(f"<#{c}>" for c in sorted(policy.allowed_channels)))
    if need is Need.CHANNEL or policy.approver_by_id(user_id):
        return None
    if policy.approver_groups and groups_with_user() & set(policy.approver_groups):
        return None
    return (f"only approvers may `{verb.value}` a rollout and you are not one of them; "
            f"{who_approves(policy, group_label)}")


def who_approves(policy: Policy, group_label: Callable[[str], str],
                 exclude: str | None = None) -> str:
    """`ask <@U1>, <@U2> or a member of <!subteam^S1>`: whom a refused person can turn to
    (never themselves: `exclude`)."""
    names = [f"<@{u}>" for u in sorted(policy.approvers) if u not in (ANYONE, exclude)]
    names += [f"a member of {group_label(g)}" for g in policy.approver_groups]
    if not names:
        return "no approvers are configured (ROLLOUT_APPROVERS, ROLLOUT_APPROVER_GROUPS)"
    if len(names) == 1:
        return f"ask {names[0]}"
    return f"ask {', '.join(names[:-1])} or {names[-1]}"


class GroupMembers:
    """Members of Slack user groups, cached in `cache` for `ttl_seconds`."""

    def __init__(self, *, fetch: Callable[[str], list[str]], cache: Cache | None,
                 ttl_seconds: int, prefix: str = "usergroup") -> None:
        self._fetch = fetch
        self._cache = cache
        self._ttl = max(1, ttl_seconds)
        self._prefix = prefix

    def members(self, group_id: str) -> set[str]:
        key = f"{self._prefix}:{group_id}"
        cached = self._cached(key)
        if cached is not None:
            return set(cached)
        try:
            users = list(self._fetch(group_id))
        except Exception as exc:  # Slack down or rate limited: deny now, not forever
            raise TemporaryFailure(
                f"could not check membership of user group {group_id} with Slack ({exc})",
                retry_after=10.0,
            ) from exc
        self._store(key, users)
        return set(users)

    def groups_with(self, user_id: str, groups: Iterable[str]) -> set[str]:
        return {g for g in groups if user_id in self.members(g)}

    def _cached(self, key: str) -> list[str] | None:
        if self._cache is None:
            return None
        try:
            value = self._cache.cache_get(key)
        except Exception:  # a cache miss is not a reason to refuse
            log.warning("user group cache read failed", exc_info=True)
            return None
        return [str(u) for u in value] if isinstance(value, list) else None

    def _store(self, key: str, users: list[str]) -> None:
        if self._cache is None:
            return
        try:
            self._cache.cache_put(key, users, ttl_seconds=self._ttl)
        except Exception:
            log.warning("user group cache write failed", exc_info=True)


class Authorizer:
    """The policy plus group resolution: what the listeners ask."""

    def __init__(self, policy: Policy, groups: GroupMembers | None = None) -> None:
        self.policy = policy
        self._groups = groups

    def denial(self, verb: Verb, *, user_id: str, channel_id: str | None) -> str | None:
        def groups_with_user() -> set[str]:
            if self._groups is None:
                return set()
            return self._groups.groups_with(user_id, self.policy.approver_groups)

        return decide(self.policy, verb, user_id=user_id, channel_id=channel_id,
                      groups_with_user=groups_with_user, group_label=self._group_label)

    def who_approves(self, exclude: str | None = None) -> str:
        """`ask <@U1> or a member of <!subteam^S1> (<@U2>, <@U3>)`, for any refusal that
        leaves the person needing someone else (`exclude`: that person)."""
        def label(group_id: str) -> str:
            return self._group_label(group_id, exclude)

        return who_approves(self.policy, label, exclude)

    def _group_label(self, group_id: str, exclude: str | None = None) -> str:
        """The group and, where Slack answers, its members by name."""
        label = f"<!subteam^{group_id}>"
        if self._groups is None:
            return label
        try:
            members = sorted(self._groups.members(group_id) - {exclude})
        except TemporaryFailure:
            return label
        return f"{label} ({', '.join(f'<@{m}>' for m in members)})" if members else label

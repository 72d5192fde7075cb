"""Who may do what, from where; and the cached user-group resolver."""

from __future__ import annotations

from typing import Any

import pytest

from handlers.authorization import Authorizer, GroupMembers, Policy, decide
from handlers.commands import Verb
from rollout.domain.errors import TemporaryFailure

POLICY = Policy.of(approvers=["U0BOB"], approver_groups=["S0REV"],
                   allowed_channels=["C0ROLLOUT"])


class FakeCache:
    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.ttls: dict[str, int] = {}

    def cache_get(self, key: str) -> Any:
        return self.data.get(key)

    def cache_put(self, key: str, value: Any, *, ttl_seconds: int) -> None:
        self.data[key], self.ttls[key] = value, ttl_seconds


def _decide(verb: Verb, user: str, channel: str | None = "C0ROLLOUT",
            groups: set[str] | None = None, policy: Policy = POLICY) -> str | None:
    return decide(policy, verb, user_id=user, channel_id=channel,
                  groups_with_user=lambda: groups or set())


@pytest.mark.parametrize("verb", [Verb.STATUS, Verb.LIST, Verb.HISTORY, Verb.HELP])
def test_reading_is_open_to_anyone_anywhere(verb: Verb) -> None:
    assert _decide(verb, "U0DAVE", channel="C0ELSEWHERE") is None


@pytest.mark.parametrize("verb", [Verb.START, Verb.PAUSE, Verb.ROLLBACK])
def test_start_and_safety_actions_need_only_an_allowed_channel(verb: Verb) -> None:
    assert _decide(verb, "U0DAVE") is None
    denial = _decide(verb, "U0DAVE", channel="C0OTHER")
    assert denial is not None and "not allowed in this channel" in denial
    assert "<#C0ROLLOUT>" in denial


@pytest.mark.parametrize("verb", [Verb.APPROVE, Verb.PROMOTE, Verb.RESUME, Verb.RETIRE,
                                  Verb.FREEZE, Verb.UNFREEZE])
def test_approve_promote_resume_and_retire_need_an_approver(verb: Verb) -> None:
    assert _decide(verb, "U0BOB") is None
    assert _decide(verb, "U0CAROL", groups={"S0REV"}) is None
    denial = _decide(verb, "U0DAVE")
    assert denial is not None and "only approvers" in denial
    assert _decide(verb, "U0BOB", channel="C0OTHER") is not None


def test_star_means_anyone_approves_and_no_channels_means_any_channel() -> None:
    open_policy = Policy.of(approvers=["*"])
    assert _decide(Verb.APPROVE, "U0DAVE", channel="C0ANY", policy=open_policy) is None


def test_groups_are_resolved_only_when_needed() -> None:
    calls: list[str] = []

    def groups() -> set[str]:
        calls.append("x")
        return set()

    decide(POLICY, Verb.APPROVE, user_id="U0BOB", channel_id="C0ROLLOUT", groups_with_user=groups)
    decide(POLICY, Verb.START, user_id="U0DAVE", channel_id="C0ROLLOUT", groups_with_user=groups)
    assert calls == []
    decide(POLICY, Verb.APPROVE, user_id="U0DAVE", channel_id="C0ROLLOUT", groups_with_user=groups)
    assert calls == ["x"]


def test_group_members_are_cached_with_the_ttl() -> None:
    fetched: list[str] = []
    cache = FakeCache()

    def fetch(group: str) -> list[str]:
        fetched.append(group)
        return ["U0CAROL"]

    members = GroupMembers(fetch=fetch, cache=cache, ttl_seconds=300)
    authorizer = Authorizer(POLICY, members)
    assert authorizer.denial(Verb.APPROVE, user_id="U0CAROL", channel_id="C0ROLLOUT") is None
    assert authorizer.denial(Verb.APPROVE, user_id="U0CAROL", channel_id="C0ROLLOUT") is None
    assert authorizer.denial(Verb.APPROVE, user_id="U0DAVE", channel_id="C0ROLLOUT")
    assert fetched == ["S0REV"]
    assert cache.ttls == {"usergroup:S0REV": 300}


def test_a_broken_cache_falls_back_to_slack() -> None:
    class Broken:
        def cache_get(self, key: str) -> Any:
            raise ConnectionError("redis down")

        def cache_put(self, key: str, value: Any, *, ttl_seconds: int) -> None:
            raise ConnectionError("redis down")

    members = GroupMembers(fetch=lambda g: ["U0CAROL"], cache=Broken(), ttl_seconds=60)
    assert members.members("S0REV") == {"U0CAROL"}


def test_slack_failing_to_list_a_group_is_temporary() -> None:
    def fetch(group: str) -> list[str]:
        raise RuntimeError("ratelimited")

    authorizer = Authorizer(POLICY, GroupMembers(fetch=fetch, cache=None, ttl_seconds=60))
    with pytest.raises(TemporaryFailure):
        authorizer.denial(Verb.APPROVE, user_id="U0DAVE", channel_id="C0ROLLOUT")


def test_a_refused_non_approver_is_told_who_can_approve() -> None:
    denial = _decide(Verb.APPROVE, "U0DAVE")
    assert denial == ("only approvers may `approve` a rollout and you are not one of them; "
                      "ask <@U0BOB> or a member of <!subteam^S0REV>")
    only_group = Policy.of(approver_groups=["S0REV"])
    assert str(_decide(Verb.RESUME, "U0DAVE", policy=only_group)).endswith(
        "ask a member of <!subteam^S0REV>")


def test_the_authorizer_names_the_groups_members_where_slack_answers() -> None:
    members = GroupMembers(fetch=lambda _g: ["U0CAROL", "U0BOB"], cache=None, ttl_seconds=60)
    denial = Authorizer(Policy.of(approver_groups=["S0REV"]), members).denial(
        Verb.APPROVE, user_id="U0DAVE", channel_id="C0ROLLOUT")
    assert str(denial).endswith("ask a member of <!subteam^S0REV> (<@U0BOB>, <@U0CAROL>)")


def test_who_approves_never_names_the_person_refused() -> None:
    members = GroupMembers(fetch=lambda _g: ["U0ALICE", "U0CAROL"], cache=None, ttl_seconds=60)
    authorizer = Authorizer(Policy.of(approvers=["U0ALICE", "U0BOB"], approver_groups=["S0R"]),
                            members)
    assert authorizer.who_approves(exclude="U0ALICE") == \
        "ask <@U0BOB> or a member of <!subteam^S0R> (<@U0CAROL>)"

"""Authorization in exact words: whom a refusal names, where a verb may be used, and how a
Slack outage while listing a user group is answered."""

from __future__ import annotations

from typing import Any

import pytest

from handlers.authorization import Authorizer, GroupMembers, Policy, decide, who_approves
from handlers.commands import Verb
from rollout.domain.errors import TemporaryFailure


class _Cache:
    def __init__(self) -> None:
        self.ttls: dict[str, int] = {}

    def cache_get(self, key: str) -> Any:
        return None

    def cache_put(self, key: str, value: Any, *, ttl_seconds: int) -> None:
        self.ttls[key] = ttl_seconds


def _label(group: str) -> str:
    return f"<!subteam^{group}>"


def test_a_policy_built_with_channels_refuses_other_channels() -> None:
    policy = Policy.of(approvers=["U0BOB"], allowed_channels=["C0ROLLOUT"])
    assert not policy.channel_allowed("C0OTHER")
    assert decide(policy, Verb.START, user_id="U0BOB", channel_id="C0OTHER") is not None


def test_a_channel_refusal_lists_every_allowed_channel() -> None:
    policy = Policy.of(allowed_channels=["C0B", "C0A"])
    assert decide(policy, Verb.PAUSE, user_id="U0DAVE", channel_id="C0X") == (
        "`pause` is not allowed in this channel; use one of <#C0A>, <#C0B>")


def test_with_no_approvers_configured_the_refusal_names_the_settings() -> None:
    denial = decide(Policy.of(), Verb.APPROVE, user_id="U0DAVE", channel_id="C0ANY")
    assert denial == ("only approvers may `approve` a rollout and you are not one of them; "
                      "no approvers are configured (ROLLOUT_APPROVERS, ROLLOUT_APPROVER_GROUPS)")


def test_three_approvers_are_listed_with_commas_and_a_final_or() -> None:
    policy = Policy.of(approvers=["U0C", "U0A", "U0B"])
    assert who_approves(policy, _label) == "ask <@U0A>, <@U0B> or <@U0C>"


def test_an_approver_named_by_id_is_allowed_through_the_authorizer() -> None:
    authorizer = Authorizer(Policy.of(approvers=["U0BOB"], allowed_channels=["C0ROLLOUT"]))
    assert authorizer.denial(Verb.APPROVE, user_id="U0BOB", channel_id="C0ROLLOUT") is None


def test_a_group_with_no_one_else_in_it_is_named_without_an_empty_list() -> None:
    members = GroupMembers(fetch=lambda _g: ["U0ALICE"], cache=None, ttl_seconds=60)
    authorizer = Authorizer(Policy.of(approver_groups=["S0REV"]), members)
    assert authorizer.who_approves(exclude="U0ALICE") == "ask a member of <!subteam^S0REV>"


def test_slack_failing_to_list_a_group_says_which_group_and_when_to_retry() -> None:
    def fetch(group: str) -> list[str]:
        raise RuntimeError("ratelimited")

    members = GroupMembers(fetch=fetch, cache=None, ttl_seconds=60)
    with pytest.raises(TemporaryFailure) as err:
        members.members("S0REV")
    assert str(err.value) == ("could not check membership of user group S0REV with Slack "
                              "(ratelimited)")
    assert err.value.retry_after == 10.0


@pytest.mark.parametrize(("ttl", "stored"), [(1, 1), (0, 1)])
def test_group_members_are_cached_for_the_ttl_given_at_least_one_second(
        ttl: int, stored: int) -> None:
    cache = _Cache()
    GroupMembers(fetch=lambda _g: ["U0CAROL"], cache=cache, ttl_seconds=ttl).members("S0REV")
    assert cache.ttls == {"usergroup:S0REV": stored}

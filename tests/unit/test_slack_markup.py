"""Mentions, Slack dates and the idempotency keys of clicks and commands: pure functions."""

from __future__ import annotations

from datetime import UTC, datetime

from handlers.mentions import approvers_mention, slack_date
from handlers.slack_listeners import click_request_id, command_request_id


def test_approvers_are_mentioned_as_groups_and_users_but_never_as_anyone() -> None:
    text = approvers_mention(approvers=["U0BOB", "*"], groups=["S0REVIEWERS"])
    assert text == "<!subteam^S0REVIEWERS> <@U0BOB>"
    assert approvers_mention(approvers=["*"], groups=[]) == ""


def test_slack_dates_read_locally_and_fall_back_to_utc() -> None:
    at = datetime(2026, 1, 1, 12, 30, tzinfo=UTC)
    assert slack_date(at) == (f"<!date^{int(at.timestamp())}^{{date_short_pretty}} {{time}}"
                              "|2026-01-01 12:30 UTC>")


def _body(**extra: object) -> dict[str, object]:
    body: dict[str, object] = {"user": {"id": "U0BOB"},
                               "container": {"message_ts": "1.000100"}}
    body.update(extra)
    return body


def test_a_click_key_is_stable_for_a_redelivery_and_distinct_for_another_click() -> None:
    action = {"action_id": "rollout_pause", "value": '{"r":"r1","s":0,"e":0}'}
    first = click_request_id(_body(), action)
    assert first == click_request_id(_body(), dict(action))
    assert "None" not in first
    after_resume = {**action, "value": '{"r":"r1","s":0,"e":2}'}
    assert click_request_id(_body(), after_resume) != first
    assert click_request_id(_body(user={"id": "U0CAROL"}), action) != first
    stamped = {**action, "action_ts": "1700000000.1"}
    assert click_request_id(_body(trigger_id="t1"), stamped) != \
        click_request_id(_body(trigger_id="t2"), stamped)


def test_a_command_without_a_trigger_id_has_no_key() -> None:
    assert command_request_id({"trigger_id": "123.456"}) == "slack:command:123.456"
    assert command_request_id({}) is None

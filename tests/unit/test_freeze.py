"""The freeze rule: approvers only; starts and step-ups held; rollback, pause, resume go on."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from rollout.domain.errors import Conflict, InvalidInput, Refused, Unauthorized
from rollout.domain.freeze import (
    MAX_REASON,
    Action,
    Freeze,
    blocks,
    check_blocked,
    freeze,
    freeze_of,
    unfreeze,
)

T0 = datetime(2026, 11, 26, 5, 0, tzinfo=UTC)
FROZEN = Freeze(by="U_ALICE", reason="incident 42", since=T0)


def test_an_approver_freezes_with_a_reason() -> None:
    made = freeze(None, actor="U_ALICE", is_approver=True, reason="  incident 42 ", now=T0)
    assert made == FROZEN


@pytest.mark.parametrize("call", [
    lambda: freeze(None, actor="U_BOB", is_approver=False, reason="", now=T0),
    lambda: unfreeze(FROZEN, is_approver=False),
])
def test_only_approvers_freeze_and_unfreeze(call: object) -> None:
    with pytest.raises(Unauthorized):
        call()  # type: ignore[operator]


def test_freezing_twice_or_unfreezing_nothing_is_a_clear_conflict() -> None:
    with pytest.raises(Conflict, match="already frozen by U_ALICE since 2026-11-26 05:00:00 UTC"):
        freeze(FROZEN, actor="U_BOB", is_approver=True, reason="", now=T0)
    with pytest.raises(Conflict, match="not frozen"):
        unfreeze(None, is_approver=True)
    assert unfreeze(FROZEN, is_approver=True) == FROZEN


def test_an_overlong_reason_is_refused() -> None:
    with pytest.raises(InvalidInput, match=f"^the reason is {MAX_REASON + 1} characters; "):
        freeze(None, actor="U_ALICE", is_approver=True, reason="x" * (MAX_REASON + 1), now=T0)


def test_a_reason_is_measured_as_typed_not_as_slack_escapes_it() -> None:
    """`p99 > 2s & err ` 33 times is 495 characters as typed and 726 as Slack sends it
    (`&gt;`, `&amp;`): within the limit, counted as pause and rollback count it."""
    typed = "p99 > 2s & err " * 33  # 495 typed
    escaped = typed.replace("&", "&amp;").replace(">", "&gt;")
    assert freeze(None, actor="U_ALICE", is_approver=True, reason=escaped,
                  now=T0).reason == escaped.strip()
    with pytest.raises(InvalidInput, match=r"^the reason is 510 characters; "):
        freeze(None, actor="U_ALICE", is_approver=True, reason=escaped + "&lt;" * 15, now=T0)


def test_a_freeze_holds_starts_and_step_ups_only() -> None:
    assert "New rollouts wait" in blocks(FROZEN, Action.START)
    assert "Step-ups wait" in blocks(FROZEN, Action.STEP_UP)
    assert "incident 42" in blocks(FROZEN, Action.STEP_UP)
    assert "rollback and pause still work" in blocks(FROZEN, Action.START)
    for action in (Action.ROLLBACK, Action.PAUSE, Action.RESUME):
        assert blocks(FROZEN, action) == ""
        check_blocked(FROZEN, action)
    for action in Action:
        assert blocks(None, action) == ""
    with pytest.raises(Refused):
        check_blocked(FROZEN, Action.START)


def test_a_stored_freeze_is_read_back_as_it_was_recorded() -> None:
    assert freeze_of(FROZEN.model_dump_json(), where="rollout-bot:freeze") == FROZEN
    assert freeze_of(FROZEN.model_dump_json().encode(), where="rollout-bot:freeze") == FROZEN


@pytest.mark.parametrize("record", ["yes", '{"by": 42}', '{"reason": "x"}', b"\xff", "[]"])
def test_a_record_this_version_cannot_read_still_freezes(record: str | bytes) -> None:
    """Set by hand in an incident, or by another version: it holds starts and step-ups, as
    any freeze does (never every command), and says how it goes away."""
    read = freeze_of(record, where="rollout-bot:freeze")
    assert read.describe() == (
        "frozen by a record the bot cannot read: rollout-bot:freeze holds no freeze this "
        "version understands; unfreeze removes it")
    assert blocks(read, Action.STEP_UP).startswith(
        "Rollouts are frozen by a record the bot cannot read: ")
    assert blocks(read, Action.ROLLBACK) == ""
    assert unfreeze(read, is_approver=True) == read


@pytest.fixture
def local_time_not_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The host's local time nine hours ahead of UTC, for one test."""
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize("since", ["2026-11-26T07:00:00+02:00", "2026-11-26T05:00:00"])
@pytest.mark.usefixtures("local_time_not_utc")
def test_a_freeze_says_its_time_as_the_bot_says_every_time(since: str) -> None:
    """In UTC with its zone named, whatever offset a record set by hand in an incident
    carries (none: UTC, as the bot writes, not the host's local time): an ISO stamp with
    `+02:00` in a Slack line reads as another hour."""
    record = f'{{"by": "U_ALICE", "reason": "incident 42", "since": "{since}"}}'
    assert freeze_of(record, where="the freeze key").describe() == (
        "frozen by U_ALICE since 2026-11-26 05:00:00 UTC: incident 42")

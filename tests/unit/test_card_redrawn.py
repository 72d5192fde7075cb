"""A card someone deleted is posted again in its channel at the next change; an update
Slack refuses for any other reason (a channel archived, a rate limit) posts nothing new."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest
from slack_sdk.errors import SlackApiError

from handlers.card_sync import CardPublisher
from rollout.domain.clock import ManualClock
from rollout.domain.models import Actor, AuditAction, AuditEvent, Card
from rollout.service import Outcome
from tests.unit.builders import T0, started
from tests.unit.test_card_turns import _Service

OLD = Card(channel="C9", ts="1.0")


class _Slack:
    """Refuses every update with `error`; posts succeed."""

    def __init__(self, error: str) -> None:
        self.error = error
        self.posted: list[tuple[str, str | None]] = []

    def chat_update(self, **kwargs: Any) -> SimpleNamespace:
        answer = SimpleNamespace(get=lambda key, default=None:
                                 self.error if key == "error" else default)
        raise SlackApiError(self.error, answer)  # type: ignore[no-untyped-call]

    def chat_postMessage(self, *, channel: str, text: str, blocks: Any = None,  # noqa: N802
                         thread_ts: str | None = None) -> SimpleNamespace:
        self.posted.append((channel, thread_ts))
        return SimpleNamespace(data={"ok": True, "channel": channel, "ts": "2.0"})


def _change(error: str) -> tuple[_Slack, _Service]:
    service, slack = _Service(), _Slack(error)
    x = started().model_copy(update={"id": "X", "card": OLD})
    service.saved["X"] = x
    cards = CardPublisher(client=cast(Any, slack), service=cast(Any, service),
                          clock=ManualClock(T0), notify_channel="C1")
    paused = AuditEvent(at=T0, rollout_id="X", target="t", action=AuditAction.PAUSED,
                        actor=Actor.scheduler(), detail="look")
    cards(Outcome(x, "paused", changed=True, events=(paused,)))
    return slack, service


def test_a_deleted_card_is_posted_again_where_it_stood_and_remembered() -> None:
    slack, service = _change("message_not_found")
    assert slack.posted == [("C9", None), ("C9", "2.0")]  # the card, then the change's line
    assert service.saved["X"].card == Card(channel="C9", ts="2.0")


@pytest.mark.parametrize("error", ["is_archived", "channel_not_found", "ratelimited", ""])
def test_another_refusal_posts_no_new_card(error: str) -> None:
    slack, service = _change(error)
    assert slack.posted == [("C9", "1.0")]  # the change's line, in the old card's thread
    assert service.saved["X"].card == OLD

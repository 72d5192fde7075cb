"""One card listener at a time for a rollout, however many other rollouts change meanwhile
(real threads; the Slack client and the service are doubles)."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any, cast

from handlers.card_sync import CardPublisher
from rollout.domain.clock import ManualClock
from rollout.domain.errors import NotFound
from rollout.domain.models import Card, Rollout
from rollout.service import Outcome, Ref
from tests.support.polling import eventually
from tests.unit.builders import T0, started


class _Service:
    def __init__(self) -> None:
        self.saved: dict[str, Rollout] = {}

    def get(self, ref: Ref) -> Rollout:
        found = self.saved.get(ref.rollout_id or "")
        if found is None:
            raise NotFound(ref.rollout_id or "")
        return found

    def attach_card(self, rollout_id: str, card: Card) -> Rollout:
        self.saved[rollout_id] = self.saved[rollout_id].model_copy(update={"card": card})
        return self.saved[rollout_id]

    def frozen(self) -> None:
        return None


class _Slack:
    """Posts a new card per call; the first waits until released (Slack slow to answer)."""

    def __init__(self) -> None:
        self.cards: list[str] = []
        self.first_posting = threading.Event()
        self.release = threading.Event()

    def chat_postMessage(self, *, channel: str, text: str, blocks: Any = None,  # noqa: N802
                         thread_ts: str | None = None) -> SimpleNamespace:
        if thread_ts is None:
            self.cards.append(text)
            if len(self.cards) == 1:
                self.first_posting.set()
                assert self.release.wait(10)
            return SimpleNamespace(data={"ok": True, "channel": channel,
                                         "ts": f"{len(self.cards)}.0"})
        return SimpleNamespace(data={"ok": True})

    def chat_update(self, **kwargs: Any) -> SimpleNamespace:
        return SimpleNamespace(data={"ok": True})


def test_a_second_change_waits_for_the_first_cards_post_whatever_else_changes() -> None:
    """While the first post of X's card waits on Slack, 300 other rollouts' changes go by:
    X's second change used to find X's lock dropped from the 256 kept, and post a second
    card for X."""
    service, slack = _Service(), _Slack()
    cards = CardPublisher(client=cast(Any, slack), service=cast(Any, service),
                          clock=ManualClock(T0), notify_channel="C1")
    x = started().model_copy(update={"id": "X", "card": None})
    service.saved["X"] = x
    first = threading.Thread(target=cards, args=[Outcome(x, "stepped", changed=True)])
    first.start()
    assert slack.first_posting.wait(10)
    for i in range(300):
        with cards._turn(f"other-{i}"):
            pass
    second = threading.Thread(target=cards, args=[Outcome(x, "stepped", changed=True)])
    second.start()
    eventually(lambda: cards._turns["X"].users == 2 or None, timeout=10,
               message="the second change never came to X's turn")
    slack.release.set()
    first.join(10)
    second.join(10)
    assert len(slack.cards) == 1  # one card, then updated
    assert cards._turns == {}  # nothing kept once no one waits

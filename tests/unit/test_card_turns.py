"""One card listener at a time for a rollout, however many other rollouts change meanwhile
(real threads; the Slack client and the service are doubles)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, cast

from handlers.card_sync import CardPublisher
from rollout.domain import machine
from rollout.domain.clock import ManualClock
from rollout.domain.errors import NotFound
from rollout.domain.models import Card, Rollout
from rollout.service import Outcome, Ref
from tests.support.polling import eventually
from tests.unit.builders import BOB, T0, started


class _Service:
    def __init__(self) -> None:
        self.saved: dict[str, Rollout] = {}

    def get(self, ref: Ref) -> Rollout:
        found = self.saved.get(ref.rollout_id or "")
        if found is None:
            raise NotFound(ref.rollout_id or "")
        return found

    def attach_card(self, rollout_id: str, card: Card, *,
                    replacing: Card | None = None) -> Card:
        """As the store: over the card it replaces only (none: the first)."""
        held = self.saved[rollout_id].card
        if held is not None and held != replacing:
            return held
        self.saved[rollout_id] = self.saved[rollout_id].model_copy(update={"card": card})
        return card

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


class _SharedCard:
    """One card in Slack, updated by the clients of several processes."""

    def __init__(self) -> None:
        self.text = ""
        self.updates: list[str] = []


class _ProcessSlack:
    """One process's Slack client; `slow` holds its next update until released; `posting`
    runs while the card is being posted."""

    def __init__(self, card: _SharedCard, *, slow: bool = False,
                 posting: Callable[[], None] | None = None) -> None:
        self.card = card
        self.slow = slow
        self.posting = posting
        self.updating = threading.Event()
        self.release = threading.Event()

    def chat_update(self, *, text: str, **_: Any) -> SimpleNamespace:
        if self.slow:
            self.slow = False
            self.updating.set()
            assert self.release.wait(10)
        self.card.text = text
        self.card.updates.append(text)
        return SimpleNamespace(data={"ok": True})

    def chat_postMessage(self, *, channel: str, text: str,  # noqa: N802
                         thread_ts: str | None = None, **_: Any) -> SimpleNamespace:
        if thread_ts is not None:  # a thread line
            return SimpleNamespace(data={"ok": True})
        if self.posting is not None:
            self.posting()
        self.card.text = text
        self.card.updates.append(text)
        return SimpleNamespace(data={"ok": True, "channel": channel, "ts": "1.0"})


def test_a_slow_update_from_another_process_does_not_leave_an_older_state_on_the_card() -> None:
    """The scheduler's update of step 1 (version 5) reached Slack after a replica's update of
    the rollback (version 6): the card showed the step for good, its buttons live."""
    service, card = _Service(), _SharedCard()
    slow, fast = _ProcessSlack(card, slow=True), _ProcessSlack(card)
    scheduler, replica = (
        CardPublisher(client=cast(Any, slack), service=cast(Any, service),
                      clock=ManualClock(T0), notify_channel="C1") for slack in (slow, fast))
    at_step = started().model_copy(update={"id": "X", "version": 5,
                                           "card": Card(channel="C1", ts="1.0")})
    rolled_back = machine.rollback(at_step, actor=BOB, now=T0, reason="p99").rollout
    rolled_back = rolled_back.model_copy(update={"version": 6})
    service.saved["X"] = at_step
    stepping = threading.Thread(target=scheduler, args=[Outcome(at_step, "stepped")])
    stepping.start()
    assert slow.updating.wait(10)  # drawn from version 5, its update on the way
    service.saved["X"] = rolled_back
    replica(Outcome(rolled_back, "rolled back"))
    assert "rolled back" in card.text
    slow.release.set()
    stepping.join(10)
    assert not stepping.is_alive()
    assert "awaiting approval" in card.updates[1]  # the slow one landed last
    assert len(card.updates) == 3 and card.text == card.updates[0], "the card ends on v6"


def test_the_update_after_a_first_post_does_not_leave_an_older_state_on_the_card() -> None:
    """The rollout was paused (version 6) while its first card (version 5) was being posted:
    the update of the pause that follows the post reached Slack after a replica's update of
    the rollback (version 7), and the card showed the pause for good."""
    service, card = _Service(), _SharedCard()
    at_step = started().model_copy(update={"id": "X", "version": 5, "card": None})
    paused = machine.pause(at_step, actor=BOB, now=T0, reason="p99").rollout
    paused = paused.model_copy(update={"version": 6})

    def pause_meanwhile() -> None:
        service.saved["X"] = paused

    slow = _ProcessSlack(card, slow=True, posting=pause_meanwhile)
    fast = _ProcessSlack(card)
    cli, replica = (
        CardPublisher(client=cast(Any, slack), service=cast(Any, service),
                      clock=ManualClock(T0), notify_channel="C1") for slack in (slow, fast))
    service.saved["X"] = at_step
    starting = threading.Thread(target=cli, args=[Outcome(at_step, "started")])
    starting.start()
    assert slow.updating.wait(10)  # posted from version 5, the update of version 6 on its way
    rolled_back = machine.rollback(service.saved["X"], actor=BOB, now=T0, reason="p99").rollout
    rolled_back = rolled_back.model_copy(update={"version": 7})
    service.saved["X"] = rolled_back
    replica(Outcome(rolled_back, "rolled back"))
    assert "rolled back" in card.text
    slow.release.set()
    starting.join(10)
    assert not starting.is_alive()
    assert "paused" in card.updates[2]  # the post, the rollback, then the slow pause
    assert len(card.updates) == 4 and card.text == card.updates[1], "the card ends on v7"


class _Channel:
    """A Slack channel that several processes' clients post to: its messages by ts."""

    def __init__(self) -> None:
        self.messages: dict[str, str] = {}
        self.deleted: list[str] = []


class _ChannelSlack:
    """One process's client of `_Channel`; `posting` runs before its post lands."""

    def __init__(self, channel: _Channel, name: str,
                 posting: Callable[[], None] | None = None) -> None:
        self.channel, self.name, self.posting = channel, name, posting

    def chat_postMessage(self, *, channel: str, text: str,  # noqa: N802
                         thread_ts: str | None = None, **_: Any) -> SimpleNamespace:
        if thread_ts is not None:
            return SimpleNamespace(data={"ok": True})
        if self.posting is not None:
            self.posting()
        ts = f"{len(self.channel.messages) + len(self.channel.deleted) + 1}.{self.name}"
        self.channel.messages[ts] = text
        return SimpleNamespace(data={"ok": True, "channel": channel, "ts": ts})

    def chat_update(self, *, ts: str, text: str, **_: Any) -> SimpleNamespace:
        self.channel.messages[ts] = text
        return SimpleNamespace(data={"ok": True})

    def chat_delete(self, *, ts: str, **_: Any) -> SimpleNamespace:
        del self.channel.messages[ts]
        self.channel.deleted.append(ts)
        return SimpleNamespace(data={"ok": True})


def test_two_processes_that_each_post_a_first_card_end_with_one() -> None:
    """The CLI and the scheduler each found the rollout without a card and posted one; the
    second attached took the place of the first, which stayed in the channel, its buttons
    live, never updated again. Now the first attached stays and the other is deleted."""
    service, channel = _Service(), _Channel()
    x = started().model_copy(update={"id": "X", "card": None})
    service.saved["X"] = x
    scheduler = CardPublisher(client=cast(Any, _ChannelSlack(channel, "scheduler")),
                              service=cast(Any, service), clock=ManualClock(T0),
                              notify_channel="C1")
    cli = CardPublisher(
        client=cast(Any, _ChannelSlack(
            channel, "cli", posting=lambda: scheduler(Outcome(x, "stepped", changed=True)))),
        service=cast(Any, service), clock=ManualClock(T0), notify_channel="C1")
    cli(Outcome(x, "started", changed=True))  # the scheduler posts while the CLI's post waits
    card = service.saved["X"].card
    assert card is not None and card.ts.endswith("scheduler")
    assert list(channel.messages) == [card.ts]
    assert [ts.endswith("cli") for ts in channel.deleted] == [True]
    assert cli.shows(x) and scheduler.shows(x)

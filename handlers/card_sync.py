"""Keeps each rollout's card current: a service listener that edits the card and writes the
thread after every saved change, whoever made it (Slack, the CLI, the scheduler).

A rollout with no card yet gets one, in the channel it was started from or in the notify
channel. Lines that ask for an approval (the start, an approval request, a reminder) mention
the approvers and say since when, in Slack's own date markup. Slack failures here are
logged and counted, never raised: chat is a window on the rollout, not part of it.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from handlers.cards import event_line, render_card
from handlers.mentions import slack_date, unmarked
from handlers.telemetry import NoTelemetry, Telemetry
from rollout.domain.clock import Clock
from rollout.domain.errors import RolloutError
from rollout.domain.freeze import Freeze
from rollout.domain.models import AuditEvent, Card, Phase, Rollout, Via
from rollout.service import Outcome, Ref, RolloutService

log = logging.getLogger(__name__)

#: the rollouts whose drawn version is remembered (`shows`): the most recent ones
_MAX_DRAWN = 256
#: redraws at most after an update, while the store shows a newer version each time
_REDRAWS = 3


class CardPublisher:
    def __init__(
        self, *, client: WebClient, service: RolloutService, clock: Clock,
        notify_channel: str | None = None, telemetry: Telemetry | None = None,
        mention: str = "",
    ) -> None:
        self._mention = mention
        self._client = client
        self._service = service
        self._clock = clock
        self._notify = notify_channel or None
        self._telemetry = telemetry or NoTelemetry()
        #: each rollout's turn, while some listener holds or waits for it
        self._turns: dict[str, _Turn] = {}
        #: the version each rollout's card was last drawn with (the most recent ones)
        self._drawn: OrderedDict[str, int] = OrderedDict()
        #: the error code Slack refused a card's first post with, until it is posted
        self._unposted: OrderedDict[str, str] = OrderedDict()
        self._guard = threading.Lock()

    def __call__(self, outcome: Outcome) -> None:
        r = outcome.rollout
        if r is None or (not outcome.changed and not outcome.events):
            return
        with self._turn(r.id):
            latest = self._latest(r)
            card = latest.card or self._post_card(latest)
            if card is None:
                return
            if latest.card is not None:
                card = self._redrawn(latest, card)
            self._caught_up(latest, card)
            lines = [self._line(e, latest) for e in outcome.events]
            if not outcome.ok:
                lines.append(f":warning: {unmarked(outcome.message)}")
            if lines:
                self._call("chat.postMessage", lambda: self._client.chat_postMessage(
                    channel=card.channel, thread_ts=card.ts, text="\n".join(lines)))

    def _line(self, event: AuditEvent, r: Rollout) -> str:
        line = event_line(event)
        if event.action == "keep_ended":
            who = f"{self._mention}: " if self._mention else ""
            return f"{line}\n{who}please retire {r.stable} (`retire`) or roll back"
        asks = event.action in ("approval_requested", "reminder") or (
            event.action == "started" and r.phase is Phase.AWAITING_APPROVAL)
        if not asks:
            return line
        since = r.awaiting_since or event.at
        who = f"{self._mention}: " if self._mention else ""
        what = "the plan" if r.needs_plan_approval else "this step"
        return f"{line}\n{who}please review {what}; waiting since {slack_date(since)}"

    def post_to_thread(self, rollout: Rollout, text: str) -> None:
        """A message in the card's thread (a NeedsOperator alert), if the rollout has a card."""
        if rollout.card is None:
            return
        card = rollout.card
        self._call("chat.postMessage", lambda: self._client.chat_postMessage(
            channel=card.channel, thread_ts=card.ts, text=text))

    def _latest(self, r: Rollout) -> Rollout:
        """Render the newest saved state, so a late listener never shows an older one."""
        try:
            found = self._service.get(Ref(rollout_id=r.id))
        except RolloutError:
            return r
        return found if found.version >= r.version else r

    def _post_card(self, r: Rollout, *, replacing: Card | None = None) -> Card | None:
        """The rollout's first card, where it was asked for (else the notify channel), or
        one `replacing` a deleted card, where it stood. Another process (the CLI, the
        scheduler, a replica) may have posted one meanwhile: the first attached stays, and
        this one, deleted, gives way to it (two cards had each shown the rollout, one of
        them never updated again)."""
        channel = replacing.channel if replacing is not None else None
        if channel is None:
            channel = r.requester.channel if r.requester.via is Via.SLACK else None
            channel = channel or self._notify
        if channel is None:
            return None
        message = render_card(r, now=self._clock.now(), freeze=self._freeze())
        refused: list[str] = []
        response = self._call("chat.postMessage", lambda: self._client.chat_postMessage(
            channel=channel, text=message.text, blocks=message.blocks), refused=refused)
        if response is None:
            with self._guard:
                self._unposted[r.id] = refused[0] if refused else ""
                while len(self._unposted) > _MAX_DRAWN:
                    self._unposted.popitem(last=False)
            return None
        card = Card(channel=str(response.get("channel") or channel), ts=str(response["ts"]))
        self._drew(r)
        try:
            held = self._service.attach_card(r.id, card, replacing=replacing)
        except RolloutError:
            log.exception("could not remember the card of %s", r.id)
            return card
        if held != card:
            log.info("another process posted the card of %s first: using that one",
                     r.id, extra={"event": "card_given_way", "rollout_id": r.id})
            self._call("chat.delete", lambda: self._client.chat_delete(
                channel=card.channel, ts=card.ts))
            self._update(r, held)  # this process's drawing on it (`shows`)
        return held  # drawn again by `_caught_up` if it moved on while being posted

    def _caught_up(self, drawn: Rollout, card: Card) -> None:
        """Draw again while the store holds a newer version than the one just drawn (or
        posted). The turn orders the card's updates within this process only: the CLI, the
        scheduler and each replica draw it too, and a slow update of version 5 that landed
        after another process's version 6 (a rollback) left the card showing the step,
        buttons and all, for good once nothing changed after it. The update that follows a
        first post, when the rollout moved on meanwhile, was one such update too. One read
        when nothing moved."""
        for _ in range(_REDRAWS):
            newer = self._latest(drawn)
            if newer.version <= drawn.version or not self._update(newer, card):
                return
            drawn = newer

    def _redrawn(self, r: Rollout, card: Card) -> Card:
        """The card updated; one someone deleted (Slack answers `message_not_found`) is
        posted anew in its channel, the rollout remembering the new one: its buttons and
        its thread were gone for good, every later change logging a failed update."""
        refused: list[str] = []
        if self._update(r, card, refused=refused) or refused != ["message_not_found"]:
            return card
        log.info("the card of %s was deleted: posting it again", r.id,
                 extra={"event": "card_reposted", "rollout_id": r.id})
        return self._post_card(r, replacing=card) or card

    def _update(self, r: Rollout, card: Card, *, refused: list[str] | None = None) -> bool:
        message = render_card(r, now=self._clock.now(), freeze=self._freeze())
        if self._call("chat.update", lambda: self._client.chat_update(
                channel=card.channel, ts=card.ts, text=message.text,
                blocks=message.blocks), refused=refused) is None:
            return False
        self._drew(r)
        return True

    def shows(self, r: Rollout) -> bool:
        """Whether this process drew `r`'s card at its version or a later one: a click whose
        change the card could not show (Slack failed past its retries) is answered where the
        clicker sees it instead."""
        with self._guard:
            return self._drawn.get(r.id, -1) >= r.version

    def unposted(self, r: Rollout) -> str | None:
        """The error code Slack refused `r`'s card with (`not_in_channel`, `is_archived`, ''
        when it gave none) while this process could not post it; None once it is posted."""
        with self._guard:
            return self._unposted.get(r.id)

    def _drew(self, r: Rollout) -> None:
        with self._guard:
            self._unposted.pop(r.id, None)
            self._drawn[r.id] = max(r.version, self._drawn.pop(r.id, -1))
            while len(self._drawn) > _MAX_DRAWN:
                self._drawn.popitem(last=False)

    def _freeze(self) -> Freeze | None:
        """The install's freeze for the card; a card is still drawn when Redis cannot say."""
        try:
            return self._service.frozen()
        except RolloutError:
            return None

    def _call(self, method: str, call: Callable[[], Any], *,
              refused: list[str] | None = None) -> dict[str, Any] | None:
        """Slack's answer, or None (logged and counted); `refused` gets the error code of an
        answer Slack refused."""
        try:
            response = call()
        except Exception as exc:  # SlackApiError, connection errors: count and carry on
            if refused is not None and isinstance(exc, SlackApiError):
                refused.append(str(exc.response.get("error") or ""))
            # one line: Slack's answer says what failed, the stack would add nothing
            log.warning("Slack %s failed: %s", method, exc,
                        extra={"event": "slack_error", "method": method})
            self._telemetry.slack_error(method)
            return None
        data = getattr(response, "data", None)
        return data if isinstance(data, dict) else None

    @contextmanager
    def _turn(self, rollout_id: str) -> Iterator[None]:
        """One listener at a time for a rollout's card. Its lock lives while a listener holds
        or waits for it: the 256 most recently used were kept, and at 1,000 rollouts stepping
        a slow Slack call saw its lock dropped while held, so a second listener of the same
        rollout posted a second card, or drew an older version after a newer one."""
        with self._guard:
            turn = self._turns.setdefault(rollout_id, _Turn())
            turn.users += 1
        try:
            with turn.lock:
                yield
        finally:
            with self._guard:
                turn.users -= 1
                if not turn.users:
                    del self._turns[rollout_id]


@dataclass
class _Turn:
    lock: threading.Lock = field(default_factory=threading.Lock)
    users: int = 0  # listeners holding or waiting for it

"""The card follows every change, whoever made it: the card publisher for the processes
outside the Slack app (the CLI and the standalone scheduler), besides the app's own.

With `SLACK_BOT_TOKEN` set, each process edits the rollout's card and writes its thread line
(or posts the card in `ROLLOUT_NOTIFY_CHANNEL` for a rollout started outside Slack) through a
bounded client (`bot.slack_budget`): a Slack failure is logged and counted, never raised, and
never holds the command up for long. Without the token the process says once that cards are
not updated, and makes no Slack call.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import Counter
from typing import TYPE_CHECKING

from slack_sdk import WebClient

from bot.graceful_stop import Deadline
from bot.settings import Settings
from bot.slack_budget import Budget, bounded_client
from handlers.card_sync import CardPublisher
from handlers.mentions import approvers_mention
from handlers.telemetry import Telemetry
from rollout.service import Outcome

if TYPE_CHECKING:
    from bot.bootstrap import Container

log = logging.getLogger(__name__)

#: the CLI waits at most this long for Slack, all calls of one command together
CLI_SLACK_SECONDS = 5.0
#: the scheduler gives one change's card update at most this long
SCHEDULER_SLACK_SECONDS = 10.0
#: changes waiting for their card update in the scheduler; more are dropped (and counted)
SCHEDULER_QUEUE = 1000


def no_token_note(process: str) -> str:
    return f"SLACK_BOT_TOKEN is not set: {process} does not update the rollouts' Slack cards"


NO_CHANNEL_NOTE = ("ROLLOUT_NOTIFY_CHANNEL is not set: a rollout started outside Slack gets "
                   "no card")


def notify_channel(settings: Settings) -> str | None:
    """ROLLOUT_NOTIFY_CHANNEL: where cards of rollouts started outside Slack go."""
    return settings.rollout_notify_channel or None


def build_publisher(container: Container, *, client: WebClient,
                    telemetry: Telemetry | None) -> CardPublisher:
    """The one card publisher, as the Slack app and the processes outside it wire it."""
    settings = container.settings
    mention = approvers_mention(approvers=settings.rollout_approvers,
                                groups=settings.rollout_approver_groups)
    return CardPublisher(client=client, service=container.service, clock=container.clock,
                         notify_channel=notify_channel(settings), telemetry=telemetry,
                         mention=mention)


class Tally:
    """Telemetry for a process without /metrics: counts the Slack calls that failed."""

    def __init__(self) -> None:
        self.failed: Counter[str] = Counter()
        self._lock = threading.Lock()

    def request(self, kind: str, action: str) -> None:
        pass

    def slack_error(self, method: str) -> None:
        with self._lock:
            self.failed[method] += 1

    def kube_error(self) -> None:
        pass

    def denial(self, action: str) -> None:
        pass

    def summary(self) -> str:
        with self._lock:
            return ", ".join(f"{method} ({n})" for method, n in sorted(self.failed.items()))


class CommandCards:
    """The CLI's card updates: in the command's own thread, all of them within one budget
    that starts at the first Slack call, so the command ends promptly whatever Slack does."""

    def __init__(self, container: Container, *, seconds: float = CLI_SLACK_SECONDS,
                 quiet: bool = True) -> None:
        settings = container.settings
        self.tally = Tally()
        self.budget = Budget(seconds)
        client_log = logging.getLogger("rollout-bot.slack.web")
        # the sdk logs a dropped connection as an error; unless asked for, the note says it
        client_log.setLevel(logging.CRITICAL if quiet else logging.NOTSET)
        client = bounded_client(token=settings.slack_bot_token, base_url=settings.slack_api_url,
                                budget=self.budget, logger=client_log)
        self.publisher = build_publisher(container, client=client, telemetry=self.tally)
        container.listeners.append(self.publisher)

    def note(self) -> str | None:
        """One line for stderr when Slack did not take every update, else None."""
        summary = self.tally.summary()
        if not summary:
            return None
        return (f"note: the rollout's Slack card may be out of date (Slack calls failed: "
                f"{summary}); the command's answer stands all the same")


def command_cards(container: Container) -> CommandCards | None:
    """The CLI's card updates, or None (said on the log, shown with `-v`) without a token.
    The sdk's own error lines are left to `-v` too: the note says what Slack failed."""
    settings = container.settings
    if not settings.slack_bot_token:
        log.info(no_token_note("the CLI"))
        return None
    if notify_channel(settings) is None:
        log.info(NO_CHANNEL_NOTE)
    return CommandCards(container, quiet=logging.getLogger().getEffectiveLevel() > logging.INFO)


def scheduler_cards(container: Container) -> BackgroundCards | None:
    """The standalone scheduler's card updates, started; None (and a log line) without a
    token."""
    settings = container.settings
    if not settings.slack_bot_token:
        log.warning(no_token_note("the scheduler"), extra={"event": "cards_off"})
        return None
    if notify_channel(settings) is None:
        log.info(NO_CHANNEL_NOTE)
    return BackgroundCards(container).start()


class BackgroundCards:
    """The standalone scheduler's card updates, on a thread of their own: a tick never
    waits on Slack. Changes are published in order; each gets its own bounded budget."""

    def __init__(self, container: Container, *, seconds: float = SCHEDULER_SLACK_SECONDS,
                 size: int = SCHEDULER_QUEUE) -> None:
        settings = container.settings
        self.tally = Tally()
        self.budget = Budget(seconds)
        client = bounded_client(token=settings.slack_bot_token, base_url=settings.slack_api_url,
                                budget=self.budget)
        self.publisher = build_publisher(container, client=client, telemetry=self.tally)
        self._queue: queue.Queue[Outcome | None] = queue.Queue(maxsize=size)
        self._thread = threading.Thread(target=self._run, name="card-updates", daemon=True)
        self._container = container

    def __call__(self, outcome: Outcome) -> None:
        if outcome.rollout is None or (not outcome.changed and not outcome.events):
            return
        try:
            self._queue.put_nowait(outcome)
        except queue.Full:
            log.warning("card update of %s dropped: %d changes are waiting for Slack",
                        outcome.rollout.id, self._queue.maxsize,
                        extra={"event": "card_dropped", "rollout_id": outcome.rollout.id})
            self.tally.slack_error("card-queue")

    def start(self) -> BackgroundCards:
        self._thread.start()
        self._container.listeners.append(self)
        return self

    def stop(self, timeout: float | Deadline = 5.0) -> None:
        """Stop taking changes; publish what is waiting within `timeout` (seconds, or the
        process' stop deadline)."""
        deadline = Deadline.of(timeout)
        if self in self._container.listeners:
            self._container.listeners.remove(self)
        try:
            self._queue.put(None, timeout=deadline.remaining())
        except queue.Full:
            return
        self._thread.join(timeout=deadline.remaining())
        summary = self.tally.summary()
        if summary:
            log.warning("Slack calls failed while the scheduler ran: %s", summary,
                        extra={"event": "slack_failures", "failed": dict(self.tally.failed)})

    def _run(self) -> None:
        while True:
            outcome = self._queue.get()
            if outcome is None:
                return
            self.budget.restart()
            try:
                self.publisher(outcome)
            except Exception:  # the publisher counts Slack's failures; anything else too
                log.exception("card update of %s failed", getattr(outcome.rollout, "id", "?"))
                self.tally.slack_error("card")

"""The Bolt listeners for `/rollout`, the card's buttons and the Roll back modal.

Each listener acks (Slack allows 3 seconds) and hands the rest to the bot's own bounded
`Workers` (a rollback to a pool of its own): authorize, call the service through
`run_command` (or, for a button, with what the button was drawn for: the service checks it
under the target lock; nothing here second-guesses it), and render the answer. Roll back
opens a modal (with the click's trigger id) that confirms and takes a reason; its
submission takes the button path. Nothing else lives here (DESIGN §9 point 4). Bolt runs
the listeners with `process_before_response`, so the ack leaves when the listener returns,
from the request thread: it never waits behind work already running, and a full pool is
answered at once with "busy".
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from handlers import response_url
from handlers.authorization import Authorizer
from handlers.card_sync import CardPublisher
from handlers.cards import (
    APPROVE,
    APPROVE_PLAN,
    MAX_REASON,
    PAUSE,
    REASON_ACTION,
    REASON_BLOCK,
    RESUME,
    ROLLBACK,
    ROLLBACK_MODAL,
    ButtonValue,
    rollback_modal,
)
from handlers.commands import CHANGING_VERBS, CommandRequest, Verb, run_command
from handlers.grammar import help_text, parse
from handlers.mentions import literal, unmarked
from handlers.replies import error_reply, outcome_reply, result_reply
from handlers.telemetry import NoTelemetry, Telemetry
from handlers.workers import BUSY, Workers, rollback_workers, side_workers
from rollout.domain.errors import (
    ClusterUnavailable,
    InvalidInput,
    NeedsOperator,
    Refused,
    RolloutError,
    Unauthorized,
)
from rollout.domain.models import Actor, Via
from rollout.service import Outcome, Ref, RolloutService

log = logging.getLogger(__name__)

WORKING = ":hourglass_flowing_sand: Working on it…"
#: said to a clicker whose change the card could not show
CARD_MISSED = (":warning: The card could not be redrawn (Slack failed the update): it shows "
               "the state before this change until the next one.")
#: the bot posts only where it is a member; a slash command works in any channel
NOT_A_MEMBER = ("not_in_channel", "channel_not_found")
BUTTON_VERBS = {APPROVE: Verb.APPROVE, APPROVE_PLAN: Verb.APPROVE_PLAN, PAUSE: Verb.PAUSE,
                RESUME: Verb.RESUME, ROLLBACK: Verb.ROLLBACK}
#: the service method a button calls, with what the button was drawn for (the service decides)
BUTTON_CALLS: dict[Verb, Callable[..., Outcome]] = {
    Verb.APPROVE: RolloutService.approve, Verb.APPROVE_PLAN: RolloutService.approve_plan,
    Verb.PAUSE: RolloutService.pause, Verb.RESUME: RolloutService.resume,
    Verb.ROLLBACK: RolloutService.rollback,
}
BUTTON_PATTERN = re.compile(r"^rollout_(approve|approve_plan|pause|resume|rollback)$")


@dataclass
class SlackEdge:
    service: RolloutService
    authorizer: Authorizer
    cards: CardPublisher
    namespace: str = "default"
    telemetry: Telemetry | None = None
    workers: Workers = field(default_factory=Workers)
    #: what a listener owes besides its ack and would otherwise send before returning (the
    #: ack goes out when it returns): a full pool's busy answer, a bad input's audit
    side: Workers = field(default_factory=side_workers)
    #: the rollbacks' own pool: the way back stays open while every worker waits on a slow
    #: cluster (the Roll back dialog's trigger lasts 3 s)
    rollbacks: Workers = field(default_factory=rollback_workers)

    @property
    def _tel(self) -> Telemetry:
        return self.telemetry or NoTelemetry()

    def _pool(self, verb: Verb) -> Workers:
        return self.rollbacks if verb is Verb.ROLLBACK else self.workers

    # -- /rollout ------------------------------------------------------------------------

    def on_command(self, ack: Ack, command: dict[str, Any], respond: Respond) -> None:
        try:
            req = parse(str(command.get("text") or ""), namespace=self.namespace)
        except InvalidInput as exc:
            ack(text=error_reply(exc))
            self._tel.request("command", "invalid")
            actor, reason = _actor(command), f"bad input: {exc}"
            self._aside(lambda: self._audit(actor, "command", None, reason))
            return
        self._tel.request("command", req.verb.value)
        if req.verb is Verb.HELP:
            ack(text=help_text(req.topic))
            return
        req = replace(req, request_id=command_request_id(command))
        actor = _actor(command)
        if not self._pool(req.verb).submit(lambda: self._answer(req, actor, respond)):
            self._busy(actor, req.verb.value)
            ack(text=BUSY)
            return
        ack()

    def _answer(self, req: CommandRequest, actor: Actor, respond: Respond) -> None:
        """The work after a command's ack, on the bot's workers."""
        working = req.verb in CHANGING_VERBS
        if working:
            # through the response URL, not the ack: the answer that replaces it below
            # goes the same way after it, so it can never arrive first and be left behind
            _respond(respond, WORKING, self._tel)
        # the answer takes the place of "Working on it…", so only the answer stays
        _respond(respond, self._run(req, actor), self._tel,
                 replace_original=True if working else None)

    def _aside(self, work: Callable[[], None]) -> None:
        """Send `work` off the request thread, so that the ack does not wait for it: a busy
        answer through a slow response URL (retried) or an audit while Redis stalled held
        the ack past Slack's 3 s. Past the side pool's bound it is dropped, and logged."""
        if not self.side.submit(work):
            log.warning("busy: an answer or audit owed beside an ack was dropped",
                        extra={"event": "busy"})

    def _busy(self, actor: Actor, action: str) -> None:
        log.warning("busy: refused %s from %s (every worker and backlog slot taken)",
                    action, actor.id, extra={"event": "busy", "actor": actor.id,
                                             "action": action})

    def _run(self, req: CommandRequest, actor: Actor) -> str:
        ref = req.ref if req.pool else None
        try:
            denial = self.authorizer.denial(req.verb, user_id=actor.id, channel_id=actor.channel)
            if denial:
                return self._deny(actor, req.verb.value, ref, denial)
            result = run_command(self.service, req, actor)
            return result_reply(result) + self._card_note(result.outcome)
        except RolloutError as exc:
            return self._failed(exc, actor, req.verb.value, ref)
        except Exception:
            log.exception("/rollout %s failed", req.verb.value)
            return ":warning: Something went wrong on the bot's side; it is logged. " \
                   "Nothing more was done."

    def _card_note(self, outcome: Outcome | None) -> str:
        """What a command's answer adds when the rollout's card could not be posted, by the
        error code Slack refused it with: the person asked would otherwise wait for it."""
        r = outcome.rollout if outcome is not None and outcome.changed else None
        code = self.cards.unposted(r) if r is not None else None
        if r is None or code is None:
            return ""
        if code in NOT_A_MEMBER:
            why = ("the bot is not in this channel: `/invite` it here, and the card is "
                   "posted with the next change")
        elif code == "is_archived":
            why = f"this channel is archived; `/rollout {r.canary} status` follows the rollout"
        elif code:
            why = f"Slack refused it (`{code}`); the next change tries again"
        else:
            why = "Slack did not take it; the next change tries again"
        return f"\n:warning: The rollout's card could not be posted: {why}."

    # -- buttons -------------------------------------------------------------------------

    def on_button(self, ack: Ack, body: dict[str, Any], action: dict[str, Any],
                  respond: Respond, client: WebClient) -> None:
        ack()
        action_id = str(action.get("action_id"))
        verb = BUTTON_VERBS[action_id]
        self._tel.request("button", verb.value)
        actor = _clicker(body)
        if not self._pool(verb).submit(lambda: self._press(body, action, respond, client)):
            self._busy(actor, verb.value)
            self._aside(lambda: _respond(respond, BUSY, self._tel, replace_original=False))

    def _press(self, body: dict[str, Any], action: dict[str, Any], respond: Respond,
               client: WebClient) -> None:
        """The work after a click's ack, on the bot's workers."""
        action_id = str(action.get("action_id"))
        verb = BUTTON_VERBS[action_id]
        actor = _clicker(body)
        raw = str(action.get("value") or "")
        if verb is Verb.ROLLBACK:
            text = self._open_rollback(client, actor, raw, str(body.get("trigger_id") or ""))
        else:
            text = self._click(verb, action_id, actor, raw,
                               request_id=click_request_id(body, action))
        if text:
            _respond(respond, text, self._tel, replace_original=False)

    # -- Roll back: a modal that confirms and takes a reason -----------------------------

    def _open_rollback(self, client: WebClient, actor: Actor, raw: str,
                       trigger_id: str) -> str | None:
        """Open the Roll back modal; returns what to tell the clicker when it cannot open."""
        ref: Ref | None = None
        try:
            value = ButtonValue.decode(raw)
            ref = Ref(rollout_id=value.rollout_id)
            denial = self.authorizer.denial(Verb.ROLLBACK, user_id=actor.id,
                                            channel_id=actor.channel)
            if denial:
                return self._deny(actor, Verb.ROLLBACK.value, ref, denial)
            rollout = self.service.get(ref)
        except RolloutError as exc:
            return self._failed(exc, actor, Verb.ROLLBACK.value, ref)
        metadata = json.dumps({"value": raw, "channel": actor.channel}, separators=(",", ":"))
        try:
            client.views_open(trigger_id=trigger_id,
                              view=rollback_modal(rollout, metadata=metadata))
        except Exception:
            log.exception("could not open the Roll back modal")
            self._tel.slack_error("views.open")
            return (":warning: Could not open the Roll back dialog; nothing changed. "
                    f"`/rollout {rollout.canary} rollback --reason \"...\"` does the same.")
        return None

    def on_rollback_submit(self, ack: Ack, body: dict[str, Any], view: dict[str, Any],
                           client: WebClient) -> None:
        ack()  # closes the modal; the card and its thread show the rollback
        self._tel.request("modal", Verb.ROLLBACK.value)
        if not self.rollbacks.submit(lambda: self._submit_rollback(body, view, client)):
            actor = _clicker(body)
            self._busy(actor, Verb.ROLLBACK.value)
            channel = _metadata_channel(view)
            if channel:
                self._aside(lambda: _ephemeral(client, channel, actor.id, BUSY, self._tel))

    def _submit_rollback(self, body: dict[str, Any], view: dict[str, Any],
                         client: WebClient) -> None:
        """The work after the Roll back modal's ack, on the bot's workers."""
        try:
            metadata = json.loads(str(view.get("private_metadata") or "{}"))
            raw, channel = str(metadata["value"]), metadata.get("channel")
        except (ValueError, KeyError, TypeError):
            log.warning("a Roll back modal without the bot's metadata was submitted")
            return
        user = body.get("user") or {}
        actor = Actor(id=str(user.get("id")), name=user.get("username") or user.get("name"),
                      via=Via.SLACK, channel=channel)
        text = self._click(Verb.ROLLBACK, ROLLBACK, actor, raw,
                           request_id=f"slack:view:{view.get('id')}", reason=_reason(view))
        if text and channel:
            _ephemeral(client, channel, actor.id, text, self._tel)

    def _click(self, verb: Verb, action_id: str, actor: Actor, raw: str, *, request_id: str,
               reason: str = "") -> str | None:
        """The button path; returns what to tell the clicker, None when the card says it."""
        ref: Ref | None = None
        try:
            click = ButtonValue.decode(raw).click(action_id)
            ref = Ref(rollout_id=click.rollout_id)
            denial = self.authorizer.denial(verb, user_id=actor.id, channel_id=actor.channel)
            if denial:
                return self._deny(actor, verb.value, ref, denial)
            extra = {"reason": reason} if verb is Verb.ROLLBACK else {}
            outcome = BUTTON_CALLS[verb](self.service, ref, actor=actor, click=click,
                                         request_id=request_id, **extra)
        except RolloutError as exc:
            return self._failed(exc, actor, verb.value, ref)
        except Exception:
            log.exception("button %s failed", verb.value)
            return ":warning: Something went wrong on the bot's side; it is logged."
        if not (outcome.changed and outcome.ok):
            return result_reply_for(outcome)
        if outcome.rollout is None or self.cards.shows(outcome.rollout):
            return None  # the card says it
        return f"{outcome_reply(outcome)}\n{CARD_MISSED}"

    # -- refusals and failures -----------------------------------------------------------

    def _deny(self, actor: Actor, action: str, ref: Ref | None, reason: str) -> str:
        log.info("refused %s: %s", action, reason, extra=_fields("refusal", actor, action, ref))
        self._tel.denial(action)
        self._audit(actor, action, ref, reason)
        return f":no_entry: {reason}"

    def _failed(self, exc: RolloutError, actor: Actor, action: str, ref: Ref | None) -> str:
        kind, level = ("refusal", logging.INFO) if isinstance(exc, Refused) else \
            ("error", logging.WARNING)
        log.log(level, "%s %s: %s", action, kind, exc,
                extra={**_fields(kind, actor, action, ref), "error_kind": type(exc).__name__})
        if isinstance(exc, Unauthorized):  # self-approval and the like, refused by the domain
            self._tel.denial(action)
            self._audit(actor, action, ref, str(exc))
        if isinstance(exc, ClusterUnavailable):
            self._tel.kube_error()
        reply = error_reply(exc)
        if isinstance(exc, Unauthorized):  # e.g. the two-person rule: say who else can
            try:
                who = self.authorizer.who_approves(exclude=actor.id)
                reply += f"\n{who[0].upper()}{who[1:]}."
            except RolloutError:
                pass
        if isinstance(exc, NeedsOperator) and ref is not None:
            try:
                self.cards.post_to_thread(self.service.get(ref), reply)
            except RolloutError:
                log.warning("no card to alert for %s", ref.describe())
        return reply

    def _audit(self, actor: Actor, action: str, ref: Ref | None, reason: str) -> None:
        self.service.record_denial(actor=actor, action=action, ref=ref, reason=reason)


def result_reply_for(outcome: Outcome) -> str:
    icon = ":warning:" if not outcome.ok else ":information_source:"
    return f"{icon} {unmarked(outcome.message)}"


def register(app: App, edge: SlackEdge, *, command: str = "/rollout") -> None:
    app.command(command)(edge.on_command)
    app.action(BUTTON_PATTERN)(edge.on_button)
    app.view(ROLLBACK_MODAL)(edge.on_rollback_submit)


def _clicker(body: dict[str, Any]) -> Actor:
    user = body.get("user") or {}
    channel = (body.get("channel") or {}).get("id") or \
        (body.get("container") or {}).get("channel_id")
    return Actor(id=str(user.get("id")), name=user.get("username") or user.get("name"),
                 via=Via.SLACK, channel=channel)


def _reason(view: dict[str, Any]) -> str:
    """The reason typed into the Roll back dialog, escaped as Slack escapes a slash command's
    text, so that it is kept and shown as the literal text it was (never a mention)."""
    values = ((view.get("state") or {}).get("values") or {}).get(REASON_BLOCK) or {}
    return literal(str((values.get(REASON_ACTION) or {}).get("value") or "").strip()[:MAX_REASON])


def click_request_id(body: dict[str, Any], action: dict[str, Any]) -> str:
    """The idempotency key of a click, from what every delivery of it carries: who clicked
    what on which message, and Slack's own ids of the click where present. A redelivery
    has the same key; two clicks differ at least by action_ts or by what the button held."""
    parts = {
        "user": (body.get("user") or {}).get("id"),
        "message": (body.get("container") or {}).get("message_ts")
        or (body.get("message") or {}).get("ts"),
        "action": action.get("action_id"), "value": action.get("value"),
        "action_ts": action.get("action_ts"), "trigger": body.get("trigger_id"),
    }
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]
    return f"slack:click:{digest}"


def command_request_id(command: dict[str, Any]) -> str | None:
    """A slash command's key: Slack's trigger id, unique per invocation. Without one there
    is nothing that tells a redelivery from a new command, so none is used."""
    trigger = command.get("trigger_id")
    return f"slack:command:{trigger}" if trigger else None


def _fields(event: str, actor: Actor, action: str, ref: Ref | None) -> dict[str, Any]:
    """The structured part of a log line (bot.logs writes it as JSON keys)."""
    return {"event": event, "actor": actor.id, "channel": actor.channel, "action": action,
            "rollout_id": ref.rollout_id if ref is not None else None,
            "target": ref.describe() if ref is not None else None}


def _actor(command: dict[str, Any]) -> Actor:
    return Actor(id=str(command.get("user_id") or "unknown"),
                 name=command.get("user_name") or None, via=Via.SLACK,
                 channel=command.get("channel_id") or None)


def _metadata_channel(view: dict[str, Any]) -> str | None:
    """The channel the Roll back modal was opened from, as the bot wrote it in its metadata."""
    try:
        channel = json.loads(str(view.get("private_metadata") or "{}")).get("channel")
    except (ValueError, AttributeError):
        return None
    return str(channel) if channel else None


def _ephemeral(client: WebClient, channel: str, user: str, text: str,
               telemetry: Telemetry) -> None:
    try:
        client.chat_postEphemeral(channel=channel, user=user, text=text)
    except Exception:
        log.exception("could not post an ephemeral answer to %s", user)
        telemetry.slack_error("chat.postEphemeral")


def _respond(respond: Respond, text: str, telemetry: Telemetry, *,
             replace_original: bool | None = None) -> None:
    response_url.answer(respond, text, telemetry, replace_original=replace_original)

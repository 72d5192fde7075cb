"""The Bolt listeners for `/rollout` and the card's buttons.

Each listener acks first (Slack allows 3 seconds), then parses, authorizes, calls the
service through `run_command` (or the version-checked button path), and renders the answer.
Nothing else lives here (DESIGN §9 point 4); the work after the ack runs on Bolt's listener
executor, so a slow cluster never delays the ack.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from typing import Any

from slack_bolt import Ack, App, Respond

from handlers.authorization import Authorizer
from handlers.card_sync import CardPublisher
from handlers.cards import APPROVE, PAUSE, RESUME, ROLLBACK, ButtonValue
from handlers.commands import CHANGING_VERBS, CommandRequest, Verb, run_command
from handlers.grammar import USAGE, parse
from handlers.replies import error_reply, result_reply
from handlers.telemetry import NoTelemetry, Telemetry
from rollout.errors import (
    ClusterUnavailable,
    InvalidInput,
    NeedsOperator,
    RolloutError,
    Unauthorized,
)
from rollout.models import Actor
from rollout.service import Outcome, Ref, RolloutService

log = logging.getLogger(__name__)

WORKING = ":hourglass_flowing_sand: Working on it…"
BUTTON_VERBS = {APPROVE: Verb.APPROVE, PAUSE: Verb.PAUSE, RESUME: Verb.RESUME,
                ROLLBACK: Verb.ROLLBACK}
BUTTON_PATTERN = re.compile(r"^rollout_(approve|pause|resume|rollback)$")


@dataclass
class SlackEdge:
    service: RolloutService
    authorizer: Authorizer
    cards: CardPublisher
    namespace: str = "default"
    telemetry: Telemetry | None = None

    @property
    def _tel(self) -> Telemetry:
        return self.telemetry or NoTelemetry()

    # -- /rollout ------------------------------------------------------------------------

    def on_command(self, ack: Ack, command: dict[str, Any], respond: Respond) -> None:
        try:
            req = parse(str(command.get("text") or ""), namespace=self.namespace)
        except InvalidInput as exc:
            ack(text=error_reply(exc))
            self._tel.request("command", "invalid")
            self._audit(_actor(command), "command", None, f"bad input: {exc}")
            return
        self._tel.request("command", req.verb.value)
        if req.verb is Verb.HELP:
            ack(text=USAGE)
            return
        if req.verb in CHANGING_VERBS:
            ack(text=WORKING)
        else:
            ack()
        trigger = command.get("trigger_id")
        req = replace(req, request_id=f"slack:{trigger}" if trigger else None)
        _respond(respond, self._run(req, _actor(command)), self._tel)

    def _run(self, req: CommandRequest, actor: Actor) -> str:
        ref = req.ref if req.pool else None
        try:
            denial = self.authorizer.denial(req.verb, user_id=actor.id, channel_id=actor.channel)
            if denial:
                return self._deny(actor, req.verb.value, ref, denial)
            return result_reply(run_command(self.service, req, actor))
        except RolloutError as exc:
            return self._failed(exc, actor, req.verb.value, ref)
        except Exception:
            log.exception("/rollout %s failed", req.verb.value)
            return ":warning: Something went wrong on the bot's side; it is logged. " \
                   "Nothing more was done."

    # -- buttons -------------------------------------------------------------------------

    def on_button(self, ack: Ack, body: dict[str, Any], action: dict[str, Any],
                  respond: Respond) -> None:
        ack()
        verb = BUTTON_VERBS[str(action.get("action_id"))]
        self._tel.request("button", verb.value)
        user = body.get("user") or {}
        channel = (body.get("channel") or {}).get("id") or \
            (body.get("container") or {}).get("channel_id")
        actor = Actor(id=str(user.get("id")), name=user.get("username") or user.get("name"),
                      via="slack", channel=channel)
        text = self._click(verb, actor, str(action.get("value") or ""),
                           request_id=f"slack:{body.get('trigger_id')}:{action.get('action_ts')}")
        if text:
            _respond(respond, text, self._tel, replace_original=False)

    def _click(self, verb: Verb, actor: Actor, raw: str, *, request_id: str) -> str | None:
        """The button path; returns what to tell the clicker, None when the card says it."""
        ref: Ref | None = None
        try:
            value = ButtonValue.decode(raw)
            ref = Ref(rollout_id=value.rollout_id)
            denial = self.authorizer.denial(verb, user_id=actor.id, channel_id=actor.channel)
            if denial:
                return self._deny(actor, verb.value, ref, denial)
            outcome = self._apply_click(verb, ref, value, actor, request_id)
        except RolloutError as exc:
            return self._failed(exc, actor, verb.value, ref)
        except Exception:
            log.exception("button %s failed", verb.value)
            return ":warning: Something went wrong on the bot's side; it is logged."
        if outcome is None:
            return (":information_source: This card is outdated: the rollout has moved on "
                    "since it was drawn. Nothing changed; look at the card again.")
        if outcome.changed and outcome.ok:
            return None
        return result_reply_for(outcome)

    def _apply_click(self, verb: Verb, ref: Ref, value: ButtonValue, actor: Actor,
                     request_id: str) -> Outcome | None:
        if verb is Verb.APPROVE:  # the service checks step and version under the lock
            return self.service.approve(ref, actor=actor, step=value.step,
                                        version=value.version, request_id=request_id)
        if self.service.get(ref).version != value.version:
            return None
        if verb is Verb.PAUSE:
            return self.service.pause(ref, actor=actor, request_id=request_id)
        if verb is Verb.RESUME:
            return self.service.resume(ref, actor=actor, request_id=request_id)
        return self.service.rollback(ref, actor=actor, request_id=request_id)

    # -- refusals and failures -----------------------------------------------------------

    def _deny(self, actor: Actor, action: str, ref: Ref | None, reason: str) -> str:
        self._tel.denial(action)
        self._audit(actor, action, ref, reason)
        return f":no_entry: {reason}"

    def _failed(self, exc: RolloutError, actor: Actor, action: str, ref: Ref | None) -> str:
        if isinstance(exc, Unauthorized):  # self-approval and the like, refused by the domain
            self._tel.denial(action)
            self._audit(actor, action, ref, str(exc))
        if isinstance(exc, ClusterUnavailable):
            self._tel.kube_error()
        reply = error_reply(exc)
        if isinstance(exc, NeedsOperator) and ref is not None:
            try:
                self.cards.post_to_thread(self.service.get(ref), reply)
            except RolloutError:
                log.warning("no card to alert for %s", ref.describe())
        return reply

    def _audit(self, actor: Actor, action: str, ref: Ref | None, reason: str) -> None:
        try:
            self.service.record_denial(actor=actor, action=action, ref=ref, reason=reason)
        except Exception:  # the answer matters more than the audit line; log loudly
            log.exception("could not audit the refusal of %s by %s", action, actor.id)


def result_reply_for(outcome: Outcome) -> str:
    icon = ":warning:" if not outcome.ok else ":information_source:"
    return f"{icon} {outcome.message}"


def register(app: App, edge: SlackEdge, *, command: str = "/rollout") -> None:
    app.command(command)(edge.on_command)
    app.action(BUTTON_PATTERN)(edge.on_button)


def _actor(command: dict[str, Any]) -> Actor:
    return Actor(id=str(command.get("user_id") or "unknown"),
                 name=command.get("user_name") or None, via="slack",
                 channel=command.get("channel_id") or None)


def _respond(respond: Respond, text: str, telemetry: Telemetry, *,
             replace_original: bool | None = None) -> None:
    try:
        respond(text=text, response_type="ephemeral", replace_original=replace_original)
    except Exception:
        log.exception("could not answer through the response URL")
        telemetry.slack_error("response_url")

"""One log line per Slack request Bolt accepted: who, where, what, and on which rollout.

A Bolt middleware, so it sees HTTP and Socket Mode alike; it runs before the listener, so
what the request led to is on the decision and refusal lines that follow. Requests refused
before Bolt's listeners (a bad signature) are logged by the HTTP edge (bot.web).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from handlers.cards import ButtonValue

log = logging.getLogger("rollout-bot.requests")


def describe(body: dict[str, Any]) -> dict[str, Any]:
    """The fields of a slash command or a button click worth a log line."""
    if "command" in body:
        return {"kind": "command", "actor": body.get("user_id"),
                "channel": body.get("channel_id"),
                "action": f"{body.get('command')} {body.get('text') or ''}".strip()}
    user = body.get("user") or {}
    channel = (body.get("channel") or {}).get("id")
    fields: dict[str, Any] = {"kind": str(body.get("type") or "unknown"),
                              "actor": user.get("id"), "channel": channel}
    actions = body.get("actions") or []
    if actions:
        fields["action"] = actions[0].get("action_id")
        try:
            fields["rollout_id"] = ButtonValue.decode(str(actions[0].get("value") or "")).rollout_id
        except Exception:  # a forged or stale value is the handler's to answer, not ours
            fields["rollout_id"] = None
    return fields


def log_requests(body: dict[str, Any], next: Callable[[], None]) -> None:
    log.info("slack request", extra={"event": "request", **describe(body)})
    next()

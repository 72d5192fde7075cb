"""Response URLs and acknowledgements: what Slack does with an app's answers to a request.

An app answers a slash command or a click by posting JSON to the request's `response_url`
(ephemeral by default, `in_channel`, `replace_original`, `delete_original`), or, for a
slash command, in the body of its immediate HTTP response (the ack). Both land here.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from sandbox.slack.errors import ApiError
from sandbox.slack.workspace import Message, ResponseTarget, ResponseUrlPost, Workspace

SLACKBOT = "USLACKBOT"


def issue(ws: Workspace, base_url: str, target: ResponseTarget, *,
          url_id: str | None = None) -> str:
    """A new response URL on the emulator for a command or a click; `url_id` names it when
    the caller wants to find the answers to its request later."""
    url_id = url_id or f"{target.kind}-{secrets.token_urlsafe(12)}"
    ws.issue_response_url(url_id, target)
    return f"{base_url}/response/{url_id}"


def _blocks(body: dict[str, Any]) -> list[dict[str, Any]] | None:
    blocks = body.get("blocks")
    if isinstance(blocks, str):
        blocks = json.loads(blocks) if blocks else None
    return blocks if isinstance(blocks, list) else None


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() in ("true", "1")


def post(ws: Workspace, url_id: str, body: dict[str, Any]) -> None:
    """Apply a POST to a response URL and record it."""
    target = ws.response_target(url_id)
    if target is None:
        raise ApiError("no_such_response_url", status=404)
    text = body.get("text")
    blocks = _blocks(body)
    replace = _truthy(body.get("replace_original", False))
    delete = _truthy(body.get("delete_original", False))
    response_type = body.get("response_type")
    thread_ts = body.get("thread_ts")
    ws.record_response(
        ResponseUrlPost(
            url_id=url_id,
            kind=target.kind,
            channel=target.channel,
            user=target.user,
            response_type=str(response_type) if response_type is not None else None,
            replace_original=replace,
            delete_original=delete,
            text=None if text is None else str(text),
            blocks=blocks,
            thread_ts=None if thread_ts is None else str(thread_ts),
            body=body,
            at=time.time(),
        )
    )
    if target.kind == "command":
        _command_response(ws, url_id, target, text=text, blocks=blocks, replace=replace,
                          delete=delete, response_type=response_type)
        return
    original = target.message_ts if target.kind == "block_actions" else None
    if delete and original:
        if target.is_ephemeral:
            ws.delete_ephemeral(target.channel, original)
        else:
            ws.delete_message(target.channel, original)
        return
    if replace and original:
        if target.is_ephemeral:
            ws.update_ephemeral(target.channel, original, text=text, blocks=blocks)
        else:
            ws.update_message(target.channel, original, text=text, blocks=blocks)
        return
    show(
        ws,
        target,
        text=str(text or ""),
        blocks=blocks,
        response_type=response_type,
        thread_ts=None if thread_ts is None else str(thread_ts),
    )


def _command_response(ws: Workspace, url_id: str, target: ResponseTarget, *, text: Any,
                      blocks: list[dict[str, Any]] | None, replace: bool, delete: bool,
                      response_type: Any) -> None:
    """A command's response URL: `replace_original` and `delete_original` act on the last
    ephemeral that this command showed (its ack, or an earlier response), as in Slack."""
    shown = ws.shown(url_id)
    if delete:
        if shown is not None:
            ws.delete_ephemeral(target.channel, shown)
        return
    if shown is not None and replace and response_type != "in_channel":
        ws.update_ephemeral(target.channel, shown, text=None if text is None else str(text),
                            blocks=blocks)
        return
    msg = show(ws, target, text=str(text or ""), blocks=blocks, response_type=response_type)
    if msg.is_ephemeral:
        ws.remember_shown(url_id, msg.ts)


def show(
    ws: Workspace,
    target: ResponseTarget,
    *,
    text: str,
    blocks: list[dict[str, Any]] | None,
    response_type: Any,
    thread_ts: str | None = None,
) -> Message:
    """Show an app's answer: in the channel for `in_channel`, else only to the requester."""
    if response_type == "in_channel":
        return ws.post_message(
            target.channel, user=ws.bot_user_id, text=text, blocks=blocks, thread_ts=thread_ts
        )
    return ws.post_ephemeral(
            target.channel,
            user=ws.bot_user_id,
            visible_to=target.user,
            text=text,
            blocks=blocks,
            thread_ts=thread_ts,
        )


def apply_command_ack(
    ws: Workspace, target: ResponseTarget, status: int, content_type: str, body: str, command: str,
    url_id: str | None = None,
) -> None:
    """What Slack shows for a slash command's HTTP answer (a failure comes from Slackbot)."""
    if status != 200:
        ws.post_ephemeral(
            target.channel,
            user=SLACKBOT,
            visible_to=target.user,
            text=f'{command} failed with the error "dispatch_failed" (HTTP {status})',
        )
        return
    if not body.strip():
        return
    if "json" in content_type:
        try:
            parsed = json.loads(body)
        except json.JSONDecodeError:
            parsed = {"text": body}
    else:
        parsed = {"text": body}
    if not isinstance(parsed, dict) or not (parsed.get("text") or parsed.get("blocks")):
        return
    msg = show(
        ws,
        target,
        text=str(parsed.get("text") or ""),
        blocks=_blocks(parsed),
        response_type=parsed.get("response_type"),
    )
    if url_id is not None and msg.is_ephemeral:
        ws.remember_shown(url_id, msg.ts)


def view_errors(status: int, body: str) -> dict[str, str]:
    """The per-block errors of a view_submission answered with `response_action: errors`."""
    if status != 200 or not body.strip().startswith("{"):
        return {}
    try:
        parsed = json.loads(body)
    except json.JSONDecodeError:
        return {}
    if not isinstance(parsed, dict) or parsed.get("response_action") != "errors":
        return {}
    errors = parsed.get("errors")
    return {str(k): str(v) for k, v in errors.items()} if isinstance(errors, dict) else {}

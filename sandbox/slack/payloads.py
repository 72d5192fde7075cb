"""Request bodies exactly as Slack sends them to an app: slash commands and block_actions.

A slash command is a form-encoded body of flat fields; an interaction is a form-encoded body
with one field, `payload`, holding the JSON. Tests build forged or stale requests from these too.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any
from urllib.parse import urlencode

VERIFICATION_TOKEN = "sandbox-verification-token"  # noqa: S105 - deprecated field, not a secret


def trigger_id() -> str:
    """A fresh trigger id shaped like Slack's ("1234567890123.1234567890.abcdef...")."""
    return f"{int(time.time() * 1000)}.{secrets.randbelow(10**10):010d}.{secrets.token_hex(16)}"


def action_ts() -> str:
    now = time.time()
    return f"{int(now)}.{int((now % 1) * 1_000_000):06d}"


def slash_command_fields(
    *,
    user_id: str,
    channel_id: str,
    text: str,
    command: str = "/rollout",
    user_name: str = "",
    channel_name: str = "",
    team_id: str = "T0SANDBOX",
    team_domain: str = "sandbox",
    api_app_id: str = "A0ROLLOUT",
    response_url: str = "",
    trigger: str | None = None,
    token: str = VERIFICATION_TOKEN,
) -> dict[str, str]:
    """The form fields of a slash command, in Slack's order."""
    return {
        "token": token,
        "team_id": team_id,
        "team_domain": team_domain,
        "channel_id": channel_id,
        "channel_name": channel_name,
        "user_id": user_id,
        "user_name": user_name,
        "command": command,
        "text": text,
        "api_app_id": api_app_id,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": trigger or trigger_id(),
    }


def slash_command_body(
    *,
    user_id: str,
    channel_id: str,
    text: str,
    command: str = "/rollout",
    user_name: str = "",
    channel_name: str = "",
    team_id: str = "T0SANDBOX",
    team_domain: str = "sandbox",
    api_app_id: str = "A0ROLLOUT",
    response_url: str = "",
    trigger: str | None = None,
    token: str = VERIFICATION_TOKEN,
) -> bytes:
    """A slash command's raw body (`application/x-www-form-urlencoded`)."""
    fields = slash_command_fields(
        user_id=user_id,
        channel_id=channel_id,
        text=text,
        command=command,
        user_name=user_name,
        channel_name=channel_name,
        team_id=team_id,
        team_domain=team_domain,
        api_app_id=api_app_id,
        response_url=response_url,
        trigger=trigger,
        token=token,
    )
    return urlencode(fields).encode()


def button_action(
    *,
    action_id: str,
    value: str,
    block_id: str,
    text: str | None = None,
    style: str | None = None,
) -> dict[str, Any]:
    """One entry of a block_actions payload's `actions` for a clicked button."""
    action: dict[str, Any] = {
        "action_id": action_id,
        "block_id": block_id,
        "text": {"type": "plain_text", "text": text or action_id, "emoji": True},
        "value": value,
        "type": "button",
        "action_ts": action_ts(),
    }
    if style:
        action["style"] = style
    return action


def block_actions_payload(
    *,
    user_id: str,
    channel_id: str,
    message_ts: str,
    action: dict[str, Any],
    message: dict[str, Any] | None = None,
    is_ephemeral: bool = False,
    user_name: str = "",
    channel_name: str = "",
    team_id: str = "T0SANDBOX",
    team_domain: str = "sandbox",
    api_app_id: str = "A0ROLLOUT",
    response_url: str = "",
    trigger: str | None = None,
    token: str = VERIFICATION_TOKEN,
) -> dict[str, Any]:
    """The JSON of a block_actions click (Slack omits `message` for ephemeral messages)."""
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": user_id, "username": user_name, "name": user_name, "team_id": team_id},
        "api_app_id": api_app_id,
        "token": token,
        "container": {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel_id,
            "is_ephemeral": is_ephemeral,
        },
        "trigger_id": trigger or trigger_id(),
        "team": {"id": team_id, "domain": team_domain},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel_id, "name": channel_name},
    }
    if message is not None and not is_ephemeral:
        payload["message"] = message
    payload["state"] = {"values": {}}
    payload["response_url"] = response_url
    payload["actions"] = [action]
    return payload


def block_actions_body(
    *,
    user_id: str,
    channel_id: str,
    message_ts: str,
    action_id: str,
    value: str,
    block_id: str = "actions",
    button_text: str | None = None,
    message: dict[str, Any] | None = None,
    is_ephemeral: bool = False,
    user_name: str = "",
    channel_name: str = "",
    team_id: str = "T0SANDBOX",
    team_domain: str = "sandbox",
    api_app_id: str = "A0ROLLOUT",
    response_url: str = "",
    trigger: str | None = None,
    token: str = VERIFICATION_TOKEN,
) -> bytes:
    """A button click's raw body: `payload=<json>`, form-encoded."""
    payload = block_actions_payload(
        user_id=user_id,
        channel_id=channel_id,
        message_ts=message_ts,
        action=button_action(action_id=action_id, value=value, block_id=block_id, text=button_text),
        message=message,
        is_ephemeral=is_ephemeral,
        user_name=user_name,
        channel_name=channel_name,
        team_id=team_id,
        team_domain=team_domain,
        api_app_id=api_app_id,
        response_url=response_url,
        trigger=trigger,
        token=token,
    )
    return encode_payload(payload)


def view_submission_payload(
    *,
    user_id: str,
    view: dict[str, Any],
    user_name: str = "",
    team_id: str = "T0SANDBOX",
    team_domain: str = "sandbox",
    api_app_id: str = "A0ROLLOUT",
    trigger: str | None = None,
    token: str = VERIFICATION_TOKEN,
) -> dict[str, Any]:
    """The JSON of a modal's submission; `view` carries `state.values` as typed."""
    return {
        "type": "view_submission",
        "team": {"id": team_id, "domain": team_domain},
        "user": {"id": user_id, "username": user_name, "name": user_name, "team_id": team_id},
        "api_app_id": api_app_id,
        "token": token,
        "trigger_id": trigger or trigger_id(),
        "view": view,
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }


def input_values(blocks: list[dict[str, Any]], typed: dict[str, str]) -> dict[str, Any]:
    """`state.values` of a modal: every input block's element, with what was typed into it
    (keyed by block_id); empty inputs are present with a null value, as in Slack."""
    values: dict[str, Any] = {}
    for block in blocks:
        element = block.get("element") or {}
        if block.get("type") != "input" or not element.get("action_id"):
            continue
        text = typed.get(str(block.get("block_id")), "")
        values[str(block["block_id"])] = {
            str(element["action_id"]): {"type": element.get("type", "plain_text_input"),
                                        "value": text or None},
        }
    return values


def encode_payload(payload: dict[str, Any]) -> bytes:
    return urlencode({"payload": json.dumps(payload, separators=(",", ":"))}).encode()


def find_button(
    blocks: list[dict[str, Any]], action_id: str, value: str | None = None
) -> tuple[str, dict[str, Any]] | None:
    """The (block_id, button element) for `action_id` (and `value`, when several match).

    Looks in `actions` blocks and in section accessories, where Slack allows buttons.
    """
    fallback: tuple[str, dict[str, Any]] | None = None
    for index, block in enumerate(blocks):
        elements: list[dict[str, Any]] = list(block.get("elements") or [])
        if block.get("type") == "section" and isinstance(block.get("accessory"), dict):
            elements.append(block["accessory"])
        if block.get("type") not in ("actions", "section"):
            continue
        for element in elements:
            if element.get("type") != "button" or element.get("action_id") != action_id:
                continue
            block_id = str(block.get("block_id") or f"b{index}")
            if value is None or element.get("value") == value:
                return block_id, element
            fallback = fallback or (block_id, element)
    return fallback

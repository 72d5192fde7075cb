"""The chat page's server side: its static files and the state it polls.

The page is plain HTML, CSS and JS shipped in `sandbox/static/` (no build step, no network),
read with importlib.resources so it works from a checkout and from an installed wheel.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from sandbox.slack.workspace import Message, Workspace

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
PAGE = "chat.html"


def static_file(name: str) -> tuple[bytes, str] | None:
    """A file from sandbox/static by its bare name, with its content type."""
    if "/" in name or "\\" in name or name.startswith("."):
        return None
    suffix = name[name.rfind(".") :] if "." in name else ""
    content_type = _TYPES.get(suffix)
    if content_type is None:
        return None
    entry = resources.files("sandbox").joinpath("static", name)
    if not entry.is_file():
        return None
    return entry.read_bytes(), content_type


def _message(ws: Workspace, msg: Message) -> dict[str, Any]:
    return {
        "ts": msg.ts,
        "user": msg.user,
        "text": msg.text,
        "blocks": msg.blocks,
        "thread_ts": msg.thread_ts,
        "edited": msg.edited,
        "is_bot": msg.bot_id is not None or msg.user == "USLACKBOT",
        "ephemeral": msg.is_ephemeral,
        "reactions": [{"name": k, "count": len(v)} for k, v in msg.reactions.items()],
    }


def state(ws: Workspace, channel: str, user: str, *, events_url: str | None) -> dict[str, Any]:
    """Everything the page draws for `user` looking at `channel`.

    `messages` are top-level, oldest first, each with its `replies`; `ephemerals` are those
    only `user` sees in this channel.
    """
    channel_id = ws.channel(channel).id
    top: list[dict[str, Any]] = []
    by_ts: dict[str, dict[str, Any]] = {}
    for msg in ws.messages(channel_id):
        item = _message(ws, msg)
        if msg.is_reply and msg.thread_ts in by_ts:
            by_ts[msg.thread_ts]["replies"].append(item)
            continue
        item["replies"] = []
        by_ts[msg.ts] = item
        top.append(item)
    return {
        "team": {"id": ws.team_id, "name": ws.team_name, "domain": ws.team_domain},
        "bot_user_id": ws.bot_user_id,
        "channel": channel_id,
        "user": user,
        "events_url": events_url,
        "users": [
            {
                "id": u.id,
                "name": u.name,
                "real_name": u.real_name or u.name,
                "title": u.title,
                "is_bot": u.is_bot,
            }
            for u in ws.users()
        ],
        "channels": [{"id": c.id, "name": c.name} for c in ws.channels()],
        "usergroups": ws.usergroup_handles(),
        "messages": top,
        "ephemerals": [_message(ws, m) for m in ws.ephemerals(channel_id, user)],
        "views": [
            {"id": v.id, "title": v.view.get("title"), "submit": v.view.get("submit"),
             "close": v.view.get("close"), "blocks": v.view.get("blocks") or [],
             "errors": v.errors}
            for v in ws.views_of(user)
        ],
    }

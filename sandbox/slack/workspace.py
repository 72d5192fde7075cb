"""The emulated Slack workspace: people, channels, user groups, messages, and what was called.

Everything the Web API, the response URLs and the chat page read or change lives here behind
one lock, so the threaded HTTP server and the tests see one consistent world. Readers get
copies, never the live objects.
"""

from __future__ import annotations

import copy
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from sandbox.slack.errors import ApiError


@dataclass
class User:
    id: str
    name: str
    real_name: str = ""
    title: str = ""
    is_bot: bool = False

    def to_slack(self, team_id: str) -> dict[str, Any]:
        real = self.real_name or self.name
        return {
            "id": self.id,
            "team_id": team_id,
            "name": self.name,
            "deleted": False,
            "real_name": real,
            "tz": "Europe/London",
            "is_bot": self.is_bot,
            "is_app_user": False,
            "profile": {
                "real_name": real,
                "display_name": self.name,
                "title": self.title,
                "team": team_id,
            },
        }


@dataclass
class Channel:
    id: str
    name: str
    is_private: bool = False
    created: int = 1_700_000_000

    def to_slack(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "is_channel": not self.is_private,
            "is_group": False,
            "is_im": False,
            "is_private": self.is_private,
            "is_archived": False,
            "is_general": False,
            "is_member": True,
            "created": self.created,
            "name_normalized": self.name,
        }


@dataclass
class Message:
    """A message as stored; `replies` holds the ts of its thread replies (oldest first).

    `visible_to` is set only on ephemeral messages: the one user who sees it.
    """

    ts: str
    channel: str
    user: str
    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)
    thread_ts: str | None = None
    edited: bool = False
    replies: list[str] = field(default_factory=list)
    bot_id: str | None = None
    visible_to: str | None = None
    reactions: dict[str, list[str]] = field(default_factory=dict)

    @property
    def reply_count(self) -> int:
        return len(self.replies)

    @property
    def is_reply(self) -> bool:
        return self.thread_ts is not None and self.thread_ts != self.ts

    @property
    def is_ephemeral(self) -> bool:
        return self.visible_to is not None

    def to_slack(self, team_id: str, app_id: str) -> dict[str, Any]:
        """The message object as Slack returns it from the Web API and in payloads."""
        out: dict[str, Any] = {"type": "message", "user": self.user, "text": self.text}
        out["ts"] = self.ts
        out["team"] = team_id
        if self.bot_id:
            out["bot_id"] = self.bot_id
            out["app_id"] = app_id
        if self.blocks:
            out["blocks"] = copy.deepcopy(self.blocks)
        if self.thread_ts:
            out["thread_ts"] = self.thread_ts
            if self.thread_ts != self.ts:
                out["parent_user_id"] = self.user
        if self.replies:
            out["thread_ts"] = self.ts
            out["reply_count"] = len(self.replies)
            out["latest_reply"] = self.replies[-1]
        if self.edited:
            out["edited"] = {"user": self.user, "ts": self.ts}
        if self.reactions:
            out["reactions"] = [
                {"name": name, "users": list(users), "count": len(users)}
                for name, users in self.reactions.items()
            ]
        return out


@dataclass(frozen=True)
class ApiCall:
    """One Web API call as the emulator saw it (params merged from query, form and JSON)."""

    method: str
    params: dict[str, Any]
    token: str | None
    at: float
    ok: bool
    error: str | None


@dataclass(frozen=True)
class ResponseUrlPost:
    """What arrived at a response URL, and where it was about (the command or the click)."""

    url_id: str
    kind: str  # "command" or "block_actions"
    channel: str
    user: str
    response_type: str | None
    replace_original: bool
    delete_original: bool
    text: str | None
    blocks: list[dict[str, Any]] | None
    thread_ts: str | None
    body: dict[str, Any]
    at: float


@dataclass(frozen=True)
class ResponseTarget:
    """What a response URL was issued for."""

    kind: str
    channel: str
    user: str
    message_ts: str | None = None
    is_ephemeral: bool = False


@dataclass(frozen=True)
class Delivery:
    """One signed request the emulator delivered to the bot, and how the bot answered."""

    kind: str  # "command" or "block_actions"
    url: str
    status: int
    elapsed: float
    body: str


@dataclass
class OpenView:
    """A modal an app opened for one person (views.open), until it is submitted or closed.

    `errors` holds what the app's last `response_action: errors` said, per block_id."""

    id: str
    user: str
    view: dict[str, Any]
    errors: dict[str, str] = field(default_factory=dict)

    def to_slack(self, team_id: str, app_id: str, bot_id: str,
                 values: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
        """The view object as Slack returns it from views.open and in view_submission."""
        return {
            "id": self.id, "team_id": team_id, "type": self.view.get("type", "modal"),
            "blocks": copy.deepcopy(self.view.get("blocks") or []),
            "private_metadata": self.view.get("private_metadata", ""),
            "callback_id": self.view.get("callback_id", ""),
            "state": {"values": values or {}},
            "hash": f"{int(time.time())}.{secrets.token_hex(4)}",
            "title": self.view.get("title"), "close": self.view.get("close"),
            "submit": self.view.get("submit"), "clear_on_close": False,
            "notify_on_close": bool(self.view.get("notify_on_close")),
            "external_id": self.view.get("external_id", ""), "previous_view_id": None,
            "root_view_id": self.id, "app_id": app_id, "bot_id": bot_id,
        }


# Slack accepts a trigger id for 3 seconds, once.
TRIGGER_SECONDS = 3.0


def with_block_ids(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A copy of `blocks` where each block has a `block_id`, generated as Slack does if absent."""
    out = copy.deepcopy(blocks)
    for block in out:
        if isinstance(block, dict) and not block.get("block_id"):
            block["block_id"] = secrets.token_urlsafe(3)
    return out


class TsClock:
    """Slack-style message timestamps ("1732512345.000100"), strictly increasing."""

    def __init__(self) -> None:
        self._last_us = 0

    def next(self) -> str:
        now_us = int(time.time() * 1_000_000)
        self._last_us = max(now_us, self._last_us + 1)
        return f"{self._last_us // 1_000_000}.{self._last_us % 1_000_000:06d}"


class Workspace:
    """One Slack team with its bot user; all methods are thread-safe."""

    def __init__(
        self,
        *,
        team_id: str = "T0SANDBOX",
        team_domain: str = "sandbox",
        team_name: str = "Rollout Sandbox",
        bot_user_id: str = "U0BOT",
        bot_user_name: str = "rollout-bot",
        bot_id: str = "B0BOT",
        app_id: str = "A0ROLLOUT",
    ) -> None:
        self.team_id = team_id
        self.team_domain = team_domain
        self.team_name = team_name
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.app_id = app_id
        self._lock = threading.RLock()
        self._clock = TsClock()
        self._users: dict[str, User] = {}
        self._channels: dict[str, Channel] = {}
        self._usergroups: dict[str, list[str]] = {}
        self._group_handles: dict[str, str] = {}
        self._messages: dict[str, list[Message]] = {}
        self._ephemerals: list[Message] = []
        self._calls: list[ApiCall] = []
        self._responses: list[ResponseUrlPost] = []
        self._refused_responses: list[str] = []  # response URL ids, once per post refused
        self._response_targets: dict[str, ResponseTarget] = {}
        self._deliveries: list[Delivery] = []
        self._triggers: dict[str, tuple[str, float]] = {}
        self._views: dict[str, OpenView] = {}
        self._shown: dict[str, str] = {}  # command response URL -> the ephemeral it showed
        self.add_user(bot_user_id, bot_user_name, real_name="Rollout Bot", is_bot=True)
        self.add_user("USLACKBOT", "slackbot", real_name="Slackbot", is_bot=True)

    # -- directory ---------------------------------------------------------------------------

    def add_user(
        self, user_id: str, name: str, *, real_name: str = "", title: str = "", is_bot: bool = False
    ) -> None:
        with self._lock:
            self._users[user_id] = User(user_id, name, real_name, title, is_bot)

    def add_channel(self, channel_id: str, name: str, *, is_private: bool = False) -> None:
        with self._lock:
            self._channels[channel_id] = Channel(channel_id, name.lstrip("#"), is_private)
            self._messages.setdefault(channel_id, [])

    def add_usergroup(self, group_id: str, user_ids: list[str], *, handle: str = "") -> None:
        """A user group; `handle` is how a mention of it reads (`@reviewers`)."""
        with self._lock:
            self._usergroups[group_id] = list(user_ids)
            self._group_handles[group_id] = handle or group_id

    def usergroup_handles(self) -> dict[str, str]:
        with self._lock:
            return dict(self._group_handles)

    def users(self) -> list[User]:
        with self._lock:
            return [copy.copy(u) for u in self._users.values()]

    def channels(self) -> list[Channel]:
        with self._lock:
            return [copy.copy(c) for c in self._channels.values()]

    def user(self, user_id: str) -> User:
        with self._lock:
            found = self._users.get(user_id)
            if found is None:
                raise ApiError("user_not_found")
            return copy.copy(found)

    def channel(self, channel: str) -> Channel:
        """A channel by id, or by name with or without `#` (as chat.postMessage allows)."""
        with self._lock:
            if channel in self._channels:
                return copy.copy(self._channels[channel])
            name = channel.lstrip("#")
            for found in self._channels.values():
                if found.name == name:
                    return copy.copy(found)
            raise ApiError("channel_not_found")

    def usergroup_users(self, group_id: str) -> list[str]:
        with self._lock:
            if group_id not in self._usergroups:
                raise ApiError("no_such_subteam")
            return list(self._usergroups[group_id])

    # -- messages ----------------------------------------------------------------------------

    def post_message(
        self,
        channel: str,
        *,
        user: str,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        thread_ts: str | None = None,
    ) -> Message:
        with self._lock:
            channel_id = self.channel(channel).id
            parent: Message | None = None
            if thread_ts:
                parent = self._find(channel_id, thread_ts)
                if parent is None:
                    raise ApiError("thread_not_found")
                if parent.thread_ts and parent.thread_ts != parent.ts:
                    parent = self._find(channel_id, parent.thread_ts)
                    assert parent is not None
            msg = Message(
                ts=self._clock.next(),
                channel=channel_id,
                user=user,
                text=text,
                blocks=with_block_ids(blocks or []),
                thread_ts=parent.ts if parent else None,
                bot_id=self.bot_id if user == self.bot_user_id else None,
            )
            if parent is not None:
                parent.replies.append(msg.ts)
            self._messages[channel_id].append(msg)
            return copy.deepcopy(msg)

    def update_message(
        self,
        channel: str,
        ts: str,
        *,
        text: str | None,
        blocks: list[dict[str, Any]] | None,
        by_user: str | None = None,
    ) -> Message:
        """chat.update: omitted text or blocks keep what the message had (as Slack does)."""
        with self._lock:
            channel_id = self.channel(channel).id
            msg = self._find(channel_id, ts)
            if msg is None:
                raise ApiError("message_not_found")
            if by_user is not None and msg.user != by_user:
                raise ApiError("cant_update_message")
            if text is not None:
                msg.text = text
            if blocks is not None:
                msg.blocks = with_block_ids(blocks)
            msg.edited = True
            return copy.deepcopy(msg)

    def delete_message(self, channel: str, ts: str) -> None:
        with self._lock:
            channel_id = self.channel(channel).id
            msg = self._find(channel_id, ts)
            if msg is None:
                raise ApiError("message_not_found")
            self._messages[channel_id].remove(msg)
            if msg.thread_ts and msg.thread_ts != msg.ts:
                parent = self._find(channel_id, msg.thread_ts)
                if parent is not None and ts in parent.replies:
                    parent.replies.remove(ts)

    def add_reaction(self, channel: str, ts: str, name: str, user: str) -> None:
        with self._lock:
            msg = self._find(self.channel(channel).id, ts)
            if msg is None:
                raise ApiError("message_not_found")
            users = msg.reactions.setdefault(name, [])
            if user in users:
                raise ApiError("already_reacted")
            users.append(user)

    def post_ephemeral(
        self,
        channel: str,
        *,
        user: str,
        visible_to: str,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        thread_ts: str | None = None,
    ) -> Message:
        with self._lock:
            channel_id = self.channel(channel).id
            if visible_to not in self._users:
                raise ApiError("user_not_in_channel")
            msg = Message(
                ts=self._clock.next(),
                channel=channel_id,
                user=user,
                text=text,
                blocks=with_block_ids(blocks or []),
                thread_ts=thread_ts,
                bot_id=self.bot_id if user == self.bot_user_id else None,
                visible_to=visible_to,
            )
            self._ephemerals.append(msg)
            return copy.deepcopy(msg)

    def update_ephemeral(
        self, channel: str, ts: str, *, text: str | None, blocks: list[dict[str, Any]] | None
    ) -> None:
        with self._lock:
            for msg in self._ephemerals:
                if msg.channel == channel and msg.ts == ts:
                    if text is not None:
                        msg.text = text
                    if blocks is not None:
                        msg.blocks = with_block_ids(blocks)
                    return
            raise ApiError("message_not_found")

    def delete_ephemeral(self, channel: str, ts: str) -> None:
        with self._lock:
            self._ephemerals = [
                m for m in self._ephemerals if not (m.channel == channel and m.ts == ts)
            ]

    def message(self, channel: str, ts: str) -> Message | None:
        with self._lock:
            found = self._find(self.channel(channel).id, ts)
            return copy.deepcopy(found) if found else None

    def ephemeral(self, channel: str, ts: str) -> Message | None:
        with self._lock:
            for msg in self._ephemerals:
                if msg.channel == channel and msg.ts == ts:
                    return copy.deepcopy(msg)
            return None

    def messages(self, channel: str, *, top_level_only: bool = False) -> list[Message]:
        with self._lock:
            found = self._messages.get(self.channel(channel).id, [])
            return [copy.deepcopy(m) for m in found if not top_level_only or not m.is_reply]

    def thread(self, channel: str, ts: str) -> list[Message]:
        """The thread's parent then its replies, like conversations.replies."""
        with self._lock:
            channel_id = self.channel(channel).id
            parent = self._find(channel_id, ts)
            if parent is None:
                return []
            root = parent.thread_ts or parent.ts
            return [
                copy.deepcopy(m) for m in self._messages[channel_id] if root in (m.ts, m.thread_ts)
            ]

    def ephemerals(self, channel: str, user: str) -> list[Message]:
        with self._lock:
            return [
                copy.deepcopy(m)
                for m in self._ephemerals
                if m.channel == channel and m.visible_to == user
            ]

    def new_ts(self) -> str:
        with self._lock:
            return self._clock.next()

    def _find(self, channel_id: str, ts: str) -> Message | None:
        for msg in self._messages.get(channel_id, []):
            if msg.ts == ts:
                return msg
        return None

    # -- records -----------------------------------------------------------------------------

    def record_call(self, call: ApiCall) -> None:
        with self._lock:
            self._calls.append(call)

    def calls(self) -> list[ApiCall]:
        with self._lock:
            return list(self._calls)

    def clear_calls(self) -> None:
        with self._lock:
            self._calls.clear()

    def issue_response_url(self, url_id: str, target: ResponseTarget) -> None:
        with self._lock:
            self._response_targets[url_id] = target

    def response_target(self, url_id: str) -> ResponseTarget | None:
        with self._lock:
            return self._response_targets.get(url_id)

    def record_response(self, post: ResponseUrlPost) -> None:
        with self._lock:
            self._responses.append(post)

    def responses(self) -> list[ResponseUrlPost]:
        with self._lock:
            return list(self._responses)

    def record_refused_response(self, url_id: str) -> None:
        """A post to a response URL that an injected fault refused."""
        with self._lock:
            self._refused_responses.append(url_id)

    def refused_responses(self) -> list[str]:
        with self._lock:
            return list(self._refused_responses)

    def remember_shown(self, url_id: str, ts: str) -> None:
        """The ephemeral a command's ack or response URL showed; `replace_original` edits it."""
        with self._lock:
            self._shown[url_id] = ts

    def shown(self, url_id: str) -> str | None:
        with self._lock:
            return self._shown.get(url_id)

    # -- triggers and modals -----------------------------------------------------------------

    def issue_trigger(self, trigger_id: str, user: str, *, at: float | None = None) -> None:
        """A trigger id handed to the app with a request (`at`: its monotonic time)."""
        with self._lock:
            self._triggers[trigger_id] = (user, time.monotonic() if at is None else at)

    def open_view(self, trigger_id: str, view: dict[str, Any]) -> OpenView:
        """views.open: a fresh, unused trigger opens a modal for the person who acted."""
        with self._lock:
            issued = self._triggers.pop(trigger_id, None)
            if issued is None:
                raise ApiError("invalid_trigger_id")
            user, at = issued
            if time.monotonic() - at > TRIGGER_SECONDS:
                raise ApiError("expired_trigger_id")
            if view.get("type") != "modal" or not view.get("title") or "blocks" not in view:
                raise ApiError("invalid_arguments")
            opened = OpenView(id=f"V{secrets.token_hex(5).upper()}", user=user,
                              view={**view, "blocks": with_block_ids(view["blocks"])})
            self._views[opened.id] = opened
            return copy.deepcopy(opened)

    def view(self, view_id: str) -> OpenView | None:
        with self._lock:
            found = self._views.get(view_id)
            return copy.deepcopy(found) if found else None

    def views_of(self, user: str) -> list[OpenView]:
        with self._lock:
            return [copy.deepcopy(v) for v in self._views.values() if v.user == user]

    def close_view(self, view_id: str) -> None:
        with self._lock:
            self._views.pop(view_id, None)

    def set_view_errors(self, view_id: str, errors: dict[str, str]) -> None:
        with self._lock:
            if view_id in self._views:
                self._views[view_id].errors = dict(errors)

    def record_delivery(self, delivery: Delivery) -> None:
        with self._lock:
            self._deliveries.append(delivery)

    def deliveries(self) -> list[Delivery]:
        with self._lock:
            return list(self._deliveries)


def seed_default(ws: Workspace) -> None:
    """The demo's people and places: an on-call engineer, two reviewers, one bystander."""
    ws.add_user("U0ALICE", "alice", real_name="Alice Archer", title="On-call engineer")
    ws.add_user("U0BOB", "bob", real_name="Bob Baker", title="Reviewer")
    ws.add_user("U0CAROL", "carol", real_name="Carol Chen", title="Reviewer")
    ws.add_user("U0DAVE", "dave", real_name="Dave Diaz", title="Not an approver")
    ws.add_channel("C0ROLLOUT", "llm-rollouts")
    ws.add_channel("C0OTHER", "random")
    ws.add_usergroup("S0REVIEWERS", ["U0BOB", "U0CAROL"], handle="reviewers")

"""The Slack Web API methods the bot uses, answered the way Slack answers them.

Each method takes the merged request params and returns the `ok: true` body or raises
`ApiError`; `WebApi.call` adds authentication, injected faults and the call record around it.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

from sandbox.slack.errors import ApiError
from sandbox.slack.faults import FaultBook
from sandbox.slack.workspace import ApiCall, Message, Workspace

Params = dict[str, Any]
Method = Callable[[Params], dict[str, Any]]

# Methods Slack answers without a token.
_NO_AUTH = {"api.test"}


def _str(params: Params, name: str, default: str = "") -> str:
    value = params.get(name)
    return default if value is None else str(value)


def _json_list(params: Params, name: str) -> list[dict[str, Any]] | None:
    """A JSON array param, sent as a list (JSON body) or as a JSON string (form body)."""
    value = params.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ApiError(f"invalid_{name}") from exc
    if not isinstance(value, list):
        raise ApiError(f"invalid_{name}")
    return value


def _decoded(params: Params) -> Params:
    """Params with form-encoded JSON arrays (`blocks`, `attachments`) parsed, when they parse."""
    out = dict(params)
    for name in ("blocks", "attachments"):
        value = out.get(name)
        if isinstance(value, str) and value.startswith("["):
            with contextlib.suppress(json.JSONDecodeError):
                out[name] = json.loads(value)
    return out


class ApiResult:
    """What the HTTP layer sends back: status, headers, JSON body."""

    def __init__(self, status: int, headers: dict[str, str], body: dict[str, Any]) -> None:
        self.status = status
        self.headers = headers
        self.body = body


class WebApi:
    """Dispatches `POST /api/<method>` to the workspace."""

    def __init__(self, workspace: Workspace, faults: FaultBook, *, bot_token: str,
                 app_token: str = "", open_socket: Callable[[], str] | None = None) -> None:
        self.ws = workspace
        self.faults = faults
        self.bot_token = bot_token
        self.app_token = app_token
        self._open_socket = open_socket
        self._methods: dict[str, Method] = {
            "api.test": lambda p: {"args": {k: v for k, v in p.items() if k != "token"}},
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "chat.delete": self._delete,
            "chat.postEphemeral": self._post_ephemeral,
            "chat.getPermalink": self._permalink,
            "conversations.info": self._conversation_info,
            "conversations.history": self._history,
            "conversations.replies": self._replies,
            "users.info": self._user_info,
            "users.list": self._users_list,
            "usergroups.users.list": self._usergroup_users,
            "reactions.add": self._reactions_add,
            "views.open": self._views_open,
            "apps.connections.open": self._connections_open,
        }

    @property
    def methods(self) -> list[str]:
        return sorted(self._methods)

    def call(self, method: str, params: Params, token: str | None) -> ApiResult:
        """Run one Web API call and record it (JSON-string blocks recorded as lists)."""
        params = _decoded(params)
        try:
            body = self._call(method, params, token)
            result = ApiResult(200, {}, {"ok": True, **body})
        except ApiError as err:
            result = ApiResult(err.status, err.headers, err.body())
        error = result.body.get("error")
        self.ws.record_call(
            ApiCall(
                method=method,
                params=params,
                token=token,
                at=time.time(),
                ok=bool(result.body.get("ok")),
                error=str(error) if error is not None else None,
            )
        )
        return result

    def _call(self, method: str, params: Params, token: str | None) -> dict[str, Any]:
        handler = self._methods.get(method)
        if handler is None:
            raise ApiError("unknown_method", extra={"req_method": method})
        fault = self.faults.take(method)
        if fault is not None and fault.stall > 0:
            time.sleep(fault.stall)
        if fault is not None and fault.error:
            raise ApiError(fault.error, status=fault.http_status, headers=fault.headers)
        if method not in _NO_AUTH:
            if not token:
                raise ApiError("not_authed")
            if method == "apps.connections.open":  # the app-level token, and only it
                if token != self.app_token:
                    raise ApiError("not_allowed_token_type" if token == self.bot_token
                                   else "invalid_auth")
            elif token != self.bot_token:
                raise ApiError("invalid_auth")
        return handler(params)

    # -- methods -----------------------------------------------------------------------------

    def _message_json(self, msg: Message) -> dict[str, Any]:
        return msg.to_slack(self.ws.team_id, self.ws.app_id)

    def _connections_open(self, _: Params) -> dict[str, Any]:
        if self._open_socket is None:
            raise ApiError("socket_mode_not_enabled")
        return {"url": self._open_socket()}

    def _auth_test(self, _: Params) -> dict[str, Any]:
        bot = self.ws.user(self.ws.bot_user_id)
        return {
            "url": f"https://{self.ws.team_domain}.slack.com/",
            "team": self.ws.team_name,
            "user": bot.name,
            "team_id": self.ws.team_id,
            "user_id": bot.id,
            "bot_id": self.ws.bot_id,
            "is_enterprise_install": False,
        }

    def _require_content(self, params: Params) -> tuple[str, list[dict[str, Any]] | None]:
        text = _str(params, "text")
        blocks = _json_list(params, "blocks")
        attachments = _json_list(params, "attachments")
        if not text and not blocks and not attachments:
            raise ApiError("no_text")
        return text, blocks

    def _post_message(self, params: Params) -> dict[str, Any]:
        channel = self.ws.channel(_str(params, "channel"))
        text, blocks = self._require_content(params)
        msg = self.ws.post_message(
            channel.id,
            user=self.ws.bot_user_id,
            text=text,
            blocks=blocks,
            thread_ts=_str(params, "thread_ts") or None,
        )
        return {"channel": channel.id, "ts": msg.ts, "message": self._message_json(msg)}

    def _update(self, params: Params) -> dict[str, Any]:
        channel = self.ws.channel(_str(params, "channel"))
        ts = _str(params, "ts")
        if not ts:
            raise ApiError("message_not_found")
        text = params.get("text")
        msg = self.ws.update_message(
            channel.id,
            ts,
            text=None if text is None else str(text),
            blocks=_json_list(params, "blocks") if "blocks" in params else None,
            by_user=self.ws.bot_user_id,
        )
        return {
            "channel": channel.id,
            "ts": msg.ts,
            "text": msg.text,
            "message": self._message_json(msg),
        }

    def _delete(self, params: Params) -> dict[str, Any]:
        channel = self.ws.channel(_str(params, "channel"))
        ts = _str(params, "ts")
        self.ws.delete_message(channel.id, ts)
        return {"channel": channel.id, "ts": ts}

    def _post_ephemeral(self, params: Params) -> dict[str, Any]:
        channel = self.ws.channel(_str(params, "channel"))
        text, blocks = self._require_content(params)
        msg = self.ws.post_ephemeral(
            channel.id,
            user=self.ws.bot_user_id,
            visible_to=_str(params, "user"),
            text=text,
            blocks=blocks,
            thread_ts=_str(params, "thread_ts") or None,
        )
        return {"message_ts": msg.ts}

    def _permalink(self, params: Params) -> dict[str, Any]:
        channel = self.ws.channel(_str(params, "channel"))
        msg = self.ws.message(channel.id, _str(params, "message_ts"))
        if msg is None:
            raise ApiError("message_not_found")
        link = (
            f"https://{self.ws.team_domain}.slack.com/archives/{channel.id}/"
            f"p{msg.ts.replace('.', '')}"
        )
        if msg.is_reply:
            link += f"?thread_ts={msg.thread_ts}&cid={channel.id}"
        return {"channel": channel.id, "permalink": link}

    def _conversation_info(self, params: Params) -> dict[str, Any]:
        return {"channel": self.ws.channel(_str(params, "channel")).to_slack()}

    def _history(self, params: Params) -> dict[str, Any]:
        channel = self.ws.channel(_str(params, "channel"))
        limit = int(_str(params, "limit", "100") or 100)
        found = list(reversed(self.ws.messages(channel.id, top_level_only=True)))
        return {
            "messages": [self._message_json(m) for m in found[:limit]],
            "has_more": len(found) > limit,
            "pin_count": 0,
            "response_metadata": {"next_cursor": ""},
        }

    def _replies(self, params: Params) -> dict[str, Any]:
        channel = self.ws.channel(_str(params, "channel"))
        found = self.ws.thread(channel.id, _str(params, "ts"))
        if not found:
            raise ApiError("thread_not_found")
        return {
            "messages": [self._message_json(m) for m in found],
            "has_more": False,
            "response_metadata": {"next_cursor": ""},
        }

    def _user_info(self, params: Params) -> dict[str, Any]:
        return {"user": self.ws.user(_str(params, "user")).to_slack(self.ws.team_id)}

    def _users_list(self, _: Params) -> dict[str, Any]:
        return {
            "members": [u.to_slack(self.ws.team_id) for u in self.ws.users()],
            "response_metadata": {"next_cursor": ""},
        }

    def _usergroup_users(self, params: Params) -> dict[str, Any]:
        return {"users": self.ws.usergroup_users(_str(params, "usergroup"))}

    def _views_open(self, params: Params) -> dict[str, Any]:
        view = params.get("view")
        if isinstance(view, str):
            try:
                view = json.loads(view)
            except json.JSONDecodeError as exc:
                raise ApiError("invalid_arguments") from exc
        if not isinstance(view, dict):
            raise ApiError("invalid_arguments")
        opened = self.ws.open_view(_str(params, "trigger_id"), view)
        return {"view": opened.to_slack(self.ws.team_id, self.ws.app_id, self.ws.bot_id)}

    def _reactions_add(self, params: Params) -> dict[str, Any]:
        channel = self.ws.channel(_str(params, "channel"))
        self.ws.add_reaction(
            channel.id,
            _str(params, "timestamp"),
            _str(params, "name").strip(":"),
            self.ws.bot_user_id,
        )
        return {}

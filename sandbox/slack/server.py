"""SlackEmulator: the emulated Slack a person chats in and tests assert on, over real HTTP.

It owns the workspace, the Web API, the fault book and a waitress server in a background
thread, and it delivers signed slash commands and button clicks to the app at `events_url`.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import parse_qs

from sandbox.background_server import BackgroundServer
from sandbox.slack import payloads, responses
from sandbox.slack.delivery import Answer, deliver
from sandbox.slack.faults import FaultBook, SlackFault
from sandbox.slack.page import state
from sandbox.slack.socket_mode import SocketModeServer
from sandbox.slack.webapi import WebApi
from sandbox.slack.workspace import (
    ApiCall,
    Delivery,
    Message,
    ResponseTarget,
    ResponseUrlPost,
    Workspace,
    seed_default,
)
from sandbox.slack.wsgi import EmulatorWsgi

# Slack gives an app 3 seconds to answer a slash command or a click.
ACK_DEADLINE = 3.0


class SlackEmulator:
    """A Slack workspace with its Web API at `api_url` and a chat page at `url`."""

    def __init__(
        self,
        signing_secret: str,
        bot_token: str = "xoxb-sandbox",  # noqa: S107 - the sandbox's fake token
        host: str = "127.0.0.1",
        port: int = 0,
        events_url: str | None = None,
        *,
        seed: bool = True,
        delivery_timeout: float = 10.0,
        threads: int = 16,
        socket_mode: bool = False,
        app_token: str = "xapp-sandbox",  # noqa: S107 - the sandbox's fake token
    ) -> None:
        self.signing_secret = signing_secret
        self.bot_token = bot_token
        self.host = host
        self.port = port
        self.events_url = events_url
        self.delivery_timeout = delivery_timeout
        self.workspace = Workspace()
        if seed:
            seed_default(self.workspace)
        self.faults = FaultBook()
        # Socket Mode: events go over a WebSocket the app opens, not to events_url
        self.socket_mode = SocketModeServer(host) if socket_mode else None
        self.app_token = app_token
        self.webapi = WebApi(self.workspace, self.faults, bot_token=bot_token,
                             app_token=app_token,
                             open_socket=self.socket_mode.open_url if self.socket_mode else None)
        self._threads = threads
        self._server: BackgroundServer | None = None
        self._url: str | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> SlackEmulator:
        if self._server is not None:
            raise RuntimeError("the Slack emulator is already running")
        server = BackgroundServer(
            EmulatorWsgi(self),
            host=self.host,
            port=self.port,
            threads=self._threads,
            ident="slack-emulator",
        )
        self._server = server
        self.port = server.port
        self._url = server.url
        server.start()
        if self.socket_mode is not None:
            self.socket_mode.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.stop()
        if self.socket_mode is not None:
            self.socket_mode.stop()

    def __enter__(self) -> SlackEmulator:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("start() the Slack emulator first")
        return self._url

    @property
    def api_url(self) -> str:
        return self.url + "/api/"

    # -- what happened -----------------------------------------------------------------------

    @property
    def calls(self) -> list[ApiCall]:
        return self.workspace.calls()

    def clear_calls(self) -> None:
        self.workspace.clear_calls()

    @property
    def responses(self) -> list[ResponseUrlPost]:
        return self.workspace.responses()

    @property
    def refused_responses(self) -> list[str]:
        """The response URL ids of posts an injected fault refused, once per post."""
        return self.workspace.refused_responses()

    @property
    def deliveries(self) -> list[Delivery]:
        return self.workspace.deliveries()

    def messages(self, channel: str, *, top_level_only: bool = False) -> list[Message]:
        """The channel's messages oldest first: top-level ones and thread replies."""
        return self.workspace.messages(channel, top_level_only=top_level_only)

    def message(self, channel: str, ts: str) -> Message | None:
        return self.workspace.message(channel, ts)

    def thread(self, channel: str, ts: str) -> list[Message]:
        """The thread's parent then its replies."""
        return self.workspace.thread(channel, ts)

    def ephemerals(self, channel: str, user: str) -> list[Message]:
        return self.workspace.ephemerals(channel, user)

    def page_state(self, channel: str, user: str) -> dict[str, Any]:
        return state(self.workspace, channel, user, events_url=self.events_url)

    # -- the world ---------------------------------------------------------------------------

    def inject(self, fault: SlackFault) -> None:
        self.faults.inject(fault)

    def clear_faults(self) -> None:
        self.faults.clear()

    def add_user(self, user_id: str, name: str, *, real_name: str = "", title: str = "") -> None:
        self.workspace.add_user(user_id, name, real_name=real_name, title=title)

    def add_channel(self, channel_id: str, name: str) -> None:
        self.workspace.add_channel(channel_id, name)

    def add_usergroup(self, group_id: str, user_ids: list[str], *, handle: str = "") -> None:
        self.workspace.add_usergroup(group_id, user_ids, handle=handle)

    def post_as_user(
        self, user_id: str, channel_id: str, text: str, *, thread_ts: str | None = None
    ) -> Message:
        """A person writes a plain message (what typing without `/` does on the page)."""
        return self.workspace.post_message(channel_id, user=user_id, text=text, thread_ts=thread_ts)

    # -- delivering signed requests to the app -----------------------------------------------

    def _deliver(self, kind: str, body: bytes, payload: dict[str, Any], *,
                 signing_secret: str | None, timestamp: int | None) -> tuple[str, Answer]:
        """Over HTTP to events_url (signed), or as a Socket Mode envelope; (where, answer)."""
        if self.socket_mode is None:
            url = self._events_url()
            return url, deliver(url, body, signing_secret=signing_secret or self.signing_secret,
                                timestamp=timestamp, timeout=self.delivery_timeout)
        ack = self.socket_mode.deliver(kind, payload, timeout=self.delivery_timeout)
        if ack is None:
            return "socket", Answer(504, {}, "no ack for the envelope")
        return "socket", Answer(200, {"Content-Type": "application/json"},
                                json.dumps(ack) if ack else "")

    def _events_url(self) -> str:
        if not self.events_url:
            raise RuntimeError("set SlackEmulator.events_url to the app's /slack/events URL")
        return self.events_url

    def send_slash_command(
        self,
        user_id: str,
        channel_id: str,
        text: str,
        command: str = "/rollout",
        *,
        timestamp: int | None = None,
        signing_secret: str | None = None,
        response_url_id: str | None = None,
    ) -> tuple[int, dict[str, str], str]:
        """Deliver a signed slash command; Slack shows the app's ack body to the user.

        `timestamp` and `signing_secret` override the signature's (for stale or forged requests);
        `response_url_id` names the response URL, to find the app's answers in `responses`.
        """
        ws = self.workspace
        user = ws.user(user_id)
        channel = ws.channel(channel_id)
        target = ResponseTarget(kind="command", channel=channel.id, user=user.id)
        response_url = responses.issue(ws, self.url, target, url_id=response_url_id)
        trigger = payloads.trigger_id()
        ws.issue_trigger(trigger, user.id)
        body = payloads.slash_command_body(
            user_id=user.id,
            channel_id=channel.id,
            text=text,
            command=command,
            user_name=user.name,
            channel_name=channel.name,
            team_id=ws.team_id,
            team_domain=ws.team_domain,
            api_app_id=ws.app_id,
            response_url=response_url,
            trigger=trigger,
        )
        started = time.monotonic()
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        url, answer = self._deliver("slash_commands", body, form,
                                    signing_secret=signing_secret, timestamp=timestamp)
        elapsed = time.monotonic() - started
        ws.record_delivery(Delivery("command", url, answer.status, elapsed, answer.body))
        if elapsed > ACK_DEADLINE:
            ws.post_ephemeral(
                channel.id,
                user=responses.SLACKBOT,
                visible_to=user.id,
                text=f'{command} failed with the error "operation_timeout"',
            )
        else:
            responses.apply_command_ack(
                ws,
                target,
                answer.status,
                answer.headers.get("Content-Type", answer.headers.get("content-type", "")),
                answer.body,
                command,
                url_id=response_url.rsplit("/", 1)[-1],
            )
        return answer.as_tuple()

    def click_button(
        self,
        user_id: str,
        channel_id: str,
        message_ts: str,
        action_id: str,
        value: str,
        *,
        block_id: str | None = None,
        timestamp: int | None = None,
        signing_secret: str | None = None,
        response_url_id: str | None = None,
    ) -> tuple[int, dict[str, str], str]:
        """Deliver a signed block_actions click on a button of a stored message (its response
        URL named `response_url_id` when given, as for a slash command).

        The button's block_id and label come from the message; a button that is no longer
        there (a stale click racing an update) is still delivered, as Slack would.
        """
        ws = self.workspace
        user = ws.user(user_id)
        channel = ws.channel(channel_id)
        msg = ws.message(channel.id, message_ts)
        is_ephemeral = False
        if msg is None:
            msg = ws.ephemeral(channel.id, message_ts)
            is_ephemeral = msg is not None
        if msg is None:
            raise LookupError(f"no message {message_ts} in {channel.id}")
        found = payloads.find_button(msg.blocks, action_id, value)
        label: str | None = None
        style: str | None = None
        if found is not None:
            block_id = block_id or found[0]
            label = str((found[1].get("text") or {}).get("text") or action_id)
            style = found[1].get("style")
        target = ResponseTarget(
            kind="block_actions",
            channel=channel.id,
            user=user.id,
            message_ts=msg.ts,
            is_ephemeral=is_ephemeral,
        )
        trigger = payloads.trigger_id()
        ws.issue_trigger(trigger, user.id)
        payload = payloads.block_actions_payload(
            user_id=user.id,
            channel_id=channel.id,
            message_ts=msg.ts,
            action=payloads.button_action(
                action_id=action_id,
                value=value,
                block_id=block_id or "actions",
                text=label,
                style=style,
            ),
            message=msg.to_slack(ws.team_id, ws.app_id),
            is_ephemeral=is_ephemeral,
            user_name=user.name,
            channel_name=channel.name,
            team_id=ws.team_id,
            team_domain=ws.team_domain,
            api_app_id=ws.app_id,
            response_url=responses.issue(ws, self.url, target, url_id=response_url_id),
            trigger=trigger,
        )
        started = time.monotonic()
        url, answer = self._deliver("interactive", payloads.encode_payload(payload), payload,
                                    signing_secret=signing_secret, timestamp=timestamp)
        elapsed = time.monotonic() - started
        ws.record_delivery(Delivery("block_actions", url, answer.status, elapsed, answer.body))
        return answer.as_tuple()

    def submit_view(
        self, user_id: str, view_id: str, typed: dict[str, str]
    ) -> tuple[int, dict[str, str], str]:
        """Deliver a signed view_submission of an open modal; `typed` maps each input
        block_id to its text. The modal closes unless the app answers with errors."""
        url = self._events_url()
        ws = self.workspace
        opened = ws.view(view_id)
        if opened is None or opened.user != user_id:
            raise ValueError(f"no open view {view_id} for {user_id}")
        values = payloads.input_values(opened.view.get("blocks") or [], typed)
        payload = payloads.view_submission_payload(
            user_id=user_id,
            view=opened.to_slack(ws.team_id, ws.app_id, ws.bot_id, values),
            user_name=ws.user(user_id).name,
            team_id=ws.team_id,
            team_domain=ws.team_domain,
            api_app_id=ws.app_id,
        )
        started = time.monotonic()
        answer = deliver(url, payloads.encode_payload(payload), signing_secret=self.signing_secret,
                         timeout=self.delivery_timeout)
        elapsed = time.monotonic() - started
        ws.record_delivery(Delivery("view_submission", url, answer.status, elapsed, answer.body))
        errors = responses.view_errors(answer.status, answer.body)
        if errors:
            ws.set_view_errors(view_id, errors)
        elif 200 <= answer.status < 300 and elapsed <= ACK_DEADLINE:
            ws.close_view(view_id)
        return answer.as_tuple()

    def close_view(self, user_id: str, view_id: str) -> None:
        """The person pressed Cancel (no view_closed is sent: the bot does not ask for it)."""
        opened = self.workspace.view(view_id)
        if opened is not None and opened.user == user_id:
            self.workspace.close_view(view_id)

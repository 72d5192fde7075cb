"""The Slack emulator over real HTTP: slack_sdk's WebClient against it, and a real Bolt app
receiving its signed slash commands and clicks."""

from __future__ import annotations

import json
import queue
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from slack_bolt import Ack, App, Respond
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

from sandbox.background_server import BackgroundServer
from sandbox.slack import SlackEmulator, SlackFault
from tests.support.polling import eventually

SECRET = "integration-signing-secret"
TOKEN = "xoxb-sandbox"
CH = "C0ROLLOUT"

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def emu() -> Iterator[SlackEmulator]:
    emulator = SlackEmulator(signing_secret=SECRET, bot_token=TOKEN).start()
    yield emulator
    emulator.stop()


@pytest.fixture
def client(emu: SlackEmulator) -> WebClient:
    return WebClient(base_url=emu.api_url, token=TOKEN, retry_handlers=[])


def _get(url: str) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310
        return response.status, response.headers.get("Content-Type", ""), response.read()


def _post_json(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(  # noqa: S310
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        result: dict[str, Any] = json.loads(response.read())
        return result


def _wait_for(predicate: Any, timeout: float = 5.0) -> None:
    eventually(predicate, timeout=timeout, step=0.01)


# -- the Web API ------------------------------------------------------------------------------


def test_auth_test(client: WebClient) -> None:
    answer = client.auth_test()
    assert answer["user_id"] == "U0BOT"
    assert answer["team_id"] == "T0SANDBOX"
    assert answer["bot_id"]


def test_post_update_ephemeral_and_thread(emu: SlackEmulator, client: WebClient) -> None:
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": "*card*"}},
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "action_id": "rollout_approve",
                    "text": {"type": "plain_text", "text": "Approve"},
                    "value": "r1:0:1",
                }
            ],
        },
    ]
    posted = client.chat_postMessage(channel=CH, text="card", blocks=blocks)
    ts = posted["ts"]
    assert posted["channel"] == CH
    assert posted["message"]["text"] == "card"
    reply = client.chat_postMessage(channel=CH, text="step 1 applied", thread_ts=ts)
    client.chat_update(channel=CH, ts=ts, text="card v2", blocks=blocks[:1])
    client.chat_postEphemeral(channel=CH, user="U0DAVE", text="you may not approve")

    (card,) = emu.messages(CH, top_level_only=True)
    assert card.ts == ts
    assert card.user == "U0BOT"
    assert card.text == "card v2"
    assert card.edited
    assert len(card.blocks) == 1
    assert card.blocks[0]["block_id"]  # Slack gives every block an id
    assert card.replies == [reply["ts"]]
    assert [m.ts for m in emu.messages(CH)] == [ts, reply["ts"]]
    thread = emu.thread(CH, ts)
    assert [m.text for m in thread] == ["card v2", "step 1 applied"]
    assert thread[1].thread_ts == ts
    assert [m.text for m in emu.ephemerals(CH, "U0DAVE")] == ["you may not approve"]
    assert emu.ephemerals(CH, "U0ALICE") == []
    assert [c.method for c in emu.calls] == [
        "chat.postMessage",
        "chat.postMessage",
        "chat.update",
        "chat.postEphemeral",
    ]
    assert emu.calls[0].params["blocks"] == blocks
    assert emu.calls[0].token == TOKEN
    emu.clear_calls()
    assert emu.calls == []


def test_ts_values_look_like_slacks_and_increase(emu: SlackEmulator, client: WebClient) -> None:
    results: list[str] = []

    def post() -> None:
        for _ in range(10):
            results.append(client.chat_postMessage(channel=CH, text="x")["ts"])

    workers = [threading.Thread(target=post) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(set(results)) == 40
    stored = [m.ts for m in emu.messages(CH)]
    assert stored == sorted(stored, key=float)
    seconds, micros = stored[0].split(".")
    assert len(seconds) == 10
    assert len(micros) == 6


def test_errors(client: WebClient) -> None:
    with pytest.raises(SlackApiError) as err:
        client.chat_postMessage(channel="C0NOPE", text="x")
    assert err.value.response["error"] == "channel_not_found"
    with pytest.raises(SlackApiError) as err:
        client.chat_update(channel=CH, ts="1.000001", text="x")
    assert err.value.response["error"] == "message_not_found"
    with pytest.raises(SlackApiError) as err:
        client.usergroups_users_list(usergroup="S0NOPE")
    assert err.value.response["error"] == "no_such_subteam"
    with pytest.raises(SlackApiError) as err:
        client.api_call("chat.teleport")
    assert err.value.response["error"] == "unknown_method"


def test_invalid_token(emu: SlackEmulator) -> None:
    bad = WebClient(base_url=emu.api_url, token="xoxb-wrong", retry_handlers=[])
    with pytest.raises(SlackApiError) as err:
        bad.chat_postMessage(channel=CH, text="x")
    assert err.value.response["error"] == "invalid_auth"
    assert emu.messages(CH) == []
    assert emu.calls[-1].ok is False
    assert emu.calls[-1].error == "invalid_auth"


def test_lookups(client: WebClient) -> None:
    assert client.usergroups_users_list(usergroup="S0REVIEWERS")["users"] == ["U0BOB", "U0CAROL"]
    assert client.users_info(user="U0ALICE")["user"]["name"] == "alice"
    assert client.conversations_info(channel=CH)["channel"]["name"] == "llm-rollouts"
    ts = client.chat_postMessage(channel="#llm-rollouts", text="by name")["ts"]
    link = client.chat_getPermalink(channel=CH, message_ts=ts)["permalink"]
    assert link.endswith(f"/archives/{CH}/p{ts.replace('.', '')}")
    assert client.reactions_add(channel=CH, timestamp=ts, name="eyes")["ok"]


def test_added_directory_entries(emu: SlackEmulator, client: WebClient) -> None:
    emu.add_user("U0ERIN", "erin")
    emu.add_channel("C0NEW", "new-channel")
    emu.add_usergroup("S0ONCALL", ["U0ALICE", "U0ERIN"])
    assert client.usergroups_users_list(usergroup="S0ONCALL")["users"] == ["U0ALICE", "U0ERIN"]
    client.chat_postMessage(channel="C0NEW", text="hello")
    assert [m.text for m in emu.messages("C0NEW")] == ["hello"]


def test_injected_rate_limit_is_retried_by_the_retry_handler(emu: SlackEmulator) -> None:
    client = WebClient(base_url=emu.api_url, token=TOKEN)
    client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=2))
    emu.inject(SlackFault(method="chat.postMessage", error="ratelimited", count=1, retry_after=1))
    answer = client.chat_postMessage(channel=CH, text="after a rate limit")
    assert answer["ok"]
    assert [(c.method, c.ok, c.error) for c in emu.calls] == [
        ("chat.postMessage", False, "ratelimited"),
        ("chat.postMessage", True, None),
    ]
    assert [m.text for m in emu.messages(CH)] == ["after a rate limit"]


def test_injected_rate_limit_without_a_handler_raises_429(
    emu: SlackEmulator, client: WebClient
) -> None:
    emu.inject(SlackFault(method="chat.update", error="ratelimited", retry_after=7))
    with pytest.raises(SlackApiError) as err:
        client.chat_update(channel=CH, ts="1.000001", text="x")
    assert err.value.response.status_code == 429
    assert err.value.response.headers["Retry-After"] == "7"
    assert err.value.response["error"] == "ratelimited"
    # the fault is used up: the next call fails only for its own reason
    with pytest.raises(SlackApiError) as err:
        client.chat_update(channel=CH, ts="1.000001", text="x")
    assert err.value.response["error"] == "message_not_found"


def test_injected_api_errors(emu: SlackEmulator, client: WebClient) -> None:
    emu.inject(SlackFault(method="chat.postMessage", error="internal_error", count=2))
    for _ in range(2):
        with pytest.raises(SlackApiError) as err:
            client.chat_postMessage(channel=CH, text="x")
        assert err.value.response["error"] == "internal_error"
    assert client.chat_postMessage(channel=CH, text="x")["ok"]
    emu.inject(SlackFault(method="*", error="invalid_auth", count=None))
    with pytest.raises(SlackApiError):
        client.auth_test()
    emu.clear_faults()
    assert client.auth_test()["ok"]


def test_a_stall_holds_the_answer_then_answers_as_usual_or_with_its_error(
    emu: SlackEmulator,
) -> None:
    client = WebClient(token=TOKEN, base_url=emu.api_url, timeout=1, retry_handlers=[])
    emu.inject(SlackFault(method="chat.postMessage", error="", stall=0.6))
    started = time.monotonic()
    assert client.chat_postMessage(channel=CH, text="late")["ok"]
    assert time.monotonic() - started >= 0.6
    emu.inject(SlackFault(method="chat.postMessage", error="", stall=3))
    with pytest.raises(TimeoutError):  # the client's own timeout, not Slack's answer
        client.chat_postMessage(channel=CH, text="never")
    emu.inject(SlackFault(method="chat.update", error="internal_error", status=500, stall=0.3))
    with pytest.raises(SlackApiError) as err:
        client.chat_update(channel=CH, ts="1.000001", text="x")
    assert err.value.response.status_code == 500


# -- delivering signed requests to a real Bolt app -----------------------------------------------


class BoltApp:
    """A tiny Bolt app behind waitress that records what its listeners saw."""

    def __init__(self, emu: SlackEmulator) -> None:
        self.seen: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        self.app = App(
            signing_secret=SECRET,
            token=TOKEN,
            client=WebClient(base_url=emu.api_url, token=TOKEN),
            token_verification_enabled=False,
        )

        @self.app.command("/rollout")
        def rollout(ack: Ack, command: dict[str, Any], respond: Respond, client: WebClient) -> None:
            text = command["text"]
            if text == "card":
                ack()
                client.chat_postMessage(
                    channel=command["channel_id"],
                    text="card",
                    blocks=[
                        {"type": "section", "text": {"type": "mrkdwn", "text": "*Rollout*"}},
                        {
                            "type": "actions",
                            "block_id": "rollout_buttons",
                            "elements": [
                                {
                                    "type": "button",
                                    "action_id": "rollout_approve",
                                    "style": "primary",
                                    "text": {"type": "plain_text", "text": "Approve step 1"},
                                    "value": "r-1:0:7",
                                },
                                {
                                    "type": "button",
                                    "action_id": "rollout_rollback",
                                    "style": "danger",
                                    "text": {"type": "plain_text", "text": "Roll back"},
                                    "value": "r-1:0:7",
                                },
                            ],
                        },
                    ],
                )
            elif text == "ack-text":
                ack("Working on it…")
            elif text == "working-then-done":  # as the bot answers a changing verb
                ack()
                respond(text="Working on it…")
                respond(text="done", replace_original=True)
            else:
                ack()
                respond("hi")
            self.seen.put(("command", command))

        @self.app.action("rollout_approve")
        def approve(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
            ack()
            respond(text="approved", replace_original=False)
            self.seen.put(("action", body))

        @self.app.action("rollout_rollback")
        def rollback(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
            ack()
            client.views_open(trigger_id=body["trigger_id"], view={
                "type": "modal", "callback_id": "why", "private_metadata": "r-1",
                "title": {"type": "plain_text", "text": "Roll back?"},
                "submit": {"type": "plain_text", "text": "Roll back"},
                "blocks": [{"type": "input", "block_id": "reason", "optional": True,
                            "label": {"type": "plain_text", "text": "Reason"},
                            "element": {"type": "plain_text_input", "action_id": "text"}}],
            })

        @self.app.view("why")
        def why(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
            reason = view["state"]["values"]["reason"]["text"]["value"]
            if reason == "no":
                ack(response_action="errors", errors={"reason": "say more"})
            else:
                ack()
            self.seen.put(("view", body))

        handler = SlackRequestHandler(self.app)
        self.server = BackgroundServer(handler, ident="bolt-test").start()
        self.events_url = self.server.url + "/slack/events"

    def next(self, timeout: float = 5.0) -> tuple[str, dict[str, Any]]:
        return self.seen.get(timeout=timeout)


@pytest.fixture
def bolt(emu: SlackEmulator) -> Iterator[BoltApp]:
    app = BoltApp(emu)
    emu.events_url = app.events_url
    yield app
    app.server.stop()


def test_slash_command_reaches_bolt_and_respond_lands(emu: SlackEmulator, bolt: BoltApp) -> None:
    status, _, _ = emu.send_slash_command("U0ALICE", CH, "llm-pool-version-2 start")
    assert status == 200
    kind, command = bolt.next()
    assert kind == "command"
    assert command["user_id"] == "U0ALICE"
    assert command["user_name"] == "alice"
    assert command["channel_id"] == CH
    assert command["channel_name"] == "llm-rollouts"
    assert command["text"] == "llm-pool-version-2 start"
    assert command["response_url"].startswith(emu.url + "/response/")
    _wait_for(lambda: len(emu.responses) == 1)
    (response,) = emu.responses
    assert response.text == "hi"
    assert response.user == "U0ALICE"
    assert response.channel == CH
    _wait_for(lambda: [m.text for m in emu.ephemerals(CH, "U0ALICE")] == ["hi"])
    assert emu.messages(CH) == []


def test_ack_text_is_shown_to_the_user(emu: SlackEmulator, bolt: BoltApp) -> None:
    status, _, body = emu.send_slash_command("U0BOB", CH, "ack-text")
    assert status == 200
    assert "Working on it" in body
    assert [m.text for m in emu.ephemerals(CH, "U0BOB")] == ["Working on it…"]


def test_a_commands_response_replaces_its_earlier_one(emu: SlackEmulator,
                                                       bolt: BoltApp) -> None:
    status, _, body = emu.send_slash_command("U0BOB", CH, "working-then-done")
    assert status == 200 and body == ""
    _wait_for(lambda: len(emu.responses) == 2)
    assert [m.text for m in emu.ephemerals(CH, "U0BOB")] == ["done"]
    assert [(r.kind, r.replace_original) for r in emu.responses] == [
        ("command", False), ("command", True)]


def test_views_open_needs_a_fresh_unused_trigger(emu: SlackEmulator, client: WebClient) -> None:
    view = {"type": "modal", "title": {"type": "plain_text", "text": "T"}, "blocks": []}
    with pytest.raises(SlackApiError) as unknown:
        client.views_open(trigger_id="1.2.3", view=view)
    assert unknown.value.response["error"] == "invalid_trigger_id"
    emu.workspace.issue_trigger("t-old", "U0BOB", at=time.monotonic() - 4)  # 4 seconds ago
    with pytest.raises(SlackApiError) as old:
        client.views_open(trigger_id="t-old", view=view)
    assert old.value.response["error"] == "expired_trigger_id"
    emu.workspace.issue_trigger("t-new", "U0BOB")
    opened = client.views_open(trigger_id="t-new", view=view)["view"]
    assert opened["id"].startswith("V") and opened["type"] == "modal"
    with pytest.raises(SlackApiError) as again:
        client.views_open(trigger_id="t-new", view=view)
    assert again.value.response["error"] == "invalid_trigger_id"


def test_a_click_opens_a_modal_and_its_submission_reaches_the_app(
    emu: SlackEmulator, bolt: BoltApp
) -> None:
    emu.send_slash_command("U0ALICE", CH, "card")
    bolt.next()
    _wait_for(lambda: len(emu.messages(CH)) == 1)
    (card,) = emu.messages(CH)
    emu.click_button("U0CAROL", CH, card.ts, "rollout_rollback", "r-1:0:7")
    _wait_for(lambda: emu.workspace.views_of("U0CAROL"))
    (modal,) = emu.workspace.views_of("U0CAROL")
    _, _, raw = _get(f"{emu.url}/sandbox/state?channel={CH}&user=U0CAROL")
    (shown,) = json.loads(raw)["views"]
    assert shown["id"] == modal.id and shown["title"]["text"] == "Roll back?"
    assert emu.workspace.views_of("U0ALICE") == []

    answer = _post_json(emu.url + "/sandbox/view_submit",
                        {"user": "U0CAROL", "view_id": modal.id, "values": {"reason": "no"}})
    assert answer["ok"]
    assert bolt.next()[0] == "view"
    assert emu.workspace.views_of("U0CAROL")[0].errors == {"reason": "say more"}

    emu.submit_view("U0CAROL", modal.id, {"reason": "p99 latency"})
    kind, body = bolt.next()
    assert kind == "view" and body["type"] == "view_submission"
    assert body["user"]["id"] == "U0CAROL"
    assert body["view"]["private_metadata"] == "r-1"
    assert body["view"]["state"]["values"] == {
        "reason": {"text": {"type": "plain_text_input", "value": "p99 latency"}}}
    assert emu.workspace.views_of("U0CAROL") == []


def test_cancel_closes_a_modal_without_telling_the_app(emu: SlackEmulator,
                                                      client: WebClient) -> None:
    emu.workspace.issue_trigger("t", "U0BOB")
    view = client.views_open(trigger_id="t", view={
        "type": "modal", "title": {"type": "plain_text", "text": "T"}, "blocks": []})["view"]
    assert _post_json(emu.url + "/sandbox/view_close", {"user": "U0BOB", "view_id": view["id"]})
    assert emu.workspace.views_of("U0BOB") == [] and emu.deliveries == []


def test_forged_or_stale_signatures_are_refused(emu: SlackEmulator, bolt: BoltApp) -> None:
    status, _, _ = emu.send_slash_command("U0ALICE", CH, "x", signing_secret="forged")
    assert status == 401
    stale = int(time.time()) - 10 * 60
    status, _, _ = emu.send_slash_command("U0ALICE", CH, "x", timestamp=stale)
    assert status == 401
    assert bolt.seen.empty()
    # Slack tells the person the command failed
    assert any("failed" in m.text for m in emu.ephemerals(CH, "U0ALICE"))


def test_button_click_reaches_bolt_with_value_and_ts(emu: SlackEmulator, bolt: BoltApp) -> None:
    emu.send_slash_command("U0ALICE", CH, "card")
    bolt.next()
    _wait_for(lambda: len(emu.messages(CH)) == 1)
    (card,) = emu.messages(CH)
    status, _, _ = emu.click_button("U0BOB", CH, card.ts, "rollout_approve", "r-1:0:7")
    assert status == 200
    kind, body = bolt.next()
    assert kind == "action"
    assert body["type"] == "block_actions"
    assert body["user"]["id"] == "U0BOB"
    assert body["channel"]["id"] == CH
    assert body["container"]["message_ts"] == card.ts
    assert body["message"]["ts"] == card.ts
    assert body["message"]["blocks"][1]["block_id"] == "rollout_buttons"
    (action,) = body["actions"]
    assert action["action_id"] == "rollout_approve"
    assert action["value"] == "r-1:0:7"
    assert action["block_id"] == "rollout_buttons"
    assert action["text"]["text"] == "Approve step 1"
    _wait_for(lambda: [m.text for m in emu.ephemerals(CH, "U0BOB")] == ["approved"])
    (response,) = emu.responses
    assert response.kind == "block_actions"
    assert response.replace_original is False


def test_response_url_replace_and_delete_original(emu: SlackEmulator, client: WebClient) -> None:
    from sandbox.slack import responses
    from sandbox.slack.workspace import ResponseTarget

    ts = client.chat_postMessage(channel=CH, text="original")["ts"]
    target = ResponseTarget("block_actions", CH, "U0BOB", message_ts=ts)
    url = responses.issue(emu.workspace, emu.url, target)
    _post_json(url, {"replace_original": True, "text": "replaced"})
    assert [(m.text, m.edited) for m in emu.messages(CH)] == [("replaced", True)]
    _post_json(url, {"response_type": "in_channel", "text": "for everyone"})
    assert [m.text for m in emu.messages(CH)] == ["replaced", "for everyone"]
    _post_json(url, {"delete_original": True})
    assert [m.text for m in emu.messages(CH)] == ["for everyone"]


def test_a_commands_response_url_can_replace_its_ack(emu: SlackEmulator) -> None:
    from sandbox.slack import responses
    from sandbox.slack.workspace import ResponseTarget

    target = ResponseTarget("command", CH, "U0BOB")
    url = responses.issue(emu.workspace, emu.url, target)
    responses.apply_command_ack(emu.workspace, target, 200, "text/plain", "Working on it…",
                                "/rollout", url_id=url.rsplit("/", 1)[-1])
    assert [m.text for m in emu.ephemerals(CH, "U0BOB")] == ["Working on it…"]
    _post_json(url, {"replace_original": True, "text": "done"})
    assert [m.text for m in emu.ephemerals(CH, "U0BOB")] == ["done"]
    _post_json(url, {"delete_original": True})
    assert emu.ephemerals(CH, "U0BOB") == []


# -- the chat page -----------------------------------------------------------------------------


def test_page_is_served(emu: SlackEmulator) -> None:
    status, content_type, body = _get(emu.url + "/")
    assert status == 200
    assert content_type.startswith("text/html")
    assert b"/static/chat.js" in body
    for name, kind in (("chat.js", "javascript"), ("chat.css", "text/css")):
        status, content_type, body = _get(f"{emu.url}/static/{name}")
        assert status == 200
        assert kind in content_type
        assert body
    with pytest.raises(urllib.error.HTTPError):
        _get(emu.url + "/static/../server.py")


def test_page_state_shape(emu: SlackEmulator, client: WebClient) -> None:
    ts = client.chat_postMessage(channel=CH, text="card")["ts"]
    client.chat_postMessage(channel=CH, text="reply", thread_ts=ts)
    client.chat_postEphemeral(channel=CH, user="U0CAROL", text="only carol")
    _, _, raw = _get(f"{emu.url}/sandbox/state?channel={CH}&user=U0CAROL")
    state = json.loads(raw)
    assert state["channel"] == CH
    assert state["user"] == "U0CAROL"
    assert {"U0ALICE", "U0BOB", "U0CAROL", "U0DAVE", "U0BOT"} <= {u["id"] for u in state["users"]}
    assert {c["id"] for c in state["channels"]} == {"C0ROLLOUT", "C0OTHER"}
    (message,) = state["messages"]
    assert message["ts"] == ts
    assert [r["text"] for r in message["replies"]] == ["reply"]
    assert [e["text"] for e in state["ephemerals"]] == ["only carol"]
    _, _, raw = _get(f"{emu.url}/sandbox/state?channel={CH}&user=U0ALICE")
    assert json.loads(raw)["ephemerals"] == []


def test_page_actions_go_through_to_the_app(emu: SlackEmulator, bolt: BoltApp) -> None:
    answer = _post_json(
        emu.url + "/sandbox/message", {"user": "U0DAVE", "channel": CH, "text": "hey"}
    )
    assert answer["ok"]
    answer = _post_json(
        emu.url + "/sandbox/command", {"user": "U0ALICE", "channel": CH, "text": "/rollout card"}
    )
    assert answer == {"ok": True, "status": 200, "body": ""}
    assert bolt.next()[1]["text"] == "card"
    _wait_for(lambda: len(emu.messages(CH)) == 2)
    card = emu.messages(CH)[1]
    answer = _post_json(
        emu.url + "/sandbox/click",
        {
            "user": "U0CAROL",
            "channel": CH,
            "message_ts": card.ts,
            "action_id": "rollout_approve",
            "value": "r-1:0:7",
            "block_id": "rollout_buttons",
        },
    )
    assert answer["ok"]
    kind, body = bolt.next()
    assert (kind, body["user"]["id"], body["actions"][0]["value"]) == (
        "action",
        "U0CAROL",
        "r-1:0:7",
    )


def test_page_command_without_an_app_says_so(emu: SlackEmulator) -> None:
    answer = _post_json(
        emu.url + "/sandbox/command", {"user": "U0ALICE", "channel": CH, "text": "/rollout help"}
    )
    assert answer["ok"] is False
    assert "events_url" in answer["error"]


def test_form_encoded_calls_are_understood(emu: SlackEmulator) -> None:
    blocks = [{"type": "divider"}]
    body = urllib.parse.urlencode(
        {"token": TOKEN, "channel": CH, "text": "form", "blocks": json.dumps(blocks)}
    ).encode()
    request = urllib.request.Request(emu.api_url + "chat.postMessage", data=body)  # noqa: S310
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
        answer = json.loads(response.read())
    assert answer["ok"], answer
    assert emu.calls[-1].params["blocks"] == blocks
    assert emu.calls[-1].token == TOKEN
    (message,) = emu.messages(CH)
    assert message.blocks[0]["type"] == "divider"


def test_the_page_draws_every_emoji_the_bot_writes() -> None:
    """Slack shows `:round_pushpin:` as 📍; so must the chat page, for each code the bot uses."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    page = (root / "sandbox" / "static" / "chat.js").read_text()
    known = set(re.findall(r"\"?([a-z0-9_+]+)\"?: \"[^\x00-\x7f]", page))
    used = {code for source in [*root.glob("handlers/*.py"), *root.glob("bot/*.py")]
            for code in re.findall(r"(?<![\w:]):([a-z0-9_+-]+):", source.read_text())}
    assert {"round_pushpin", "raised_hand", "white_check_mark"} <= used
    assert used - known == set()

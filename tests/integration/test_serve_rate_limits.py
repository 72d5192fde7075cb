"""`serve`'s Web API client against the Slack emulator: a rate limit with a short Retry-After
is waited out and retried, as Slack asks; one past SERVE_MAX_RETRY_AFTER is given up at
once, so that a Slack worker is not held for minutes (the SDK's handler waited for any)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.settings import load_settings
from bot.slack_app import web_client
from bot.slack_budget import SERVE_MAX_RETRY_AFTER
from sandbox.slack import SlackEmulator, SlackFault

TOKEN = "xoxb-sandbox"
CH = "C0ROLLOUT"


@pytest.fixture
def emu() -> Iterator[SlackEmulator]:
    emulator = SlackEmulator(signing_secret="s", bot_token=TOKEN).start()
    yield emulator
    emulator.stop()


def _client(emu: SlackEmulator) -> WebClient:
    return web_client(load_settings(slack_bot_token=TOKEN, slack_api_url=emu.api_url))


def test_a_short_retry_after_is_waited_out(emu: SlackEmulator) -> None:
    emu.inject(SlackFault(method="chat.postMessage", error="ratelimited", retry_after=1))
    assert _client(emu).chat_postMessage(channel=CH, text="after a rate limit")["ok"]
    assert [(c.method, c.error) for c in emu.calls] == [
        ("chat.postMessage", "ratelimited"), ("chat.postMessage", None)]


def test_a_retry_after_past_the_cap_gives_the_call_up_at_once(emu: SlackEmulator) -> None:
    wait = int(SERVE_MAX_RETRY_AFTER) + 50
    emu.inject(SlackFault(method="chat.update", error="ratelimited", retry_after=wait))
    began = time.monotonic()
    with pytest.raises(SlackApiError) as refused:
        _client(emu).chat_update(channel=CH, ts="1.0", text="x")
    assert refused.value.response["error"] == "ratelimited"
    assert time.monotonic() - began < SERVE_MAX_RETRY_AFTER
    assert [c.method for c in emu.calls] == ["chat.update"]

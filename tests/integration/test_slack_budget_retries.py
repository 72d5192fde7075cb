"""The bounded Slack client of the CLI and the standalone scheduler against the Slack
emulator: a retry gets only what is left of the budget. Each call once set its timeout
when it began, and the SDK's retries inside the call kept it: a 503 late in the budget,
then a Slack that hangs, took the budget and a whole timeout more."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from bot.slack_budget import SERVER_ERROR_PAUSE, Budget, bounded_client
from sandbox.slack import SlackEmulator, SlackFault
from tests.support.polling import eventually

TOKEN = "xoxb-sandbox"
BUDGET = 1.5
FIRST = 0.8  # the first attempt's 503 comes this late
HANG = 2.5  # the retry's answer: longer than what is left of the budget


@pytest.fixture
def emu() -> Iterator[SlackEmulator]:
    emulator = SlackEmulator(signing_secret="s", bot_token=TOKEN).start()
    yield emulator
    emulator.stop()


def test_a_retry_times_out_within_what_is_left_of_the_budget(emu: SlackEmulator) -> None:
    emu.inject(SlackFault(method="chat.update", error="internal_error", status=503,
                          stall=FIRST))
    emu.inject(SlackFault(method="chat.update", error="", stall=HANG))
    client = bounded_client(token=TOKEN, base_url=emu.api_url, budget=Budget(BUDGET))
    began = time.monotonic()
    with pytest.raises((TimeoutError, OSError)):
        client.chat_update(channel="C0ROLLOUT", ts="1.0", text="x")
    took = time.monotonic() - began
    # it did retry (the emulator records a call once it has answered it)
    eventually(lambda: len(emu.calls) == 2, timeout=HANG + 2, message="the retry reached Slack")
    # within the budget (and a little for the machine), not the budget and a timeout more
    assert took < BUDGET + 0.4, took
    assert FIRST + SERVER_ERROR_PAUSE < BUDGET

"""Answers through a response URL reach the person despite Slack's rate limits and server
errors, and one that never does is counted, not lost in silence (the Slack emulator answers
as Slack does: 429 with Retry-After, 500)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from slack_bolt import Respond

from handlers.response_url import answer
from handlers.telemetry import NoTelemetry
from sandbox.slack import SlackEmulator
from sandbox.slack import responses as emulated
from sandbox.slack.faults import SlackFault
from sandbox.slack.workspace import ResponseTarget

SECRET, TOKEN, CHANNEL, USER = "secret", "xoxb-test", "C0ROLLOUT", "U0ALICE"


class Counted(NoTelemetry):
    def __init__(self) -> None:
        self.errors: list[str] = []

    def slack_error(self, method: str) -> None:
        self.errors.append(method)


@pytest.fixture
def emu() -> Iterator[SlackEmulator]:
    emulator = SlackEmulator(SECRET, bot_token=TOKEN).start()
    yield emulator
    emulator.stop()


def _respond(emu: SlackEmulator) -> Respond:
    url = emulated.issue(emu.workspace, emu.url, ResponseTarget("command", CHANNEL, USER))
    return Respond(response_url=url)


def _answers(emu: SlackEmulator) -> list[str | None]:
    return [p.text for p in emu.responses]


def test_an_answer_goes_through_at_once_when_slack_takes_it(emu: SlackEmulator) -> None:
    telemetry = Counted()
    assert answer(_respond(emu), "done", telemetry)
    assert _answers(emu) == ["done"] and telemetry.errors == []


@pytest.mark.parametrize("fault", [
    SlackFault("response_url", "ratelimited", count=2, retry_after=0),
    SlackFault("response_url", "internal_error", count=2, status=500),
], ids=["429", "500"])
def test_rate_limits_and_server_errors_are_retried_until_the_answer_lands(
        emu: SlackEmulator, fault: SlackFault) -> None:
    emu.inject(fault)
    telemetry = Counted()
    respond = _respond(emu)
    assert answer(respond, "step 2 applied", telemetry)
    assert _answers(emu) == ["step 2 applied"] and telemetry.errors == []
    # the emulator keeps the posts it refused, by response URL (the soak reads them)
    url_id = (respond.response_url or "").rsplit("/", 1)[-1]
    assert emu.refused_responses == [url_id, url_id]


@pytest.mark.parametrize("fault", [
    SlackFault("response_url", "internal_error", count=None, status=500),
    SlackFault("response_url", "ratelimited", count=1, retry_after=3600),
], ids=["500 every time", "429 with a wait no one would sit through"])
def test_an_answer_slack_keeps_refusing_is_counted_and_not_raised(
        emu: SlackEmulator, fault: SlackFault) -> None:
    emu.inject(fault)
    telemetry = Counted()
    assert not answer(_respond(emu), "step 2 applied", telemetry)
    assert _answers(emu) == [] and telemetry.errors == ["response_url"]


def test_a_response_url_that_does_not_answer_at_all_is_counted(emu: SlackEmulator) -> None:
    respond = _respond(emu)
    emu.stop()
    telemetry = Counted()
    assert not answer(respond, "step 2 applied", telemetry)
    assert telemetry.errors == ["response_url"]

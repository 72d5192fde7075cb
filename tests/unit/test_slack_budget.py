"""The bounded Slack client of the CLI and the standalone scheduler: which answers are
retried, how long it waits, and that nothing is sent once the budget is spent."""

from __future__ import annotations

import pytest
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

from bot.slack_budget import (
    MAX_RETRY_AFTER,
    SERVER_ERROR_RETRIES,
    BoundedRetry,
    Budget,
    BudgetSpent,
    bounded_client,
)


class Ticks:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _response(status: int, retry_after: str | None = None) -> HttpResponse:
    headers: dict[str, str | list[str]] = (
        {"Retry-After": [retry_after]} if retry_after is not None else {})
    return HttpResponse(status_code=status, headers=headers)


REQUEST = HttpRequest(method="POST", url="http://slack.invalid/api/chat.update", headers={})


def test_the_budget_counts_from_the_first_call_and_restarts() -> None:
    ticks = Ticks()
    budget = Budget(5.0, monotonic=ticks)
    ticks.now += 60  # the command's own work before Slack is not counted
    assert budget.remaining() == 5.0
    ticks.now += 3.5
    assert budget.remaining() == pytest.approx(1.5)
    ticks.now += 10
    assert budget.remaining() == 0.0
    budget.restart()
    assert budget.remaining() == 5.0
    assert Budget(None).remaining() == float("inf")


def test_a_short_retry_after_is_honoured_once_and_a_long_one_gives_up() -> None:
    slept: list[float] = []
    retry = BoundedRetry(Budget(5.0), sleep=slept.append)
    state = RetryState()
    assert retry.can_retry(state=state, request=REQUEST, response=_response(429, "1"))
    retry.prepare_for_next_attempt(state=state, request=REQUEST, response=_response(429, "1"))
    assert slept == [1.0] and state.next_attempt_requested
    assert not retry.can_retry(state=state, request=REQUEST, response=_response(429, "1"))
    too_long = str(int(MAX_RETRY_AFTER) + 1)
    assert not retry.can_retry(state=RetryState(), request=REQUEST,
                               response=_response(429, too_long))
    assert not retry.can_retry(state=RetryState(), request=REQUEST, response=_response(429))


def test_server_errors_are_retried_a_bounded_number_of_times() -> None:
    slept: list[float] = []
    retry = BoundedRetry(Budget(5.0), sleep=slept.append)
    state = RetryState()
    attempts = 0
    while retry.can_retry(state=state, request=REQUEST, response=_response(503)):
        retry.prepare_for_next_attempt(state=state, request=REQUEST, response=_response(503))
        attempts += 1
    assert attempts == SERVER_ERROR_RETRIES
    assert slept == sorted(slept) and all(0 < s < 1 for s in slept)
    for status in (200, 400, 404):
        assert not retry.can_retry(state=RetryState(), request=REQUEST,
                                   response=_response(status))
    assert not retry.can_retry(state=RetryState(), request=REQUEST, response=None,
                               error=ConnectionResetError())


def test_no_retry_waits_past_the_budget() -> None:
    ticks = Ticks()
    budget = Budget(1.5, monotonic=ticks)
    retry = BoundedRetry(budget, sleep=lambda _: None)
    assert retry.can_retry(state=RetryState(), request=REQUEST, response=_response(429, "1"))
    ticks.now += 1.0
    assert not retry.can_retry(state=RetryState(), request=REQUEST,
                               response=_response(429, "1"))
    ticks.now += 1.0
    assert not retry.can_retry(state=RetryState(), request=REQUEST, response=_response(500))


def test_a_spent_budget_sends_nothing() -> None:
    ticks = Ticks()
    budget = Budget(5.0, monotonic=ticks)
    client = bounded_client(token="xoxb-x", base_url="http://127.0.0.1:9/api", budget=budget)
    assert client.base_url == "http://127.0.0.1:9/api/"
    budget.remaining()
    ticks.now += 5.0
    with pytest.raises(BudgetSpent):
        client.chat_update(channel="C1", ts="1.0", text="x")

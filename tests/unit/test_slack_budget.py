"""The bounded Slack client of the CLI and the standalone scheduler: which answers are
retried, how long it waits, and that nothing is sent once the budget is spent."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

from bot.slack_budget import (
    MAX_RETRY_AFTER,
    SERVER_ERROR_RETRIES,
    BoundedRetry,
    Budget,
    BudgetedClient,
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


class _Slack:
    """A Slack on a free local port that answers 503 after `delay` seconds. (A retry's
    timeout within the budget, against a Slack that hangs, is timed in
    tests/integration/test_slack_budget_retries.py.)"""

    def __init__(self, *, delay: float) -> None:
        self.delay = delay
        self.requests = 0
        self.arrived = threading.Condition()
        self.done = threading.Event()
        slack = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with slack.arrived:
                    slack.requests += 1
                    slack.arrived.notify_all()
                slack.done.wait(slack.delay)
                body = json.dumps({"ok": False, "error": "internal_error"}).encode()
                try:
                    self.send_response(503)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the client gave up first

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api"

    @contextmanager
    def serving(self) -> Iterator[_Slack]:
        thread = threading.Thread(target=self.server.serve_forever,
                                  kwargs={"poll_interval": 0.02}, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.done.set()  # a hanging answer ends
            self.server.shutdown()
            self.server.server_close()


def test_no_retry_starts_once_the_budget_is_spent(caplog: pytest.LogCaptureFixture) -> None:
    """The pause before a retry fitted in the budget, but overran it (a slow machine): the
    retry is not sent, the call fails as spent, and the SDK logs no error line of its own
    for it (the caller logs the spent call once)."""
    ticks = Ticks()
    budget = Budget(1.0, monotonic=ticks)

    def overrunning_sleep(seconds: float) -> None:
        ticks.now += seconds + 1.0

    with _Slack(delay=0.0).serving() as slack:
        client = BudgetedClient(budget=budget, token="xoxb-x", base_url=slack.url + "/",
                                timeout=5, retry_handlers=[
                                    BoundedRetry(budget, sleep=overrunning_sleep)])
        with caplog.at_level(logging.DEBUG), pytest.raises(BudgetSpent):
            client.chat_update(channel="C1", ts="1.0", text="x")
        assert slack.requests == 1  # the 503; its retry was never sent
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []

"""A Slack Web API client for processes that must not wait on Slack: the CLI and the
standalone scheduler.

The card is a window on the rollout, not part of it, so its calls are bounded: a rate limit
is honoured only when its Retry-After is short, a 5xx is retried a few times with a short
pause, and every wait (a request's timeout, a pause before a retry) fits in an optional total
budget. Once the budget is spent a call fails at once, without a request, and the caller
logs and counts it like any other Slack failure. `serve`, whose Slack work runs after the ack
on its own workers, keeps Slack's own rate-limit retries, with the wait capped too.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.request import Request

from slack_sdk import WebClient
from slack_sdk.errors import SlackClientError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

#: the longest Retry-After a bounded client waits for; a longer one gives the call up
MAX_RETRY_AFTER = 2.0
#: retries of a 5xx answer (so at most this plus one requests per call)
SERVER_ERROR_RETRIES = 2
#: the pause before the n-th retry of a 5xx, in seconds
SERVER_ERROR_PAUSE = 0.25
#: one request's timeout when the budget leaves more
REQUEST_TIMEOUT = 5.0


class BudgetSpent(SlackClientError):
    """The total time allowed for Slack is over: the call was not made."""


@dataclass
class Budget:
    """A total allowance of seconds for Slack, counted from the first time it is asked
    (the first Slack call), not from when the process began its own work; `None`: no total."""

    seconds: float | None = None
    monotonic: Callable[[], float] = time.monotonic
    _start: float | None = field(default=None, init=False)

    def remaining(self) -> float:
        if self.seconds is None:
            return math.inf
        if self._start is None:
            self._start = self.monotonic()
        return max(0.0, self.seconds - (self.monotonic() - self._start))

    def restart(self) -> None:
        """The whole allowance again, from the next call on."""
        self._start = None


class BoundedRetry(RetryHandler):
    """Retries a 429 whose Retry-After is at most `max_retry_after` and a 5xx up to
    `server_retries` times, each only if the pause fits in what is left of the budget."""

    def __init__(self, budget: Budget, *, max_retry_after: float = MAX_RETRY_AFTER,
                 server_retries: int = SERVER_ERROR_RETRIES,
                 pause: float = SERVER_ERROR_PAUSE,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(max_retry_count=max(1, server_retries))
        self.budget = budget
        self.max_retry_after = max_retry_after
        self.server_retries = server_retries
        self.pause = pause
        self._sleep = sleep

    def wait_for(self, state: RetryState, response: HttpResponse | None) -> float | None:
        """Seconds to pause before the next attempt, or None when it is not to be retried."""
        if response is None:
            return None
        status = response.status_code
        if status == 429:
            wait = _retry_after(response)
            if wait is None or wait > self.max_retry_after or state.current_attempt >= 1:
                return None
        elif 500 <= status < 600:
            if state.current_attempt >= self.server_retries:
                return None
            wait = self.pause * (state.current_attempt + 1)
        else:
            return None
        return wait if wait < self.budget.remaining() else None

    def can_retry(self, *, state: RetryState, request: HttpRequest,
                  response: HttpResponse | None = None,
                  error: Exception | None = None) -> bool:
        return self.wait_for(state, response) is not None

    def prepare_for_next_attempt(self, *, state: RetryState, request: HttpRequest,
                                 response: HttpResponse | None = None,
                                 error: Exception | None = None) -> None:
        wait = self.wait_for(state, response)
        state.next_attempt_requested = True
        self._sleep(wait or 0.0)
        state.increment_current_attempt()


#: `serve`'s longest wait for a rate limit: past it the call is given up (logged and
#: counted as any Slack failure; the card catches up at the next change) rather than hold a
#: Slack worker that long, three times over
SERVE_MAX_RETRY_AFTER = 10.0


class CappedRateLimitRetry(RateLimitErrorRetryHandler):
    """Slack's own rate-limit retry (Retry-After honoured, up to `max_retry_count` times),
    for a Retry-After of at most `max_retry_after` seconds: the SDK's waited for whatever
    Slack said, a Slack worker of `serve` held meanwhile."""

    def __init__(self, *, max_retry_count: int = 3,
                 max_retry_after: float = SERVE_MAX_RETRY_AFTER) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.max_retry_after = max_retry_after

    def _can_retry(self, *, state: RetryState, request: HttpRequest,
                   response: HttpResponse | None = None,
                   error: Exception | None = None) -> bool:
        if response is None or response.status_code != 429:
            return False
        wait = _retry_after(response)
        return wait is not None and wait <= self.max_retry_after


def _retry_after(response: HttpResponse) -> float | None:
    for name, values in response.headers.items():
        if name.lower() == "retry-after" and values:
            try:
                return max(0.0, float(values[0]))
            except ValueError:
                return None
    return None


class _QuietWhenSpent(logging.Filter):
    """Drops the SDK's own error line for a request the budget stopped: the SDK logs every
    failure of an attempt before its retry handlers see it, and the caller logs and counts
    the spent call once already. Decided by the exception being handled, not its words."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not isinstance(sys.exc_info()[1], BudgetSpent)


class BudgetedClient(WebClient):
    """A WebClient whose requests time out within the budget and stop once it is spent.
    Each attempt is bounded by what is left when it starts: the SDK's retries run inside
    one `api_call`, and a timeout set once per call let a retry wait its whole length
    again (a 503 after 4.3 s, then a hang: 9.6 s for a 5 s budget)."""

    def __init__(self, *, budget: Budget, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.budget = budget
        self._request_timeout = self.timeout
        if not any(isinstance(f, _QuietWhenSpent) for f in self._logger.filters):
            self._logger.addFilter(_QuietWhenSpent())

    def api_call(self, api_method: str, **kwargs: Any) -> Any:
        self._bound(api_method)
        return super().api_call(api_method, **kwargs)

    def _perform_urllib_http_request_internal(self, url: str, req: Request) -> dict[str, Any]:
        self._bound(url.rsplit("/", 1)[-1])  # every attempt, retries included
        return super()._perform_urllib_http_request_internal(url, req)

    def _bound(self, what: str) -> None:
        left = self.budget.remaining()
        if left <= 0.05:
            raise BudgetSpent(f"no time left for Slack's {what}")
        self.timeout = min(self._request_timeout, left)  # type: ignore[assignment]


def bounded_client(*, token: str, base_url: str | None, budget: Budget,
                   logger: logging.Logger | None = None) -> BudgetedClient:
    """A client for `SLACK_API_URL` (or Slack) with the bounded retries above only."""
    url = base_url or WebClient.BASE_URL
    if not url.endswith("/"):
        url += "/"
    return BudgetedClient(budget=budget, token=token, base_url=url,
                          timeout=REQUEST_TIMEOUT,
                          retry_handlers=[BoundedRetry(budget)],
                          logger=logger or logging.getLogger("rollout-bot.slack.web"))

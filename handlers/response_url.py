"""Answers through a request's response URL, retried the way Slack asks to be.

Bolt's `respond` posts once, and a 429 or a 5xx from Slack comes back as a status it does not
look at: the person who asked would never see the answer, and nothing would say so. Here a
rate limit is retried after its `Retry-After`, a server error and a dropped connection after a
short back-off, a bounded number of times; an answer still refused is logged and counted.
"""

from __future__ import annotations

import logging

from slack_bolt import Respond
from slack_sdk.http_retry import HttpRequest, HttpResponse, RetryState
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.webhook import WebhookClient

from handlers.telemetry import Telemetry

log = logging.getLogger(__name__)

RETRIES = 2  # of each kind; a Retry-After longer than a person would wait is not honoured
MAX_RETRY_AFTER = 5


def answer(respond: Respond, text: str, telemetry: Telemetry, *,
           replace_original: bool | None = None) -> bool:
    """Post `text` as an ephemeral answer to the request `respond` belongs to; False (logged
    and counted) when Slack did not take it."""
    if respond.response_url is None:
        return False
    client = WebhookClient(respond.response_url, timeout=10, ssl=respond.ssl,
                           proxy=respond.proxy, retry_handlers=[
                               ConnectionErrorRetryHandler(max_retry_count=RETRIES),
                               _BoundedRateLimit(max_retry_count=RETRIES),
                               ServerErrorRetryHandler(max_retry_count=RETRIES)])
    body: dict[str, object] = {"text": text, "response_type": "ephemeral"}
    if replace_original is not None:
        body["replace_original"] = replace_original
    try:
        status = client.send_dict(body).status_code
    except Exception:
        log.exception("could not answer through the response URL")
        status = 0
    if status == 200:
        return True
    if status:
        log.warning("Slack refused an answer through the response URL: HTTP %s", status,
                    extra={"event": "slack_error", "method": "response_url", "status": status})
    telemetry.slack_error("response_url")
    return False


class _BoundedRateLimit(RateLimitErrorRetryHandler):
    """Retries a 429 only when its Retry-After is short enough for someone waiting on it."""

    def _can_retry(self, *, state: RetryState, request: HttpRequest,
                   response: HttpResponse | None = None, error: Exception | None = None,
                   ) -> bool:
        if response is None or response.status_code != 429:
            return False
        waits = next((v for k, v in response.headers.items() if k.lower() == "retry-after"),
                     ["1"])
        try:
            return int(waits[0]) <= MAX_RETRY_AFTER
        except (ValueError, IndexError):
            return False

"""Answers through a request's response URL, retried the way Slack asks to be.

Bolt's `respond` posts once and hands back Slack's status without looking at it: after a 429
or a 5xx the person who asked would never see the answer, and nothing would say so. Here a
rate limit is retried after its `Retry-After` (when that is short enough for someone waiting),
a server error or a dropped connection after a short back-off, a bounded number of times; an
answer still refused is logged and counted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from slack_bolt import Respond
from slack_sdk.webhook import WebhookResponse

from handlers.telemetry import Telemetry

log = logging.getLogger(__name__)

RETRIES = 2
MAX_RETRY_AFTER = 5.0  # seconds; a longer wait is not one a person sits through
BACKOFF = 0.5  # seconds, doubled at each retry


def answer(respond: Respond, text: str, telemetry: Telemetry, *,
           replace_original: bool | None = None,
           sleep: Callable[[float], None] = time.sleep) -> bool:
    """Post `text` as an ephemeral answer to the request `respond` belongs to; False (logged
    and counted) when Slack did not take it."""
    status = 0
    for attempt in range(RETRIES + 1):
        response: WebhookResponse | None = None
        try:
            response = respond(text=text, response_type="ephemeral",
                               replace_original=replace_original)
            status = response.status_code
        except Exception as exc:  # a dropped connection, a timeout: what urllib raised
            log.warning("could not reach the response URL: %s", type(exc).__name__,
                        extra={"event": "slack_error", "method": "response_url"})
            status = 0
        if status == 200:
            return True
        wait = _retry_wait(status, response, attempt)
        if wait is None or attempt == RETRIES:
            break
        sleep(wait)
    log.warning("Slack did not take an answer through the response URL (HTTP %s)", status,
                extra={"event": "slack_error", "method": "response_url", "status": status})
    telemetry.slack_error("response_url")
    return False


def _retry_wait(status: int, response: WebhookResponse | None, attempt: int) -> float | None:
    """How long to wait before trying again, or None when trying again cannot help (a 4xx
    other than 429: the URL expired or the answer is malformed)."""
    if status == 429:
        header = next((v for k, v in (response.headers if response else {}).items()
                       if k.lower() == "retry-after"), "1")
        raw = header[0] if isinstance(header, list) and header else header
        try:
            wait = float(str(raw))
        except ValueError:
            return None
        return wait if 0 <= wait <= MAX_RETRY_AFTER else None
    if status == 0 or status >= 500:
        return float(BACKOFF * 2 ** attempt)
    return None

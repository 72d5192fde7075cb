"""Slack request signing, so the emulator's deliveries pass Bolt's real signature check.

Slack signs `v0:{timestamp}:{raw body}` with HMAC-SHA256 keyed by the app's signing secret and
sends it as `X-Slack-Signature: v0=<hex>` next to `X-Slack-Request-Timestamp`.
"""

from __future__ import annotations

import hashlib
import hmac
import time

TIMESTAMP_HEADER = "X-Slack-Request-Timestamp"
SIGNATURE_HEADER = "X-Slack-Signature"


def signature(signing_secret: str, body: bytes, timestamp: int) -> str:
    """The `v0=...` signature Slack computes for `body` sent at `timestamp` (unix seconds)."""
    base = f"v0:{timestamp}:".encode() + body
    digest = hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()
    return f"v0={digest}"


def sign_request(signing_secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The two headers that make `body` a genuine Slack request (timestamp defaults to now)."""
    ts = int(time.time()) if timestamp is None else int(timestamp)
    return {TIMESTAMP_HEADER: str(ts), SIGNATURE_HEADER: signature(signing_secret, body, ts)}

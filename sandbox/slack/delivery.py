"""Deliver a signed request to the app over real HTTP, as Slack's servers would.

Slack posts form-encoded bodies with its own User-Agent and the signature headers; the app's
answer (status, headers, body) comes back to the caller untouched.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass

from sandbox.slack.signing import sign_request

USER_AGENT = "Slackbot 1.0 (+https://api.slack.com/robots)"


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: str

    def as_tuple(self) -> tuple[int, dict[str, str], str]:
        return self.status, self.headers, self.body


def deliver(
    url: str,
    body: bytes,
    *,
    signing_secret: str,
    timestamp: int | None = None,
    extra_headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> Answer:
    """POST `body` signed with `signing_secret` to `url`; raises URLError if nobody answers."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"events_url must be an http(s) URL, got {url!r}")
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "User-Agent": USER_AGENT,
        **sign_request(signing_secret, body, timestamp),
        **(extra_headers or {}),
    }
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return Answer(
                response.status,
                dict(response.headers.items()),
                response.read().decode("utf-8", "replace"),
            )
    except urllib.error.HTTPError as err:
        return Answer(err.code, dict(err.headers.items()), err.read().decode("utf-8", "replace"))

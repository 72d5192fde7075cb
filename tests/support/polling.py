"""The one polling helper: for what happens after an answer (a gateway's status, work after a
Slack ack, a scheduler's step), tests wait for the outcome instead of sleeping a guess."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable
from typing import Literal, TypeVar

T = TypeVar("T")


def eventually(check: Callable[[], T | Literal[False] | None], *, timeout: float = 10.0,
               step: float = 0.02, message: str = "condition not met") -> T:
    """Poll `check` until it returns something truthy (an AssertionError counts as not yet),
    and return that: never None or False, so a check answering `x or None` or `ok and x`
    gives `x`'s type."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            last = check()
        except AssertionError as exc:
            last = exc
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"{message} within {timeout}s (last: {last!r})")
        time.sleep(step)


def healthz_up(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a process of ours answers `/healthz` on `port` (the check `eventually` polls
    while a `serve` or `scheduler` it started comes up)."""
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/healthz", timeout=1):
            return True
    except OSError:
        return False

"""The one polling helper: for what happens after an answer (a gateway's status, work after a
Slack ack, a scheduler's step), tests wait for the outcome instead of sleeping a guess."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(check: Callable[[], T], *, timeout: float = 10.0, step: float = 0.02,
               message: str = "condition not met") -> T:
    """Poll `check` until it returns something truthy (an AssertionError counts as not yet)."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            last = check()
        except AssertionError as exc:
            last = exc
        else:
            if last:
                return last  # type: ignore[return-value]
        if time.monotonic() >= deadline:
            raise AssertionError(f"{message} within {timeout}s (last: {last!r})")
        time.sleep(step)

"""Injected Slack failures, so tests can prove the bot survives rate limits and API errors.

A fault makes the next `count` calls of a method fail the way Slack fails them; after that the
method answers normally again.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace

# Slack answers API errors with HTTP 200 and `ok: false`; rate limits are the exception.
_DEFAULT_STATUS = {"ratelimited": 429}


@dataclass(frozen=True)
class SlackFault:
    """Fail `count` calls of `method` ("*" for any, "response_url" for response URLs).

    `count=None` fails every call until `SlackEmulator.clear_faults()`. `retry_after` is the
    `Retry-After` header (seconds) sent with `ratelimited`; `status` overrides the HTTP status.
    `stall` holds the answer that many seconds first, as a Slack that hangs does; with an
    empty `error` the call then goes ahead as usual.
    """

    method: str
    error: str
    count: int | None = 1
    retry_after: int = 1
    status: int | None = None
    stall: float = 0.0

    @property
    def http_status(self) -> int:
        if self.status is not None:
            return self.status
        return _DEFAULT_STATUS.get(self.error, 200)

    @property
    def headers(self) -> dict[str, str]:
        if self.error == "ratelimited":
            return {"Retry-After": str(self.retry_after)}
        return {}


class FaultBook:
    """The pending faults, consumed in the order they were injected (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[SlackFault] = []

    def inject(self, fault: SlackFault) -> None:
        if fault.count is not None and fault.count <= 0:
            raise ValueError("a fault's count must be positive (or None for every call)")
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, method: str) -> SlackFault | None:
        """The fault that applies to this call of `method`, if any, using one of its counts."""
        with self._lock:
            for i, fault in enumerate(self._faults):
                if fault.method not in (method, "*"):
                    continue
                if fault.count is None:
                    return fault
                if fault.count <= 1:
                    del self._faults[i]
                else:
                    self._faults[i] = replace(fault, count=fault.count - 1)
                return fault
        return None

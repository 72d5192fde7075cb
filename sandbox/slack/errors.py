"""One error type for every Web API refusal, so each method can just raise what Slack would say."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A Slack Web API error: `{"ok": false, "error": error}` with an HTTP status and headers."""

    def __init__(
        self,
        error: str,
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(error)
        self.error = error
        self.status = status
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})

    def body(self) -> dict[str, Any]:
        return {"ok": False, "error": self.error, **self.extra}

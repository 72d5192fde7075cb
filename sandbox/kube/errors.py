"""API errors as the kube-apiserver shapes them, so clients' error handling sees real Status bodies.

Every refusal in the emulator raises ``ApiError``; the WSGI layer turns it into a
``kind: Status`` response. The constructors mirror k8s.io/apimachinery's ``errors.New*``
so that messages and reasons read like the real server's.
"""

from __future__ import annotations

from typing import Any

_REASONS: dict[int, str] = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


def reason_for(code: int) -> str:
    """The StatusReason the real server uses for an HTTP code (``Unknown`` if none)."""
    if code in _REASONS:
        return _REASONS[code]
    return "InternalError" if code >= 500 else "Unknown"


class ApiError(Exception):
    """A failed request: HTTP code, StatusReason, message and optional details."""

    def __init__(
        self, code: int, reason: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> dict[str, Any]:
        """The ``kind: Status`` body for this error."""
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


def _details(group: str, plural: str, name: str) -> dict[str, Any]:
    details: dict[str, Any] = {"kind": plural}
    if name:
        details = {"name": name, **details}
    if group:
        details["group"] = group
    return details


def qualified(group: str, plural: str) -> str:
    """``plural.group`` (or just ``plural`` for the core group), as in error messages."""
    return f"{plural}.{group}" if group else plural


def not_found(group: str, plural: str, name: str) -> ApiError:
    return ApiError(
        404,
        "NotFound",
        f'{qualified(group, plural)} "{name}" not found',
        _details(group, plural, name),
    )


def already_exists(group: str, plural: str, name: str) -> ApiError:
    return ApiError(
        409,
        "AlreadyExists",
        f'{qualified(group, plural)} "{name}" already exists',
        _details(group, plural, name),
    )


def conflict(group: str, plural: str, name: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {qualified(group, plural)} "{name}": the object '
        "has been modified; please apply your changes to the latest version and try again",
        _details(group, plural, name),
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def invalid(
    group: str, kind: str, name: str, causes: list[dict[str, str]]
) -> ApiError:
    """422 Invalid listing each field error, formatted like ``errors.NewInvalid``."""
    texts = [f"{c['field']}: {c['message']}" if c.get("field") else c["message"] for c in causes]
    joined = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    qualified_kind = f"{kind}.{group}" if group else kind
    details: dict[str, Any] = {"name": name, "kind": kind, "causes": causes}
    if group:
        details["group"] = group
    return ApiError(422, "Invalid", f'{qualified_kind} "{name}" is invalid: {joined}', details)


def generic(code: int, message: str) -> ApiError:
    """An error with the standard reason for ``code`` (fault injection, 405, 415...)."""
    return ApiError(code, reason_for(code), message, {})


def expired(message: str) -> ApiError:
    return ApiError(410, "Expired", message)

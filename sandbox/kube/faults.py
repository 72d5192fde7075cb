"""Fault injection and the request log, so tests can make the cluster misbehave and look back.

A ``Fault`` matches the next ``count`` requests by verb and resource (and optionally name and
namespace); each match may stall and then fail with a proper ``kind: Status`` error, or stall
and proceed. Every request is logged as a ``RequestRecord`` for assertions.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class Fault:
    """Fail (``status``) and/or stall (``stall_seconds``) the next ``count`` matching requests.

    ``verb`` is one of get, list, watch, create, update, patch, delete; ``resource`` a plural
    such as ``httproutes``. ``status=None`` with a stall delays the request and then serves it.
    A negative ``count`` matches forever. ``drop_after`` serves the request and then cuts the
    connection before the answer: the write landed and its caller never hears (the tests'
    proxy in front of a real API server does this; the emulator refuses such a fault).
    ``answer_after`` serves the request and then answers that status (a ``kind: Status``
    error) instead of the server's: a load balancer in front of the API server, or the
    server's own timeout, failing a write that landed (the proxy only, too).
    """

    verb: str
    resource: str
    status: int | None = 500
    count: int = 1
    stall_seconds: float = 0.0
    name: str | None = None
    namespace: str | None = None
    drop_after: bool = False
    answer_after: int | None = None

    @property
    def served_first(self) -> bool:
        """Whether the request reaches the server before the fault answers for it."""
        return self.drop_after or self.answer_after is not None

    def matches(self, verb: str, resource: str, namespace: str | None, name: str | None) -> bool:
        return (
            self.verb == verb
            and self.resource == resource
            and (self.name is None or self.name == name)
            and (self.namespace is None or self.namespace == namespace)
        )


@dataclass(frozen=True)
class RequestRecord:
    """One HTTP request the emulator answered (``status`` is the response code)."""

    method: str
    path: str
    verb: str
    resource: str
    namespace: str | None
    name: str | None
    subresource: str | None
    content_type: str
    body: bytes
    status: int
    at: float


@dataclass
class _Armed:
    fault: Fault
    remaining: int


class FaultBook:
    """Armed faults and the request log, both guarded by one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[_Armed] = []
        self._records: list[RequestRecord] = []
        self._stopping = threading.Event()

    def stall(self, seconds: float) -> None:
        """Hold a request for `seconds`, or until the emulator stops."""
        self._stopping.wait(seconds)

    def stop_stalls(self) -> None:
        self._stopping.set()

    def inject(self, fault: Fault) -> None:
        if fault.count == 0:
            return
        with self._lock:
            self._faults.append(_Armed(fault, fault.count))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def armed(self) -> int:
        """Uses of armed faults left: 0 once every one has met its request."""
        with self._lock:
            return sum(max(a.remaining, 0) for a in self._faults)

    def take(self, verb: str, resource: str, namespace: str | None,
             name: str | None) -> Fault | None:
        """The first armed fault matching this request, consuming one of its uses."""
        with self._lock:
            for armed in self._faults:
                if armed.fault.matches(verb, resource, namespace, name):
                    if armed.remaining > 0:
                        armed.remaining -= 1
                        if armed.remaining == 0:
                            self._faults.remove(armed)
                    return armed.fault
            return None

    def record(self, record: RequestRecord) -> None:
        with self._lock:
            self._records.append(record)

    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)

    def clear_requests(self) -> None:
        with self._lock:
            self._records.clear()

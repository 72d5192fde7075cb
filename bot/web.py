"""The bot's HTTP surface as one small WSGI app: Slack events, health, readiness, metrics.

`/slack/events` goes to Bolt's WSGI adapter and is timed (the response is the ack); the
rest is answered here without touching Bolt.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from kubernetes import client

from bot import kube
from bot.health import Check, Dependencies
from bot.metrics import Metrics
from rollout.ports import RolloutStore

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"


def readiness_checks(store: RolloutStore, kube_api: client.ApiClient) -> dict[str, Check]:
    def redis_check() -> str | None:
        try:
            store.ping()
        except Exception as exc:
            return str(exc) or type(exc).__name__
        return None

    def kube_check() -> str | None:
        return None if kube.reachable(kube_api) else "the Kubernetes API did not answer"

    return {"redis": redis_check, "kubernetes": kube_check}


class WebApp:
    """`serving` says whether this process can answer Slack (None when it can); the
    dependencies are reported on `/readyz` without failing it (bot.health says why)."""

    def __init__(self, *, metrics: Metrics, dependencies: Dependencies,
                 events: WSGIApplication | None = None,
                 serving: Check | None = None) -> None:
        self._metrics = metrics
        self._dependencies = dependencies
        self._events = events
        self._serving = serving or (lambda: None)

    def __call__(self, environ: WSGIEnvironment,
                 start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "/")
        if path == EVENTS_PATH and self._events is not None:
            if method != "POST":
                return _reply(start_response, 405, {"error": "POST only"})
            return self._slack(environ, start_response)
        if method not in ("GET", "HEAD"):
            return _reply(start_response, 405, {"error": "GET only"})
        if path == "/healthz":
            return _reply(start_response, 200, {"status": "ok"})
        if path == "/readyz":
            return self._ready(start_response)
        if path == "/metrics":
            body, content_type = self._metrics.render()
            start_response("200 OK", [("Content-Type", content_type),
                                      ("Content-Length", str(len(body)))])
            return [body]
        return _reply(start_response, 404, {"error": f"no such path {path}"})

    def _slack(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        assert self._events is not None
        started = time.monotonic()
        seen: dict[str, int] = {}

        def recording(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
            seen["status"] = int(status.split(" ", 1)[0])
            return start_response(status, headers, *args)

        body = list(self._events(environ, recording))
        status = seen.get("status", 500)
        self._metrics.ack(time.monotonic() - started, status=status)
        if status >= 400:  # refused before Bolt's listeners: bot.request_log never sees it
            log.warning("slack request refused with %s", status, extra={
                "event": "request", "status": status,
                "reason": "bad signature or timestamp" if status == 401 else "refused"})
        return body

    def _ready(self, start_response: StartResponse) -> Iterable[bytes]:
        problem = self._serving()
        results = self._dependencies.status()
        degraded = sorted(name for name, found in results.items() if found)
        body = {"ready": problem is None, "serving": problem or "ok", "degraded": degraded,
                "checks": {name: found or "ok" for name, found in results.items()}}
        return _reply(start_response, 503 if problem else 200, body)


_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed",
            503: "Service Unavailable"}


def _reply(start_response: StartResponse, status: int, body: dict[str, Any]) -> list[bytes]:
    data = json.dumps(body).encode()
    start_response(f"{status} {_REASONS.get(status, '')}".strip(),
                   [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]

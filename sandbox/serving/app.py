"""The serving world's HTTP face: each pool's metrics for Prometheus, and the knobs.

    GET  /pools/<pool>/vllm/metrics   the pool's model servers (vLLM names)
    GET  /pools/<pool>/epp/metrics    the pool's endpoint picker (llm_d_epp_* names)
    GET  /knobs                       every behaviour, and whether weights are ignored
    POST /knobs/<pool-or-adapter>     {"error_rate": 0.2, "ttft": 1.5, ...}: make it worse
    POST /knobs/reset                 everything healthy again
    POST /gateway                     {"ignore_weights": true}
    GET  /served                      requests served per pool and target model
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST

from sandbox.serving.knobs import Knobs
from sandbox.serving.load import LoadGenerator
from sandbox.serving.metrics import PoolMetrics

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

_MAX_BODY = 64 * 1024


class ServingApp:
    def __init__(self, pools: dict[str, PoolMetrics], knobs: Knobs,
                 load: LoadGenerator | None = None) -> None:
        self.pools = pools
        self.knobs = knobs
        self.load = load

    def __call__(self, environ: WSGIEnvironment,
                 start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        parts = [p for p in str(environ.get("PATH_INFO", "")).split("/") if p]
        try:
            status, content_type, body = self._route(method, parts, environ)
        except ValueError as exc:
            status, content_type, body = "400 Bad Request", "application/json", \
                json.dumps({"error": str(exc)}).encode()
        # the chat page's side panel calls from another loopback port
        start_response(status, [("Content-Type", content_type),
                                ("Content-Length", str(len(body))),
                                ("Access-Control-Allow-Origin", "*")])
        return [body]

    def _route(self, method: str, parts: list[str],
               environ: WSGIEnvironment) -> tuple[str, str, bytes]:
        if method == "GET" and len(parts) == 4 and parts[0] == "pools" \
                and parts[3] == "metrics" and parts[2] in ("vllm", "epp"):
            pool = self.pools.get(parts[1])
            if pool is None:
                return _json("404 Not Found", {"error": f"no pool {parts[1]}"})
            return "200 OK", CONTENT_TYPE_LATEST, pool.exposition(parts[2])
        if parts == ["knobs"] and method == "GET":
            return _json("200 OK", self.knobs.snapshot())
        if parts == ["knobs", "reset"] and method == "POST":
            self.knobs.reset()
            return _json("200 OK", self.knobs.snapshot())
        if len(parts) == 2 and parts[0] == "knobs" and method == "POST":
            behaviour = self.knobs.set(parts[1], _body(environ))
            return _json("200 OK", {parts[1]: behaviour.__dict__})
        if parts == ["gateway"] and method == "POST":
            value = _body(environ).get("ignore_weights")
            if not isinstance(value, bool):
                raise ValueError('send {"ignore_weights": true} or false')
            self.knobs.ignore_weights = value
            return _json("200 OK", {"ignore_weights": value})
        if parts == ["served"] and method == "GET":
            served = self.load.served if self.load else {}
            return _json("200 OK", {f"{p}/{t}": n for (p, t), n in sorted(served.items())})
        return _json("404 Not Found", {"error": "no such path; see GET /knobs"})


def _json(status: str, payload: Any) -> tuple[str, str, bytes]:
    return status, "application/json", json.dumps(payload).encode()


def _body(environ: WSGIEnvironment) -> dict[str, Any]:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    raw = environ["wsgi.input"].read(min(length, _MAX_BODY)) if length else b""
    try:
        data = json.loads(raw or b"{}")
    except ValueError:
        raise ValueError("the body is not JSON") from None
    if not isinstance(data, dict):
        raise ValueError("the body is a JSON object")
    return data

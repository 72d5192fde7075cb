"""The analysis port over Prometheus' HTTP API (``/api/v1/query``, instant queries at the
instant the caller gives, so that one run's queries all describe the same moment).

Trouble never raises and never reads as a number: an unreachable server, a timeout or an
overloaded one is UNAVAILABLE (ask again later), a refused query is ERROR, an empty vector,
NaN or an answer with warnings (a partial response: some stores did not answer) is NO_DATA;
the domain turns each into an inconclusive check. The kind is decided by
the HTTP status and the API's ``status``/``errorType`` fields, never by message wording.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import urllib3
from urllib3.exceptions import HTTPError, NewConnectionError, TimeoutError

from rollout.domain.analysis import QueryResult, ResultKind

#: how much of an answer's warnings a reason quotes (a card line, not a log dump)
_WARNINGS_SHOWN = 300

#: errorType values of the API that mean "try again later" rather than "the query is wrong"
_TRANSIENT = frozenset({"timeout", "canceled", "unavailable", "internal"})


class PrometheusAnalysis:
    """Asks one Prometheus server; ``base_url`` is ``PROMETHEUS_URL`` (a path prefix is kept,
    for a server behind a proxy)."""

    def __init__(self, base_url: str, *, timeout: float = 5.0,
                 http: urllib3.PoolManager | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._http = http or urllib3.PoolManager(num_pools=2, maxsize=4)

    def query(self, promql: str, at: datetime) -> QueryResult:
        url = f"{self.base_url}/api/v1/query"
        # partial_response=false: Thanos (and Mimir) then refuse a query that some store
        # cannot answer instead of answering from the rest; Prometheus ignores it.
        fields = {"query": promql, "time": f"{at.timestamp():.3f}",
                  "timeout": f"{int(self.timeout * 1000)}ms", "partial_response": "false"}
        try:
            response = self._http.request(
                "POST", url, fields=fields,
                encode_multipart=False, retries=False,
                timeout=urllib3.Timeout(connect=self.timeout, read=self.timeout + 1),
            )
        except NewConnectionError:  # before TimeoutError: urllib3 derives it from one
            return _unavailable(f"Prometheus at {self.base_url} is unreachable "
                                "(connection refused or no route)")
        except TimeoutError:
            return _unavailable(f"Prometheus at {self.base_url} did not answer within "
                                f"{self.timeout:g}s")
        except HTTPError as exc:
            return _unavailable(f"Prometheus at {self.base_url}: {type(exc).__name__}")
        return _interpret(response.status, response.data)

    def close(self) -> None:
        self._http.clear()


def _unavailable(reason: str) -> QueryResult:
    return QueryResult(kind=ResultKind.UNAVAILABLE, reason=reason)


def _interpret(status: int, body: bytes) -> QueryResult:
    try:
        payload: Any = json.loads(body)
    except ValueError:
        payload = None
    if not isinstance(payload, dict) or payload.get("status") not in ("success", "error"):
        kind = ResultKind.UNAVAILABLE if status >= 500 or status == 429 else ResultKind.ERROR
        return QueryResult(kind=kind, reason=f"not a Prometheus API answer (HTTP {status})")
    if payload["status"] == "error":
        error_type = str(payload.get("errorType", ""))
        transient = error_type in _TRANSIENT or (not error_type and status >= 500)
        return QueryResult(
            kind=ResultKind.UNAVAILABLE if transient else ResultKind.ERROR,
            reason=f"Prometheus refused the query (HTTP {status}, {error_type or 'error'}): "
                   f"{payload.get('error', '')}")
    warnings = payload.get("warnings")
    if warnings:
        return QueryResult(kind=ResultKind.NO_DATA,
                           reason=f"Prometheus answered with warnings: {_quote(warnings)}")
    return _value_of(payload.get("data"))


def _quote(warnings: object) -> str:
    """The warnings in one line, clipped: a success with warnings may be a partial answer
    (a store down, its series missing), so its number is not trusted, and the reason says
    why. Prometheus 3's ``infos`` are notices, not doubts about the value: not read here."""
    items = warnings if isinstance(warnings, list) else [warnings]
    text = " ".join("; ".join(str(w) for w in items).split())
    if len(text) <= _WARNINGS_SHOWN:
        return text
    return text[:_WARNINGS_SHOWN - 1].rstrip() + "…"


def _value_of(data: Any) -> QueryResult:
    if not isinstance(data, dict):
        return QueryResult(kind=ResultKind.ERROR, reason="the answer has no data")
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar" and isinstance(result, list):
        return _number(result)
    if kind != "vector" or not isinstance(result, list):
        return QueryResult(kind=ResultKind.ERROR,
                           reason=f"a check needs one number, the query gave a {kind}")
    if not result:
        return QueryResult(kind=ResultKind.NO_DATA, reason="no series matched (no traffic?)")
    if len(result) > 1:
        return QueryResult(kind=ResultKind.ERROR,
                           reason=f"a check needs one number, the query gave {len(result)} "
                                  "series: aggregate them (sum, max, avg)")
    sample = result[0].get("value") if isinstance(result[0], dict) else None
    return _number(sample)


def _number(sample: Any) -> QueryResult:
    try:
        value = float(sample[1])
    except (TypeError, ValueError, IndexError):
        return QueryResult(kind=ResultKind.ERROR, reason="the answer's sample is not a number")
    # +Inf stays a value (a quantile beyond the last bucket): judging may fail on it, and
    # never passes on a value that is not finite
    return QueryResult.of(value)

"""What Prometheus' answer means, read from the HTTP status and the body alone (no server).

A success with warnings may be a partial answer (Thanos or Mimir with a store down): its
number is not trusted. Prometheus 3's ``infos`` are notices and leave the value as it is.
"""

from __future__ import annotations

import json
from typing import Any

from rollout.adapters.prometheus import _interpret
from rollout.domain.analysis import QueryResult, ResultKind

SERVER = "http://prometheus.example"


def _read(status: int, body: bytes) -> QueryResult:
    return _interpret(status, body, server=SERVER)


def _success(**extra: Any) -> bytes:
    data = {"resultType": "vector", "result": [{"metric": {}, "value": [1.0, "0.25"]}]}
    return json.dumps({"status": "success", "data": data, **extra}).encode()


def test_a_success_without_warnings_is_its_value() -> None:
    result = _read(200, _success())
    assert (result.kind, result.number) == (ResultKind.VALUE, 0.25)


def test_a_success_with_warnings_is_no_data_that_quotes_them() -> None:
    warnings = ["partial response: store 10.0.0.7:10901 is unavailable",
                "another store timed out"]
    result = _read(200, _success(warnings=warnings))
    assert result.kind is ResultKind.NO_DATA and result.number is None
    assert result.reason == ("Prometheus answered with warnings: partial response: store "
                             "10.0.0.7:10901 is unavailable; another store timed out")


def test_an_empty_warnings_list_is_no_warning() -> None:
    assert _read(200, _success(warnings=[])).number == 0.25


def test_infos_alone_leave_the_value() -> None:
    infos = ['PromQL info: metric might not be a counter, name does not end in _total']
    result = _read(200, _success(infos=infos))
    assert (result.kind, result.number) == (ResultKind.VALUE, 0.25)


def test_warnings_win_over_infos() -> None:
    result = _read(200, _success(infos=["a notice"], warnings=["store down"]))
    assert result.kind is ResultKind.NO_DATA and "store down" in result.reason
    assert "a notice" not in result.reason


def test_long_warnings_are_clipped_to_one_short_line() -> None:
    result = _read(200, _success(warnings=["x" * 5000, "multi\nline   warning"]))
    assert result.kind is ResultKind.NO_DATA
    assert len(result.reason) < 400 and result.reason.endswith("…")
    assert "\n" not in result.reason


def test_a_warning_that_is_not_a_list_is_still_a_warning() -> None:
    result = _read(200, _success(warnings="store down"))
    assert result.kind is ResultKind.NO_DATA and result.reason.endswith(": store down")


def test_warnings_on_an_empty_answer_are_no_data_that_says_why() -> None:
    body = json.dumps({"status": "success", "warnings": ["store down"],
                       "data": {"resultType": "vector", "result": []}}).encode()
    result = _read(200, body)
    assert result.kind is ResultKind.NO_DATA and "store down" in result.reason


def test_an_error_keeps_its_kind_whatever_its_warnings() -> None:
    body = json.dumps({"status": "error", "errorType": "bad_data", "error": "parse error",
                       "warnings": ["store down"]}).encode()
    assert _read(400, body).kind is ResultKind.ERROR


def test_a_rate_limit_is_unavailable_whatever_its_error_type() -> None:
    """Mimir and Cortex answer their rate limit with 429 and errorType too_many_requests:
    a query to ask again later, not one to fix."""
    limited = json.dumps({"status": "error", "errorType": "too_many_requests",
                          "error": "too many outstanding requests"}).encode()
    assert _read(429, limited).kind is ResultKind.UNAVAILABLE
    other = json.dumps({"status": "error", "errorType": "a_new_kind", "error": "x"}).encode()
    assert _read(429, other).kind is ResultKind.UNAVAILABLE
    assert _read(422, other).kind is ResultKind.ERROR


def test_an_answer_not_shaped_as_the_api_is_marked_by_its_shape_not_its_words() -> None:
    """A login page, a wrong path or a redirect: `start` then points at PROMETHEUS_URL.
    The API's own error JSON is not marked, whatever its words (a 401 or 403 aside)."""
    for status in (200, 302, 401, 403, 404):
        result = _read(status, b"<html>Sign in</html>")
        assert result.kind is ResultKind.ERROR and result.not_prometheus
        assert result.reason == (f"Prometheus at {SERVER} did not answer as Prometheus' "
                                 f"query API (HTTP {status})")
    assert _read(502, b"<html>Bad Gateway</html>").kind is ResultKind.UNAVAILABLE
    worded = json.dumps({"status": "error", "errorType": "bad_data",
                         "error": "did not answer as Prometheus' query API"}).encode()
    assert not _read(400, worded).not_prometheus
    assert not _read(200, _success()).not_prometheus


def test_a_401_or_403_is_the_credentials_fault_whatever_the_body() -> None:
    """Mimir's gateway or an auth proxy may answer in the API's own error JSON: the status
    decides, so `start` points at the credentials, never at the query."""
    for status in (401, 403):
        for error_type in ("unauthorized", "bad_data", ""):
            body = json.dumps({"status": "error", "errorType": error_type,
                               "error": "invalid token"}).encode()
            result = _read(status, body)
            assert result.kind is ResultKind.ERROR and result.not_prometheus
            assert result.reason == (f"Prometheus at {SERVER} refused the bot's credentials "
                                     f"(HTTP {status}): invalid token")
        wordless = _read(status, json.dumps({"status": "error"}).encode())
        assert wordless.not_prometheus and wordless.reason.endswith(f"(HTTP {status})")
        assert _read(status, _success()).not_prometheus


def test_an_errors_text_is_quoted_on_one_line_and_clipped() -> None:
    """A parse error may quote a long query over several lines, and a proxy may put
    anything in its error: the reason is a card's line, not the server's whole text."""
    long = "1:5: parse error:\n  unexpected identifier " + "x" * 1000
    refused = _read(400, json.dumps({"status": "error", "errorType": "bad_data",
                                     "error": long}).encode())
    prefix = "Prometheus refused the query (HTTP 400, bad_data): "
    assert refused.reason.startswith(prefix + "1:5: parse error: unexpected identifier xx")
    assert refused.reason.endswith("x…") and "\n" not in refused.reason
    assert len(refused.reason) == len(prefix) + 300
    credentials = _read(401, json.dumps({"status": "error", "error": long}).encode())
    assert credentials.reason.endswith("x…") and "\n" not in credentials.reason
    assert len(credentials.reason) == len(
        f"Prometheus at {SERVER} refused the bot's credentials (HTTP 401): ") + 300


def test_an_execution_error_is_marked_as_a_failed_evaluation_by_its_type() -> None:
    """`start` then names a store down beside the query (Thanos answers a store it cannot
    reach so): decided by `errorType`, not the words."""
    def body(error_type: str) -> bytes:
        return json.dumps({"status": "error", "errorType": error_type,
                           "error": "expanding series: no StoreAPIs matched"}).encode()

    failed = _read(422, body("execution"))
    assert failed.kind is ResultKind.ERROR and failed.evaluation_failed
    assert not _read(400, body("bad_data")).evaluation_failed
    assert not _read(503, body("unavailable")).evaluation_failed

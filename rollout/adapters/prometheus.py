"""The analysis port over Prometheus' HTTP API (``/api/v1/query``, instant queries at the
instant the caller gives, so that one run's queries all describe the same moment).

Trouble never raises and never reads as a number: an unreachable server, a timeout or an
overloaded one is UNAVAILABLE (ask again later), a refused query is ERROR, an empty vector,
NaN or an answer with warnings (a partial response: some stores did not answer) is NO_DATA;
the domain turns each into an inconclusive check. The kind is decided by
the HTTP status and the API's ``status``/``errorType`` fields, never by message wording; a
TLS failure's reason is the TLS layer's own cause, read from its error object.

Credentials written into ``PROMETHEUS_URL`` (``https://user:password@host``) are sent as
basic auth, a bearer token is read from its file at each query (a projected ServiceAccount
token rotates), and neither is ever quoted: a reason lands on a Slack card and in the audit.
Extra headers (``X-Scope-OrgID`` for Mimir and Cortex) are checked before the first query. An
answer is read up to a size and a deadline, as a check needs one number and a run one timeout.
"""

from __future__ import annotations

import json
import re
import ssl
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import urllib3
from urllib3.exceptions import HTTPError, NewConnectionError, TimeoutError
from urllib3.util import make_headers, parse_url

from rollout.domain.analysis import QueryResult, ResultKind
from rollout.domain.errors import InvalidInput

#: how much of an answer's warnings a reason quotes (a card line, not a log dump)
_WARNINGS_SHOWN = 300

#: errorType values of the API that mean "try again later" rather than "the query is wrong"
#: (``too_many_requests``: Mimir's and Cortex's rate limit, with HTTP 429)
_TRANSIENT = frozenset({"timeout", "canceled", "unavailable", "internal", "too_many_requests"})

#: HTTP statuses that say "not with these credentials", whatever the body: the fault is
#: PROMETHEUS_URL's credentials, PROMETHEUS_BEARER_TOKEN_FILE or PROMETHEUS_HEADERS
_CREDENTIALS_REFUSED = frozenset({401, 403})

#: OpenSSL's reason codes of a TLS handshake that fails the same way every time, so that a
#: retry is no cure: the port does not speak TLS (``https://`` to a plain HTTP port), client
#: and server share no protocol version or cipher, or the server asks for a client
#: certificate (the bot sends none). An EOF or a reset mid-handshake is not among them: a
#: server restarting answers so.
_HANDSHAKE_REFUSED = frozenset({
    "WRONG_VERSION_NUMBER", "PACKET_LENGTH_TOO_LONG", "RECORD_LAYER_FAILURE",
    "UNSUPPORTED_PROTOCOL", "NO_PROTOCOLS_AVAILABLE", "NO_CIPHERS_AVAILABLE",
    "TLSV1_ALERT_PROTOCOL_VERSION", "TLSV1_ALERT_INSUFFICIENT_SECURITY",
    "SSLV3_ALERT_HANDSHAKE_FAILURE", "SSLV3_ALERT_BAD_CERTIFICATE",
    "TLSV13_ALERT_CERTIFICATE_REQUIRED"})

#: the most of an answer read: one number with its labels is far smaller, and a query that
#: matches thousands of series must not hold a run's memory and time to say it is wrong
MAX_ANSWER_BYTES = 1 << 20

_CHUNK = 64 * 1024

#: an RFC 7230 token: what a header name may be
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
#: printable ASCII: no line break that could end the header, no control character
_HEADER_VALUE = re.compile(r"[\x20-\x7e]+")
#: visible ASCII without spaces: one bearer token, nothing that could end the header
_BEARER_TOKEN = re.compile(rb"[\x21-\x7e]+")
#: headers PROMETHEUS_HEADERS may not set: credentials come from the URL or the token file
#: (kept out of plain settings), and the request's own framing is the adapter's
_RESERVED_HEADERS = {"authorization": "credentials go in PROMETHEUS_BEARER_TOKEN_FILE or "
                                      "PROMETHEUS_URL",
                     "host": "the host is PROMETHEUS_URL's",
                     "content-type": "the bot sets the request's own",
                     "content-length": "the bot sets the request's own",
                     "transfer-encoding": "the bot sets the request's own"}


class _AnswerTooLarge(Exception):
    """The answer went past ``max_answer_bytes``: the rest is not read."""


class _AnswerTooSlow(Exception):
    """The answer was still arriving at the deadline (a slow or trickling proxy)."""


class PrometheusAnalysis:
    """Asks one Prometheus server; ``base_url`` is ``PROMETHEUS_URL`` (a path prefix is kept,
    for a server behind a proxy; ``user:password@`` in it becomes basic auth)."""

    def __init__(self, base_url: str, *, timeout: float = 5.0,
                 http: urllib3.PoolManager | None = None,
                 max_answer_bytes: int = MAX_ANSWER_BYTES,
                 bearer_token_file: str | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        check_one_credential(base_url, bearer_token_file)
        for name, value in (headers or {}).items():
            check_header(name, value)
        url = parse_url(base_url.strip())
        self.base_url = url._replace(auth=None).url.rstrip("/")
        self.timeout = timeout
        self.max_answer_bytes = max_answer_bytes
        self._headers = {**(headers or {}), **_basic_auth(url.auth)}
        self._token = BearerTokenFile(bearer_token_file) if bearer_token_file else None
        self._http = http or urllib3.PoolManager(num_pools=2, maxsize=4)

    def query(self, promql: str, at: datetime) -> QueryResult:
        # partial_response=false: Thanos (and Mimir) then refuse a query that some store
        # cannot answer instead of answering from the rest; Prometheus ignores it.
        fields = {"query": promql, "time": f"{at.timestamp():.3f}",
                  "timeout": f"{int(self.timeout * 1000)}ms", "partial_response": "false"}
        try:
            headers = self._request_headers()
        except InvalidInput as exc:
            return _unavailable(str(exc))
        try:
            status, body = self._post(fields, headers)
        except NewConnectionError:  # before TimeoutError: urllib3 derives it from one
            return _unavailable(f"Prometheus at {self.base_url} is unreachable "
                                "(connection refused or no route)")
        except (TimeoutError, _AnswerTooSlow):
            return _unavailable(f"Prometheus at {self.base_url} did not answer within "
                                f"{self.timeout:g}s")
        except HTTPError as exc:
            tls = _ssl_error(exc)
            return QueryResult(
                kind=ResultKind.UNAVAILABLE,
                untrusted=isinstance(tls, ssl.SSLCertVerificationError),
                handshake_refused=tls is not None and tls.reason in _HANDSHAKE_REFUSED,
                reason=f"Prometheus at {self.base_url}: "
                       f"{_tls_reason(tls) if tls is not None else type(exc).__name__}")
        except _AnswerTooLarge:
            return QueryResult(kind=ResultKind.ERROR, reason=(
                f"the answer is larger than {self.max_answer_bytes // 1024} KiB: a check "
                "needs one number, aggregate the series (sum, max, avg)"))
        return _interpret(status, body, server=self.base_url)

    def _request_headers(self) -> dict[str, str]:
        """The headers of one query: the bearer token as its file holds it now."""
        if self._token is None:
            return self._headers
        return {**self._headers, "Authorization": f"Bearer {self._token.read()}"}

    def _post(self, fields: dict[str, str], headers: dict[str, str]) -> tuple[int, bytes]:
        """The answer's status and body, the whole of it within ``timeout`` + 1s."""
        deadline = time.monotonic() + self.timeout + 1
        response = self._http.request(
            "POST", f"{self.base_url}/api/v1/query", fields=fields, headers=headers,
            encode_multipart=False, retries=False, preload_content=False,
            timeout=urllib3.Timeout(connect=self.timeout, read=self.timeout + 1),
        )
        try:
            return response.status, _read_within(response, self.max_answer_bytes, deadline)
        except (_AnswerTooLarge, _AnswerTooSlow):
            response.close()  # unread bytes: the connection is not reused
            raise
        finally:
            response.release_conn()

    def close(self) -> None:
        self._http.clear()


class BearerTokenFile:
    """A bearer token read from its file at every query: a projected ServiceAccount token or
    a mounted Secret is replaced in place, and reading a few bytes costs nothing."""

    def __init__(self, path: str) -> None:
        self.path = path

    def read(self) -> str:
        """The token; InvalidInput naming the file, never what it holds, where it has none."""
        try:
            raw = Path(self.path).read_bytes().strip()
        except OSError as exc:
            raise InvalidInput(f"the bearer token file {self.path} cannot be read "
                               f"({exc.strerror or type(exc).__name__})") from None
        if not raw:
            raise InvalidInput(f"the bearer token file {self.path} is empty")
        if not _BEARER_TOKEN.fullmatch(raw):
            raise InvalidInput(f"the bearer token file {self.path} does not hold one token "
                               "(visible ASCII, no spaces or line breaks inside)")
        return raw.decode("ascii")


def check_one_credential(base_url: str, bearer_token_file: str | None) -> None:
    """A token file and ``user:password@`` in the URL are refused together: which of the two
    the server would be sent is a surprise either way."""
    if bearer_token_file and parse_url(base_url.strip()).auth:
        raise InvalidInput("PROMETHEUS_URL carries credentials (user:password@) too: give "
                           "either them or a bearer token file, not both")


def parse_headers(text: str) -> dict[str, str]:
    """``Name=value,Name=value`` (PROMETHEUS_HEADERS) as headers, each checked; blanks around
    a name or a value are dropped, and a value cannot hold a comma."""
    headers: dict[str, str] = {}
    for number, entry in enumerate((part.strip() for part in text.split(",")), start=1):
        if not entry:
            continue
        name, sep, value = (item.strip() for item in entry.partition("="))
        if not sep:  # not quoted: `Authorization: Bearer …` written by mistake is a secret
            raise InvalidInput(f"entry {number} is not Name=value (entries are separated by "
                               "commas)")
        check_header(name, value)
        if name.lower() in (known.lower() for known in headers):
            raise InvalidInput(f"the header {name} is given twice")
        headers[name] = value
    return headers


def check_header(name: str, value: str) -> None:
    """A header the bot may send as given: a valid name that is not reserved, and a value
    that cannot end the header early (no line break or control character)."""
    if not _HEADER_NAME.fullmatch(name):
        raise InvalidInput(f"{name!r} is not a header name (letters, digits and "
                           "!#$%&'*+-.^_`|~ only)")
    reserved = _RESERVED_HEADERS.get(name.lower())
    if reserved:
        raise InvalidInput(f"the header {name} cannot be set here: {reserved}")
    if not _HEADER_VALUE.fullmatch(value):
        raise InvalidInput(f"the header {name} needs a value of printable ASCII characters "
                           "(no line break or control character)")


def _basic_auth(userinfo: str | None) -> dict[str, str]:
    """The Authorization header for ``user:password`` of the URL (percent-decoded, as a
    URL writes ``@`` or ``:`` in them); none without."""
    if not userinfo:
        return {}
    user, _, password = userinfo.partition(":")
    return make_headers(basic_auth=f"{unquote(user)}:{unquote(password)}")


def _read_within(response: urllib3.BaseHTTPResponse, limit: int, deadline: float) -> bytes:
    """The body, in chunks: past ``limit`` bytes or ``deadline`` the rest is left unread
    (a socket timeout bounds each read, not a body that trickles in)."""
    chunks: list[bytes] = []
    size = 0
    while chunk := response.read1(_CHUNK):
        size += len(chunk)
        if size > limit:
            raise _AnswerTooLarge
        if time.monotonic() > deadline:
            raise _AnswerTooSlow
        chunks.append(chunk)
    return b"".join(chunks)


def _ssl_error(exc: BaseException) -> ssl.SSLError | None:
    """The ssl module's error under urllib3's wrapping, where TLS is the cause."""
    cause: BaseException | None = exc
    for _ in range(5):  # urllib3 wraps it once or twice: a bound, not any chain's walk
        if cause is None or isinstance(cause, ssl.SSLError):
            break
        links = (*cause.args[:1], cause.__cause__, cause.__context__)
        cause = next((link for link in links if isinstance(link, BaseException)), None)
    return cause if isinstance(cause, ssl.SSLError) else None


def _tls_reason(cause: ssl.SSLError) -> str:
    """A TLS failure as a person can act on it ("TLS: certificate verify failed
    (self-signed certificate)"): the error's reason code and the verifier's message, never
    the exception's text (nor the URL, so no credentials)."""
    what = cause.reason.replace("_", " ").lower() if cause.reason else "failed"
    verify = getattr(cause, "verify_message", None)
    return f"TLS: {what} ({verify.rstrip('.')})" if verify else f"TLS: {what}"


def _unavailable(reason: str) -> QueryResult:
    return QueryResult(kind=ResultKind.UNAVAILABLE, reason=reason)


def _interpret(status: int, body: bytes, *, server: str) -> QueryResult:
    try:
        payload: Any = json.loads(body)
    except ValueError:
        payload = None
    if not isinstance(payload, dict) or payload.get("status") not in ("success", "error"):
        kind = ResultKind.UNAVAILABLE if _overloaded(status) else ResultKind.ERROR
        return QueryResult(kind=kind, not_prometheus=True, reason=(
            f"Prometheus at {server} did not answer as Prometheus' query API (HTTP {status})"))
    if status in _CREDENTIALS_REFUSED:
        return _credentials_refused(status, payload, server=server)
    if payload["status"] == "error":
        error_type = str(payload.get("errorType", ""))
        transient = error_type in _TRANSIENT or status == 429 or (
            not error_type and status >= 500)
        return QueryResult(
            kind=ResultKind.UNAVAILABLE if transient else ResultKind.ERROR,
            evaluation_failed=error_type == "execution",
            reason=f"Prometheus refused the query (HTTP {status}, {error_type or 'error'}): "
                   f"{_quote(payload.get('error', ''))}")
    warnings = payload.get("warnings")
    if warnings:
        return QueryResult(kind=ResultKind.NO_DATA,
                           reason=f"Prometheus answered with warnings: {_quote(warnings)}")
    return _value_of(payload.get("data"))


def _credentials_refused(status: int, payload: dict[str, Any], *, server: str) -> QueryResult:
    """A 401 or 403 in the API's own JSON (Prometheus, or Mimir's gateway or an auth proxy
    speaking it) is the credentials' fault, not the query's, whatever the body says: marked
    as an answer `start` points at PROMETHEUS_URL's credentials for."""
    said = payload.get("error")
    detail = f": {_quote(said)}" if isinstance(said, str) and said else ""
    return QueryResult(kind=ResultKind.ERROR, not_prometheus=True, reason=(
        f"Prometheus at {server} refused the bot's credentials (HTTP {status}){detail}"))


def _overloaded(status: int) -> bool:
    """A 5xx or a 429 (rate limited) says "later", whatever the body."""
    return status >= 500 or status == 429


def _quote(warnings: object) -> str:
    """The warnings (or an error's text) in one line, clipped: a success with warnings may
    be a partial answer (a store down, its series missing), so its number is not trusted,
    and the reason says why; an error's text may quote a long query, or whatever a proxy
    put there. Prometheus 3's ``infos`` are notices, not doubts about the value: not read
    here."""
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

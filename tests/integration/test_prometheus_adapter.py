"""The Prometheus adapter over real HTTP: what the API answers decides the kind of result.

A real Prometheus answers the ordinary cases; a small WSGI server stands in for the answers
a healthy test server will not give on demand (a timeout, an overloaded proxy), and a socket
that never answers for a hung server. Message wording is never what decides.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

import pytest
import urllib3

from rollout.adapters.prometheus import PrometheusAnalysis
from rollout.domain.analysis import AnalysisFile, ResultKind
from rollout.domain.errors import InvalidInput
from rollout.domain.plan import build_plan
from sandbox.background_server import BackgroundServer
from sandbox.prometheus_server import PrometheusServer, WebUser
from tests.unit.analysis_builders import spec
from tests.unit.builders import ALICE
from tests.unit.fakes import one_route_world

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment


@pytest.fixture(scope="module")
def prometheus() -> Iterator[PrometheusAnalysis]:
    with PrometheusServer([]) as server:
        yield PrometheusAnalysis(server.url)


def _now() -> datetime:
    return datetime.now(UTC)


def test_a_number_is_a_value(prometheus: PrometheusAnalysis) -> None:
    assert prometheus.query("vector(0.25)", _now()).number == 0.25
    assert prometheus.query("scalar(vector(3))", _now()).number == 3.0


def test_the_query_is_evaluated_at_the_instant_given(prometheus: PrometheusAnalysis) -> None:
    """time() is the evaluation instant: the server was told the run's instant, not its own."""
    at = datetime(2026, 11, 26, 9, 30, 15, 250000, tzinfo=UTC)
    assert prometheus.query("time()", at).number == at.timestamp()
    later = at + timedelta(minutes=5)
    assert prometheus.query("time()", later).number == later.timestamp()


def test_an_empty_vector_and_nan_are_no_data(prometheus: PrometheusAnalysis) -> None:
    assert prometheus.query("absent_metric_for_sure", _now()).kind is ResultKind.NO_DATA
    assert prometheus.query("vector(0) / vector(0)", _now()).kind is ResultKind.NO_DATA


def test_a_bad_query_is_an_error_not_unavailability(prometheus: PrometheusAnalysis) -> None:
    result = prometheus.query("sum(rate(x[5", _now())
    assert result.kind is ResultKind.ERROR and "HTTP 400, bad_data" in result.reason


def test_several_series_are_an_error_that_says_to_aggregate(
        prometheus: PrometheusAnalysis) -> None:
    result = prometheus.query('label_replace(vector(1), "a", "1", "", "") '
                              'or label_replace(vector(2), "a", "2", "", "")', _now())
    assert result.kind is ResultKind.ERROR and "gave 2 series: aggregate" in result.reason


def _answering(status: str, body: bytes) -> BackgroundServer:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response(status, [("Content-Type", "application/json")])
        return [body]
    return BackgroundServer(app, ident="fake-prometheus", threads=2).start()


@pytest.mark.parametrize(("status", "payload", "kind"), [
    ("503 Service Unavailable", {"status": "error", "errorType": "timeout", "error": "x"},
     ResultKind.UNAVAILABLE),
    ("422 Unprocessable Entity", {"status": "error", "errorType": "execution", "error": "x"},
     ResultKind.ERROR),
    ("502 Bad Gateway", None, ResultKind.UNAVAILABLE),
    # Mimir's and Cortex's rate limit: try again later, not a query to fix
    ("429 Too Many Requests",
     {"status": "error", "errorType": "too_many_requests", "error": "x"},
     ResultKind.UNAVAILABLE),
    ("429 Too Many Requests", None, ResultKind.UNAVAILABLE),
    ("200 OK", None, ResultKind.ERROR),
])
def test_the_kind_follows_the_status_and_error_type(
        status: str, payload: dict[str, str] | None, kind: ResultKind) -> None:
    body = json.dumps(payload).encode() if payload else b"<html>proxy error</html>"
    server = _answering(status, body)
    try:
        assert PrometheusAnalysis(server.url).query("up", _now()).kind is kind
    finally:
        server.stop()


def test_the_query_refuses_a_partial_response(prometheus: PrometheusAnalysis) -> None:
    """Thanos reads partial_response=false as "refuse rather than answer from some stores";
    Prometheus ignores the parameter and answers as usual."""
    asked: list[dict[str, list[str]]] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        asked.append(parse_qs(environ["wsgi.input"].read(length).decode()))
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps({"status": "success",
                            "data": {"resultType": "scalar", "result": [0, "1"]}}).encode()]
    server = BackgroundServer(app, ident="fake-thanos", threads=2).start()
    try:
        assert PrometheusAnalysis(server.url).query("up", _now()).number == 1.0
    finally:
        server.stop()
    assert asked[0]["partial_response"] == ["false"] and asked[0]["query"] == ["up"]
    assert prometheus.query("vector(0.5)", _now()).number == 0.5


def test_a_success_with_warnings_is_no_data_never_a_value() -> None:
    """A partial answer (a store down) can lack exactly the canary's error series."""
    body = json.dumps({"status": "success", "warnings": ["store 10.0.0.7:10901 unavailable"],
                       "data": {"resultType": "vector",
                                "result": [{"metric": {}, "value": [0, "0"]}]}}).encode()
    server = _answering("200 OK", body)
    try:
        result = PrometheusAnalysis(server.url).query("errors", _now())
    finally:
        server.stop()
    assert result.kind is ResultKind.NO_DATA and result.number is None
    assert "store 10.0.0.7:10901 unavailable" in result.reason


def test_a_server_that_never_answers_times_out_as_unavailable() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        host, port = listener.getsockname()
        result = PrometheusAnalysis(f"http://{host}:{port}", timeout=0.3).query("up", _now())
    assert result.kind is ResultKind.UNAVAILABLE and "did not answer within 0.3s" in result.reason


def test_nothing_listening_is_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = PrometheusAnalysis(f"http://127.0.0.1:{port}").query("up", _now())
    assert result.kind is ResultKind.UNAVAILABLE and "unreachable" in result.reason


#: the test user's password and its bcrypt hash, as Prometheus' web config keeps it
READER = WebUser(name="reader", password="canary:p@ss word",
                 bcrypt_hash="$2b$04$wVSjNYFTmW8A8ebLd2CCAucey9bnz8bOVg8BZLNQ4Oc9F1zjGJ/pW")


def test_credentials_in_the_url_are_sent_as_basic_auth() -> None:
    """PROMETHEUS_URL=https://user:password@host, the password percent-encoded where a URL
    needs it, against a Prometheus that asks every request for basic auth."""
    with PrometheusServer([], user=READER) as server:
        host = server.url.removeprefix("http://")
        analysis = PrometheusAnalysis(f"http://reader:canary%3Ap%40ss%20word@{host}/")
        assert analysis.query("vector(0.5)", _now()).number == 0.5
        refused = PrometheusAnalysis(server.url).query("vector(0.5)", _now())
        assert refused.kind is ResultKind.ERROR and "HTTP 401" in refused.reason


def test_a_reason_never_names_the_urls_credentials() -> None:
    """A reason lands on the card, in the audit and in `status`: the server, not its
    password."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    analysis = PrometheusAnalysis(f"http://reader:s3cret@127.0.0.1:{port}/prometheus")
    result = analysis.query("up", _now())
    assert result.kind is ResultKind.UNAVAILABLE
    assert f"Prometheus at http://127.0.0.1:{port}/prometheus is unreachable" in result.reason
    assert "s3cret" not in result.reason and "s3cret" not in analysis.base_url


def test_an_answer_too_large_for_one_number_is_an_error_read_no_further(
        prometheus: PrometheusAnalysis) -> None:
    """A day of one-second points is megabytes of JSON: refused at the size limit, with
    what to do, rather than read whole into memory to say it is not one number."""
    result = prometheus.query("vector(time())[1d:1s]", _now())
    assert result.kind is ResultKind.ERROR
    assert result.reason.startswith("the answer is larger than 1024 KiB")
    assert prometheus.query("vector(0.25)", _now()).number == 0.25  # the pool still works


def _trickling(body: bytes, every: float) -> tuple[socket.socket, threading.Event]:
    """A server that sends its headers at once and then the body one byte every
    ``every`` seconds: each read gets data, so only a deadline on the whole answer ends
    it."""
    listener = socket.create_server(("127.0.0.1", 0))
    done = threading.Event()

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(body))
            for byte in body:
                if done.wait(every):
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return
    threading.Thread(target=serve, daemon=True).start()
    return listener, done


def test_an_answer_that_trickles_in_past_the_timeout_is_unavailable() -> None:
    """A run waits at most one timeout per server: an answer still arriving after it is
    not waited for, though every read of it gets a byte in time."""
    payload = json.dumps({"status": "success",
                          "data": {"resultType": "scalar", "result": [0, "1"]}}).encode()
    listener, done = _trickling(b" " * 40 + payload, every=0.1)
    host, port = listener.getsockname()
    started = time.monotonic()
    try:
        result = PrometheusAnalysis(f"http://{host}:{port}", timeout=0.3).query("up", _now())
    finally:
        done.set()
        listener.close()
    assert result.kind is ResultKind.UNAVAILABLE and "did not answer within 0.3s" in result.reason
    assert time.monotonic() - started < 3.0


class _Recording:
    """A server that answers every query as Prometheus would (the scalar 1) and keeps the
    headers each request came with: Prometheus' web config knows only basic auth."""

    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []
        self.server = BackgroundServer(self._app, ident="recording-prometheus",
                                       threads=2).start()

    def _app(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        self.seen.append({key.removeprefix("HTTP_"): str(value)
                          for key, value in environ.items() if key.startswith("HTTP_")})
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps({"status": "success",
                            "data": {"resultType": "scalar", "result": [0, "1"]}}).encode()]


@pytest.fixture()
def recording() -> Iterator[_Recording]:
    server = _Recording()
    yield server
    server.server.stop()


def test_the_bearer_token_is_read_from_its_file_at_each_query(
        recording: _Recording, tmp_path: Path) -> None:
    """A projected ServiceAccount token is replaced in place: the next query sends the new
    one, with the extra headers on every query."""
    token = tmp_path / "token"
    token.write_text("first-token\n")
    analysis = PrometheusAnalysis(recording.server.url, bearer_token_file=str(token),
                                  headers={"X-Scope-OrgID": "tenant-1", "X-Other": "a b"})
    assert analysis.query("up", _now()).number == 1.0
    token.write_text("second-token")
    assert analysis.query("up", _now()).number == 1.0
    assert [(seen["AUTHORIZATION"], seen["X_SCOPE_ORGID"], seen["X_OTHER"])
            for seen in recording.seen] == [("Bearer first-token", "tenant-1", "a b"),
                                            ("Bearer second-token", "tenant-1", "a b")]


@pytest.mark.parametrize(("held", "said"), [
    (None, "cannot be read (No such file or directory)"),
    ("", "is empty"),
    ("a token\n", "does not hold one token"),
])
def test_a_token_file_without_a_token_is_unavailable_and_nothing_is_sent(
        recording: _Recording, tmp_path: Path, held: str | None, said: str) -> None:
    """Rotation in progress or a Secret gone: ask again later; the reason names the file,
    never what it holds."""
    token = tmp_path / "token"
    if held is not None:
        token.write_text(held)
    result = PrometheusAnalysis(recording.server.url, bearer_token_file=str(token)).query(
        "up", _now())
    assert result.kind is ResultKind.UNAVAILABLE and result.number is None
    assert result.reason.startswith(f"the bearer token file {token} {said}")
    assert "a token" not in result.reason
    assert recording.seen == []


def test_headers_and_the_urls_basic_auth_reach_prometheus_together() -> None:
    """A tenant header beside basic auth, against a real Prometheus asking for it."""
    with PrometheusServer([], user=READER) as server:
        host = server.url.removeprefix("http://")
        analysis = PrometheusAnalysis(f"http://reader:canary%3Ap%40ss%20word@{host}",
                                      headers={"X-Scope-OrgID": "tenant-1"})
        assert analysis.query("vector(0.5)", _now()).number == 0.5


def test_a_token_beside_the_urls_credentials_or_a_bad_header_is_refused(
        tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("t")
    with pytest.raises(InvalidInput, match="carries credentials"):
        PrometheusAnalysis("http://reader:pw@127.0.0.1:9", bearer_token_file=str(token))
    with pytest.raises(InvalidInput, match="the header Authorization cannot be set here"):
        PrometheusAnalysis("http://127.0.0.1:9", headers={"Authorization": "Bearer t"})
    with pytest.raises(InvalidInput, match="the header X-A needs a value"):
        PrometheusAnalysis("http://127.0.0.1:9", headers={"X-A": "a\r\nX-B: b"})


def _redirecting(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    start_response("302 Found", [("Location", "/login"), ("Content-Type", "text/html")])
    return [b"<a href='/login'>Found</a>"]


def test_an_answer_not_from_the_api_is_marked_and_names_the_server() -> None:
    """A wrong password (401), a wrong path (404) and a login redirect are the URL's fault or
    its credentials', which `start` says; a refused query is not marked."""
    with PrometheusServer([], user=READER) as server:
        host = server.url.removeprefix("http://")
        unauthorized = PrometheusAnalysis(f"http://reader:wrong@{host}").query("up", _now())
        wrong_path = PrometheusAnalysis(
            f"http://reader:canary%3Ap%40ss%20word@{host}/prometheus").query("up", _now())
        bad_query = PrometheusAnalysis(
            f"http://reader:canary%3Ap%40ss%20word@{host}").query("sum(x[5", _now())
    redirect = BackgroundServer(_redirecting, ident="login-redirect", threads=2).start()
    try:
        redirected = PrometheusAnalysis(redirect.url).query("up", _now())
    finally:
        redirect.stop()
    for result, status, at in ((unauthorized, 401, server.url),
                               (wrong_path, 404, f"{server.url}/prometheus"),
                               (redirected, 302, redirect.url)):
        assert result.kind is ResultKind.ERROR and result.not_prometheus
        assert result.reason == (f"Prometheus at {at} did not answer as Prometheus' query "
                                 f"API (HTTP {status})")
    assert bad_query.kind is ResultKind.ERROR and not bad_query.not_prometheus


def _wants_a_tenant(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """As Mimir answers a query without its tenant header."""
    if not environ.get("HTTP_X_SCOPE_ORGID"):
        start_response("401 Unauthorized", [("Content-Type", "text/plain")])
        return [b"no org id\n"]
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps({"status": "success", "data": {"resultType": "vector",
                                                      "result": []}}).encode()]


def test_start_against_a_server_refusing_its_credentials_points_at_the_url() -> None:
    """Through the adapter: the start is refused, nothing written, and the answer says to
    check PROMETHEUS_URL and its credentials; with the tenant header it goes ahead."""
    server = BackgroundServer(_wants_a_tenant, ident="fake-mimir", threads=2).start()
    try:
        refused = _start_against(PrometheusAnalysis(server.url))
        started = _start_against(PrometheusAnalysis(server.url,
                                                     headers={"X-Scope-OrgID": "tenant-1"}))
    finally:
        server.stop()
    assert refused == (
        f"Prometheus at {server.url} did not answer as Prometheus' query API (HTTP 401): "
        "check PROMETHEUS_URL and its credentials (PROMETHEUS_BEARER_TOKEN_FILE, "
        "PROMETHEUS_HEADERS) and start again; nothing was changed")
    assert started == "started"


@pytest.mark.parametrize(("status", "error_type"), [("401 Unauthorized", "unauthorized"),
                                                   ("403 Forbidden", "forbidden")])
def test_a_401_or_403_in_the_apis_own_json_points_at_the_credentials(
        status: str, error_type: str) -> None:
    """A proxy (Mimir's gateway, an auth proxy) may refuse credentials in Prometheus' error
    JSON: the status says whose fault it is, not the body's shape or words, so `start`
    points at PROMETHEUS_URL's credentials rather than at the analysis file's queries."""
    body = json.dumps({"status": "error", "errorType": error_type,
                       "error": "authentication failed: invalid token"}).encode()
    server = _answering(status, body)
    try:
        result = PrometheusAnalysis(server.url).query("up", _now())
        refused = _start_against(PrometheusAnalysis(server.url))
    finally:
        server.stop()
    code = status.split(maxsplit=1)[0]
    assert result.kind is ResultKind.ERROR and result.not_prometheus
    assert refused == (
        f"Prometheus at {server.url} refused the bot's credentials (HTTP {code}): "
        "authentication failed: invalid token: check PROMETHEUS_URL and its credentials "
        "(PROMETHEUS_BEARER_TOKEN_FILE, PROMETHEUS_HEADERS) and start again; nothing was "
        "changed")


def _start_against(port: PrometheusAnalysis) -> str:
    """What `start` of a gated rollout answers over the fakes, asking ``port``: "started",
    or the refusal, with nothing saved or written."""
    service, store, target, _ = one_route_world()
    service.options = replace(service.options, analysis=port, analyses=AnalysisFile(
        default="quick", analyses={"quick": spec()}))
    try:
        service.start(namespace="default", canary="llm-pool-version-2", actor=ALICE,
                      plan=build_plan((10, 100), interval_seconds=60))
    except InvalidInput as exc:
        assert store.saves == [] and target.writes == []
        return str(exc)
    return "started"


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, as a private Prometheus may
    serve: no CA the system trusts signed it."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: cannot make the test certificate")
    d = tmp_path_factory.mktemp("prometheus-tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", "key.pem", "-out", "cert.pem"],
                   cwd=d, check=True, capture_output=True, timeout=60)
    return d / "cert.pem", d / "key.pem"


class _ScalarOne(http.server.BaseHTTPRequestHandler):
    """Answers every query as Prometheus would: the scalar 1."""

    def do_POST(self) -> None:
        body = json.dumps({"status": "success",
                           "data": {"resultType": "scalar", "result": [0, "1"]}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def _serving(tls: tuple[Path, Path] | None, *,
             client_certificates: bool = False) -> Iterator[int]:
    """A real HTTP server on 127.0.0.1, over TLS with ``tls`` (certificate, key), asking for
    a client certificate with ``client_certificates`` (in TLS 1.2, whose handshake refuses
    a client without one; TLS 1.3 refuses after the handshake, and the client sees that
    alert or only an EOF, by timing); yields its port. Unlike waitress it answers a TLS
    hello to plain HTTP at once (400)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ScalarOne)
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        if client_certificates:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(tls[0])
            context.maximum_version = ssl.TLSVersion.TLSv1_2
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def test_a_tls_failure_says_what_to_fix_never_the_urls_credentials(
        self_signed: tuple[Path, Path]) -> None:
    """A reason of only "SSLError" told nobody what to fix: it names the verifier's own
    cause (a certificate no trusted CA signed, a name it does not cover), read from the ssl
    error urllib3 wraps; trusted, the same server answers."""
    trusting = urllib3.PoolManager(ca_certs=str(self_signed[0]))
    with _serving(self_signed) as port:
        untrusted = PrometheusAnalysis(f"https://reader:s3cret@127.0.0.1:{port}").query(
            "up", _now())
        misnamed = PrometheusAnalysis(f"https://localhost:{port}", http=trusting).query(
            "up", _now())
        trusted = PrometheusAnalysis(f"https://127.0.0.1:{port}", http=trusting).query(
            "up", _now())
    assert untrusted.kind is ResultKind.UNAVAILABLE and untrusted.untrusted
    assert untrusted.reason == (f"Prometheus at https://127.0.0.1:{port}: TLS: certificate "
                                "verify failed (self-signed certificate)")
    assert misnamed.untrusted and not trusted.untrusted
    assert "s3cret" not in untrusted.reason and "reader" not in untrusted.reason
    assert misnamed.reason == (f"Prometheus at https://localhost:{port}: TLS: certificate "
                               "verify failed (Hostname mismatch, certificate is not valid "
                               "for 'localhost')")
    assert trusted.number == 1.0


def test_start_against_an_untrusted_certificate_points_at_it(
        self_signed: tuple[Path, Path]) -> None:
    """Through the adapter: refused, nothing written, pointing at the URL and the
    certificates trusted; with the certificate trusted the same start goes ahead."""
    trusting = urllib3.PoolManager(ca_certs=str(self_signed[0]))
    with _serving(self_signed) as port:
        refused = _start_against(PrometheusAnalysis(f"https://127.0.0.1:{port}"))
        started = _start_against(PrometheusAnalysis(f"https://127.0.0.1:{port}",
                                                     http=trusting))
    assert refused == (
        f"Prometheus at https://127.0.0.1:{port}: TLS: certificate verify failed "
        "(self-signed certificate): check PROMETHEUS_URL and the certificates the bot "
        "trusts (SSL_CERT_FILE) and start again; nothing was changed")
    assert started == "started"


def test_https_to_a_plain_http_server_says_tls_not_sslerror() -> None:
    """The handshake met HTTP: the reason names TLS's own reason code, not a class name,
    and marks a handshake that will fail again."""
    with _serving(None) as port:
        result = PrometheusAnalysis(f"https://127.0.0.1:{port}").query("up", _now())
    assert result.kind is ResultKind.UNAVAILABLE and not result.untrusted
    assert result.handshake_refused
    assert result.reason.startswith(f"Prometheus at https://127.0.0.1:{port}: TLS: ")
    assert "SSLError" not in result.reason


HANDSHAKE_ADVICE = (
    ": check PROMETHEUS_URL's scheme and port (https:// to a port that speaks plain HTTP "
    "fails so) and whether the server asks for a client certificate or a TLS version the "
    "bot does not offer, and start again; nothing was changed")


def test_start_with_https_to_a_plain_http_port_points_at_the_url() -> None:
    """It failed the same way at every run, inconclusive until the rollout paused with
    traffic moved: refused at start, nothing written; the same server over http starts."""
    with _serving(None) as port:
        refused = _start_against(PrometheusAnalysis(f"https://127.0.0.1:{port}"))
        started = _start_against(PrometheusAnalysis(f"http://127.0.0.1:{port}"))
    assert refused == (f"Prometheus at https://127.0.0.1:{port}: TLS: wrong version number"
                       f"{HANDSHAKE_ADVICE}")
    assert started == "started"


def test_start_against_a_server_asking_for_a_client_certificate_points_at_it(
        self_signed: tuple[Path, Path]) -> None:
    """The bot sends no client certificate: every handshake ends in the server's alert."""
    trusting = urllib3.PoolManager(ca_certs=str(self_signed[0]))
    with _serving(self_signed, client_certificates=True) as port:
        refused = _start_against(PrometheusAnalysis(f"https://127.0.0.1:{port}",
                                                    http=trusting))
    assert refused == (f"Prometheus at https://127.0.0.1:{port}: TLS: sslv3 alert "
                       f"handshake failure{HANDSHAKE_ADVICE}")


def test_a_connection_closed_mid_handshake_is_unavailable_not_refused() -> None:
    """An EOF in the handshake is what a server restarting answers: the start goes ahead
    and the runs wait for it, as for any outage."""
    listener = socket.create_server(("127.0.0.1", 0))

    def close_each() -> None:
        with contextlib.suppress(OSError):
            while True:
                connection, _ = listener.accept()
                connection.close()

    threading.Thread(target=close_each, daemon=True).start()
    port = listener.getsockname()[1]
    try:
        result = PrometheusAnalysis(f"https://127.0.0.1:{port}").query("up", _now())
        started = _start_against(PrometheusAnalysis(f"https://127.0.0.1:{port}"))
    finally:
        listener.close()
    assert result.kind is ResultKind.UNAVAILABLE
    assert not result.handshake_refused and not result.untrusted
    assert started == "started"

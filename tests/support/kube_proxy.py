"""A fault-injecting, logging HTTP proxy in front of the real kube-apiserver.

The bot under test talks to this proxy (plain HTTP on loopback) exactly as it would to a
cluster; the proxy forwards every request over TLS to the API server, with the caller's own
credentials. Tests arm faults (fail, or stall and then fail or proceed, the next N matching
requests) and read the log of what was asked and answered, with the same `Fault` and
`RequestRecord` types the emulator uses, so one test runs against either.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import urllib3

from sandbox.kube.faults import Fault, FaultBook, RequestRecord

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
               "proxy-authorization", "proxy-authenticate", "host", "content-length"}
_REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
            409: "Conflict", 410: "Expired", 415: "UnsupportedMediaType", 422: "Invalid",
            429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable",
            504: "Timeout"}


def parse_request(method: str, target: str) -> tuple[str, str, str | None, str | None, str | None]:
    """(verb, resource, namespace, name, subresource) of an API path, as RBAC names them."""
    url = urlsplit(target)
    parts = [p for p in url.path.split("/") if p]
    if parts[:1] == ["api"]:
        rest = parts[2:]
    elif parts[:1] == ["apis"]:
        rest = parts[3:]
    else:
        return method.lower(), "", None, None, None
    namespace = None
    if len(rest) >= 2 and rest[0] == "namespaces" and len(rest) != 2:
        namespace, rest = rest[1], rest[2:]
    resource = rest[0] if rest else ""
    name = rest[1] if len(rest) > 1 else None
    subresource = rest[2] if len(rest) > 2 else None
    query = parse_qs(url.query)
    verb = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch",
            "DELETE": "delete"}.get(method, method.lower())
    if method == "GET" and name is None:
        verb = "watch" if query.get("watch", ["false"])[0] in ("true", "1") else "list"
    return verb, resource, namespace, name, subresource


#: the Retry-After of an injected 429, as the API server's throttles send one
THROTTLE_RETRY_AFTER = "2"


def status_body(code: int, message: str) -> bytes:
    return json.dumps({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": _REASONS.get(code, "InternalError"), "code": code,
    }).encode()


class KubeProxy:
    """The proxy server; `url` is what the bot's kubeconfig points at."""

    def __init__(self, upstream: str, ca_file: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.book = FaultBook()
        self.forbidden: list[str] = []  # the server's own 403s (injected ones are not here)
        self.connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._http = urllib3.PoolManager(maxsize=32, ca_certs=ca_file, retries=False)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        #: set by `hold_stalls`: a fault's stall lasts until this is set (or its seconds pass)
        self.held: threading.Event | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the proxy is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> None:
        proxy = self

        class Handler(_Forwarder):
            owner = proxy

        server = _QuietServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.5},
                                        name="kube-proxy", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.book.stop_stalls()
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        with self._lock:  # kept-alive connections too: a stopped cluster answers nobody
            for conn in self.connections:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            self.connections.clear()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def inject(self, fault: Fault) -> None:
        self.book.inject(fault)

    def hold_stalls(self) -> threading.Event:
        """From now on a fault's stall lasts until the event returned is set (at most its
        `stall_seconds`), not for a fixed time: for a test that does something while a
        request is held, which on a loaded machine can outlast any short stall. Set it before
        the test ends."""
        self.held = threading.Event()
        return self.held

    def stall(self, seconds: float) -> None:
        held = self.held
        if held is None:
            self.book.stall(seconds)
        else:
            held.wait(seconds)

    def forward(self, method: str, target: str, headers: dict[str, str],
                body: bytes) -> urllib3.BaseHTTPResponse:
        return self._http.request(method, self.upstream + target, headers=headers, body=body,
                                  preload_content=False, redirect=False,
                                  timeout=urllib3.Timeout(connect=5.0, read=None))


class _QuietServer(ThreadingHTTPServer):
    """A caller killed mid-request resets its connection: that is not the proxy's error."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Forwarder(BaseHTTPRequestHandler):
    owner: KubeProxy
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; with Nagle on, the body waits for the
        # client's delayed ACK of the headers (40 ms a request on Linux).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.owner._lock:
            self.owner.connections.add(self.connection)

    def finish(self) -> None:
        with self.owner._lock:
            self.owner.connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the request log is the record

    def _handle(self) -> None:
        proxy = self.owner
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        verb, resource, namespace, name, subresource = parse_request(self.command, self.path)
        fault = proxy.book.take(verb, resource, namespace, name) if subresource is None \
            else None
        if fault is not None and fault.stall_seconds:
            proxy.stall(fault.stall_seconds)

        def record(code: int) -> None:
            """Logged before the caller has the answer: a test that reads the log once its
            call returned finds the request there."""
            proxy.book.record(RequestRecord(
                method=self.command, path=self.path, verb=verb, resource=resource,
                namespace=namespace, name=name, subresource=subresource,
                content_type=self.headers.get("Content-Type", ""), body=body, status=code,
                at=time.time(),
            ))

        if fault is not None and fault.served_first:
            self._relay_and_fail(body, record, fault.answer_after)
        elif fault is not None and fault.status is not None:
            record(fault.status)
            # the API server's throttles name when to come back, in whole seconds
            extra = {"Retry-After": THROTTLE_RETRY_AFTER} if fault.status == 429 else {}
            with contextlib.suppress(OSError):  # the caller may have given up meanwhile
                self._reply(fault.status, status_body(fault.status,
                                                      f"injected fault: {fault.status}"), extra)
        else:
            self._relay(verb, body, record)

    def _relay(self, verb: str, body: bytes, record: Callable[[int], None]) -> None:
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        try:
            answer = self.owner.forward(self.command, self.path, headers, body)
        except urllib3.exceptions.HTTPError as exc:
            record(502)
            self._reply(HTTPStatus.BAD_GATEWAY, status_body(502, f"proxy: {exc}"))
            return
        record(answer.status)
        if answer.status == HTTPStatus.FORBIDDEN:
            self.owner.forbidden.append(f"{self.command} {self.path}")
        # The server's answer is what landed, even when the caller has gone (a timeout).
        with contextlib.closing(answer), contextlib.suppress(OSError):
            self.send_response(answer.status)
            for key, value in answer.headers.items():
                if key.lower() not in _HOP_BY_HOP:
                    self.send_header(key, value)
            if verb == "watch":
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                # the server may cut a watch short (its CRD deleted): the stream just ends
                with contextlib.suppress(urllib3.exceptions.ProtocolError):
                    for chunk in answer.stream(4096, decode_content=False):
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                        self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
            else:
                data = answer.read(decode_content=False)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

    def _relay_and_fail(self, body: bytes, record: Callable[[int], None],
                        status: int | None) -> None:
        """Serve the request upstream, then answer `status` for it, or (None) close the
        connection without a word: the write landed, and its caller hears that it failed, or
        sees the connection drop. The log records what the server answered."""
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        answer = self.owner.forward(self.command, self.path, headers, body)
        with contextlib.closing(answer):
            answer.read(decode_content=False)
        record(answer.status)
        if status is not None:
            with contextlib.suppress(OSError):
                self._reply(status, status_body(status, f"injected fault: {status}"))
            return
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _reply(self, code: int, data: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle  # noqa: N815 - the base's names

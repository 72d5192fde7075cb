"""The Kubernetes client as the bot builds it from a kubeconfig."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import (
    ConnectTimeoutError,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)

from bot.kube import api_client, request_retries
from tests.support.kube_api import close_api

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {server: "https://kube.test:6443", insecure-skip-tls-verify: true}
users:
- name: bot
  user: {token: "a-token"}
contexts:
- name: test
  context: {cluster: test, user: bot}
current-context: test
"""


def test_the_environments_proxy_is_resolved_once(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The client's token refresh runs before every request and sets the host again, which
    looked the proxy up in the environment anew (every variable, each request): resolved at
    start, a later environment changes nothing."""
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.test:3128")
    api = api_client(str(path))
    try:
        configuration = api.configuration
        assert configuration.proxy == "http://proxy.test:3128"
        monkeypatch.setenv("HTTPS_PROXY", "http://elsewhere.test:3128")
        assert configuration.refresh_api_key_hook is not None
        configuration.refresh_api_key_hook(configuration)  # what each request runs first
        assert configuration.host == "https://kube.test:6443"
        assert configuration.proxy == "http://proxy.test:3128"
    finally:
        close_api(api)


class _Answers(BaseHTTPRequestHandler):
    """Answers each request with the next of `script` (a status, or None to drop the
    connection unanswered) and counts what came."""

    script: ClassVar[list[int | None]] = []
    seen: ClassVar[list[str]] = []

    def _answer(self) -> None:
        self.seen.append(self.command)
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status = self.script.pop(0) if self.script else 200
        if status is None:
            self.close_connection = True
            return
        body = json.dumps({"kind": "Status", "apiVersion": "v1", "code": status,
                           "metadata": {}} if status >= 400 else
                          {"apiVersion": "v1", "kind": "Thing", "metadata": {}}).encode()
        self.send_response(status)
        self.send_header("Retry-After", "1")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._answer()

    def do_PUT(self) -> None:
        self._answer()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def answering(tmp_path: Path) -> Iterator[tuple[type[_Answers], client.ApiClient]]:
    handler = type("Answers", (_Answers,), {"script": [], "seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG.replace("https://kube.test:6443",
                                       f"http://127.0.0.1:{server.server_address[1]}"))
    api = api_client(str(path))
    try:
        yield handler, api
    finally:
        close_api(api)
        server.shutdown()
        server.server_close()


def _get(api: client.ApiClient) -> object:
    return client.CustomObjectsApi(api).get_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", "default", "httproutes", "routes-to-llm",
        _request_timeout=(2, 2))


def _put(api: client.ApiClient) -> object:
    return client.CustomObjectsApi(api).replace_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", "default", "httproutes", "routes-to-llm",
        {"metadata": {"name": "routes-to-llm"}}, _request_timeout=(2, 2))


@pytest.mark.parametrize("status", [429, 503])
@pytest.mark.parametrize("call", [_get, _put], ids=["GET", "PUT"])
def test_an_answer_naming_retry_after_comes_back_at_once(
    answering: tuple[type[_Answers], client.ApiClient], status: int,
    call: Callable[[client.ApiClient], object],
) -> None:
    """urllib3 slept a 429's or 503's Retry-After inside a GET or PUT and sent it again: the
    bot gets the answer (a throttle is its to decide on) and nothing is sent twice."""
    handler, api = answering
    handler.script[:] = [status, 200]
    with pytest.raises(ApiException) as raised:
        call(api)
    assert raised.value.status == status
    assert len(handler.seen) == 1


def test_a_dropped_connection_is_tried_once_more(
    answering: tuple[type[_Answers], client.ApiClient],
) -> None:
    handler, api = answering
    handler.script[:] = [None, 200]
    assert _get(api) == {"apiVersion": "v1", "kind": "Thing", "metadata": {}}
    assert handler.seen == ["GET", "GET"]


def _retried(method: str, error: Exception) -> bool:
    """Whether the client's Retry sends `method` again after `error` (urllib3 raises the
    error itself, or MaxRetryError once a count is spent)."""
    try:
        request_retries().increment(method=method, url="/apis", error=error)
    except (type(error), MaxRetryError):
        return False
    return True


@pytest.mark.parametrize("method", ["GET", "PATCH", "PUT", "POST", "DELETE"])
def test_a_connection_that_never_opened_is_tried_once_more(method: str) -> None:
    assert _retried(method, NewConnectionError(None, "refused"))  # type: ignore[arg-type]
    assert _retried(method, ConnectTimeoutError("no answer to the SYN"))


@pytest.mark.parametrize("method", ["PATCH", "PUT", "POST", "DELETE"])
def test_a_write_that_may_have_reached_the_server_is_not_sent_again(method: str) -> None:
    """urllib3 counts an SSL error as `other`, retried for any method: a PATCH that landed,
    sent again, met its own write (409) and the bot saw a drift of its own making."""
    assert not _retried(method, SSLError("decryption failed or bad record mac"))
    assert not _retried(method, ProtocolError("Connection aborted."))
    assert not _retried(method, ReadTimeoutError(None, "/apis", "read timed out"))  # type: ignore[arg-type]


def test_a_read_is_tried_again_after_a_dropped_connection_not_after_other_errors() -> None:
    assert _retried("GET", ProtocolError("Connection aborted."))
    assert not _retried("GET", SSLError("decryption failed or bad record mac"))

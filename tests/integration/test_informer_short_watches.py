"""A server (or a proxy in front of it) that answers every watch with 200 and closes it at
once: the namespace cache's nine informers, on the Kubernetes client the bot builds, wait
between those watches as between failures (the wait doubling), where each once reopened its
watch at once, thousands of times a second and without a log line. One that answers each
watch with an ERROR event (a 500 Status) is listed again, the wait doubling too, where the
wait once stayed at its shortest because each watch had opened."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest
from kubernetes import client

from bot.kube import api_client, custom_objects
from rollout.adapters.kube.core_lists import CoreLists
from rollout.adapters.kube.informer import WatchTiming
from rollout.adapters.namespace_cache import NamespaceCache
from tests.support.kube_api import close_api

NS = "default"
KINDS = 9  # informers per namespace
# waits of 0.1, 0.2, 0.4, 0.8, 1 s: watches at 0, 0.1, 0.3, 0.7, 1.5, 2.5 s after the first
TIMING = WatchTiming(retry_seconds=0.1, recheck_seconds=1.0)
WINDOW = 2.0
WATCHES_PER_KIND = 5  # in WINDOW; one more allowed, and two fewer on a loaded machine
#: (the waits themselves are pinned by tests/unit/test_informer_backoff.py)

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {{server: "http://127.0.0.1:{port}"}}
users:
- name: bot
  user: {{token: "a-token"}}
contexts:
- name: test
  context: {{cluster: test, user: bot}}
current-context: test
"""


class _ClosingWatches(BaseHTTPRequestHandler):
    """Lists answer an empty list at version 5; a watch is answered 200 and ended at once,
    with an empty body (`empty`), by closing the connection (`cut`), or after one ERROR event
    (`error`, as the API server sends a failure it meets once the watch is open)."""

    protocol_version = "HTTP/1.1"
    ending: ClassVar[str] = "empty"
    seen: ClassVar[list[tuple[str, bool]]]  # (path, watch)
    lock: ClassVar[threading.Lock]

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        watch = parse_qs(url.query).get("watch") == ["true"]
        with self.lock:
            self.seen.append((url.path, watch))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if watch and self.ending == "cut":
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            return
        if not watch:
            body = json.dumps({"kind": "List", "apiVersion": "v1",
                               "metadata": {"resourceVersion": "5"}, "items": []}).encode()
        elif self.ending == "error":
            body = json.dumps({"type": "ERROR", "object": {
                "kind": "Status", "apiVersion": "v1", "status": "Failure",
                "message": "an error on the server", "reason": "InternalError",
                "code": 500}}).encode() + b"\n"
        else:
            body = b""
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server(request: pytest.FixtureRequest, tmp_path: Path,
           ) -> Iterator[tuple[type[_ClosingWatches], client.ApiClient]]:
    """The server, answering watches as the test's `ending` parameter says."""
    handler = type("Handler", (_ClosingWatches,),
                   {"ending": request.param, "seen": [], "lock": threading.Lock()})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG.format(port=httpd.server_address[1]))
    api = api_client(str(kubeconfig), connections=10)  # as the bot builds the cache's client
    try:
        yield handler, api
    finally:
        close_api(api)
        httpd.shutdown()
        httpd.server_close()


def _watch_for_a_while(handler: type[_ClosingWatches], api: client.ApiClient,
                       caplog: pytest.LogCaptureFixture,
                       ) -> tuple[dict[str, int], dict[str, int], list[str]]:
    """The cache of one namespace for WINDOW seconds: watches and lists sent per kind, and
    the informers' warnings."""
    cache = NamespaceCache(custom_objects(api), CoreLists(api), timing=TIMING)
    with caplog.at_level(logging.DEBUG, logger="rollout.adapters.kube.informer"):
        cache.watch(NS)
        try:
            time.sleep(WINDOW)  # a rate over a fixed time: nothing to poll for
        finally:
            cache.stop()
    with handler.lock:
        seen = list(handler.seen)
    watches = Counter(path for path, watch in seen if watch)
    lists = Counter(path for path, watch in seen if not watch)
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    return dict(watches), dict(lists), warned


@pytest.mark.parametrize("server", ["empty", "cut"], indirect=True)
def test_watches_that_close_at_once_are_spaced_by_the_doubling_wait_and_logged_once(
        server: tuple[type[_ClosingWatches], client.ApiClient],
        caplog: pytest.LogCaptureFixture) -> None:
    watches, lists, warned = _watch_for_a_while(*server, caplog)
    assert len(watches) == KINDS and list(lists.values()) == [1] * KINDS  # never listed again
    assert max(watches.values()) <= WATCHES_PER_KIND + 1, watches
    assert min(watches.values()) >= WATCHES_PER_KIND - 2, watches  # and it kept trying
    assert len(warned) == KINDS, warned  # one line each, not one a retry
    assert all("ended within" in line for line in warned), warned


@pytest.mark.parametrize("server", ["error"], indirect=True)
def test_watches_that_open_and_fail_list_again_spaced_by_the_doubling_wait(
        server: tuple[type[_ClosingWatches], client.ApiClient],
        caplog: pytest.LogCaptureFixture) -> None:
    watches, lists, warned = _watch_for_a_while(*server, caplog)
    assert len(watches) == KINDS and watches.keys() == lists.keys()
    assert max(watches.values()) <= WATCHES_PER_KIND + 1, watches
    assert min(watches.values()) >= WATCHES_PER_KIND - 2, watches
    # each failed watch listed again before the next one
    assert all(lists[path] in (count, count + 1) for path, count in watches.items()), lists
    assert len(warned) == KINDS, warned
    assert all("watch error 500; listing again" in line for line in warned), warned

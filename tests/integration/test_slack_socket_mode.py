"""The emulator's Socket Mode door: only the app-level token opens it, each URL admits one
connection, and a wrong ticket is refused at the handshake."""

from __future__ import annotations

import json
import socket
import urllib.request
from collections.abc import Iterator
from urllib.parse import urlparse

import pytest

from sandbox.slack import SlackEmulator


def _open(emulator: SlackEmulator, token: str) -> dict[str, object]:
    request = urllib.request.Request(  # noqa: S310 - the emulator, over http
        emulator.api_url + "apps.connections.open", data=b"",
        headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
        answer: dict[str, object] = json.loads(response.read())
        return answer


def _handshake(url: str) -> bytes:
    parsed = urlparse(url)
    with socket.create_connection((parsed.hostname, parsed.port), timeout=5) as sock:
        sock.sendall(f"GET {parsed.path}?{parsed.query} HTTP/1.1\r\nHost: x\r\n"
                     "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n".encode())
        return sock.recv(4096)


@pytest.fixture
def emulator() -> Iterator[SlackEmulator]:
    e = SlackEmulator("secret", bot_token="xoxb-t", socket_mode=True, app_token="xapp-t")
    e.start()
    try:
        yield e
    finally:
        e.stop()


def test_only_the_app_token_opens_a_connection_and_a_url_admits_one(
    emulator: SlackEmulator,
) -> None:
    assert _open(emulator, "xoxb-t") == {"ok": False, "error": "not_allowed_token_type"}
    answer = _open(emulator, "xapp-t")
    assert answer["ok"] is True and str(answer["url"]).startswith("ws://")
    first = _handshake(str(answer["url"]))
    assert first.startswith(b"HTTP/1.1 101")
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in first  # RFC 6455's example
    assert _handshake(str(answer["url"])).startswith(b"HTTP/1.1 401")

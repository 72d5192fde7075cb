"""Slack's Socket Mode, emulated: `apps.connections.open` hands out a one-time WebSocket URL;
over it Slack sends a `hello`, then envelopes (`slash_commands`, `interactive`) that the app
must acknowledge with their `envelope_id` (and, for a slash command, an optional response
payload). Connections can be dropped on purpose, and the app is expected to reconnect.

A small RFC 6455 server of its own (text frames, ping/pong, close): the standard library has
none, and the sandbox adds no dependency for it.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import secrets
import socket
import struct
import threading
import time
import uuid
from typing import Any
from urllib.parse import parse_qs, urlparse

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TEXT, CLOSE, PING, PONG = 0x1, 0x8, 0x9, 0xA


class NotConnected(RuntimeError):
    """No app holds a Socket Mode connection to deliver to."""


class _Link:
    """One app connection: frames out under a lock, frames in on a thread of its own."""

    def __init__(self, sock: socket.socket, server: SocketModeServer) -> None:
        self.sock = sock
        self.server = server
        self.lock = threading.Lock()
        self.open = True

    def send(self, opcode: int, data: bytes) -> None:
        header = bytes([0x80 | opcode])
        n = len(data)
        if n < 126:
            header += bytes([n])
        elif n < 1 << 16:
            header += bytes([126]) + struct.pack("!H", n)
        else:
            header += bytes([127]) + struct.pack("!Q", n)
        with self.lock:
            self.sock.sendall(header + data)

    def send_json(self, body: dict[str, Any]) -> None:
        self.send(TEXT, json.dumps(body).encode())

    def run(self) -> None:
        try:
            while self.open:
                opcode, data = self._frame()
                if opcode == CLOSE:
                    self.send(CLOSE, data[:2])
                    break
                if opcode == PING:
                    self.send(PONG, data)
                elif opcode == TEXT:
                    self.server.received(json.loads(data))
        except (OSError, ConnectionError, ValueError):
            pass
        finally:
            self.drop()

    def _frame(self) -> tuple[int, bytes]:
        b1, b2 = self._read(2)
        n = b2 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._read(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._read(8))[0]
        mask = self._read(4) if b2 & 0x80 else b"\0\0\0\0"
        data = bytes(b ^ mask[i % 4] for i, b in enumerate(self._read(n)))
        return b1 & 0x0F, data

    def _read(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError("the app closed the connection")
            out += chunk
        return out

    def drop(self) -> None:
        """Close the TCP connection without a closing handshake: a dropped connection."""
        self.open = False
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.server.forget(self)


class SocketModeServer:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self._listener = socket.create_server((host, 0))
        self.host = host
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Condition()
        self._tickets: set[str] = set()
        self._links: list[_Link] = []
        self._acks: dict[str, dict[str, Any]] = {}
        self.connections_opened = 0
        self._thread = threading.Thread(target=self._accept, name="socket-mode", daemon=True)
        self._closed = False

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._closed = True
        self._listener.close()
        for link in self.links():
            link.drop()

    def open_url(self) -> str:
        """What `apps.connections.open` answers: a URL good for one connection."""
        ticket = secrets.token_urlsafe(12)
        with self._lock:
            self._tickets.add(ticket)
        return f"ws://{self.host}:{self.port}/link/?ticket={ticket}"

    def links(self) -> list[_Link]:
        with self._lock:
            return list(self._links)

    def drop_connections(self) -> int:
        """Drop every app connection at once, as a network failure would."""
        links = self.links()
        for link in links:
            link.drop()
        return len(links)

    def wait_connected(self, timeout: float = 10.0) -> None:
        with self._lock:
            if not self._lock.wait_for(lambda: bool(self._links), timeout=timeout):
                raise NotConnected(f"no Socket Mode connection within {timeout}s")

    def deliver(self, kind: str, payload: dict[str, Any], *,
                timeout: float = 10.0) -> dict[str, Any] | None:
        """Send one envelope to a connected app; the ack's response payload ({} when the
        ack carried none), or None when no ack came within `timeout`."""
        self.wait_connected(timeout)
        envelope_id = str(uuid.uuid4())
        link = self.links()[-1]
        link.send_json({"envelope_id": envelope_id, "type": kind, "payload": payload,
                        "accepts_response_payload": kind == "slash_commands",
                        "retry_attempt": 0, "retry_reason": ""})
        deadline = time.monotonic() + timeout
        with self._lock:
            while envelope_id not in self._acks:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._lock.wait(left)
            return self._acks.pop(envelope_id)

    def received(self, message: dict[str, Any]) -> None:
        envelope_id = message.get("envelope_id")
        if envelope_id:
            with self._lock:
                self._acks[str(envelope_id)] = dict(message.get("payload") or {})
                self._lock.notify_all()

    def forget(self, link: _Link) -> None:
        with self._lock:
            if link in self._links:
                self._links.remove(link)

    def _accept(self) -> None:
        while not self._closed:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._handshake, args=(sock,), daemon=True).start()

    def _handshake(self, sock: socket.socket) -> None:
        try:
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = sock.recv(4096)
                if not chunk:
                    raise ConnectionError("closed during the handshake")
                request += chunk
            lines = request.decode("latin-1").split("\r\n")
            target = lines[0].split(" ")[1]
            headers = {k.strip().lower(): v.strip() for k, _, v in
                       (line.partition(":") for line in lines[1:] if ":" in line)}
            ticket = (parse_qs(urlparse(target).query).get("ticket") or [""])[0]
            with self._lock:
                valid = ticket in self._tickets
                self._tickets.discard(ticket)
            if not valid or "sec-websocket-key" not in headers:
                sock.sendall(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")
                sock.close()
                return
            accept = base64.b64encode(
                hashlib.sha1((headers["sec-websocket-key"] + GUID).encode()).digest()  # noqa: S324 - RFC 6455
            ).decode()
            sock.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                          f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n")
                         .encode())
        except (OSError, ConnectionError, IndexError):
            sock.close()
            return
        link = _Link(sock, self)
        link.send_json({"type": "hello", "num_connections": len(self.links()) + 1,
                        "connection_info": {"app_id": "A0ROLLOUT"}})
        with self._lock:
            self._links.append(link)
            self.connections_opened += 1
            self._lock.notify_all()
        link.run()

"""A TCP proxy that delays one direction on demand: a server whose answers come late (they
reach a client that has given up), or requests that reach the server late (after the client
gave up and asked something else on a new connection); or that cuts a connection instead of
passing an answer on (a request served whose answer never comes)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

from sandbox.ports import free_port


class DelayProxy:
    """`port` forwards to `upstream_port` on 127.0.0.1, each connection on one of its own."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._lock = threading.Lock()
        self._replies_until = 0.0
        self._held: set[socket.socket] = set()  # clients whose requests wait
        self._requests_until = 0.0
        self._sockets: list[socket.socket] = []
        self._clients: list[socket.socket] = []
        #: answers the server gave to requests that were held (it has served them)
        self.late_served = 0
        self._cut_next_reply = False
        #: connections cut in place of an answer
        self.cut = 0
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def redis_url(self) -> str:
        """The URL of a Redis behind this proxy."""
        return f"redis://127.0.0.1:{self.port}/0"

    def hold_replies(self, seconds: float) -> None:
        """Every answer the server sends in the next `seconds` reaches its client then."""
        with self._lock:
            self._replies_until = time.monotonic() + seconds

    def hold_requests(self, seconds: float) -> None:
        """What the connections open now send in the next `seconds` reaches the server then,
        even from a client that has closed meanwhile; new connections pass at once."""
        with self._lock:
            self._requests_until = time.monotonic() + seconds
            self._held = set(self._clients)

    def cut_next_reply(self) -> None:
        """The next answer the server sends is not passed on: its connection is cut instead,
        both ways, so the client sees the connection closed after its request was served."""
        with self._lock:
            self._cut_next_reply = True

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            for s in self._sockets:
                with contextlib.suppress(OSError):
                    s.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            except OSError:  # the server is down: so is this connection
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
                self._clients.append(client)
            threading.Thread(target=self._pump, args=(client, upstream, True),
                             daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False),
                             daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, requests: bool) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                with self._lock:
                    if requests:
                        until = self._requests_until if source in self._held else 0.0
                    else:
                        until = self._replies_until
                        self.late_served += sink in self._held  # its client may be gone
                        if self._cut_next_reply:
                            self._cut_next_reply, self.cut = False, self.cut + 1
                            for end in (sink, source):
                                with contextlib.suppress(OSError):
                                    end.shutdown(socket.SHUT_RDWR)
                            return
                wait = until - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

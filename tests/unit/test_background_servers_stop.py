"""Both background HTTP servers (the bot's, and the sandbox's emulators') stop cleanly when
waitress's wake-up pipe is already closed: the stop then closes the sockets itself rather
than raising EBADF out of the caller's teardown (seen now and then at the end of a test's
emulator), and without closing the sockets under the loop's poll (which ended its thread
with EBADF). Real servers on free ports; only the wake-up fails, as it did."""

from __future__ import annotations

import errno
import socket
import threading
import urllib.request
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from bot.http_server import BackgroundHTTP
from sandbox.background_server import BackgroundServer


def _app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def _bot() -> Any:
    server = BackgroundHTTP(_app)
    server.start()
    return server


def _sandbox() -> Any:
    return BackgroundServer(_app).start()


@pytest.mark.parametrize("make", [_bot, _sandbox], ids=["bot", "sandbox"])
def test_a_stop_whose_wake_up_pipe_is_closed_still_closes_every_socket(
        make: Callable[[], Any]) -> None:
    server = make()
    waitress, url = server._server, server.url
    with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 - our own http
        assert answer.read() == b"ok"
    port = int(url.rsplit(":", 1)[1])

    def closed_pipe(thunk: Callable[[], None] | None = None) -> None:
        raise OSError(errno.EBADF, "Bad file descriptor")

    waitress.trigger.pull_trigger = closed_pipe
    errors: list[str] = []
    previous = threading.excepthook
    threading.excepthook = lambda args: errors.append(args.exc_type.__name__)
    try:
        server.stop()  # raises nothing
    finally:
        threading.excepthook = previous
    # the loop ended of itself: no EBADF from sockets closed under its poll
    assert errors == [] and not server._thread.is_alive()
    assert not waitress._map  # every channel closed, the listening socket among them
    with socket.socket() as again:  # the port is free to take again
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", port))

"""Run a WSGI app under waitress in a background thread, and stop it cleanly.

waitress has no public stop for a server started with `create_server(...).run()`, so the
stop closes the listening socket from inside the server's own loop (via its trigger), lets
the requests in flight finish, then closes every other socket the same way.
"""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING, Any

from waitress.server import create_server

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication


class BackgroundServer:
    """A waitress server on `host:port` (0 picks a free port) running in a daemon thread."""

    def __init__(
        self,
        app: WSGIApplication,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        threads: int = 16,
        ident: str = "sandbox",
        **adjustments: Any,
    ) -> None:
        """`adjustments` are waitress's own (e.g. `channel_timeout`, 30 s unless given). Its
        loop waits in poll for up to `asyncore_loop_timeout`, a whole number of seconds (a
        fraction is cut to 0, which turns the wait into a spin): the stop wakes it through
        its trigger, so the default of 1 costs nothing."""
        self._server: Any = create_server(
            app, host=host, port=port, threads=threads, ident=ident,
            **{"channel_timeout": 30, **adjustments},
        )
        self.host = host
        self.port = int(self._server.effective_port)
        self._thread = threading.Thread(target=self._server.run, name=f"{ident}-{self.port}",
                                        daemon=True)
        self._stopped = False

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> BackgroundServer:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        if self._stopped:
            return
        self._stopped = True
        server = self._server

        def close_all() -> None:
            for channel in list(server._map.values()):
                with contextlib.suppress(OSError):  # its descriptor closed under it already
                    channel.close()

        # stop accepting, let the requests in flight answer while the loop still sends
        # their replies, and only then close every socket: closing first left task threads
        # writing to closed channels and pulling a closed trigger (EBADF)
        server.accepting = False  # read by its loop before each poll
        server.task_dispatcher.shutdown(cancel_pending=True, timeout=timeout)
        try:
            server.trigger.pull_trigger(close_all)
        except OSError:  # its wake-up pipe is closed already (EBADF)
            # the loop cannot be woken: empty its map, so that it ends when its poll
            # returns (within a second), and close the sockets once it no longer polls them
            # (closed under its poll, they failed it with EBADF in its thread)
            channels = list(server._map.values())
            server._map.clear()
            self._thread.join(timeout=timeout)
            for channel in channels:
                with contextlib.suppress(OSError):
                    channel.close()
            return
        self._thread.join(timeout=timeout)

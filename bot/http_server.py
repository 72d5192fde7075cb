"""A WSGI app under waitress in a background thread, stopped without dropping a reply: the
Slack app's port under `serve`, the health and metrics port of `scheduler --port`.

waitress has no public stop for a server started with `create_server(...).run()`, so the stop
closes the listening socket from inside the server's own loop (through its trigger), lets the
requests in flight answer, and only then closes every other socket the same way. (The
sandbox has its own copy: the image ships without the sandbox, and the sandbox imports
nothing of the bot.)
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import TYPE_CHECKING, Any

from waitress.server import create_server

from bot.settings import SettingsError

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

log = logging.getLogger(__name__)


class BackgroundHTTP:
    """`app` on `host:port` (0 picks a free port), on `threads` task threads."""

    def __init__(self, app: WSGIApplication, *, host: str = "127.0.0.1", port: int = 0,
                 threads: int = 8, ident: str = "rollout-bot") -> None:
        try:
            self._server: Any = create_server(app, host=host, port=port, threads=threads,
                                              ident=ident, channel_timeout=60)
        except OSError as exc:  # in use, or not ours to take: a setting to change
            raise SettingsError(f"cannot listen on {host}:{port}: "
                                f"{exc.strerror or exc}") from exc
        self.host = host
        self.port = int(self._server.effective_port)
        self._thread = threading.Thread(target=self._server.run, name=f"{ident}-http",
                                        daemon=True)
        self._started = self._stopped = False

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        if self._started:
            raise RuntimeError("the server is already running")
        self._started = True
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        if self._stopped:
            return
        self._stopped = True
        server = self._server

        def close_all() -> None:
            for channel in list(server._map.values()):
                with contextlib.suppress(OSError):  # its descriptor closed under it already
                    channel.close()

        if not self._started:
            server.close()
            return
        # stop accepting, let the requests in flight answer while the loop still sends their
        # replies, and only then close every socket: closing first left task threads writing
        # to closed channels and pulling a closed trigger (EBADF)
        server.accepting = False  # read by its loop before each poll
        server.task_dispatcher.shutdown(cancel_pending=True, timeout=timeout)
        try:
            server.trigger.pull_trigger(close_all)
        except OSError as exc:  # its wake-up pipe is closed already (EBADF)
            log.warning("the HTTP loop could not be woken (%s); closing its sockets here",
                        exc.strerror or exc, extra={"event": "stop_unwoken"})
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

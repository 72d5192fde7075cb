"""`rollout-bot serve`: the Slack app under waitress, over HTTP or Socket Mode.

`SlackServer` runs everything in background threads (for tests and the sandbox); `serve`
runs one in the foreground until SIGINT/SIGTERM. Either way `/healthz`, `/readyz` and
`/metrics` are on the HTTP port; `/slack/events` too unless Socket Mode carries the events.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk import WebClient

from bot.bootstrap import Container, build
from bot.graceful_stop import Deadline, stop_gracefully
from bot.health import Dependencies
from bot.http_server import BackgroundHTTP
from bot.logs import log_outcome
from bot.metrics import Metrics
from bot.request_log import log_requests
from bot.scheduling import build_scheduler, warn_if_redis_may_evict
from bot.settings import Settings, SettingsError, require_for_serve
from bot.slack_app import build_app, web_client
from bot.stop_signal import stop_on_signals, wait_until
from bot.web import EVENTS_PATH, WebApp, readiness_checks
from handlers.workers import Workers, rollback_workers, side_workers

log = logging.getLogger(__name__)


def socket_mode_handler(app: App, settings: Settings) -> SocketModeHandler:
    """Socket Mode with the app-level token (`SLACK_APP_TOKEN`, `xapp-…`), through the same
    Web API client (and `SLACK_API_URL`) as the rest of the app. The client reconnects by
    itself, with a fresh `apps.connections.open`, when the connection drops: the client
    gives a silent connection up after five failed pings (SLACK_SOCKET_PING seconds apart)."""
    if not settings.slack_app_token:
        raise SettingsError("SLACK_APP_TOKEN is needed by --socket-mode")
    return SocketModeHandler(app, app_token=settings.slack_app_token, web_client=app.client,
                             ping_interval=settings.slack_socket_ping)


class SocketConnection(Protocol):
    def connect(self) -> None: ...

    def close(self) -> None: ...


class SlackServer:
    """The bot's HTTP server (and Socket Mode connection) in background threads."""

    def __init__(
        self, settings: Settings, *, container: Container | None = None,
        host: str = "127.0.0.1", port: int = 0, socket_mode: bool = False,
        threads: int = 8,
        socket_factory: Callable[[App, Settings], SocketConnection] | None = None,
    ) -> None:
        if not socket_mode and not settings.slack_signing_secret:
            raise SettingsError("SLACK_SIGNING_SECRET is needed to check Slack's requests")
        self.settings = settings
        self.socket_mode = socket_mode
        self._own_container = container is None
        self.container = container or build(settings, watch=True)
        self.client: WebClient = web_client(settings)
        self.metrics = Metrics(rollouts=self.container.service.list_rollouts)
        before = list(self.container.listeners)
        self.container.listeners.append(self.metrics.observe_outcome)
        self.container.listeners.append(log_outcome)
        self.workers, self.side, self.rollbacks = Workers(), side_workers(), rollback_workers()
        self.app = build_app(self.container, settings=settings, web_client=self.client,
                             telemetry=self.metrics, socket_mode=socket_mode,
                             workers=self.workers, side=self.side, rollbacks=self.rollbacks)
        self.app.use(log_requests)
        self._listeners = [x for x in self.container.listeners if x not in before]
        events = None if socket_mode else SlackRequestHandler(self.app, path=EVENTS_PATH)
        self.dependencies = Dependencies(readiness_checks(self.container.store,
                                                          self.container.kube_api))
        self.metrics.registry.register(self.dependencies)
        self.wsgi = WebApp(metrics=self.metrics, events=events,
                           dependencies=self.dependencies, serving=self._serving)
        self.http = BackgroundHTTP(self.wsgi, host=host, port=port, threads=threads)
        self.host = host
        self.port = self.http.port
        self._socket_factory = socket_factory or socket_mode_handler
        self.socket_handler: SocketConnection | None = None
        self._started = self._stopped = False

    def _serving(self) -> str | None:
        """None while this process can take Slack requests; else why it cannot."""
        if self._stopped:
            return "shutting down"
        return None

    @property
    def url(self) -> str:
        return self.http.url

    @property
    def events_url(self) -> str:
        return self.url + EVENTS_PATH

    def start(self) -> SlackServer:
        if self._started:
            raise RuntimeError("the server is already running")
        self._started = True
        self.http.start()
        if self.socket_mode:
            self.socket_handler = self._socket_factory(self.app, self.settings)
            self.socket_handler.connect()
        log.info("rollout-bot listening on %s (%s)", self.url,
                 "Socket Mode" if self.socket_mode else "HTTP events",
                 extra={"event": "listening", "port": self.port,
                        "mode": "socket" if self.socket_mode else "http"})
        return self

    def stop(self, timeout: float | Deadline = 5.0) -> None:
        """Stop taking requests and let those in flight and the acked work end; every wait
        shares `timeout` (seconds, or the deadline of the whole process' stop)."""
        if self._stopped:
            return
        self._stopped = True
        deadline = Deadline.of(timeout)
        if self.socket_handler is not None:
            self.socket_handler.close()
        self.http.stop(deadline.remaining())
        self.app.listener_runner.listener_executor.shutdown(wait=False)
        # acked work answers its user before the clients close
        self.rollbacks.drain(deadline.remaining())
        self.workers.drain(deadline.remaining())
        self.side.drain(deadline.remaining())
        # its checks use the container's clients
        self.dependencies.close(timeout=deadline.remaining())
        for listener in self._listeners:  # a shared container outlives this server
            if listener in self.container.listeners:
                self.container.listeners.remove(listener)
        if self._own_container:
            self.container.close(deadline)

    def __enter__(self) -> SlackServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def serve(settings: Settings, *, port: int = 3000, socket_mode: bool = False,
          container: Container | None = None, version: str = "") -> None:
    """Run the bot and its leader-elected scheduler until SIGINT or SIGTERM, then stop them
    within ROLLOUT_STOP_TIMEOUT (a second signal ends the process at once). Raises
    SettingsError, naming the missing variable, when Slack secrets or approvers are not
    configured."""
    require_for_serve(settings, socket_mode=socket_mode)
    server = SlackServer(settings, container=container, host="0.0.0.0", port=port,
                         socket_mode=socket_mode)
    done = stop_on_signals()
    server.start()
    warn_if_redis_may_evict(server.container)
    scheduler = build_scheduler(server.container)
    server.metrics.watch_pacer(scheduler.pacer)
    scheduler.start()
    log.info("rollout-bot started", extra={
        "event": "startup", "version": version, "port": server.port,
        "mode": "socket" if socket_mode else "http", "namespace": settings.rollout_namespace,
        "log_level": settings.log_level})
    try:
        wait_until(done)
    finally:
        log.info("rollout-bot stopping", extra={
            "event": "shutdown", "deadline_seconds": settings.rollout_stop_timeout})
        stop_gracefully([("scheduler", lambda _: scheduler.stop()), ("server", server.stop)],
                        Deadline(settings.rollout_stop_timeout))

"""Wires the scheduler and its leader lease to a container; used by serve, sandbox and the
`scheduler` command, which can also serve its own health and metrics (`--port`)."""

from __future__ import annotations

import logging
import os
import secrets
import socket

from bot.bootstrap import Container
from bot.graceful_stop import Deadline, Step, stop_gracefully
from bot.health import Dependencies
from bot.http_server import BackgroundHTTP
from bot.logs import log_outcome
from bot.metrics import Metrics
from bot.stop_signal import stop_on_signals, wait_until
from bot.web import WebApp, readiness_checks
from rollout.adapters.leadership import LeaderLease
from rollout.adapters.redis_eviction import eviction_warning
from rollout.scheduler import RolloutScheduler

log = logging.getLogger(__name__)


def build_scheduler(container: Container) -> RolloutScheduler:
    settings = container.settings
    holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
    ttl = settings.seconds(settings.rollout_leader_ttl) or 15
    sweep = settings.seconds(settings.rollout_tick) or 5
    lease = LeaderLease(container.store.client, key=container.store.key("leader"),
                        holder=holder, ttl_seconds=ttl)
    scheduler = RolloutScheduler(service=container.service, lease=lease,
                                 sweep_seconds=min(sweep, ttl / 3), feed=container.feed,
                                 threads=settings.rollout_tick_threads)
    container.listeners.append(scheduler.on_change)
    return scheduler


def warn_if_redis_may_evict(container: Container) -> None:
    """Said once at start by the processes that run the scheduler: an evicting Redis
    drops locks and the lease early and, under `allkeys`, states."""
    store = container.store
    warning = eviction_warning(store.client, finished_expire=store.finished_expire)
    if warning is not None:
        log.warning(warning, extra={"event": "redis_may_evict"})


class SchedulerWeb:
    """A scheduler run on its own, as a server: `/healthz`, `/readyz` (Redis and the
    Kubernetes API reported, never failing it, as under `serve`) and `/metrics` (rollouts by
    phase, the steps, approvals and rollbacks it records, its hold-back under a throttling
    API server) on `host:port`."""

    def __init__(self, container: Container, scheduler: RolloutScheduler, *,
                 host: str = "0.0.0.0", port: int = 0) -> None:
        self.container = container
        self.metrics = Metrics(rollouts=container.service.list_rollouts)
        self.metrics.watch_pacer(scheduler.pacer)
        self.dependencies = Dependencies(readiness_checks(container.store,
                                                          container.kube_api))
        self.metrics.registry.register(self.dependencies)
        self.http = BackgroundHTTP(WebApp(metrics=self.metrics,
                                          dependencies=self.dependencies),
                                   host=host, port=port, threads=4,
                                   ident="rollout-bot-scheduler")
        container.listeners.append(self.metrics.observe_outcome)

    def start(self) -> SchedulerWeb:
        self.http.start()
        log.info("scheduler health and metrics on %s", self.http.url,
                 extra={"event": "listening", "port": self.http.port, "mode": "scheduler"})
        return self

    def stop(self, timeout: float | Deadline = 5.0) -> None:
        """Both waits share `timeout` (seconds, or the process' stop deadline)."""
        deadline = Deadline.of(timeout)
        self.http.stop(deadline.remaining())
        # its checks use the container's clients
        self.dependencies.close(timeout=deadline.remaining())
        if self.metrics.observe_outcome in self.container.listeners:
            self.container.listeners.remove(self.metrics.observe_outcome)


def run_scheduler_forever(container: Container, *, port: int | None = None,
                          version: str = "") -> None:
    """The scheduler alone, in the foreground, until SIGINT or SIGTERM (then stopped within
    ROLLOUT_STOP_TIMEOUT, a second signal ending the process at once); with `port`, its
    health and metrics on that port. With SLACK_BOT_TOKEN its changes (an automatic step, a
    reminder, a drift pause) update the cards, as under `serve`; without it, it says so once
    at start. Its start and stop are JSON lines as `serve`'s are (`startup` names the
    replica's leader-lease holder), so that a log store reads every line it writes."""
    from bot.card_updates import scheduler_cards

    warn_if_redis_may_evict(container)
    container.listeners.append(log_outcome)  # each decision a JSON line, as under `serve`
    scheduler = build_scheduler(container)
    # the port first: one taken is refused before any thread starts
    web = SchedulerWeb(container, scheduler, port=port) if port is not None else None
    cards = scheduler_cards(container)
    if web is not None:
        web.start()
    stop = stop_on_signals()
    scheduler.start()
    settings = container.settings
    log.info("scheduler started", extra={
        "event": "startup", "version": version, "holder": scheduler.lease.holder,
        "port": port, "namespace": settings.rollout_namespace,
        "log_level": settings.log_level})
    try:
        wait_until(stop)
        log.info("scheduler stopping", extra={
            "event": "shutdown", "deadline_seconds": settings.rollout_stop_timeout})
    finally:
        steps: list[Step] = [("scheduler", lambda _: scheduler.stop())]
        if web is not None:
            steps.append(("health and metrics", web.stop))
        if cards is not None:
            steps.append(("card updates", cards.stop))
        # the caller closes the container too (that second close does nothing): here its
        # wait for the namespace cache's watches is under the deadline
        steps.append(("connections", container.close))
        stop_gracefully(steps, Deadline(container.settings.rollout_stop_timeout))

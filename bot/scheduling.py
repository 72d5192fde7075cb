"""Wires the scheduler and its leader lease to a container; used by serve, sandbox and the
`scheduler` command."""

from __future__ import annotations

import os
import secrets
import socket

from bot.bootstrap import Container
from bot.stop_signal import stop_on_signals, wait_until
from rollout.adapters.leadership import LeaderLease
from rollout.scheduler import RolloutScheduler


def build_scheduler(container: Container) -> RolloutScheduler:
    settings = container.settings
    holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
    ttl = settings.seconds(settings.rollout_leader_ttl) or 15
    sweep = settings.seconds(settings.rollout_tick) or 5
    lease = LeaderLease(container.store.client, key=container.store.key("leader"),
                        holder=holder, ttl_seconds=ttl)
    scheduler = RolloutScheduler(service=container.service, lease=lease,
                                 sweep_seconds=min(sweep, ttl / 3), feed=container.feed)
    container.listeners.append(scheduler.on_change)
    return scheduler


def run_scheduler_forever(container: Container) -> None:
    """The scheduler alone, in the foreground, until SIGINT or SIGTERM. With
    SLACK_BOT_TOKEN its changes (an automatic step, a reminder, a drift pause) update the
    cards, as under `serve`; without it, it says so once at start."""
    from bot.card_updates import scheduler_cards

    cards = scheduler_cards(container)
    scheduler = build_scheduler(container)
    stop = stop_on_signals()
    scheduler.start()
    print(f"scheduler running as {scheduler.lease.holder}", flush=True)
    try:
        wait_until(stop)
    finally:
        scheduler.stop()
        if cards is not None:
            cards.stop()

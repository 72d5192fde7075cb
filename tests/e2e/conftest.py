"""The whole bot over real HTTP: a running SlackServer, a real Redis process, the real
Kubernetes API server (demo objects, the bot's service account) and the Slack emulator
delivering signed requests to the bot."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot.bootstrap import Container, build
from bot.scheduling import build_scheduler
from bot.server import SlackServer
from bot.settings import Settings
from handlers.cards import ButtonValue
from rollout.domain.models import Rollout
from rollout.scheduler import RolloutScheduler
from rollout.service import Ref
from sandbox.redis_server import RedisServer
from sandbox.slack import Message, SlackEmulator
from tests.support.polling import eventually
from tests.support.real_cluster import RealCluster

SECRET = "e2e-signing-secret"
TOKEN = "xoxb-e2e"
CHANNEL = "C0ROLLOUT"
ROUTE = ("gateway.networking.k8s.io", "v1", "httproutes", "default", "routes-to-llm")
CANARY = "llm-pool-version-2"


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def kube(cluster: RealCluster) -> RealCluster:
    return cluster


@pytest.fixture
def slack() -> Iterator[SlackEmulator]:
    emulator = SlackEmulator(SECRET, bot_token=TOKEN, delivery_timeout=15.0)
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()


@dataclass
class World:
    """The running bot and the emulated world around it, with small helpers for tests."""

    bot: SlackServer
    container: Container
    slack: SlackEmulator
    kube: RealCluster
    scheduler: RolloutScheduler | None = None

    def command(self, user: str, text: str, channel: str = CHANNEL,
                **kwargs: Any) -> tuple[int, dict[str, str], str]:
        return self.slack.send_slash_command(user, channel, text, **kwargs)

    def click(self, user: str, message_ts: str, action_id: str, value: str,
              channel: str = CHANNEL, **kwargs: Any) -> tuple[int, dict[str, str], str]:
        return self.slack.click_button(user, channel, message_ts, action_id, value, **kwargs)

    def roll_back(self, user: str, message_ts: str, value: str, reason: str = "",
                  channel: str = CHANNEL) -> None:
        """Click Roll back and submit the dialog it opens, as a person does."""
        before = len(self.slack.workspace.views_of(user))
        self.click(user, message_ts, "rollout_rollback", value, channel=channel)
        views = eventually(lambda: len(self.slack.workspace.views_of(user)) > before and
                           self.slack.workspace.views_of(user), message="the Roll back dialog")
        self.slack.submit_view(user, views[-1].id, {"rollback_reason": reason} if reason else {})

    def weights(self) -> dict[str, int]:
        route = self.kube.get_object(*ROUTE)
        assert route is not None
        refs = route["spec"]["rules"][0]["backendRefs"]
        return {ref["name"]: ref.get("weight", 1) for ref in refs}

    def route_patches(self) -> int:
        """Route writes that landed (a 409 the bot retried is not a write)."""
        return sum(1 for r in self.kube.requests
                   if r.verb == "patch" and r.resource == "httproutes" and r.status < 300)

    def cards(self, channel: str = CHANNEL) -> list[Message]:
        return [m for m in self.slack.messages(channel, top_level_only=True) if m.blocks]

    def card(self, channel: str = CHANNEL) -> Message:
        found = self.cards(channel)
        assert found, "no card posted"
        msg = self.slack.message(channel, found[-1].ts)
        assert msg is not None
        return msg

    def button(self, msg: Message, action_id: str) -> dict[str, Any] | None:
        for block in msg.blocks:
            for element in block.get("elements", []) if block.get("type") == "actions" else []:
                if element.get("action_id") == action_id:
                    return dict(element)
        return None

    def value(self, msg: Message, action_id: str) -> ButtonValue:
        button = self.button(msg, action_id)
        assert button is not None, f"no {action_id} button on the card"
        return ButtonValue.decode(button["value"])

    def ephemeral_texts(self, user: str, channel: str = CHANNEL) -> list[str]:
        texts = [m.text for m in self.slack.ephemerals(channel, user)]
        texts += [p.text or "" for p in self.slack.responses if p.user == user]
        return texts

    def rollout(self) -> Rollout:
        return self.container.service.get(Ref(namespace="default", canary=CANARY))

    def settled(self) -> None:
        """Wait until the work every request acked so far has ended (each listener hands
        its work to a pool before its ack leaves), so that a check that nothing happened
        reads the outcome, not a guess of how long the work takes."""
        pools = (self.bot.workers, self.bot.side, self.bot.rollbacks)
        eventually(lambda: all(pool.busy == 0 for pool in pools),
                   message="the acked work to end")


@pytest.fixture
def make_world(
    redis_server: RedisServer, kube: RealCluster, slack: SlackEmulator, tmp_path: Path,
) -> Iterator[Callable[..., World]]:
    """Start the bot with settings overrides; everything is stopped after the test. With
    `scheduler=True` the leader-elected scheduler runs too, as under `serve`."""
    started: list[SlackServer] = []
    schedulers: list[RolloutScheduler] = []

    def make(*, scheduler: bool = False, **overrides: Any) -> World:
        kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig")
        options: dict[str, Any] = {
            "slack_bot_token": TOKEN,
            "slack_signing_secret": SECRET,
            "slack_api_url": slack.api_url,
            "redis_url": redis_server.url,
            "kubeconfig": str(kubeconfig),
            "rollout_key_prefix": f"e2e-{uuid.uuid4().hex[:10]}",
            "rollout_kube_timeout": 1.0,
            "rollout_approvers": ["U0BOB", "U0CAROL"],
            "rollout_reminder": "",
        }
        options.update(overrides)
        settings = Settings(**options)
        container = build(settings)
        bot = SlackServer(settings, container=container)
        bot.start()
        started.append(bot)
        slack.events_url = bot.events_url
        running = None
        if scheduler:
            running = build_scheduler(container)
            running.start()
            schedulers.append(running)
        return World(bot=bot, container=container, slack=slack, kube=kube, scheduler=running)

    try:
        yield make
    finally:
        for running in schedulers:
            running.stop()
        for bot in started:
            bot.stop()
            bot.container.close()


@pytest.fixture
def world(make_world: Callable[..., World]) -> World:
    return make_world()




def start_rollout(w: World, *, user: str = "U0ALICE", text: str = "") -> Message:
    status, _, _ = w.command(user, text or f"{CANARY} start --interval 0s")
    assert status == 200

    def ready() -> Message | None:
        card = w.card()
        rollout = w.rollout()
        button = w.button(card, "rollout_approve")
        ok = (rollout.card is not None and button
              and w.value(card, "rollout_approve").step == rollout.pending_step)
        return card if ok else None

    return eventually(ready, message="a current card with an approve button")

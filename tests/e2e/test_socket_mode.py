"""`rollout-bot serve --socket-mode` as a process, over the Slack emulator's Socket Mode: the
bot opens its connection with `apps.connections.open`, takes a slash command and a button
click as envelopes and acks them; the connection is dropped, the bot reconnects, and the
next click lands over the new connection."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from handlers.cards import ButtonValue
from sandbox.kube import KubeEmulator
from sandbox.ports import free_port
from sandbox.redis_server import RedisServer
from sandbox.slack import Message, SlackEmulator
from tests.e2e.conftest import CANARY, CHANNEL, ROUTE, SECRET, TOKEN
from tests.support.polling import eventually, healthz_up

APP_TOKEN = "xapp-1-e2e"


@pytest.fixture
def socket_slack() -> Iterator[SlackEmulator]:
    emulator = SlackEmulator(SECRET, bot_token=TOKEN, socket_mode=True, app_token=APP_TOKEN,
                             delivery_timeout=15.0)
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()


def _weights(kube: KubeEmulator) -> dict[str, int]:
    route = kube.get_object(*ROUTE)
    assert route is not None
    return {r["name"]: r.get("weight", 1) for r in route["spec"]["rules"][0]["backendRefs"]}


def _approve_button(slack: SlackEmulator) -> tuple[Message, str]:
    cards = [m for m in slack.messages(CHANNEL, top_level_only=True) if m.blocks]
    assert cards, "no card yet"
    card = slack.message(CHANNEL, cards[-1].ts)
    assert card is not None
    for block in card.blocks:
        for element in block.get("elements", []) if block.get("type") == "actions" else []:
            if element.get("action_id") == "rollout_approve":
                return card, str(element["value"])
    raise AssertionError("no approve button on the card")


def test_serve_socket_mode_survives_a_dropped_connection(
    kube: KubeEmulator, redis_server: RedisServer, socket_slack: SlackEmulator, tmp_path: Path,
) -> None:
    slack, port = socket_slack, free_port()
    env = {**os.environ, "SLACK_BOT_TOKEN": TOKEN, "SLACK_APP_TOKEN": APP_TOKEN,
           "SLACK_API_URL": slack.api_url, "REDIS_URL": redis_server.url,
           "KUBECONFIG": str(kube.write_kubeconfig(tmp_path / "kubeconfig")),
           "ROLLOUT_APPROVERS": "U0BOB", "ROLLOUT_KEY_PREFIX": f"socket-{time.monotonic_ns()}",
           "ROLLOUT_REMINDER": "", "SLACK_SOCKET_PING": "1"}
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "bot", "serve", "--socket-mode",
                             "--port", str(port)], env=env, stdout=log, stderr=log)
    try:
        eventually(lambda: healthz_up(port), timeout=30, message="serve answering /healthz")
        assert slack.socket_mode is not None
        slack.socket_mode.wait_connected(timeout=20)
        opens = [c for c in slack.calls if c.method == "apps.connections.open"]
        assert opens and all(c.token == APP_TOKEN for c in opens)

        status, _, _ = slack.send_slash_command("U0ALICE", CHANNEL,
                                                   f"{CANARY} start --interval 0s")
        assert status == 200  # acked; "Working on it…" and the answer follow on the URL
        card, value = eventually(lambda: _approve_button(slack), timeout=15,
                                 message="the card with its approve button")
        status, _, _ = slack.click_button("U0BOB", CHANNEL, card.ts, "rollout_approve", value)
        assert status == 200
        eventually(lambda: _weights(kube)[CANARY] == 10, timeout=15, message="10% applied")

        assert slack.socket_mode.drop_connections() == 1
        eventually(lambda: slack.socket_mode is not None
                   and slack.socket_mode.connections_opened >= 2
                   and bool(slack.socket_mode.links()), timeout=30,
                   message="the bot reconnected")

        def next_step() -> tuple[Message, str] | None:
            found = _approve_button(slack)
            return found if ButtonValue.decode(found[1]).step == 1 else None

        card, value = eventually(next_step, timeout=15, message="the card offers step 2")
        status, _, _ = slack.click_button("U0BOB", CHANNEL, card.ts, "rollout_approve", value)
        assert status == 200
        eventually(lambda: _weights(kube)[CANARY] == 25, timeout=15,
                   message="25% applied over the new connection")
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        log.close()

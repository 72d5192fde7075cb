"""The server's own endpoints over real HTTP: health, readiness, metrics, Socket Mode."""

from __future__ import annotations

import json
import os
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from slack_bolt import App

from bot.bootstrap import build
from bot.server import SlackServer, serve, socket_mode_handler
from bot.settings import Settings, SettingsError
from sandbox.ports import free_port
from tests.e2e.conftest import CANARY, SECRET, TOKEN, World, start_rollout
from tests.support.polling import eventually
from tests.support.real_cluster import RealCluster


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_healthz_readyz_and_metrics(world: World) -> None:
    assert _get(world.bot.url + "/healthz") == (200, '{"status": "ok"}')
    status, body = _get(world.bot.url + "/readyz")
    assert status == 200 and json.loads(body)["ready"] is True

    card = start_rollout(world)
    world.click("U0BOB", card.ts, "rollout_approve", world.value(card, "rollout_approve").encode())
    eventually(lambda: world.rollout().step == 0 and world.weights()[CANARY] == 10)
    world.click("U0DAVE", card.ts, "rollout_approve", world.value(card, "rollout_approve").encode())
    expected = (
        'rollout_bot_denials_total{action="approve"} 1.0',
        'rollout_bot_slack_requests_total{action="start",kind="command"} 1.0',
        'rollout_bot_slack_requests_total{action="approve",kind="button"} 2.0',
        "rollout_bot_steps_applied_total 1.0",
        "rollout_bot_approvals_total 1.0",
        'rollout_bot_rollouts{phase="baking"} 1.0',
        'rollout_bot_slack_ack_seconds_count{status="200"} 3.0',
    )

    def scraped() -> list[str]:
        status, text = _get(world.bot.url + "/metrics")
        assert status == 200
        missing = [line for line in expected if line not in text]
        assert not missing, missing
        return [text]

    eventually(scraped, message="every expected metric line")
    assert _get(world.bot.url + "/nope")[0] == 404


def test_readyz_stays_ready_and_names_what_is_down(kube: RealCluster, tmp_path: Path) -> None:
    """A Redis or API outage is reported, not turned into an empty Service."""
    settings = Settings(slack_bot_token=TOKEN, slack_signing_secret=SECRET,
                        redis_url=f"redis://127.0.0.1:{free_port()}/0",
                        kubeconfig=str(kube.write_kubeconfig(tmp_path / "kc")),
                        rollout_approvers=["U0BOB"], rollout_key_prefix="readyz")
    with SlackServer(settings) as bot:
        status, body = _get(bot.url + "/readyz")
        assert status == 200
        answer = json.loads(body)
        assert answer["ready"] is True and answer["degraded"] == ["redis"]
        assert answer["checks"]["kubernetes"] == "ok"
        assert "rollout_bot_dependency_up{dependency=\"redis\"} 0.0" in \
            _get(bot.url + "/metrics")[1]
        kube.stop()
        eventually(lambda: json.loads(_get(bot.url + "/readyz")[1])["degraded"]
                   == ["kubernetes", "redis"], timeout=5)
        status, body = _get(bot.url + "/readyz")
        assert status == 200 and json.loads(body)["ready"] is True
        assert "rollout_bot_dependency_up{dependency=\"kubernetes\"} 0.0" in \
            _get(bot.url + "/metrics")[1]


def test_with_redis_down_slack_is_told_to_retry(make_world: Callable[..., World]) -> None:
    world = make_world(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    for text in (f"{CANARY} status", f"{CANARY} start"):
        status, _, _ = world.command("U0ALICE", text)
        assert status == 200
    def retry_answers() -> set[str]:  # one response-URL post per command
        return {p.url_id for p in world.slack.responses if p.user == "U0ALICE"
                and "Redis is unavailable" in (p.text or "") and "try again" in (p.text or "")}

    eventually(lambda: len(retry_answers()) == 2, message="a retry answer for each command")
    assert world.route_patches() == 0


class _FakeSocket:
    def __init__(self, app: App, settings: Settings) -> None:
        self.app, self.token = app, settings.slack_app_token
        self.connected = self.closed = False

    def connect(self) -> None:
        self.connected = True

    def close(self) -> None:
        self.closed = True


def test_socket_mode_uses_the_app_token_and_keeps_the_http_endpoints(
    make_world: Callable[..., World], kube: RealCluster, tmp_path: Path,
) -> None:
    world = make_world()
    settings = world.container.settings.model_copy(update={"slack_app_token": "xapp-1-test",
                                                           "slack_signing_secret": ""})
    handler = socket_mode_handler(world.bot.app, settings)
    try:
        assert handler.app_token == "xapp-1-test"
        assert handler.app is world.bot.app
    finally:
        handler.client.close()

    made: list[_FakeSocket] = []

    def factory(app: App, s: Settings) -> _FakeSocket:
        made.append(_FakeSocket(app, s))
        return made[-1]

    bot = SlackServer(settings, container=build(settings), socket_mode=True,
                      socket_factory=factory)
    try:
        bot.start()
        assert made and made[0].connected and made[0].token == "xapp-1-test"
        assert _get(bot.url + "/healthz")[0] == 200
        assert _get(bot.url + "/readyz")[0] == 200
        assert _get(bot.url + "/metrics")[0] == 200
        assert _get(bot.url + "/slack/events")[0] == 404  # events come over the socket
    finally:
        bot.stop()
        bot.container.close()
    assert made[0].closed


def test_stop_finishes_when_the_loops_wake_up_pipe_is_already_closed(world: World) -> None:
    """Something else in the process closed the HTTP loop's wake-up pipe: stop still closes
    every socket and returns, instead of raising half way with the workers still running."""
    bot = SlackServer(world.container.settings, container=world.container)
    bot.start()
    assert _get(bot.url + "/healthz")[0] == 200
    os.close(bot.http._server.trigger.trigger)  # its write end, behind waitress's back
    bot.stop()
    assert not bot.http._thread.is_alive()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", bot.port), timeout=2).close()


def test_stop_lets_work_already_acked_finish_before_the_clients_close(world: World) -> None:
    """A command acked in Slack and still running when the bot is told to stop (a rolling
    update, a SIGTERM) ends with Redis still open, and only then does stop return."""
    bot = SlackServer(world.container.settings)  # a container of its own, closed by stop
    bot.start()
    release, outcome = threading.Event(), []

    def acked_work() -> None:
        release.wait(10)
        outcome.append(len(bot.container.service.list_rollouts()))  # reads Redis

    assert bot.workers.submit(acked_work)
    stopper = threading.Thread(target=bot.stop)
    stopper.start()
    stopper.join(0.5)
    assert stopper.is_alive(), "stop returned while acked work was still running"
    release.set()
    stopper.join(10)
    assert not stopper.is_alive() and outcome == [0]


@pytest.mark.parametrize(("missing", "named", "not_named"), [
    ({"rollout_approvers": []}, "no approvers configured", "SLACK_BOT_TOKEN"),
    ({"slack_bot_token": ""}, "SLACK_BOT_TOKEN", "approvers"),
])
def test_serve_refuses_to_start_without_approvers_or_token(
        missing: dict[str, Any], named: str, not_named: str) -> None:
    settings = Settings(**{"slack_bot_token": TOKEN, "slack_signing_secret": SECRET,
                           "rollout_approvers": ["U0BOB"], **missing})
    with pytest.raises(SettingsError) as refused:
        serve(settings, port=free_port())
    assert named in str(refused.value) and not_named not in str(refused.value)

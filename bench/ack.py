"""How long Slack waits for the bot's ack when requests arrive together, against a bare Bolt
app on the same server stack (waitress) in the same run, rounds interleaved; and the longest
ack while every Kubernetes route read stalls."""

from __future__ import annotations

import math
import secrets
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from slack_bolt import Ack, App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_bolt.authorization import AuthorizeResult
from waitress.server import create_server

from bench.harness import spread_line
from bot.bootstrap import build
from bot.server import SlackServer
from bot.settings import Settings
from sandbox.kube import Fault, KubeEmulator
from sandbox.redis_server import RedisServer
from sandbox.slack import SlackEmulator

CHANNEL = "C0ROLLOUT"
START = "llm-pool-version-2 start --interval 0s"
STALL_SECONDS = 4.0
ACK_WITHIN = 1.0


class BareBolt:
    """The floor: a Bolt app whose `/rollout` listener only acks, in the request thread
    (`process_before_response`, the least Bolt can do), under waitress as the bot."""

    def __init__(self, signing_secret: str, *, threads: int = 8) -> None:
        app = App(signing_secret=signing_secret, token_verification_enabled=False,
                  authorize=lambda **kw: AuthorizeResult(enterprise_id=None,
                                                         team_id=kw.get("team_id"),
                                                         bot_token="xoxb-bench"),  # noqa: S106
                  process_before_response=True)

        def only_ack(ack: Ack) -> None:
            ack()

        app.command("/rollout")(only_ack)
        self._server: Any = create_server(SlackRequestHandler(app), host="127.0.0.1", port=0,
                                          threads=threads, ident="bare-bolt")
        self.url = f"http://127.0.0.1:{self._server.effective_port}/slack/events"
        self._server_thread = ThreadPoolExecutor(max_workers=1)

    def start(self) -> BareBolt:
        self._server_thread.submit(self._server.run)
        return self

    def stop(self) -> None:
        self._server.close()
        self._server_thread.shutdown(wait=False)


def burst(slack: SlackEmulator, url: str, concurrent: int) -> list[float]:
    """`concurrent` signed `/rollout ... start` at once; the seconds each waited for its ack
    (infinity for no ack: Bolt answers 404 when a listener did not ack in time)."""
    slack.events_url = url

    def one(_: int) -> float:
        started = time.perf_counter()
        status = slack.send_slash_command("U0ALICE", CHANNEL, START)[0]
        return time.perf_counter() - started if status == 200 else math.inf

    with ThreadPoolExecutor(max_workers=concurrent) as pool:
        return list(pool.map(one, range(concurrent)))


def bench_ack(rounds: int, *, concurrent: int = 20) -> list[str]:
    secret = secrets.token_hex(16)
    with tempfile.TemporaryDirectory() as tmp, KubeEmulator(seed="demo") as kube, \
            RedisServer() as redis:
        slack = SlackEmulator(secret, delivery_timeout=15.0, threads=concurrent + 8)
        slack.start()
        kubeconfig = kube.write_kubeconfig(Path(tmp) / "kubeconfig")
        settings = Settings(slack_bot_token=slack.bot_token, slack_signing_secret=secret,
                            slack_api_url=slack.api_url, redis_url=redis.url,
                            kubeconfig=str(kubeconfig), rollout_approvers=["U0BOB"],
                            rollout_reminder="", rollout_key_prefix="bench-ack")
        container = build(settings)
        bot = SlackServer(settings, container=container).start()
        floor = BareBolt(secret).start()
        try:
            return _measure(slack, kube, bot.events_url, floor.url, rounds, concurrent,
                            settle=lambda: _settle(bot))
        finally:
            floor.stop()
            bot.stop()
            container.close()
            slack.stop()


def _measure(slack: SlackEmulator, kube: KubeEmulator, bot_url: str, floor_url: str,
             rounds: int, concurrent: int, settle: Callable[[], None]) -> list[str]:
    burst(slack, bot_url, 1)  # warm both: imports, connections, the first rollout
    burst(slack, floor_url, 1)
    settle()
    bot: list[float] = []
    bare: list[float] = []
    for _ in range(rounds):  # interleaved: bot, floor, bot, floor...
        bot += burst(slack, bot_url, concurrent)
        bare += burst(slack, floor_url, concurrent)
    settle()
    for verb in ("get", "list"):
        kube.inject(Fault(verb=verb, resource="httproutes", status=None, count=-1,
                          stall_seconds=STALL_SECONDS))
    stalled = burst(slack, bot_url, concurrent)
    kube.clear_faults()
    settle()
    late = sum(1 for s in stalled if s > ACK_WITHIN)
    slowest = "no ack" if math.isinf(max(stalled)) else f"{max(stalled) * 1e3:.0f} ms"
    return [
        spread_line(f"ack, {concurrent} concurrent `start` ({rounds} rounds)", bot,
                    "bare Bolt app", bare),
        f"ack, {concurrent} concurrent `start`, route reads stalled {STALL_SECONDS:.0f} s: "
        f"slowest {slowest}, {late} of {concurrent} past {ACK_WITHIN:.0f} s",
    ]


def _settle(bot: SlackServer, timeout: float = 60.0) -> None:
    """Wait until the work after earlier acks is done, so rounds start alike."""
    deadline = time.monotonic() + timeout
    while getattr(getattr(bot, "workers", None), "busy", 0) and time.monotonic() < deadline:
        time.sleep(0.05)

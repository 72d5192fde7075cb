"""How long Slack waits for the bot's ack when requests arrive together, against a bare Bolt
app on the same server stack (waitress) in the same run, rounds interleaved; and the longest
ack while every Kubernetes route read stalls. The bot (`rollout-bot serve`) and the floor
each run in a process of their own; the emulators (Slack, Kubernetes) run in this one."""

from __future__ import annotations

import math
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.harness import spread_line
from bot.web import EVENTS_PATH
from sandbox.kube import Fault, KubeEmulator
from sandbox.redis_server import RedisServer
from sandbox.slack import SlackEmulator

CHANNEL = "C0ROLLOUT"
START = "llm-pool-version-2 start --interval 0s"
STALL_SECONDS = 4.0
ACK_WITHIN = 1.0


class Process:
    """A server in a process of its own, like the bot in production: the emulators in this
    process do not share its interpreter lock."""

    def __init__(self, args: list[str], *, port: int, env: dict[str, str] | None = None,
                 ready_path: str) -> None:
        self.port = port
        self._proc = subprocess.Popen(
            [sys.executable, *args], env={**os.environ, **(env or {})},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"{args} exited with {self._proc.returncode}")
            try:
                urllib.request.urlopen(self.url + ready_path, timeout=1)  # noqa: S310
                return
            except urllib.error.HTTPError:
                return  # it answers
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{args} did not answer within 60 s")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
        env = {"SLACK_BOT_TOKEN": slack.bot_token, "SLACK_SIGNING_SECRET": secret,
               "SLACK_API_URL": slack.api_url, "REDIS_URL": redis.url,
               "KUBECONFIG": str(kubeconfig), "ROLLOUT_APPROVERS": "U0BOB",
               "ROLLOUT_REMINDER": "", "ROLLOUT_KEY_PREFIX": "bench-ack",
               "LOG_LEVEL": "WARNING"}
        port = free_port()
        bot = Process(["-m", "bot", "serve", "--port", str(port)], port=port, env=env,
                      ready_path="/healthz")
        floor_port = free_port()
        floor = Process(["-m", "bench.bare_bolt", str(floor_port), secret], port=floor_port,
                        ready_path=EVENTS_PATH)
        try:
            return _measure(slack, kube, bot.url + EVENTS_PATH, floor.url + EVENTS_PATH,
                            rounds, concurrent, settle=lambda: _settle(slack))
        finally:
            floor.stop()
            bot.stop()
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


def _settle(slack: SlackEmulator, timeout: float = 60.0, quiet: float = 1.0) -> None:
    """Wait until the bot has answered what it was asked (no answer through a response URL
    for `quiet` seconds), so the next phase starts alike."""
    deadline = time.monotonic() + timeout
    seen, since = len(slack.responses), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - since < quiet:
        time.sleep(0.1)
        now = len(slack.responses)
        if now != seen:
            seen, since = now, time.monotonic()

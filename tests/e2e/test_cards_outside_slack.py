"""Every change updates the card, whoever made it: the CLI and a standalone `rollout-bot
scheduler` process post to the emulated Slack too, and a Slack that rate-limits, fails or
hangs never fails the CLI nor holds it past its bound."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from bot.card_updates import CLI_SLACK_SECONDS
from bot.cli import EXIT_OK, EXIT_REFUSED, main
from rollout.domain.models import Actor, Phase, Via
from rollout.domain.plan import build_plan
from rollout.service import Ref
from sandbox.ports import free_port
from sandbox.slack import Message, SlackFault
from tests.e2e.conftest import CANARY, CHANNEL, TOKEN, World, start_rollout
from tests.e2e.test_slack_server import _get
from tests.support.polling import eventually
from tests.support.server_log import ServerLog

REF = Ref(namespace="default", canary=CANARY)
NOTIFY = "C0OTHER"


@dataclass
class Run:
    code: int
    out: str
    err: str
    seconds: float


@pytest.fixture
def cli(world: World, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Run]:
    """`rollout-bot VERB ...` in this process, on the world's Redis prefix and cluster, with
    the Slack emulator's token and address unless a test takes them away."""
    settings = world.container.settings
    monkeypatch.setenv("ROLLOUT_KEY_PREFIX", settings.rollout_key_prefix)
    monkeypatch.setenv("SLACK_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("SLACK_API_URL", world.slack.api_url)
    monkeypatch.setenv("ROLLOUT_APPROVERS", "U0BOB,U0CAROL")
    monkeypatch.delenv("LOG_LEVEL", raising=False)

    def run(*argv: str) -> Run:
        out, err = io.StringIO(), io.StringIO()
        started = time.monotonic()
        code = main([*argv, "--kubeconfig", str(settings.kubeconfig),
                     "--redis-url", settings.redis_url], out=out, err=err)
        return Run(code, out.getvalue(), err.getvalue(), time.monotonic() - started)

    return run


def _thread(world: World, ts: str, channel: str = CHANNEL) -> str:
    return "\n".join(m.text for m in world.slack.thread(channel, ts))


def _started(world: World) -> Message:
    """A rollout started from Slack, once `serve` has posted all it posts for the start (the
    card, then the thread's line): a test that then counts or fails Slack calls sees only
    those of its own command."""
    card = start_rollout(world)
    eventually(lambda: "started the rollout" in _thread(world, card.ts),
               message="the start's thread line")
    return card


def test_a_cli_approve_edits_the_card_and_writes_the_thread_line(
    world: World, cli: Callable[..., Run],
) -> None:
    card = _started(world)
    run = cli("approve", CANARY, "--as", "bob")
    assert run.code == EXIT_OK, run.err
    assert run.err == ""
    assert world.weights() == {"llm-pool": 90, CANARY: 10}
    # the CLI made the calls itself, before it returned: no waiting here
    updated = world.slack.message(CHANNEL, card.ts)
    assert updated is not None and ": 10%, baking" in updated.text
    assert "cli:bob applied step 1 (10%)" in _thread(world, card.ts)
    assert len(world.cards()) == 1


def test_a_rollout_started_from_the_cli_gets_its_card_in_the_notify_channel(
    world: World, cli: Callable[..., Run], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ROLLOUT_NOTIFY_CHANNEL", NOTIFY)
    run = cli("start", CANARY, "--interval", "0s", "--as", "alice")
    assert run.code == EXIT_OK, run.err
    card = world.card(NOTIFY)
    shown = world.rollout().card
    assert shown is not None and shown.ts == card.ts
    assert "cli:alice started the rollout" in _thread(world, card.ts, NOTIFY)
    assert cli("approve", CANARY, "--as", "bob").code == EXIT_OK
    assert ": 10%, baking" in world.card(NOTIFY).text
    assert len(world.cards(NOTIFY)) == 1 and world.cards(CHANNEL) == []


@pytest.mark.parametrize("fault", [
    SlackFault(method="*", error="ratelimited", count=None, retry_after=1),
    SlackFault(method="*", error="internal_error", count=None, status=500),
], ids=["429", "500"])
def test_a_failing_slack_does_not_fail_the_cli(
    world: World, cli: Callable[..., Run], fault: SlackFault,
) -> None:
    card = _started(world)
    world.slack.inject(fault)
    run = cli("approve", CANARY, "--as", "bob")
    assert run.code == EXIT_OK and "now at 10%" in run.out
    assert world.weights() == {"llm-pool": 90, CANARY: 10}
    assert run.err.startswith("note: the rollout's Slack card may be out of date")
    assert "chat.update" in run.err and len(run.err.splitlines()) == 1
    assert run.err.rstrip().endswith("the command's answer stands all the same")
    failed = [c for c in world.slack.calls if c.error == fault.error]
    assert {c.method for c in failed} == {"chat.update", "chat.postMessage"}
    # bounded: a rate limit honoured once, a server error retried twice, then given up
    per_call = 2 if fault.error == "ratelimited" else 3
    assert len(failed) == 2 * per_call
    world.slack.clear_faults()
    clean = cli("approve", CANARY, "--as", "bob")
    assert clean.code == EXIT_OK and clean.err == ""
    assert ": 25%, baking" in world.card().text  # the next change brings the card up to date
    # Slack's failures cost at most the CLI's budget more than the same command without them
    # (the process's own start-up, slow on a busy machine, is in both)
    assert run.seconds - clean.seconds < CLI_SLACK_SECONDS + 1
    assert "cli:bob applied step 2 (25%)" in _thread(world, card.ts)


def test_one_short_rate_limit_is_waited_out_and_the_card_still_updated(
    world: World, cli: Callable[..., Run],
) -> None:
    _started(world)
    world.slack.inject(SlackFault(method="chat.update", error="ratelimited", retry_after=1))
    run = cli("approve", CANARY, "--as", "bob")
    assert run.code == EXIT_OK and run.err == ""
    assert ": 10%, baking" in world.card().text
    assert run.seconds >= 1.0  # the Retry-After was waited out within the budget


def test_a_hanging_slack_holds_the_cli_no_longer_than_its_bound(
    world: World, cli: Callable[..., Run],
) -> None:
    _started(world)
    world.slack.inject(SlackFault(method="*", error="", count=None, stall=CLI_SLACK_SECONDS + 3))
    run = cli("approve", CANARY, "--as", "bob")
    assert run.code == EXIT_OK and "now at 10%" in run.out
    assert world.weights() == {"llm-pool": 90, CANARY: 10}
    assert run.seconds > CLI_SLACK_SECONDS - 0.5
    assert "chat.update (1)" in run.err and "chat.postMessage (1)" in run.err
    world.slack.clear_faults()
    clean = cli("approve", CANARY, "--as", "bob")
    assert clean.code == EXIT_OK and clean.err == ""
    assert run.seconds - clean.seconds < CLI_SLACK_SECONDS + 1  # start-up is in both


def test_without_a_token_nothing_is_posted_and_verbose_says_so(
    world: World, cli: Callable[..., Run], monkeypatch: pytest.MonkeyPatch,
) -> None:
    _started(world)
    monkeypatch.delenv("SLACK_BOT_TOKEN")
    world.slack.clear_calls()
    run = cli("approve", CANARY, "--as", "bob")
    assert run.code == EXIT_OK and run.err == ""  # scripts see the answer alone
    run = cli("approve", CANARY, "--as", "bob", "--verbose")
    assert run.code == EXIT_OK
    notes = [line for line in run.err.splitlines() if "SLACK_BOT_TOKEN is not set" in line]
    assert len(notes) == 1 and "the CLI does not update the rollouts' Slack cards" in notes[0]
    assert world.weights() == {"llm-pool": 75, CANARY: 25}
    assert world.slack.calls == []


# -- the standalone scheduler ------------------------------------------------------------------


class SchedulerProcess:
    """`rollout-bot scheduler` in a process of its own, on the world's Redis and cluster."""

    def __init__(self, world: World, *, token: bool, port: int | None = None) -> None:
        settings = world.container.settings
        env = {**os.environ, "ROLLOUT_KEY_PREFIX": settings.rollout_key_prefix,
               "ROLLOUT_TICK": "1s", "ROLLOUT_LEADER_TTL": "3s", "ROLLOUT_KUBE_TIMEOUT": "2",
               "SLACK_API_URL": world.slack.api_url, "LOG_LEVEL": "INFO"}
        env.pop("SLACK_BOT_TOKEN", None)
        if token:
            env["SLACK_BOT_TOKEN"] = TOKEN
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "scheduler", "--kubeconfig", str(settings.kubeconfig),
             "--redis-url", settings.redis_url, *(["--port", str(port)] if port else [])],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        assert self.proc.stderr is not None
        self.log = ServerLog(self.proc.stderr)
        self.log.wait_started()

    def stop(self) -> list[dict[str, Any]]:
        """Stop it and return its log lines."""
        self.proc.terminate()
        self.proc.wait(timeout=20)
        return self.log.entries()


@pytest.fixture
def scheduler_process(world: World) -> Iterator[Callable[..., SchedulerProcess]]:
    running: list[SchedulerProcess] = []

    def make(*, token: bool, port: int | None = None) -> SchedulerProcess:
        running.append(SchedulerProcess(world, token=token, port=port))
        return running[-1]

    yield make
    for p in running:
        if p.proc.poll() is None:
            p.proc.kill()
            p.proc.wait(timeout=10)


def _auto_rollout(world: World) -> None:
    """An automatic plan, approved: the scheduler steps it after each 1 s bake."""
    alice = Actor(id="U0ALICE", name="alice", via=Via.SLACK, channel=CHANNEL)
    bob = Actor(id="U0BOB", name="bob", via=Via.SLACK, channel=CHANNEL)
    world.container.service.start(namespace="default", canary=CANARY, actor=alice,
                                  plan=build_plan([10, 50, 100], interval_seconds=1, auto=True))
    world.container.service.approve_plan(REF, actor=bob)


def test_the_scheduler_process_edits_the_card_at_each_automatic_step(
    world: World, scheduler_process: Callable[..., SchedulerProcess],
) -> None:
    _auto_rollout(world)
    card = eventually(lambda: world.rollout().card, message="the card of the started rollout")
    process = scheduler_process(token=True)
    eventually(lambda: world.rollout().phase is Phase.COMPLETED, timeout=30,
               message="the scheduler completes the plan")
    eventually(lambda: ": 100%, completed" in world.card().text, message="the card at 100%")
    thread = eventually(lambda: "the scheduler applied step 3 (100%)" in
                        _thread(world, card.ts) and _thread(world, card.ts))
    assert "the scheduler applied step 2 (50%)" in thread
    assert world.card().ts == card.ts and len(world.cards()) == 1
    logs = process.stop()
    assert not any("SLACK_BOT_TOKEN is not set" in str(line.get("message")) for line in logs)
    # each decision it recorded is a log line, as under `serve`: the record past retention
    steps = [(line["percent"], line["actor"]) for line in logs if line.get("event") == "step"]
    assert steps == [(10, "scheduler"), (50, "scheduler"), (100, "scheduler")]


def test_a_scheduler_without_a_token_says_so_once_and_posts_nothing(
    world: World, scheduler_process: Callable[..., SchedulerProcess],
) -> None:
    _auto_rollout(world)
    eventually(lambda: world.rollout().card, message="the card of the started rollout")
    world.slack.clear_calls()  # the app's own card calls were made inside its commands
    process = scheduler_process(token=False)
    eventually(lambda: world.rollout().phase is Phase.COMPLETED, timeout=30,
               message="the scheduler completes the plan")
    logs = process.stop()
    notes = [line for line in logs if "SLACK_BOT_TOKEN is not set" in str(line.get("message"))]
    assert len(notes) == 1
    assert notes[0]["message"] == ("SLACK_BOT_TOKEN is not set: the scheduler does not update "
                                   "the rollouts' Slack cards")
    assert world.slack.calls == []


def test_a_scheduler_with_a_port_serves_its_health_and_metrics(
    world: World, scheduler_process: Callable[..., SchedulerProcess],
) -> None:
    """A scheduler run on its own (an install driven by the CLI) is a server too: probes
    and Prometheus need its health and its numbers, as `serve`'s."""
    port = free_port()
    process = scheduler_process(token=False, port=port)
    base = f"http://127.0.0.1:{port}"
    assert _get(base + "/healthz") == (200, '{"status": "ok"}')
    ready = eventually(lambda: json.loads(_get(base + "/readyz")[1])["checks"] == {
        "redis": "ok", "kubernetes": "ok"} and json.loads(_get(base + "/readyz")[1]),
        message="both dependencies checked")
    assert ready["ready"] is True and ready["degraded"] == []
    _auto_rollout(world)
    eventually(lambda: world.rollout().phase is Phase.COMPLETED, timeout=30,
               message="the scheduler completes the plan")
    # the three automatic steps, its own: counted once each step's save is emitted, just
    # after Redis shows it (the last one may come a moment after the rollout reads completed)
    def counted() -> str | None:
        scraped = _get(base + "/metrics")[1]
        return scraped if "rollout_bot_steps_applied_total 3.0" in scraped else None

    metrics = eventually(counted, message="its three steps counted")
    for line in ('rollout_bot_rollouts{phase="completed"} 1.0',
                 'rollout_bot_dependency_up{dependency="redis"} 1.0',
                 "rollout_bot_scheduler_tick_window 32.0",
                 "rollout_bot_scheduler_throttles_total 0.0",
                 "rollout_bot_scheduler_people_in_flight 0.0"):
        assert line in metrics, line
    # a person's command in another process (its lock taken, not yet given back): the
    # scheduler's ticks make way for it until it says it is done
    lease = world.container.store.open(key="a-persons-command", person=True).lease
    assert lease is not None
    eventually(lambda: "rollout_bot_scheduler_people_in_flight 1.0" in _get(base + "/metrics")[1],
               message="the scheduler heard the command begin")
    world.container.store.close(lease)
    eventually(lambda: "rollout_bot_scheduler_people_in_flight 0.0" in _get(base + "/metrics")[1],
               message="the scheduler heard the command end")
    assert _post_status(base + "/slack/events") == 405  # no Slack here
    logs = process.stop()
    listening = [x for x in logs if x.get("event") == "listening"]
    assert listening and listening[0]["port"] == port


def _post_status(url: str) -> int:
    request = urllib.request.Request(url, data=b"{}", method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_a_scheduler_whose_port_is_taken_says_so_and_exits(world: World) -> None:
    settings = world.container.settings
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "ROLLOUT_KEY_PREFIX": settings.rollout_key_prefix,
               "LOG_LEVEL": "INFO"}
        env.pop("SLACK_BOT_TOKEN", None)
        done = subprocess.run(
            [sys.executable, "-m", "bot", "scheduler", "--kubeconfig", str(settings.kubeconfig),
             "--redis-url", settings.redis_url, "--port", str(port)],
            env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == EXIT_REFUSED
    assert f"error: cannot listen on 0.0.0.0:{port}: Address already in use" in done.stderr
    assert '"event": "startup"' not in done.stderr

"""`rollout-bot serve` as a process logs JSON, one object per line: start-up, each Slack
request with its actor, each decision with the rollout id, a refused signature, shutdown."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from sandbox.kube import KubeEmulator
from sandbox.ports import free_port
from sandbox.redis_server import RedisServer
from sandbox.slack import SlackEmulator
from tests.e2e.conftest import CANARY, CHANNEL, SECRET, TOKEN
from tests.support.polling import eventually, healthz_up


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_serve_logs_json_lines(kube: KubeEmulator, redis_server: RedisServer,
                               slack: SlackEmulator, tmp_path: Path) -> None:
    port, log_file = free_port(), tmp_path / "serve.log"
    env = {**os.environ, "SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": SECRET,
           "SLACK_API_URL": slack.api_url, "REDIS_URL": redis_server.url,
           "KUBECONFIG": str(kube.write_kubeconfig(tmp_path / "kubeconfig")),
           "ROLLOUT_APPROVERS": "U0BOB", "ROLLOUT_KEY_PREFIX": f"logs-{time.monotonic_ns()}",
           "LOG_LEVEL": "info"}
    with log_file.open("w") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "bot", "serve", "--port", str(port)],
                                env=env, stdout=sink, stderr=sink)
    try:
        eventually(lambda: healthz_up(port), timeout=30, message="serve answering /healthz")
        slack.events_url = f"http://127.0.0.1:{port}/slack/events"
        assert slack.send_slash_command("U0ALICE", CHANNEL, f"{CANARY} start")[0] == 200
        assert slack.send_slash_command("U0DAVE", CHANNEL, f"{CANARY} pause",
                                        signing_secret="forged")[0] == 401
        started = eventually(lambda: [x for x in _lines(log_file)
                                      if x.get("event") == "decision"
                                      and x.get("action") == "started"],
                             message="the start decision logged")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as scraped:
            metrics = scraped.read().decode()
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    lines = _lines(log_file)  # every line parses as JSON, or this raises
    assert all({"time", "level", "logger", "message"} <= set(x) for x in lines)
    events = {x.get("event") for x in lines}
    assert {"startup", "request", "decision", "shutdown"} <= events
    (startup,) = [x for x in lines if x.get("event") == "startup"]
    assert startup["version"] and startup["port"] == port and startup["mode"] == "http"
    (request,) = [x for x in lines if x.get("event") == "request" and x.get("kind")]
    assert request["actor"] == "U0ALICE" and request["channel"] == CHANNEL
    assert request["kind"] == "command" and request["action"] == f"/rollout {CANARY} start"
    assert started[0]["actor"] == "U0ALICE" and started[0]["rollout_id"]
    (forged,) = [x for x in lines if x.get("event") == "request" and x.get("status") == 401]
    assert forged["level"] == "warning"
    # Bolt's notices of how the bot wires it ("`token` (or SLACK_BOT_TOKEN env variable) will
    # be ignored", which it is not) are not an operator's business, at every start
    assert not [x for x in lines if x["logger"].startswith("rollout-bot.bolt")
                and x["level"] == "warning"], "a Bolt warning at start-up"
    # serve's scheduler reports its hold-back under a throttling API (none here)
    assert "rollout_bot_scheduler_tick_window 32.0" in metrics
    assert "rollout_bot_scheduler_throttles_total 0.0" in metrics

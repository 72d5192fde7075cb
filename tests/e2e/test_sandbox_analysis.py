"""The demo's canary analysis, as the README walks it: the bot's step lands, the sandbox's
Prometheus sees the canary take its share, the analysis passes and opens the next approval;
a person makes the canary worse from the side panel's knobs and the bot rolls back on its
own, with the failing check and its values on the card."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import urllib3

from bot.sandbox import CHANNEL, Sandbox
from tests.e2e.test_sandbox import _button, _eventually, _weights


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    box = Sandbox(chat_port=0, data_dir=tmp_path / "sandbox", tick="1s").start()
    try:
        if not box.prometheus_url:
            pytest.skip("prometheus is not installed (make prometheus installs it)")
        yield box
    finally:
        box.stop()


def _card(box: Sandbox) -> str:
    top = box.slack.messages(CHANNEL, top_level_only=True)
    return json.dumps([m.blocks for m in top]) if top else ""


def test_the_banner_says_what_gates_the_steps(sandbox: Sandbox) -> None:
    banner = sandbox.banner()
    assert f"canary analysis from {sandbox.analysis_file} gates each step" in banner
    assert f"PROMETHEUS_URL={sandbox.prometheus_url} ROLLOUT_ANALYSIS_FILE=" in banner


def test_the_bot_rolls_back_a_canary_made_worse_from_the_panel(sandbox: Sandbox) -> None:
    sandbox.slack.send_slash_command("U0ALICE", CHANNEL,
                                     "llm-pool-version-2 start --steps 10,50,100 --interval 1s")
    ts, value = _eventually(lambda: _button(sandbox, "rollout_approve"), box=sandbox)
    sandbox.slack.click_button("U0BOB", CHANNEL, ts, "rollout_approve", value)
    _eventually(lambda: _weights(sandbox) == [90, 10], box=sandbox)
    # the analysis of step 1 passes on the sandbox's metrics, then step 2 opens
    _eventually(lambda: "Canary analysis `llm-serving` of step 1: passed" in _card(sandbox),
                timeout=60, box=sandbox)
    ts, value = _eventually(lambda: _button(sandbox, "rollout_approve"), timeout=30,
                            box=sandbox)
    sandbox.slack.click_button("U0BOB", CHANNEL, ts, "rollout_approve", value)
    _eventually(lambda: _weights(sandbox) == [50, 50], box=sandbox)

    assert sandbox.serving is not None  # what the side panel's slider posts
    answer = urllib3.PoolManager().request(
        "POST", f"{sandbox.serving.url}/knobs/llm-pool-version-2",
        body=json.dumps({"error_rate": 0.3}).encode())
    assert answer.status == 200
    _eventually(lambda: _weights(sandbox) == [100, 0], timeout=60, box=sandbox)
    _eventually(lambda: "rolled back" in _card(sandbox), box=sandbox)
    card = _card(sandbox)
    assert ":x: `error-rate` canary " in card and "threshold" in card
    _eventually(lambda: "check error-rate failed" in " ".join(
        m.text for m in sandbox.slack.messages(CHANNEL)), box=sandbox)

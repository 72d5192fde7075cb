"""`make demo` end to end: the sandbox's own processes, driven as a person would drive them,
through signed Slack requests and, where Chromium is installed, a real browser."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from bot.sandbox import CHANNEL, Sandbox

T = TypeVar("T")


def _eventually(probe: Callable[[], T | None], timeout: float = 10.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError("not reached in time")
        time.sleep(0.05)


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    box = Sandbox(chat_port=0, data_dir=tmp_path / "sandbox", tick="1s").start()
    try:
        yield box
    finally:
        box.stop()


def _weights(box: Sandbox) -> list[int]:
    route = box.kube.get_object("gateway.networking.k8s.io", "v1", "httproutes", "default",
                                "routes-to-llm")
    assert route is not None
    return [ref["weight"] for ref in route["spec"]["rules"][0]["backendRefs"]]


def _button(box: Sandbox, action_id: str) -> tuple[str, str] | None:
    """The button on the card once it was redrawn with the rollout's current version."""
    for message in box.slack.messages(CHANNEL, top_level_only=True):
        if not message.edited:
            continue
        for block in message.blocks:
            for element in block.get("elements", []):
                if element.get("action_id") == action_id:
                    return message.ts, str(element["value"])
    return None


def test_the_demo_walks_a_rollout_from_the_chat(sandbox: Sandbox) -> None:
    status, _, _ = sandbox.slack.send_slash_command(
        "U0ALICE", CHANNEL, "llm-pool-version-2 start --interval 0s")
    assert status == 200
    ts, value = _eventually(lambda: _button(sandbox, "rollout_approve"))
    status, _, _ = sandbox.slack.click_button("U0BOB", CHANNEL, ts, "rollout_approve", value)
    assert status == 200
    _eventually(lambda: _weights(sandbox) == [90, 10])
    ts, value = _eventually(lambda: _button(sandbox, "rollout_rollback"))
    sandbox.slack.click_button("U0CAROL", CHANNEL, ts, "rollout_rollback", value)
    _eventually(lambda: _weights(sandbox) == [100, 0])


def test_the_demo_scheduler_runs_an_automatic_plan(sandbox: Sandbox) -> None:
    sandbox.slack.send_slash_command(
        "U0ALICE", CHANNEL, "llm-pool-version-2 start --steps 50,100 --interval 1s --auto")
    _eventually(lambda: _weights(sandbox) == [0, 100], timeout=20)


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_the_chat_page_renders_the_card_in_a_browser(sandbox: Sandbox) -> None:
    """The chat page in headless Chromium shows the card with its Approve button."""
    browser = _chromium()
    if browser is None:
        pytest.skip("Chromium is not installed (apt-get install chromium): browser test skipped")
    page = f"{sandbox.slack.url}/?user=U0ALICE&channel={CHANNEL}"
    # --dump-dom runs the page's scripts and prints the DOM they built: the card and its
    # buttons must be there for a person to click.
    sandbox.slack.send_slash_command("U0ALICE", CHANNEL, "llm-pool-version-2 start")
    _eventually(lambda: _button(sandbox, "rollout_approve"))
    dom = _dump_dom(browser, page)
    assert 'data-action-id="rollout_approve"' in dom
    assert "llm-pool-version-2" in dom


def _dump_dom(browser: str, url: str) -> str:
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={profile}", "--virtual-time-budget=3000",
             "--dump-dom", url],
            capture_output=True, text=True, timeout=60, check=False,
        )
    return done.stdout

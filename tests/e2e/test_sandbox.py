"""`make demo` end to end: the sandbox's own processes, driven as a person would drive them,
through signed Slack requests and, where Chromium is installed, a real browser."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from bot.sandbox import CHANNEL, Sandbox
from rollout.service import Ref
from tests.e2e.browser import Page, chromium

T = TypeVar("T")


def _eventually(probe: Callable[[], T | None], timeout: float = 10.0,
                box: Sandbox | None = None) -> T:
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError("not reached in time" + (_chat(box) if box else ""))
        time.sleep(0.05)


def _chat(box: Sandbox) -> str:
    """What the people in the channel saw, for a failure message."""
    lines = [f"{m.user}{' (edited)' if m.edited else ''}: {m.text[:160]}"
             for m in box.slack.messages(CHANNEL)]
    lines += [f"[ephemeral to {r.user}] {(r.text or '')[:160]}" for r in box.slack.responses]
    return "\n" + "\n".join(lines)


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
    """The button on the card once the card shows the rollout's current version (a click
    on an older drawing is answered "outdated", as it should be)."""
    assert box.container is not None
    for message in box.slack.messages(CHANNEL, top_level_only=True):
        for block in message.blocks:
            for element in block.get("elements", []):
                if element.get("action_id") != action_id:
                    continue
                value = json.loads(element["value"])
                current = box.container.service.get(Ref(rollout_id=value["r"])).version
                if value["v"] == current:
                    return message.ts, str(element["value"])
    return None


def test_the_demo_walks_a_rollout_from_the_chat(sandbox: Sandbox) -> None:
    status, _, _ = sandbox.slack.send_slash_command(
        "U0ALICE", CHANNEL, "llm-pool-version-2 start --interval 0s")
    assert status == 200
    ts, value = _eventually(lambda: _button(sandbox, "rollout_approve"))
    status, _, _ = sandbox.slack.click_button("U0BOB", CHANNEL, ts, "rollout_approve", value)
    assert status == 200
    _eventually(lambda: _weights(sandbox) == [90, 10], box=sandbox)
    _eventually(lambda: "approval requested step 2" in _chat(sandbox), box=sandbox)
    ts, value = _eventually(lambda: _button(sandbox, "rollout_rollback"))
    sandbox.slack.click_button("U0CAROL", CHANNEL, ts, "rollout_rollback", value)
    _eventually(lambda: _weights(sandbox) == [100, 0], box=sandbox)


def test_the_demo_scheduler_runs_an_automatic_plan(sandbox: Sandbox) -> None:
    sandbox.slack.send_slash_command(
        "U0ALICE", CHANNEL, "llm-pool-version-2 start --steps 50,100 --interval 1s --auto")
    _eventually(lambda: _weights(sandbox) == [0, 100], timeout=20)


def test_a_person_in_the_browser_starts_approves_and_rolls_back(sandbox: Sandbox) -> None:
    """Headless Chromium on the chat page: alice types the command; bob picks himself,
    clicks Approve; carol clicks Roll back and confirms the dialog."""
    binary = chromium()
    if binary is None:
        pytest.skip("Chromium is not installed (apt-get install chromium): browser test skipped")
    page = Page(binary, f"{sandbox.slack.url}/?user=U0ALICE&channel={CHANNEL}")
    try:
        # the page has run its first refresh: the channel list is drawn
        page.wait_for("document.querySelectorAll('#channels li').length > 0")
        page.evaluate(
            "document.getElementById('composer').value = "
            "'/rollout llm-pool-version-2 start --interval 0s';"
            "document.getElementById('composer-form').requestSubmit(); true")
        _pick_user(page, "U0BOB")
        _click_current(page, sandbox, "rollout_approve")
        _eventually(lambda: _weights(sandbox) == [90, 10])
        # With `--interval 0s` the scheduler asks for step 2 at once, moving the card on: a
        # click on the card drawn before that is rightly answered "outdated".
        _eventually(lambda: "approval requested step 2" in _chat(sandbox), box=sandbox)
        _pick_user(page, "U0CAROL")
        _click_current(page, sandbox, "rollout_rollback")
        page.wait_for("!document.getElementById('modal-backdrop').hidden")
        page.evaluate("document.getElementById('modal-confirm').click(); true")
        _eventually(lambda: _weights(sandbox) == [100, 0])
        page.wait_for("document.body.innerText.includes('rolled back')")
    finally:
        page.close()


def _pick_user(page: Page, user: str) -> None:
    page.evaluate(
        f"(() => {{ const p = document.getElementById('user-picker'); p.value = '{user}';"
        "p.dispatchEvent(new Event('change')); return true; })()")


def _click_current(page: Page, box: Sandbox, action_id: str) -> None:
    """Click the button of the card as it is now (its value carries the state version), once
    the page has polled it in: a person clicks what they see."""
    def find(value: str) -> str:
        return (f"([...document.querySelectorAll('[data-action-id=\"{action_id}\"]')]"
                f".find(b => JSON.parse(b.dataset.click).value === {json.dumps(value)}) || null)")

    def shown() -> str | None:
        current = _button(box, action_id)
        return current[1] if current and page.evaluate(f"{find(current[1])} !== null") else None

    value = _eventually(shown, box=box)
    page.evaluate(f"{find(value)}.click(); true")

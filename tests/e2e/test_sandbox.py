"""`make demo` end to end: the sandbox's own processes, driven as a person would drive them,
through signed Slack requests and, where Chromium is installed, a real browser."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from bot.sandbox import CHANNEL, SANDBOX_DIR, Sandbox
from rollout.service import Ref
from tests.e2e.browser import Page, chromium
from tests.support.polling import eventually

T = TypeVar("T")
SCREENSHOTS = SANDBOX_DIR / "screenshots"


def _eventually(probe: Callable[[], T | None], timeout: float = 10.0,
                box: Sandbox | None = None) -> T:
    try:
        return eventually(probe, timeout=timeout, step=0.05, message="not reached")
    except AssertionError as exc:
        raise AssertionError(f"{exc}{_chat(box) if box else ''}") from None


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
    """The button as a person sees it on the card. An approval is clicked once the card
    offers the pending step (the card is drawn after the state is saved); the other buttons
    act on the rollout whatever drawing they come from."""
    assert box.container is not None
    for message in box.slack.messages(CHANNEL, top_level_only=True):
        for block in message.blocks:
            for element in block.get("elements", []):
                if element.get("action_id") != action_id:
                    continue
                value = json.loads(element["value"])
                current = box.container.service.get(Ref(rollout_id=value["r"]))
                if action_id != "rollout_approve" or value["s"] == current.pending_step:
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
    # step 1's canary analysis passes first (the demo runs one every 5s)
    _eventually(lambda: "step 2 (25%) is open for approval" in _chat(sandbox), timeout=60,
                box=sandbox)
    ts, value = _eventually(lambda: _button(sandbox, "rollout_rollback"))
    sandbox.slack.click_button("U0CAROL", CHANNEL, ts, "rollout_rollback", value)
    modal = _eventually(lambda: sandbox.slack.workspace.views_of("U0CAROL"), box=sandbox)[0]
    sandbox.slack.submit_view("U0CAROL", modal.id, {"rollback_reason": "p99 latency"})
    _eventually(lambda: _weights(sandbox) == [100, 0], box=sandbox)


def test_the_demo_scheduler_runs_an_automatic_plan(sandbox: Sandbox) -> None:
    """An automatic plan waits for another approver's approval of the plan, then the
    scheduler steps it up on its own."""
    sandbox.slack.send_slash_command(
        "U0ALICE", CHANNEL, "llm-pool-version-2 start --steps 50,100 --interval 1s --auto")
    ts, value = _eventually(lambda: _button(sandbox, "rollout_approve_plan"), box=sandbox)
    assert _weights(sandbox) == [100, 0]
    sandbox.slack.click_button("U0BOB", CHANNEL, ts, "rollout_approve_plan", value)
    _eventually(lambda: _weights(sandbox) == [0, 100], timeout=60, box=sandbox)


def test_the_cli_line_of_the_banner_updates_the_chat_page(sandbox: Sandbox) -> None:
    """The banner's `Drive it without Slack` line, run as printed: its changes reach the
    card in #llm-rollouts."""
    line = next(x for x in sandbox.banner().splitlines() if "rollout-bot status" in x)
    words = shlex.split(line)
    env = dict(w.split("=", 1) for w in words if "=" in w and not w.startswith("-"))
    assert {"SLACK_BOT_TOKEN", "SLACK_API_URL", "ROLLOUT_NOTIFY_CHANNEL"} <= env.keys()

    def cli(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "bot", *argv],
                              env={**os.environ, **env}, capture_output=True, text=True,
                              timeout=60, check=False)

    done = cli("start", "llm-pool-version-2", "--interval", "0s", "--as", "alice")
    assert done.returncode == 0, done.stderr
    cards = sandbox.slack.messages(CHANNEL, top_level_only=True)
    assert [m for m in cards if m.blocks], _chat(sandbox)
    assert any("cli:alice started the rollout" in m.text
               for m in sandbox.slack.messages(CHANNEL)), _chat(sandbox)
    done = cli("rollback", "llm-pool-version-2", "--as", "bob")
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert "rolled back" in _chat(sandbox)


def test_a_person_in_the_browser_walks_the_readme(sandbox: Sandbox) -> None:
    """Headless Chromium on the chat page, the README's walk: alice mistypes and then starts
    a rollout; bob approves; dave is refused; carol pauses; bob resumes; carol rolls back
    through the modal with a reason. A screenshot of each stage is kept in .sandbox/."""
    binary = chromium()
    if binary is None:
        pytest.skip("Chromium is not installed (apt-get install chromium): browser test skipped")
    shots = SCREENSHOTS
    shots.mkdir(parents=True, exist_ok=True)
    for old in shots.glob("*.png"):
        old.unlink()
    page = Page(binary, f"{sandbox.slack.url}/?user=U0ALICE&channel={CHANNEL}")
    try:
        # the page has run its first refresh: the channel list is drawn
        page.wait_for("document.querySelectorAll('#channels li').length > 0")
        _type(page, "/rollout llm-pool-version-2 strat")
        page.wait_for("document.body.innerText.includes('did you mean')")
        page.screenshot(str(shots / "01-mistyped-verb.png"))
        _type(page, "/rollout llm-pool-version-2 start --interval 3s")
        page.wait_for("document.body.innerText.includes('awaits approval')")
        page.wait_for("!document.body.innerText.includes('Working on it')")
        page.screenshot(str(shots / "02-started.png"))
        _pick_user(page, "U0BOB")
        _click_current(page, sandbox, "rollout_approve")
        _eventually(lambda: _weights(sandbox) == [90, 10])
        page.wait_for("document.body.innerText.includes('opens for approval at')")
        page.screenshot(str(shots / "03-approved-baking.png"))
        page.wait_for("document.body.innerText.includes('Approve step 2')", timeout=60)
        page.screenshot(str(shots / "04-bake-over.png"))
        _pick_user(page, "U0DAVE")
        _click_current(page, sandbox, "rollout_approve")
        page.wait_for("document.body.innerText.includes('only approvers may')")
        page.screenshot(str(shots / "05-refused.png"))
        _pick_user(page, "U0CAROL")
        _type(page, '/rollout llm-pool-version-2 pause --reason "p99 latency"')
        page.wait_for("document.body.innerText.includes('paused by @carol: p99 latency')")
        page.wait_for("document.body.innerText.includes('paused at 10%: p99 latency.')")
        page.wait_for("!document.body.innerText.includes('Working on it')")
        page.screenshot(str(shots / "06-paused.png"))
        _pick_user(page, "U0BOB")
        _click_current(page, sandbox, "rollout_resume")
        page.wait_for("document.body.innerText.includes('it was paused by carol')")
        page.screenshot(str(shots / "07-resumed.png"))
        _pick_user(page, "U0CAROL")
        _click_current(page, sandbox, "rollout_rollback")
        page.wait_for("!document.getElementById('view-backdrop').hidden")
        page.evaluate("document.querySelector('#view-blocks input').value = 'bad answers'; true")
        page.screenshot(str(shots / "08-rollback-modal.png"))
        page.evaluate("document.getElementById('view-submit').click(); true")
        _eventually(lambda: _weights(sandbox) == [100, 0])
        page.wait_for("document.body.innerText.includes('rolled back from step 1 (10%): "
                      "bad answers')")
        page.screenshot(str(shots / "09-rolled-back.png"))
    finally:
        page.close()
    assert len(list(shots.glob("*.png"))) == 9


def _type(page: Page, text: str) -> None:
    page.evaluate(f"document.getElementById('composer').value = {json.dumps(text)};"
                  "document.getElementById('composer-form').requestSubmit(); true")


def _pick_user(page: Page, user: str) -> None:
    page.evaluate(
        f"(() => {{ const p = document.getElementById('user-picker'); p.value = '{user}';"
        "p.dispatchEvent(new Event('change')); return true; })()")


def _click_current(page: Page, box: Sandbox, action_id: str) -> None:
    """Click the button as the page shows it, once the page has polled the card in: a person
    clicks what they see. Finding and clicking are one step in the page, because the page
    redraws the card as it polls and a button found a moment ago may be gone."""
    def find(value: str) -> str:
        return (f"([...document.querySelectorAll('[data-action-id=\"{action_id}\"]')]"
                f".find(b => JSON.parse(b.dataset.click).value === {json.dumps(value)}) || null)")

    def clicked() -> bool:
        current = _button(box, action_id)
        if current is None:
            return False
        return bool(page.evaluate(
            f"(() => {{ const b = {find(current[1])}; if (!b) return false; b.click(); "
            "return true; })()"))

    _eventually(clicked, box=box)


def test_the_demo_in_socket_mode(tmp_path: Path) -> None:
    """`rollout-bot sandbox --socket-mode`: the chat's commands and clicks reach the bot as
    Socket Mode envelopes over its WebSocket; no events URL is used."""
    box = Sandbox(chat_port=0, data_dir=tmp_path / "sandbox", tick="1s",
                  socket_mode=True).start()
    try:
        assert box.slack.socket_mode is not None
        box.slack.socket_mode.wait_connected(timeout=20)
        status, _, _ = box.slack.send_slash_command(
            "U0ALICE", CHANNEL, "llm-pool-version-2 start --interval 0s")
        assert status == 200
        ts, value = _eventually(lambda: _button(box, "rollout_approve"))
        status, _, _ = box.slack.click_button("U0BOB", CHANNEL, ts, "rollout_approve", value)
        assert status == 200
        _eventually(lambda: _weights(box) == [90, 10], box=box)
        assert {d.url for d in box.slack.workspace.deliveries()} == {"socket"}
    finally:
        box.stop()

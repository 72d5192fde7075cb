"""Every card keeps within Slack's Block Kit limits, however long what it shows: a card over a
limit is refused by chat.update, and the card would stop following the rollout for good. What
does not fit is cut with an ellipsis, saying where the whole of it is."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from slack_sdk.models.blocks import Block

from handlers.cards import analysis_markdown, clip, render_card
from rollout.domain import gating, machine
from rollout.domain.analysis import SubjectKind
from rollout.domain.canary import AnalysisSetup
from rollout.domain.freeze import Freeze
from rollout.domain.models import Actor, Rollout, Target, TargetKind, Via
from rollout.domain.verdict import judge
from tests.unit.analysis_builders import spec, v
from tests.unit.builders import ALICE, T0, started

#: Slack's limits (https://docs.slack.dev/reference/block-kit/blocks)
MAX_BLOCKS, HEADER, SECTION, FIELD, CONTEXT, BUTTON, VALUE = 50, 150, 3000, 2000, 2000, 75, 2000
STEPS_20 = tuple(range(5, 101, 5))
LONG_NAME = "m" * 253
REASON = "vLLM OOM: torch.OutOfMemoryError: CUDA out of memory. " * 92  # 5,000 and more
CHECKS = [f"check-{i:02d}-" + "x" * 52 for i in range(40)]  # 63 characters, the most


def _texts(block: dict[str, Any]) -> Iterator[tuple[str, int]]:
    """Each text of a block with the limit Slack holds it to."""
    match block["type"]:
        case "header":
            yield block["text"]["text"], HEADER
        case "section":
            if "text" in block:
                yield block["text"]["text"], SECTION
            for f in block.get("fields", []):
                yield f["text"], FIELD
        case "context":
            for e in block["elements"]:
                yield e["text"], CONTEXT
        case "actions":
            for e in block["elements"]:
                yield e["text"]["text"], BUTTON
                yield e["value"], VALUE


def assert_within_slacks_limits(blocks: list[dict[str, Any]]) -> None:
    assert len(blocks) <= MAX_BLOCKS
    for block in blocks:
        Block.parse(block).validate_json()  # type: ignore[union-attr] # what slack_sdk checks
        for text, limit in _texts(block):
            assert 0 < len(text) <= limit, (block["type"], len(text), limit)
    actions = [e["action_id"] for b in blocks if b["type"] == "actions" for e in b["elements"]]
    assert len(actions) == len(set(actions))


def _reviewers(count: int) -> list[Actor]:
    """CLI names are the longest a card shows (`--as` takes 100 characters)."""
    return [Actor(id=f"cli:{i}" + "r" * 95, name=f"cli:{i}" + "r" * 95, via=Via.CLI)
            for i in range(count)]


def _long_names(r: Rollout) -> Rollout:
    return r.model_copy(update={
        "stable": LONG_NAME, "canary": "c" * 253,
        "target": Target(kind=TargetKind.REWRITE, namespace="n" * 63, name="w" * 253, rule=0),
    })


def _approved(r: Rollout, steps: int) -> Rollout:
    for _ in range(steps):
        for reviewer in _reviewers(r.plan.steps[0].approvals):
            r = machine.approve(r, actor=reviewer, now=T0).rollout
    return r


def _analysed_at_step_1() -> Rollout:
    """40 checks of the longest names, each with its values, after step 1."""
    checks = [{"name": n, "query": 'q{job="$target"}', "pass_if": {"at_most": 0.02}}
              for n in CHECKS]
    setup = AnalysisSetup(name="a" * 63, spec=spec(checks=checks), kind=SubjectKind.POOL)
    r = started(STEPS_20, approvals=10, interval=120).model_copy(update={"analysis": setup})
    r = _approved(_long_names(r), 1)
    now = T0 + timedelta(seconds=130)
    values = {f"{n}/{side}": v(0.01 + i) for i, n in enumerate(CHECKS)
              for side in ("canary", "stable")}
    values |= {"requests/canary": v(100), "requests/stable": v(900)}
    run = judge(setup.spec, gating.subject_of(r), values, at=now)
    return machine.analysed(r, run=run, measured=r.step_analysis, now=now).rollout


def _paused(r: Rollout) -> Rollout:
    return machine.pause(r, actor=_reviewers(1)[0], now=T0 + timedelta(minutes=6),
                         reason=REASON).rollout


def _worst_cases() -> Iterator[tuple[str, Rollout]]:
    at_last_step = _approved(_long_names(started(STEPS_20, approvals=10)), 19)
    yield "approved by 10 at each of 20 steps", at_last_step
    yield "paused with a 5,000 character reason", _paused(at_last_step)
    yield "rolled back", machine.rollback(_paused(at_last_step), actor=ALICE,
                                          now=T0 + timedelta(minutes=7), reason=REASON).rollout
    analysed = _analysed_at_step_1()
    yield "with 40 checks", analysed
    yield "with 40 checks, paused", _paused(analysed)


WORST = dict(_worst_cases())
FROZEN = Freeze(by="carol" * 20, reason="r" * 500, since=T0)


@pytest.mark.parametrize("case", list(WORST))
def test_the_worst_card_keeps_within_every_block_kit_limit(case: str) -> None:
    r = WORST[case]
    for freeze in (None, FROZEN):
        blocks = render_card(r, now=T0 + timedelta(minutes=8), freeze=freeze).blocks
        assert_within_slacks_limits(blocks)


def test_a_long_pause_reason_is_cut_saying_where_the_whole_reason_is() -> None:
    paused = WORST["paused with a 5,000 character reason"]
    phase = render_card(paused, now=T0).blocks[1]["fields"][1]["text"]
    assert phase.startswith("*Phase*\n:double_vertical_bar: paused by cli:0")
    assert REASON[:1000] in phase
    assert phase.endswith(f"… (the whole reason: `/rollout {paused.canary} status`)")


def test_the_approvers_line_keeps_the_latest_steps_and_says_where_the_others_are() -> None:
    r = WORST["approved by 10 at each of 20 steps"]
    people = render_card(r, now=T0).blocks[5]["elements"][0]["text"]
    assert people.startswith("Started by <@U0ALICE> · <!date^")
    assert "step 19 (95%) approved by cli:0" in people  # the latest approvals are shown
    assert "step 1 (5%) approved by" not in people
    assert "approvals of steps 1 to " in people and f"`/rollout {r.canary} history`" in people


def test_an_analysis_too_long_for_the_card_names_the_checks_left_out() -> None:
    r = WORST["with 40 checks"]
    text = next(b["text"]["text"] for b in render_card(r, now=T0).blocks
                if ":bar_chart:" in b.get("text", {}).get("text", ""))
    lines = text.splitlines()
    shown = [n for n in CHECKS if f"`{n}`" in text]
    assert 10 < len(shown) < len(CHECKS) and lines[1:len(shown) + 1] == [
        line for line in lines if any(f"`{n}`" in line for n in shown)]
    assert lines[len(shown) + 1] == (f"… {len(CHECKS) - len(shown)} more checks: "
                                     f"`/rollout {r.canary} status` shows them all")
    assert lines[-1].startswith(":twisted_rightwards_arrows: split")  # the split is kept


def test_the_status_reply_shows_every_check_the_card_leaves_out() -> None:
    r = WORST["with 40 checks"]
    text = analysis_markdown(r, T0)
    assert all(f"`{n}`" in text for n in CHECKS) and len(text) > SECTION


@pytest.mark.parametrize("text, cut", [
    ("a" * 10, "a" * 10),
    ("a" * 11, "a" * 9 + "…"),
    ("abcdef <@U0BOB>", "abcdef…"),  # never half a mention
    ("abcdef &lt;!", "abcdef…"),  # nor half an escaped character
    ("ab &amp; cdefgh", "ab &amp;…"),
    ("abcd &lt;!channel", "abcd &lt;…"),
])
def test_a_cut_ends_in_an_ellipsis_and_never_inside_slacks_markup(text: str, cut: str) -> None:
    assert clip(text, 10) == cut


def test_a_cut_says_where_the_rest_is_when_there_is_room_for_it() -> None:
    assert clip("x" * 100, 50, " (see `status`)") == "x" * 34 + "… (see `status`)"
    assert clip("x" * 100, 20, " (see `status`)") == "x" * 19 + "…"

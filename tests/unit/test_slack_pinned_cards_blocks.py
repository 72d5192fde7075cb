"""The rollout card block by block: the buttons each phase offers and what they carry, the
rollback modal, and the sentences a reader sees on the card."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from handlers.cards import (
    APPROVE,
    APPROVE_PLAN,
    PAUSE,
    RESUME,
    ROLLBACK,
    ButtonValue,
    analysis_markdown,
    approvable_step,
    event_line,
    progress_bar,
    render_card,
    rollback_modal,
)
from rollout.domain import gating, machine
from rollout.domain.analysis import SubjectKind
from rollout.domain.canary import AnalysisSetup
from rollout.domain.errors import InvalidInput
from rollout.domain.freeze import Freeze
from rollout.domain.models import Actor, AuditEvent, Click, Rollout
from rollout.domain.split import Observed, Pair
from rollout.domain.verdict import judge
from tests.unit.analysis_builders import results, spec, v
from tests.unit.builders import ALICE, BOB, CAROL, T0, started

NOW = T0 + timedelta(seconds=1)
STARTED = ("Started by <@U0ALICE> · <!date^1767268800^{date_short_pretty} at {time}|"
           "2026-01-01 12:00 UTC>")
NO_ANALYSIS = ("No canary analysis: steps are not gated on metrics (set PROMETHEUS_URL for the "
               "bot to run one)")
FOOTER = "rollout `r1` · details: `/rollout llm-pool-version-2 status`"


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def _button(action_id: str, label: str, value: str, style: str | None = None) -> dict[str, Any]:
    b: dict[str, Any] = {"type": "button", "action_id": action_id,
                         "text": {"type": "plain_text", "text": label}, "value": value}
    if style:
        b["style"] = style
    return b


def _head(phase: str) -> list[dict[str, Any]]:
    return [
        {"type": "header", "text": {"type": "plain_text",
                                    "text": "Rollout llm-pool → llm-pool-version-2"}},
        {"type": "section", "fields": [
            {"type": "mrkdwn", "text": "*Target*\nHTTPRoute default/routes-to-llm rule 0"},
            {"type": "mrkdwn", "text": f"*Phase*\n{phase}"}]},
    ]


def _split(percent_bar: str, stable: int, canary: int, tail: str = "") -> dict[str, Any]:
    return _section(f"*Split* `{percent_bar}` to `llm-pool-version-2` (weights llm-pool "
                    f"{stable} / llm-pool-version-2 {canary}){tail}")


def _actions(*buttons: dict[str, Any]) -> dict[str, Any]:
    return {"type": "actions", "block_id": "rollout_actions", "elements": list(buttons)}


def _baking() -> Rollout:
    return machine.approve(started(interval=600), actor=BOB, now=NOW).rollout


def _field(r: Rollout, name: str, now: Any = NOW) -> str:
    fields = render_card(r, now=now).blocks[1]["fields"]
    return str({f["text"].split("\n", 1)[0]: f["text"].split("\n", 1)[1]
                for f in fields}[f"*{name}*"])


def _contexts(r: Rollout, now: Any = NOW) -> list[str]:
    return [b["elements"][0]["text"] for b in render_card(r, now=now).blocks
            if b["type"] == "context"]


def _buttons(r: Rollout, now: Any = NOW) -> list[dict[str, Any]]:
    return [e for b in render_card(r, now=now).blocks if b["type"] == "actions"
            for e in b["elements"]]


def test_a_baking_card_block_by_block() -> None:
    value = '{"r":"r1","s":1,"e":0}'
    assert render_card(_baking(), now=NOW).blocks == [
        *_head(":hourglass_flowing_sand: baking"),
        _split("▓░░░░░░░░░ 10%", 90, 10),
        _section("*Plan:* *10%* :round_pushpin: → 25% → 50% → 100%\n"
                 "bake 10m between steps, an approval for each step"),
        _context(NO_ANALYSIS),
        _context(f"{STARTED} · step 1 (10%) approved by <@U0BOB>"),
        _context("Next: step 2 (25%) opens for approval at <!date^1767269401^{time} ({ago})|"
                 "12:10:01 UTC>"),
        _actions(_button(PAUSE, "Pause", value),
                 _button(ROLLBACK, "Roll back", value, "danger")),
        _context(FOOTER),
    ]


def test_an_open_approval_is_a_green_button_naming_the_step_and_its_share() -> None:
    value = '{"r":"r1","s":0,"e":0}'
    assert _buttons(started()) == [
        _button(APPROVE, "Approve step 1: 10%", value, "primary"),
        _button(PAUSE, "Pause", value),
        _button(ROLLBACK, "Roll back", value, "danger"),
    ]


def test_an_automatic_plan_offers_a_green_approve_plan_button() -> None:
    r = started(auto=True, interval=60)
    value = '{"r":"r1","s":0,"e":0}'
    assert _buttons(r) == [
        _button(APPROVE_PLAN, "Approve plan", value, "primary"),
        _button(PAUSE, "Pause", value),
        _button(ROLLBACK, "Roll back", value, "danger"),
    ]
    assert "Next: step 1 (10%) once an approver approves the plan" in _contexts(r)


def test_a_paused_card_offers_resume_with_the_pause_it_ends_and_rollback() -> None:
    paused = machine.pause(_baking(), actor=CAROL, now=NOW).rollout
    assert _buttons(paused) == [
        _button(RESUME, "Resume", '{"r":"r1","s":1,"e":1,"p":1}'),
        _button(ROLLBACK, "Roll back", '{"r":"r1","s":1,"e":1}', "danger"),
    ]
    assert _field(paused, "Phase") == ":double_vertical_bar: paused by <@U0CAROL>"
    assert "Next: step 2 (25%) once resumed" in _contexts(paused)


def test_buttons_carry_the_current_epoch_after_a_pause_and_resume() -> None:
    paused = machine.pause(_baking(), actor=CAROL, now=NOW).rollout
    resumed = machine.resume(paused, actor=BOB, now=NOW).rollout
    assert resumed.epoch != 0
    values = {ButtonValue.decode(b["value"]) for b in _buttons(resumed)}
    assert values == {ButtonValue(rollout_id="r1", step=1, epoch=resumed.epoch)}
    assert "paused" not in _field(resumed, "Phase")


def test_a_completed_card_offers_rollback_at_the_step_it_reached() -> None:
    done = machine.approve(started((100,)), actor=BOB, now=NOW).rollout
    assert done.pending_step is None
    [rollback] = _buttons(done)
    assert rollback["action_id"] == ROLLBACK
    assert ButtonValue.decode(rollback["value"]) == ButtonValue(
        rollout_id="r1", step=0, epoch=done.epoch)


def test_each_button_checks_only_what_it_must() -> None:
    value = ButtonValue(rollout_id="r1", step=2, epoch=7, pause=5)
    assert value.click(APPROVE) == Click(rollout_id="r1", step=2, epoch=7, pause=None)
    assert value.click(APPROVE_PLAN) == Click(rollout_id="r1", step=2, epoch=7, pause=None)
    assert value.click(RESUME) == Click(rollout_id="r1", step=2, epoch=None, pause=5)
    for older_drawing_never_refused in (PAUSE, ROLLBACK):
        assert value.click(older_drawing_never_refused) == Click(
            rollout_id="r1", step=2, epoch=None, pause=None)


def test_a_foreign_button_value_is_refused_with_a_pointer_to_the_command() -> None:
    with pytest.raises(InvalidInput) as caught:
        ButtonValue.decode("nope")
    assert str(caught.value) == "this button is not one of the bot's; use `/rollout`"


def test_the_rollback_modal_whole() -> None:
    assert rollback_modal(_baking(), metadata="m").to_dict() == {
        "type": "modal", "callback_id": "rollout_rollback_modal", "private_metadata": "m",
        "title": {"type": "plain_text", "text": "Roll back?"},
        "submit": {"type": "plain_text", "text": "Roll back"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            _section("All traffic of the pair goes back to `llm-pool` as before the rollout "
                     "started; `llm-pool-version-2` now has 10%."),
            {"type": "input", "block_id": "rollback_reason", "optional": True,
             "label": {"type": "plain_text", "text": "Reason (for the audit and the card)"},
             "element": {"type": "plain_text_input", "action_id": "reason", "max_length": 300,
                         "placeholder": {"type": "plain_text",
                                         "text": "e.g. p99 latency up 40%"}}},
        ],
    }


def test_a_rollback_before_any_step_reads_from_zero_and_says_when_it_finished() -> None:
    back = machine.rollback(started(), actor=ALICE, now=NOW).rollout
    blocks = render_card(back, now=NOW).blocks
    assert blocks[2] == _split("░░░░░░░░░░ 0%", 100, 0, " · rolled back before step 1")
    assert _contexts(back) == [
        NO_ANALYSIS, STARTED,
        "Finished: <!date^1767268801^{date_short_pretty} at {time}|2026-01-01 12:00:01 UTC>",
        FOOTER]
    assert _buttons(back) == []


def test_a_rolled_back_card_says_who_rolled_it_back_and_why() -> None:
    back = machine.rollback(_baking(), actor=ALICE, now=NOW, reason="p99 latency").rollout
    assert _field(back, "Phase") == ":rewind: rolled back by <@U0ALICE>: p99 latency"
    system = machine.rollback(_baking(), actor=Actor.scheduler(), now=NOW,
                              reason="canary analysis `quick` of step 1 (10%): failed").rollout
    assert _field(system, "Phase") == (":rewind: rolled back by the scheduler: canary analysis "
                                       "`quick` of step 1 (10%): failed")


def test_a_rollback_from_the_first_step_names_its_share() -> None:
    back = machine.rollback(_baking(), actor=ALICE, now=NOW).rollout
    assert render_card(back, now=NOW).blocks[2] == _split(
        "░░░░░░░░░░ 0%", 100, 0, " · rolled back from 10%")


def test_a_long_header_is_cut_to_slacks_150_characters() -> None:
    r = _baking().model_copy(update={"canary": "c" * 200})
    header = render_card(r, now=NOW).blocks[0]["text"]["text"]
    assert header == f"Rollout llm-pool → {'c' * 200}"[:149] + "…"


def test_the_freeze_line_says_what_still_works() -> None:
    frozen = Freeze(by="carol", reason="incident 42", since=T0)
    lines = [b["text"]["text"] for b in render_card(started(), now=T0, freeze=frozen).blocks
             if ":snowflake:" in b.get("text", {}).get("text", "")]
    assert lines == [f":snowflake: *Rollouts are {frozen.describe()}.* Step-ups wait until an "
                     "approver runs `/rollout unfreeze`; rollback and pause still work."]


def test_a_paused_card_does_not_repeat_a_capacity_hold() -> None:
    paused = machine.pause(_baking(), actor=CAROL, now=NOW).rollout
    held = paused.model_copy(update={"held": "step to 25% waits: too few Ready endpoints"})
    assert "*Held:*" not in str(render_card(held, now=NOW).blocks)


def test_drift_to_an_absent_canary_reads_absent() -> None:
    d = machine.reconcile(_baking(), Observed(pair=Pair(stable=100, canary=None)), now=NOW)
    assert d is not None
    assert render_card(d.rollout, now=NOW).blocks[2] == _split(
        "▓░░░░░░░░░ 10%", 90, 10,
        "\n:warning: the cluster shows 100 / absent (changed by hand)")


def test_an_approval_due_exactly_now_is_offered() -> None:
    r = _baking()
    assert r.next_due_at is not None
    assert approvable_step(r, r.next_due_at) == 1


def test_the_bar_is_clamped_and_rounds_half_up() -> None:
    assert progress_bar(150) == "▓▓▓▓▓▓▓▓▓▓ 100%"
    assert progress_bar(83, width=3) == "▓▓░ 83%"


def test_two_approvers_are_listed_and_counted_and_done_steps_are_struck() -> None:
    r = machine.approve(started(approvals=2), actor=BOB, now=NOW).rollout
    r = machine.approve(r, actor=CAROL, now=NOW).rollout
    text = str(render_card(r, now=NOW).blocks)
    assert "step 1 (10%) approved by <@U0BOB>, <@U0CAROL> (2/2)" in text
    assert "2 approvals for each step" in text
    r = machine.approve(r, actor=BOB, now=NOW).rollout
    r = machine.approve(r, actor=CAROL, now=NOW).rollout
    assert "*Plan:* ~10%~ :white_check_mark: → *25%* :round_pushpin:" in str(
        render_card(r, now=NOW).blocks)


def test_a_cli_requester_is_named_by_label() -> None:
    r = started().model_copy(update={"requester": Actor(id="u-9", name="dave")})
    assert _contexts(r)[1] == "Started by dave · <!date^1767268800^{date_short_pretty} at " \
                              "{time}|2026-01-01 12:00 UTC>"


def test_a_retired_pool_says_by_whom_and_that_no_rollback_remains() -> None:
    done = machine.approve(started((100,)), actor=BOB, now=NOW).rollout
    gone = done.model_copy(update={"retired_at": T0, "retired_by": CAROL})
    assert _field(gone, "Phase") == (":white_check_mark: completed; llm-pool retired by "
                                     "<@U0CAROL> at 2026-01-01 12:00 UTC (no rollback)")
    anonymous = done.model_copy(update={"retired_at": T0, "retired_by": None,
                                        "keep_until": None})
    assert _field(anonymous, "Phase") == (":white_check_mark: completed; llm-pool retired "
                                          "at 2026-01-01 12:00 UTC (no rollback)")
    kept_nowhere = done.model_copy(update={"keep_until": None})
    assert _field(kept_nowhere, "Phase") == ":white_check_mark: completed"


def test_an_automatic_step_says_it_applies_on_its_own() -> None:
    a = machine.approve_plan(started(auto=True, interval=60), actor=BOB, now=NOW).rollout
    r = machine.tick(a, now=NOW).rollout
    assert ("Next: step 2 (25%) applies automatically at <!date^1767268861^{time} ({ago})|"
            "12:01:01 UTC>") in _contexts(r)


def test_analysis_is_a_section_and_a_held_step_waits_for_it() -> None:
    setup = AnalysisSetup(name="quick", spec=spec(), kind=SubjectKind.POOL)
    r = started((10, 50, 100), interval=120).model_copy(update={"analysis": setup})
    r = machine.approve(r, actor=BOB, now=T0).rollout
    blocks = render_card(r, now=T0).blocks
    assert blocks[4] == _section(":bar_chart: *Canary analysis `quick` of step 1: pending "
                                 "(warming up: first run at 12:01:30 UTC)*")
    assert ("Next: step 2 (50%) opens for approval at <!date^1767268920^{time} ({ago})|"
            "12:02:00 UTC>, once the canary analysis of step 1 has passed") in _contexts(r, T0)


def test_a_freeze_is_a_line_of_its_own_in_the_thread() -> None:
    e = AuditEvent(at=T0, rollout_id="r1", target="t", action="frozen", actor=BOB,
                   detail="incident 42")
    assert event_line(e) == ":snowflake: <@U0BOB> froze rollouts: incident 42"


def test_a_scheduler_event_names_the_scheduler() -> None:
    e = AuditEvent(at=T0, rollout_id="r1", target="t", action="step_applied",
                   actor=Actor.scheduler(), step=1, percent=25, detail="stable 75 / canary 25")
    assert event_line(e) == ":arrow_up: the scheduler applied step 2 (25%): stable 75 / canary 25"


def test_a_passed_analysis_lists_each_check_on_its_own_line() -> None:
    setup = AnalysisSetup(name="quick", spec=spec(), kind=SubjectKind.POOL)
    r = started((10, 50, 100), interval=120).model_copy(update={"analysis": setup})
    r = machine.approve(r, actor=BOB, now=T0).rollout
    now = T0 + timedelta(seconds=130)
    run = judge(setup.spec, gating.subject_of(r), results(), at=now)
    passed = machine.analysed(r, run=run, measured=r.step_analysis, now=now).rollout
    assert analysis_markdown(passed, now).split("\n") == [
        ":bar_chart: *Canary analysis `quick` of step 1: passed (1 passing run)*",
        ":white_check_mark: `error-rate` canary 0.01 · stable 0.01 · threshold 0.02 "
        "(at most 0.02)",
        ":white_check_mark: `ttft-p95` canary 1 · stable 1 · threshold 1.2 (at most 1.2 x stable)",
        ":twisted_rightwards_arrows: split pass: canary received 10.0% of 1000 requests; "
        "the route says 10.0% (allowed difference 7.8%)",
    ]


def test_a_long_analysis_is_cut_on_the_card_to_slacks_3000_characters() -> None:
    names = [f"c{i:02d}-" + "x" * 59 for i in range(30)]
    checks = [{"name": n, "query": 'q{job="$target"}', "pass_if": {"at_most": 0.02}}
              for n in names]
    setup = AnalysisSetup(name="long", spec=spec(checks=checks), kind=SubjectKind.POOL)
    r = started((10, 50, 100), interval=120).model_copy(update={"analysis": setup})
    r = machine.approve(r, actor=BOB, now=T0).rollout
    now = T0 + timedelta(seconds=130)
    values = {f"{n}/{side}": v(0.01) for n in names for side in ("canary", "stable")}
    values |= {"requests/canary": v(100), "requests/stable": v(900)}
    run = judge(setup.spec, gating.subject_of(r), values, at=now)
    passed = machine.analysed(r, run=run, measured=r.step_analysis, now=now).rollout
    assert len(analysis_markdown(passed, now)) > 3000  # `status` shows every check
    text = next(b["text"]["text"] for b in render_card(passed, now=now).blocks
                if ":bar_chart:" in b.get("text", {}).get("text", ""))
    assert len(text) <= 3000
    assert text.startswith(":bar_chart: *Canary analysis `long` of step 1: passed")
    assert "… 11 more checks: `/rollout llm-pool-version-2 status` shows them all\n" in text


def test_a_card_rolled_back_from_a_drift_pause_no_longer_reports_the_pause() -> None:
    drifted = machine.reconcile(_baking(), Observed(pair=Pair(stable=60, canary=40)), now=NOW)
    assert drifted is not None
    back = machine.rollback(drifted.rollout, actor=ALICE, now=NOW).rollout
    assert _field(back, "Phase") == ":rewind: rolled back by <@U0ALICE>"
    assert render_card(back, now=NOW).blocks[2] == _split(
        "░░░░░░░░░░ 0%", 100, 0, " · rolled back from 10%")

"""The rollout card: what it shows and which buttons it offers, in every phase."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from handlers.cards import (
    REASON_ACTION,
    REASON_BLOCK,
    ROLLBACK_MODAL,
    ButtonValue,
    approvable_step,
    event_line,
    progress_bar,
    render_card,
    rollback_modal,
    short_id,
)
from rollout.domain import machine
from rollout.domain.errors import InvalidInput
from rollout.domain.freeze import Freeze
from rollout.domain.models import Actor, AuditAction, AuditEvent, PauseKind, Rollout
from tests.unit.builders import ALICE, BOB, CAROL, T0, started

NOW = T0 + timedelta(seconds=1)


def _buttons(r: Rollout, now: Any = NOW) -> dict[str, dict[str, Any]]:
    blocks = render_card(r, now=now).blocks
    return {e["action_id"]: e for b in blocks if b["type"] == "actions" for e in b["elements"]}


def _text(r: Rollout, now: Any = NOW) -> str:
    return str(render_card(r, now=now).blocks)


def _approved(r: Rollout, by: Actor = BOB) -> Rollout:
    return machine.approve(r, actor=by, now=NOW).rollout.model_copy(update={"version": 3})


@pytest.mark.parametrize("percent, bar", [(0, "░░░░░░░░░░ 0%"), (10, "▓░░░░░░░░░ 10%"),
                                          (25, "▓▓▓░░░░░░░ 25%"), (30, "▓▓▓░░░░░░░ 30%"),
                                          (1, "▓░░░░░░░░░ 1%"), (100, "▓▓▓▓▓▓▓▓▓▓ 100%")])
def test_progress_bar(percent: int, bar: str) -> None:
    assert progress_bar(percent) == bar


def test_a_new_rollout_awaits_its_first_approval() -> None:
    r = started().model_copy(update={"version": 2})
    buttons = _buttons(r)
    assert set(buttons) == {"rollout_approve", "rollout_pause", "rollout_rollback"}
    assert buttons["rollout_approve"]["text"]["text"] == "Approve step 1: 10%"
    assert ButtonValue.decode(buttons["rollout_approve"]["value"]) == ButtonValue(
        rollout_id="r1", step=0, epoch=0)
    text = _text(r)
    for part in ("HTTPRoute default/routes-to-llm rule 0", "Rollout llm-pool → llm-pool-version-2",
                 "weights llm-pool 100 / llm-pool-version-2 0",
                 "░░░░░░░░░░ 0%", "awaiting approval", "<@U0ALICE>", "10% :raised_hand:"):
        assert part in text


def test_the_plan_is_shown_once_with_the_current_step_marked() -> None:
    r = _approved(started(interval=30))
    plans = [b["text"]["text"] for b in render_card(r, now=NOW).blocks
             if b["type"] == "section" and "text" in b and "*Plan:*" in b["text"]["text"]]
    assert plans == ["*Plan:* *10%* :round_pushpin: → 25% → 50% → 100%\n"
                     "bake 30s between steps, an approval for each step"]
    assert _text(r).count("25%") == 1 + _text(r).count("step 2 (25%)")


def test_rollback_is_red_and_opens_a_modal_instead_of_a_bare_confirm() -> None:
    rollback = _buttons(started())["rollout_rollback"]
    assert rollback["style"] == "danger" and "confirm" not in rollback


def test_the_rollback_modal_asks_for_an_optional_reason() -> None:
    view = rollback_modal(_approved(started()), metadata='{"value":"x"}').to_dict()
    assert view["type"] == "modal" and view["callback_id"] == ROLLBACK_MODAL
    assert view["private_metadata"] == '{"value":"x"}'
    assert view["submit"]["text"] == "Roll back"
    assert "goes back to `llm-pool`" in view["blocks"][0]["text"]["text"]
    assert "now has 10%" in view["blocks"][0]["text"]["text"]
    reason = view["blocks"][1]
    assert reason["type"] == "input" and reason["optional"] is True
    assert (reason["block_id"], reason["element"]["action_id"]) == (REASON_BLOCK, REASON_ACTION)


def test_times_are_slack_dates_that_each_reader_sees_in_local_time() -> None:
    r = _approved(started(interval=600))
    text = _text(r)
    due = int((T0 + timedelta(seconds=601)).timestamp())
    assert f"<!date^{due}^{{time}} ({{ago}})|12:10:01 UTC>" in text
    assert "(in " not in text
    assert f"Started by <@U0ALICE> · <!date^{int(T0.timestamp())}^" in text


def test_the_card_shows_a_short_id_and_no_version() -> None:
    r = started().model_copy(update={"id": "llm-pool-version-2-20261126-023403-787a60",
                                     "version": 7})
    shown = str([b for b in render_card(r, now=NOW).blocks if b["type"] != "actions"])
    assert "rollout `787a60`" in shown and "20261126" not in shown and "version 7" not in shown
    assert short_id(started()) == "r1"


def test_baking_shows_pause_and_the_next_due_time_and_who_approved() -> None:
    r = _approved(started(interval=600))
    assert r.phase.value == "baking"
    assert set(_buttons(r)) == {"rollout_pause", "rollout_rollback"}
    text = _text(r)
    assert "▓░░░░░░░░░ 10%" in text and "step 1 (10%) approved by <@U0BOB>" in text
    assert "Next: step 2 (25%) opens for approval at <!date^" in text
    assert "*10%* :round_pushpin:" in text


def test_a_bake_that_is_over_offers_the_next_approval() -> None:
    r = _approved(started(interval=600))
    later = NOW + timedelta(seconds=601)
    assert approvable_step(r, later) == 1
    assert _buttons(r, later)["rollout_approve"]["text"]["text"] == "Approve step 2: 25%"


def test_paused_offers_resume_and_says_who_and_why() -> None:
    r = machine.pause(started(), actor=CAROL, now=NOW, reason="p99 latency").rollout
    assert set(_buttons(r)) == {"rollout_resume", "rollout_rollback"}
    assert "paused by <@U0CAROL>: p99 latency" in _text(r)
    unexplained = machine.pause(started(), actor=CAROL, now=NOW).rollout
    assert "paused by <@U0CAROL>" in _text(unexplained)
    assert "paused by carol" not in _text(unexplained)


def test_a_pause_by_the_bot_says_so_and_its_kind() -> None:
    r = machine.pause(started(), actor=Actor.scheduler(), now=NOW, reason="weights changed",
                      kind=PauseKind.DRIFT).rollout
    assert "paused by the scheduler (drift): weights changed" in _text(r)


def test_a_rollback_readiness_pause_shows_the_numbers_and_still_offers_rollback() -> None:
    why = ("llm-pool could not take the traffic back:\n• [rollback] llm-pool: 1 of 8 Ready "
           "endpoints; a rollback now would overload it")
    r = machine.pause(started(), actor=Actor.scheduler(), now=NOW, reason=why,
                      kind=PauseKind.ROLLBACK).rollout
    text = _text(r)
    assert "paused by the scheduler (rollback readiness): llm-pool could not take the traffic " \
           "back:" in text
    assert "• [rollback] llm-pool: 1 of 8 Ready endpoints; a rollback now would overload it" \
        in text
    assert set(_buttons(r)) == {"rollout_resume", "rollout_rollback"}


def test_the_resume_line_says_who_paused_why_and_who_resumed() -> None:
    paused = machine.pause(started(), actor=CAROL, now=NOW, reason="p99 latency").rollout
    resumed = machine.resume(paused, actor=BOB, now=NOW)
    assert [event_line(e) for e in resumed.events] == [
        ":arrow_forward: <@U0BOB> resumed at 0%; it was paused by carol: p99 latency"]


def test_completed_offers_only_rollback_and_rolled_back_offers_nothing() -> None:
    r = started((100,))
    done = machine.approve(r, actor=BOB, now=NOW).rollout
    assert done.phase.value == "completed"
    assert set(_buttons(done)) == {"rollout_rollback"}
    back = machine.rollback(done, actor=ALICE, now=NOW).rollout
    assert _buttons(back) == {}
    assert "rolled back" in render_card(back, now=NOW).text


def test_multiple_approvals_are_counted_on_the_card() -> None:
    r = machine.approve(started(approvals=2), actor=BOB, now=NOW).rollout
    text = _text(r)
    assert "(1/2)" in text and "waits for approval (1/2 approvals)" in text


def test_an_open_approval_says_when_its_timeout_pauses_the_rollout() -> None:
    r = started(approval_timeout_seconds=1800)
    assert ("Next: step 1 (10%) waits for approval (0/1 approvals); unless approved by "
            "<!date^1767270600^{time}|12:30:00 UTC>, it pauses") in _text(r)
    # no timeout, or no approval open (a bake over, not yet ticked): nothing to say
    assert "Next: step 1 (10%) waits for approval (0/1 approvals)'" in _text(started())
    baking = machine.approve(r, actor=BOB, now=NOW).rollout
    assert "Next: step 2 (25%) waits for approval (0/1 approvals)'" in _text(
        baking, now=NOW + timedelta(hours=1))


def test_button_values_are_compact_and_checked() -> None:
    value = ButtonValue(rollout_id="r1", step=2, epoch=7, pause=7)
    assert value.encode() == '{"r":"r1","s":2,"e":7,"p":7}'
    assert ButtonValue.decode(value.encode()) == value
    drawn_before_epochs = ButtonValue.decode('{"r":"r1","s":2,"v":7}')
    assert drawn_before_epochs == ButtonValue(rollout_id="r1", step=2, epoch=None)
    assert drawn_before_epochs.click("rollout_approve").epoch is None
    for bad in ("", "nope", '{"r":"x"}', "[1]"):
        with pytest.raises(InvalidInput):
            ButtonValue.decode(bad)


def test_event_lines() -> None:
    r = started()
    decision = machine.approve(r, actor=BOB, now=NOW)
    lines = [event_line(e) for e in decision.events]
    assert lines == [":thumbsup: <@U0BOB> approved step 1 (10%)",
                     ":arrow_up: <@U0BOB> applied step 1 (10%): stable 90 / canary 10"]
    back = machine.rollback(decision.rollout, actor=ALICE, now=NOW, reason="errors")
    assert event_line(back.events[0]) == ":rewind: <@U0ALICE> rolled back from step 1 (10%): errors"
    auto = machine.rollback(decision.rollout, actor=ALICE, now=NOW)
    assert event_line(auto.events[0]) == ":rewind: <@U0ALICE> rolled back from step 1 (10%)"


@pytest.mark.parametrize("action", list(AuditAction))
def test_every_audited_action_has_an_icon_of_its_own_in_the_thread(action: AuditAction) -> None:
    event = AuditEvent(at=NOW, rollout_id="r1", target="default/routes-to-llm#0",
                       action=action, actor=BOB, detail="incident 42",
                       refused="approve" if action is AuditAction.DENIED else None)
    assert event_line(event).startswith(":")


def test_a_rolled_back_card_shows_the_weights_from_before_the_start() -> None:
    at_25 = machine.approve(_approved(started()), actor=CAROL, now=NOW).rollout
    back = machine.rollback(at_25, actor=ALICE, now=NOW, reason="errors").rollout
    message = render_card(back, now=NOW)
    text = str(message.blocks)
    assert "░░░░░░░░░░ 0%" in text and "weights llm-pool 100 / llm-pool-version-2 0" in text
    assert "rolled back from 25%" in text
    assert "*Plan:* ~10%~ → ~25%~ → 50% → 100%" in text and ":round_pushpin:" not in text
    assert message.text == "Rollout llm-pool → llm-pool-version-2: 0%, rolled back"


def test_an_automatic_plan_offers_approve_plan_and_says_why() -> None:
    r = started(auto=True)
    buttons = _buttons(r)
    assert set(buttons) == {"rollout_approve_plan", "rollout_pause", "rollout_rollback"}
    assert "approver other than <@U0ALICE>" in _text(r)
    approved = machine.approve_plan(r, actor=BOB, now=NOW).rollout
    assert "rollout_approve_plan" not in _buttons(approved)
    assert "Automatic plan approved by <@U0BOB>" in _text(approved)


def test_after_a_rollback_the_card_shows_the_restored_weights() -> None:
    r = _approved(started())
    r = machine.approve(r, actor=CAROL, now=NOW).rollout  # 25%
    back = machine.rollback(r, actor=CAROL, now=NOW).rollout
    text = _text(back)
    assert "weights llm-pool 100 / llm-pool-version-2 0" in text and "░░░░░░░░░░ 0%" in text


def test_after_drift_the_card_shows_the_clusters_weights() -> None:
    from rollout.domain.split import Observed, Pair

    r = _approved(started())
    d = machine.reconcile(r, Observed(pair=Pair(stable=60, canary=40)), now=NOW)
    assert d is not None
    text = _text(d.rollout)
    assert "weights llm-pool 90 / llm-pool-version-2 10" in text
    assert "the cluster shows 60 / 40 (changed by hand)" in text


def test_after_a_resume_over_drift_the_card_shows_the_weights_kept_and_the_plans() -> None:
    from rollout.domain.split import Observed, Pair

    r = _approved(started())
    d = machine.reconcile(r, Observed(pair=Pair(stable=70, canary=30)), now=NOW)
    assert d is not None
    resumed = machine.resume(d.rollout, actor=CAROL, now=NOW).rollout
    text = _text(resumed)
    assert "weights llm-pool 70 / llm-pool-version-2 30" in text and "30%" in text
    assert ("weights set by hand, kept since the resume; the next step writes the plan's "
            "(this step's: 90 / 10)") in text
    after = machine.approve(resumed, actor=CAROL, now=NOW + timedelta(hours=2)).rollout
    text = _text(after)  # the next step wrote the plan's: no note
    assert "weights llm-pool 75 / llm-pool-version-2 25" in text and "set by hand" not in text


def test_resume_carries_the_pause_it_ends() -> None:
    paused = machine.pause(started(), actor=CAROL, now=NOW).rollout
    value = ButtonValue.decode(_buttons(paused)["rollout_resume"]["value"])
    assert value.pause == paused.epoch
    assert value.click("rollout_resume").pause == paused.epoch
    assert value.click("rollout_pause").epoch is None


def test_a_freeze_is_shown_on_every_active_card_and_a_held_step_says_why() -> None:
    r = started()
    frozen = Freeze(by="carol", reason="incident 42", since=T0)
    shown = str(render_card(r, now=T0, freeze=frozen).blocks)
    assert "Rollouts are frozen by carol" in shown and "incident 42" in shown
    assert "rollback and pause still work" in shown
    held = r.model_copy(update={"held": "step to 10% waits: too few Ready endpoints"})
    assert "*Held:* step to 10% waits" in str(render_card(held, now=T0).blocks)
    done = machine.rollback(r, actor=BOB, now=T0).rollout
    assert "frozen" not in str(render_card(done, now=T0, freeze=frozen).blocks)



def test_a_cli_name_with_markup_is_not_said_twice_in_the_thread() -> None:
    """The detail was escaped for Slack before it was compared with the name that made it,
    so a CLI name holding `<` read `paused at 0%: paused by ops &lt;on call&gt;`."""
    cli = Actor(id="ops <on call>")
    approved = machine.approve(started(), actor=BOB, now=NOW).rollout
    paused = machine.pause(approved, actor=cli, now=NOW)
    back = machine.rollback(approved, actor=cli, now=NOW)
    who = "ops &lt;on call&gt;"
    assert event_line(paused.events[0]) == f":double_vertical_bar: {who} paused at step 1 (10%)"
    assert event_line(back.events[0]) == f":rewind: {who} rolled back from step 1 (10%)"

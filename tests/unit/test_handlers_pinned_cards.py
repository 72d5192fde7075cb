"""The card's Block Kit limits and the sentences around them, pinned at their exact
boundaries: text exactly at a limit is shown whole and one character over is cut; a cut never
ends inside a mention or an entity; "1 more check" and "2 more checks"; which steps'
approvers the card leaves out; the weights kept after a resume over a manual change."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from handlers.cards import MAX_CONTEXT, MAX_FIELD, MAX_SECTION, analysis_markdown, clip, render_card
from rollout.domain import gating, machine
from rollout.domain.analysis import SubjectKind
from rollout.domain.canary import AnalysisSetup
from rollout.domain.models import Actor, PauseKind, Rollout, Via
from rollout.domain.split import Observed, Pair
from rollout.domain.verdict import judge
from tests.unit.analysis_builders import spec, v
from tests.unit.builders import ALICE, BASELINE, BOB, CAROL, T0, TARGET, started

NOW = T0 + timedelta(seconds=1)
AFTER_WARMUP = T0 + timedelta(seconds=130)
CANARY = "llm-pool-version-2"
STARTED = ("Started by <@U0ALICE> · <!date^1767268800^{date_short_pretty} at {time}|"
           "2026-01-01 12:00 UTC>")
HISTORY = f"`/rollout {CANARY} history`"
MORE = f"`/rollout {CANARY} status` shows them all"


def _blocks(r: Rollout, now: datetime = NOW) -> list[dict[str, Any]]:
    return render_card(r, now=now).blocks


def _split_text(r: Rollout) -> str:
    text: str = _blocks(r)[2]["text"]["text"]
    return text


# clip: where the tail goes, and never a cut inside Slack's markup


def test_a_pointer_exactly_half_the_limit_long_is_dropped_and_a_shorter_one_kept() -> None:
    assert clip("x" * 100, 20, "123456789") == "x" * 19 + "…"  # "…123456789" is 10 of 20
    assert clip("x" * 100, 20, "12345678") == "x" * 11 + "…12345678"
    assert clip("x" * 100, 21, "123456789") == "x" * 20 + "…"  # half of 21 is 10, not 10.5


def test_a_cut_keeps_whole_mentions_before_it_and_drops_only_the_one_cut() -> None:
    assert clip("<@U1> <@U2> and more", 12) == "<@U1> <@U2>…"
    assert clip("<a> <@U0BOB> x", 10) == "<a>…"


def test_a_cut_drops_only_the_last_entity_when_that_one_is_cut_short() -> None:
    assert clip("a &amp; &lt;xyz", 11) == "a &amp;…"


def test_an_ampersand_five_characters_from_the_cut_is_dropped_and_six_is_kept() -> None:
    assert clip("abcd&quot;xyz", 10) == "abcd…"  # "&quot" is an entity cut short
    assert clip("abc&xxxxxyzw", 10) == "abc&xxxxx…"  # no entity is that long without `;`


# the split: what a pause, and a resume over a manual change, show


def test_a_manual_pause_shows_no_weights_seen_in_the_cluster() -> None:
    paused = machine.pause(started(), actor=CAROL, now=NOW).rollout
    assert _split_text(paused) == (f"*Split* `░░░░░░░░░░ 0%` to `{CANARY}` (weights llm-pool "
                                   f"100 / {CANARY} 0)")


def test_a_resume_over_an_absent_canary_before_step_1_shows_weight_0_twice() -> None:
    drifted = machine.pause(started(), actor=Actor.scheduler(), now=NOW, kind=PauseKind.DRIFT,
                            reason="weights changed", seen=Pair(stable=100, canary=None))
    resumed = machine.resume(drifted.rollout, actor=CAROL, now=NOW).rollout
    assert resumed.accepted_weights == (100, None)
    assert _split_text(resumed) == (
        f"*Split* `░░░░░░░░░░ 0%` to `{CANARY}` (weights llm-pool 100 / {CANARY} 0)"
        "\n:warning: weights set by hand, kept since the resume; the next step writes the "
        "plan's (this step's: 100 / 0)")


# the phase field


def test_a_long_rollback_reason_is_cut_with_a_bare_ellipsis() -> None:
    back = machine.rollback(started(), actor=CAROL, now=NOW, reason="x" * 2500).rollout
    phase = _blocks(back)[1]["fields"][1]["text"]
    head = "*Phase*\n:rewind: rolled back by <@U0CAROL>: "
    assert phase == head + "x" * (MAX_FIELD - len(head) - 1) + "…"


# the next line


def test_a_rollout_recovered_at_its_last_step_has_no_next_line() -> None:
    recovered = machine.recover(
        rollout_id="r1", target=TARGET, stable="llm-pool", canary=CANARY,
        plan=started().plan, baseline=BASELINE, requester=ALICE, created_at=T0, step=3,
        observed=Observed(pair=Pair(stable=0, canary=100)), actor=Actor.scheduler(), now=NOW,
        keep_seconds=3600).rollout
    assert recovered.pending_step is None and recovered.finished_at is None
    blocks = _blocks(recovered)
    assert [b["type"] for b in blocks] == ["header", "section", "section", "section",
                                           "context", "context", "actions", "context"]
    assert blocks[5]["elements"][0]["text"] == STARTED


# the approvers line


def _approved(steps: int, *, longer: int) -> Rollout:
    """`steps` steps each approved by 10 CLI names of 89 characters, the first `longer`
    names (in the order they approved) of 90."""
    r = started(approvals=10)
    for s in range(steps):
        for i in range(10):
            prefix = f"cli:{s}-{i}-"
            size = 90 if s * 10 + i < longer else 89
            name = prefix + "r" * (size - len(prefix))
            r = machine.approve(r, actor=Actor(id=name, name=name, via=Via.CLI), now=T0).rollout
    return r


def _people(r: Rollout) -> str:
    text: str = _blocks(r, T0)[5]["elements"][0]["text"]
    return text


def _step_line(r: Rollout, step: int) -> str:
    names = ", ".join(a.label for a in r.approvers_of(step))
    percent = r.plan.steps[step].percent
    return f"step {step + 1} ({percent}%) approved by {names} (10/10)"


def test_approvers_exactly_at_the_context_limit_are_all_shown() -> None:
    r = _approved(2, longer=19)
    assert _people(r) == " · ".join([STARTED, _step_line(r, 0), _step_line(r, 1)])
    assert len(_people(r)) == MAX_CONTEXT


def test_one_character_over_leaves_out_step_1_and_says_where_it_is() -> None:
    r = _approved(2, longer=20)
    assert _people(r) == " · ".join([STARTED, f"approvals of step 1: {HISTORY}",
                                     _step_line(r, 1)])


def test_leaving_out_two_steps_names_them_as_steps_1_to_2() -> None:
    r = _approved(3, longer=0)
    assert _people(r) == " · ".join([STARTED, f"approvals of steps 1 to 2: {HISTORY}",
                                     _step_line(r, 2)])


# the analysis section


def _analysed(names: list[str]) -> Rollout:
    checks = [{"name": n, "query": 'q{job="$target"}', "pass_if": {"at_most": 0.02}}
              for n in names]
    setup = AnalysisSetup(name="a", spec=spec(checks=checks), kind=SubjectKind.POOL)
    r = started(interval=120).model_copy(update={"analysis": setup})
    r = machine.approve(r, actor=BOB, now=T0).rollout
    values = {f"{n}/{side}": v(0.01) for n in names for side in ("canary", "stable")}
    values |= {"requests/canary": v(100), "requests/stable": v(900)}
    run = judge(setup.spec, gating.subject_of(r), values, at=AFTER_WARMUP)
    return machine.analysed(r, run=run, measured=r.step_analysis, now=AFTER_WARMUP).rollout


def _names(count: int, size: int = 63, *, longer: int = 0) -> list[str]:
    """`count` check names of `size` characters, the first `longer` of them one more."""
    return [f"check-{i:02d}-" + "x" * (size - 9 + (i < longer)) for i in range(count)]


def _analysis(r: Rollout) -> str:
    text: str = next(b["text"]["text"] for b in _blocks(r, AFTER_WARMUP)
                     if ":bar_chart:" in b.get("text", {}).get("text", ""))
    return text


def test_an_analysis_exactly_at_the_section_limit_shows_every_check() -> None:
    r = _analysed(_names(20, 60, longer=6))
    whole = analysis_markdown(r, AFTER_WARMUP)
    assert len(whole) == MAX_SECTION and _analysis(r) == whole


def test_one_character_over_leaves_out_the_last_check_as_1_more_check() -> None:
    r = _analysed(_names(20, 60, longer=7))
    lines = analysis_markdown(r, AFTER_WARMUP).splitlines()
    assert len("\n".join(lines)) == MAX_SECTION + 1
    assert _analysis(r).splitlines() == [*lines[:20], f"… 1 more check: {MORE}", lines[-1]]


def test_two_checks_left_out_read_2_more_checks() -> None:
    r = _analysed(_names(21))
    lines = analysis_markdown(r, AFTER_WARMUP).splitlines()
    assert _analysis(r).splitlines() == [*lines[:20], f"… 2 more checks: {MORE}", lines[-1]]

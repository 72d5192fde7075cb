"""What the person who asked reads in Slack: short answers, errors with one usage line."""

from __future__ import annotations

from datetime import timedelta

from bot.text import history_lines, rollout_detail, watch_line
from handlers.commands import CommandRequest, CommandResult, Verb
from handlers.grammar import help_text
from handlers.replies import error_reply, result_reply
from rollout.domain import machine
from rollout.domain.errors import InvalidInput, NotFound, StoreUnavailable, StoreUnknown
from rollout.domain.models import Phase, Rollout
from rollout.service import Outcome, Status
from tests.unit.builders import CAROL, T0, started

NOW = T0 + timedelta(seconds=1)
LONG_ID = "llm-pool-version-2-20261126-023403-787a60"


def test_status_says_who_paused_and_why_and_gives_the_full_id() -> None:
    r = machine.pause(started(), actor=CAROL, now=NOW, reason="p99 latency").rollout
    r = r.model_copy(update={"id": LONG_ID})
    reply = result_reply(CommandResult(CommandRequest(verb=Verb.STATUS, pool=r.canary),
                                       status=Status(r, None, "llm-pool-version-2: paused")))
    assert "Paused by carol: p99 latency" in reply.splitlines()
    assert f"id `{LONG_ID}`" in reply


def test_status_of_a_rollout_rolled_back_while_paused_no_longer_says_paused() -> None:
    paused = machine.pause(started(), actor=CAROL, now=NOW, reason="p99 latency").rollout
    r = machine.rollback(paused, actor=CAROL, now=NOW).rollout
    assert r.pause is None
    reply = result_reply(CommandResult(CommandRequest(verb=Verb.STATUS, pool=r.canary),
                                       status=Status(r, None, "llm-pool-version-2: rolled back")))
    assert "Paused" not in reply


def test_a_finished_rollout_stored_with_its_pause_is_not_shown_paused() -> None:
    """Rollbacks recorded before they ended the pause left it on the stored state: status
    in Slack and in the CLI, and `status --watch`, show a pause only while the rollout is
    active."""
    paused = machine.pause(started(), actor=CAROL, now=NOW, reason="p99 latency").rollout
    r = machine.rollback(paused, actor=CAROL, now=NOW).rollout.model_copy(
        update={"pause": paused.pause})
    status = Status(r, None, "llm-pool-version-2: rolled back")
    reply = result_reply(CommandResult(CommandRequest(verb=Verb.STATUS, pool=r.canary),
                                       status=status))
    assert "Paused" not in reply
    assert not any(line.startswith("paused") for line in rollout_detail(r))
    assert "paused" not in watch_line(status, NOW)
    assert any(line.startswith("paused") for line in rollout_detail(paused))
    assert "paused by carol" in watch_line(Status(paused, None, "paused"), NOW)


def test_the_watch_line_gives_a_due_time_only_for_the_end_of_a_bake() -> None:
    """Awaiting approval, the due time is the next reminder's: it used to read as the time
    the step was due."""
    awaiting = started().model_copy(update={"next_due_at": T0 + timedelta(minutes=30)})
    line = watch_line(Status(awaiting, None, "awaiting approval at 10% (step 1/4)"), NOW)
    assert "due" not in line
    baking = awaiting.model_copy(update={"phase": Phase.BAKING})
    assert "step 1 (10%) due 12:30:00 UTC" in watch_line(Status(baking, None, "baking"), NOW)


def test_the_list_shows_short_ids() -> None:
    r = started().model_copy(update={"id": LONG_ID})
    reply = result_reply(CommandResult(CommandRequest(verb=Verb.LIST), rollouts=[r]))
    assert "(`787a60`)" in reply and LONG_ID not in reply


def test_errors_from_the_service_get_one_general_usage_line() -> None:
    assert error_reply(InvalidInput("give --route or --rewrite, not both")).splitlines() == [
        ":warning: give --route or --rewrite, not both",
        "*Usage:* `/rollout <pool|adapter> <verb> [options]`; `/rollout help` lists them all",
    ]
    assert error_reply(NotFound("InferencePool x not found")) == \
        ":no_entry: InferencePool x not found"


def test_an_answer_names_the_rollout_by_its_short_id() -> None:
    r = started().model_copy(update={"id": LONG_ID})
    reply = result_reply(CommandResult(CommandRequest(verb=Verb.START, pool=r.canary),
                                       outcome=Outcome(r, f"Rollout {LONG_ID} started.")))
    assert reply == ":white_check_mark: Rollout `787a60` started."


def test_a_save_of_unknown_fate_is_never_answered_as_nothing_changed() -> None:
    """Redis refused: nothing changed, try again. Redis never said whether the save was
    recorded: the answer says so, and not that nothing changed."""
    assert error_reply(StoreUnavailable("Redis is unavailable (refused); nothing was changed",
                                        retry_after=5.0)) == (
        ":hourglass: Redis is unavailable (refused); nothing was changed. Nothing changed; "
        "try again in 5s.")
    unknown = StoreUnknown("Redis did not answer whether this change was recorded (timeout); "
                           "`status` shows it once Redis answers", retry_after=5.0)
    assert error_reply(unknown) == (
        ":hourglass: Redis did not answer whether this change was recorded (timeout); "
        "`status` shows it once Redis answers.")


def test_status_after_a_resume_over_drift_shows_the_weights_kept_until_the_next_step() -> None:
    r = started().model_copy(update={"step": 0, "phase": Phase.BAKING,
                                     "accepted_weights": (70, 30)})
    assert "split     stable 70 / canary 30  (canary 30%, set by hand: the next step writes " \
           "the plan's)" in rollout_detail(r)
    plain = r.model_copy(update={"accepted_weights": None})
    assert "split     stable 90 / canary 10  (canary 10%)" in rollout_detail(plain)


def test_status_of_a_rolled_back_rollout_says_who_and_why() -> None:
    back = machine.rollback(started(), actor=CAROL, now=NOW, reason="p99 latency").rollout
    assert "rolled back by carol: p99 latency" in rollout_detail(back)


def test_every_time_the_terminal_shows_says_its_zone() -> None:
    """`history`, the approvals in `status` and each `--watch` line printed bare times, read
    as local on an operator's terminal; the others said UTC."""
    r = machine.approve(started(), actor=CAROL, now=NOW).rollout
    events = machine.approve(started(), actor=CAROL, now=NOW).events
    assert all(line.startswith("2026-01-01 12:00:01 UTC  ") for line in history_lines(list(events)))
    approved = [line for line in rollout_detail(r) if line.startswith("approved")]
    assert approved == ["approved  step 1 by carol at 2026-01-01 12:00:01 UTC"]
    assert watch_line(Status(r, None, "baking"), NOW).startswith("12:00:01 UTC  baking")
    assert watch_line(Status(None, None, "no rollout"), NOW) == "12:00:01 UTC  no rollout"


def test_help_about_one_verb_replies_with_that_verbs_help() -> None:
    request = CommandRequest(verb=Verb.HELP, topic=Verb.ROLLBACK)
    assert result_reply(CommandResult(request)) == help_text(Verb.ROLLBACK)
    assert result_reply(CommandResult(CommandRequest(verb=Verb.HELP))) == help_text(None)


def _due(r: Rollout) -> str:
    return next(line for line in rollout_detail(r) if line.startswith("next due"))


def test_status_says_what_falls_due_at_the_next_due_time() -> None:
    """A bare `next due` read, while a step awaited approval, as the step's own time: it is
    the reminder's, or the approval's timeout (which pauses the rollout)."""
    r = started(interval=60, approval_timeout_seconds=1800, reminder_seconds=600)
    assert _due(r) == ("next due  2026-01-01 12:10:00 UTC (unless approved, the approvers are "
                       "reminded of step 1 (10%))")
    r = machine.tick(r, now=T0 + timedelta(minutes=10)).rollout
    r = machine.tick(r, now=T0 + timedelta(minutes=20)).rollout
    assert _due(r) == ("next due  2026-01-01 12:30:00 UTC (unless approved, step 1 (10%) times "
                       "out and the rollout pauses)")
    silent = started(interval=60, approval_timeout_seconds=1800, reminder_seconds=0)
    assert _due(silent).endswith("(unless approved, step 1 (10%) times out and the rollout "
                                 "pauses)")
    baking = machine.approve(silent, actor=CAROL, now=T0).rollout
    assert _due(baking) == ("next due  2026-01-01 12:01:00 UTC (step 1's bake ends; then "
                            "step 2 (25%) opens for approval)")
    planned = machine.approve_plan(started(interval=60, auto=True), actor=CAROL, now=T0).rollout
    auto = machine.tick(planned, now=T0).rollout  # step 1 applies; step 2 is automatic too
    assert _due(auto).endswith("(step 1's bake ends; then step 2 (25%) applies)")

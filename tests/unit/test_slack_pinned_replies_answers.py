"""The whole Slack answers to status, list, history and plain commands, line by line."""

from __future__ import annotations

from datetime import timedelta

from handlers.commands import CommandRequest, CommandResult, Verb
from handlers.replies import MAX_REPLY, error_reply, result_reply
from rollout.domain import machine
from rollout.domain.errors import TemporaryFailure
from rollout.domain.freeze import Freeze
from rollout.domain.models import AuditEvent, Rollout
from rollout.domain.split import Observed, Pair
from rollout.service import Outcome, Status
from tests.unit.builders import BOB, CAROL, T0, started
from tests.unit.test_service_analysis import CANARY, REF, World

NOW = T0 + timedelta(seconds=1)
RID = "llm-pool-version-2-x-abc123"
FROZEN = Freeze(by="carol", reason="incident 42", since=T0)
FROZEN_LINE = (":snowflake: Rollouts are frozen by carol since 2026-01-01 12:00:00 UTC: "
               "incident 42")
ROUTE = "HTTPRoute default/routes-to-llm rule 0"


def _baking() -> Rollout:
    return machine.approve(started(), actor=BOB, now=NOW).rollout.model_copy(
        update={"id": RID})


def _status(status: Status | None) -> str:
    return result_reply(CommandResult(CommandRequest(verb=Verb.STATUS, pool="p"), status=status))


def test_status_shows_freeze_cluster_note_and_hold_each_on_its_line() -> None:
    r = _baking().model_copy(update={"held": "waiting for GPUs"})
    s = Status(r, Observed(pair=Pair(stable=90, canary=10)), "llm-pool-version-2: at 10%",
               cluster_note="weights drifted", freeze=FROZEN,
               ticks_held_until=T0 + timedelta(seconds=7))
    assert _status(s).splitlines() == [
        "*llm-pool-version-2: at 10%*",
        f"`▓░░░░░░░░░ 10%` on {ROUTE}",
        FROZEN_LINE,
        "Next: step 2 (25%) waits for approval (0/1 approvals)",  # as the card says it
        "Cluster: stable 90 / canary 10",
        ":warning: weights drifted",
        ":hourglass: Held: waiting for GPUs",
        ":hourglass_flowing_sand: Automatic steps held back until 12:00:07 UTC: the Kubernetes "
        "API is throttling the scheduler",
        "No canary analysis: steps are not gated on metrics (set PROMETHEUS_URL for the bot "
        "to run one)",
        f"id `{RID}`",
    ]


def test_status_of_an_ended_rollout_does_not_say_it_is_held() -> None:
    r = machine.rollback(_baking(), actor=CAROL, now=NOW).rollout.model_copy(
        update={"held": "waiting for GPUs"})
    said = _status(Status(r, None, "rolled back", ticks_held_until=NOW))
    assert ":hourglass" not in said and "held back" not in said
    assert said.splitlines()[2] == "Finished: <!date^1767268801^{date_short_pretty} at " \
                                   "{time}|2026-01-01 12:00:01 UTC>"


def test_status_without_a_rollout_says_the_message_and_still_shows_the_freeze() -> None:
    assert _status(Status(None, None, "no rollout of x", freeze=FROZEN)) == \
        f":information_source: no rollout of x\n{FROZEN_LINE}"
    assert _status(Status(None, None, "no rollout of x")) == ":information_source: no rollout of x"
    assert _status(None) == ":information_source: nothing recorded"


def test_the_list_names_each_rollout_phase_percent_route_and_short_id() -> None:
    r = _baking()
    back = machine.rollback(r, actor=CAROL, now=NOW).rollout
    reply = result_reply(CommandResult(CommandRequest(verb=Verb.LIST), rollouts=[r, back]))
    assert reply == (
        "*Rollouts*\n"
        f"• `llm-pool-version-2` baking at 10% on {ROUTE} (`abc123`)\n"
        f"• `llm-pool-version-2` rolled back at 0% on {ROUTE} (`abc123`)")


def test_an_empty_list_says_how_to_start_one() -> None:
    assert result_reply(CommandResult(CommandRequest(verb=Verb.LIST))) == (
        ":information_source: No rollouts recorded yet. Start one with `/rollout <pool> start`.")


def _history(events: list[AuditEvent]) -> str:
    return result_reply(CommandResult(
        CommandRequest(verb=Verb.HISTORY, pool="llm-pool-version-2", namespace="serving"),
        history=events))


#: an event's time says its zone
AT = "2026-01-01 12:00:01 UTC"
PAUSED_LINE = f"{AT} :double_vertical_bar: <@U0CAROL> paused at step 1 (10%): slow"


def test_history_shows_every_event_with_its_time_when_they_fit_one_message() -> None:
    paused = machine.pause(_baking(), actor=CAROL, now=NOW, reason="slow").events
    approved = machine.approve(started(), actor=BOB, now=NOW).events
    reply = _history([*approved, *paused * 35])
    assert reply.splitlines() == [
        "*History of llm-pool-version-2*",
        f"{AT} :thumbsup: <@U0BOB> approved step 1 (10%)",
        f"{AT} :arrow_up: <@U0BOB> applied step 1 (10%): stable 90 / canary 10",
        *[PAUSED_LINE] * 35]


def test_a_history_longer_than_a_message_shows_the_latest_and_says_how_many_are_left_out(
) -> None:
    """Slack showed the last 30 events without a word, where README promises 200."""
    paused = machine.pause(_baking(), actor=CAROL, now=NOW, reason="slow").events
    approved = machine.approve(started(), actor=BOB, now=NOW).events
    reply = _history([*approved, *paused * 198])
    head, *lines = reply.splitlines()
    assert len(reply) <= MAX_REPLY and 30 < len(lines) < 200
    assert lines == [PAUSED_LINE] * len(lines)  # the latest ones
    assert head == (f"*History of llm-pool-version-2*: the latest {len(lines)} of 200 events "
                    f"({200 - len(lines)} earlier left out; `rollout-bot history "
                    "llm-pool-version-2 -n serving` shows up to the last 200)")


def test_a_long_event_is_cut_so_that_the_others_still_show() -> None:
    reason = "CUDA out of memory. " * 250
    paused = machine.pause(_baking(), actor=CAROL, now=NOW, reason=reason).events
    lines = _history([*paused, *paused]).splitlines()
    assert len(lines) == 3 and all(len(line) <= 500 for line in lines)
    assert lines[1].startswith(PAUSED_LINE.removesuffix("slow") + "CUDA out of memory.")
    assert lines[1].endswith("…")


def test_an_empty_history_says_so() -> None:
    assert result_reply(CommandResult(CommandRequest(verb=Verb.HISTORY, pool="p"))) == \
        ":information_source: No history recorded."


def test_a_command_without_an_outcome_is_answered_done() -> None:
    assert result_reply(CommandResult(CommandRequest(verb=Verb.PAUSE, pool="p"))) == "Done."


def test_the_icon_says_changed_unchanged_or_refused() -> None:
    def reply(*, ok: bool = True, changed: bool = True) -> str:
        return result_reply(CommandResult(CommandRequest(verb=Verb.PAUSE, pool="p"),
                                          outcome=Outcome(None, "said", changed=changed, ok=ok)))
    assert reply() == ":white_check_mark: said"
    assert reply(changed=False) == ":information_source: said"
    assert reply(ok=False, changed=True) == ":warning: said"
    assert reply(ok=False, changed=False) == ":warning: said"


def test_a_busy_dependency_is_retried_after_the_wait_it_asked_rounded_down() -> None:
    assert error_reply(TemporaryFailure("Redis is busy", retry_after=1.5)) == \
        ":hourglass: Redis is busy. Nothing changed; try again in 1s."
    assert error_reply(TemporaryFailure("Redis is busy", retry_after=0.2)) == \
        ":hourglass: Redis is busy. Nothing changed; try again in 1s."


def test_status_shows_the_analysis_as_of_the_rollout_s_last_update() -> None:
    w = World()
    w.start()
    w.service.approve(REF, actor=BOB)
    del w.metrics.values[("err", CANARY)]
    r = w.at(90)
    assert _status(Status(r, None, "m")).splitlines()[3:5] == [
        ":bar_chart: *Canary analysis `quick` of step 1: inconclusive (inconclusive, waiting: "
        "error-rate: canary: no series matched)*",
        ":grey_question: `error-rate` canary n/a · stable 0.01 · threshold 0.02 (at most 0.02): "
        "canary: no series matched"]


def test_a_list_longer_than_the_answer_says_how_many_more_and_where_they_are() -> None:
    """Twenty rollouts were answered with fifteen, and nothing said five were left out."""
    rollouts = [_baking().model_copy(update={"id": f"llm-pool-version-2-{i:06d}"})
                for i in range(20)]
    lines = result_reply(CommandResult(CommandRequest(verb=Verb.LIST),
                                       rollouts=rollouts)).splitlines()
    assert len(lines) == 1 + 15 + 1 and lines[-2].endswith("(`000014`)")
    assert lines[-1] == "… 5 more (`rollout-bot list` shows them all)"


def test_a_list_of_long_names_keeps_within_one_message() -> None:
    rollouts = [_baking().model_copy(update={"canary": "c" * 253, "id": f"c-{i}"})
                for i in range(15)]
    reply = result_reply(CommandResult(CommandRequest(verb=Verb.LIST), rollouts=rollouts))
    assert len(reply) <= MAX_REPLY
    assert reply.endswith("more (`rollout-bot list` shows them all)")

"""Every kind of audit event read as the whole sentence people see in Slack and `history`."""

from __future__ import annotations

import pytest

from handlers.sentences import event_sentence
from rollout.domain.models import Actor, AuditAction, AuditEvent
from tests.unit.builders import BOB, T0

A = AuditAction


def _ev(action: AuditAction, detail: str = "", step: int | None = 1,
        percent: int | None = 25, actor: Actor = BOB, refused: str | None = None) -> AuditEvent:
    return AuditEvent(at=T0, rollout_id="r1", target="t", action=action, actor=actor,
                      step=step, percent=percent, detail=detail, refused=refused)


@pytest.mark.parametrize(("event", "sentence"), [
    (_ev(A.STARTED, "a → b"), "bob started the rollout: a → b"),
    (_ev(A.APPROVED, "1/2"), "bob approved step 2 (25%), 1 of 2 approvals"),
    (_ev(A.APPROVED, "1/1"), "bob approved step 2 (25%)"),
    (_ev(A.APPROVED, ""), "bob approved step 2 (25%)"),
    (_ev(A.STEP_APPLIED, "stable 75 / canary 25"),
     "bob applied step 2 (25%): stable 75 / canary 25"),
    (_ev(A.STEP_APPLIED), "bob applied step 2 (25%)"),
    (_ev(A.COMPLETED), "the rollout completed at step 2 (25%)"),
    (_ev(A.PAUSED, "paused by bob"), "bob paused at step 2 (25%)"),
    (_ev(A.PAUSED, "p99 latency"), "bob paused at step 2 (25%): p99 latency"),
    (_ev(A.RESUMED, "paused by carol: slow"),
     "bob resumed at step 2 (25%); it was paused by carol: slow"),
    (_ev(A.RESUMED, "drift cleared"), "bob resumed at step 2 (25%) (drift cleared)"),
    (_ev(A.RESUMED), "bob resumed at step 2 (25%)"),
    (_ev(A.ROLLED_BACK, "requested by bob"), "bob rolled back from step 2 (25%)"),
    (_ev(A.ROLLED_BACK, "errors 5%"), "bob rolled back from step 2 (25%): errors 5%"),
    (_ev(A.PROMOTED, "skipped 2 steps"), "bob promoted the rollout to 100% (skipped 2 steps)"),
    (_ev(A.PROMOTED), "bob promoted the rollout to 100%"),
    (_ev(A.KEEP_ENDED, "kept 1h"),
     "the keep period is over (kept 1h): an approver may now retire it"),
    (_ev(A.RETIRED, "a left the rule"),
     "bob retired the old pool: a left the rule; no rollback since"),
    (_ev(A.PLAN_APPROVED, "3 steps"), "bob approved the plan (3 steps)"),
    (_ev(A.PLAN_APPROVED), "bob approved the plan"),
    (_ev(A.APPROVAL_REQUESTED), "step 2 (25%) is open for approval"),
    (_ev(A.REMINDER, "open 2h"), "step 2 (25%) still waits for approval (open 2h)"),
    (_ev(A.REMINDER), "step 2 (25%) still waits for approval"),
    (_ev(A.FAILED, "route gone"), "the rollout failed: route gone"),
    (_ev(A.RECOVERED, "weights restored"), "bob recovered step 2 (25%): weights restored"),
    (_ev(A.RECOVERED), "bob recovered step 2 (25%)"),
    (_ev(A.RELEASED, "lock freed"), "bob released the route: lock freed"),
    (_ev(A.STEP_HELD, " frozen"), "step 2 (25%) is held: frozen"),
    (_ev(A.FROZEN, "release week"), "bob froze rollouts: release week"),
    (_ev(A.FROZEN), "bob froze rollouts"),
    (_ev(A.UNFROZEN, "lifted the freeze"), "bob lifted the freeze"),
    (_ev(A.ANALYSIS_PASSED, "errors 0.1%"),
     "the canary analysis of step 2 (25%) passed: errors 0.1%"),
    (_ev(A.ANALYSIS_AWAITED, "waiting for data"),
     "the bake of step 2 (25%) is over; waiting for data"),
    # the details as the verdicts give them: each names its outcome, said once
    (_ev(A.ANALYSIS_FAILED, "check errors failed 2 times, more than the limit of 1: 9%"),
     "the canary analysis of step 2 (25%) failed: check errors failed 2 times, more than "
     "the limit of 1: 9%"),
    (_ev(A.ANALYSIS_INCONCLUSIVE, "inconclusive for 10m (limit 10m): too few requests"),
     "the canary analysis of step 2 (25%) gave up: inconclusive for 10m (limit 10m): too few "
     "requests"),
    (_ev(A.ANALYSIS_SPLIT_MISMATCH, "split mismatch: 80/20 seen"),
     "the canary analysis of step 2 (25%) stopped: split mismatch: 80/20 seen"),
    (_ev(A.DENIED, "only approvers", refused="approve"),
     "bob was refused `approve`: only approvers"),
])
def test_each_event_reads_as_its_whole_sentence(event: AuditEvent, sentence: str) -> None:
    assert event_sentence(event) == sentence


@pytest.mark.parametrize(("step", "percent", "where"), [
    (None, None, "0%"), (-1, 10, "0%"), (0, 10, "step 1 (10%)"), (2, None, "step 3"),
])
def test_the_step_is_named_by_its_number_and_percent(
        step: int | None, percent: int | None, where: str) -> None:
    assert event_sentence(_ev(A.COMPLETED, step=step, percent=percent)) \
        == f"the rollout completed at {where}"


def test_a_person_is_named_by_the_edge_namer() -> None:
    def mention(a: Actor) -> str:
        return f"<@{a.id}>"
    assert event_sentence(_ev(A.PAUSED, "paused by bob"), mention) \
        == "<@U0BOB> paused at step 2 (25%)"

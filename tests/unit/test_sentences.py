"""Audit events as sentences: the same story in the card's thread and in `history`."""

from __future__ import annotations

from datetime import timedelta

from handlers.sentences import event_sentence, plain_name
from rollout.domain import machine
from rollout.domain.models import Actor, AuditEvent, PauseKind
from tests.unit.builders import BOB, CAROL, T0, started

NOW = T0 + timedelta(seconds=1)


def _sentences(events: tuple[AuditEvent, ...]) -> list[str]:
    return [event_sentence(e) for e in events]


def test_a_walk_reads_as_sentences_with_plain_names() -> None:
    r = started(approvals=2)
    assert _sentences(machine.start(
        rollout_id="r1", target=r.target, stable="llm-pool", canary="llm-pool-version-2",
        plan=r.plan, baseline=r.baseline, actor=CAROL, now=T0).events) == [
        "carol started the rollout: llm-pool → llm-pool-version-2 on HTTPRoute "
        "default/routes-to-llm rule 0"]
    first = machine.approve(r, actor=BOB, now=NOW)
    assert _sentences(first.events) == ["bob approved step 1 (10%), 1 of 2 approvals"]
    paused = machine.pause(first.rollout, actor=CAROL, now=NOW, reason="p99 latency")
    assert _sentences(paused.events) == ["carol paused at 0%: p99 latency"]
    resumed = machine.resume(paused.rollout, actor=BOB, now=NOW)
    assert _sentences(resumed.events) == [
        "bob resumed at 0%; it was paused by carol: p99 latency"]


def test_the_scheduler_is_named_as_such_and_its_pauses_say_their_kind() -> None:
    assert plain_name(Actor.scheduler()) == "the scheduler"
    drift = machine.pause(started(), actor=Actor.scheduler(), now=NOW, reason="weights 80/20",
                          kind=PauseKind.DRIFT)
    assert _sentences(drift.events) == ["the scheduler paused at 0%: weights 80/20"]
    resumed = machine.resume(drift.rollout, actor=BOB, now=NOW)
    assert _sentences(resumed.events) == [
        "bob resumed at 0%; it was paused by the scheduler (drift): weights 80/20"]


def test_automatic_steps_and_completion() -> None:
    r = machine.approve_plan(started((50, 100), auto=True), actor=BOB, now=NOW).rollout
    first = machine.tick(r, now=NOW)
    assert _sentences(first.events) == [
        "the scheduler applied step 1 (50%): stable 50 / canary 50"]
    last = machine.tick(first.rollout, now=NOW)
    assert _sentences(last.events)[-1] == "the rollout completed at step 2 (100%)"


def test_a_refusal_in_the_audit() -> None:
    event = AuditEvent(at=T0, rollout_id="r1", target="t", action="denied:approve",
                       actor=Actor(id="U0DAVE", name="dave", via="slack"),
                       detail="only approvers may `approve`")
    assert event_sentence(event) == "dave was refused `approve`: only approvers may `approve`"

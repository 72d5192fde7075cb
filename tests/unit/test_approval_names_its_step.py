"""An approval names the step it approves, from Slack and the CLI alike: a retry after an
answer that was lost (or wrong) finds its step applied instead of approving the next one."""

from __future__ import annotations

import pytest

from handlers.commands import CommandRequest, Verb, run_command
from handlers.grammar import GrammarError, parse
from rollout.domain.errors import Outdated
from tests.unit.builders import BOB
from tests.unit.test_service import CANARY, _started


def _approve(step: int | None = None) -> CommandRequest:
    return CommandRequest(verb=Verb.APPROVE, pool=CANARY, step=step)


def test_a_retried_approval_of_a_step_that_landed_approves_nothing_more() -> None:
    service, _, target, _ = _started()
    first = run_command(service, _approve(step=1), BOB).outcome
    assert first is not None and first.changed
    writes = list(target.writes)
    retry = run_command(service, _approve(step=1), BOB).outcome
    assert retry is not None and not retry.changed
    assert "step 1 (10%) of llm-pool-version-2 is already applied" in retry.message
    assert target.writes == writes
    assert service.get(_approve().ref).step == 0


def test_an_approval_of_a_step_that_is_not_pending_is_refused() -> None:
    service, _, target, _ = _started()
    writes = list(target.writes)
    with pytest.raises(Outdated, match="step 2 is not the pending step; step 1 \\(10%\\) is"):
        run_command(service, _approve(step=2), BOB)
    assert target.writes == writes


def test_without_a_step_the_approval_is_for_the_step_pending_when_it_was_read() -> None:
    service, _, target, _ = _started()
    out = run_command(service, _approve(), BOB).outcome
    assert out is not None and out.changed and "step 1 (10%)" in out.message
    assert target.writes[-1].canary == 10


def test_slack_takes_the_step_with_approve_only() -> None:
    assert parse(f"{CANARY} approve --step 2").step == 2
    with pytest.raises(GrammarError, match="`--step` applies to `approve`, not `pause`"):
        parse(f"{CANARY} pause --step 2")
    for bad in ("0", "-1", "two", "101"):
        with pytest.raises(GrammarError, match="wants the number of the step"):
            parse(f"{CANARY} approve --step={bad}")



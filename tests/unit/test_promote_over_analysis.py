"""`promote` sends all of the traffic to the canary: while its analysis does not pass, only
when the person says so (`--skip-analysis`, from Slack and the CLI alike), and the audit
says what was skipped."""

from __future__ import annotations

import pytest

from bot.cli import build_parser, request_from_args
from handlers.commands import CommandRequest, Verb, run_command
from handlers.grammar import GrammarError, parse
from rollout.domain.errors import Conflict
from rollout.domain.models import AuditAction, Phase
from rollout.domain.split import Pair
from tests.unit.builders import BOB, CAROL
from tests.unit.test_service_analysis import CANARY, REF, World


def _promote(skip: bool = False) -> CommandRequest:
    return CommandRequest(verb=Verb.PROMOTE, pool=CANARY, skip_analysis=skip)


def test_slack_and_the_cli_take_skip_analysis_with_promote_only() -> None:
    assert parse(f"{CANARY} promote --skip-analysis").skip_analysis
    assert not parse(f"{CANARY} promote").skip_analysis
    with pytest.raises(GrammarError,
                       match="`--skip-analysis` applies to `promote`, not `approve`"):
        parse(f"{CANARY} approve --skip-analysis")
    parser = build_parser()
    args = parser.parse_args(["promote", CANARY, "--skip-analysis"])
    assert request_from_args(args, "default").skip_analysis
    with pytest.raises(SystemExit):
        parser.parse_args(["approve", CANARY, "--skip-analysis"])


def test_a_promote_while_the_analysis_fails_is_refused_and_changes_nothing() -> None:
    w = World()
    w.start()
    w.service.approve(REF, actor=BOB)  # step 1 (10%)
    w.metrics.values[("err", CANARY)] = 0.5  # failing, within the failure limit
    r = w.at(90)
    assert r.phase is not Phase.ROLLED_BACK and w.target.pair == Pair(stable=90, canary=10)
    with pytest.raises(Conflict, match=r"the canary analysis of llm-pool-version-2 does not "
                                       r"pass: .*error-rate"):
        run_command(w.service, _promote(), CAROL)
    with pytest.raises(Conflict, match="does not pass"):  # the service's own default
        w.service.promote(REF, actor=CAROL)
    assert w.target.pair == Pair(stable=90, canary=10) and w.service.get(REF).step == 0
    out = run_command(w.service, _promote(skip=True), CAROL).outcome
    assert out is not None and out.changed
    assert w.target.pair == Pair(stable=0, canary=100)
    [promoted] = [e for e in w.service.history(REF) if e.action is AuditAction.PROMOTED]
    assert promoted.actor == CAROL
    assert promoted.detail.startswith("from 10%, skipping its canary analysis (")
    assert "error-rate" in promoted.detail

"""Canary analysis at the edges: `--analysis` in the grammar and the CLI, each check's values
and verdict on the card, in `status` and on /metrics."""

from __future__ import annotations

import json

import pytest

from bot.cli import build_parser, request_from_args
from bot.json_output import result_json
from bot.metrics import Metrics
from bot.text import rollout_detail
from handlers.cards import render_card
from handlers.commands import CommandRequest, CommandResult, Verb
from handlers.grammar import GrammarError, parse
from rollout.domain.models import Rollout
from tests.unit.builders import BOB
from tests.unit.test_service_analysis import BAKE, CANARY, REF, World


def test_analysis_is_a_start_option_in_slack_and_the_cli() -> None:
    assert parse(f"{CANARY} start --analysis llm-serving").analysis == "llm-serving"
    with pytest.raises(GrammarError, match="`--analysis` applies only to `start`"):
        parse(f"{CANARY} status --analysis llm-serving")
    with pytest.raises(GrammarError, match="the name of an analysis"):
        parse(f"{CANARY} start --analysis 'a b'")
    args = build_parser().parse_args(["start", CANARY, "--analysis", "strict"])
    assert request_from_args(args, "default").analysis == "strict"


def _failed() -> Rollout:
    w = World()
    w.start()
    w.service.approve(REF, actor=BOB)
    w.metrics.values[("err", CANARY)] = 0.2
    w.at(90)
    return w.at(BAKE)


def test_the_card_shows_the_failing_check_with_its_values() -> None:
    r = _failed()
    text = str(render_card(r, now=r.updated_at).blocks)
    assert "Canary analysis `quick` of step 1: failed" in text
    assert ":x: `error-rate` canary 0.2 · stable 0.01 · threshold 0.02 (at most 0.02)" in text
    assert ":white_check_mark: `ttft-p95` canary 1 · stable 1" in text


def test_a_rollout_without_analysis_says_so_on_the_card_and_in_status() -> None:
    w = World(port=False)
    r = w.start()
    assert "No canary analysis: steps are not gated on metrics" in str(
        render_card(r, now=r.updated_at).blocks)
    assert any("PROMETHEUS_URL" in line for line in rollout_detail(r))


def test_status_and_metrics_show_each_check() -> None:
    w = World()
    w.start()
    w.service.approve(REF, actor=BOB)
    r = w.at(90)
    lines = rollout_detail(r)
    assert any(line.startswith("analysis  canary analysis `quick` of step 1: passed")
               for line in lines)
    assert any("pass" in line and "error-rate: canary 0.01" in line for line in lines)
    text = Metrics(rollouts=lambda: [r]).render()[0].decode()
    assert ('rollout_bot_analysis_value{canary="llm-pool-version-2",check="ttft-p95",'
            'rollout="r1",side="stable"} 1.0') in text
    assert ('rollout_bot_analysis_check{canary="llm-pool-version-2",check="error-rate",'
            'rollout="r1",verdict="pass"} 1.0') in text
    assert 'rollout_bot_analysis_canary_share{canary="llm-pool-version-2",kind="observed"' \
        in text


def test_the_card_says_the_next_step_waits_for_the_analysis() -> None:
    w = World()
    w.start()
    w.service.approve(REF, actor=BOB)
    w.metrics.down = True
    r = w.at(90)
    over = r.model_copy(update={"next_due_at": r.updated_at})  # before the scheduler's tick
    assert "Approve step 2" not in str(render_card(over, now=r.updated_at).blocks)
    r = w.at(BAKE)
    text = str(render_card(r, now=r.updated_at).blocks)
    assert "Next: step 2 (50%) opens for approval once the canary analysis of step 1 has " \
           "passed" in text
    assert "Approve step 2" not in text
    assert ":grey_question: `error-rate` canary n/a" in text and "unreachable" in text


def test_status_as_json_carries_the_analysis_and_each_checks_values() -> None:
    w = World()
    w.start()
    w.service.approve(REF, actor=BOB)
    w.at(90)
    request = CommandRequest(verb=Verb.STATUS, pool=CANARY)
    body = json.loads(result_json(CommandResult(request, status=w.service.status(REF))))
    rollout = body["rollout"]
    assert rollout["analysis"]["name"] == "quick"
    assert rollout["analysis"]["spec"]["interval"] == "30s"  # as the file writes it
    checks = {c["name"]: c for c in rollout["step_analysis"]["latest"]["checks"]}
    assert checks["error-rate"]["status"] == "pass"
    assert checks["error-rate"]["canary"] == 0.01 and checks["error-rate"]["threshold"] == 0.02

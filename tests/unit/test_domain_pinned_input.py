"""What a person reads when a start, a plan or an analysis file is refused, and when a
command meets a temporary failure or loses the race to a rollback."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from handlers.replies import error_reply
from rollout.adapters.analysis_file import AnalysisFileError, load_analyses
from rollout.domain.analysis import Subject, SubjectKind, parse_duration, queries_for
from rollout.domain.errors import (
    Busy,
    Conflict,
    FenceBehind,
    InvalidInput,
    Superseded,
    TemporaryFailure,
)
from rollout.domain.names import rollout_names
from rollout.domain.plan import build_plan, describe_plan, parse_steps
from rollout.domain.split import require_single_entries
from tests.unit.analysis_builders import spec

NOT_A_NAME = ("is not a Kubernetes name: use at most 253 lowercase letters, digits, `-` and "
              "`.`, starting and ending with a letter or digit")
NOT_A_MODEL = ("is not a model name: use 1 to 253 printable characters without spaces, `<`, `>` "
               "or `&`")


@pytest.mark.parametrize(("names", "message"), [
    ({"canary": "lora v2", "rewrite": "rw"}, f"adapter `lora v2` {NOT_A_MODEL}"),
    ({"canary": "lora-v2", "stable": "lora v1", "rewrite": "rw"},
     f"stable adapter `lora v1` {NOT_A_MODEL}"),
    ({"canary": "pool-v2", "stable": "Pool_V1"}, f"stable pool `Pool_V1` {NOT_A_NAME}"),
    ({"canary": "pool-v2", "route": "Route_1"}, f"route `Route_1` {NOT_A_NAME}"),
])
def test_a_bad_name_in_a_start_is_named_by_its_role(names: dict[str, str],
                                                     message: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        rollout_names(namespace="default", **names)
    assert str(refused.value) == message


def test_a_rule_listing_the_stable_twice_is_refused_with_how_to_fix_it() -> None:
    with pytest.raises(Conflict) as refused:
        require_single_entries(["llm-pool", "llm-pool", "llm-pool-v2"], stable="llm-pool",
                               canary="llm-pool-v2", where="rule 0 of routes-to-llm")
    assert str(refused.value) == (
        "rule 0 of routes-to-llm lists the stable llm-pool 2 times: merge them into one entry "
        "(with the summed weight) before starting")


def test_a_step_with_a_letter_after_it_is_refused() -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_steps("10X,50")
    assert str(refused.value) == ("invalid step list `10X,50`: steps are whole percentages "
                                  "like 10,25,50,100")


def test_a_one_step_plan_is_described() -> None:
    assert describe_plan(build_plan([100])) == "100%, bake 15m, approval at each step"
    assert describe_plan(build_plan([100], auto=True)) == "100%, bake 15m, automatic"


def test_a_fractional_duration_is_refused_with_the_file_s_wording() -> None:
    with pytest.raises(ValueError, match=r"^'1\.5m' is not a duration: write a whole number "
                                         r"with s, m or h \(e\.g\. 30s, 5m, 1h\)$"):
        parse_duration("1.5m")


BAD_QUERIES = """\
default: a
analyses:
  a:
    requests: 'sum(req_total)'
    checks:
      - name: blank
        query: '  '
        pass_if: {at_most: 1}
      - name: cost
        query: 'cost > $5'
        pass_if: {at_most: 1}
      - name: typo
        query: 'up{job="$canry", s="$stabel"}'
        pass_if: {at_most: 1}
"""


def test_bad_queries_in_the_analysis_file_are_each_explained(tmp_path: Path) -> None:
    path = tmp_path / "analyses.yaml"
    path.write_text(BAD_QUERIES)
    with pytest.raises(AnalysisFileError) as refused:
        load_analyses(path)
    assert [line.strip() for line in str(refused.value).splitlines()[1:]] == [
        f"{path}:7: analyses.a.checks.0.query: the query is empty",
        f"{path}:10: analyses.a.checks.1.query: a '$' must start a placeholder ($canary) or "
        "be doubled ($$)",
        f"{path}:13: analyses.a.checks.2.query: unknown placeholder(s) $canry, $stabel; "
        "known: $canary, $model, $namespace, $pool, $stable, $target, $window",
    ]


def test_an_analysis_without_a_request_count_for_the_kind_says_so() -> None:
    pools_only = spec(requests={"pool": "sum(req_total)"})
    adapter = Subject(kind=SubjectKind.ADAPTER, namespace="default", stable="lora-v1",
                      canary="lora-v2", pool="llm-pool", canary_share=0.1)
    with pytest.raises(ValueError) as refused:
        queries_for(pools_only, adapter, timedelta(seconds=30))
    assert str(refused.value) == "the analysis does not count requests of adapter rollouts"


def test_a_temporary_failure_tells_the_person_to_retry_in_five_seconds() -> None:
    assert error_reply(TemporaryFailure("Redis is busy")) == (
        ":hourglass: Redis is busy. Nothing changed; try again in 5s.")
    assert Busy("another operation holds the lock").retry_after == 5.0


def test_a_superseded_operation_is_answered_as_not_landed_unless_it_says_so() -> None:
    assert error_reply(Superseded("a rollback took over")) == (
        ":rewind: A rollback took over while this ran; it did not land. "
        "(a rollback took over)")
    behind = FenceBehind("the route carries a newer fencing token", seen=7)
    assert behind.seen == 7
    assert error_reply(behind) == (
        ":rewind: A rollback took over while this ran; it did not land. "
        "(the route carries a newer fencing token)")

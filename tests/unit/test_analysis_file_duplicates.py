"""A key written twice in the analysis file is refused with its line: YAML keeps the last
one silently, so `failure_limit: 0` followed by `failure_limit: 5` would read as 5."""

from __future__ import annotations

from pathlib import Path

import pytest

from rollout.adapters.analysis_file import AnalysisFileError, load_analyses, parse_analyses

TWICE = """\
default: strict
analyses:
  strict:
    failure_limit: 0
    requests: 'sum(req{job="$target"})'
    failure_limit: 5
    checks:
      - name: errors
        query: 'errors'
        pass_if: {at_most: 0.01, at_most: 0.5}
"""


def test_a_key_written_twice_is_refused_with_both_lines(tmp_path: Path) -> None:
    path = tmp_path / "analyses.yaml"
    path.write_text(TWICE)
    with pytest.raises(AnalysisFileError) as refused:
        load_analyses(path)
    assert str(refused.value).splitlines() == [
        "invalid analysis file:",
        f"  {path}:6: analyses.strict.failure_limit: the key `failure_limit` is written "
        "twice (first at line 4): write each key once",
        f"  {path}:10: analyses.strict.checks.0.pass_if.at_most: the key `at_most` is "
        "written twice (first at line 10): write each key once",
    ]


def test_a_top_level_key_written_twice_is_refused() -> None:
    text = "default: a\ndefault: b\nanalyses: {}\n"
    with pytest.raises(AnalysisFileError, match=r"x\.yaml:2: default: the key `default`"):
        parse_analyses(text, source="x.yaml")


TWO = """\
default: strict
analyses:
  strict: &strict
    failure_limit: 0
    requests: 'sum(req{job="$target"})'
    checks: [{name: errors, query: errors, pass_if: {at_most: 0.01}}]
  lenient:
    <<: *strict
    failure_limit: 5
"""


def test_the_same_key_in_different_mappings_is_no_duplicate() -> None:
    """`<<: *strict` then `failure_limit` is YAML's way to override a merged key."""
    found = parse_analyses(TWO, source="x.yaml")
    assert found.analyses["strict"].failure_limit == 0
    assert found.analyses["lenient"].failure_limit == 5
    assert found.analyses["lenient"].checks == found.analyses["strict"].checks

"""The analysis file: the shipped default loads; a bad file is refused with file, line, reason."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rollout.adapters.analysis_file import AnalysisFileError, load_analyses, load_default
from rollout.domain.analysis import MAX_CHECKS, AnalysisSpec, SubjectKind

BAD = """\
default: canary
analyses:
  canary:
    interval: 30
    requests: 'sum(increase(llm_d_epp_request_total{job="$target-epp"}[$window]))'
    checks:
      - name: ttft-p95
        query: 'histogram_quantile(0.95, rate(x{job="$canry"}[$window]))'
        pass_if: {at_most_times_stable: 1.2}
      - name: errors
        query: 'errors'
        pass_if:
          at_most: 0.01
          at_least: 0.5
        colour: red
"""


def test_the_shipped_default_loads_and_fits_both_kinds_of_rollout() -> None:
    file = load_default()
    name, spec = file.select(None, SubjectKind.POOL)
    assert name == "llm-serving" and spec.on_failure == "rollback"
    assert {c.name for c in spec.checks_for(SubjectKind.POOL)} >= {"error-rate", "ttft-p95"}
    assert {c.name for c in spec.checks_for(SubjectKind.ADAPTER)} == {
        "adapter-error-rate", "adapter-ttft-p95", "adapter-e2e-p95"}
    assert file.select(None, SubjectKind.ADAPTER)[0] == "llm-serving"


def test_no_file_means_the_shipped_default() -> None:
    assert load_analyses(None) == load_default()
    assert load_analyses("") == load_default()


def test_a_bad_file_is_refused_with_the_file_the_line_and_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "analyses.yaml"
    path.write_text(BAD)
    with pytest.raises(AnalysisFileError) as refused:
        load_analyses(path)
    lines = str(refused.value).splitlines()[1:]
    assert [line.strip() for line in lines] == [
        f"{path}:4: analyses.canary.interval: 30 is not a duration: write a whole number "
        "with s, m or h (e.g. 30s, 5m, 1h)",
        f"{path}:8: analyses.canary.checks.0.query: unknown placeholder(s) $canry; known: "
        "$canary, $model, $namespace, $pool, $stable, $target, $window",
        f"{path}:13: analyses.canary.checks.1.pass_if: give exactly one of at_most, "
        "at_least, at_most_times_stable, at_least_times_stable (got at_most, at_least)",
        f"{path}:15: analyses.canary.checks.1.colour: Extra inputs are not permitted",
    ]


def test_a_missing_field_is_reported_at_its_mapping(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text("default: a\nanalyses:\n  a:\n    interval: 1m\n")
    with pytest.raises(AnalysisFileError, match=r"a\.yaml:4: analyses\.a\.requests: "
                                                r"Field required"):
        load_analyses(path)


def test_an_unknown_default_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text(BAD.replace("default: canary", "default: other")
                    .replace("interval: 30", "interval: 30s")
                    .replace("$canry", "$canary").replace("at_least: 0.5", "")
                    .replace("colour: red", ""))
    with pytest.raises(AnalysisFileError, match=r"a\.yaml:1: \(top level\): default 'other' "
                                                r"is not one of the analyses: canary"):
        load_analyses(path)


def test_broken_yaml_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text("default: a\nanalyses:\n  a: [1, 2\n  b: 3\n")
    with pytest.raises(AnalysisFileError, match=rf"{path}:4: not valid YAML"):
        load_analyses(path)


def test_an_unreadable_or_empty_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(AnalysisFileError, match="cannot read the analysis file"):
        load_analyses(tmp_path / "missing.yaml")
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing\n")
    with pytest.raises(AnalysisFileError, match=r"empty\.yaml:1: the file is empty"):
        load_analyses(empty)


def test_settings_refuse_a_bad_analysis_file_at_start(tmp_path: Path) -> None:
    from bot.settings import SettingsError, load_settings

    path = tmp_path / "analyses.yaml"
    path.write_text(BAD)
    with pytest.raises(SettingsError, match=rf"ROLLOUT_ANALYSIS_FILE: .*\n.*{path}:4: "):
        load_settings(rollout_analysis_file=str(path))
    with pytest.raises(SettingsError, match="PROMETHEUS_URL is the server's base URL"):
        load_settings(prometheus_url="prometheus:9090")
    assert load_settings(prometheus_url="http://127.0.0.1:9090").prometheus_url


def _with_checks(path: Path, count: int) -> Path:
    checks = "".join(f"      - name: c{i}\n        query: 'x{{job=\"$target\"}}'\n"
                     "        pass_if: {at_most: 1}\n" for i in range(count))
    path.write_text("default: a\nanalyses:\n  a:\n    requests: 'r{job=\"$target\"}'\n"
                    f"    checks:\n{checks}")
    return path


def test_an_analysis_of_more_checks_than_the_limit_is_refused(tmp_path: Path) -> None:
    """Each check is two queries a run for every rollout, and a line on the card and in
    `status`: a file of hundreds ran them all, and `status` outgrew a Slack message."""
    many = _with_checks(tmp_path / "many.yaml", MAX_CHECKS + 1)
    with pytest.raises(AnalysisFileError, match=rf"many\.yaml:6: analyses\.a\.checks: at most "
                                                rf"{MAX_CHECKS} checks an analysis, not 21"):
        load_analyses(many)
    enough = _with_checks(tmp_path / "enough.yaml", MAX_CHECKS)
    assert len(load_analyses(enough).analyses["a"].checks) == MAX_CHECKS


def test_a_rollouts_record_of_an_analysis_over_the_limit_still_loads(tmp_path: Path) -> None:
    """The bound is on what the file may say now: a rollout started with more checks (before
    there was a bound) keeps its analysis in its record, which must still be read back."""
    data = yaml.safe_load(_with_checks(tmp_path / "old.yaml", MAX_CHECKS + 1).read_text())
    spec = AnalysisSpec.model_validate(data["analyses"]["a"])
    assert len(AnalysisSpec.model_validate_json(spec.model_dump_json()).checks) == MAX_CHECKS + 1

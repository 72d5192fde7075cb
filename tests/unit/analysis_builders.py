"""Builders for the canary analysis unit tests: a small analysis and one run's results."""

from __future__ import annotations

from typing import Any

from rollout.domain.analysis import AnalysisSpec, QueryResult, Subject, SubjectKind

POOL = Subject(kind=SubjectKind.POOL, namespace="default", stable="llm-pool",
               canary="llm-pool-version-2", canary_share=0.1)


def spec(**overrides: Any) -> AnalysisSpec:
    data: dict[str, Any] = {
        "interval": "30s", "window": "5m", "warmup": "60s", "failure_limit": 1,
        "inconclusive_timeout": "10m", "min_samples": 50,
        "requests": 'sum(increase(req_total{job="$target"}[$window]))',
        "split": {"tolerance": 0.05, "min_requests": 200},
        "checks": [
            {"name": "error-rate", "query": 'err{job="$target"}', "pass_if": {"at_most": 0.02}},
            {"name": "ttft-p95", "query": 'ttft{job="$target"}',
             "pass_if": {"at_most_times_stable": 1.2}},
        ],
    }
    data.update(overrides)
    return AnalysisSpec.model_validate(data)


def v(value: float) -> QueryResult:
    return QueryResult.of(value)


def results(*, err: tuple[float, float] = (0.01, 0.01), ttft: tuple[float, float] = (1.0, 1.0),
            requests: tuple[float, float] = (100, 900)) -> dict[str, QueryResult]:
    """Canary first, stable second in each pair."""
    return {
        "error-rate/canary": v(err[0]), "error-rate/stable": v(err[1]),
        "ttft-p95/canary": v(ttft[0]), "ttft-p95/stable": v(ttft[1]),
        "requests/canary": v(requests[0]), "requests/stable": v(requests[1]),
    }

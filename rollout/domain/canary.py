"""What a rollout records of its canary analysis at start: the analysis' name, its rules as
they were then, and what the queries measure besides the two names.

The rules are kept with the rollout (as Argo snapshots a template into its run): editing the
analysis file later changes new rollouts, never the gates of one already under way.
"""

from __future__ import annotations

from datetime import datetime

from rollout.domain.analysis import (
    AnalysisSpec,
    Frozen,
    QueryResult,
    ResultKind,
    SubjectKind,
)


class AnalysisSetup(Frozen):
    """The analysis a rollout runs after each step."""

    name: str
    spec: AnalysisSpec
    kind: SubjectKind
    pool: str = ""  # an adapter rollout: the pool serving both adapters
    model: str = ""  # an adapter rollout: the model name clients ask for


class Unconfigured:
    """The analysis port of a bot without PROMETHEUS_URL: every query is unavailable, so a
    rollout that has an analysis waits and then pauses; it never passes unmeasured."""

    def query(self, promql: str, at: datetime) -> QueryResult:
        return QueryResult(kind=ResultKind.UNAVAILABLE,
                           reason="PROMETHEUS_URL is not configured on this bot")

"""What a gate found: an itemised, actionable answer, and the verdict it adds up to.

A finding says what is wrong and what to do about it; its outcome says whether the rollout
must be refused (nothing changes) or only wait (a step that would overload the canary).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Outcome(StrEnum):
    PROCEED = "proceed"
    WAIT = "wait"
    REFUSE = "refuse"


class Check(StrEnum):
    POOL = "pool"
    OBJECTIVES = "objectives"
    CAPACITY = "capacity"
    REWRITE = "rewrite"
    GITOPS = "gitops"
    ROLLBACK = "rollback"  # the stable pool can no longer take the traffic back


@dataclass(frozen=True, kw_only=True)
class Finding:
    check: Check
    problem: str
    remedy: str
    outcome: Outcome = Outcome.REFUSE

    def line(self) -> str:
        return f"{self.problem}. {self.remedy}"


@dataclass(frozen=True, kw_only=True)
class Verdict:
    findings: tuple[Finding, ...] = ()

    @property
    def outcome(self) -> Outcome:
        kinds = {f.outcome for f in self.findings}
        for kind in (Outcome.REFUSE, Outcome.WAIT):
            if kind in kinds:
                return kind
        return Outcome.PROCEED

    @property
    def ok(self) -> bool:
        return not self.findings

    def explain(self) -> str:
        """An itemised answer, one line per finding: what is wrong, then what to do."""
        return "\n".join(f"• [{f.check}] {f.line()}" for f in self.findings)



"""A person approving a plan while the scheduler is loaded: how long until its first step,
the step the person waits to see. The rollouts are started before the window (awaiting their
plan's approval, so that they add nothing to the load); during it one plan is approved every
`period` seconds, through the service of another replica (it announces the change, as a
Slack replica does), on a thread of its own. The first step's time is the audit's, written
by the scheduler, against the approval's. The approvals' own Kubernetes requests (the gates'
reads) are counted, to be left out of the scheduler's."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from kubernetes import client

from bench.probe import WindowProbe
from bench.wiring import service_for
from rollout.adapters.store import RedisStore
from rollout.domain.errors import RolloutError
from rollout.domain.models import Actor, AuditAction, AuditEvent
from rollout.service import Ref


class _CountedApi(client.ApiClient):
    """The official client, noting in `sent` when each request is sent."""

    def __init__(self, configuration: client.Configuration, sent: list[datetime]) -> None:
        super().__init__(configuration)
        self.sent = sent

    def call_api(self, *args: Any, **kwargs: Any) -> Any:
        self.sent.append(datetime.now(UTC))
        return super().call_api(*args, **kwargs)


class PlanProbe(WindowProbe):
    """`with PlanProbe(...) as probe:` approves the plans of `waiting` one by one until the
    block ends (or none is left); `probe.approved` are the rollouts it approved."""

    def __init__(self, api: client.ApiClient, store: RedisStore, prefix: str,
                 waiting: list[str], *, actor: Actor, period: float = 1.0) -> None:
        """`api`: whose configuration (the bot's identity) the approvals use."""
        super().__init__("plan probe")
        self._api = _CountedApi(api.configuration, self.sent)
        self._service = service_for(self._api, store, prefix)
        self._waiting = list(waiting)
        self._actor = actor
        self._period = period
        self.approved: list[str] = []

    def _closed(self) -> None:
        self._api.close()  # type: ignore[no-untyped-call]

    def _run(self) -> None:
        """One approval at once, then one every period (a window of N periods gets N)."""
        for rid in self._waiting:
            try:
                self._service.approve_plan(Ref(rollout_id=rid), actor=self._actor)
            except RolloutError:
                self.failures += 1
            else:
                self.approved.append(rid)
            if self._stop.wait(self._period):
                return


def first_step_after_approval(events: list[AuditEvent]) -> float | None:
    """Seconds from the plan's approval to the first step the scheduler applied, if both are
    in the audit."""
    approved = [e.at for e in events if e.action is AuditAction.PLAN_APPROVED]
    steps = sorted(e.at for e in events if e.action is AuditAction.STEP_APPLIED)
    if not approved or not steps:
        return None
    return (steps[0] - approved[0]).total_seconds()

"""The leader keeps its lease while the drift watch takes long: a pass over many targets on
a loaded cluster outlasted the lease, the replica then stopped firing (a tick on a lease its
own clock says may have lapsed never runs), and every rollout waited for the next sweep.

Over the in-memory service, with APScheduler running and a sweep every 50 ms: real time,
waited on by polling, never slept."""

from __future__ import annotations

import threading

from rollout.domain.models import Rollout
from rollout.domain.plan import build_plan
from rollout.domain.split import Observed
from rollout.scheduler import RolloutScheduler
from tests.support.polling import eventually
from tests.unit.builders import ALICE, BOB
from tests.unit.fakes import FakeTarget, FakeTraffic
from tests.unit.test_service import CANARY, REF, _world


class _StuckTraffic(FakeTraffic):
    """A cluster whose reads for the drift watch do not answer until told to."""

    def __init__(self, *targets: FakeTarget) -> None:
        super().__init__(*targets)
        self.answer = threading.Event()
        self.asked = threading.Event()

    def glance(self, rollout: Rollout) -> Observed:
        self.asked.set()
        self.answer.wait(timeout=30)
        return super().glance(rollout)


class _CountedLease:
    is_leader = True
    token = 1
    holder = "test"

    def __init__(self) -> None:
        self.renewals = 0

    def refresh(self) -> bool:
        self.renewals += 1
        return True

    def release(self) -> None:
        pass


def test_the_lease_is_renewed_while_the_drift_watch_waits_on_the_cluster() -> None:
    service, _store, target, _clock = _world()
    traffic = _StuckTraffic(target)
    service.traffic = traffic
    service.start(namespace="default", canary=CANARY, actor=ALICE, plan=build_plan([10, 100]))
    service.approve(REF, actor=BOB)
    lease = _CountedLease()
    scheduler = RolloutScheduler(service=service, lease=lease,  # type: ignore[arg-type]
                                 sweep_seconds=0.05)
    scheduler.start()
    try:
        eventually(traffic.asked.is_set, message="the drift watch to look at the target")
        renewed = lease.renewals
        eventually(lambda: lease.renewals >= renewed + 3,
                   message="the sweep to renew the lease while the watch waits")
    finally:
        traffic.answer.set()
        scheduler.stop()

"""The short soak in `make test`: about two minutes of faults on four routes, two serve
replicas and a scheduler, then the same checks as `make soak`. Its must-be-zero checks hold by
the bot's invariants, not by timing, so a seed that passes keeps passing."""

from __future__ import annotations

import pytest

from tests.soak.run import Options, soak
from tests.support.real_cluster import KubeWorld


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_short_soak_lands_every_step_once_and_loses_no_rollback(kube_world: KubeWorld) -> None:
    report = soak(Options(duration=100, seed=15, targets=4, replicas=2), kube_world)
    print("\n".join(report.lines()))
    assert sum(report.faults.values()) >= 10, "too few faults to call it a soak"
    assert report.activity["weight writes landed"] >= 10
    assert not report.failed, "\n".join(report.lines())

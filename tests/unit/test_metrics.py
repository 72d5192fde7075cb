"""The Prometheus text: per-app registry, counters from outcomes, phases read at scrape."""

from __future__ import annotations

from datetime import timedelta

from bot.metrics import Metrics
from rollout.domain import machine
from rollout.domain.clock import ManualClock
from rollout.domain.models import Rollout
from rollout.pacing import TickPacer
from rollout.service import Outcome
from tests.unit.builders import BOB, T0, started


def _text(metrics: Metrics) -> str:
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    return body.decode()


def test_counts_outcomes_requests_and_acks() -> None:
    r = started()
    decision = machine.approve(r, actor=BOB, now=T0 + timedelta(seconds=1))
    metrics = Metrics(rollouts=lambda: [decision.rollout, r])
    metrics.observe_outcome(Outcome(decision.rollout, decision.message, events=decision.events))
    rolled = machine.rollback(decision.rollout, actor=BOB, now=T0)
    metrics.observe_outcome(Outcome(rolled.rollout, rolled.message, events=rolled.events))
    metrics.request("command", "start")
    metrics.request("button", "approve")
    metrics.ack(0.04, status=200)
    metrics.slack_error("chat.update")
    metrics.kube_error()
    metrics.denial("approve")
    text = _text(metrics)
    for line in (
        "rollout_bot_steps_applied_total 1.0",
        "rollout_bot_approvals_total 1.0",
        "rollout_bot_rollbacks_total 1.0",
        'rollout_bot_slack_requests_total{action="start",kind="command"} 1.0',
        'rollout_bot_slack_requests_total{action="approve",kind="button"} 1.0',
        'rollout_bot_slack_ack_seconds_bucket{le="0.05",status="200"} 1.0',
        'rollout_bot_slack_api_errors_total{method="chat.update"} 1.0',
        "rollout_bot_kubernetes_errors_total 1.0",
        'rollout_bot_denials_total{action="approve"} 1.0',
        'rollout_bot_rollouts{phase="baking"} 1.0',
        'rollout_bot_rollouts{phase="awaiting_approval"} 1.0',
        'rollout_bot_rollouts{phase="completed"} 0.0',
        "rollout_bot_store_up 1.0",
    ):
        assert line in text, line


def test_each_app_has_its_own_registry() -> None:
    one, two = Metrics(), Metrics()
    one.kube_error()
    assert "rollout_bot_kubernetes_errors_total 1.0" in _text(one)
    assert "rollout_bot_kubernetes_errors_total 0.0" in _text(two)


def test_a_failed_cluster_write_counts_as_a_kubernetes_error() -> None:
    r = started()
    failed = machine.effect_failed(r, now=T0, reason="timeout", actor=BOB).rollout
    metrics = Metrics()
    metrics.observe_outcome(Outcome(failed, "Not applied", ok=False))
    assert "rollout_bot_kubernetes_errors_total 1.0" in _text(metrics)


def test_a_scrape_answers_when_the_store_does_not() -> None:
    def broken() -> list[Rollout]:
        raise ConnectionError("redis down")

    text = _text(Metrics(rollouts=broken))
    assert "rollout_bot_store_up 0.0" in text


def test_the_schedulers_hold_back_is_read_from_its_pacer_at_scrape_time() -> None:
    clock = ManualClock(T0)
    pacer = TickPacer(clock, ceiling=32)
    metrics = Metrics()
    metrics.watch_pacer(pacer)
    assert _hold_back(metrics) == {"tick_window": 32.0, "ticks_in_flight": 0.0, "held": 0.0,
                                   "throttles_total": 0.0, "people_in_flight": 0.0}
    pacer.enter(lambda: False)
    pacer.enter(lambda: False)
    pacer.throttled(2.0)
    pacer.person_began("key:1")
    assert _hold_back(metrics) == {"tick_window": 16.0, "ticks_in_flight": 1.0, "held": 1.0,
                                   "throttles_total": 1.0, "people_in_flight": 1.0}
    clock.advance(2.0)
    assert "rollout_bot_scheduler_held 0.0" in _text(metrics)
    assert "rollout_bot_scheduler_people_in_flight 0.0" in _text(metrics)  # its bound passed


def _hold_back(metrics: Metrics) -> dict[str, float]:
    """The scheduler's samples in the exposition, by name after `rollout_bot_scheduler_`."""
    prefix = "rollout_bot_scheduler_"
    samples = (line.split() for line in _text(metrics).splitlines()
               if line.startswith(prefix) and "_created " not in line)
    return {name.removeprefix(prefix): float(value) for name, value in samples}

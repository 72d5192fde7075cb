"""Dependency checks: cached briefly, reported as a gauge, a raising check counts as down."""

from __future__ import annotations

from bot.health import Dependencies
from bot.metrics import Metrics


class Ticks:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_checks_run_at_most_once_per_max_age() -> None:
    calls: list[str] = []
    ticks = Ticks()

    def redis() -> str | None:
        calls.append("redis")
        return "connection refused" if len(calls) > 1 else None

    deps = Dependencies({"redis": redis}, max_age=2.0, clock=ticks, spawn=lambda work: work())
    assert deps.status() == {"redis": None}
    ticks.now += 1.9
    assert deps.status() == {"redis": None} and len(calls) == 1
    ticks.now += 0.1
    assert deps.status() == {"redis": "connection refused"} and len(calls) == 2


def test_the_gauge_says_which_dependency_is_down() -> None:
    def broken() -> str | None:
        raise OSError("no route to host")

    deps = Dependencies({"redis": lambda: None, "kubernetes": broken},
                        spawn=lambda work: work())
    assert deps.status()["kubernetes"] == "no route to host"
    metrics = Metrics()
    metrics.registry.register(deps)
    text = metrics.render()[0].decode()
    assert 'rollout_bot_dependency_up{dependency="redis"} 1.0' in text
    assert 'rollout_bot_dependency_up{dependency="kubernetes"} 0.0' in text


def test_a_hanging_check_does_not_hold_the_answer() -> None:
    """/readyz answers from the last results while a slow check runs elsewhere."""
    pending: list[object] = []
    deps = Dependencies({"redis": lambda: None}, first_wait=0.0,
                        spawn=pending.append)  # the check has not run yet
    assert deps.status() == {"redis": "not checked yet"}
    assert len(pending) == 1
    deps.status()
    assert len(pending) == 1  # one refresh at a time


def test_after_close_no_check_starts() -> None:
    pending: list[object] = []
    deps = Dependencies({"redis": lambda: None}, first_wait=0.0, spawn=pending.append)
    deps.close(timeout=0.0)
    deps.status()
    assert pending == []

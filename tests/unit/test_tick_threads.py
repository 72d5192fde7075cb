"""ROLLOUT_TICK_THREADS: the leader's ticks in flight at once, as built from the settings
(the executor's threads, the pacer's ceiling, a Kubernetes connection for each); a value out
of range stops the process with a message naming it. Nothing is contacted here."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from apscheduler.executors.pool import ThreadPoolExecutor

from bot.bootstrap import Container, build, kube_connections
from bot.scheduling import build_scheduler
from bot.settings import SettingsError, load_settings
from handlers.workers import DEFAULT_WORKERS
from rollout.ahead_lane import AHEAD_THREADS
from rollout.scheduler import LEADER_JOBS, STEP_THREADS, RolloutScheduler
from tests.unit.test_kube_client import KUBECONFIG


@pytest.fixture
def kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG)
    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")  # never reached
    return path


@pytest.fixture
def built(kubeconfig: Path) -> Iterator[tuple[Container, RolloutScheduler]]:
    container = build(load_settings())
    try:
        yield container, build_scheduler(container)
    finally:
        container.close()


def _tick_threads(scheduler: RolloutScheduler) -> int:
    executor = scheduler.scheduler._lookup_executor("default")
    assert isinstance(executor, ThreadPoolExecutor)
    return int(executor._pool._max_workers)


def test_by_default_the_scheduler_runs_the_measured_number_of_ticks_at_once(
        built: tuple[Container, RolloutScheduler]) -> None:
    container, scheduler = built
    assert container.settings.rollout_tick_threads == STEP_THREADS == 32
    assert _tick_threads(scheduler) == scheduler.pacer.ceiling == STEP_THREADS


@pytest.mark.parametrize("threads", [1, 8, 256])
def test_the_setting_sizes_the_ticks_the_pacer_and_the_connections(
        kubeconfig: Path, monkeypatch: pytest.MonkeyPatch, threads: int) -> None:
    monkeypatch.setenv("ROLLOUT_TICK_THREADS", str(threads))
    container = build(load_settings())
    try:
        scheduler = build_scheduler(container)
        assert _tick_threads(scheduler) == scheduler.pacer.ceiling == threads
        # a connection for each thread that may call the API at once, the ticks' among them
        pool = container.kube_api.configuration.connection_pool_maxsize
        assert pool == kube_connections(threads)
        assert pool == threads + DEFAULT_WORKERS + LEADER_JOBS + AHEAD_THREADS + 1 == threads + 16
    finally:
        container.close()


@pytest.mark.parametrize("value", ["0", "-4", "257", "many", "4.5"])
def test_a_tick_thread_count_out_of_range_is_named(monkeypatch: pytest.MonkeyPatch,
                                                   value: str) -> None:
    monkeypatch.setenv("ROLLOUT_TICK_THREADS", value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith("invalid configuration: ROLLOUT_TICK_THREADS: ")
    assert "\n" not in message

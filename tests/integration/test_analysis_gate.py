"""The bot gates its steps on canary analysis, end to end: the rollout service and its
scheduler over Redis and the real API server, the sandbox's simulated pools taking load as
the route's weights say (read from that API server), and a real Prometheus scraping them.

Timings are shortened (a 1s scrape, a run every second, a few seconds of window and bake);
the queries are the shipped default analysis'.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from handlers.cards import render_card
from rollout.adapters.analysis_file import load_default
from rollout.adapters.leadership import LeaderLease
from rollout.adapters.prometheus import PrometheusAnalysis
from rollout.domain.analysis import AnalysisFile
from rollout.domain.clock import SystemClock
from rollout.domain.models import PauseKind, Phase, Rollout
from rollout.domain.plan import build_plan
from rollout.scheduler import RolloutScheduler
from rollout.service import Ref
from sandbox.redis_server import RedisServer
from sandbox.serving import ServingWorld
from sandbox.serving.load import Traffic
from tests.integration.conftest import ALICE, BOB, World, make_world
from tests.support.kube_api import close_api
from tests.support.polling import eventually
from tests.support.real_cluster import RealCluster
from tests.support.serving import scraped

STABLE, CANARY = "llm-pool", "llm-pool-version-2"
V1, V2 = "small-segment-lora-v1", "small-segment-lora-v2"
INTERVAL, SWEEP, SCRAPE = 1.0, 0.5, 1.0


def quick_analyses(**overrides: Any) -> AnalysisFile:
    """The shipped analyses on a test clock: a run every second over a few seconds."""
    shipped = load_default()
    spec = shipped.analyses[shipped.default].model_copy(update={
        "interval": timedelta(seconds=INTERVAL), "window": timedelta(seconds=8),
        "warmup": timedelta(seconds=2), "failure_limit": 0,
        "inconclusive_timeout": timedelta(seconds=6), **overrides})
    return AnalysisFile(default="quick", analyses={"quick": spec})


@pytest.fixture
def serving(cluster: RealCluster) -> Iterator[ServingWorld]:
    world = ServingWorld(kube_url=cluster.url, kube_token=cluster.world.bot_token, seed=7,
                         traffic=Traffic(route_rate=200, rewrite_rate=150))
    try:
        world.start()
        scraped(world)
        yield world
    finally:
        world.stop()


@pytest.fixture
def bot(cluster: RealCluster, redis_server: RedisServer,
        serving: ServingWorld) -> Iterator[tuple[World, RolloutScheduler]]:
    w = make_world(cluster, redis_server.url)
    assert serving.prometheus is not None
    w.service.clock = SystemClock()
    w.service.options.analyses = quick_analyses()
    w.service.options.analysis = PrometheusAnalysis(serving.prometheus.url, timeout=2.0)
    lease = LeaderLease(w.store.client, key=w.store.key("leader"), holder="a", ttl_seconds=5)
    scheduler = RolloutScheduler(service=w.service, lease=lease, sweep_seconds=SWEEP)
    w.service.options.listeners.append(scheduler.on_change)
    scheduler.start()
    try:
        yield w, scheduler
    finally:
        scheduler.stop()
        w.store.client.close()
        close_api(w.api)


def _get(w: World, canary: str = CANARY) -> Rollout:
    return w.service.get(Ref(canary=canary))


def _events(w: World, canary: str = CANARY) -> list[str]:
    return [e.action for e in w.service.history(Ref(canary=canary))]


def _until(w: World, check: Any, *, timeout: float = 60, canary: str = CANARY) -> Rollout:
    def look() -> Rollout | None:
        r = _get(w, canary)
        return r if check(r) else None

    return eventually(look, timeout=timeout, step=0.2,
                      message=f"the rollout of {canary}: {_events(w, canary)}")


def test_a_healthy_canary_passes_every_bake_and_completes(
        bot: tuple[World, RolloutScheduler]) -> None:
    w, _ = bot
    w.service.start(namespace="default", canary=CANARY, actor=ALICE,
                    plan=build_plan([10, 50, 100], interval_seconds=4, auto=True))
    w.service.approve_plan(Ref(canary=CANARY), actor=BOB)
    r = _until(w, lambda r: not r.active, timeout=90)
    assert r.phase is Phase.COMPLETED, _events(w)
    history = w.service.history(Ref(canary=CANARY))
    passed = [e.step for e in history if e.action == "analysis_passed"]
    applied = [e.step for e in history if e.action == "step_applied"]
    assert passed == [0, 1] and applied == [0, 1, 2]
    # each step-up came after its step's analysis passed
    order = [(e.action, e.step) for e in history if e.action in ("analysis_passed",
                                                                 "step_applied")]
    assert order == [("step_applied", 0), ("analysis_passed", 0), ("step_applied", 1),
                     ("analysis_passed", 1), ("step_applied", 2)]
    assert w.weights() == {STABLE: 0, CANARY: 100}


# A canary failing half its requests also aborts them in the simulated vLLM metrics, and a
# slower first token makes the whole request slower (e2e includes it). A run's queries share
# one instant, but which check crosses its threshold first depends on how much of the window
# the worse requests already fill, so the run that sees it may fail on either check, and both
# are the right reason.
@pytest.mark.parametrize(("knob", "checks"), [({"error_rate": 0.5}, ("error-rate", "abort-rate")),
                                              ({"ttft": 1.5}, ("ttft-p95", "e2e-p95"))])
def test_a_canary_that_gets_worse_in_step_2_is_rolled_back(
        bot: tuple[World, RolloutScheduler], serving: ServingWorld, knob: dict[str, float],
        checks: tuple[str, ...]) -> None:
    w, _ = bot
    ref = Ref(canary=CANARY)
    w.service.start(namespace="default", canary=CANARY, actor=ALICE,
                    plan=build_plan([10, 50, 100], interval_seconds=3))
    w.service.approve(ref, actor=BOB)
    _until(w, lambda r: r.phase is Phase.AWAITING_APPROVAL)  # step 1 passed and baked
    w.service.approve(ref, actor=BOB)
    _until(w, lambda r: r.step == 1 and r.step_analysis is not None
           and r.step_analysis.step == 1 and r.step_analysis.latest is not None)
    serving.knobs.set(CANARY, knob)
    worse_at = time.monotonic()
    r = _until(w, lambda r: r.phase is Phase.ROLLED_BACK, timeout=30)
    took = time.monotonic() - worse_at
    # one analysis interval plus one sweep, and the scrapes it takes to see a new series
    assert took < INTERVAL + SWEEP + 2 * SCRAPE + 2.5, took
    assert w.weights() == {STABLE: 100, CANARY: 0}
    failed = [e for e in w.service.history(ref) if e.action == "analysis_failed"]
    assert len(failed) == 1
    named = [c for c in checks if f"check {c} failed" in failed[0].detail]
    assert len(named) == 1, failed[0].detail
    check = named[0]
    assert "threshold" in failed[0].detail and failed[0].step == 1
    card = str(render_card(r, now=r.updated_at).blocks)
    assert f":x: `{check}` canary " in card and "stable " in card and "threshold" in card


def test_prometheus_stopped_makes_the_step_wait_then_pause_never_pass(
        bot: tuple[World, RolloutScheduler], serving: ServingWorld) -> None:
    w, _ = bot
    assert serving.prometheus is not None
    serving.prometheus.kill()
    w.service.start(namespace="default", canary=CANARY, actor=ALICE,
                    plan=build_plan([10, 50, 100], interval_seconds=2))
    w.service.approve(Ref(canary=CANARY), actor=BOB)
    waiting = _until(w, lambda r: r.step_analysis is not None
                     and r.step_analysis.inconclusive_since is not None)
    assert waiting.phase is Phase.BAKING
    r = _until(w, lambda r: r.phase is Phase.PAUSED, timeout=30)
    assert r.pause is not None and r.pause.kind is PauseKind.ANALYSIS
    assert "inconclusive for" in r.pause.reason and "unreachable" in r.pause.reason
    events = _events(w)
    assert "analysis_passed" not in events and "approval_requested" not in events
    assert "analysis_awaited" in events  # the bake ended meanwhile: no approval request
    assert w.weights() == {STABLE: 90, CANARY: 10}


def test_a_gateway_that_ignores_the_weights_pauses_by_split_verification(
        bot: tuple[World, RolloutScheduler], serving: ServingWorld) -> None:
    w, _ = bot
    serving.knobs.ignore_weights = True
    w.service.start(namespace="default", canary=CANARY, actor=ALICE,
                    plan=build_plan([10, 50, 100], interval_seconds=30))
    w.service.approve(Ref(canary=CANARY), actor=BOB)
    r = _until(w, lambda r: r.phase is Phase.PAUSED, timeout=30)
    assert r.pause is not None and r.pause.kind is PauseKind.ANALYSIS
    assert "split mismatch" in r.pause.reason and "the route says 10.0%" in r.pause.reason
    assert r.step_analysis is not None and r.step_analysis.mismatch is not None
    observed = r.step_analysis.mismatch.observed
    assert observed is not None and observed > 0.25  # evenly: about half
    assert w.weights() == {STABLE: 90, CANARY: 10}  # left for a person to look


def test_an_adapter_rollout_compares_the_adapters_by_target_model(
        bot: tuple[World, RolloutScheduler], serving: ServingWorld) -> None:
    w, _ = bot
    ref = Ref(canary=V2)
    started = w.service.start(namespace="default", canary=V2, actor=ALICE,
                              rewrite="small-segment-lora",
                              plan=build_plan([25, 50, 100], interval_seconds=60))
    assert started.rollout is not None and started.rollout.analysis is not None
    assert started.rollout.analysis.pool == STABLE
    w.service.approve(ref, actor=BOB)
    healthy = _until(w, lambda r: "analysis_passed" in _events(w, V2), canary=V2)
    assert healthy.step_analysis is not None and healthy.step_analysis.latest is not None
    assert {c.name for c in healthy.step_analysis.latest.checks} == {
        "adapter-error-rate", "adapter-ttft-p95", "adapter-e2e-p95"}
    serving.knobs.set(V2, {"ttft": 1.5})  # the new adapter only; the pool stays healthy
    r = _until(w, lambda r: r.phase is Phase.ROLLED_BACK, canary=V2, timeout=30)
    failed = [e for e in w.service.history(ref) if e.action == "analysis_failed"]
    # slower first tokens make slower whole requests too: either latency check is the reason
    [name] = [n for n in ("adapter-ttft-p95", "adapter-e2e-p95")
              if f"check {n} failed" in failed[0].detail]
    assert len(failed) == 1
    assert r.step_analysis is not None and r.step_analysis.last_failure is not None
    check = next(c for c in r.step_analysis.last_failure.checks if c.name == name)
    assert check.canary is not None and check.stable is not None
    assert check.canary > 1.3 * check.stable  # the new adapter only; the old one stays fast


def test_a_rollout_recovered_after_redis_was_lost_keeps_its_analysis(
        bot: tuple[World, RolloutScheduler]) -> None:
    w, _ = bot
    ref = Ref(canary=CANARY)
    w.service.start(namespace="default", canary=CANARY, actor=ALICE,
                    plan=build_plan([10, 50, 100], interval_seconds=2))
    w.service.approve(ref, actor=BOB)
    w.store.client.flushdb()  # the state is gone; the route's record is not
    recovered = w.service.recover(namespace="default", canary=CANARY, actor=BOB).rollout
    assert recovered is not None and recovered.phase is Phase.PAUSED
    assert recovered.analysis is not None and recovered.analysis.name == "quick"
    w.service.resume(ref, actor=BOB)
    r = _until(w, lambda r: r.phase is Phase.AWAITING_APPROVAL)
    assert "analysis_passed" in _events(w) and r.step == 0

"""Canary analysis against a real Prometheus scraping the sandbox's simulated pools.

The load generator follows the weights the emulated cluster holds, the shipped default
analysis is asked through the Prometheus adapter, and the domain decides. Timings are
shortened (a 1s scrape, a few seconds of window); the queries are the shipped ones.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import urllib3

from rollout.adapters.analysis_file import load_default
from rollout.adapters.prometheus import PrometheusAnalysis
from rollout.domain.analysis import (
    AnalysisSpec,
    ResultKind,
    Subject,
    SubjectKind,
    ask,
    queries_for,
)
from rollout.domain.verdict import Action, Outcome, StepAnalysis, Verdict, advance, judge
from sandbox.kube import KubeEmulator
from sandbox.prometheus_server import PrometheusServer
from sandbox.serving import ServingWorld
from sandbox.serving.load import Traffic
from tests.support.polling import eventually
from tests.support.serving import scraped

ROUTE = ("gateway.networking.k8s.io", "v1", "httproutes", "default", "routes-to-llm")
REWRITE = ("llm-d.ai", "v1alpha2", "inferencemodelrewrites", "default", "small-segment-lora")
STABLE, CANARY = "llm-pool", "llm-pool-version-2"
V1, V2 = "small-segment-lora-v1", "small-segment-lora-v2"


@pytest.fixture(scope="module")
def world() -> Iterator[tuple[KubeEmulator, ServingWorld]]:
    kube = KubeEmulator(seed="demo")
    kube.start()
    serving = ServingWorld(kube_url=kube.url, seed=11,
                           traffic=Traffic(route_rate=200, rewrite_rate=120))
    try:
        serving.start()
        scraped(serving)
        yield kube, serving
    finally:
        serving.stop()
        kube.stop()


@pytest.fixture
def kube(world: tuple[KubeEmulator, ServingWorld]) -> KubeEmulator:
    return world[0]


@pytest.fixture
def serving(world: tuple[KubeEmulator, ServingWorld]) -> Iterator[ServingWorld]:
    world[1].knobs.reset()
    yield world[1]
    world[1].knobs.reset()


@pytest.fixture
def prometheus(serving: ServingWorld) -> PrometheusAnalysis:
    assert serving.prometheus is not None
    return PrometheusAnalysis(serving.prometheus.url, timeout=2.0)


def quick(**overrides: Any) -> AnalysisSpec:
    """The shipped analysis, on a sandbox clock: runs every second over a few seconds."""
    _, spec = load_default().select(None, SubjectKind.POOL)
    update: dict[str, Any] = {"interval": timedelta(seconds=1), "window": timedelta(seconds=8),
                              "warmup": timedelta(seconds=3), "min_samples": 50,
                              "failure_limit": 1}
    update.update(overrides)
    return spec.model_copy(update=update)


def set_route(kube: KubeEmulator, stable: int, canary: int) -> None:
    route = kube.get_object(*ROUTE)
    assert route is not None
    weights = {STABLE: stable, CANARY: canary}
    for ref in route["spec"]["rules"][0]["backendRefs"]:
        ref["weight"] = weights[ref["name"]]
    kube.put_object(route)


def set_rewrite(kube: KubeEmulator, v1: int, v2: int) -> None:
    rewrite = kube.get_object(*REWRITE)
    assert rewrite is not None
    rewrite["spec"]["rules"][0]["targets"] = [{"modelRewrite": V1, "weight": v1},
                                              {"modelRewrite": V2, "weight": v2}]
    kube.put_object(rewrite)


def pool_subject(share: float) -> Subject:
    return Subject(kind=SubjectKind.POOL, namespace="default", stable=STABLE, canary=CANARY,
                   canary_share=share)


def analyse_until(prometheus: PrometheusAnalysis, spec: AnalysisSpec, subject: Subject,
                  want: set[Outcome], *, timeout: float = 45) -> Verdict:
    """Run the analysis of a step that starts now, every interval, until its verdict is one
    of ``want``; the verdict is returned (its last one in the failure message)."""
    state = StepAnalysis(step=1, started_at=datetime.now(UTC))

    def once() -> Verdict | None:
        nonlocal state
        state, verdict = advance(spec, subject, state, prometheus, datetime.now(UTC))
        assert verdict.outcome in want, verdict.reason
        return verdict

    return eventually(once, timeout=timeout, step=0.5, message=f"a verdict in {want}")


def test_a_healthy_canary_passes(kube: KubeEmulator, serving: ServingWorld,
                                 prometheus: PrometheusAnalysis) -> None:
    set_route(kube, 90, 10)
    verdict = analyse_until(prometheus, quick(), pool_subject(0.10), {Outcome.PASSED})
    assert verdict.action is Action.PROCEED
    assert verdict.latest is not None
    checks = {c.name: c for c in verdict.latest.checks}
    assert set(checks) == {"error-rate", "ttft-p95", "itl-p95", "e2e-p95", "abort-rate",
                           "queue-waiting", "kv-cache-usage"}
    ttft = checks["ttft-p95"]
    assert ttft.canary is not None and ttft.stable is not None
    assert 0.1 < ttft.canary < 0.3 and 0.1 < ttft.stable < 0.3
    assert verdict.split is not None and verdict.split.observed is not None
    assert abs(verdict.split.observed - 0.10) < 0.05


def test_a_canary_with_errors_fails_with_its_values(kube: KubeEmulator, serving: ServingWorld,
                                                    prometheus: PrometheusAnalysis) -> None:
    set_route(kube, 75, 25)
    serving.knobs.set(CANARY, {"error_rate": 0.3})
    verdict = analyse_until(prometheus, quick(), pool_subject(0.25), {Outcome.FAILED})
    assert verdict.action is Action.ROLLBACK
    failing = verdict.failing
    assert failing is not None and failing.name == "error-rate"
    assert failing.canary is not None and 0.15 < failing.canary < 0.45
    assert failing.stable == 0 and failing.threshold == pytest.approx(0.01)
    assert "more than the limit of 1" in verdict.reason


def test_a_canary_with_slow_first_tokens_fails_on_ttft(
        kube: KubeEmulator, serving: ServingWorld, prometheus: PrometheusAnalysis) -> None:
    set_route(kube, 75, 25)
    serving.knobs.set(CANARY, {"ttft": 1.0})
    verdict = analyse_until(prometheus, quick(on_failure="pause"), pool_subject(0.25),
                            {Outcome.FAILED})
    assert verdict.action is Action.PAUSE
    failing = verdict.failing
    assert failing is not None and failing.name == "ttft-p95"
    assert failing.canary is not None and failing.stable is not None
    assert failing.canary > 0.75 and failing.stable < 0.3
    assert failing.threshold == pytest.approx(failing.stable * 1.2)


def test_prometheus_stopped_is_inconclusive_then_pauses(
        kube: KubeEmulator, serving: ServingWorld) -> None:
    own = PrometheusServer(serving.scrape_jobs())
    own.start()
    try:
        port = PrometheusAnalysis(own.url, timeout=1.0)
        assert port.query("vector(1)", datetime.now(UTC)).number == 1.0
        own.kill()
        result = port.query("vector(1)", datetime.now(UTC))
        assert result.kind is ResultKind.UNAVAILABLE and "unreachable" in result.reason
        spec = quick(inconclusive_timeout=timedelta(seconds=30))
        subject = pool_subject(0.10)
        start = datetime.now(UTC)
        state = StepAnalysis(step=1, started_at=start - spec.warmup)
        for seconds in (0, 10, 20, 30):
            at = start + timedelta(seconds=seconds)
            queries = queries_for(spec, subject, state.window(spec, at))
            state = state.record(spec, judge(spec, subject, ask(port, queries, at), at=at))
            verdict = state.verdict(spec, at)
            assert verdict.outcome is Outcome.INCONCLUSIVE
            assert verdict.action is (Action.PAUSE if seconds == 30 else Action.WAIT)
        assert "inconclusive for 30s (limit 30s)" in verdict.reason
        assert "unreachable" in verdict.reason
    finally:
        own.close()


def test_a_gateway_that_ignores_the_weights_is_caught_by_split_verification(
        kube: KubeEmulator, serving: ServingWorld, prometheus: PrometheusAnalysis) -> None:
    set_route(kube, 90, 10)
    serving.knobs.ignore_weights = True
    verdict = analyse_until(prometheus, quick(), pool_subject(0.10), {Outcome.SPLIT_MISMATCH})
    assert verdict.action is Action.PAUSE
    assert verdict.split is not None and verdict.split.observed is not None
    assert verdict.split.observed > 0.25 and verdict.split.expected == 0.10  # evenly: 50%
    assert "the route says 10.0%" in verdict.reason


def test_an_adapter_rollout_compares_the_adapters_by_target_model(
        kube: KubeEmulator, serving: ServingWorld, prometheus: PrometheusAnalysis) -> None:
    set_route(kube, 100, 0)
    set_rewrite(kube, 75, 25)
    subject = Subject(kind=SubjectKind.ADAPTER, namespace="default", stable=V1, canary=V2,
                      pool=STABLE, model="small-segment-lora", canary_share=0.25)
    spec = quick()
    queries = {q.key: q.promql for q in queries_for(spec, subject, timedelta(seconds=8))}
    assert f'target_model_name="{V2}"' in queries["adapter-ttft-p95/canary"]
    assert f'job="{STABLE}-epp"' in queries["adapter-ttft-p95/canary"]

    healthy = analyse_until(prometheus, spec, subject, {Outcome.PASSED})
    assert healthy.latest is not None
    assert {c.name for c in healthy.latest.checks} == {
        "adapter-error-rate", "adapter-ttft-p95", "adapter-e2e-p95"}

    serving.knobs.set(V2, {"ttft": 1.5})  # the new adapter only; the pool stays healthy
    verdict = analyse_until(prometheus, spec, subject, {Outcome.FAILED})
    failing = verdict.failing
    assert failing is not None and failing.name == "adapter-ttft-p95"
    assert failing.canary is not None and failing.stable is not None
    assert failing.canary > 1.0 and failing.stable < 0.4


def test_the_knobs_refuse_what_they_do_not_know(serving: ServingWorld) -> None:
    http = urllib3.PoolManager()
    bad = http.request("POST", f"{serving.url}/knobs/{CANARY}", body=b'{"colour": 1}')
    assert bad.status == 400 and "unknown knob(s) colour" in json.loads(bad.data)["error"]
    bad = http.request("POST", f"{serving.url}/knobs/{CANARY}", body=b'{"error_rate": 2}')
    assert bad.status == 400 and "fractions between 0 and 1" in json.loads(bad.data)["error"]
    assert serving.knobs.snapshot()["behaviours"] == {}  # nothing changed
    good = http.request("POST", f"{serving.url}/knobs/{CANARY}", body=b'{"ttft": 0.9}')
    assert good.status == 200 and serving.knobs.behaviour(CANARY).ttft == 0.9

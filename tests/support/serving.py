"""The sandbox's serving world for the tests that need its metrics in a real Prometheus."""

from __future__ import annotations

from datetime import UTC, datetime

from rollout.adapters.prometheus import PrometheusAnalysis
from sandbox.serving import ServingWorld
from tests.support.polling import eventually


def scraped(serving: ServingWorld, *, timeout: float = 30) -> PrometheusAnalysis:
    """Wait until the world's Prometheus has scraped every simulated target once; its port."""
    assert serving.prometheus is not None, "prometheus is not installed"
    port = PrometheusAnalysis(serving.prometheus.url)
    def scraped_every_target() -> bool:
        up = port.query("count(up == 1)", datetime.now(UTC)).number or 0
        return up >= 2 * len(serving.pools)

    eventually(scraped_every_target,
               timeout=timeout, step=0.5, message="Prometheus scraped every simulated target")
    return port

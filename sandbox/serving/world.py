"""The serving world, started and stopped together: simulated pools behind one HTTP server,
the load generator following the cluster's weights, and a real Prometheus scraping it all.

Prometheus sees each pool's model servers as job ``<pool>`` and its endpoint picker as job
``<pool>-epp``, both labelled with the namespace: the assumptions of the shipped analysis.
"""

from __future__ import annotations

import random

from sandbox.background_server import BackgroundServer
from sandbox.prometheus_server import PrometheusServer, ScrapeJob
from sandbox.serving.app import ServingApp
from sandbox.serving.knobs import Knobs
from sandbox.serving.load import LoadGenerator, Traffic
from sandbox.serving.metrics import PoolMetrics

POOLS = ("llm-pool", "llm-pool-version-2", "llm", "llm-new")


class ServingWorld:
    def __init__(self, *, kube_url: str, pools: tuple[str, ...] = POOLS,
                 namespace: str = "default", traffic: Traffic | None = None,
                 prometheus: bool = True, scrape_interval: str = "1s",
                 seed: int | None = None, kube_token: str | None = None) -> None:
        rng = random.Random(seed)
        self.namespace = namespace
        self.knobs = Knobs()
        self.pools = {p: PoolMetrics(p, rng=random.Random(rng.random())) for p in pools}
        self.load = LoadGenerator(kube_url=kube_url, pools=self.pools, knobs=self.knobs,
                                  traffic=traffic or Traffic(namespace=namespace),
                                  rng=random.Random(rng.random()), kube_token=kube_token)
        self.server = BackgroundServer(ServingApp(self.pools, self.knobs, self.load),
                                       ident="sandbox-serving", threads=4)
        self.prometheus = PrometheusServer(self.scrape_jobs(),
                                           scrape_interval=scrape_interval) \
            if prometheus else None

    @property
    def url(self) -> str:
        return self.server.url

    def scrape_jobs(self) -> list[ScrapeJob]:
        address = f"{self.server.host}:{self.server.port}"
        labels = {"namespace": self.namespace}
        jobs = []
        for pool in self.pools:
            jobs.append(ScrapeJob(job=pool, address=address, labels=labels,
                                  metrics_path=f"/pools/{pool}/vllm/metrics"))
            jobs.append(ScrapeJob(job=f"{pool}-epp", address=address, labels=labels,
                                  metrics_path=f"/pools/{pool}/epp/metrics"))
        return jobs

    def start(self) -> ServingWorld:
        self.server.start()
        self.load.start()
        if self.prometheus is not None:
            self.prometheus.start()
        return self

    def stop(self) -> None:
        self.load.stop()
        if self.prometheus is not None:
            self.prometheus.close()
        self.server.stop()

    def __enter__(self) -> ServingWorld:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

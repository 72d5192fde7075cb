"""A load generator that spreads requests the way the gateway would right now.

It reads the HTTPRoutes and InferenceModelRewrites from the Kubernetes API (the emulator's,
over plain HTTP) a few times a second, so the share each pool or adapter receives follows
the bot's writes within a fraction of a second. As in a real gateway, every request first
takes a route's backendRefs weights to a pool; a request for a rewritten model that lands on
the rewrite's pool is then spread over its targets' weights by that pool's endpoint picker
(on another pool it is served under the name asked for). A rewrite whose pool no route
references receives its requests directly. With the gateway's ``ignore_weights`` knob on,
both choices are even instead: a gateway that ignores the weights, for split verification.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import urllib3

from sandbox.serving.knobs import Knobs
from sandbox.serving.metrics import BASE_MODEL, PoolMetrics

Weighted = tuple[tuple[str, int], ...]
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Traffic:
    """What is generated: requests per second through each route and for each rewrite."""

    namespace: str = "default"
    routes: tuple[str, ...] = ("routes-to-llm", "llm-route")
    rewrites: tuple[str, ...] = ("small-segment-lora",)
    route_rate: float = 40.0
    rewrite_rate: float = 20.0


@dataclass(frozen=True)
class Split:
    """Where requests go, as last read from the API."""

    routes: dict[str, Weighted]
    rewrites: dict[str, tuple[str, str, Weighted]]  # name -> (pool, model, targets)


class KubeReader:
    """GETs routes and rewrites; a failed read keeps the last good answer."""

    def __init__(self, base_url: str, traffic: Traffic, *, token: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.traffic = traffic
        # a real API server wants an identity; the emulator takes anyone
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = urllib3.PoolManager(maxsize=2, headers=headers)
        self._last = Split(routes={}, rewrites={})

    def _get(self, path: str) -> dict[str, Any] | None:
        try:
            response = self._http.request("GET", self.base_url + path, retries=False,
                                          timeout=urllib3.Timeout(total=2.0))
        except urllib3.exceptions.HTTPError:
            return None
        if response.status != 200:
            return None
        try:
            body = json.loads(response.data)
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    def read(self) -> Split:
        ns = self.traffic.namespace
        routes = dict(self._last.routes)
        for name in self.traffic.routes:
            obj = self._get(f"/apis/gateway.networking.k8s.io/v1/namespaces/{ns}/httproutes/"
                            f"{name}")
            if obj is not None:
                routes[name] = _route_weights(obj)
        rewrites = dict(self._last.rewrites)
        for name in self.traffic.rewrites:
            obj = self._get(f"/apis/llm-d.ai/v1alpha2/namespaces/{ns}/inferencemodelrewrites/"
                            f"{name}")
            if obj is not None:
                found = _rewrite_weights(obj)
                if found is not None:
                    rewrites[name] = found
        self._last = Split(routes=routes, rewrites=rewrites)
        return self._last

    def close(self) -> None:
        self._http.clear()


def _route_weights(route: dict[str, Any]) -> Weighted:
    rules = route.get("spec", {}).get("rules") or [{}]
    refs = rules[0].get("backendRefs") or []
    return tuple((str(ref.get("name")), int(ref.get("weight", 1))) for ref in refs
                 if ref.get("kind", "Service") == "InferencePool")


def _rewrite_weights(rewrite: dict[str, Any]) -> tuple[str, str, Weighted] | None:
    spec = rewrite.get("spec", {})
    rules = spec.get("rules") or []
    if not rules:
        return None
    matches = rules[0].get("matches") or [{}]
    model = str(matches[0].get("model", {}).get("value", ""))
    targets = tuple((str(t.get("modelRewrite")), int(t.get("weight", 1)))
                    for t in rules[0].get("targets") or [])
    return str(spec.get("poolRef", {}).get("name", "")), model, targets


class LoadGenerator:
    """Generates ``Traffic`` against the pools' simulated servers in a background thread."""

    def __init__(self, *, kube_url: str, pools: dict[str, PoolMetrics], knobs: Knobs,
                 traffic: Traffic | None = None, tick: float = 0.05, refresh: float = 0.25,
                 rng: random.Random | None = None, kube_token: str | None = None) -> None:
        self.traffic = traffic or Traffic()
        self.reader = KubeReader(kube_url, self.traffic, token=kube_token)
        self.pools = pools
        self.knobs = knobs
        self.tick = tick
        self.refresh = refresh  # how often the weights are read again
        self._rng = rng or random.Random()
        self._owed = 0.0
        self._owed_rewrite = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._served: Counter[tuple[str, str]] = Counter()  # (pool, target model) -> requests
        self._served_lock = threading.Lock()

    def _pick(self, weighted: Weighted) -> str | None:
        if not weighted:
            return None
        if self.knobs.ignore_weights:
            return self._rng.choice([name for name, _ in weighted])
        weights = [max(w, 0) for _, w in weighted]
        if sum(weights) == 0:
            return None
        return self._rng.choices([name for name, _ in weighted], weights=weights)[0]

    def _request(self, pool: str, model: str, target: str, adapter: str | None) -> None:
        metrics = self.pools.get(pool)
        if metrics is None:
            return
        metrics.serve(self.knobs.behaviour(pool, adapter), model=model, target=target)
        with self._served_lock:
            self._served[(pool, target)] += 1

    @property
    def served(self) -> dict[tuple[str, str], int]:
        """Requests served so far per (pool, target model): a copy, safe from any thread."""
        with self._served_lock:
            return dict(self._served)

    def generate(self, split: Split, seconds: float) -> None:
        """Send ``seconds`` worth of requests through ``split``."""
        self._owed += self.traffic.route_rate * seconds
        self._owed_rewrite += self.traffic.rewrite_rate * seconds
        whole, whole_rw = int(self._owed), int(self._owed_rewrite)
        self._owed -= whole
        self._owed_rewrite -= whole_rw
        for weighted in split.routes.values():
            for _ in range(whole):
                pool = self._pick(weighted)
                if pool is not None:
                    self._request(pool, BASE_MODEL, BASE_MODEL, None)
        for home, model, targets in split.rewrites.values():
            route = next((w for w in split.routes.values() if home in dict(w)), None)
            for _ in range(whole_rw):
                pool = self._pick(route) if route is not None else home
                if pool is None:
                    continue
                if pool != home:  # no rewrite on this pool's picker
                    self._request(pool, model, model, None)
                    continue
                target = self._pick(targets)
                if target is not None:
                    self._request(pool, model, target, target)

    def _run(self) -> None:
        last = read_at = time.monotonic()
        split = self.reader.read()
        while not self._stop.wait(self.tick):
            now = time.monotonic()
            try:
                if now - read_at >= self.refresh:
                    split, read_at = self.reader.read(), now
                self.generate(split, now - last)
            except Exception:  # a malformed object must not end the demo's traffic
                _log.exception("load generator: skipped a tick")
            last = now

    def start(self) -> LoadGenerator:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="sandbox-load",
                                            daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.reader.close()

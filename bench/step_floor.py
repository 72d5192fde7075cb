"""The scale benchmark's floor of throughput: what the cluster takes from one process that
does only a step's two requests, with the official client under the bot's identity and
connection pool, on as many threads as the scheduler ticks on. No Redis, no gates, no
scheduling: the most steps a second any scheduler could make on this machine and world."""

from __future__ import annotations

import resource
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from kubernetes import client

from bot.kube import api_client
from rollout.scheduler import STEP_THREADS

ROUTES = ("gateway.networking.k8s.io", "v1")
JSON_PATCH = "application/json-patch+json"


@dataclass(frozen=True)
class Throughput:
    pairs: int
    seconds: float
    cpu_seconds: float  # this process's, over the window

    @property
    def per_second(self) -> float:
        return self.pairs / self.seconds

    @property
    def cpu_per_pair(self) -> float:
        return self.cpu_seconds / max(self.pairs, 1)


def move_weights(objects: client.CustomObjectsApi, namespace: str, name: str,
                 canary: int) -> None:
    """A step's two requests: a GET of the route, then a JSON patch setting its weights to
    100 - `canary` / `canary`, guarded by the resourceVersion it read (as the bot's write is)."""
    route = cast(dict[str, Any], objects.get_namespaced_custom_object(
        *ROUTES, namespace, "httproutes", name))
    ops: list[dict[str, Any]] = [{"op": "test", "path": "/metadata/resourceVersion",
                                  "value": route["metadata"]["resourceVersion"]}]
    ops += [{"op": "replace", "path": f"/spec/rules/0/backendRefs/{i}/weight",
             "value": weight} for i, weight in enumerate((100 - canary, canary))]
    objects.patch_namespaced_custom_object(*ROUTES, namespace, "httproutes", name, ops,
                                           _content_type=JSON_PATCH)


def bare_steps(kubeconfig: Path, routes: list[tuple[str, str]], *, seconds: float,
               threads: int = STEP_THREADS) -> Throughput:
    """Each thread takes its share of the routes (namespace, name) in turn: a GET, then a
    JSON patch moving the weights between 100/0 and 90/10, guarded by the resourceVersion it
    read (as the bot's write is), until `seconds` pass. Every route is left at 100/0."""
    api = api_client(str(kubeconfig), connections=threads + 4)
    objects = client.CustomObjectsApi(api)
    deadline = time.monotonic() + seconds
    counted = [0]
    lock = threading.Lock()

    def move(namespace: str, name: str, canary: int) -> None:
        move_weights(objects, namespace, name, canary)

    def work(share: list[tuple[str, str]]) -> set[tuple[str, str]]:
        """The routes this thread left at 90/10."""
        moved: set[tuple[str, str]] = set()
        turn = 0
        while share and time.monotonic() < deadline:
            route = share[turn % len(share)]
            move(*route, 0 if route in moved else 10)
            moved ^= {route}
            turn += 1
            with lock:
                counted[0] += 1
        return moved

    shares = [routes[k::threads] for k in range(threads)]
    try:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            before = resource.getrusage(resource.RUSAGE_SELF)
            started = time.monotonic()
            left = [route for moved in pool.map(work, shares) for route in moved]
            elapsed = time.monotonic() - started
            after = resource.getrusage(resource.RUSAGE_SELF)
            list(pool.map(lambda route: move(route[0], route[1], 0), left))  # not measured
    finally:
        api.close()  # type: ignore[no-untyped-call]
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return Throughput(pairs=counted[0], seconds=elapsed, cpu_seconds=cpu)

"""A small gateway controller for the real API server: it writes route statuses, late.

A real Inference Gateway answers a route change after the PATCH has returned, by writing
`status.parents[].conditions` (`Accepted`, `ResolvedRefs`, with `observedGeneration`). This one
watches HTTPRoutes and, `delay` seconds after each change, writes those conditions for the
generation it saw: `ResolvedRefs=False, BackendNotFound` when a referenced InferencePool does
not exist.
"""

from __future__ import annotations

import contextlib
import threading
import time
from datetime import UTC, datetime
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

CONTROLLER_NAME = "example.com/test-gateway-controller"
GATEWAY_GROUP = "gateway.networking.k8s.io"
Obj = dict[str, Any]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _condition(ctype: str, ok: bool, reason: str, message: str, generation: int) -> Obj:
    return {"type": ctype, "status": "True" if ok else "False", "reason": reason,
            "message": message, "observedGeneration": generation, "lastTransitionTime": _now()}


class LateGatewayController:
    """Watches HTTPRoutes with admin credentials and writes their status (see the module)."""

    def __init__(self, api: client.ApiClient, *, delay: float = 0.05) -> None:
        self.objects = client.CustomObjectsApi(api)
        self.delay = delay
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="test-gateway-controller",
                                        daemon=True)
        self._watch: watch.Watch | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._watch is not None:
            self._watch.stop()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        resource_version = ""
        while not self._stop.is_set():
            self._watch = watch.Watch()
            try:
                for event in self._watch.stream(
                        self.objects.list_cluster_custom_object, GATEWAY_GROUP, "v1",
                        "httproutes", resource_version=resource_version, timeout_seconds=30):
                    if self._stop.is_set():
                        return
                    route = event["object"]
                    resource_version = route["metadata"]["resourceVersion"]
                    if event["type"] in ("ADDED", "MODIFIED") and self._stale(route):
                        self._later(route)
            except ApiException as exc:
                if exc.status == 410:
                    resource_version = ""
                else:
                    self._stop.wait(0.5)
            except (HTTPError, OSError, ValueError):
                self._stop.wait(0.5)

    @staticmethod
    def _stale(route: Obj) -> bool:
        generation = route["metadata"].get("generation", 0)
        for parent in (route.get("status") or {}).get("parents") or []:
            if parent.get("controllerName") != CONTROLLER_NAME:
                continue
            seen = {c.get("observedGeneration") for c in parent.get("conditions") or []}
            return seen != {generation}
        return True

    def _later(self, route: Obj) -> None:
        meta = route["metadata"]
        timer = threading.Timer(self.delay, self._write,
                                args=(meta["namespace"], meta["name"], meta["generation"]))
        timer.daemon = True
        timer.start()

    def _write(self, namespace: str, name: str, generation: int) -> None:
        with contextlib.suppress(ApiException, HTTPError, OSError):
            route = self.objects.get_namespaced_custom_object(
                GATEWAY_GROUP, "v1", namespace, "httproutes", name)
            if route["metadata"]["generation"] != generation or not self._stale(route):
                return  # a later event writes the newer generation
            missing = self._missing_pools(namespace, route)
            resolved = _condition(
                "ResolvedRefs", not missing,
                "BackendNotFound" if missing else "ResolvedRefs",
                f"InferencePool {', '.join(missing)} not found" if missing
                else "all references resolved", generation)
            accepted = _condition("Accepted", True, "Accepted", "accepted", generation)
            parents = [{
                "parentRef": {"group": GATEWAY_GROUP, "kind": "Gateway",
                              "name": ref.get("name", ""),
                              **({"namespace": ref["namespace"]} if "namespace" in ref else {})},
                "controllerName": CONTROLLER_NAME,
                "conditions": [accepted, resolved],
            } for ref in route["spec"].get("parentRefs") or []]
            self.objects.patch_namespaced_custom_object_status(
                GATEWAY_GROUP, "v1", namespace, "httproutes", name,
                {"metadata": {"resourceVersion": route["metadata"]["resourceVersion"]},
                 "status": {"parents": parents}})

    def _missing_pools(self, namespace: str, route: Obj) -> list[str]:
        missing = []
        for rule in route["spec"].get("rules") or []:
            for ref in rule.get("backendRefs") or []:
                if ref.get("kind") != "InferencePool":
                    continue
                group = ref.get("group", "")
                version = "v1" if group == "inference.networking.k8s.io" else "v1alpha2"
                try:
                    self.objects.get_namespaced_custom_object(
                        group, version, ref.get("namespace") or namespace, "inferencepools",
                        ref["name"])
                except ApiException as exc:
                    if exc.status != 404:
                        raise
                    missing.append(ref["name"])
        return missing


def wait_until_settled(objects: client.CustomObjectsApi, namespace: str, name: str,
                       timeout: float = 10.0) -> None:
    """Until the route's status is about its current generation."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        route = objects.get_namespaced_custom_object(GATEWAY_GROUP, "v1", namespace,
                                                     "httproutes", name)
        if not LateGatewayController._stale(route):
            return
        time.sleep(0.02)
    raise TimeoutError(f"the test gateway controller did not answer for {namespace}/{name}")

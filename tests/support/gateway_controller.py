"""A small gateway controller for the real API server: it writes route statuses, late.

A real Inference Gateway answers a route change after the PATCH has returned, by writing
`status.parents[].conditions` (`Accepted`, `ResolvedRefs`, with `observedGeneration`). This one
watches HTTPRoutes and InferencePools and, `delay` seconds after a change, writes those
conditions for the generation it reads then: `ResolvedRefs=False, BackendNotFound` when a
referenced InferencePool does not exist.
"""

from __future__ import annotations

import contextlib
import threading
import time
from datetime import UTC, datetime
from typing import Any, cast

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


POOL_KINDS = (("inference.networking.k8s.io", "v1"), ("inference.networking.x-k8s.io", "v1alpha2"))


class LateGatewayController:
    """Watches HTTPRoutes and InferencePools with admin credentials and, `delay` seconds after
    a change, writes the status of the routes it may concern (see the module docstring)."""

    def __init__(self, api: client.ApiClient, *, delay: float = 0.05) -> None:
        self.objects = client.CustomObjectsApi(api)
        self.delay = delay
        self._stop = threading.Event()
        self._watches: list[watch.Watch] = []
        # What the watches have delivered (resourceVersion per resource) and how many
        # reconciles are due or running: `wait_quiet` waits on both.
        self._quiet = threading.Condition()
        self._seen: dict[str, int] = {}
        self._pending = 0
        self._threads = [
            threading.Thread(target=self._follow, args=(GATEWAY_GROUP, "v1", "httproutes"),
                             name="test-gateway-routes", daemon=True),
            *(threading.Thread(target=self._follow, args=(group, version, "inferencepools"),
                               name=f"test-gateway-pools-{version}", daemon=True)
              for group, version in POOL_KINDS),
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for w in list(self._watches):
            w.stop()  # type: ignore[no-untyped-call]  # the client's watch is unannotated
        for thread in self._threads:
            thread.join(timeout=2)

    def _follow(self, group: str, version: str, plural: str) -> None:
        resource_version = ""
        while not self._stop.is_set():
            # the client's watch module is unannotated; its events are dicts of the JSON
            w = watch.Watch()  # type: ignore[no-untyped-call]
            self._watches.append(w)
            try:
                for event in w.stream(  # type: ignore[no-untyped-call]
                        self.objects.list_cluster_custom_object, group, version, plural,
                        resource_version=resource_version, timeout_seconds=5):
                    if self._stop.is_set():
                        return
                    obj = event["object"]
                    resource_version = obj["metadata"]["resourceVersion"]
                    if event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                        self._later(f"{plural}.{group}", int(resource_version),
                                    obj["metadata"]["namespace"])
            except ApiException as exc:
                if exc.status == 410:
                    resource_version = ""
                else:
                    self._stop.wait(0.5)
            except (HTTPError, OSError, ValueError):
                self._stop.wait(0.5)
            finally:
                self._watches.remove(w)

    @staticmethod
    def _stale(route: Obj) -> bool:
        generation = route["metadata"].get("generation", 0)
        for parent in (route.get("status") or {}).get("parents") or []:
            if parent.get("controllerName") != CONTROLLER_NAME:
                continue
            seen = {c.get("observedGeneration") for c in parent.get("conditions") or []}
            return seen != {generation}
        return True

    def _later(self, resource: str, resource_version: int, namespace: str) -> None:
        with self._quiet:
            self._seen[resource] = max(resource_version, self._seen.get(resource, 0))
            self._pending += 1
            timer = threading.Timer(self.delay, self._reconcile, args=(namespace,))
            timer.daemon = True
            timer.start()

    def wait_quiet(self, heard: dict[str, int], timeout: float = 10.0) -> None:
        """Until each watch in `heard` (`plural.group`: a resourceVersion written) has
        delivered that write or a later one, and every reconcile they caused has run: after
        it, nothing the controller was told of before those writes is still to be written."""
        def quiet() -> bool:
            caught_up = all(self._seen.get(k, 0) >= v for k, v in heard.items())
            return caught_up and self._pending == 0
        with self._quiet:
            if not self._quiet.wait_for(quiet, timeout):
                raise TimeoutError(f"the test gateway controller did not catch up: {heard}")

    def _reconcile(self, namespace: str) -> None:
        try:
            with contextlib.suppress(ApiException, HTTPError, OSError):
                routes = cast(Obj, self.objects.list_namespaced_custom_object(
                    GATEWAY_GROUP, "v1", namespace, "httproutes"))["items"]
                for route in routes:
                    self._write(route)
        finally:
            with self._quiet:
                self._pending -= 1
                self._quiet.notify_all()

    def _write(self, route: Obj) -> None:
        meta = route["metadata"]
        namespace, generation = meta["namespace"], meta["generation"]
        missing = self._missing_pools(namespace, route)
        resolved = _condition(
            "ResolvedRefs", not missing, "BackendNotFound" if missing else "ResolvedRefs",
            f"InferencePool {', '.join(missing)} not found" if missing
            else "all references resolved", generation)
        accepted = _condition("Accepted", True, "Accepted", "accepted", generation)
        if not self._stale(route) and _summary(route) == _summary_of([accepted, resolved]):
            return
        parents = [{
            "parentRef": {"group": GATEWAY_GROUP, "kind": "Gateway", "name": ref.get("name", ""),
                          **({"namespace": ref["namespace"]} if "namespace" in ref else {})},
            "controllerName": CONTROLLER_NAME,
            "conditions": [accepted, resolved],
        } for ref in route["spec"].get("parentRefs") or []]
        # The read resourceVersion guards the write: a newer route gets its own reconcile.
        self.objects.patch_namespaced_custom_object_status(
            GATEWAY_GROUP, "v1", namespace, "httproutes", meta["name"],
            {"metadata": {"resourceVersion": meta["resourceVersion"]},
             "status": {"parents": parents}})

    def _missing_pools(self, namespace: str, route: Obj) -> list[str]:
        missing = []
        for rule in route["spec"].get("rules") or []:
            for ref in rule.get("backendRefs") or []:
                if ref.get("kind") != "InferencePool":
                    continue
                group = ref.get("group", "")
                version = dict(POOL_KINDS).get(group, "v1")
                try:
                    self.objects.get_namespaced_custom_object(
                        group, version, ref.get("namespace") or namespace, "inferencepools",
                        ref["name"])
                except ApiException as exc:
                    if exc.status != 404:
                        raise
                    missing.append(ref["name"])
        return missing


def _summary_of(conditions: list[Obj]) -> set[tuple[object, ...]]:
    return {(c["type"], c["status"], c["reason"], c.get("observedGeneration"))
            for c in conditions}


def _summary(route: Obj) -> set[tuple[object, ...]]:
    for parent in (route.get("status") or {}).get("parents") or []:
        if parent.get("controllerName") == CONTROLLER_NAME:
            return _summary_of(parent.get("conditions") or [])
    return set()


def wait_until_settled(objects: client.CustomObjectsApi, namespace: str, name: str,
                       timeout: float = 10.0) -> None:
    """Until the route's status is about its current generation."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        route = cast(Obj, objects.get_namespaced_custom_object(GATEWAY_GROUP, "v1", namespace,
                                                               "httproutes", name))
        if not LateGatewayController._stale(route):
            return
        time.sleep(0.02)
    raise TimeoutError(f"the test gateway controller did not answer for {namespace}/{name}")

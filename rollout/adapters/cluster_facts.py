"""Kubernetes adapter: read what the preflight gates decide on, in one pass per namespace.

One list per kind per namespace (pools in both groups, objectives and rewrites in the group
the endpoint picker reads, pods, Services) and one GET of the route: a namespace with many
pools costs the same few calls. A group the cluster does not serve answers 404 on its list
and is recorded as not served, never guessed from a message. The translation to
`ClusterFacts` keeps only what a check reads.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, cast

from kubernetes.client import CustomObjectsApi
from kubernetes.client.exceptions import ApiException

from rollout.adapters.kube.core_lists import CoreLists
from rollout.adapters.kube.fenced import kube_errors
from rollout.domain.facts import (
    EPP_GROUPS,
    LEGACY_GROUP,
    POOL_GROUP,
    POOL_VERSIONS,
    ClusterFacts,
    Condition,
    ManagedField,
    ObjectFacts,
    ObjectiveFacts,
    ParentStatus,
    PickerRef,
    PodFacts,
    PoolFacts,
    RewriteFacts,
    RewriteRule,
)

Obj = dict[str, Any]
ROUTE_GROUP, ROUTE_VERSION = "gateway.networking.k8s.io", "v1"
EPP_VERSION = "v1alpha2"
# The annotation narrowing the target ports a pod serves (llm-d-router's, then the older one).
ACTIVE_PORTS = ("llm-d.ai/active-ports", "inference.networking.k8s.io/active-ports")


class ClusterReader:
    """Reads `ClusterFacts` with the official client; one instance per API client."""

    def __init__(self, objects: CustomObjectsApi, core: CoreLists, *,
                 timeout: tuple[float, float] = (3.0, 10.0),
                 epp_groups: tuple[str, ...] = EPP_GROUPS) -> None:
        self._objects = objects
        self._core = core
        self._timeout = timeout
        self._epp_groups = epp_groups  # in the endpoint picker's order of preference

    def read(self, namespace: str, *, route: str | None = None,
             rewrite: str | None = None) -> ClusterFacts:
        """Everything read now (`rewrite` only matters to a cache)."""
        facts = self.read_namespace(namespace)
        return replace(facts, route=self.read_route(namespace, route)) if route else facts

    def read_route(self, namespace: str, route: str) -> ObjectFacts | None:
        """What the gates read of one route (its owners): one GET; None when it is gone."""
        route_obj = self._route(namespace, route)
        return object_facts(route_obj, kind="HTTPRoute", group=ROUTE_GROUP) \
            if route_obj else None

    def read_namespace(self, namespace: str) -> ClusterFacts:
        """Everything but a route: one list per kind, the same for every target of the
        namespace."""
        pools: list[PoolFacts] = []
        served: set[str] = set()
        for group in (POOL_GROUP, LEGACY_GROUP):
            items = self._list(group, POOL_VERSIONS[group], namespace, "inferencepools")
            if items is not None:
                served.add(group)
                pools += (pool_facts(obj, group) for obj in items)
        objective_group, objectives = self._first_served(namespace, "inferenceobjectives")
        rewrite_group, rewrites = self._first_served(namespace, "inferencemodelrewrites")
        return ClusterFacts(
            namespace=namespace,
            served_pool_groups=frozenset(served),
            pools=tuple(pools),
            objective_group=objective_group,
            objectives=tuple(objective_facts(o) for o in objectives),
            rewrite_group=rewrite_group,
            rewrites=tuple(rewrite_facts(r, rewrite_group or "") for r in rewrites),
            pods=self._pods(namespace),
            services=self._services(namespace),
        )

    def _first_served(self, namespace: str, plural: str) -> tuple[str | None, list[Obj]]:
        """The endpoint picker reads the first group it finds served and ignores the others
        (llm-d-router pkg/epp/server/controller_config.go): read only that one."""
        for group in self._epp_groups:
            items = self._list(group, EPP_VERSION, namespace, plural)
            if items is not None:
                return group, items
        return None, []

    def _list(self, group: str, version: str, namespace: str, plural: str) -> list[Obj] | None:
        """The items, or None when the cluster does not serve the kind (404 on the list)."""
        with kube_errors(f"{plural}.{group} in {namespace}"):
            try:
                result = self._objects.list_namespaced_custom_object(
                    group, version, namespace, plural, _request_timeout=self._timeout)
            except ApiException as exc:
                if exc.status == 404:
                    return None
                raise
        return list(cast(Obj, result).get("items") or [])

    def _route(self, namespace: str, name: str) -> Obj | None:
        with kube_errors(f"HTTPRoute {namespace}/{name}"):
            try:
                return cast(Obj, self._objects.get_namespaced_custom_object(
                    ROUTE_GROUP, ROUTE_VERSION, namespace, "httproutes", name,
                    _request_timeout=self._timeout))
            except ApiException as exc:
                if exc.status == 404:
                    return None
                raise

    def _pods(self, namespace: str) -> tuple[PodFacts, ...]:
        """Read as plain JSON: the client's models cost milliseconds per pod to build, and a
        step reads the namespace's pods before it writes."""
        with kube_errors(f"pods in {namespace}"):
            answer = self._core.list_namespaced_pod(namespace, _request_timeout=self._timeout,
                                                    _preload_content=False)
            items = _items(answer)
        return tuple(pod_facts(p) for p in items)

    def _services(self, namespace: str) -> frozenset[str]:
        with kube_errors(f"services in {namespace}"):
            answer = self._core.list_namespaced_service(
                namespace, _request_timeout=self._timeout, _preload_content=False)
            items = _items(answer)
        return frozenset(str(_meta(s).get("name")) for s in items if _meta(s).get("name"))


def _items(answer: Any) -> list[Obj]:
    """The items of a list answer read raw (`_preload_content=False`)."""
    try:
        return list(json.loads(answer.data).get("items") or [])
    finally:
        answer.release_conn()


# ---- translation: API objects to facts (pure, tested through the reader) --------------------


def _meta(obj: Obj) -> Obj:
    return cast(Obj, obj.get("metadata") or {})


def _conditions(raw: list[Obj] | None) -> tuple[Condition, ...]:
    return tuple(Condition(type=str(c.get("type", "")), status=str(c.get("status", "")),
                           reason=str(c.get("reason") or ""),
                           message=str(c.get("message") or ""),
                           observed_generation=c.get("observedGeneration"))
                 for c in raw or [])


def pool_facts(obj: Obj, group: str) -> PoolFacts:
    meta, spec, status = _meta(obj), obj.get("spec") or {}, obj.get("status") or {}
    if group == LEGACY_GROUP:
        selector = dict(spec.get("selector") or {})
        ports = (spec["targetPortNumber"],) if spec.get("targetPortNumber") else ()
        ref = spec.get("extensionRef")
        picker = PickerRef(name=ref["name"], kind=ref.get("kind") or "Service",
                           group=ref.get("group") or "",
                           port=ref.get("portNumber")) if ref else None
        parents_raw = status.get("parent") or []
    else:
        selector = dict((spec.get("selector") or {}).get("matchLabels") or {})
        ports = tuple(p["number"] for p in spec.get("targetPorts") or [] if "number" in p)
        ref = spec.get("endpointPickerRef")
        picker = PickerRef(name=ref["name"], kind=ref.get("kind") or "Service",
                           group=ref.get("group") or "",
                           port=(ref.get("port") or {}).get("number")) if ref else None
        parents_raw = status.get("parents") or []
    parents = tuple(ParentStatus(name=str((p.get("parentRef") or {}).get("name", "")),
                                 kind=str((p.get("parentRef") or {}).get("kind") or "Gateway"),
                                 conditions=_conditions(p.get("conditions")))
                    for p in parents_raw)
    return PoolFacts(name=meta["name"], group=group, generation=meta.get("generation"),
                     deleting=bool(meta.get("deletionTimestamp")), selector=selector,
                     target_ports=tuple(int(p) for p in ports), picker=picker, parents=parents)


def objective_facts(obj: Obj) -> ObjectiveFacts:
    meta, spec = _meta(obj), obj.get("spec") or {}
    ref = spec.get("poolRef") or {}
    return ObjectiveFacts(name=meta["name"], pool=str(ref.get("name", "")),
                          pool_group=_ref_group(ref),
                          priority=int(spec.get("priority") or 0),
                          deleting=bool(meta.get("deletionTimestamp")))


def _ref_group(ref: dict[str, Any]) -> str:
    """A poolRef's group: the API server defaults an absent one to the GA group; one given
    as "" stays "", which names no pool group, so the endpoint picker loads no such object."""
    return str(ref["group"]) if "group" in ref and ref["group"] is not None else POOL_GROUP


def rewrite_facts(obj: Obj, group: str) -> RewriteFacts:
    meta, spec = _meta(obj), obj.get("spec") or {}
    ref = spec.get("poolRef") or {}
    rules = tuple(
        RewriteRule(models=tuple(str((m.get("model") or {}).get("value", ""))
                                 for m in rule.get("matches") or [] if m.get("model")),
                    targets=tuple(str(t.get("modelRewrite", "")) for t in rule.get("targets")
                                  or []))
        for rule in spec.get("rules") or [])
    return RewriteFacts(name=meta["name"], pool=str(ref.get("name", "")),
                        pool_group=_ref_group(ref),
                        created=str(meta.get("creationTimestamp") or ""),
                        deleting=bool(meta.get("deletionTimestamp")), rules=rules,
                        object=object_facts(obj, kind="InferenceModelRewrite", group=group))


def object_facts(obj: Obj, *, kind: str, group: str) -> ObjectFacts:
    meta = _meta(obj)
    entries = tuple(ManagedField(manager=str(m.get("manager") or ""),
                                 operation=str(m.get("operation") or ""),
                                 time=str(m.get("time") or ""),
                                 fields=cast(Mapping[str, object], m.get("fieldsV1") or {}))
                    for m in meta.get("managedFields") or [])
    return ObjectFacts(kind=kind, group=group, name=meta["name"],
                       labels=dict(meta.get("labels") or {}),
                       annotations=dict(meta.get("annotations") or {}),
                       managed_fields=entries, gateways=_gateways(obj))


def _gateways(obj: Obj) -> tuple[str, ...]:
    """The Gateways a route's parentRefs name (kind and group default to a Gateway's, in
    the route's own API group)."""
    refs = cast(list[Obj], cast(Obj, obj.get("spec") or {}).get("parentRefs") or [])
    return tuple(str(ref["name"]) for ref in refs
                 if ref.get("kind", "Gateway") == "Gateway"
                 and ref.get("group", ROUTE_GROUP) == ROUTE_GROUP and ref.get("name"))


def pod_facts(pod: Obj) -> PodFacts:
    """From a pod as the API serves it (JSON)."""
    meta = _meta(pod)
    status = cast(Obj, pod.get("status") or {})
    ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                for c in status.get("conditions") or [])
    annotations = meta.get("annotations") or {}
    active = next((annotations[k] for k in ACTIVE_PORTS if k in annotations), None)
    return PodFacts(name=str(meta.get("name")), labels=dict(meta.get("labels") or {}),
                    ready=ready, ip=str(status.get("podIP") or ""),
                    deleting=meta.get("deletionTimestamp") is not None,
                    active_ports=_ports(active) if active is not None else None)


#: what Go's fmt.Sscanf("%d") reads at the start of a part, as the endpoint picker reads it:
#: spaces, an optional sign, ASCII digits (`8000/TCP` is 8000; `²` or full-width digits none)
_PORT = re.compile(r"\s*([+-]?[0-9]+)")


def _ports(text: str) -> frozenset[int]:
    """The annotation's comma-separated ports, read as the endpoint picker reads them; a
    part it cannot read is skipped, as the picker skips it."""
    found = (_PORT.match(part) for part in text.split(","))
    return frozenset(port for m in found if m is not None and len(m.group(1)) <= 6
                     and (port := int(m.group(1))) > 0)

"""The demo world of DESIGN.md section 8, as plain objects for the store.

Namespace ``default`` holds Gateway ``inference-gateway``; HTTPRoute ``routes-to-llm``
splitting InferencePools ``llm-pool`` (100) and ``llm-pool-version-2`` (0); HTTPRoute
``llm-route`` sending everything to ``llm``; pool ``llm-new`` existing but unreferenced (a
node-update rollout adds it); two Ready Pods per pool labelled ``app: <pool>`` and each pool's
endpoint picker Service ``<pool>-epp``; and the LoRA rewrite
``small-segment-lora`` (model ``small-segment-lora`` -> ``small-segment-lora-v1`` on
``llm-pool``).

InferenceObjective names must be unique in a namespace, so each pool gets
``<pool>-chat`` (priority 10) and ``<pool>-batch`` (priority 0): stable and canary carry the
same objectives (same suffix, same priority), as the rollout preflight expects.

``seed="empty"`` is only namespace ``default``.
"""

from __future__ import annotations

from typing import Any

from sandbox.kube import resources as r

Obj = dict[str, Any]
POOLS = ("llm-pool", "llm-pool-version-2", "llm", "llm-new")
OBJECTIVES = (("chat", 10), ("batch", 0))
PODS_PER_POOL = 2


def _meta(name: str, **extra: Any) -> Obj:
    return {"name": name, "namespace": "default", **extra}


def _pool_ref(name: str) -> Obj:
    return {"group": r.POOL_GROUP, "kind": "InferencePool", "name": name}


def _route(name: str, backends: list[tuple[str, int]]) -> Obj:
    return {
        "apiVersion": r.HTTPROUTES.api_version(),
        "kind": "HTTPRoute",
        "metadata": _meta(name),
        "spec": {
            "parentRefs": [{"group": r.GATEWAY_GROUP, "kind": "Gateway",
                            "name": "inference-gateway"}],
            "rules": [{
                "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                "backendRefs": [{**_pool_ref(pool), "weight": weight}
                                for pool, weight in backends],
            }],
        },
    }


def _pool(name: str) -> Obj:
    return {
        "apiVersion": r.POOLS.api_version(),
        "kind": "InferencePool",
        "metadata": _meta(name),
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "targetPorts": [{"number": 8000}],
            "endpointPickerRef": {"name": f"{name}-epp", "port": {"number": 9002}},
        },
    }


def _pod(pool: str, index: int, subnet: int | None = None) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": _meta(f"{pool}-{index}", labels={"app": pool}),
        "spec": {"containers": [{
            "name": "vllm", "image": "vllm/vllm-openai:latest",
            "ports": [{"containerPort": 8000, "name": "http", "protocol": "TCP"}],
        }]},
        "status": {
            "phase": "Running",
            "podIP": f"10.0.{POOLS.index(pool) if subnet is None else subnet}.{10 + index}",
            "conditions": [{"type": "Ready", "status": "True"},
                           {"type": "ContainersReady", "status": "True"}],
        },
    }


def _picker_service(pool: str) -> Obj:
    """The pool's endpoint picker Service, which `spec.endpointPickerRef` names."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(f"{pool}-epp"),
        "spec": {"selector": {"app": f"{pool}-epp"},
                 "ports": [{"name": "grpc", "port": 9002, "targetPort": 9002,
                            "protocol": "TCP"}]},
    }


def _objective(pool: str, suffix: str, priority: int) -> Obj:
    return {
        "apiVersion": r.OBJECTIVES.api_version(),
        "kind": "InferenceObjective",
        "metadata": _meta(f"{pool}-{suffix}"),
        "spec": {"poolRef": _pool_ref(pool), "priority": priority},
    }


def _rewrite() -> Obj:
    return {
        "apiVersion": r.REWRITES.api_version(),
        "kind": "InferenceModelRewrite",
        "metadata": _meta("small-segment-lora"),
        "spec": {
            "poolRef": _pool_ref("llm-pool"),
            "rules": [{
                "matches": [{"model": {"type": "Exact", "value": "small-segment-lora"}}],
                "targets": [{"modelRewrite": "small-segment-lora-v1", "weight": 100}],
            }],
        },
    }


def pool_objects(pool: str, subnet: int) -> list[Obj]:
    """One more pool as the demo seeds its own (Ready pods in 10.0.<subnet>.x, its endpoint
    picker Service, the two objectives), for worlds with more targets than the demo's."""
    return [_pool(pool), *(_pod(pool, i, subnet) for i in range(PODS_PER_POOL)),
            _picker_service(pool), *(_objective(pool, s, prio) for s, prio in OBJECTIVES)]


def route_object(name: str, backends: list[tuple[str, int]]) -> Obj:
    """An HTTPRoute on the demo gateway, one rule splitting `backends` (pool, weight)."""
    return _route(name, backends)


def seed_objects(seed: str) -> list[Obj]:
    """The objects of a named seed, in creation order (``demo`` or ``empty``)."""
    namespace: Obj = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}
    if seed == "empty":
        return [namespace]
    if seed != "demo":
        raise ValueError(f"unknown seed {seed!r}: use 'demo' or 'empty'")
    gateway: Obj = {
        "apiVersion": r.GATEWAYS.api_version(),
        "kind": "Gateway",
        "metadata": _meta("inference-gateway"),
        "spec": {"gatewayClassName": "gke-l7-regional-external-managed",
                 "listeners": [{"name": "http", "protocol": "HTTP", "port": 80}]},
    }
    objects = [namespace, gateway]
    objects += [_pool(p) for p in POOLS]
    objects += [_pod(p, i) for p in POOLS for i in range(PODS_PER_POOL)]
    objects += [_picker_service(p) for p in POOLS]
    objects += [_objective(p, s, prio) for p in POOLS for s, prio in OBJECTIVES]
    objects.append(_route("routes-to-llm", [("llm-pool", 100), ("llm-pool-version-2", 0)]))
    objects.append(_route("llm-route", [("llm", 100)]))
    objects.append(_rewrite())
    return objects

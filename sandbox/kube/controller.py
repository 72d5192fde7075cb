"""A simulated gateway controller: it writes the status a real Inference Gateway would.

The bot checks ``status.parents[].conditions`` (Accepted, ResolvedRefs with
``observedGeneration``) after each weight change, and treats ``ResolvedRefs=False,
BackendNotFound`` as a wrong pool reference. This controller reconciles every Gateway,
HTTPRoute and InferencePool after any spec write, synchronously by default (the status write
lands before the HTTP response returns, so tests are deterministic) or after a delay in a
timer thread. It only writes when the status would change, so it never loops.
"""

from __future__ import annotations

import threading
from typing import Any

from sandbox.kube import errors
from sandbox.kube import resources as r
from sandbox.kube.store import Event, Obj, Store, now_rfc3339

CONTROLLER_NAME = "sandbox.emulator/gateway-controller"
_POOL_GROUPS = {r.POOL_GROUP: r.POOLS, r.LEGACY_GROUP: r.LEGACY_POOLS}
_WATCHED = {r.GATEWAYS.key, r.HTTPROUTES.key, r.POOLS.key, r.LEGACY_POOLS.key,
            r.NAMESPACES.key}


def _condition(ctype: str, ok: bool, reason: str, message: str, generation: int) -> Obj:
    return {"type": ctype, "status": "True" if ok else "False", "reason": reason,
            "message": message, "observedGeneration": generation, "lastTransitionTime": ""}


def _keep_transition_times(new: list[Obj], old: Any) -> list[Obj]:
    """A condition keeps its lastTransitionTime unless its status flips (API conventions)."""
    previous = {c.get("type"): c for c in old if isinstance(c, dict)} if isinstance(old, list) \
        else {}
    stamp = now_rfc3339()
    for cond in new:
        before = previous.get(cond["type"])
        same = before is not None and before.get("status") == cond["status"]
        cond["lastTransitionTime"] = before.get("lastTransitionTime", stamp) if same and \
            before is not None else stamp
    return new


def _ref_key(ref: Obj, default_ns: str) -> tuple[str, str, str, str]:
    return (ref.get("group", r.GATEWAY_GROUP), ref.get("kind", "Gateway"),
            ref.get("namespace") or default_ns, ref.get("name", ""))


def _backend_refs(route: Obj) -> list[Obj]:
    refs: list[Obj] = []
    for rule in (route.get("spec") or {}).get("rules") or []:
        refs.extend(b for b in rule.get("backendRefs") or [] if isinstance(b, dict))
    return refs


class GatewayController:
    """Reconciles statuses on the store's write events (see the module docstring)."""

    def __init__(self, store: Store, *, delay: float = 0.0) -> None:
        self._store = store
        self._delay = delay
        self._timers: set[threading.Timer] = set()
        self._lock = threading.Lock()
        self._closed = False
        store.add_listener(self._on_event)

    def _on_event(self, event: Event) -> None:
        if event.status_only or event.rt.key not in _WATCHED:
            return
        if self._delay <= 0:
            self.reconcile()
            return
        with self._lock:
            if self._closed:
                return
            timer = threading.Timer(self._delay, self._delayed)
            timer.daemon = True
            self._timers.add(timer)
            timer.start()

    def _delayed(self) -> None:
        with self._lock:
            self._timers = {t for t in self._timers if t.is_alive() and
                            t is not threading.current_thread()}
            if self._closed:
                return
        self.reconcile()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for timer in self._timers:
                timer.cancel()
            self._timers.clear()

    # ---- reconciliation ------------------------------------------------------------------

    def reconcile(self) -> None:
        """Bring every Gateway, HTTPRoute and InferencePool status up to date."""
        routes, _ = self._store.list_objects(r.HTTPROUTES, None)
        for gateway in self._store.list_objects(r.GATEWAYS, None)[0]:
            self._write_status(r.GATEWAYS, gateway, self._gateway_status)
        for route in routes:
            self._write_status(r.HTTPROUTES, route, self._route_status)
        for rt in (r.POOLS, r.LEGACY_POOLS):
            for pool in self._store.list_objects(rt, None)[0]:
                self._write_status(rt, pool, lambda p, rt=rt: self._pool_status(rt, p, routes))

    def _write_status(self, rt: r.ResourceType, obj: Obj, compute: Any) -> None:
        meta = obj["metadata"]
        for _ in range(5):
            status = compute(obj)
            if status is None or status == obj.get("status"):
                return
            body = {**obj, "status": status}
            try:
                self._store.update(rt, meta.get("namespace"), meta["name"], body,
                                   subresource="status")
                return
            except errors.ApiError as exc:
                if exc.code != 409:
                    return
                found = self._store.find(rt, meta.get("namespace"), meta["name"])
                if found is None:
                    return
                obj = found

    def _gateway_status(self, gateway: Obj) -> Obj:
        meta, spec = gateway["metadata"], gateway.get("spec") or {}
        gen = int(meta.get("generation", 1))
        old = gateway.get("status") or {}
        routes, _ = self._store.list_objects(r.HTTPROUTES, None)
        listeners = []
        old_listeners = {ls.get("name"): ls for ls in old.get("listeners") or []}
        for listener in spec.get("listeners") or []:
            attached = 0
            for route in routes:
                for ref in (route.get("spec") or {}).get("parentRefs") or []:
                    key = _ref_key(ref, route["metadata"]["namespace"])
                    if key == (r.GATEWAY_GROUP, "Gateway", meta["namespace"], meta["name"]) and \
                            ref.get("sectionName") in (None, listener.get("name")):
                        attached += 1
            conds = [_condition("Accepted", True, "Accepted", "", gen),
                     _condition("Programmed", True, "Programmed", "", gen),
                     _condition("ResolvedRefs", True, "ResolvedRefs", "", gen)]
            listeners.append({
                "name": listener.get("name"), "attachedRoutes": attached,
                "supportedKinds": [{"group": r.GATEWAY_GROUP, "kind": "HTTPRoute"}],
                "conditions": _keep_transition_times(
                    conds, old_listeners.get(listener.get("name"), {}).get("conditions")),
            })
        conds = [_condition("Accepted", True, "Accepted", "Gateway is accepted", gen),
                 _condition("Programmed", True, "Programmed", "Gateway is programmed", gen)]
        return {
            "addresses": [{"type": "IPAddress", "value": "10.0.0.1"}],
            "conditions": _keep_transition_times(conds, old.get("conditions")),
            "listeners": listeners,
        }

    def _route_status(self, route: Obj) -> Obj:
        meta = route["metadata"]
        ns, gen = meta["namespace"], int(meta.get("generation", 1))
        missing, bad_kinds = [], []
        for ref in _backend_refs(route):
            group, kind = ref.get("group", ""), ref.get("kind", "Service")
            ref_ns = ref.get("namespace") or ns
            if kind == "InferencePool" and group in _POOL_GROUPS:
                if self._store.find(_POOL_GROUPS[group], ref_ns, ref.get("name", "")) is None:
                    missing.append(f'InferencePool "{ref_ns}/{ref.get("name")}" not found')
            elif not (group == "" and kind == "Service"):
                bad_kinds.append(f"{kind}.{group}" if group else kind)
        if missing:
            resolved = (False, "BackendNotFound", "; ".join(missing))
        elif bad_kinds:
            resolved = (False, "InvalidKind", f"unsupported backend kind: {', '.join(bad_kinds)}")
        else:
            resolved = (True, "ResolvedRefs", "All references resolved")
        old = route.get("status") or {}
        old_parents = [p for p in old.get("parents") or [] if isinstance(p, dict)]
        foreign = [p for p in old_parents if p.get("controllerName") != CONTROLLER_NAME]
        parents = []
        for ref in (route.get("spec") or {}).get("parentRefs") or []:
            group, kind, gw_ns, name = _ref_key(ref, ns)
            found = kind == "Gateway" and group == r.GATEWAY_GROUP and \
                self._store.find(r.GATEWAYS, gw_ns, name) is not None
            accepted = (True, "Accepted", "Route is accepted") if found else \
                (False, "NoMatchingParent", f'{kind} "{gw_ns}/{name}" not found')
            conds = [_condition("Accepted", *accepted, gen),
                     _condition("ResolvedRefs", *resolved, gen)]
            previous = next((p.get("conditions") for p in old_parents
                             if p.get("parentRef") == ref), None)
            parents.append({"parentRef": ref, "controllerName": CONTROLLER_NAME,
                            "conditions": _keep_transition_times(conds, previous)})
        return {**old, "parents": foreign + parents}

    def _pool_status(self, rt: r.ResourceType, pool: Obj, routes: list[Obj]) -> Obj | None:
        meta = pool["metadata"]
        ns, name, gen = meta["namespace"], meta["name"], int(meta.get("generation", 1))
        gateways: list[Obj] = []
        for route in routes:
            route_ns = route["metadata"]["namespace"]
            uses = any(
                b.get("kind") == "InferencePool" and b.get("group") == rt.group
                and b.get("name") == name and (b.get("namespace") or route_ns) == ns
                for b in _backend_refs(route)
            )
            if not uses:
                continue
            for ref in (route.get("spec") or {}).get("parentRefs") or []:
                group, kind, gw_ns, gw_name = _ref_key(ref, route_ns)
                gw = {"group": group, "kind": kind, "name": gw_name, "namespace": gw_ns}
                if kind == "Gateway" and gw not in gateways:
                    gateways.append(gw)
        key = "parents" if rt is r.POOLS else "parent"
        old = pool.get("status") or {}
        old_entries = [p for p in old.get(key) or [] if isinstance(p, dict)]
        ours = any(p.get("controllerName") == CONTROLLER_NAME for p in old_entries)
        if not gateways and (rt is r.LEGACY_POOLS or not ours):
            return None
        entries = []
        for gw in gateways:
            conds = [_condition("Accepted", True, "Accepted", "InferencePool is accepted", gen),
                     _condition("ResolvedRefs", True, "ResolvedRefs",
                                "All references resolved", gen)]
            previous = next((p.get("conditions") for p in old_entries
                             if p.get("parentRef") == gw), None)
            entry: Obj = {"parentRef": gw, "conditions": _keep_transition_times(conds, previous)}
            if rt is r.POOLS:
                entry["controllerName"] = CONTROLLER_NAME
            entries.append(entry)
        return {**old, key: entries}

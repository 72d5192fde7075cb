"""The object store: one lock, a global resourceVersion, generations, and watch fan-out.

It is the emulator's etcd plus the generic registry logic of the apiserver: create, update,
patch and delete with optimistic concurrency (409 on a stale ``resourceVersion``), ``status``
subresource semantics, CRD defaulting and validation, and a bounded event history so a watch
can resume from a resourceVersion (or learn it is too old: 410 Expired).
"""

from __future__ import annotations

import copy
import logging
import queue
import random
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sandbox.kube import errors
from sandbox.kube import resources as r
from sandbox.kube.validation import Admission

Obj = dict[str, Any]
_log = logging.getLogger(__name__)
_META_KEYS = ("apiVersion", "kind", "metadata", "status")
_SERVER_META = ("uid", "creationTimestamp", "generation", "deletionTimestamp")
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Event:
    """One committed change, as watchers and the controller see it."""

    rv: int
    type: str  # ADDED, MODIFIED or DELETED
    rt: r.ResourceType
    namespace: str
    obj: Obj
    old: Obj | None = None
    status_only: bool = False  # written through the status subresource


@dataclass
class Watcher:
    """A subscription to one resource (optionally one namespace); read it with ``next``."""

    rt: r.ResourceType
    namespace: str | None
    _queue: queue.Queue[Event | None] = field(default_factory=queue.Queue)
    closed: bool = False

    def deliver(self, event: Event | None) -> None:
        self._queue.put(event)

    def next(self, timeout: float) -> Event | None:
        """The next event, or None on timeout or once the store is closed (see ``closed``)."""
        if self.closed:
            return None
        try:
            event = self._queue.get(timeout=max(timeout, 0.0))
        except queue.Empty:
            return None
        if event is None:
            self.closed = True
        return event


def _spec_part(obj: Obj, *, include_status: bool) -> Obj:
    skip = _META_KEYS if not include_status else ("apiVersion", "kind", "metadata")
    return {k: v for k, v in obj.items() if k not in skip}


def _rv_of(obj: Obj) -> str | None:
    meta = obj.get("metadata")
    rv = meta.get("resourceVersion") if isinstance(meta, dict) else None
    return str(rv) if rv not in (None, "") else None


class Store:
    """Thread-safe in-memory object store (one re-entrant lock around everything)."""

    def __init__(self, admission: Admission | None = None, *, history_size: int = 1000) -> None:
        self._admission = admission if admission is not None else Admission([])
        self._lock = threading.RLock()
        self._rv = 0
        self._objects: dict[tuple[str, str], dict[tuple[str, str], Obj]] = {}
        self._history: deque[Event] = deque(maxlen=history_size)
        self._compacted = 0
        self._watchers: list[Watcher] = []
        self._listeners: list[Callable[[Event], None]] = []
        self._closed = False
        self._local = threading.local()

    # ---- reading -------------------------------------------------------------------------

    @property
    def resource_version(self) -> str:
        with self._lock:
            return str(self._rv)

    def _bucket(self, rt: r.ResourceType) -> dict[tuple[str, str], Obj]:
        return self._objects.setdefault(rt.key, {})

    def _ns(self, rt: r.ResourceType, namespace: str | None) -> str:
        return (namespace or "") if rt.namespaced else ""

    def get(self, rt: r.ResourceType, namespace: str | None, name: str) -> Obj:
        with self._lock:
            obj = self._bucket(rt).get((self._ns(rt, namespace), name))
            if obj is None:
                raise errors.not_found(rt.group, rt.plural, name)
            return copy.deepcopy(obj)

    def find(self, rt: r.ResourceType, namespace: str | None, name: str) -> Obj | None:
        with self._lock:
            obj = self._bucket(rt).get((self._ns(rt, namespace), name))
            return copy.deepcopy(obj) if obj is not None else None

    def list_objects(self, rt: r.ResourceType, namespace: str | None) -> tuple[list[Obj], str]:
        """Objects sorted by namespace then name (etcd key order), and the list's RV."""
        with self._lock:
            items = [
                copy.deepcopy(obj)
                for (ns, _), obj in sorted(self._bucket(rt).items())
                if not namespace or not rt.namespaced or ns == namespace
            ]
            return items, str(self._rv)

    def namespace_exists(self, name: str) -> bool:
        with self._lock:
            return ("", name) in self._bucket(r.NAMESPACES)

    # ---- writing -------------------------------------------------------------------------

    def add_listener(self, listener: Callable[[Event], None]) -> None:
        """Call ``listener`` after each committed write, outside the lock, in the writing thread."""
        self._listeners.append(listener)

    def _notify(self, events: list[Event]) -> None:
        for event in events:
            for listener in list(self._listeners):
                try:
                    listener(event)
                except Exception:  # a listener's failure must not fail the write that is done
                    _log.exception("store listener failed on %s %s", event.type, event.rt.kind)

    def _commit(self, event_type: str, rt: r.ResourceType, ns: str, obj: Obj, old: Obj | None,
                *, status_only: bool = False) -> Event:
        name = obj["metadata"]["name"]
        if event_type == "DELETED":
            self._bucket(rt).pop((ns, name), None)
        else:
            self._bucket(rt)[(ns, name)] = obj
        event = Event(self._rv, event_type, rt, ns, copy.deepcopy(obj),
                      copy.deepcopy(old) if old is not None else None, status_only)
        if len(self._history) == self._history.maxlen:
            self._compacted = self._history[0].rv
        self._history.append(event)
        for watcher in self._watchers:
            if watcher.rt.key == rt.key and (not watcher.namespace or watcher.namespace == ns):
                watcher.deliver(event)
        self._pending.append(event)
        return event

    def _check_namespace(self, rt: r.ResourceType, ns: str) -> None:
        if rt.namespaced and ("", ns) not in self._bucket(r.NAMESPACES):
            raise errors.not_found("", "namespaces", ns)

    def _normalize(self, rt: r.ResourceType, body: Any, ns: str) -> Obj:
        if not isinstance(body, dict):
            raise errors.bad_request("the body of the request must be a JSON object")
        obj = copy.deepcopy(body)
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        if api_version not in (None, "") and api_version not in [
            rt.api_version(v) for v in rt.versions
        ]:
            if rt.group:  # decoded with no schema for that version: every field is unknown
                self._warnings.extend(f'unknown field "{key}"' for key in obj
                                      if key not in ("apiVersion", "kind", "metadata"))
            raise errors.bad_request(f"the API version in the data ({api_version}) does not "
                                     f"match the expected API version ({rt.api_version()})")
        if kind not in (None, "", rt.kind) and not rt.group:
            raise errors.bad_request(f"the kind in the data ({kind}) does not match the "
                                     f"expected kind ({rt.kind})")
        # A custom resource of another kind is kept as sent: validation refuses it (422).
        obj["apiVersion"], obj["kind"] = rt.api_version(), kind or rt.kind
        meta = obj.get("metadata")
        if meta is None:
            meta = obj["metadata"] = {}
        if not isinstance(meta, dict):
            raise errors.bad_request("metadata must be an object")
        body_ns = meta.get("namespace")
        if rt.namespaced:
            if body_ns not in (None, "", ns):
                raise errors.bad_request("the namespace of the provided object does not match "
                                         "the namespace sent on the request")
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        return obj

    def _finish(self, rt: r.ResourceType, obj: Obj) -> Obj:
        admitted, warnings = self._admission.admit(rt, obj)
        self._warnings.extend(warnings)
        self._admission.validate(rt, admitted)
        return admitted

    @property
    def _warnings(self) -> list[str]:
        warnings: list[str] | None = getattr(self._local, "warnings", None)
        if warnings is None:
            warnings = []
            self._local.warnings = warnings
        return warnings

    def take_warnings(self) -> list[str]:
        """The warnings of this thread's writes since the last call (pruned unknown fields)."""
        warnings = list(self._warnings)
        self._warnings.clear()
        return warnings

    def create(self, rt: r.ResourceType, namespace: str | None, body: Any, *,
               keep_status: bool = False, dry_run: bool = False) -> Obj:
        ns = self._ns(rt, namespace)
        with self._writing():
            obj = self._normalize(rt, body, ns)
            meta = obj["metadata"]
            if _rv_of(obj) is not None and not keep_status:
                raise errors.bad_request("resourceVersion should not be set on objects to be "
                                         "created")
            if not meta.get("name") and meta.get("generateName"):
                for _ in range(20):
                    suffix = "".join(random.choices(_GENERATE_ALPHABET, k=5))
                    meta["name"] = f"{meta['generateName']}{suffix}"
                    if (ns, meta["name"]) not in self._bucket(rt):
                        break
            if rt.status_subresource and not keep_status:
                obj.pop("status", None)
            self._decorate_new(rt, obj)
            obj = self._finish(rt, obj)
            meta = obj["metadata"]
            self._check_namespace(rt, ns)
            if (ns, meta["name"]) in self._bucket(rt):
                raise errors.already_exists(rt.group, rt.plural, meta["name"])
            if dry_run:
                return obj
            self._rv += 1
            meta["resourceVersion"] = str(self._rv)
            self._commit("ADDED", rt, ns, obj, None)
            return copy.deepcopy(obj)

    def put(self, body: Obj) -> Obj:
        """Create or replace ``body`` as given, status included (test and seed setup).

        Its namespace (``default`` if unset) is created when missing.
        """
        rt = r.for_api_version(str(body.get("apiVersion", "")), str(body.get("kind", "")))
        if rt is None:
            raise ValueError(f"unknown kind: {body.get('apiVersion')} {body.get('kind')}")
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        meta.pop("resourceVersion", None)
        ns = (meta.get("namespace") or "default") if rt.namespaced else ""
        with self._writing():
            if rt.namespaced and not self.namespace_exists(ns):
                self.create(r.NAMESPACES, None, {"metadata": {"name": ns}})
            if self.find(rt, ns, str(meta.get("name", ""))) is not None:
                return self.update(rt, ns, str(meta["name"]), obj, keep_status=True)
            return self.create(rt, ns, obj, keep_status=True)

    def _decorate_new(self, rt: r.ResourceType, obj: Obj) -> None:
        meta = obj["metadata"]
        for key in ("uid", "creationTimestamp", "generation", "deletionTimestamp",
                    "resourceVersion", "managedFields"):
            meta.pop(key, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        if rt.has_generation:
            meta["generation"] = 1
        if rt is r.NAMESPACES:
            meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta.get("name")
            obj.setdefault("spec", {"finalizers": ["kubernetes"]})
            obj["status"] = {"phase": "Active"}
        if rt is r.PODS:
            obj.setdefault("status", {"phase": "Pending"})

    def update(self, rt: r.ResourceType, namespace: str | None, name: str, body: Any, *,
               subresource: str | None = None, dry_run: bool = False,
               keep_status: bool = False) -> Obj:
        """PUT semantics: 404 if missing, 409 if ``metadata.resourceVersion`` is stale."""
        ns = self._ns(rt, namespace)
        with self._writing():
            obj = self._normalize(rt, body, ns)
            body_name = obj["metadata"].get("name")
            if body_name not in (None, "", name):
                raise errors.bad_request(f"the name of the object ({body_name}) does not match "
                                         f"the name on the URL ({name})")
            obj["metadata"]["name"] = name
            return self._replace(rt, ns, name, obj, subresource=subresource, dry_run=dry_run,
                                 keep_status=keep_status)

    def patch(self, rt: r.ResourceType, namespace: str | None, name: str,
              apply: Callable[[Obj], Any], *, subresource: str | None = None,
              dry_run: bool = False) -> Obj:
        """Apply ``apply(current) -> patched`` atomically, then update with PUT semantics."""
        ns = self._ns(rt, namespace)
        with self._writing():
            current = self.get(rt, ns, name)
            patched = apply(current)
            if not isinstance(patched, dict):
                raise errors.ApiError(422, "Invalid", "the patched object is not a JSON object")
            obj = self._normalize(rt, patched, ns)
            if obj["metadata"].get("name") != name:
                raise errors.invalid(rt.group, rt.kind, name, [{
                    "reason": "FieldValueInvalid", "field": "metadata.name",
                    "message": f"Invalid value: {obj['metadata'].get('name')!r}: field is "
                               "immutable"}])
            return self._replace(rt, ns, name, obj, subresource=subresource, dry_run=dry_run,
                                 keep_status=False)

    def _replace(self, rt: r.ResourceType, ns: str, name: str, obj: Obj, *,
                 subresource: str | None, dry_run: bool, keep_status: bool) -> Obj:
        old = self._bucket(rt).get((ns, name))
        if old is None:
            raise errors.not_found(rt.group, rt.plural, name)
        given_rv = _rv_of(obj)
        if given_rv is None and rt.group and not keep_status:
            # Custom resources allow no unconditional update (the real registry's answer).
            raise errors.invalid(rt.group, rt.plural, name, [{
                "reason": "FieldValueInvalid", "field": "metadata.resourceVersion",
                "message": "Invalid value: 0: must be specified for an update"}])
        if given_rv is not None and given_rv != old["metadata"]["resourceVersion"]:
            raise errors.conflict(rt.group, rt.plural, name)
        if subresource == "status":
            new = copy.deepcopy(old)
            if "status" in obj:
                new["status"] = obj["status"]
            else:
                new.pop("status", None)
        else:
            new = obj
            if rt.status_subresource and not keep_status:
                if "status" in old:
                    new["status"] = copy.deepcopy(old["status"])
                else:
                    new.pop("status", None)
            for key in _SERVER_META:
                if key in old["metadata"]:
                    new["metadata"][key] = old["metadata"][key]
                else:
                    new["metadata"].pop(key, None)
            new["metadata"].pop("managedFields", None)
        new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        new = self._finish(rt, new)
        if new == old:  # a no-op write: the real server neither bumps the RV nor emits an event
            return copy.deepcopy(old)
        if rt.has_generation and _spec_part(new, include_status=not rt.status_subresource) != \
                _spec_part(old, include_status=not rt.status_subresource):
            new["metadata"]["generation"] = int(old["metadata"].get("generation", 0)) + 1
        if dry_run:
            return copy.deepcopy(new)
        self._rv += 1
        new["metadata"]["resourceVersion"] = str(self._rv)
        self._commit("MODIFIED", rt, ns, new, old, status_only=subresource == "status")
        return copy.deepcopy(new)

    @property
    def _pending(self) -> list[Event]:
        pending: list[Event] | None = getattr(self._local, "pending", None)
        if pending is None:
            pending = []
            self._local.pending = pending
        return pending

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """Hold the lock for a write; run listeners for its events once the lock is released."""
        depth = getattr(self._local, "depth", 0)
        self._local.depth = depth + 1
        try:
            with self._lock:
                yield
        finally:
            self._local.depth = depth
            if depth == 0:
                events = list(self._pending)
                self._pending.clear()
                self._notify(events)

    def delete(self, rt: r.ResourceType, namespace: str | None, name: str, *,
               precondition_rv: str | None = None, dry_run: bool = False) -> Obj:
        ns = self._ns(rt, namespace)
        with self._writing():
            old = self._bucket(rt).get((ns, name))
            if old is None:
                raise errors.not_found(rt.group, rt.plural, name)
            if precondition_rv and precondition_rv != old["metadata"]["resourceVersion"]:
                raise errors.conflict(rt.group, rt.plural, name)
            if dry_run:
                return copy.deepcopy(old)
            if rt is r.NAMESPACES:  # no finalization phase: contents go at once
                for other in r.ALL:
                    if other.namespaced:
                        for (ons, _), obj in sorted(self._bucket(other).items()):
                            if ons == name:
                                self._delete_one(other, ons, obj)
            return copy.deepcopy(self._delete_one(rt, ns, old).obj)

    def _delete_one(self, rt: r.ResourceType, ns: str, old: Obj) -> Event:
        self._rv += 1
        gone = copy.deepcopy(old)
        gone["metadata"]["resourceVersion"] = str(self._rv)
        return self._commit("DELETED", rt, ns, gone, old)

    # ---- watching ------------------------------------------------------------------------

    def watch(self, rt: r.ResourceType, namespace: str | None, since: str | None) -> Watcher:
        """Subscribe; replay history after ``since``, or synthesize ADDED events if unset/0."""
        ns = self._ns(rt, namespace) or None
        with self._lock:
            watcher = Watcher(rt, ns)
            if since in (None, "", "0"):
                for (ons, _), obj in sorted(self._bucket(rt).items()):
                    if not ns or ons == ns:
                        rv = int(obj["metadata"]["resourceVersion"])
                        watcher.deliver(Event(rv, "ADDED", rt, ons, copy.deepcopy(obj)))
            else:
                try:
                    start = int(str(since))
                except ValueError as exc:
                    raise errors.bad_request(f"invalid resource version: {since}") from exc
                if start < self._compacted:
                    raise errors.expired(
                        f"too old resource version: {start} ({self._compacted + 1})"
                    )
                for event in self._history:
                    if event.rv > start and event.rt.key == rt.key and (
                        not ns or event.namespace == ns
                    ):
                        watcher.deliver(event)
            if self._closed:
                watcher.deliver(None)
            self._watchers.append(watcher)
            return watcher

    def unwatch(self, watcher: Watcher) -> None:
        with self._lock:
            if watcher in self._watchers:
                self._watchers.remove(watcher)

    def close(self) -> None:
        """End every open watch (used when the server stops)."""
        with self._lock:
            self._closed = True
            for watcher in self._watchers:
                watcher.deliver(None)

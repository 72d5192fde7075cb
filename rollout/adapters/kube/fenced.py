"""Conditional writes to custom objects: the fenced, resourceVersion-guarded JSON patch.

Every write of the bot goes through `FencedObjects.send`, on the object `latest` gives (the
last read of it): it refuses when a newer fencing token is already on the object, guards the
write with the read resourceVersion (409 when stale) and a JSON-patch `test` of the fence
annotation (422 when a stale writer slipped in); the caller decides again, a bounded number of
times, on the fresh read a conflict leaves. A write that times out, or is answered with a
5xx (which may come after it landed), is decided by a fresh read: taken as written when it
landed, else fenced off by bumping the object, so it cannot land later behind the bot's back.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, Protocol, cast

from kubernetes.client import CustomObjectsApi
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError as Urllib3Error

from rollout.adapters.kube.markers import FENCE, PREFIX, fence_of, pointer
from rollout.domain import patch
from rollout.domain.errors import (
    ClusterRejected,
    ClusterUnavailable,
    FenceBehind,
    NotFound,
    StaleView,
    Throttled,
    WriteUnknown,
)
from rollout.domain.gitops import BOT_MANAGER
from rollout.domain.patch import Ops, PatchOp

ABANDONED = PREFIX + "abandoned-write"
# Every write names the bot in metadata.managedFields: the GitOps gate tells its own writes
# from another manager's by this name, and a revert by anyone else names them.
FIELD_MANAGER = BOT_MANAGER
JSON_PATCH = "application/json-patch+json"

Obj = dict[str, Any]
Objs = list[Obj]  # named: inside FencedObjects, `list` is its method


@dataclass(frozen=True)
class Kind:
    group: str
    version: str
    plural: str
    title: str

    def describe(self, namespace: str, name: str) -> str:
        return f"{self.title} {namespace}/{name}"


_lists = threading.local()


@contextmanager
def lists_once() -> Iterator[None]:
    """Within it, this thread lists each kind of each namespace at most once: a start's
    lookups (the orphan check, then locating the rule, a few milliseconds apart) share one
    list instead of listing a namespace of many routes twice. Nothing outlives the scope."""
    outer = getattr(_lists, "scope", None)
    _lists.scope = {} if outer is None else outer
    try:
        yield
    finally:
        _lists.scope = outer


class Listing(Protocol):
    """A watch-backed cache of the namespace (rollout/adapters/namespace_cache.py)."""

    def listed(self, kind: Kind, namespace: str) -> list[Obj] | None:
        """The kind's objects while the cache is live, else None (list them directly)."""
        ...

    def wrote(self, kind: Kind, namespace: str, obj: Obj) -> None:
        """The bot wrote `obj`: the cache is not read until it has seen that version."""
        ...

    def held(self, kind: Kind, namespace: str, name: str) -> Obj | None:
        """One object while the cache is live and has the bot's own last write of it, else
        None (read it directly); NotFound when the namespace has no such object."""
        ...


class FencedObjects:
    """Reads and fenced writes of one namespaced custom resource kind."""

    def __init__(
        self, api: CustomObjectsApi, kind: Kind, *, timeout: tuple[float, float] = (3.0, 5.0),
        conflict_retries: int = 5, cache: Listing | None = None,
    ) -> None:
        self.api = api
        # the hot requests without pydantic's argument check: about 7% of a scheduler step's CPU
        self._get_object = unchecked(api, "get_namespaced_custom_object")
        self._patch_object = unchecked(api, "patch_namespaced_custom_object")
        self.kind = kind
        self.timeout = timeout
        self.conflict_retries = conflict_retries
        self.cache = cache
        self._seen: dict[tuple[str, str], Obj] = {}

    def get(self, namespace: str, name: str) -> Obj:
        """Read an object; the read is kept for the next `patch` of it, which starts from it
        instead of reading again (a stale one costs a 409 and a fresh read, never a wrong
        write: the PATCH carries the resourceVersion it was decided on)."""
        obj = self._read(namespace, name)
        self._seen[(namespace, name)] = obj
        return obj

    def glance(self, namespace: str, name: str) -> Obj:
        """The object as the namespace cache holds it while live (the drift watch's look at
        every active target each sweep costs no request then), else a GET. Never kept for a
        write: a write decides on a fresh read."""
        if self.cache is not None:
            held = self.cache.held(self.kind, namespace, name)
            if held is not None:
                return held
        return self._read(namespace, name)

    def recall(self, namespace: str, name: str) -> Obj | None:
        """The namespace cache's copy while it is live and has the bot's own last write of
        the object, kept for the next `patch` like `get`'s read (a tick decides on it and
        spares its GET); None otherwise (read it). The copy may trail the cluster by the
        watch's few milliseconds: the write sent on it with `recalled` raises StaleView when
        the object had moved, and the tick decides again on a fresh read."""
        held = self.cache.held(self.kind, namespace, name) if self.cache is not None else None
        if held is not None:
            self._seen[(namespace, name)] = held
        return held

    def _read(self, namespace: str, name: str) -> Obj:
        with kube_errors(self.kind.describe(namespace, name)):
            obj = self._get_object(
                self.kind.group, self.kind.version, namespace, self.kind.plural, name,
                _request_timeout=self.timeout,
            )
            return cast(Obj, obj)

    def list(self, namespace: str) -> list[Obj]:
        """From the cache while it is live (a start's lookups list nothing), else one LIST,
        shared by the lookups in a `lists_once` scope. Only lookups list; a write decides on
        `get`'s fresh read."""
        cached = self.cache.listed(self.kind, namespace) if self.cache is not None else None
        if cached is not None:
            return cached
        scope: dict[tuple[Kind, str], Objs | NotFound] | None = getattr(
            _lists, "scope", None)
        key = (self.kind, namespace)
        if scope is not None and key in scope:
            found = scope[key]
            if isinstance(found, NotFound):
                raise found
            return found
        try:
            items = self._list(namespace)
        except NotFound as exc:  # a group this cluster does not serve: asked once too
            if scope is not None:
                scope[key] = exc
            raise
        if scope is not None:
            scope[key] = items
        return items

    def _list(self, namespace: str) -> Objs:
        with kube_errors(f"{self.kind.title} list in {namespace}"):
            result = cast(Obj, self.api.list_namespaced_custom_object(
                self.kind.group, self.kind.version, namespace, self.kind.plural,
                _request_timeout=self.timeout,
            ))
            items: list[Obj] = result.get("items", [])
            return items

    def latest(self, namespace: str, name: str, *, fence: int) -> Obj:
        """The object to decide a write on: the last read of it (the caller's reconcile
        read, or the fresh read after a conflict), else a new read. One that carries a newer
        fencing token than ours is refused before anything is decided on it."""
        current = self._seen.pop((namespace, name), None) or self._read(namespace, name)
        self._refuse_behind(namespace, name, current, fence)
        return current

    def _refuse_behind(self, namespace: str, name: str, current: Obj, fence: int) -> None:
        seen = fence_of(current.get("metadata", {}).get("annotations") or {})
        if seen > fence:
            raise FenceBehind(f"{self.kind.describe(namespace, name)} carries a newer fencing "
                              f"token ({seen} > {fence}); this write was dropped", seen=seen)

    def send(self, namespace: str, name: str, current: Obj, ops: Ops, *, fence: int,
             recalled: bool = False) -> Obj | None:
        """One PATCH of `ops` decided on `current`, under the fence; returns the object as
        written, or None when it moved: then decide again on `latest`, the fresh read.
        `recalled`: `current` is the cache's copy (`recall`), and a 409 or 422 raises
        StaleView without a read, for the whole command to be decided again on one.

        A 409 (stale resourceVersion) or a 422 is followed by a fresh read, and what that read
        shows decides: our own token, on an object moved since `current`, is this write landed
        (its answer lost and a copy sent again, which met it): returned as written; a newer
        fencing token means a rollback or a later holder took over
        (`FenceBehind`, from `latest`); a moved token or resourceVersion is a retry; a 422
        with neither moved is the server refusing the object itself (`ClusterRejected` when
        it says Invalid, with its field causes). A 5xx or no answer at all
        does not say whether the write landed: the read-back decides (`_lost`). The server's
        message is never parsed: a real kube-apiserver answers a failed JSON-patch `test` with
        a generic one.
        """
        what = self.kind.describe(namespace, name)
        self._refuse_behind(namespace, name, current, fence)
        try:
            written = self._patch_object(
                self.kind.group, self.kind.version, namespace, self.kind.plural, name,
                _wire(_guard_ops(current, fence) + ops), _request_timeout=self.timeout,
                _content_type=JSON_PATCH, field_manager=FIELD_MANAGER,
            )
            return self._wrote(namespace, current, cast(Obj, written))
        except ApiException as exc:
            if _answer_unknown(exc):
                return self._lost(namespace, name, current, fence, lost=exc)
            if exc.status not in (409, 422):
                raise _translate(exc, what) from exc
            if recalled:
                raise StaleView(f"{what} moved since the namespace cache's copy") from exc
            fresh = self._read(namespace, name)
            if _landed(current, fresh, fence):  # a copy of a write that landed, sent again
                return self._wrote(namespace, current, fresh)
            if exc.status == 422 and not _moved(current, fresh):
                raise _translate(exc, what) from exc
            self._seen[(namespace, name)] = fresh
            return None
        except Urllib3Error as exc:
            return self._lost(namespace, name, current, fence, lost=exc)

    def _lost(self, namespace: str, name: str, current: Obj, fence: int, *,
              lost: Exception) -> Obj:
        """A write whose answer does not say whether it landed: the object as written when
        the read-back shows it landed; else it is fenced off and refused as not landed."""
        landed = self._settle(namespace, name, current, fence, lost=lost)
        if landed is not None:
            return self._wrote(namespace, current, landed)
        raise ClusterUnavailable(
            f"{_unanswered(self.kind.describe(namespace, name), lost)}; the write was fenced "
            "off and did not land"
        ) from lost

    def _wrote(self, namespace: str, current: Obj, written: Obj) -> Obj:
        """Tell the cache of a write that changed the object (a no-op PATCH keeps the
        version, and no watch event would come)."""
        version = (written.get("metadata") or {}).get("resourceVersion")
        if self.cache is not None and version != current["metadata"].get("resourceVersion"):
            self.cache.wrote(self.kind, namespace, written)
        return written

    def kept_changing(self, namespace: str, name: str) -> ClusterUnavailable:
        """The error when every try of a write met a moved object."""
        return ClusterUnavailable(
            f"{self.kind.describe(namespace, name)} kept changing under the bot "
            f"({self.conflict_retries + 1} conflicts in a row); try again"
        )

    def _settle(self, namespace: str, name: str, sent_on: Obj, fence: int, *,
                lost: Exception) -> Obj | None:
        """After a write whose answer was lost: the object as a fresh read shows it, when the
        write landed; None when it did not and never can: the object moved since the version
        the write was decided on (a rollback's newer token among what may have moved it), or
        once it is bumped so (a write still in flight carries the old resourceVersion and
        gets 409); WriteUnknown when the API does not answer long enough to tell. Decided by
        what is read back, never by the error."""
        what = self.kind.describe(namespace, name)
        unknown = (f"{_unanswered(what, lost)}, nor answered long enough after it to tell "
                   "whether the write landed")
        for _attempt in range(self.conflict_retries + 1):
            try:
                fresh = self._read(namespace, name)
            except ClusterUnavailable as exc:
                raise WriteUnknown(unknown) from exc
            if _landed(sent_on, fresh, fence):
                return fresh
            if _moved(sent_on, fresh):  # the write, guarded by the version it was decided
                return None  # on, can never land now; a bump could lower a newer fence
            stamp = datetime.now(UTC).isoformat()
            ops = [*_guard_ops(fresh, fence), patch.add(pointer(ABANDONED), stamp)]
            try:
                bumped = self._patch_object(
                    self.kind.group, self.kind.version, namespace, self.kind.plural, name,
                    _wire(ops), _request_timeout=self.timeout, _content_type=JSON_PATCH,
                    field_manager=FIELD_MANAGER,
                )
                # the cache waits for the bump: a tick deciding on its copy from before the
                # bump met a 409 and decided again
                self._wrote(namespace, fresh, cast(Obj, bumped))
                return None
            except ApiException as exc:
                if exc.status not in (409, 422):
                    raise WriteUnknown(unknown) from exc
                # moved since the read: perhaps our write landing now; read again
            except Urllib3Error as exc:
                raise WriteUnknown(unknown) from exc
        raise WriteUnknown(unknown)


def unchecked(api: object, name: str) -> Callable[..., Any]:
    """`api.name` of the official client without pydantic's `validate_call` (its documented
    `raw_function`): it checks each argument's type on every call, which the adapters' own
    types already guarantee, and that cost about 7% of a scheduler step's CPU.
    An object that is not the generated client (a test's double) is called as it is."""
    method = getattr(api, name)
    raw = getattr(getattr(type(api), name, None), "raw_function", None)
    return partial(raw, api) if raw is not None else cast(Callable[..., Any], method)


def _wire(ops: Ops) -> list[dict[str, Any]]:
    """The ops as the client's body type (a TypedDict is a dict on the wire)."""
    return cast(list[dict[str, Any]], ops)


def _guard_ops(current: Obj, fence: int) -> Ops:
    """The preconditions and the new fence: rv (409 when stale), fence `test` (422)."""
    meta = current.get("metadata", {})
    annotations = meta.get("annotations")
    ops: Ops = [patch.replace("/metadata/resourceVersion", meta["resourceVersion"])]
    if annotations is None:
        ops.append(patch.add("/metadata/annotations", {FENCE: str(fence)}))
        return ops
    if FENCE in annotations:
        ops.append(patch.test(pointer(FENCE), annotations[FENCE]))
    ops.append(patch.add(pointer(FENCE), str(fence)))
    return ops


def annotation_op(key: str, value: str) -> PatchOp:
    """An op that sets one annotation; the guard ops have made sure the map exists."""
    return patch.add(pointer(key), value)


@contextmanager
def kube_errors(what: str) -> Iterator[None]:
    """Kubernetes client failures as rollout errors that say what to do."""
    try:
        yield
    except ApiException as exc:
        raise _translate(exc, what) from exc
    except Urllib3Error as exc:
        raise ClusterUnavailable(
            f"the Kubernetes API did not answer for {what} ({type(exc).__name__})"
        ) from exc


def _translate(exc: ApiException, what: str) -> Exception:
    if exc.status == 404:
        return NotFound(f"{what} not found")
    status = _status_body(exc)
    if exc.status == 422 and status.get("reason") == "Invalid":
        return ClusterRejected(f"the Kubernetes API refused {what} as invalid "
                               f"({_causes(status, exc)}); nothing was written")
    message = _status_message(exc)
    if exc.status in (401, 403):
        return ClusterUnavailable(f"the Kubernetes API refused access to {what}: {message}",
                                  retry_after=60.0)
    if exc.status == 429:
        return Throttled(
            f"the Kubernetes API is throttling the bot's requests ({what}): {message}",
            retry_after=_retry_after(exc))
    return ClusterUnavailable(f"the Kubernetes API failed on {what}: {exc.status} {message}")


def _answer_unknown(exc: ApiException) -> bool:
    """Whether a write answered with this status may still have landed: a 5xx can come from
    the server's own request timeout (504, the handler still running), a storage timeout
    (500) or a load balancer in front of it after the request went through (502, 503, 504).
    A 429 never does: the server throttles a request before serving it."""
    return isinstance(exc.status, int) and exc.status >= 500


def _unanswered(what: str, lost: Exception) -> str:
    """What a write got instead of an answer that says whether it landed."""
    if isinstance(lost, ApiException):
        return (f"the Kubernetes API answered writing {what} with {lost.status} "
                f"{lost.reason}, which does not say whether it landed")
    return f"the Kubernetes API did not answer writing {what} ({type(lost).__name__})"


#: the longest Retry-After the bot passes on; a longer one is not a throttle's
MAX_RETRY_AFTER = 300.0


def _retry_after(exc: ApiException, default: float = 5.0) -> float:
    """The server's Retry-After, in seconds (the API server's throttles send one), else
    `default`."""
    value = (exc.headers or {}).get("Retry-After")
    try:
        seconds = float(value) if value is not None else default
    except ValueError:  # an HTTP date: the API server sends seconds
        return default
    return seconds if 0 < seconds <= MAX_RETRY_AFTER else default


def _landed(sent_on: Obj, fresh: Obj, fence: int) -> bool:
    """Whether the object moved since the read a write was decided on and now carries that
    write's fencing token: no one else writes a token the bot's counter handed out."""
    before = fence_of(sent_on.get("metadata", {}).get("annotations") or {})
    after = fence_of(fresh.get("metadata", {}).get("annotations") or {})
    return after == fence != before and _moved(sent_on, fresh)


def _moved(before: Obj, after: Obj) -> bool:
    """Whether someone wrote the object between two reads (its fence or resourceVersion)."""
    def key(obj: Obj) -> tuple[object, object]:
        meta = obj.get("metadata", {})
        return (meta.get("resourceVersion"), (meta.get("annotations") or {}).get(FENCE))

    return key(before) != key(after)


def _status_body(exc: ApiException) -> dict[str, Any]:
    """The answer's `kind: Status`, or {} when the body is not one."""
    try:
        body = json.loads(exc.body or "{}")
    except (ValueError, TypeError):
        return {}
    return body if isinstance(body, dict) else {}


def _status_message(exc: ApiException) -> str:
    return str(_status_body(exc).get("message") or exc.reason)


#: how much of an invalid object's causes an answer quotes: the first few, each cut short
MAX_CAUSES, MAX_CAUSE = 3, 120


def _causes(status: dict[str, Any], exc: ApiException) -> str:
    """The field causes of a 422 Invalid (`details.causes`), briefly: `field: message` for
    the first few (the API server's field `<nil>` is no field), then how many more; the
    server's message where it names none."""
    details = status.get("details")
    listed = details.get("causes") if isinstance(details, dict) else None
    said = []
    for cause in listed if isinstance(listed, list) else []:
        if not isinstance(cause, dict):
            continue
        field, text = str(cause.get("field") or ""), str(cause.get("message") or "")
        if len(text) > MAX_CAUSE:
            text = text[:MAX_CAUSE] + "…"
        said.append(f"{field}: {text}" if field and field != "<nil>" else text)
    if not said:
        return _status_message(exc)
    more = len(said) - MAX_CAUSES
    return "; ".join(said[:MAX_CAUSES]) + (f"; and {more} more" if more > 0 else "")

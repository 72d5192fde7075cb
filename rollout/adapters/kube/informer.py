"""A watch-backed cache of one kind in one namespace (what Kubernetes controllers call an
informer): one LIST, then a WATCH from its resourceVersion.

A watch that ends is resumed from the last resourceVersion seen (bookmarks included), so an
idle cache costs one open request and no relist. A 410 Gone, as an HTTP status or as the
watch's ERROR event, means that resourceVersion was compacted away: list again, at once
when the version was one a watch brought; a 410 on the version the list just gave is a
failure (a server that refuses every watch so would otherwise be listed and watched again
in a tight loop). Any other ERROR event lists again too, after a pause, as Kubernetes'
reflector does. A 404 on the list means the cluster does not serve the kind, recorded as
such and listed again later (a 404 on a watch, its CRD deleted meanwhile, lists again to
find out).
A failure waits before the next attempt, longer after each failure in a row; a watch that
ended within a second having brought nothing is a failure too (a proxy that answers 200 and
closes would otherwise be asked again at once, thousands of times a second), and only a
watch that brought something, or lasted its whole time, ends the run of failures.
Each object is kept as what `keep` makes of it (facts, not whole pods). `snapshot` answers
only while the cache is live: listed, and its watch open; any other time the caller reads
the cluster itself.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError as Urllib3Error

Obj = dict[str, Any]
T = TypeVar("T")
#: the official client's list call of one kind in one namespace, its query as keywords
Lister = Callable[..., Any]

log = logging.getLogger(__name__)

GONE = 410
NOT_FOUND = 404
BROUGHT_KEPT = 1024  # versions remembered per kind, for writes whose answer trails the watch
SHORT_WATCH_SECONDS = 1.0  # a watch ended sooner having brought nothing failed (as client-go)
DOUBLINGS = 64  # at most, as 2 ** 1024 is no float: recheck_seconds caps the wait long before


@dataclass(frozen=True)
class Snapshot(Generic[T]):
    """What a live cache holds: the kept items, or `served=False` when the kind is not served.
    `revision` moves with every change the informer takes in: what a reader built from an
    earlier snapshot of the same revision still holds."""

    items: tuple[T, ...]
    served: bool
    revision: int = 0


@dataclass(frozen=True)
class WatchTiming:
    """How long a watch runs before the server ends it (the client waits `grace` longer for a
    word before calling it stalled), the wait after a failure (doubling while failures go on,
    up to `recheck`: a namespace the bot may not watch is not asked every second), and how
    often a kind that was not served is asked about again."""

    watch_seconds: int = 60
    grace_seconds: float = 10.0
    connect_seconds: float = 3.0
    list_seconds: float = 10.0
    retry_seconds: float = 1.0
    recheck_seconds: float = 30.0
    own_write_seconds: float = 5.0
    # how long a reader waits for the watch to bring the bot's own write before it reads the
    # cluster instead: the watch brings it in milliseconds, and a read past the cache costs
    # the namespace's every kind (nine requests) when the cluster is already slow
    own_write_wait_seconds: float = 1.0


@dataclass(frozen=True)
class Held(Generic[T]):
    """What a live cache holds of one object: None when the namespace has no such object."""

    item: T | None


class _Relist(Exception):
    """The resourceVersion the watch resumed from is no longer there (410: `gone`), or the
    kind is no longer served (404: its CRD was deleted): list again, which records which."""

    def __init__(self, *, gone: bool) -> None:
        super().__init__("gone" if gone else "not found")
        self.gone = gone


class _Ended(Exception):
    """The watch stream said something other than an event, or ended at once having said
    nothing: reconnect after a pause."""


class _Failed(Exception):
    """The watch's ERROR event is not a 410: list again after a pause (the server failed on
    the watch; what it still holds from that version is not to be trusted)."""


class Informer(Generic[T]):
    """One kind in one namespace, kept current by a thread of its own until `stop`."""

    def __init__(self, name: str, lister: Lister, keep: Callable[[Obj], T], *,
                 timing: WatchTiming | None = None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], object] | None = None) -> None:
        """`clock` times each watch; `sleep` waits out a pause (default: until `stop`, which
        cuts it short). Tests give both."""
        self.name = name
        self._lister = lister
        self._keep = keep
        self._timing = timing or WatchTiming()
        self._clock = clock
        self._sleep = sleep or self._stopping_wait
        self._lock = threading.Lock()
        self._brought_one = threading.Condition(self._lock)  # told of each version brought
        self._stopping = threading.Event()
        self._items: dict[str, T] = {}
        self._served = True
        self._revision = 0  # moves with every change of _items or _served
        self._version: str | None = None  # None: list before watching
        self._listed = False  # _version is the list's (no watch has brought one since)
        self._live = False
        self._lost = 0  # how many times the cache stopped being live
        self._response: Any = None
        self._failures = 0  # in a row: the wait before the next attempt doubles
        self._failing: str | None = None  # the last failure logged in this run of them
        # the bot's own writes the watch has not brought yet: (name, version) -> given up at
        self._pending: dict[tuple[str, str], float] = {}
        # the versions the watch brought lately: one may arrive before the bot's write
        # returns and asks for it (`expect`), and must not be waited on then
        self._brought: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._thread: threading.Thread | None = None

    def _stopping_wait(self, seconds: float) -> None:
        self._stopping.wait(seconds)

    # -- what readers ask -----------------------------------------------------------------

    @property
    def live(self) -> bool:
        with self._lock:
            return self._live

    def snapshot(self, *, fresh: Collection[str] | None = None,
                 until: float | None = None) -> Snapshot[T] | None:
        """The items while live and not behind the bot's own writes, else None: then the
        caller reads the cluster itself. `fresh` names the only objects that must show the
        bot's own writes (None: every one): the gates of one rollout's step read its own
        target fresh, and the other targets the bot writes in the namespace may trail by the
        watch's few milliseconds (a busy namespace always has one of them in flight).
        `until` (a `time.monotonic` deadline; None: not at all) is how long a live cache
        behind the bot's own write is waited on (see `own_write_wait_seconds`)."""
        with self._lock:
            if not self._caught_up(fresh, until):
                return None
            return Snapshot(items=tuple(self._items.values()), served=self._served,
                            revision=self._revision)

    def item(self, name: str) -> Held[T] | None:
        """One object while live and not behind the bot's own write of it (absent: `Held`
        of None), else None: then the caller reads the cluster itself (a GET: not waited
        on, unlike the gates' whole namespace)."""
        with self._lock:
            if not self._caught_up((name,), None):
                return None
            return Held(self._items.get(name))

    def _caught_up(self, fresh: Collection[str] | None, until: float | None) -> bool:
        """Under the lock: live and not behind, waiting for the watch until `until` while
        only the bot's own write is missing. A cache that is not live is not waited on: its
        watch is reconnecting, which takes longer than a read of the cluster."""
        deadline = until if until is not None else 0.0
        lost = self._lost
        while self._live and self._behind(fresh):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._brought_one.wait(left)
            if self._lost != lost:  # the watch ended meanwhile, even if it is open again
                return False
        return self._live

    def expect(self, name: str, version: str) -> None:
        """The bot wrote `version` of `name`: read the cluster until the watch brings it (a
        start right after a rollback must see the rollback), or `own_write_seconds` pass."""
        with self._lock:
            now = time.monotonic()
            self._expire(now)  # also while no reader prunes: the watch may never open
            if (name, version) in self._brought:
                return
            self._pending[(name, version)] = now + self._timing.own_write_seconds

    def _bring(self, name: str, version: str) -> None:
        """Under the lock: the watch (or a list) brought `version` of `name`."""
        if self._pending.pop((name, version), None) is not None:
            self._brought_one.notify_all()
        self._brought[(name, version)] = None
        if len(self._brought) > BROUGHT_KEPT:
            self._brought.popitem(last=False)

    def _expire(self, now: float) -> None:
        """Under the lock: forget the writes given up on (superseded before the watch saw
        them, a relist; or a watch that is not open): they are not waited on."""
        for key, until in list(self._pending.items()):
            if until <= now:
                del self._pending[key]

    def _behind(self, fresh: Collection[str] | None) -> bool:
        self._expire(time.monotonic())
        if fresh is None:
            return bool(self._pending)
        return any(name in fresh for name, _version in self._pending)

    # -- the thread -------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"informer {self.name}",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.signal()
        self.join(timeout)

    def signal(self) -> None:
        """Tell the thread to end: the open watch is cut so that its read returns now."""
        self._stopping.set()
        self._set_live(False)
        response = self._response
        if response is not None:
            with contextlib.suppress(OSError):
                response.shutdown()

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                if self._version is None:
                    self._list()
                if not self._served:
                    self._sleep(self._timing.recheck_seconds)
                    self._version = None
                    continue
                self._watch()
            except _Relist as exc:
                self._set_live(False)
                self._version = None
                if self._listed and exc.gone:
                    self._pause("the watch refused the version just listed (410 Gone); "
                                "listing again")
                else:
                    log.info("%s: listing again", self.name)
            except _Failed as exc:
                self._version = None
                self._pause(f"{exc}; listing again")
            except _Ended as exc:
                self._pause(str(exc))
            except (ApiException, Urllib3Error, OSError, ValueError) as exc:
                self._pause(f"watch interrupted ({_short(exc)})")
            except Exception:  # a bug must not end the thread: reads go to the cluster
                log.exception("%s: unexpected failure", self.name)
                self._pause("unexpected failure")

    def _pause(self, why: str) -> None:
        """Not live until the watch is open again; wait longer after each failure in a row.
        A failure is logged once as a warning; the same one again in the run is logged at
        debug (a cluster that refuses a namespace's nine watches would otherwise log nine
        lines every 30 s for as long as it does)."""
        self._set_live(False)
        if self._stopping.is_set():
            return
        timing = self._timing
        wait = min(timing.retry_seconds * 2 ** min(self._failures, DOUBLINGS),
                   timing.recheck_seconds)
        self._failures += 1
        level = logging.DEBUG if why == self._failing else logging.WARNING
        self._failing = why
        log.log(level, "%s: %s; resuming in %.1f s (failure %d in a row)", self.name, why, wait,
                self._failures)
        self._sleep(wait)

    def _healthy(self) -> None:
        """A watch brought something or lasted its whole time: failures start over."""
        if self._failures:
            log.info("%s: watching again after %d failures in a row", self.name,
                     self._failures)
        self._failures, self._failing = 0, None

    def _set_live(self, live: bool) -> None:
        with self._lock:
            if self._live and not live:
                self._lost += 1
                self._brought_one.notify_all()  # a reader waiting on a watch that ended stops
            self._live = live

    def _list(self) -> None:
        timing = self._timing
        try:
            answer = self._lister(_preload_content=False,
                                  _request_timeout=(timing.connect_seconds, timing.list_seconds))
        except ApiException as exc:
            if exc.status != NOT_FOUND:
                raise
            with self._lock:
                self._items, self._served, self._live = {}, False, True
                self._revision += 1
            return
        try:
            body = cast(Obj, json.loads(answer.data))
        finally:
            answer.release_conn()
        items = {_name(obj): self._keep(obj) for obj in body.get("items") or []}
        with self._lock:
            self._items, self._served = items, True
            self._revision += 1
            for obj in body.get("items") or []:
                self._bring(_name(obj), _version(obj))
        self._version = str((body.get("metadata") or {}).get("resourceVersion") or "")
        self._listed = True

    def _watch(self) -> None:
        timing = self._timing
        opened = self._clock()
        try:
            response = self._lister(
                watch=True, resource_version=self._version, allow_watch_bookmarks=True,
                timeout_seconds=timing.watch_seconds, _preload_content=False,
                _request_timeout=(timing.connect_seconds,
                                  timing.watch_seconds + timing.grace_seconds))
        except ApiException as exc:
            if exc.status in (GONE, NOT_FOUND):
                raise _Relist(gone=exc.status == GONE) from exc
            raise
        self._response = response
        brought = False
        try:
            if self._stopping.is_set():
                return
            self._set_live(True)
            for event in _events(response):
                self._apply(event)
                if not brought:
                    brought = True
                    self._healthy()
        finally:
            self._response = None
            self._set_live(False)
            _close(response)
            lasted = self._clock() - opened
            if lasted >= timing.watch_seconds:
                self._healthy()
        if not brought and lasted < SHORT_WATCH_SECONDS and not self._stopping.is_set():
            raise _Ended(f"watch ended within {SHORT_WATCH_SECONDS:g} s having brought nothing")

    def _apply(self, event: Obj) -> None:
        kind, obj = event.get("type"), cast(Obj, event.get("object") or {})
        if kind == "ERROR":
            if obj.get("code") == GONE:
                raise _Relist(gone=True)
            raise _Failed(f"watch error {obj.get('code')}")
        version = _version(obj)
        if kind in ("ADDED", "MODIFIED"):
            kept = self._keep(obj)
            with self._lock:
                self._items[_name(obj)] = kept
                self._revision += 1
                self._bring(_name(obj), version)
        elif kind == "DELETED":
            with self._lock:
                self._items.pop(_name(obj), None)
                self._revision += 1
        elif kind != "BOOKMARK":
            raise _Ended(f"unknown watch event {kind!r}")
        if version:
            self._version = str(version)
            self._listed = False


def _events(response: Any) -> Iterator[Obj]:
    """The watch's events, one JSON object a line (blank lines and padding skipped)."""
    pending = b""
    for chunk in response.stream(65536, decode_content=True):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line.strip():
                yield cast(Obj, json.loads(line))
    if pending.strip():
        yield cast(Obj, json.loads(pending))


def _name(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def _version(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def _close(response: Any) -> None:
    """Close the watch's connection: a stream left half read is never reused."""
    with contextlib.suppress(Urllib3Error, OSError):
        response.close()
        response.release_conn()


def _short(exc: BaseException) -> str:
    if isinstance(exc, ApiException):
        return f"status {exc.status}"
    return type(exc).__name__

"""The WSGI application: route a kube-apiserver request to the store and answer like the server.

It maps ``/api/v1/...`` and ``/apis/<group>/<version>/...`` paths to a resource and a verb,
applies armed faults, decodes bodies and patches, and streams watches as newline-delimited
JSON events. It holds no state of its own: the store, the fault book and the request log are
passed in.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import yaml

from sandbox.kube import discovery, errors, openapi
from sandbox.kube import resources as r
from sandbox.kube.faults import FaultBook, RequestRecord
from sandbox.kube.patch import (
    PatchApplyError,
    PatchDecodeError,
    go_kind,
    json_patch,
    merge_patch,
)
from sandbox.kube.selectors import object_matcher
from sandbox.kube.store import Event, Obj, Store

StartResponse = Callable[..., Any]
_DEFAULT_WATCH_SECONDS = 1800.0
_MERGE_PATCH = "application/merge-patch+json"
_STRATEGIC = "application/strategic-merge-patch+json"
_JSON_PATCH = "application/json-patch+json"
_APPLY_PATCH = "application/apply-patch+yaml"
_OPTIONS_KIND = {"create": "CreateOptions", "update": "UpdateOptions", "patch": "PatchOptions",
                 "delete": "DeleteOptions", "deletecollection": "DeleteOptions"}


@dataclass(frozen=True)
class RequestInfo:
    """What a resource request addresses, after parsing its path and method."""

    verb: str
    rt: r.ResourceType | None
    version: str
    plural: str
    namespace: str | None
    name: str | None
    subresource: str | None


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _warning_header(text: str) -> tuple[str, str]:
    """An RFC 7234 warning as the apiserver sends it (code 299, no agent)."""
    quoted = text.replace("\\", "\\\\").replace('"', '\\"')
    return ("Warning", f'299 - "{quoted}"')


def _dry_run(verb: str, values: list[str]) -> bool:
    """Whether ``dryRun`` asks for a dry run; 422 for any value but ``All``, as the server."""
    if not values:
        return False
    if any(v != "All" for v in values):
        kind = _OPTIONS_KIND.get(verb, "CreateOptions")
        shown = "[" + ",".join(json.dumps(v) for v in values) + "]"
        cause = {"reason": "FieldValueNotSupported", "field": "dryRun",
                 "message": f'Unsupported value: {shown}: supported values: "All"'}
        raise errors.ApiError(
            422, "Invalid", f'{kind}.meta.k8s.io "" is invalid: dryRun: {cause["message"]}',
            {"causes": [cause], "group": "meta.k8s.io", "kind": kind})
    return True


def _deleted_status(rt: r.ResourceType, obj: Obj) -> Obj:
    meta = obj.get("metadata") or {}
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
            "details": {"name": meta.get("name"), "group": rt.group, "kind": rt.plural,
                        "uid": meta.get("uid")}}


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def parse_request(method: str, path: str, query: dict[str, str]) -> RequestInfo | None:
    """Resource request info, or None for non-resource paths (discovery, version, health)."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 3 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 4 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    namespace: str | None = None
    if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] not in ("status", "finalize"):
        namespace, rest = rest[1], rest[2:]
    plural = rest[0]
    name = rest[1] if len(rest) > 1 else None
    subresource = rest[2] if len(rest) > 2 else None
    rt = r.lookup(group, version, plural)
    if len(rest) > 3 or rt is None:
        rt = None
    elif rt.namespaced and namespace is None and name is not None:
        rt = None  # a namespaced object needs its namespace in the path
    elif not rt.namespaced and namespace is not None:
        rt = None
    watching = query.get("watch") in ("true", "1")
    verbs = {"POST": "create", "PUT": "update", "PATCH": "patch"}
    if method == "GET":
        verb = "watch" if watching else ("get" if name else "list")
    elif method == "DELETE":
        verb = "delete" if name else "deletecollection"
    else:
        verb = verbs.get(method, method.lower())
    return RequestInfo(verb, rt, version, plural, namespace, name, subresource)


class KubeApp:
    """The WSGI callable (see the module docstring)."""

    def __init__(self, store: Store, book: FaultBook, *, server_address: Callable[[], str]):
        self._store = store
        self._book = book
        self._server_address = server_address

    # ---- WSGI entry ----------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        path = str(environ.get("PATH_INFO", "/")) or "/"
        query = {k: v[-1] for k, v in parse_qs(str(environ.get("QUERY_STRING", ""))).items()}
        content_type = str(environ.get("CONTENT_TYPE", ""))
        body = self._read_body(environ)
        info = parse_request(method, path, query)
        code = 500
        self._store.take_warnings()
        try:
            code, headers, payload = self._handle(method, path, query, content_type, body,
                                                  info, environ)
        except errors.ApiError as exc:
            code, headers, payload = exc.code, [], _dumps(exc.status())
            if exc.code == 429:
                headers = [("Retry-After", "1")]
        finally:
            self._book.record(RequestRecord(
                method=method, path=path, verb=info.verb if info else method.lower(),
                resource=info.plural if info else "",
                namespace=info.namespace if info else None, name=info.name if info else None,
                subresource=info.subresource if info else None, content_type=content_type,
                body=body, status=code, at=time.time(),
            ))
        headers = headers + [_warning_header(w) for w in self._store.take_warnings()]
        reason = {200: "OK", 201: "Created"}.get(code, errors.reason_for(code))
        if isinstance(payload, bytes):
            start_response(f"{code} {reason}", [
                ("Content-Type", "application/json"), ("Content-Length", str(len(payload))),
                ("Cache-Control", "no-cache, private"), *headers])
            return [payload]
        start_response(f"{code} {reason}", [
            ("Content-Type", "application/json"), ("Cache-Control", "no-cache, private"),
            *headers])
        return payload

    @staticmethod
    def _read_body(environ: dict[str, Any]) -> bytes:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        stream = environ.get("wsgi.input")
        return stream.read(length) if stream is not None and length > 0 else b""

    # ---- dispatch ------------------------------------------------------------------------

    def _handle(
        self, method: str, path: str, query: dict[str, str], content_type: str, body: bytes,
        info: RequestInfo | None, environ: dict[str, Any],
    ) -> tuple[int, list[tuple[str, str]], bytes | Iterator[bytes]]:
        if info is None:
            return self._non_resource(method, path)
        fault = self._book.take(info.verb, info.plural, info.namespace, info.name)
        if fault is not None:
            if fault.stall_seconds > 0:
                self._book.stall(fault.stall_seconds)
            if fault.status is not None:
                raise errors.generic(fault.status, f"injected fault: {info.verb} "
                                     f"{info.plural} (status {fault.status})")
        rt = info.rt
        if rt is None or (info.subresource is not None and (
                info.subresource != "status" or not rt.status_subresource)):
            raise errors.generic(404, "the server could not find the requested resource")
        if rt.namespaced and info.namespace is None and info.verb not in ("list", "watch"):
            raise errors.generic(404, "the server could not find the requested resource")
        dry_run = False
        if info.verb in _OPTIONS_KIND:
            dry_run = _dry_run(info.verb, parse_qs(str(environ.get("QUERY_STRING", "")))
                               .get("dryRun", []))
        ns, name, sub = info.namespace, info.name or "", info.subresource
        if info.verb == "get":
            return 200, [], _dumps(self._out(self._store.get(rt, ns, name), info))
        if info.verb == "list":
            return 200, [], _dumps(self._list(rt, info, query))
        if info.verb == "watch":
            return 200, [], self._watch(rt, info, query, environ)
        if info.verb == "create" and not info.name:
            obj = self._store.create(rt, ns, self._decode(body, content_type), dry_run=dry_run)
            return 201, [], _dumps(self._out(obj, info))
        if info.verb == "update":
            obj = self._store.update(rt, ns, name, self._decode(body, content_type),
                                     subresource=sub, dry_run=dry_run)
            return 200, [], _dumps(self._out(obj, info))
        if info.verb == "patch":
            return self._patch(rt, info, content_type, body, dry_run)
        if info.verb == "delete" and sub is None:
            options = self._decode(body, content_type) if body.strip() else {}
            options = options if isinstance(options, dict) else {}
            pre = options.get("preconditions") or {}
            obj = self._store.delete(rt, ns, name, precondition_rv=pre.get("resourceVersion"),
                                     dry_run=dry_run or options.get("dryRun") == ["All"])
            if rt.group:  # a custom resource without finalizers: gone at once, a Status says so
                return 200, [], _dumps(_deleted_status(rt, obj))
            return 200, [], _dumps(self._out(obj, info))
        raise errors.generic(405, "the server does not allow this method on the requested "
                             "resource")

    def _non_resource(self, method: str, path: str
                      ) -> tuple[int, list[tuple[str, str]], bytes]:
        if method != "GET":
            raise errors.generic(405, "the server does not allow this method on the requested "
                                 "resource")
        parts = [p for p in path.split("/") if p]
        doc: dict[str, Any] | None = None
        if parts == ["version"]:
            doc = discovery.SERVER_VERSION
        elif parts in (["healthz"], ["readyz"], ["livez"]):
            return 200, [], b"ok"
        elif parts == ["api"]:
            doc = discovery.api_versions(self._server_address())
        elif parts == ["api", "v1"]:
            doc = discovery.api_resource_list("", "v1")
        elif parts == ["apis"]:
            doc = discovery.api_group_list()
        elif len(parts) == 2 and parts[0] == "apis":
            doc = discovery.api_group(parts[1])
        elif len(parts) == 3 and parts[0] == "apis":
            doc = discovery.api_resource_list(parts[1], parts[2])
        elif parts == ["openapi", "v3"]:
            doc = openapi.index()
        elif parts[:2] == ["openapi", "v3"]:
            doc = openapi.group_version("/".join(parts[2:]))
        if doc is None:
            raise errors.generic(404, "the server could not find the requested resource")
        return 200, [], _dumps(doc)

    # ---- verbs ---------------------------------------------------------------------------

    @staticmethod
    def _out(obj: Obj, info: RequestInfo) -> Obj:
        """Serve the object in the version the client asked for (same storage, same fields)."""
        if info.rt is not None:
            obj["apiVersion"] = info.rt.api_version(info.version)
        return obj

    @staticmethod
    def _decode(body: bytes, content_type: str) -> Any:
        media = _media_type(content_type)
        try:
            if media in ("application/yaml", _APPLY_PATCH):
                return yaml.safe_load(body.decode() or "null")
            return json.loads(body or b"null")
        except (ValueError, yaml.YAMLError) as exc:
            raise errors.bad_request(f"couldn't decode the request body: {exc}") from exc

    def _list(self, rt: r.ResourceType, info: RequestInfo, query: dict[str, str]) -> Obj:
        matches = object_matcher(query.get("labelSelector"), query.get("fieldSelector"),
                                 any_field=rt.group == "")
        items, rv = self._store.list_objects(rt, info.namespace)
        return {
            "apiVersion": rt.api_version(info.version),
            "kind": f"{rt.kind}List",
            "metadata": {"resourceVersion": rv},
            "items": [self._out(o, info) for o in items if matches(o)],
        }

    def _patch(self, rt: r.ResourceType, info: RequestInfo, content_type: str, body: bytes,
               dry_run: bool) -> tuple[int, list[tuple[str, str]], bytes]:
        media = _media_type(content_type)
        accepted = (_JSON_PATCH, _MERGE_PATCH, _APPLY_PATCH) if rt.group else \
            (_JSON_PATCH, _MERGE_PATCH, _STRATEGIC, _APPLY_PATCH)
        if media not in accepted:  # strategic merge has no meaning for a custom resource
            raise errors.ApiError(415, "UnsupportedMediaType", "the body of the request was in "
                                  "an unknown format - accepted media types include: "
                                  f"{', '.join(accepted)}")
        document = self._decode(body, content_type)
        if media != _JSON_PATCH and not isinstance(document, dict):
            raise errors.bad_request(f"error decoding patch: json: cannot unmarshal "
                                     f"{go_kind(document)} into Go value of type "
                                     "map[string]interface {}")

        def apply(current: Obj) -> Any:
            try:
                if media == _JSON_PATCH:
                    return json_patch(current, document)
                # A merge patch, or a strategic one on a core kind (its lists simply replace).
                return merge_patch(current, document)
            except PatchDecodeError as exc:
                raise errors.bad_request(str(exc)) from exc
            except PatchApplyError as exc:
                # The apiserver's patch handler drops the json-patch error text: a generic 422.
                raise errors.ApiError(
                    422, "Invalid",
                    "the server rejected our request due to an error in our request", {},
                ) from exc

        ns, name = info.namespace, info.name or ""
        if media == _APPLY_PATCH and self._store.find(rt, ns, name) is None:
            # Server-side apply, simplified: create if missing, else merge (no field ownership).
            obj = self._store.create(rt, ns, {**document, "metadata": {
                **(document.get("metadata") or {}), "name": name}}, dry_run=dry_run)
            return 201, [], _dumps(self._out(obj, info))
        obj = self._store.patch(rt, ns, name, apply, subresource=info.subresource,
                                dry_run=dry_run)
        return 200, [], _dumps(self._out(obj, info))

    def _watch(self, rt: r.ResourceType, info: RequestInfo, query: dict[str, str],
               environ: dict[str, Any]) -> Iterator[bytes]:
        matches = object_matcher(query.get("labelSelector"), query.get("fieldSelector"),
                                 any_field=rt.group == "")
        try:
            timeout = float(query.get("timeoutSeconds") or _DEFAULT_WATCH_SECONDS)
        except ValueError as exc:
            raise errors.bad_request(f"invalid timeoutSeconds: {exc}") from exc
        try:
            watcher = self._store.watch(rt, info.namespace, query.get("resourceVersion"))
        except errors.ApiError as exc:
            if exc.code != 410:
                raise
            # Like the watch cache: a 200 stream carrying one ERROR event with the 410 Status.
            return iter([_dumps({"type": "ERROR", "object": exc.status()}) + b"\n"])
        disconnected = environ.get("waitress.client_disconnected")

        def translate(event: Event) -> str | None:
            now = matches(event.obj)
            before = matches(event.old) if event.old is not None else False
            if event.type == "MODIFIED":
                if now and before:
                    return "MODIFIED"
                return "ADDED" if now else ("DELETED" if before else None)
            if event.type == "DELETED":
                return "DELETED" if before or now else None
            return "ADDED" if now else None

        def stream() -> Iterator[bytes]:
            deadline = time.monotonic() + timeout
            try:
                # One space sends the headers now (waitress holds them until the first byte);
                # JSON decoders skip it as whitespace before the first event.
                yield b" "
                while (remaining := deadline - time.monotonic()) > 0:
                    event = watcher.next(min(remaining, 0.5))
                    if event is None:
                        if watcher.closed or (callable(disconnected) and disconnected()):
                            return
                        continue
                    kind = translate(event)
                    if kind is not None:
                        obj = self._out(dict(event.obj), info)
                        yield _dumps({"type": kind, "object": obj}) + b"\n"
            finally:
                self._store.unwatch(watcher)

        return stream()

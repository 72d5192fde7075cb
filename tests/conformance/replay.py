"""Replay the recorded cases against one API server and reduce its answers to comparable data.

Server-assigned values (uid, timestamps, resourceVersion values, managedFields) are replaced
or dropped; `status` is dropped from objects a gateway controller writes, as its timing is not
part of what is compared.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import urllib3

from tests.conformance.cases import Case

Obj = dict[str, Any]
_CONTROLLED = ("HTTPRoute", "InferencePool")


@dataclass(frozen=True)
class Target:
    """Where to send requests: a base URL and the headers/TLS settings it needs."""

    url: str
    headers: dict[str, str]
    ca_file: str | None = None

    def pool(self) -> urllib3.PoolManager:
        if self.ca_file:
            return urllib3.PoolManager(cert_reqs="CERT_REQUIRED", ca_certs=self.ca_file)
        return urllib3.PoolManager()


def normalize(obj: Any) -> Any:
    """An object or Status with server-assigned values replaced by placeholders."""
    if not isinstance(obj, dict):
        return obj
    out = json.loads(json.dumps(obj))
    meta = out.get("metadata")
    if isinstance(meta, dict):
        meta.pop("managedFields", None)
        for key in ("uid", "creationTimestamp", "resourceVersion"):
            if key in meta:
                meta[key] = f"<{key}>"
    if out.get("kind") in _CONTROLLED:
        out.pop("status", None)
    if out.get("kind") == "Status":
        _status(out)
    if isinstance(out.get("object"), dict):  # a watch event
        out["object"] = normalize(out["object"])
    if isinstance(out.get("items"), list):
        out["items"] = [normalize(i) for i in out["items"]]
    return out


def _status(status: Obj) -> None:
    """Placeholders for uids, and several causes in a stable order.

    The apiserver walks objects in Go map order, so several causes may come in any order: both
    servers' causes are sorted, and the message rebuilt from them once it is checked to list
    exactly those causes.
    """
    details = status.get("details")
    if not isinstance(details, dict):
        return
    if "uid" in details:
        details["uid"] = "<uid>"
    causes = details.get("causes")
    if not isinstance(causes, list) or len(causes) < 2:
        return
    texts = [f"{c.get('field')}: {c.get('message')}" for c in causes]
    message = str(status.get("message", ""))
    prefix, _, listed = message.partition(": [")
    if listed != ", ".join(texts) + "]":
        return  # left as is: the comparison shows the difference
    details["causes"] = sorted(causes, key=lambda c: json.dumps(c, sort_keys=True))
    status["message"] = f"{prefix}: [{', '.join(sorted(texts))}]"


def _fill(value: Any, captured: dict[str, str]) -> Any:
    """``value`` with each ``{rv:NAME}`` string replaced by the captured resourceVersion."""
    if isinstance(value, str):
        for name, rv in captured.items():
            value = value.replace(f"{{rv:{name}}}", rv)
        return value
    if isinstance(value, dict):
        return {k: _fill(v, captured) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, captured) for v in value]
    return value


def _warnings(headers: Any) -> list[str]:
    values = headers.getlist("Warning") if hasattr(headers, "getlist") else []
    return sorted(re.sub(r"^299 - ", "", v) for v in values)


def replay(target: Target, case: Case) -> list[Obj]:
    """The normalized answers to the case's requests, then the objects read back."""
    http = target.pool()
    captured: dict[str, str] = {}
    answers: list[Obj] = []
    for req in case.requests:
        path, query = req.path, req.query
        for name, rv in captured.items():
            query = query.replace(f"{{rv:{name}}}", rv)
        url = target.url + path + (f"?{query}" if query else "")
        body = None if req.body is None else json.dumps(_fill(req.body, captured)).encode()
        headers = {**target.headers, "Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = req.content_type
        resp = http.request(req.method, url, body=body, headers=headers, timeout=30.0,
                            preload_content=True)
        text = resp.data.decode()
        payload: Any
        if "watch=true" in query:
            payload = [normalize(json.loads(line)) for line in text.splitlines() if line.strip()]
        else:
            try:
                payload = json.loads(text)
            except ValueError:
                payload = text
        if req.capture and isinstance(payload, dict):
            captured[req.capture] = payload["metadata"]["resourceVersion"]
        if isinstance(payload, dict) and "items" in payload:
            payload = {"names": [i["metadata"]["name"] for i in payload["items"]]}
        answers.append({"status": resp.status, "warnings": _warnings(resp.headers),
                        "body": normalize(payload)})
    for path in case.read:
        resp = http.request("GET", target.url + path, headers=target.headers, timeout=30.0)
        answers.append({"read": path, "status": resp.status,
                        "body": normalize(json.loads(resp.data.decode()))})
    http.clear()
    return answers

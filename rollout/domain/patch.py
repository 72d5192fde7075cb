"""Typed JSON-patch operations (RFC 6902): what a decision asks of the cluster, as data.

Literal op names make a misspelt op a type error; the adapters build these and the one fenced
writer sends them.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict


class PatchOp(TypedDict):
    op: Literal["add", "remove", "replace", "test"]
    path: str
    value: NotRequired[Any]


Ops = list[PatchOp]


def add(path: str, value: Any) -> PatchOp:
    return {"op": "add", "path": path, "value": value}


def replace(path: str, value: Any) -> PatchOp:
    return {"op": "replace", "path": path, "value": value}


def remove(path: str) -> PatchOp:
    return {"op": "remove", "path": path}


def test(path: str, value: Any) -> PatchOp:
    return {"op": "test", "path": path, "value": value}

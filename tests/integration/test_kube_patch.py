"""RFC 7386 merge patch and RFC 6902 JSON patch, as the emulator implements them."""

from __future__ import annotations

from typing import Any

import pytest

from sandbox.kube.patch import (
    PatchApplyError,
    PatchDecodeError,
    json_patch,
    merge_patch,
    parse_pointer,
)
from sandbox.kube.selectors import parse_label_selector


def test_merge_patch_rfc7386_examples() -> None:
    assert merge_patch({"a": "b"}, {"a": "c"}) == {"a": "c"}
    assert merge_patch({"a": "b"}, {"b": "c"}) == {"a": "b", "b": "c"}
    assert merge_patch({"a": "b"}, {"a": None}) == {}
    assert merge_patch({"a": [{"b": "c"}]}, {"a": [1]}) == {"a": [1]}
    assert merge_patch({"e": None}, {"a": 1}) == {"e": None, "a": 1}
    assert merge_patch([1, 2], {"a": "b", "c": None}) == {"a": "b"}
    assert merge_patch({}, {"a": {"bb": {"ccc": None}}}) == {"a": {"bb": {}}}


def test_pointer_escaping() -> None:
    assert parse_pointer("/a~1b/m~0n/~01") == ["a/b", "m~n", "~1"]
    assert parse_pointer("") == []
    # As the apiserver's json-patch library: the first segment is dropped unread.
    assert parse_pointer("spec/hostnames") == ["hostnames"]


def test_json_patch_operations() -> None:
    doc: dict[str, Any] = {"foo": ["bar", "baz"], "m": {"a/b": 1}}
    out = json_patch(doc, [
        {"op": "add", "path": "/foo/1", "value": "qux"},
        {"op": "add", "path": "/foo/-", "value": "end"},
        {"op": "remove", "path": "/foo/0"},
        {"op": "replace", "path": "/m/a~1b", "value": 2},
        {"op": "copy", "from": "/m", "path": "/n"},
        {"op": "move", "from": "/n/a~1b", "path": "/moved"},
        {"op": "test", "path": "/foo", "value": ["qux", "baz", "end"]},
    ])
    assert out == {"foo": ["qux", "baz", "end"], "m": {"a/b": 2}, "n": {}, "moved": 2}
    assert doc == {"foo": ["bar", "baz"], "m": {"a/b": 1}}  # the input is untouched


@pytest.mark.parametrize("ops", [
    [{"op": "test", "path": "/a", "value": 2}],
    [{"op": "test", "path": "/a", "value": True}],  # true is not 1
    [{"op": "test", "path": "/missing", "value": 1}],
    [{"op": "remove", "path": "/missing"}],
    [{"op": "replace", "path": "/list/3", "value": 1}],
    [{"op": "add", "path": "/list/5", "value": 1}],
    [{"op": "add", "path": "/list/01", "value": 1}],
    [{"op": "move", "from": "/obj", "path": "/obj/child"}],
])
def test_json_patch_failures_do_not_apply(ops: list[dict[str, Any]]) -> None:
    doc = {"a": 1, "list": [0], "obj": {}}
    with pytest.raises(PatchApplyError):
        json_patch(doc, ops)


def test_lenient_where_the_server_is_lenient() -> None:
    """As kube-apiserver (see the conformance cases): `replace` of a missing object key adds
    it, and a missing key tests equal to null."""
    doc = {"a": 1}
    assert json_patch(doc, [{"op": "replace", "path": "/b", "value": 2}]) == {"a": 1, "b": 2}
    assert json_patch(doc, [{"op": "test", "path": "/b", "value": None}]) == doc


@pytest.mark.parametrize("ops", [{"op": "add"}, "add", [1], [["add"]]])
def test_malformed_json_patch(ops: Any) -> None:
    """Only a body that is not a list of objects is malformed (400, as the server)."""
    with pytest.raises(PatchDecodeError, match="cannot unmarshal"):
        json_patch({}, ops)


@pytest.mark.parametrize("ops", [
    [{"path": "/a"}], [{"op": "jump", "path": "/a"}], [{"op": "add", "path": "/a"}],
    [{"op": "move", "path": "/a"}],
])
def test_a_bad_operation_fails_when_applied(ops: Any) -> None:
    """An unknown or incomplete operation is the server's generic 422, not a 400."""
    with pytest.raises(PatchApplyError):
        json_patch({}, ops)


def test_label_selector_grammar() -> None:
    reqs = parse_label_selector("a=1,b!=2,c in (x, y),d notin (z),e,!f,g==3")
    assert [(r.key, r.op, r.values) for r in reqs] == [
        ("a", "=", ("1",)), ("b", "!=", ("2",)), ("c", "in", ("x", "y")),
        ("d", "notin", ("z",)), ("e", "exists", ()), ("f", "!exists", ()), ("g", "=", ("3",)),
    ]
    labels = {"a": "1", "c": "y", "e": "", "g": "3"}
    assert all(r.matches(labels) for r in reqs)

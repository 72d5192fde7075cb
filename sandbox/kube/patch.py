"""JSON merge patch (RFC 7386) and JSON patch (RFC 6902), written here to keep them exact.

The bot's safety rests on these: a merge patch that carries ``metadata.resourceVersion`` and
a JSON patch whose ``test`` op guards a fencing annotation. ``PatchDecodeError`` is a malformed
patch (the server answers 400); ``PatchApplyError`` is a patch that does not apply, including
a failed ``test`` (the server answers 422).
"""

from __future__ import annotations

import copy
from typing import Any


class PatchDecodeError(Exception):
    """The patch document is not a valid patch."""


class PatchApplyError(Exception):
    """The patch is well formed but cannot be applied to this document."""


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, ``null`` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result: dict[str, Any] = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def json_equal(a: Any, b: Any) -> bool:
    """JSON value equality: unlike Python's ``==``, ``true`` is not ``1``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and bool(a == b)


def parse_pointer(pointer: str) -> list[str]:
    """RFC 6901 tokens: ``~1`` is ``/`` and ``~0`` is ``~`` (decoded in that order)."""
    if pointer == "":
        return []
    # Like the apiserver's json-patch library, the first segment is dropped unread: a pointer
    # without its leading '/' loses its first token ("spec/hostnames" is "/hostnames").
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer.split("/")[1:]]


def _index(token: str, length: int, *, allow_end: bool, pointer: str) -> int:
    if allow_end and token == "-":  # noqa: S105 - the RFC 6902 end-of-array token
        return length
    if not token.isdigit() or (len(token) > 1 and token[0] == "0"):
        raise PatchApplyError(f"invalid array index {token!r} in {pointer}")
    idx = int(token)
    limit = length if allow_end else length - 1
    if idx > limit:
        raise PatchApplyError(f"array index {idx} out of bounds in {pointer}")
    return idx


def _parent(doc: Any, tokens: list[str], pointer: str) -> Any:
    cur = doc
    for tok in tokens[:-1]:
        if isinstance(cur, dict):
            if tok not in cur:
                raise PatchApplyError(f"path {pointer} does not exist: missing {tok!r}")
            cur = cur[tok]
        elif isinstance(cur, list):
            cur = cur[_index(tok, len(cur), allow_end=False, pointer=pointer)]
        else:
            raise PatchApplyError(f"path {pointer} does not exist")
    return cur


def _get(doc: Any, pointer: str) -> Any:
    tokens = parse_pointer(pointer)
    if not tokens:
        return doc
    parent = _parent(doc, tokens, pointer)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchApplyError(f"path {pointer} does not exist")
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(last, len(parent), allow_end=False, pointer=pointer)]
    raise PatchApplyError(f"path {pointer} does not exist")


def _add(doc: Any, pointer: str, value: Any) -> Any:
    tokens = parse_pointer(pointer)
    if not tokens:
        return value
    parent = _parent(doc, tokens, pointer)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(last, len(parent), allow_end=True, pointer=pointer), value)
    else:
        raise PatchApplyError(f"cannot add at {pointer}: parent is not a container")
    return doc


def _remove(doc: Any, pointer: str) -> tuple[Any, Any]:
    tokens = parse_pointer(pointer)
    if not tokens:
        raise PatchApplyError("cannot remove the whole document")
    parent = _parent(doc, tokens, pointer)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchApplyError(f"unable to remove nonexistent key: {last}: missing value")
        return doc, parent.pop(last)
    if isinstance(parent, list):
        return doc, parent.pop(_index(last, len(parent), allow_end=False, pointer=pointer))
    raise PatchApplyError(f"cannot remove {pointer}")


def _missing_key(doc: Any, pointer: str) -> bool:
    """Whether ``pointer`` names an absent key of an existing object."""
    tokens = parse_pointer(pointer)
    try:
        parent = _parent(doc, tokens, pointer) if tokens else None
    except PatchApplyError:
        return False
    return isinstance(parent, dict) and tokens[-1] not in parent


def go_kind(value: Any) -> str:
    """The JSON kind as Go's decoder names it in an unmarshal error."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return "string" if isinstance(value, str) else "null"


def _operations(ops: Any) -> list[dict[str, Any]]:
    """The operations, checked as kube-apiserver checks them.

    Only a body that does not decode into a list of operation objects is a malformed patch
    (400, the decoder's words); anything wrong inside an operation is found when it is
    applied (422).
    """
    if not isinstance(ops, list):
        raise PatchDecodeError(f"error decoding patch: json: cannot unmarshal {go_kind(ops)} "
                               "into Go value of type []handlers.jsonPatchOp")
    for op in ops:
        if not isinstance(op, dict):
            raise PatchDecodeError(f"error decoding patch: json: cannot unmarshal "
                                   f"{go_kind(op)} into Go value of type handlers.jsonPatchOp")
    for op in ops:
        if not isinstance(op.get("op"), str) or not isinstance(op.get("path"), str):
            raise PatchApplyError(f"operation {op.get('op')!r} needs a string 'op' and 'path'")
        if op["op"] in ("add", "replace", "test") and "value" not in op:
            raise PatchApplyError(f"operation {op['op']!r} at {op['path']} has no 'value'")
        if op["op"] in ("move", "copy") and not isinstance(op.get("from"), str):
            raise PatchApplyError(f"operation {op['op']!r} at {op['path']} has no 'from'")
        if op["op"] not in ("add", "remove", "replace", "move", "copy", "test"):
            raise PatchApplyError(f"unexpected kind of operation: {op['op']!r}")
    return ops


def json_patch(doc: Any, ops: Any) -> Any:
    """Apply RFC 6902 operations to a copy of ``doc``; all or nothing."""
    result = copy.deepcopy(doc)
    for op in _operations(ops):
        kind, path = op["op"], op["path"]
        if kind == "add":
            result = _add(result, path, copy.deepcopy(op["value"]))
        elif kind == "remove":
            result, _ = _remove(result, path)
        elif kind == "replace":
            tokens = parse_pointer(path)
            if not tokens:
                result = copy.deepcopy(op["value"])
            elif isinstance(_parent(result, tokens, path), dict):
                # The apiserver's json-patch library replaces a missing object key as an add.
                result = _add(result, path, copy.deepcopy(op["value"]))
            else:
                _get(result, path)  # an array element must exist
                result, _ = _remove(result, path)
                result = _add(result, path, copy.deepcopy(op["value"]))
        elif kind == "move":
            if path.startswith(op["from"] + "/"):
                raise PatchApplyError(f"cannot move {op['from']} into its own child {path}")
            result, value = _remove(result, op["from"])
            result = _add(result, path, value)
        elif kind == "copy":
            result = _add(result, path, copy.deepcopy(_get(result, op["from"])))
        else:  # test
            try:
                actual = _get(result, path)
            except PatchApplyError as exc:
                if op["value"] is None and _missing_key(result, path):
                    continue  # as the apiserver's library: a missing key tests equal to null
                raise PatchApplyError(f"testing value {path} failed: {exc}") from exc
            if not json_equal(actual, op["value"]):
                raise PatchApplyError(f"testing value {path} failed: test failed")
    return result

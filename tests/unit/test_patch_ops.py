"""The typed JSON-patch operations are the RFC 6902 objects the API server reads."""

from __future__ import annotations

from rollout.domain import patch


def test_each_op_is_the_rfc_6902_object() -> None:
    assert patch.add("/a/b", {"x": 1}) == {"op": "add", "path": "/a/b", "value": {"x": 1}}
    assert patch.replace("/a", [1]) == {"op": "replace", "path": "/a", "value": [1]}
    assert patch.test("/a~1b", "3") == {"op": "test", "path": "/a~1b", "value": "3"}
    assert patch.remove("/a") == {"op": "remove", "path": "/a"}

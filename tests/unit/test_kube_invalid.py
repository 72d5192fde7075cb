"""A write the API server refuses as invalid (422, reason Invalid: the CRD's schema or rules,
an admission policy) is a refusal that quotes the server's field causes, not a temporary
failure: the same write would be refused again (a double of the official client)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from rollout.adapters.kube.fenced import FencedObjects
from rollout.adapters.kube.httproute import HTTPROUTE
from rollout.domain.errors import ClusterRejected, ClusterUnavailable, NeedsOperator, Refused
from tests.unit.kube_double import Cluster, Obj

TOO_MANY = {"reason": "FieldValueTooMany", "field": "spec.rules[0].backendRefs",
            "message": "Too many: 17: must have at most 16 items"}


def _status(reason: str, causes: list[dict[str, str]] | None = None,
            message: str = "HTTPRoute.gateway.networking.k8s.io \"r\" is invalid: …") -> str:
    details: dict[str, Any] = {"name": "r", "group": "gateway.networking.k8s.io",
                               "kind": "HTTPRoute"}
    if causes is not None:
        details["causes"] = causes
    return json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                       "message": message, "reason": reason, "details": details, "code": 422})


class Refusing(Cluster):
    """Every PATCH answered 422 with `body`; the object never moves."""

    def __init__(self, body: str) -> None:
        super().__init__({"metadata": {"name": "r", "namespace": "default",
                                       "resourceVersion": "7", "annotations": {}}})
        self.body = body

    def patch_namespaced_custom_object(self, *args: Any, **kwargs: Any) -> Obj:
        self.patches += 1
        exc = ApiException(status=422, reason="Unprocessable Entity")
        exc.body = self.body
        raise exc


def _send(body: str) -> Exception:
    api = Refusing(body)
    routes = FencedObjects(api, HTTPROUTE)  # type: ignore[arg-type]
    current = routes.latest("default", "r", fence=3)
    with pytest.raises(Exception) as raised:
        routes.send("default", "r", current, [], fence=3)
    assert api.patches == 1  # refused once, never sent again
    return raised.value


def test_an_invalid_object_is_a_refusal_quoting_the_field_causes() -> None:
    refused = _send(_status("Invalid", [TOO_MANY]))
    assert isinstance(refused, ClusterRejected)
    assert isinstance(refused, Refused) and not isinstance(refused, ClusterUnavailable)
    assert isinstance(refused, NeedsOperator)  # a step it refuses pauses for a person
    assert str(refused) == (
        "the Kubernetes API refused HTTPRoute default/r as invalid (spec.rules[0].backendRefs: "
        "Too many: 17: must have at most 16 items); nothing was written")


def test_many_causes_are_quoted_briefly() -> None:
    causes = [{"field": f"spec.rules[{i}].backendRefs[0].weight", "message": "x" * 300}
              for i in range(5)] + [{"message": "no field"}]
    said = str(_send(_status("Invalid", causes)))
    assert said.count("spec.rules[") == 3
    assert "x" * 120 + "…" in said and "x" * 121 not in said
    assert said.endswith("and 3 more); nothing was written")


def test_an_invalid_object_without_causes_quotes_the_servers_message() -> None:
    said = str(_send(_status("Invalid", message="the server rejected our request")))
    assert said == ("the Kubernetes API refused HTTPRoute default/r as invalid (the server "
                    "rejected our request); nothing was written")


@pytest.mark.parametrize("body", [_status(""), _status("BadRequest"), "not json", ""])
def test_a_422_that_does_not_say_invalid_is_translated_as_before(body: str) -> None:
    """The kind is decided by status code and reason, never by the message's words."""
    assert type(_send(body)) is ClusterUnavailable

"""Fault injection and the request log."""

from __future__ import annotations

import json
import time

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from sandbox.kube import Fault, KubeEmulator

GW = ("gateway.networking.k8s.io", "v1")
NS = "default"


def _patch(co: client.CustomObjectsApi, weight: int, name: str = "routes-to-llm") -> None:
    co.patch_namespaced_custom_object(*GW, NS, "httproutes", name, {"spec": {"rules": [{
        "backendRefs": [{"group": "inference.networking.k8s.io", "kind": "InferencePool",
                         "name": "llm-pool", "weight": weight}]}]}})


def test_status_fault_fails_count_requests_then_clears(kube_emulator: KubeEmulator,
                                                       kube_api: client.ApiClient) -> None:
    co = client.CustomObjectsApi(kube_api)
    kube_emulator.inject(Fault(verb="patch", resource="httproutes", status=500, count=2))
    for _ in range(2):
        with pytest.raises(ApiException) as err:
            _patch(co, 7)
        assert err.value.body is not None
        body = json.loads(err.value.body)
        assert (err.value.status, body["kind"], body["reason"]) == (500, "Status",
                                                                    "InternalError")
    route = kube_emulator.get_object(*GW, "httproutes", NS, "routes-to-llm")
    assert route is not None and route["spec"]["rules"][0]["backendRefs"][0]["weight"] == 100
    co.get_namespaced_custom_object(*GW, NS, "httproutes", "routes-to-llm")  # other verbs pass
    _patch(co, 7)  # the third one goes through


def test_fault_matches_name_and_namespace(kube_emulator: KubeEmulator,
                                          kube_api: client.ApiClient) -> None:
    co = client.CustomObjectsApi(kube_api)
    kube_emulator.inject(Fault(verb="patch", resource="httproutes", status=409,
                               name="llm-route", namespace=NS))
    _patch(co, 5)  # another route: untouched
    with pytest.raises(ApiException) as err:
        _patch(co, 5, name="llm-route")
    assert err.value.status == 409 and err.value.body is not None
    assert json.loads(err.value.body)["reason"] == "Conflict"
    kube_emulator.inject(Fault(verb="get", resource="httproutes", status=503, count=5))
    kube_emulator.clear_faults()
    co.get_namespaced_custom_object(*GW, NS, "httproutes", "llm-route")


def test_stall_then_proceed_and_stall_then_fail(kube_emulator: KubeEmulator,
                                                kube_api: client.ApiClient) -> None:
    co = client.CustomObjectsApi(kube_api)
    kube_emulator.inject(Fault(verb="get", resource="httproutes", status=None,
                               stall_seconds=0.3))
    started = time.monotonic()
    co.get_namespaced_custom_object(*GW, NS, "httproutes", "routes-to-llm")
    assert time.monotonic() - started >= 0.3
    kube_emulator.inject(Fault(verb="list", resource="httproutes", status=504,
                               stall_seconds=0.2))
    started = time.monotonic()
    with pytest.raises(ApiException) as err:
        co.list_namespaced_custom_object(*GW, NS, "httproutes")
    assert err.value.status == 504 and time.monotonic() - started >= 0.2
    # the fault met its one request and is gone: the next list is served (a wall-clock bound
    # here measured the machine's load as well)
    co.list_namespaced_custom_object(*GW, NS, "httproutes")
    lists = [r.status for r in kube_emulator.requests
             if r.verb == "list" and r.resource == "httproutes"]
    assert lists[-2:] == [504, 200]


def test_request_log_records_what_was_asked(kube_emulator: KubeEmulator,
                                            kube_api: client.ApiClient) -> None:
    co = client.CustomObjectsApi(kube_api)
    kube_emulator.clear_requests()
    co.get_namespaced_custom_object(*GW, NS, "httproutes", "routes-to-llm")
    co.api_client.set_default_header("Content-Type", "application/json-patch+json")
    ops = [{"op": "replace", "path": "/spec/rules/0/backendRefs/1/weight", "value": 10}]
    co.patch_namespaced_custom_object(*GW, NS, "httproutes", "routes-to-llm", ops)
    with pytest.raises(ApiException):
        co.get_namespaced_custom_object_status(*GW, NS, "httproutes", "missing")
    records = kube_emulator.requests
    assert [(r.method, r.verb, r.resource, r.name, r.subresource, r.status) for r in records] == [
        ("GET", "get", "httproutes", "routes-to-llm", None, 200),
        ("PATCH", "patch", "httproutes", "routes-to-llm", None, 200),
        ("GET", "get", "httproutes", "missing", "status", 404),
    ]
    patch = records[1]
    assert patch.namespace == NS
    assert patch.path == "/apis/gateway.networking.k8s.io/v1/namespaces/default/httproutes/" \
        "routes-to-llm"
    assert patch.content_type.startswith("application/json-patch+json")
    assert json.loads(patch.body) == ops
    assert records[0].at <= records[1].at <= records[2].at
    kube_emulator.clear_requests()
    assert kube_emulator.requests == []


@pytest.mark.parametrize("fault", [
    Fault(verb="patch", resource="httproutes", status=None, drop_after=True),
    Fault(verb="patch", resource="httproutes", status=None, answer_after=504),
], ids=["drop_after", "answer_after"])
def test_the_emulator_refuses_a_fault_that_serves_the_request_first(
        kube_emulator: KubeEmulator, kube_api: client.ApiClient, fault: Fault) -> None:
    """Only the tests' proxy in front of the real API server can serve a request and then
    fail it: the emulator says so and arms nothing."""
    with pytest.raises(ValueError, match="real API server's proxy"):
        kube_emulator.inject(fault)
    _patch(client.CustomObjectsApi(kube_api), 7)  # served as usual
    route = kube_emulator.get_object(*GW, "httproutes", NS, "routes-to-llm")
    assert route is not None and route["spec"]["rules"][0]["backendRefs"][0]["weight"] == 7

"""CRD validation in the emulator: 422 Invalid with field causes, and nothing changes."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from sandbox.kube import KubeEmulator

GW = ("gateway.networking.k8s.io", "v1")
NS = "default"


@pytest.fixture
def co(kube_api: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(kube_api)


def _invalid(exc: ApiException) -> dict[str, Any]:
    assert exc.body is not None
    body: dict[str, Any] = json.loads(exc.body)
    assert exc.status == 422
    assert (body["kind"], body["status"], body["reason"], body["code"]) == (
        "Status", "Failure", "Invalid", 422)
    return body


def _fields(exc: ApiException) -> list[str]:
    return [c.get("field", "") for c in _invalid(exc)["details"]["causes"]]


def _set_weights(co: client.CustomObjectsApi, refs: list[dict[str, Any]]) -> None:
    co.patch_namespaced_custom_object(*GW, NS, "httproutes", "routes-to-llm",
                                      {"spec": {"rules": [{"backendRefs": refs}]}})


def _pool_ref(name: str, weight: Any) -> dict[str, Any]:
    return {"group": "inference.networking.k8s.io", "kind": "InferencePool", "name": name,
            "weight": weight}


@pytest.mark.parametrize(("weight", "detail"), [
    (1_000_001, "should be less than or equal to 1000000"),
    (-1, "should be greater than or equal to 0"),
    (1.5, "must be of type integer"),
    ("10", "must be of type integer"),
    (True, "must be of type int32"),
])
def test_backend_weight_out_of_range_or_wrong_type(
    co: client.CustomObjectsApi, kube_emulator: KubeEmulator, weight: Any, detail: str
) -> None:
    before = kube_emulator.get_object(*GW, "httproutes", NS, "routes-to-llm")
    with pytest.raises(ApiException) as err:
        _set_weights(co, [_pool_ref("llm-pool", weight)])
    body = _invalid(err.value)
    assert body["details"]["causes"][0]["field"] == "spec.rules[0].backendRefs[0].weight"
    assert detail in body["message"]
    assert body["message"].startswith('HTTPRoute.gateway.networking.k8s.io "routes-to-llm" '
                                      "is invalid: ")
    assert kube_emulator.get_object(*GW, "httproutes", NS, "routes-to-llm") == before


def test_weight_bounds_are_inclusive(co: client.CustomObjectsApi) -> None:
    _set_weights(co, [_pool_ref("llm-pool", 1_000_000), _pool_ref("llm-pool-version-2", 0)])
    route = cast(dict[str, Any],
                 co.get_namespaced_custom_object(*GW, NS, "httproutes", "routes-to-llm"))
    assert [(b["name"], b["weight"]) for b in route["spec"]["rules"][0]["backendRefs"]] == [
        ("llm-pool", 1_000_000), ("llm-pool-version-2", 0)]


def test_weight_defaults_to_one(co: client.CustomObjectsApi) -> None:
    _set_weights(co, [{"group": "inference.networking.k8s.io", "kind": "InferencePool",
                       "name": "llm-pool"}])
    route = cast(dict[str, Any],
                 co.get_namespaced_custom_object(*GW, NS, "httproutes", "routes-to-llm"))
    assert route["spec"]["rules"][0]["backendRefs"][0]["weight"] == 1


def test_seventeen_backend_refs_is_too_many(co: client.CustomObjectsApi) -> None:
    with pytest.raises(ApiException) as err:
        _set_weights(co, [_pool_ref(f"p{i}", 1) for i in range(17)])
    body = _invalid(err.value)
    assert body["details"]["causes"][0] == {
        "reason": "FieldValueTooMany", "field": "spec.rules[0].backendRefs",
        "message": "Too many: 17: must have at most 16 items"}
    _set_weights(co, [_pool_ref(f"p{i}", 1) for i in range(16)])


def test_rules_parent_refs_and_backend_names(co: client.CustomObjectsApi) -> None:
    with pytest.raises(ApiException) as err:
        co.patch_namespaced_custom_object(*GW, NS, "httproutes", "routes-to-llm",
                                          {"spec": {"rules": [{}] * 17}})
    # A blocking schema error (too many) stops the CEL rules, and the server says so.
    assert _fields(err.value) == ["spec.rules", "<nil>"]
    with pytest.raises(ApiException) as err:
        co.patch_namespaced_custom_object(
            *GW, NS, "httproutes", "routes-to-llm",
            {"spec": {"parentRefs": [{"name": "g", "sectionName": f"s{i}"} for i in range(33)]}})
    assert _fields(err.value) == ["spec.parentRefs", "<nil>"]
    with pytest.raises(ApiException) as err:
        _set_weights(co, [{"group": "inference.networking.k8s.io", "kind": "InferencePool",
                           "weight": 1}, _pool_ref("x" * 254, 1)])
    assert _fields(err.value) == ["spec.rules[0].backendRefs[0].name",
                                  "spec.rules[0].backendRefs[1].name", "<nil>"]
    with pytest.raises(ApiException) as err:  # a Service backend needs a port (CRD CEL rule)
        _set_weights(co, [{"name": "svc"}])
    assert _fields(err.value) == ["spec.rules[0].backendRefs[0]"]


@pytest.mark.parametrize("group", ["llm-d.ai", "inference.networking.x-k8s.io"])
def test_model_rewrite_rules(co: client.CustomObjectsApi, group: str) -> None:
    def rewrite(targets: list[dict[str, Any]], pool: dict[str, Any] | None = None
                ) -> dict[str, Any]:
        return {
            "apiVersion": f"{group}/v1alpha2", "kind": "InferenceModelRewrite",
            "metadata": {"name": "rw"},
            "spec": {"poolRef": pool if pool is not None else {"name": "llm-pool"},
                     "rules": [{"matches": [{"model": {"value": "m"}}], "targets": targets}]},
        }

    def create(body: dict[str, Any]) -> dict[str, Any]:
        return cast(dict[str, Any], co.create_namespaced_custom_object(
            group, "v1alpha2", NS, "inferencemodelrewrites", body))

    cases: list[tuple[list[dict[str, Any]], str]] = [
        ([{"modelRewrite": "a", "weight": 0}], "spec.rules[0].targets[0].weight"),
        ([{"modelRewrite": "a", "weight": 1_000_001}], "spec.rules[0].targets[0].weight"),
        ([], "spec.rules[0].targets"),
        ([{"weight": 5}], "spec.rules[0].targets[0].modelRewrite"),
    ]
    for targets, field in cases:
        with pytest.raises(ApiException) as err:
            create(rewrite(targets))
        assert field in _fields(err.value), (targets, _fields(err.value))
    with pytest.raises(ApiException) as err:
        create(rewrite([{"modelRewrite": "a"}], pool={}))
    assert _fields(err.value) == ["spec.poolRef.name"]
    ok = create(rewrite([{"modelRewrite": "a", "weight": 1}, {"modelRewrite": "b",
                                                               "weight": 1_000_000}]))
    assert ok["spec"]["poolRef"] == {"group": "inference.networking.k8s.io",
                                     "kind": "InferencePool", "name": "llm-pool"}
    assert ok["spec"]["rules"][0]["matches"][0]["model"]["type"] == "Exact"
    co.delete_namespaced_custom_object(group, "v1alpha2", NS, "inferencemodelrewrites", "rw")
    create(rewrite([{"modelRewrite": "a"}, {"modelRewrite": "b"}]))  # no weights at all: fine


def test_inference_pool_v1_rules(co: client.CustomObjectsApi) -> None:
    def pool(spec: dict[str, Any]) -> dict[str, Any]:
        return {"apiVersion": "inference.networking.k8s.io/v1", "kind": "InferencePool",
                "metadata": {"name": "p"}, "spec": spec}

    create = co.create_namespaced_custom_object
    with pytest.raises(ApiException) as err:
        create("inference.networking.k8s.io", "v1", NS, "inferencepools", pool({}))
    assert _fields(err.value) == ["spec.selector", "spec.targetPorts", "<nil>"]
    with pytest.raises(ApiException) as err:
        create("inference.networking.k8s.io", "v1", NS, "inferencepools", pool({
            "selector": {"matchLabels": {"app": "p"}},
            "targetPorts": [{"number": 0}] + [{"number": i} for i in range(1, 9)],
            "endpointPickerRef": {"name": "epp"},
        }))
    # Too many ports is a blocking error: the CEL rule on endpointPickerRef is not run.
    assert sorted(_fields(err.value)) == ["<nil>", "spec.targetPorts",
                                          "spec.targetPorts[0].number"]
    created = create("inference.networking.k8s.io", "v1", NS, "inferencepools", pool({
        "selector": {"matchLabels": {"app": "p"}}, "targetPorts": [{"number": 8000}]}))
    assert cast(dict[str, Any], created)["spec"]["appProtocol"] == "http"


def test_legacy_pool_and_objective_rules(co: client.CustomObjectsApi) -> None:
    with pytest.raises(ApiException) as err:
        co.create_namespaced_custom_object(
            "inference.networking.x-k8s.io", "v1alpha2", NS, "inferencepools",
            {"metadata": {"name": "old"}, "spec": {"selector": {"app": "x"},
                                                   "targetPortNumber": 70000}})
    assert sorted(_fields(err.value)) == ["spec.extensionRef", "spec.targetPortNumber"]
    legacy = cast(dict[str, Any], co.create_namespaced_custom_object(
        "inference.networking.x-k8s.io", "v1alpha2", NS, "inferencepools",
        {"metadata": {"name": "old"}, "spec": {"selector": {"app": "x"},
                                               "targetPortNumber": 8000,
                                               "extensionRef": {"name": "epp"}}}))
    assert legacy["status"]["parent"][0]["parentRef"] == {
        "group": "gateway.networking.k8s.io", "kind": "Status", "name": "default"}
    with pytest.raises(ApiException) as err:
        co.create_namespaced_custom_object(
            "llm-d.ai", "v1alpha2", NS, "inferenceobjectives",
            {"metadata": {"name": "o"}, "spec": {"poolRef": {}, "priority": "high"}})
    assert _fields(err.value) == ["spec.poolRef.name", "spec.priority"]


@pytest.mark.parametrize("name", ["Bad_Name", "UPPER", "-start", "a" * 254, ""])
def test_object_names_are_dns_subdomains(co: client.CustomObjectsApi, name: str) -> None:
    body = {"metadata": {"name": name}, "spec": {"poolRef": {"name": "llm-pool"}}}
    with pytest.raises(ApiException) as err:
        co.create_namespaced_custom_object("llm-d.ai", "v1alpha2", NS, "inferenceobjectives",
                                           body)
    assert _fields(err.value) == ["metadata.name"]


def test_namespace_names_are_dns_labels(kube_api: client.ApiClient) -> None:
    core = client.CoreV1Api(kube_api)
    # the client sends a dict body as it is; its hints name only its V1Namespace model
    with pytest.raises(ApiException) as err:
        core.create_namespace({"metadata": {"name": "has.dot"}})  # type: ignore[arg-type]
    assert _fields(err.value) == ["metadata.name"]
    core.create_namespace({"metadata": {"name": "ok-" + "a" * 60}})  # type: ignore[arg-type]

"""Discovery and OpenAPI documents, over plain HTTP."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from sandbox.kube import KubeEmulator

AGGREGATED = ("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
              "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,"
              "application/json")


def _get(emulator: KubeEmulator, path: str, accept: str = "application/json"
         ) -> tuple[str, Any]:
    url = emulator.url + path  # always the emulator's own http:// URL
    request = urllib.request.Request(url, headers={"Accept": accept})  # noqa: S310
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
        return response.headers["Content-Type"], json.loads(response.read())


def test_version_and_core_discovery(kube_emulator: KubeEmulator) -> None:
    assert _get(kube_emulator, "/version")[1]["major"] == "1"
    assert _get(kube_emulator, "/api")[1]["versions"] == ["v1"]
    resources = {r["name"]: r for r in _get(kube_emulator, "/api/v1")[1]["resources"]}
    assert resources["namespaces"]["namespaced"] is False
    assert resources["pods"]["shortNames"] == ["po"]
    assert "pods/status" in resources


def test_aggregated_discovery_request_gets_the_plain_form(kube_emulator: KubeEmulator) -> None:
    content_type, groups = _get(kube_emulator, "/apis", accept=AGGREGATED)
    assert content_type == "application/json"
    assert groups["kind"] == "APIGroupList"
    names = [g["name"] for g in groups["groups"]]
    assert names == ["gateway.networking.k8s.io", "inference.networking.k8s.io", "llm-d.ai",
                     "inference.networking.x-k8s.io"]
    gateway = groups["groups"][0]
    assert gateway["preferredVersion"]["version"] == "v1"
    assert [v["version"] for v in gateway["versions"]] == ["v1", "v1beta1"]
    assert _get(kube_emulator, "/api", accept=AGGREGATED)[1]["kind"] == "APIVersions"


def test_group_version_resources(kube_emulator: KubeEmulator) -> None:
    doc = _get(kube_emulator, "/apis/gateway.networking.k8s.io/v1")[1]
    assert doc["kind"] == "APIResourceList"
    by_name = {r["name"]: r for r in doc["resources"]}
    route = by_name["httproutes"]
    assert (route["kind"], route["namespaced"], route["singularName"]) == (
        "HTTPRoute", True, "httproute")
    assert {"get", "list", "watch", "create", "update", "patch", "delete"} <= set(route["verbs"])
    assert by_name["httproutes/status"]["verbs"] == ["get", "patch", "update"]
    pools = _get(kube_emulator, "/apis/inference.networking.k8s.io/v1")[1]
    assert {r["name"]: r for r in pools["resources"]}["inferencepools"]["shortNames"] == [
        "infpool"]
    group = _get(kube_emulator, "/apis/llm-d.ai")[1]
    assert group["kind"] == "APIGroup" and group["preferredVersion"]["version"] == "v1alpha2"


def test_openapi_v3_index_names_field_validation(kube_emulator: KubeEmulator) -> None:
    index = _get(kube_emulator, "/openapi/v3")[1]
    url = index["paths"]["apis/gateway.networking.k8s.io/v1"]["serverRelativeURL"]
    doc = _get(kube_emulator, url)[1]
    op = doc["paths"]["/apis/gateway.networking.k8s.io/v1/namespaces/{namespace}/httproutes/"
                      "{name}"]["patch"]
    assert op["x-kubernetes-group-version-kind"]["kind"] == "HTTPRoute"
    assert "fieldValidation" in [p["name"] for p in op["parameters"]]
    assert "application/strategic-merge-patch+json" not in op["requestBody"]["content"]

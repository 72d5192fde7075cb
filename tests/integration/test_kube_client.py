"""The emulator through the official kubernetes client: verbs, concurrency and watch."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any, cast

import pytest
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from sandbox.kube import KubeEmulator
from tests.support.kube_api import close_api

GW = ("gateway.networking.k8s.io", "v1")
POOL = ("inference.networking.k8s.io", "v1")
LLMD = ("llm-d.ai", "v1alpha2")
NS = "default"


def _obj(answer: object) -> dict[str, Any]:
    """A custom object as the client answers it: typed `object`, the dict of its JSON."""
    return cast(dict[str, Any], answer)


def _name(meta: client.V1ObjectMeta | None) -> str:
    assert meta is not None and meta.name is not None
    return meta.name


def _watch(list_call: Callable[..., Any], *args: Any, **kwargs: Any
           ) -> Iterator[dict[str, Any]]:
    """The client's watch stream (its watch module is unannotated)."""
    events: Iterator[dict[str, Any]] = watch.Watch().stream(  # type: ignore[no-untyped-call]
        list_call, *args, **kwargs)
    return events


def _status(exc: ApiException) -> dict[str, Any]:
    assert exc.body is not None
    body: dict[str, Any] = json.loads(exc.body)
    assert body["kind"] == "Status" and body["status"] == "Failure"
    assert body["code"] == exc.status
    return body


def _route(co: client.CustomObjectsApi, name: str = "routes-to-llm") -> dict[str, Any]:
    return _obj(co.get_namespaced_custom_object(*GW, NS, "httproutes", name))


def _weights(route: dict[str, Any]) -> list[int]:
    return [b["weight"] for b in route["spec"]["rules"][0]["backendRefs"]]


def _new_route(name: str, weights: tuple[int, ...] = (100,)) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name, "labels": {"team": "ml"}},
        "spec": {
            "parentRefs": [{"name": "inference-gateway"}],
            "rules": [{"backendRefs": [
                {"group": "inference.networking.k8s.io", "kind": "InferencePool",
                 "name": "llm-pool", "weight": w} for w in weights]}],
        },
    }


@pytest.fixture
def co(kube_api: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(kube_api)


@pytest.fixture
def core(kube_api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(kube_api)


def test_kubeconfig_loads_with_the_official_client(kube_kubeconfig: Any) -> None:
    # the client's config module is unannotated
    api: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(kube_kubeconfig))
    try:
        route = _obj(client.CustomObjectsApi(api).get_namespaced_custom_object(
            *GW, NS, "httproutes", "routes-to-llm"))
    finally:
        close_api(api)
    assert _weights(route) == [100, 0]


def test_get_seeded_route_with_defaults_and_metadata(co: client.CustomObjectsApi) -> None:
    route = _route(co)
    refs = route["spec"]["rules"][0]["backendRefs"]
    assert [(b["name"], b["weight"]) for b in refs] == [("llm-pool", 100),
                                                        ("llm-pool-version-2", 0)]
    assert all(b["group"] == "inference.networking.k8s.io" for b in refs)
    meta = route["metadata"]
    assert meta["generation"] == 1
    assert int(meta["resourceVersion"]) > 0
    assert meta["uid"] and meta["creationTimestamp"].endswith("Z")


def test_get_missing_is_404_with_the_real_message(co: client.CustomObjectsApi) -> None:
    with pytest.raises(ApiException) as err:
        co.get_namespaced_custom_object(*GW, NS, "httproutes", "nope")
    assert err.value.status == 404
    status = _status(err.value)
    assert status["message"] == 'httproutes.gateway.networking.k8s.io "nope" not found'
    assert status["reason"] == "NotFound"


def test_same_name_in_different_groups_are_different_objects(
    co: client.CustomObjectsApi, kube_emulator: KubeEmulator
) -> None:
    with pytest.raises(ApiException) as err:
        co.get_namespaced_custom_object("inference.networking.x-k8s.io", "v1alpha2", NS,
                                        "inferencepools", "llm-pool")
    assert err.value.status == 404
    assert co.get_namespaced_custom_object(*POOL, NS, "inferencepools", "llm-pool")
    assert kube_emulator.get_object("llm-d.ai", "v1alpha2", "inferencemodelrewrites", NS,
                                    "small-segment-lora") is not None
    assert kube_emulator.get_object("inference.networking.x-k8s.io", "v1alpha2",
                                    "inferencemodelrewrites", NS, "small-segment-lora") is None


def test_httproute_is_also_served_as_v1beta1(co: client.CustomObjectsApi) -> None:
    route = _obj(co.get_namespaced_custom_object("gateway.networking.k8s.io", "v1beta1", NS,
                                                 "httproutes", "routes-to-llm"))
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1beta1"
    assert _weights(route) == [100, 0]


def test_list_label_and_field_selectors(core: client.CoreV1Api,
                                        co: client.CustomObjectsApi) -> None:
    def names(**kw: Any) -> list[str]:
        return [_name(p.metadata) for p in core.list_namespaced_pod(NS, **kw).items]

    assert names(label_selector="app=llm") == ["llm-0", "llm-1"]
    assert names(label_selector="app in (llm, llm-new),app!=llm") == ["llm-new-0", "llm-new-1"]
    assert len(names(label_selector="app notin (llm,llm-new)")) == 4
    assert len(names(label_selector="app")) == 8
    assert names(label_selector="!app") == []
    assert names(field_selector="metadata.name=llm-0") == ["llm-0"]
    assert len(names(field_selector="metadata.name!=llm-0")) == 7
    pools = _obj(co.list_namespaced_custom_object(*POOL, NS, "inferencepools",
                                                  field_selector="metadata.name==llm"))
    assert [p["metadata"]["name"] for p in pools["items"]] == ["llm"]
    with pytest.raises(ApiException) as err:
        core.list_namespaced_pod(NS, label_selector="app in (")
    assert err.value.status == 400


def test_list_across_namespaces_and_list_resource_version(
    co: client.CustomObjectsApi, core: client.CoreV1Api
) -> None:
    # the client sends a dict body as it is; its hints name only its V1Namespace model
    core.create_namespace({"metadata": {"name": "other"}})  # type: ignore[arg-type]
    co.create_namespaced_custom_object(*GW, "other", "httproutes", _new_route("r1"))
    everything = _obj(co.list_cluster_custom_object(*GW, "httproutes"))
    keys = [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in everything["items"]]
    assert keys == [("default", "llm-route"), ("default", "routes-to-llm"), ("other", "r1")]
    assert int(everything["metadata"]["resourceVersion"]) >= max(
        int(i["metadata"]["resourceVersion"]) for i in everything["items"])
    assert [_name(n.metadata) for n in core.list_namespace().items] == ["default", "other"]


def test_create_already_exists_generate_name_and_missing_namespace(
    co: client.CustomObjectsApi,
) -> None:
    created = _obj(co.create_namespaced_custom_object(*GW, NS, "httproutes",
                                                      _new_route("extra")))
    assert created["metadata"]["generation"] == 1
    assert created["spec"]["rules"][0]["matches"] == [
        {"path": {"type": "PathPrefix", "value": "/"}}]  # the CRD default
    with pytest.raises(ApiException) as err:
        co.create_namespaced_custom_object(*GW, NS, "httproutes", _new_route("extra"))
    assert _status(err.value)["reason"] == "AlreadyExists"
    body = _new_route("")
    body["metadata"] = {"generateName": "canary-"}
    generated = _obj(co.create_namespaced_custom_object(*GW, NS, "httproutes", body))
    assert generated["metadata"]["name"].startswith("canary-")
    assert len(generated["metadata"]["name"]) == len("canary-") + 5
    with pytest.raises(ApiException) as err:
        co.create_namespaced_custom_object(*GW, "ghost", "httproutes", _new_route("x"))
    assert _status(err.value)["message"] == 'namespaces "ghost" not found'


def test_replace_with_current_and_stale_resource_version(co: client.CustomObjectsApi) -> None:
    route = _route(co)
    route["spec"]["rules"][0]["backendRefs"][1]["weight"] = 10
    replaced = _obj(co.replace_namespaced_custom_object(*GW, NS, "httproutes",
                                                        "routes-to-llm", route))
    assert _weights(replaced) == [100, 10]
    assert int(replaced["metadata"]["resourceVersion"]) > int(
        route["metadata"]["resourceVersion"])
    route["spec"]["rules"][0]["backendRefs"][1]["weight"] = 20  # still the old resourceVersion
    with pytest.raises(ApiException) as err:
        co.replace_namespaced_custom_object(*GW, NS, "httproutes", "routes-to-llm", route)
    assert err.value.status == 409 and _status(err.value)["reason"] == "Conflict"
    assert _weights(_route(co)) == [100, 10]
    with pytest.raises(ApiException) as err:
        co.replace_namespaced_custom_object(*GW, NS, "httproutes", "missing",
                                            {**_new_route("missing")})
    assert err.value.status == 404


def test_merge_patch_with_resource_version_precondition(co: client.CustomObjectsApi) -> None:
    route = _route(co)
    rv = route["metadata"]["resourceVersion"]
    refs = route["spec"]["rules"][0]["backendRefs"]
    refs[0]["weight"], refs[1]["weight"] = 90, 10
    patch = {"metadata": {"resourceVersion": rv}, "spec": {"rules": route["spec"]["rules"]}}
    patched = _obj(co.patch_namespaced_custom_object(*GW, NS, "httproutes", "routes-to-llm",
                                                     patch))
    assert _weights(patched) == [90, 10]
    with pytest.raises(ApiException) as err:  # the same resourceVersion again is now stale
        co.patch_namespaced_custom_object(*GW, NS, "httproutes", "routes-to-llm", patch)
    assert err.value.status == 409
    assert "the object has been modified" in _status(err.value)["message"]


def test_json_patch_test_passes_and_fails_without_change(
    co: client.CustomObjectsApi, kube_api: client.ApiClient
) -> None:
    ann = "/metadata/annotations/rollout.example~1fence"
    ops = [{"op": "add", "path": "/metadata/annotations", "value": {"rollout.example/fence": "7"}}]
    co.api_client.set_default_header("Content-Type", "application/json-patch+json")
    co.patch_namespaced_custom_object(*GW, NS, "httproutes", "routes-to-llm", ops)
    before = _route(co)
    good: list[dict[str, Any]] = [
        {"op": "test", "path": ann, "value": "7"},
        {"op": "replace", "path": "/spec/rules/0/backendRefs/1/weight", "value": 25},
        {"op": "replace", "path": ann, "value": "8"}]
    after = _obj(co.patch_namespaced_custom_object(*GW, NS, "httproutes", "routes-to-llm", good))
    assert _weights(after) == [100, 25]
    assert after["metadata"]["annotations"]["rollout.example/fence"] == "8"
    stale: list[dict[str, Any]] = [
        {"op": "test", "path": ann, "value": "7"},
        {"op": "replace", "path": "/spec/rules/0/backendRefs/1/weight", "value": 50}]
    with pytest.raises(ApiException) as err:
        co.patch_namespaced_custom_object(*GW, NS, "httproutes", "routes-to-llm", stale)
    status = _status(err.value)
    assert (status["code"], status["reason"]) == (422, "Invalid")
    # As kube-apiserver: the json-patch error text is dropped, no field causes.
    assert status["message"] == "the server rejected our request due to an error in our request"
    current = _route(co)
    assert _weights(current) == [100, 25]
    assert current["metadata"]["resourceVersion"] != before["metadata"]["resourceVersion"]
    rv_test = [{"op": "test", "path": "/metadata/resourceVersion", "value": "1"}]
    with pytest.raises(ApiException) as err:
        co.patch_namespaced_custom_object(*GW, NS, "httproutes", "routes-to-llm", rv_test)
    assert err.value.status == 422
    assert _route(co) == current


def test_unsupported_patch_content_type_is_415(kube_emulator: KubeEmulator) -> None:
    url = (f"{kube_emulator.url}/apis/gateway.networking.k8s.io/v1/namespaces/default/"
           "httproutes/routes-to-llm")
    request = urllib.request.Request(  # noqa: S310 - the emulator's own http:// URL
        url, data=b"{}", method="PATCH", headers={"Content-Type": "text/plain"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, timeout=5)  # noqa: S310
    assert err.value.code == 415
    assert json.loads(err.value.read())["reason"] == "UnsupportedMediaType"


def test_delete_then_404(co: client.CustomObjectsApi) -> None:
    gone = _obj(co.delete_namespaced_custom_object(*GW, NS, "httproutes", "llm-route"))
    # A custom resource without finalizers is gone at once: the answer is a Status.
    assert (gone["kind"], gone["status"]) == ("Status", "Success")
    assert gone["details"]["name"] == "llm-route"
    with pytest.raises(ApiException) as err:
        co.delete_namespaced_custom_object(*GW, NS, "httproutes", "llm-route")
    assert err.value.status == 404
    with pytest.raises(ApiException):
        co.get_namespaced_custom_object(*GW, NS, "httproutes", "llm-route")


def test_status_subresource_changes_only_status(co: client.CustomObjectsApi) -> None:
    route = _route(co)
    generation = route["metadata"]["generation"]
    # A main-resource write ignores .status ...
    co.patch_namespaced_custom_object(*GW, NS, "httproutes", "routes-to-llm",
                                      {"status": {"parents": []},
                                       "metadata": {"labels": {"x": "y"}}})
    after = _route(co)
    assert after["status"] == route["status"]
    assert after["metadata"]["labels"] == {"x": "y"}
    assert after["metadata"]["generation"] == generation  # metadata is not spec
    # ... and a status write ignores everything else (a field the schema lacks is pruned).
    status_body = {"status": {"parents": [], "note": "hand-written"},
                   "spec": {"rules": []}}
    written = _obj(co.patch_namespaced_custom_object_status(*GW, NS, "httproutes",
                                                            "routes-to-llm", status_body))
    assert written["status"] == {"parents": []}
    assert _weights(written) == [100, 0]
    assert written["metadata"]["generation"] == generation
    got = _obj(co.get_namespaced_custom_object_status(*GW, NS, "httproutes", "routes-to-llm"))
    assert got["status"] == {"parents": []}


def test_generation_bumps_on_spec_change_only(co: client.CustomObjectsApi) -> None:
    def gen() -> int:
        return int(_route(co)["metadata"]["generation"])

    co.patch_namespaced_custom_object(*GW, NS, "httproutes", "routes-to-llm",
                                      {"metadata": {"annotations": {"a": "1"}}})
    assert gen() == 1
    route = _route(co)
    route["spec"]["rules"][0]["backendRefs"][1]["weight"] = 5
    co.replace_namespaced_custom_object(*GW, NS, "httproutes", "routes-to-llm", route)
    assert gen() == 2
    same = _route(co)
    rv = same["metadata"]["resourceVersion"]
    unchanged = _obj(co.replace_namespaced_custom_object(*GW, NS, "httproutes",
                                                         "routes-to-llm", same))
    assert unchanged["metadata"]["resourceVersion"] == rv  # a no-op write is not a write
    assert gen() == 2


def test_resource_version_increases_globally(co: client.CustomObjectsApi,
                                             core: client.CoreV1Api) -> None:
    seen = []
    seen.append(int(_obj(co.create_namespaced_custom_object(
        *GW, NS, "httproutes", _new_route("a")))["metadata"]["resourceVersion"]))
    seen.append(int(_obj(co.patch_namespaced_custom_object(
        *LLMD, NS, "inferenceobjectives", "llm-chat",
        {"spec": {"priority": 11}}))["metadata"]["resourceVersion"]))
    pod = core.patch_namespaced_pod("llm-0", NS, {"metadata": {"labels": {"z": "1"}}})
    assert pod.metadata is not None and pod.metadata.resource_version is not None
    seen.append(int(pod.metadata.resource_version))
    seen.append(int(_obj(co.create_namespaced_custom_object(
        *GW, NS, "httproutes", _new_route("b")))["metadata"]["resourceVersion"]))
    assert seen == sorted(seen) and len(set(seen)) == 4


def test_watch_from_resource_version_with_the_client_watch(co: client.CustomObjectsApi) -> None:
    rv = _obj(co.list_namespaced_custom_object(*GW, NS, "httproutes"))["metadata"][
        "resourceVersion"]
    co.patch_namespaced_custom_object(*GW, NS, "httproutes", "llm-route",
                                      {"metadata": {"labels": {"step": "1"}}})
    co.create_namespaced_custom_object(*GW, NS, "httproutes", _new_route("watched"))
    co.delete_namespaced_custom_object(*GW, NS, "httproutes", "watched")
    seen = []
    for event in _watch(co.list_namespaced_custom_object, *GW, NS, "httproutes",
                        resource_version=rv, timeout_seconds=1):
        seen.append((event["type"], event["object"]["metadata"]["name"]))
        if seen[-1] == ("DELETED", "watched"):
            break
    assert ("MODIFIED", "llm-route") in seen
    assert seen.index(("ADDED", "watched")) < seen.index(("DELETED", "watched"))
    # the controller's status write on "watched" shows up as MODIFIED in between
    assert seen[-1] == ("DELETED", "watched")


def test_watch_streams_live_events_and_honours_timeout(
    co: client.CustomObjectsApi, core: client.CoreV1Api
) -> None:
    listed = core.list_namespaced_pod(NS).metadata
    assert listed is not None
    rv = listed.resource_version
    started = threading.Event()

    def write() -> None:
        started.wait(5)
        core.patch_namespaced_pod("llm-1", NS, {"metadata": {"labels": {"app": "moved"}}})
        core.patch_namespaced_pod("llm-0", NS, {"metadata": {"annotations": {"a": "b"}}})

    writer = threading.Thread(target=write)
    writer.start()
    events = []
    stream = _watch(core.list_namespaced_pod, NS, label_selector="app=llm",
                    resource_version=rv, timeout_seconds=2)
    started.set()
    for event in stream:
        events.append((event["type"], event["object"].metadata.name))
        if len(events) == 2:
            break
    writer.join(5)
    # llm-1 leaving the selector is a DELETED for this watch, as on a real server
    assert events == [("DELETED", "llm-1"), ("MODIFIED", "llm-0")]


def test_watch_without_resource_version_starts_with_synthetic_added(
    core: client.CoreV1Api,
) -> None:
    events = []
    for e in _watch(core.list_namespaced_pod, NS, label_selector="app=llm-new",
                    timeout_seconds=1):
        events.append((e["type"], e["object"].metadata.name))
        if len(events) == 2:
            break
    assert events == [("ADDED", "llm-new-0"), ("ADDED", "llm-new-1")]


def test_watch_too_old_resource_version_is_410(core: client.CoreV1Api) -> None:
    emulator = KubeEmulator(seed="empty")
    emulator.start()
    try:
        config_ = client.Configuration()
        config_.host = emulator.url
        with client.ApiClient(config_) as api:
            pods = client.CoreV1Api(api)
            for i in range(1100):  # more than the bounded history keeps
                emulator.put_object({"apiVersion": "v1", "kind": "Event",
                                     "metadata": {"name": f"e{i}", "namespace": "default"}})
            with pytest.raises(ApiException) as err:
                list(_watch(pods.list_namespaced_event, NS, resource_version="2",
                            timeout_seconds=1))
            assert err.value.status == 410
    finally:
        emulator.stop()

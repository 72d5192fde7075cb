"""The proxy can drop an answer after the API server applied the write: the caller sees a cut
connection, the route has changed, and the log records the server's own status."""

from __future__ import annotations

import pytest
import urllib3
from kubernetes import client

from tests.support.real_cluster import RealCluster

GW = ("gateway.networking.k8s.io", "v1")
NS = "default"


def _set_weights(co: client.CustomObjectsApi, stable: int, canary: int) -> None:
    co.patch_namespaced_custom_object(*GW, NS, "httproutes", "routes-to-llm", [
        {"op": "replace", "path": "/spec/rules/0/backendRefs/0/weight", "value": stable},
        {"op": "replace", "path": "/spec/rules/0/backendRefs/1/weight", "value": canary},
    ], _request_timeout=5, _content_type="application/json-patch+json")


def _weights(cluster: RealCluster) -> list[int]:
    route = cluster.get_object(*GW, "httproutes", NS, "routes-to-llm")
    assert route is not None
    return [ref["weight"] for ref in route["spec"]["rules"][0]["backendRefs"]]


def test_a_dropped_answer_is_a_write_that_landed(cluster: RealCluster) -> None:
    api = client.ApiClient(cluster.bot_configuration())
    api.rest_client.pool_manager.connection_pool_kw["retries"] = False
    co = client.CustomObjectsApi(api)
    try:
        cluster.proxy.drop_answers("patch", "httproutes")
        with pytest.raises(urllib3.exceptions.HTTPError):
            _set_weights(co, 70, 30)
        assert _weights(cluster) == [70, 30]  # it landed all the same
        (record,) = [r for r in cluster.requests if r.verb == "patch"]
        assert record.status == 200 and cluster.proxy.dropped == 1
        _set_weights(co, 60, 40)  # one use only: the next write is answered
        assert _weights(cluster) == [60, 40]
        cluster.proxy.drop_answers("patch", "httproutes", count=3)
        cluster.clear_faults()  # clearing faults clears drops too
        _set_weights(co, 100, 0)
        assert cluster.proxy.dropped == 1
    finally:
        api.close()

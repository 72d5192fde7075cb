"""The bot's two core lists (Pods and Services of a namespace), sent without CoreV1Api,
against the real API server: the same answers CoreV1Api gives, a watch from the list's
version, and the server's refusals as ApiException with their status."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from rollout.adapters.kube.core_lists import CoreLists
from tests.support.kube_api import close_api
from tests.support.real_cluster import RealCluster

NS = "default"


def _names(answer: Any) -> list[str]:
    try:
        return sorted(item["metadata"]["name"] for item in json.loads(answer.data)["items"])
    finally:
        answer.release_conn()


@pytest.fixture
def service(cluster: RealCluster) -> Iterator[str]:
    core = cluster.world.core
    name = "core-lists-probe"
    # the client sends a dict body as it is; its hints name only its V1Service model
    core.create_namespaced_service(NS, {  # type: ignore[arg-type]
        "metadata": {"name": name}, "spec": {"ports": [{"port": 80}]}})
    try:
        yield name
    finally:
        with contextlib.suppress(ApiException):
            core.delete_namespaced_service(name, NS)


def test_the_lists_answer_what_core_v1_api_answers(cluster: RealCluster, service: str) -> None:
    admin = cluster.world.admin
    lists, core = CoreLists(admin), cluster.world.core
    services = _names(lists.list_namespaced_service(NS, _preload_content=False))
    assert service in services
    assert services == _names(core.list_namespaced_service(NS, _preload_content=False))
    assert _names(lists.list_namespaced_pod(NS, _preload_content=False)) == \
        _names(core.list_namespaced_pod(NS, _preload_content=False))


def test_a_watch_from_the_lists_version_brings_a_new_service(cluster: RealCluster) -> None:
    lists, core = CoreLists(cluster.world.admin), cluster.world.core
    answer = lists.list_namespaced_service(NS, _preload_content=False, _request_timeout=10)
    try:
        version = json.loads(answer.data)["metadata"]["resourceVersion"]
    finally:
        answer.release_conn()
    name = "core-lists-watched"
    core.create_namespaced_service(NS, {  # type: ignore[arg-type]
        "metadata": {"name": name}, "spec": {"ports": [{"port": 80}]}})
    try:
        stream = lists.list_namespaced_service(
            NS, watch=True, resource_version=version, allow_watch_bookmarks=True,
            timeout_seconds=5, _preload_content=False, _request_timeout=(3, 10))
        try:
            events = [json.loads(line) for line in stream.read().splitlines() if line]
        finally:
            stream.release_conn()
    finally:
        core.delete_namespaced_service(name, NS)
    added = [e["object"]["metadata"]["name"] for e in events if e["type"] == "ADDED"]
    assert added == [name]


def test_a_refusal_raises_with_its_status(cluster: RealCluster) -> None:
    configuration = client.Configuration()
    configuration.host = cluster.url
    configuration.api_key = {"authorization": "Bearer not-a-token"}
    api = client.ApiClient(configuration)
    try:
        with pytest.raises(ApiException) as refused:
            CoreLists(api).list_namespaced_pod(NS, _preload_content=False)
    finally:
        close_api(api)
    assert refused.value.status == 401


def test_calls_it_cannot_send_as_asked_are_refused_before_sending(
        cluster: RealCluster) -> None:
    lists = CoreLists(cluster.world.admin)
    with pytest.raises(ValueError, match="_preload_content=False"):
        lists.list_namespaced_pod(NS, _preload_content=True)
    with pytest.raises(TypeError, match="label_selector"):
        lists.list_namespaced_pod(NS, _preload_content=False, label_selector="app=x")

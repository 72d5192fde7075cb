"""The real API server as a test world, with the emulator's test interface.

One `KubeWorld` per test session: etcd, kube-apiserver, the official CRDs, the bot's RBAC
rendered from `deploy/`, and the late gateway controller. Each test gets a `RealCluster`: the
demo objects of DESIGN.md section 8 freshly seeded in namespace `default`, and a proxy of its
own (faults and a request log) that the bot reaches with its service account's token. Tests
written against `KubeEmulator` (`url`, `write_kubeconfig`, `inject`, `requests`,
`get_object`, `put_object`) run unchanged against it.

`ROLLOUT_TEST_KUBECONFIG` points the whole tier at another cluster (a kind cluster on a
laptop, say) instead: its current context must be allowed to create CRDs and RBAC objects, and
its namespace `default` is wiped and reseeded before each test.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from sandbox.kube.faults import Fault, RequestRecord
from sandbox.kube.seed import seed_objects
from tests.support.control_plane import (
    ADMIN_TOKEN,
    BOT_NAMESPACE,
    BOT_SERVICE_ACCOUNT,
    BOT_TOKEN,
    ControlPlane,
    binaries,
)
from tests.support.crds import official_crds
from tests.support.gateway_controller import LateGatewayController, wait_until_settled
from tests.support.kube_proxy import KubeProxy

# The client sends a plain dict body as it is, but its hints name only its own models: the
# calls given the manifests as dicts carry `type: ignore[arg-type]`.
Obj = dict[str, Any]
DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
NAMESPACE = "default"
# Everything the tests create, in the order it is removed before reseeding.
_KINDS: tuple[tuple[str, str, str], ...] = (
    ("gateway.networking.k8s.io", "v1", "httproutes"),
    ("gateway.networking.k8s.io", "v1", "gateways"),
    ("llm-d.ai", "v1alpha2", "inferencemodelrewrites"),
    ("inference.networking.x-k8s.io", "v1alpha2", "inferencemodelrewrites"),
    ("llm-d.ai", "v1alpha2", "inferenceobjectives"),
    ("inference.networking.x-k8s.io", "v1alpha2", "inferenceobjectives"),
    ("inference.networking.k8s.io", "v1", "inferencepools"),
    ("inference.networking.x-k8s.io", "v1alpha2", "inferencepools"),
)


Resource = tuple[str, str, str]
_PODS: Resource = ("", "v1", "pods")
_SERVICES: Resource = ("", "v1", "services")
# The Services a reseed looks after: the seed's (`default` holds `kubernetes` too).
_SEEDED_SERVICES = frozenset(o["metadata"]["name"] for o in seed_objects("demo")
                             if o["kind"] == "Service")
# The resources the late gateway controller watches, as `wait_quiet` names them.
_WATCHED = ("httproutes.gateway.networking.k8s.io",
            "inferencepools.inference.networking.k8s.io",
            "inferencepools.inference.networking.x-k8s.io")


def _resource(obj: Obj) -> Resource | None:
    """The seeded kind `obj` is of, or None for what a reseed keeps (the namespace)."""
    if obj["kind"] == "Pod":
        return _PODS
    if obj["kind"] == "Service":
        return _SERVICES
    group, version = _split(obj)
    for resource in _KINDS:
        if resource[:2] == (group, version) and resource[2] == _PLURALS.get(obj["kind"]):
            return resource
    return None


def _admin_client(url: str, ca_file: str) -> client.ApiClient:
    configuration = client.Configuration()
    configuration.host = url
    configuration.ssl_ca_cert = ca_file
    configuration.api_key = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    return client.ApiClient(configuration)


def _split(obj: Obj) -> tuple[str, str]:
    group, _, version = obj["apiVersion"].rpartition("/")
    return group, version


class KubeWorld:
    """The session's control plane, CRDs, RBAC and gateway controller."""

    def __init__(self, *, controller_delay: float = 0.05) -> None:
        self.plane: ControlPlane | None = None
        self.upstream = ""
        self.ca_file = ""
        self.bot_token = BOT_TOKEN
        external = os.environ.get("ROLLOUT_TEST_KUBECONFIG")
        if external:
            # the client's config module is unannotated
            self.admin: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
                config_file=external)
            self.upstream = self.admin.configuration.host
            self.ca_file = self.admin.configuration.ssl_ca_cert or ""
        else:
            self.plane = ControlPlane(binaries())
            self.plane.start()
            self.upstream, self.ca_file = self.plane.url, str(self.plane.ca_file)
            self.admin = _admin_client(self.upstream, self.ca_file)
        self.objects = client.CustomObjectsApi(self.admin)
        self.core = client.CoreV1Api(self.admin)
        try:
            self._install_crds()
            self._install_rbac()
            if external:
                self.bot_token = self._request_bot_token()
        except BaseException:  # nobody gets a world to close: stop what was started here
            self.admin.close()  # type: ignore[no-untyped-call]  # unannotated in the client
            if self.plane is not None:
                self.plane.stop()
            raise
        self.controller = LateGatewayController(self.admin, delay=controller_delay)
        self.controller.start()
        # `default` as the last reseed left it (see `reseed`).
        self._seeded: dict[Resource, dict[str, tuple[str, str]]] | None = None

    def close(self) -> None:
        self.controller.stop()
        self.admin.close()  # type: ignore[no-untyped-call]  # unannotated in the client
        if self.plane is not None:
            self.plane.stop()

    @property
    def audit_log(self) -> Path | None:
        return self.plane.audit_log if self.plane is not None else None

    # ---- set-up ----------------------------------------------------------------------------

    def _install_crds(self) -> None:
        extensions = client.ApiextensionsV1Api(self.admin)
        for crd in official_crds():
            with contextlib.suppress(ApiException):
                extensions.create_custom_resource_definition(crd)  # type: ignore[arg-type]
        for crd in official_crds():
            self._wait_served(crd)

    def _wait_served(self, crd: Obj, timeout: float = 60.0) -> None:
        group, plural = crd["spec"]["group"], crd["spec"]["names"]["plural"]
        version = next(v["name"] for v in crd["spec"]["versions"] if v.get("served"))
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.objects.list_namespaced_custom_object(group, version, NAMESPACE, plural)
                return
            except ApiException as exc:
                if exc.status != 404 or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def _install_rbac(self) -> None:
        """The ClusterRole as `deploy/` ships it, bound in `default` as the overlay binds it."""
        with contextlib.suppress(ApiException):
            self.core.create_namespace(
                {"metadata": {"name": BOT_NAMESPACE}})  # type: ignore[arg-type]
        with contextlib.suppress(ApiException):
            self.core.create_namespaced_service_account(
                BOT_NAMESPACE, {"metadata": {"name": BOT_SERVICE_ACCOUNT}})  # type: ignore[arg-type]
        rbac = client.RbacAuthorizationV1Api(self.admin)
        for doc in bot_rbac_documents():
            if doc["kind"] == "ClusterRole":
                with contextlib.suppress(ApiException):
                    rbac.delete_cluster_role(doc["metadata"]["name"])
                rbac.create_cluster_role(doc)  # type: ignore[arg-type]
            elif doc["kind"] == "RoleBinding":
                with contextlib.suppress(ApiException):
                    rbac.delete_namespaced_role_binding(doc["metadata"]["name"], NAMESPACE)
                rbac.create_namespaced_role_binding(NAMESPACE, doc)  # type: ignore[arg-type]

    @contextlib.contextmanager
    def legacy_only(self) -> Iterator[None]:
        """An older cluster, for the length of a test: the llm-d.ai objectives and rewrites
        are not served, so the endpoint picker (and the bot) read the legacy group. Their
        CRDs come back, empty, afterwards; the next test's reseed fills them."""
        extensions = client.ApiextensionsV1Api(self.admin)
        newer = [crd for crd in official_crds() if crd["spec"]["group"] == "llm-d.ai"]
        for crd in newer:
            with contextlib.suppress(ApiException):
                extensions.delete_custom_resource_definition(crd["metadata"]["name"])
        for crd in newer:
            self._wait_gone(extensions, crd["metadata"]["name"])
        try:
            yield
        finally:
            for crd in newer:
                extensions.create_custom_resource_definition(crd)  # type: ignore[arg-type]
            for crd in newer:
                self._wait_served(crd)

    def _wait_gone(self, extensions: client.ApiextensionsV1Api, name: str,
                   timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                extensions.read_custom_resource_definition(name)
            except ApiException as exc:
                if exc.status == 404:
                    return
                raise
            if time.monotonic() > deadline:
                raise TimeoutError(f"CRD {name} was not deleted")
            time.sleep(0.1)

    def _request_bot_token(self) -> str:
        """On another cluster, the bot's identity is a real service-account token."""
        review = self.core.create_namespaced_service_account_token(
            BOT_SERVICE_ACCOUNT, BOT_NAMESPACE,
            {"spec": {"audiences": [], "expirationSeconds": 7200}})  # type: ignore[arg-type]
        assert review.status is not None, "the token request was answered without a status"
        return str(review.status.token)

    def add_namespace(self, namespace: str) -> None:
        """A namespace the bot may work in, as `deploy/managed-namespace` grants it."""
        self.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(
            name=namespace)))
        rbac = client.RbacAuthorizationV1Api(self.admin)
        for doc in bot_rbac_documents():
            if doc["kind"] == "RoleBinding":
                doc["metadata"].pop("namespace", None)
                rbac.create_namespaced_role_binding(namespace, doc)  # type: ignore[arg-type]

    # ---- per test --------------------------------------------------------------------------

    def reseed(self) -> None:
        """Namespace `default` holds exactly the demo objects again, settled.

        Only what the last test changed is made again: an object whose uid and
        resourceVersion are still those recorded after the last reseed is the seeded one,
        untouched; anything else of the seeded kinds is deleted, and each seeded object
        missing is created anew, in the seed's order. Whatever that cannot mend (an object
        that will not go) is met by seeding the whole namespace afresh."""
        untouched = False
        if self._seeded is None:
            self._seed_afresh()
        else:
            try:
                untouched = self._restore(self._seeded)
            except TimeoutError:
                self._seed_afresh()
        if not untouched:
            self._seeded = self._record()

    def _record(self) -> dict[Resource, dict[str, tuple[str, str]]]:
        """Every object of the seeded kinds in `default` (of Services, the seed's): name to
        (uid, resourceVersion)."""
        record: dict[Resource, dict[str, tuple[str, str]]] = {}
        for resource in (*_KINDS, _PODS, _SERVICES):
            record[resource] = {
                item["metadata"]["name"]: (item["metadata"]["uid"],
                                           item["metadata"]["resourceVersion"])
                for item in self._list(resource)
                if resource != _SERVICES or item["metadata"]["name"] in _SEEDED_SERVICES}
        return record

    def _list(self, resource: Resource) -> list[Obj]:
        group, version, plural = resource
        if group == "":
            answer = self.admin.call_api(*self.admin.param_serialize(
                "GET", f"/api/{version}/namespaces/{NAMESPACE}/{plural}",
                auth_settings=["BearerToken"]))
            body = answer.read()  # type: ignore[no-untyped-call]  # unannotated in the client
            return list(json.loads(body)["items"])
        return list(cast(Obj, self.objects.list_namespaced_custom_object(
            group, version, NAMESPACE, plural))["items"])

    def _restore(self, seeded: dict[Resource, dict[str, tuple[str, str]]]) -> bool:
        """Mend what changed; True when nothing had."""
        now = self._record()
        changed = {resource: {name for name, ident in now[resource].items()
                              if seeded[resource].get(name) != ident}
                   for resource in now}
        missing = {name for resource in now for name in seeded[resource]
                   if name not in now[resource]}
        if not missing and not any(changed.values()):
            self.controller.wait_quiet({})
            return True
        for resource, names in changed.items():
            for name in names:
                self._delete(resource, name)
        for resource, names in changed.items():
            for name in names:
                self._wait_deleted(resource, name)
        kept = {resource: set(now[resource]) - changed[resource] for resource in now}
        self._make_again(kept)
        return False

    def _make_again(self, kept: dict[Resource, set[str]]) -> None:
        """Create, in the seed's order, each seeded object not `kept`; then wait for the
        gateway to answer every change, the last test's and these."""
        heard: dict[str, int] = {}
        routes: list[str] = []
        for obj in seed_objects("demo"):
            seeded_kind = _resource(obj)
            name = obj["metadata"]["name"]
            if seeded_kind is None or name in kept[seeded_kind]:
                continue
            stored = self.put(obj)
            key = f"{seeded_kind[2]}.{seeded_kind[0]}"
            if key in _WATCHED:  # custom objects, as the server wrote them
                written = int(stored["metadata"]["resourceVersion"])
                heard[key] = max(heard.get(key, 0), written)
            if obj["kind"] == "HTTPRoute":
                routes.append(name)
        self.controller.wait_quiet(heard)
        for name in routes:
            wait_until_settled(self.objects, NAMESPACE, name)

    def _delete(self, resource: Resource, name: str) -> None:
        group, version, plural = resource
        try:
            if resource == _PODS:
                self.core.delete_namespaced_pod(name, NAMESPACE, grace_period_seconds=0)
            elif resource == _SERVICES:
                self.core.delete_namespaced_service(name, NAMESPACE)
            else:
                self.objects.delete_namespaced_custom_object(
                    group, version, NAMESPACE, plural, name)
        except ApiException as exc:
            if exc.status != 404:
                raise

    def _wait_deleted(self, resource: Resource, name: str) -> None:
        deadline = time.monotonic() + 10
        while self.get(*resource, NAMESPACE, name) is not None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{resource[2]} {NAMESPACE}/{name} was not deleted")
            time.sleep(0.02)

    def _seed_afresh(self) -> None:
        for group, version, plural in _KINDS:
            self.objects.delete_collection_namespaced_custom_object(
                group, version, NAMESPACE, plural)
        self.core.delete_collection_namespaced_pod(NAMESPACE, grace_period_seconds=0)
        for group, version, plural in _KINDS:
            self._wait_empty(group, version, plural)
        for obj in seed_objects("demo"):
            if obj["kind"] != "Namespace":
                self.put(obj)
        # The gateway answers late: let it answer the seed before a test looks.
        for route in cast(Obj, self.objects.list_namespaced_custom_object(
                "gateway.networking.k8s.io", "v1", NAMESPACE, "httproutes"))["items"]:
            wait_until_settled(self.objects, NAMESPACE, route["metadata"]["name"])
        # Its answers to the pools' creation too, where it is not kept busy elsewhere (a
        # thread a test left behind, another namespace): the seed is settled either way.
        with contextlib.suppress(TimeoutError):
            self.controller.wait_quiet({}, timeout=2.0)

    def _wait_empty(self, group: str, version: str, plural: str) -> None:
        deadline = time.monotonic() + 10
        while cast(Obj, self.objects.list_namespaced_custom_object(
                group, version, NAMESPACE, plural))["items"]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{plural}.{group} in {NAMESPACE} were not deleted")
            time.sleep(0.02)

    def get(self, group: str, version: str, plural: str, namespace: str | None,
            name: str) -> Obj | None:
        try:
            if group == "":
                path = f"/api/{version}/namespaces/{namespace}/{plural}/{name}" if namespace \
                    else f"/api/{version}/{plural}/{name}"
                request = self.admin.param_serialize("GET", path, auth_settings=["BearerToken"])
                answer = self.admin.call_api(*request)
                body = answer.read()  # type: ignore[no-untyped-call]  # unannotated in the client
                if answer.status != 200:
                    raise ApiException(http_resp=answer)
                return dict(json.loads(body))
            if namespace is None:
                return dict(cast(Obj, self.objects.get_cluster_custom_object(
                    group, version, plural, name)))
            return dict(cast(Obj, self.objects.get_namespaced_custom_object(
                group, version, namespace, plural, name)))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def put(self, obj: Obj) -> Obj:
        """Create or replace `obj` as the admin, then write its status where it has one."""
        body = copy.deepcopy(obj)
        status = body.pop("status", None)
        meta = body["metadata"]
        for key in ("resourceVersion", "uid", "creationTimestamp", "generation",
                    "managedFields", "deletionTimestamp"):
            meta.pop(key, None)
        namespace, name = meta.get("namespace") or NAMESPACE, meta["name"]
        if body["kind"] == "Pod":
            stored = self._put_pod(namespace, name, body)
            if status:
                stored = self.core.patch_namespaced_pod_status(
                    name, namespace, {"status": _pod_status(status)}).to_dict()
            return dict(stored)
        if body["kind"] == "Service":
            return dict(self._put_service(namespace, body).to_dict())
        group, version = _split(body)
        plural = _plural(body["kind"])
        stored = self._create_or_replace(group, version, plural, namespace, name, body)
        if status:
            stored = self.objects.patch_namespaced_custom_object_status(
                group, version, namespace, plural, name, {"status": status})
        return dict(stored)

    def _create_or_replace(self, group: str, version: str, plural: str, namespace: str,
                           name: str, body: Obj) -> Any:
        """As a person's `kubectl apply` would: a 409 (the gateway or the bot wrote the
        object meanwhile) is answered by reading it again and replacing that version."""
        for _attempt in range(10):
            current = self.get(group, version, plural, namespace, name)
            if current is None:
                return self.objects.create_namespaced_custom_object(
                    group, version, namespace, plural, body)
            body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            try:
                return self.objects.replace_namespaced_custom_object(
                    group, version, namespace, plural, name, body)
            except ApiException as exc:
                if exc.status != 409:
                    raise
        raise TimeoutError(f"{plural} {namespace}/{name} kept changing under the test")

    def _put_service(self, namespace: str, body: Obj) -> Any:
        """A Service is kept when it is there already (its cluster IP is the server's)."""
        try:
            return self.core.create_namespaced_service(namespace, body)  # type: ignore[arg-type]
        except ApiException as exc:
            if exc.status != 409:
                raise
            return self.core.read_namespaced_service(body["metadata"]["name"], namespace)

    def _put_pod(self, namespace: str, name: str, body: Obj) -> Any:
        with contextlib.suppress(ApiException):
            self.core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)
        return self.core.create_namespaced_pod(namespace, body)  # type: ignore[arg-type]


def _pod_status(status: Obj) -> Obj:
    out = dict(status)
    if "podIP" in out and "podIPs" not in out:
        out["podIPs"] = [{"ip": out["podIP"]}]
    return out


_PLURALS = {"HTTPRoute": "httproutes", "Gateway": "gateways", "InferencePool": "inferencepools",
            "InferenceObjective": "inferenceobjectives",
            "InferenceModelRewrite": "inferencemodelrewrites"}


def _plural(kind: str) -> str:
    try:
        return _PLURALS[kind]
    except KeyError:
        raise ValueError(f"the test world does not store {kind} objects") from None


def bot_rbac_documents() -> list[Obj]:
    """The ClusterRole and the per-namespace RoleBinding, as `deploy/` ships them."""
    docs: list[Obj] = []
    for path in (DEPLOY / "rbac.yaml", DEPLOY / "managed-namespace" / "rolebinding.yaml"):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


class RealCluster:
    """One test's view of the world: the emulator's test interface over the real server."""

    def __init__(self, world: KubeWorld) -> None:
        self.world = world
        self.proxy = KubeProxy(world.upstream, world.ca_file)
        self.proxy.start()

    @property
    def url(self) -> str:
        return self.proxy.url

    def stop(self) -> None:
        self.proxy.stop()

    def hold_stalls(self) -> threading.Event:
        """Faults' stalls last until the event returned is set (`KubeProxy.hold_stalls`)."""
        return self.proxy.hold_stalls()

    def faults_armed(self) -> int:
        """Uses of injected faults not yet met by a request (a stall in progress is met)."""
        return self.proxy.book.armed()

    @property
    def forbidden(self) -> list[str]:
        """Requests the real authorizer refused (403) to the bot during this test."""
        return list(self.proxy.forbidden)

    def write_kubeconfig(self, path: str | Path) -> Path:
        """A kubeconfig for the bot's service account, through this test's proxy."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "test", "cluster": {"server": self.url}}],
            "users": [{"name": "rollout-bot", "user": {"token": self.world.bot_token}}],
            "contexts": [{"name": "test", "context": {
                "cluster": "test", "user": "rollout-bot", "namespace": NAMESPACE}}],
            "current-context": "test",
        }, sort_keys=False))
        return target

    def write_admin_kubeconfig(self, path: str | Path) -> Path:
        """A kubeconfig for a person with cluster-admin rights (kubectl in the tests)."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        admin = self.world.admin.configuration
        target.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "test", "cluster": {
                "server": self.world.upstream, "certificate-authority": self.world.ca_file}}],
            "users": [{"name": "admin", "user": {
                "token": admin.api_key["authorization"].removeprefix("Bearer ")}}],
            "contexts": [{"name": "test", "context": {
                "cluster": "test", "user": "admin", "namespace": NAMESPACE}}],
            "current-context": "test",
        }, sort_keys=False))
        return target

    def bot_configuration(self) -> client.Configuration:
        """The official client's configuration for the bot's identity, through the proxy."""
        configuration = client.Configuration()
        configuration.host = self.url
        configuration.api_key = {"authorization": f"Bearer {self.world.bot_token}"}
        return configuration

    def inject(self, fault: Fault) -> None:
        self.proxy.inject(fault)

    def clear_faults(self) -> None:
        self.proxy.book.clear_faults()

    @property
    def requests(self) -> list[RequestRecord]:
        return self.proxy.book.requests

    def clear_requests(self) -> None:
        self.proxy.book.clear_requests()

    def get_object(self, group: str, version: str, plural: str, namespace: str | None,
                   name: str) -> Obj | None:
        return self.world.get(group, version, plural, namespace, name)

    def put_object(self, obj: Obj) -> Obj:
        """Create or replace as a person would, and, for a route, wait for the gateway's
        answer (the emulator's controller answers before returning)."""
        stored = self.world.put(obj)
        if obj["kind"] == "HTTPRoute":
            meta = stored["metadata"]
            wait_until_settled(self.world.objects, meta["namespace"], meta["name"])
            found = self.get_object("gateway.networking.k8s.io", "v1", "httproutes",
                                    meta["namespace"], meta["name"])
            assert found is not None
            stored = found
        return stored

    def set_controller_delay(self, seconds: float) -> None:
        self.world.controller.delay = seconds


@contextlib.contextmanager
def real_cluster(world: KubeWorld) -> Iterator[RealCluster]:
    world.reseed()
    cluster = RealCluster(world)
    try:
        yield cluster
    finally:
        cluster.stop()
    # Least privilege holds only if the bot never needed more than `deploy/` grants it.
    assert not cluster.forbidden, f"the API server refused the bot: {cluster.forbidden}"

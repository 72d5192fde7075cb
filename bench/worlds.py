"""The two Kubernetes worlds the benchmarks run against, behind one small interface: the
emulator (in a process of its own) and a real kube-apiserver with etcd (the tests' pinned
build). Each writes a kubeconfig for the bot, gives the benchmark an official client with the
same identity and path (the floor's client), creates objects, and counts the requests the bot
made: the emulator from its request log, the real server from its audit log (which records
the bot's service account only)."""

from __future__ import annotations

import contextlib
import copy
import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any, Protocol

import yaml
from kubernetes import client, config

from bench.apf import server_metrics
from sandbox.kube.seed import pool_objects, route_object, seed_objects

Obj = dict[str, Any]
NAMESPACE = "default"
STABLE = "llm-pool"


class Seedable(Protocol):
    """Where targets can be created: a benchmark's world, or the tests' real API server."""

    def put(self, obj: Obj) -> Any: ...

    def add_namespace(self, namespace: str) -> None:
        """A namespace the bot may work in (as `deploy/managed-namespace` grants)."""
        ...


class World(Protocol):
    name: str

    def bot_kubeconfig(self, path: Path) -> Path: ...

    def api(self) -> client.ApiClient: ...

    def watcher(self) -> client.ApiClient:
        """A client that may watch routes (the bot's role may not), not counted."""
        ...

    def put(self, obj: Obj) -> None: ...

    def add_namespace(self, namespace: str) -> None:
        """A namespace the bot may work in (as `deploy/managed-namespace` grants)."""
        ...

    def requests(self) -> Counter[str]:
        """The bot's requests since the last call, by "<verb> <resource>"."""
        ...

    def server_metrics(self) -> str:
        """The API server's own /metrics text, '' where it has none."""
        ...


class EmulatorWorld:
    """`bench.kube_process`: the emulator seeded with the demo objects, no authentication."""

    name = "emulator"

    def __init__(self, workdir: Path, *, gateway_controller: bool) -> None:
        self._kubeconfig = workdir / "emulator.kubeconfig"
        flags = [] if gateway_controller else ["--no-controller"]
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "bench.kube_process", str(self._kubeconfig), *flags],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        if self._out.readline().strip() != "ready":
            self.close()
            raise RuntimeError("the emulator process did not start")
        self._client: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(self._kubeconfig))

    @property
    def _out(self) -> IO[str]:
        assert self._proc.stdout is not None
        return self._proc.stdout

    def bot_kubeconfig(self, path: Path) -> Path:
        path.write_text(self._kubeconfig.read_text())
        return path

    def api(self) -> client.ApiClient:
        return self._client

    def watcher(self) -> client.ApiClient:
        return self._client

    def server_metrics(self) -> str:
        return ""  # the emulator has no priority and fairness

    def put(self, obj: Obj) -> None:
        _create(self._client, obj)

    def add_namespace(self, namespace: str) -> None:
        client.CoreV1Api(self._client).create_namespace(_namespace(namespace))

    def requests(self) -> Counter[str]:
        assert self._proc.stdin is not None
        self._proc.stdin.write("count\n")
        self._proc.stdin.flush()
        return Counter(json.loads(self._out.readline()))

    def close(self) -> None:
        self._client.close()  # type: ignore[no-untyped-call]
        self._proc.terminate()
        self._proc.wait(timeout=10)


class RealWorld:
    """kube-apiserver and etcd from the tests' cached build, with the official CRDs, the
    bot's RBAC from `deploy/` and the demo objects. The bot and the floor reach the server
    directly (TLS, the bot's service-account token); the admin creates objects."""

    name = "real API server"

    def __init__(self, *, gateway_controller: bool) -> None:
        from tests.support.real_cluster import KubeWorld  # the Go build: only when asked

        self._world = KubeWorld()
        self._world.reseed()
        if not gateway_controller:
            self._world.controller.stop()  # statuses written late are no part of the step
        assert self._world.audit_log is not None
        self._audit = self._world.audit_log.open()
        self._audit.seek(0, 2)
        cfg = client.Configuration()
        cfg.host = self._world.upstream
        cfg.ssl_ca_cert = self._world.ca_file
        cfg.api_key = {"authorization": f"Bearer {self._world.bot_token}"}
        self._client: client.ApiClient = client.ApiClient(cfg)

    def bot_kubeconfig(self, path: Path) -> Path:
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "bench", "cluster": {
                "server": self._world.upstream, "certificate-authority": self._world.ca_file}}],
            "users": [{"name": "rollout-bot", "user": {"token": self._world.bot_token}}],
            "contexts": [{"name": "bench", "context": {
                "cluster": "bench", "user": "rollout-bot", "namespace": NAMESPACE}}],
            "current-context": "bench",
        }, sort_keys=False))
        return path

    def api(self) -> client.ApiClient:
        return self._client

    def watcher(self) -> client.ApiClient:
        admin: client.ApiClient = self._world.admin
        return admin

    def server_metrics(self) -> str:
        return server_metrics(self._world.admin)

    def put(self, obj: Obj) -> None:
        self._world.put(obj)

    def add_namespace(self, namespace: str) -> None:
        self._world.add_namespace(namespace)

    def requests(self) -> Counter[str]:
        """From the audit log; the server rotates it at 100 MB, and the rest of the old file
        and the new one are read then."""
        assert self._world.audit_log is not None
        lines = self._audit.readlines()
        if os.stat(self._world.audit_log).st_ino != os.fstat(self._audit.fileno()).st_ino:
            self._audit.close()
            self._audit = self._world.audit_log.open()
            lines += self._audit.readlines()
        counts: Counter[str] = Counter()
        for line in lines:
            event = json.loads(line)
            if event.get("stage") == "ResponseComplete":
                counts[f"{event['verb']} {event.get('objectRef', {}).get('resource', '')}"] += 1
        return counts

    def close(self) -> None:
        self._audit.close()
        self._client.close()  # type: ignore[no-untyped-call]
        self._world.close()


@contextlib.contextmanager
def open_world(kind: str, workdir: Path, *, gateway_controller: bool = True) -> Iterator[World]:
    world: EmulatorWorld | RealWorld = (
        EmulatorWorld(workdir, gateway_controller=gateway_controller) if kind == "emulator"
        else RealWorld(gateway_controller=gateway_controller))
    try:
        yield world
    finally:
        world.close()


def seed_targets(world: Seedable, count: int, *, per_namespace: int,
                 prefix: str) -> list[tuple[str, str]]:
    """`count` routes, `per_namespace` to a namespace of their own with the demo's gateway and
    stable pool; each route splits that stable pool (100) and a canary pool of its own (0),
    with Ready pods, an endpoint picker Service and the stable pool's objectives. Created
    through the API in parallel. Returns (namespace, canary pool) of each."""
    gateway = next(o for o in seed_objects("demo") if o["kind"] == "Gateway")
    targets = [(f"{prefix}-{i // per_namespace}", f"{prefix}-pool-{i}") for i in range(count)]
    namespaces = sorted({ns for ns, _ in targets})
    objects = [_placed(obj, ns) for ns in namespaces
               for obj in [gateway, *pool_objects(STABLE, 1)]]
    objects += [_placed(obj, ns) for i, (ns, pool) in enumerate(targets)
                for obj in pool_objects(pool, 10 + i % 240)]
    routes = [_placed(route_object(route_name(prefix, i), [(STABLE, 100), (pool, 0)]), ns)
              for i, (ns, pool) in enumerate(targets)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(world.add_namespace, namespaces))
        list(pool.map(world.put, objects))
        list(pool.map(world.put, routes))
    return targets


def route_name(prefix: str, index: int) -> str:
    """The name of the route `seed_targets` made for its `index`th target."""
    return f"{prefix}-route-{index}"


def _namespace(name: str) -> client.V1Namespace:
    return client.V1Namespace(metadata=client.V1ObjectMeta(name=name))


def _placed(obj: Obj, namespace: str) -> Obj:
    """`obj` in `namespace`; a Service headless, since a test API server's service IP range
    holds 254 addresses and the bot reads a picker Service only by its name and port."""
    placed = copy.deepcopy(obj)
    placed["metadata"]["namespace"] = namespace
    if placed["kind"] == "Service":
        placed["spec"]["clusterIP"] = "None"
    return placed


def _create(api: client.ApiClient, obj: Obj) -> None:
    """Create `obj` (a seed object) in the emulator, and a Pod's status after it, as the
    kubelet would."""
    group, _, version = obj["apiVersion"].rpartition("/")
    namespace = obj["metadata"].get("namespace", NAMESPACE)
    if obj["kind"] == "Pod":
        core = client.CoreV1Api(api)
        core.create_namespaced_pod(namespace, obj)  # type: ignore[arg-type]
        core.patch_namespaced_pod_status(obj["metadata"]["name"], namespace,
                                         {"status": obj["status"]})
    elif obj["kind"] == "Service":
        client.CoreV1Api(api).create_namespaced_service(namespace, obj)  # type: ignore[arg-type]
    else:
        plural = obj["kind"].lower() + ("es" if obj["kind"].endswith("s") else "s")
        client.CustomObjectsApi(api).create_namespaced_custom_object(
            group, version, namespace, plural, obj)

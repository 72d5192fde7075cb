"""KubeEmulator: the emulated API server on a real port, served by waitress in a thread.

Tests start one per test on a free port and stop it cleanly; the CLI runs one in the
foreground with ``serve_forever``. Either way it writes a kubeconfig so kubectl and the
official Python client talk to it like any cluster.
"""

from __future__ import annotations

import copy
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from types import FrameType

import yaml

from sandbox.background_server import BackgroundServer
from sandbox.kube import resources as r
from sandbox.kube.app import KubeApp
from sandbox.kube.controller import GatewayController
from sandbox.kube.crds import DEFAULT_DIR, load_dir
from sandbox.kube.faults import Fault, FaultBook, RequestRecord
from sandbox.kube.seed import seed_objects
from sandbox.kube.store import Obj, Store
from sandbox.kube.validation import Admission

# each open watch holds a thread for its whole life, and the bot's namespace cache keeps
# nine watches per namespace it reads: room for a dozen namespaces beside the requests
_THREADS = 128
_log = logging.getLogger(__name__)
CrdInput = str | Path | Iterable[Obj] | None
CRDS_ENV = "ROLLOUT_SANDBOX_CRDS"


def resolve_crds(crds: CrdInput) -> list[Obj]:
    """CRD documents from a list, a directory, or (None) `$ROLLOUT_SANDBOX_CRDS` or
    `.sandbox/crds` if present; an empty list when there are none."""
    if crds is None:
        found = os.environ.get(CRDS_ENV) or (str(DEFAULT_DIR) if DEFAULT_DIR.is_dir() else "")
        return load_dir(Path(found)) if found else []
    if isinstance(crds, str | Path):
        return load_dir(Path(crds))
    return list(crds)


class KubeEmulator:
    """The emulated Kubernetes API server (see the module docstring)."""

    def __init__(self, seed: str = "demo", host: str = "127.0.0.1", port: int = 0, *,
                 controller_delay: float = 0.0, controller: bool = True,
                 crds: CrdInput = None) -> None:
        self._host = host
        self._requested_port = port
        self.admission = Admission(resolve_crds(crds))
        unchecked = self.admission.unchecked_kinds()
        if unchecked:
            _log.warning("no CRD schema for %s: writes of these kinds are NOT validated, "
                         "pruned or defaulted (run `python -m sandbox.crds`, or pass "
                         "--crds DIR)", ", ".join(f"{t.kind}.{t.group}" for t in unchecked))
        self._store = Store(self.admission)
        self._book = FaultBook()
        self._server: BackgroundServer | None = None
        self._port = 0
        for obj in seed_objects(seed):
            self._store.put(obj)
        # Attached after seeding, then run once: the seed gets its statuses in one pass.
        self._controller = GatewayController(self._store, delay=controller_delay) \
            if controller else None
        if self._controller is not None:
            self._controller.reconcile()

    # ---- lifecycle -----------------------------------------------------------------------

    @property
    def url(self) -> str:
        if not self._port:
            raise RuntimeError("the emulator is not started")
        return f"http://{self._host}:{self._port}"

    def start(self) -> None:
        """Serve in a background thread; return once the port accepts connections."""
        if self._server is not None:
            return
        app = KubeApp(self._store, self._book,
                      server_address=lambda: f"{self._host}:{self._port}")
        self._server = BackgroundServer(
            app, host=self._host, port=self._requested_port, threads=_THREADS,
            ident="kube-emulator", channel_request_lookahead=5,
            clear_untrusted_proxy_headers=True, channel_timeout=120,
        )
        self._port = self._server.port
        logging.getLogger("waitress.queue").setLevel(logging.ERROR)
        self._server.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((self._host, self._port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.01)
        raise RuntimeError(f"the emulator did not start listening on {self.url}")

    def stop(self) -> None:
        """End open watches and stalls, stop the controller and the server; idempotent."""
        self._book.stop_stalls()
        self._store.close()
        if self._controller is not None:
            self._controller.close()
        server, self._server = self._server, None
        if server is not None:
            # its own loop closes the sockets: closed from this thread, a descriptor the loop
            # still polled could be closed again after its number was reused
            server.stop()

    def __enter__(self) -> KubeEmulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def write_kubeconfig(self, path: str | Path) -> Path:
        """Write a kubeconfig (cluster, user and context ``sandbox``, no auth) for ``url``."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "sandbox", "cluster": {"server": self.url}}],
            "users": [{"name": "sandbox", "user": {}}],
            "contexts": [{"name": "sandbox", "context": {
                "cluster": "sandbox", "user": "sandbox", "namespace": "default"}}],
            "current-context": "sandbox",
            "preferences": {},
        }
        target.write_text(yaml.safe_dump(config, sort_keys=False))
        return target

    # ---- test hooks ----------------------------------------------------------------------

    def inject(self, fault: Fault) -> None:
        if fault.served_first:
            raise ValueError("the emulator cannot fail a request after serving it; test that "
                             "against the real API server's proxy")
        self._book.inject(fault)

    def clear_faults(self) -> None:
        self._book.clear_faults()

    @property
    def requests(self) -> list[RequestRecord]:
        return self._book.requests

    def clear_requests(self) -> None:
        self._book.clear_requests()

    def get_object(self, group: str, version: str, plural: str, namespace: str | None,
                   name: str) -> Obj | None:
        """A deep copy of a stored object (``group`` "" for core), or None."""
        rt = r.lookup(group, version, plural)
        if rt is None:
            raise ValueError(f"unknown resource {plural} in {group or 'core'}/{version}")
        obj = self._store.find(rt, namespace, name)
        if obj is not None:
            obj["apiVersion"] = rt.api_version(version)
        return obj

    def put_object(self, obj: Obj) -> Obj:
        """Create or replace ``obj`` (status kept), bypassing HTTP; the controller still runs."""
        return copy.deepcopy(self._store.put(obj))

    @property
    def store(self) -> Store:
        return self._store


def serve_forever(port: int, kubeconfig: str, seed: str = "demo",
                  host: str = "127.0.0.1", crds: CrdInput = None) -> None:
    """Run the emulator in the foreground until SIGINT or SIGTERM (``rollout-bot emulator``)."""
    emulator = KubeEmulator(seed=seed, host=host, port=port, crds=crds)
    emulator.start()
    path = emulator.write_kubeconfig(kubeconfig)
    print(f"Kubernetes API emulator listening on {emulator.url} (seed: {seed})", flush=True)
    print(f"kubeconfig written to {path}; try:", flush=True)
    print(f"  kubectl --kubeconfig {path} get httproutes -n default -o yaml", flush=True)
    stopped = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopped.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stopped.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        emulator.stop()
        print("Kubernetes API emulator stopped", flush=True)

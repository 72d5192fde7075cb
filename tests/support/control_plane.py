"""A real kube-apiserver and etcd for the tests, built from the pinned Go module beside this file.

`binaries()` builds both once per machine into a cache directory keyed by the module's
`go.mod` and `go.sum` (outside the work tree; later runs and CI on the same machine reuse it).
`ControlPlane` starts etcd and kube-apiserver on free loopback ports with generated serving
certificates, static-token authentication (an admin in `system:masters`, and the bot's service
account), RBAC authorization and an audit log, the way controller-runtime's envtest does.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import urllib3

MODULE_DIR = Path(__file__).resolve().parent / "apiserver"
ADMIN_TOKEN = "admin-token-for-tests"
BOT_TOKEN = "bot-token-for-tests"
BOT_NAMESPACE = "rollout-bot"
BOT_SERVICE_ACCOUNT = "rollout-bot"
BOT_USER = f"system:serviceaccount:{BOT_NAMESPACE}:{BOT_SERVICE_ACCOUNT}"
_BUILD_TIMEOUT = 3600.0


def cache_root() -> Path:
    """Where built binaries live: `ROLLOUT_TEST_CACHE`, else the user's cache directory."""
    explicit = os.environ.get("ROLLOUT_TEST_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rollout-bot" / "kubeworld"


def _module_key() -> str:
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum", "etcd/main.go"):
        digest.update((MODULE_DIR / name).read_bytes())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class Binaries:
    kube_apiserver: Path
    etcd: Path


def binaries(*, log: Path | None = None) -> Binaries:
    """The built kube-apiserver and etcd, building them first when this machine lacks them."""
    target = cache_root() / _module_key()
    built = Binaries(kube_apiserver=target / "kube-apiserver", etcd=target / "etcd")
    if built.kube_apiserver.exists() and built.etcd.exists():
        return built
    go = shutil.which("go")
    if go is None:
        raise RuntimeError("the Go toolchain is needed to build the test API server ('go')")
    target.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="build-", dir=target))
    env = {**os.environ, "GOFLAGS": "-mod=readonly -buildvcs=false", "CGO_ENABLED": "0"}
    print(f"building kube-apiserver and etcd into {target} (the first time only: several "
          "minutes on two cores)", file=sys.stderr, flush=True)
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(log.open("ab")) if log else None
        subprocess.run(
            [go, "build", "-trimpath", "-ldflags=-s -w", "-o", str(staging) + "/",
             "k8s.io/kubernetes/cmd/kube-apiserver", "./etcd"],
            cwd=MODULE_DIR, env=env, check=True, stdout=out, stderr=out,
            timeout=_BUILD_TIMEOUT,
        )
    # Publish atomically so a concurrent or interrupted build never leaves half a binary.
    (staging / "etcd").replace(built.etcd)
    (staging / "kube-apiserver").replace(built.kube_apiserver)
    shutil.rmtree(staging, ignore_errors=True)
    return built


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certificates(directory: Path) -> None:
    """A CA, a serving certificate for 127.0.0.1 and localhost, and a service-account key."""
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=rollout-bot-test-ca",
             cwd=directory)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "serving.key",
             "-out", "serving.csr", "-subj", "/CN=kube-apiserver", cwd=directory)
    (directory / "san.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\n"
        "extendedKeyUsage=serverAuth\n")
    _openssl("x509", "-req", "-in", "serving.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "2", "-out", "serving.crt", "-extfile", "san.ext",
             cwd=directory)
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=directory)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=directory)


AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: Metadata
    users: ["{user}"]
  - level: None
"""


@dataclass
class ControlPlane:
    """etcd and kube-apiserver as child processes, in a temporary directory of their own."""

    binaries: Binaries
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="kubeworld-")))
    port: int = 0
    _processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca_file(self) -> Path:
        return self.workdir / "ca.crt"

    @property
    def audit_log(self) -> Path:
        return self.workdir / "audit.log"

    def start(self) -> None:
        make_certificates(self.workdir)
        (self.workdir / "tokens.csv").write_text(
            f'{ADMIN_TOKEN},admin,admin-uid,"system:masters"\n'
            f'{BOT_TOKEN},{BOT_USER},bot-uid,'
            f'"system:serviceaccounts,system:serviceaccounts:{BOT_NAMESPACE}"\n')
        (self.workdir / "audit-policy.yaml").write_text(AUDIT_POLICY.format(user=BOT_USER))
        etcd_client, etcd_peer = free_port(), free_port()
        self._spawn("etcd", [
            str(self.binaries.etcd), "--name", "test", "--data-dir", str(self.workdir / "etcd"),
            "--listen-client-urls", f"http://127.0.0.1:{etcd_client}",
            "--advertise-client-urls", f"http://127.0.0.1:{etcd_client}",
            "--listen-peer-urls", f"http://127.0.0.1:{etcd_peer}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{etcd_peer}",
            "--initial-cluster", f"test=http://127.0.0.1:{etcd_peer}",
            "--unsafe-no-fsync", "--log-level", "warn",
        ])
        self.port = free_port()
        self._spawn("kube-apiserver", [
            str(self.binaries.kube_apiserver),
            f"--etcd-servers=http://127.0.0.1:{etcd_client}",
            f"--secure-port={self.port}", "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--cert-dir={self.workdir / 'certs'}",
            f"--tls-cert-file={self.workdir / 'serving.crt'}",
            f"--tls-private-key-file={self.workdir / 'serving.key'}",
            f"--token-auth-file={self.workdir / 'tokens.csv'}",
            "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={self.workdir / 'sa.pub'}",
            f"--service-account-signing-key-file={self.workdir / 'sa.key'}",
            "--service-cluster-ip-range=10.0.0.0/24",
            # No controller-manager runs, so nothing creates the `default` service accounts
            # that this admission plugin would require of every pod (envtest does the same).
            "--disable-admission-plugins=ServiceAccount",
            "--allow-privileged=true",
            f"--audit-policy-file={self.workdir / 'audit-policy.yaml'}",
            f"--audit-log-path={self.audit_log}",
            "--audit-log-mode=blocking",
        ])
        self._wait_ready()

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = (self.workdir / f"{name}.log").open("wb")
        self._processes.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT))

    def _wait_ready(self, timeout: float = 90.0) -> None:
        http = urllib3.PoolManager(ca_certs=str(self.ca_file), retries=False)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for proc in self._processes:
                if proc.poll() is not None:
                    argv = cast(list[str], proc.args)  # _spawn starts each from a list
                    raise RuntimeError(f"{argv[0]} exited ({proc.returncode}); "
                                       f"see the logs in {self.workdir}")
            with contextlib.suppress(urllib3.exceptions.HTTPError):
                answer = http.request("GET", f"{self.url}/readyz", timeout=2.0,
                                      headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
                if answer.status == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"kube-apiserver was not ready within {timeout}s; see {self.workdir}")

    def stop(self) -> None:
        for proc in reversed(self._processes):
            proc.terminate()
        for proc in reversed(self._processes):
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._processes.clear()
        shutil.rmtree(self.workdir, ignore_errors=True)

"""`rediss://` against a real redis-server speaking TLS: the bot's store works through it with
the CA named in the URL, and refuses a server it cannot verify (nothing is sent in clear)."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from rollout.adapters.store import RedisStore
from rollout.domain.errors import StoreUnavailable
from rollout.redis_connect import connect
from sandbox.ports import free_port
from sandbox.redis_server import RedisServer


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: cannot make the test certificates")
    d = tmp_path_factory.mktemp("tls")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
             "/CN=test-ca", "-keyout", "ca.key", "-out", "ca.pem", cwd=d)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
             "-keyout", "server.key", "-out", "server.csr", cwd=d)
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server.pem", cwd=d)
    return d


@pytest.fixture(scope="module")
def tls_redis(certs: Path) -> Iterator[tuple[RedisServer, int]]:
    port = free_port()
    config = (f"tls-port {port}\ntls-cert-file {certs / 'server.pem'}\n"
              f"tls-key-file {certs / 'server.key'}\ntls-ca-cert-file {certs / 'ca.pem'}\n"
              "tls-auth-clients no")
    with RedisServer(config=config) as server:
        yield server, port


def test_the_store_works_over_tls_with_the_ca_from_the_url(
    tls_redis: tuple[RedisServer, int], certs: Path,
) -> None:
    _, port = tls_redis
    store = RedisStore(connect(f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={certs / 'ca.pem'}"),
                       prefix="tls")
    try:
        store.ping()
        lease = store.acquire("target")
        assert lease.token >= 1
        store.release(lease)
    finally:
        store.client.close()


def test_a_server_it_cannot_verify_is_refused(tls_redis: tuple[RedisServer, int]) -> None:
    _, port = tls_redis
    store = RedisStore(connect(f"rediss://127.0.0.1:{port}/0"), prefix="tls")
    try:
        with pytest.raises(StoreUnavailable) as refused:
            store.ping()
    finally:
        store.client.close()
    # refused for the certificate, not for anything else: the TLS layer's own error is its cause
    causes: list[BaseException] = []
    cause: BaseException | None = refused.value
    while cause is not None and len(causes) < 10:
        causes.append(cause)
        cause = cause.__cause__ or cause.__context__
    assert any(isinstance(c, ssl.SSLCertVerificationError) for c in causes), causes

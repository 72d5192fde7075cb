"""Kubernetes client construction: in-cluster config inside a pod, kubeconfig outside.

Each call builds its own ApiClient; nothing touches the client library's global default.
"""

from __future__ import annotations

import os

from kubernetes import client, config
from urllib3.util.retry import Retry

from bot.settings import SettingsError


class KubeConfigMissing(SettingsError):
    """No usable Kubernetes configuration: the caller says so in one line."""


def api_client(kubeconfig: str | None = None, *,
               connections: int | None = None) -> client.ApiClient:
    """`connections` sizes the connection pool (the namespace cache holds one per watch)."""
    if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        configuration = client.Configuration()
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    else:
        configuration = client.Configuration()
        if kubeconfig is not None and not os.path.isfile(os.path.expanduser(kubeconfig)):
            raise KubeConfigMissing(f"kubeconfig {kubeconfig} does not exist (set KUBECONFIG "
                                    "or --kubeconfig)")
        try:
            config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=kubeconfig, client_configuration=configuration
            )
        except config.ConfigException as exc:
            first = " ".join(str(exc).split())
            raise KubeConfigMissing(f"no usable kubeconfig ({first}); set KUBECONFIG or "
                                    "--kubeconfig, or run inside the cluster") from None
    configuration.retries = request_retries()
    # the proxy the environment names, resolved once: left to the environment, the client
    # scans every environment variable on each request (its token refresh sets the host
    # again, and that looks the proxy up anew), a tenth of a step's CPU
    configuration.proxy = configuration.proxy
    if connections is not None:
        configuration.connection_pool_maxsize = connections
    return client.ApiClient(configuration)


#: the methods a request that may have reached the server is sent again for: reads only
READ_METHODS = frozenset({"GET", "HEAD"})


def request_retries() -> Retry:
    """One retry where the request cannot have landed, none for an answer. A connection that
    never opened is tried again; a dropped one only for a read (a PATCH that reached the
    server may have landed, and its copy meets its own write: a 409, then a false drift).
    Every other error (an SSL error after the request went out, a redirect) is not retried:
    urllib3 counts those under `other`, for any method. Left to urllib3, a GET or PUT
    answered 429 or 503 with a Retry-After slept that long inside the call (however long the
    server said) and went again: the bot decides on a throttle itself (a tick holds back, a
    person is told when to try again). Timeouts are set per request by the adapters."""
    return Retry(total=1, connect=1, read=1, other=0, status=0, redirect=0,
                 allowed_methods=READ_METHODS, respect_retry_after_header=False)


def custom_objects(api: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api)


def reachable(api: client.ApiClient, *, timeout: float = 2.0) -> bool:
    try:
        client.VersionApi(api).get_code(_request_timeout=timeout)
    except Exception:  # any failure means "not ready"; /readyz reports it
        return False
    return True

"""Kubernetes client construction: in-cluster config inside a pod, kubeconfig outside.

Each call builds its own ApiClient; nothing touches the client library's global default.
"""

from __future__ import annotations

import os

from kubernetes import client, config


def api_client(kubeconfig: str | None = None) -> client.ApiClient:
    if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        configuration = client.Configuration()
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    else:
        configuration = client.Configuration()
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, client_configuration=configuration
        )
    # one retry for a dropped connection; timeouts are set per request by the adapters
    configuration.retries = 1
    return client.ApiClient(configuration)


def custom_objects(api: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api)


def reachable(api: client.ApiClient, *, timeout: float = 2.0) -> bool:
    try:
        client.VersionApi(api).get_code(_request_timeout=timeout)
    except Exception:  # any failure means "not ready"; /readyz reports it
        return False
    return True

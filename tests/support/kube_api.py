"""The official client's ApiClient as the tests use it."""

from __future__ import annotations

from kubernetes import client


def close_api(api: client.ApiClient) -> None:
    """Close the client's connection pool (the client leaves `close` unannotated)."""
    api.close()  # type: ignore[no-untyped-call]

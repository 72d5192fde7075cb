"""The two core lists the bot reads, Pods and Services of a namespace, sent with the official
client's ApiClient instead of its CoreV1Api.

CoreV1Api's module imports every core model, and importing it took about 2.5 s of each
process's start: every CLI command and every restarted replica or scheduler paid it, for two
GETs whose answers the bot reads as plain JSON anyway. The requests are the ones CoreV1Api
builds (the same path, query, Accept header and authentication), and the calls take the
arguments the namespace cache's informers and the direct reader give CustomObjectsApi's lists.
"""

from __future__ import annotations

from typing import Any

from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

#: the query parameters a list or a watch takes here, by their Python and wire names
_QUERY = (("allow_watch_bookmarks", "allowWatchBookmarks"),
          ("resource_version", "resourceVersion"),
          ("timeout_seconds", "timeoutSeconds"),
          ("watch", "watch"))


class CoreLists:
    """`list_namespaced_pod` and `list_namespaced_service`, answering raw (the HTTP response
    whose `data` is the JSON, or the watch's stream), as CoreV1Api's do with
    `_preload_content=False`; a non-2xx answer raises ApiException with its status."""

    def __init__(self, api: ApiClient) -> None:
        self.api = api

    def list_namespaced_pod(self, namespace: str, **options: Any) -> Any:
        return self._list(namespace, "pods", **options)

    def list_namespaced_service(self, namespace: str, **options: Any) -> Any:
        return self._list(namespace, "services", **options)

    def _list(self, namespace: str, plural: str, *, _preload_content: bool = False,
              _request_timeout: Any = None, **options: Any) -> Any:
        if _preload_content:
            raise ValueError("CoreLists answers raw: pass _preload_content=False")
        unknown = set(options) - {name for name, _ in _QUERY}
        if unknown:
            raise TypeError(f"CoreLists does not send {', '.join(sorted(unknown))}")
        query = [(wire, options[name]) for name, wire in _QUERY
                 if options.get(name) is not None]
        request = self.api.param_serialize(
            method="GET", resource_path=f"/api/v1/namespaces/{{namespace}}/{plural}",
            path_params={"namespace": namespace}, query_params=query,
            header_params={"Accept": "application/json"}, auth_settings=["BearerToken"])
        answer = self.api.call_api(*request, _request_timeout=_request_timeout)
        if not 200 <= answer.status <= 299:
            answer.read()  # type: ignore[no-untyped-call]  # the body, for the exception
            raise ApiException.from_response(http_resp=answer, body=None, data=None)
        return answer.response

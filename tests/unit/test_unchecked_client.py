"""The fenced writer calls the official client's hot methods without pydantic's argument
check, and still calls a test's double as it is."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes.client import ApiClient, Configuration, CustomObjectsApi
from pydantic import ValidationError

from rollout.adapters.kube.fenced import unchecked


def test_the_generated_client_is_called_without_its_argument_check() -> None:
    api = CustomObjectsApi(ApiClient(Configuration(host="http://127.0.0.1:9")))
    checked = api.get_namespaced_custom_object
    with pytest.raises(ValidationError):  # what the check costs on every call
        # a number for the name, on purpose: the check is what refuses it
        checked("g", "v", "ns", "plural", 5)  # type: ignore[arg-type]
    call = unchecked(api, "get_namespaced_custom_object")
    raw = CustomObjectsApi.get_namespaced_custom_object.raw_function  # type: ignore[attr-defined]
    assert call.func is raw and call.args == (api,)  # type: ignore[attr-defined]


def test_a_double_is_called_as_it_is() -> None:
    class Double:
        def get_namespaced_custom_object(self, *args: Any, **kwargs: Any) -> str:
            return "double"

    assert unchecked(Double(), "get_namespaced_custom_object")() == "double"

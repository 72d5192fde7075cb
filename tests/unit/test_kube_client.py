"""The Kubernetes client as the bot builds it from a kubeconfig."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.kube import api_client

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {server: "https://kube.test:6443", insecure-skip-tls-verify: true}
users:
- name: bot
  user: {token: "a-token"}
contexts:
- name: test
  context: {cluster: test, user: bot}
current-context: test
"""


def test_the_environments_proxy_is_resolved_once(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The client's token refresh runs before every request and sets the host again, which
    looked the proxy up in the environment anew (every variable, each request): resolved at
    start, a later environment changes nothing."""
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.test:3128")
    api = api_client(str(path))
    try:
        configuration = api.configuration
        assert configuration.proxy == "http://proxy.test:3128"
        monkeypatch.setenv("HTTPS_PROXY", "http://elsewhere.test:3128")
        assert configuration.refresh_api_key_hook is not None
        configuration.refresh_api_key_hook(configuration)  # what each request runs first
        assert configuration.host == "https://kube.test:6443"
        assert configuration.proxy == "http://proxy.test:3128"
    finally:
        api.close()

"""Rendered deployment manifests, as the cluster would receive them, for the tests that hold
the Kustomize base and the Helm chart to the same security settings."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
Doc = dict[str, Any]


def kustomize(folder: str = "kubernetes") -> list[Doc]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: cannot render the Kustomize base")
    done = subprocess.run([kubectl, "kustomize", str(DEPLOY / folder)], capture_output=True,
                          text=True, timeout=60, check=True)
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def env_file(name: str) -> dict[str, str]:
    """A Kustomize env file of deploy/kubernetes (config.env, secret.env), as its pairs."""
    pairs = [line.split("=", 1) for line in (DEPLOY / "kubernetes" / name).read_text().splitlines()
             if line and not line.startswith("#")]
    return {k: v for k, v in pairs}


def find(docs: list[Doc], kind: str, name: str | None = None) -> Doc:
    found = [d for d in docs if d["kind"] == kind
             and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def pod_spec(workload: Doc) -> Doc:
    spec: Doc = workload["spec"]["template"]["spec"]
    return spec


_ACL = re.compile(r"user rollout-bot on >%s ([^\\'\"]+)")


def redis_acl(workload: Doc) -> str:
    """The rules of the bot's Redis ACL user, as the bundled Redis's start-up line writes
    them (the password left out)."""
    (container,) = pod_spec(workload)["containers"]
    line = " ".join([*container.get("command", []), *container.get("args", [])])
    match = _ACL.search(line)
    assert match, f"no ACL line for the bot's user in {line!r}"
    return match.group(1).strip()


CHART = DEPLOY / "helm" / "rollout-bot"
EXAMPLE_VALUES = CHART / "ci" / "example-values.yaml"
KUBE_VERSION = "1.34.0"  # a helm built from source assumes an old cluster otherwise


def helm_binary() -> str:
    """helm on PATH, or the one `make helm` builds into the virtual environment."""
    found = shutil.which("helm") or shutil.which("helm", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip("helm is not installed: `make helm` builds it")
    return found


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm_binary(), *args], capture_output=True, text=True, timeout=120,
                          check=False)


def helm_render(*sets: str, namespace: str = "rollout-bot") -> subprocess.CompletedProcess[str]:
    """`helm template` of the chart with the example values and these `--set`s, as run."""
    args = ["template", "rollout-bot", str(CHART), "--namespace", namespace,
            "--kube-version", KUBE_VERSION,
            "-f", str(EXAMPLE_VALUES)]
    for item in sets:
        args += ["--set", item]
    return helm(*args)


def helm_template(*sets: str, namespace: str = "rollout-bot") -> list[Doc]:
    done = helm_render(*sets, namespace=namespace)
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]

"""The official CRDs the test world installs, read from pinned upstream Go modules.

Each file comes from the Go module cache (`go mod download -json MODULE@VERSION`, which checks
the module against the checksum database), never from a copy in this project. Both API groups
of the inference CRDs are installed, as older clusters have them.

The llm-d router module (`github.com/llm-d/llm-d-router`, home of the `llm-d.ai`
InferenceObjective and InferenceModelRewrite) is refused by the Go module proxy this project's
machines reach. Its two CRDs are read instead from the upstream copies beside the project
(`../shared/crds`, or `ROLLOUT_UPSTREAM_CRDS`), and each is checked against the SHA-256 that
`SOURCES.md` there records for tag v0.10.0.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.support.control_plane import MODULE_DIR


@dataclass(frozen=True)
class ModuleFile:
    module: str
    version: str
    path: str


GATEWAY_API = ("sigs.k8s.io/gateway-api", "v1.6.1")
INFERENCE_EXTENSION = "sigs.k8s.io/gateway-api-inference-extension"

MODULE_CRDS = (
    ModuleFile(*GATEWAY_API, "config/crd/standard/gateway.networking.k8s.io_gateways.yaml"),
    ModuleFile(*GATEWAY_API, "config/crd/standard/gateway.networking.k8s.io_httproutes.yaml"),
    ModuleFile(INFERENCE_EXTENSION, "v1.6.0",
               "config/crd/bases/inference.networking.k8s.io_inferencepools.yaml"),
    # The legacy group: its pool was removed in v1.5.0, its objectives and rewrites after it.
    ModuleFile(INFERENCE_EXTENSION, "v1.4.0",
               "config/crd/bases/inference.networking.x-k8s.io_inferencepools.yaml"),
    ModuleFile(INFERENCE_EXTENSION, "v1.5.0",
               "config/crd/bases/inference.networking.x-k8s.io_inferenceobjectives.yaml"),
    ModuleFile(INFERENCE_EXTENSION, "v1.5.0",
               "config/crd/bases/inference.networking.x-k8s.io_inferencemodelrewrites.yaml"),
)
UPSTREAM_COPIES = ("llm-d.ai_inferenceobjectives.yaml", "llm-d.ai_inferencemodelrewrites.yaml")


def _module_dir(module: str, version: str) -> Path:
    go = shutil.which("go")
    if go is None:
        raise RuntimeError("the Go toolchain is needed to read the CRDs ('go')")
    out = subprocess.run([go, "mod", "download", "-json", f"{module}@{version}"],
                         cwd=MODULE_DIR, check=True, capture_output=True, text=True, timeout=600)
    info = json.loads(out.stdout)
    if "Error" in info:
        raise RuntimeError(f"cannot download {module}@{version}: {info['Error']}")
    return Path(info["Dir"])


def upstream_copies_dir() -> Path:
    explicit = os.environ.get("ROLLOUT_UPSTREAM_CRDS")
    if explicit:
        return Path(explicit)
    return Path(__file__).resolve().parents[3] / "shared" / "crds"


def _recorded_sha256(directory: Path) -> dict[str, str]:
    text = (directory / "SOURCES.md").read_text()
    return {name: digest for digest, name in re.findall(r"^([0-9a-f]{64})\s+(\S+)$", text,
                                                        flags=re.MULTILINE)}


def _load(text: str) -> dict[str, Any]:
    doc = yaml.safe_load(text)
    if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
        raise RuntimeError("not a CustomResourceDefinition")
    return doc


@functools.cache
def official_crds() -> tuple[dict[str, Any], ...]:
    """Every CRD the test world installs, parsed."""
    crds = []
    for entry in MODULE_CRDS:
        crds.append(_load((_module_dir(entry.module, entry.version) / entry.path).read_text()))
    copies = upstream_copies_dir()
    recorded = _recorded_sha256(copies)
    for name in UPSTREAM_COPIES:
        data = (copies / name).read_bytes()
        if hashlib.sha256(data).hexdigest() != recorded.get(name):
            raise RuntimeError(f"{copies / name} does not match the SHA-256 in SOURCES.md")
        crds.append(_load(data.decode()))
    return tuple(crds)

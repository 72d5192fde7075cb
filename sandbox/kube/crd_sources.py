"""Where the official CRDs come from: pinned upstream Go modules, one list for all users.

The emulator's materializing command and the tests' real API server both read this list, so
the emulator validates against exactly the CRDs the real server is given. The llm-d router's
two CRDs come from its module where the Go module proxy serves it, else from a directory of
upstream copies (`ROLLOUT_UPSTREAM_CRDS`) checked against the SHA-256 its SOURCES.md records.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModuleFile:
    """One CRD file inside one pinned Go module."""

    module: str
    version: str
    path: str

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


GATEWAY_API = ("sigs.k8s.io/gateway-api", "v1.6.1")
INFERENCE_EXTENSION = "sigs.k8s.io/gateway-api-inference-extension"
LLMD_ROUTER = ("github.com/llm-d/llm-d-router", "v0.10.0")

MODULE_CRDS: tuple[ModuleFile, ...] = (
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
# The llm-d.ai kinds: in the router module, or as upstream copies when the proxy refuses it.
LLMD_CRDS: tuple[ModuleFile, ...] = (
    ModuleFile(*LLMD_ROUTER, "config/crd/bases/llm-d.ai_inferenceobjectives.yaml"),
    ModuleFile(*LLMD_ROUTER, "config/crd/bases/llm-d.ai_inferencemodelrewrites.yaml"),
)
UPSTREAM_ENV = "ROLLOUT_UPSTREAM_CRDS"

"""The kinds the emulator serves: one table that routing, discovery and the store all read.

Keeping group/version/plural/kind facts in one place means a kind is added in one line and
discovery can never disagree with what the router accepts.
"""

from __future__ import annotations

from dataclasses import dataclass

GATEWAY_GROUP = "gateway.networking.k8s.io"
POOL_GROUP = "inference.networking.k8s.io"
LEGACY_GROUP = "inference.networking.x-k8s.io"
LLMD_GROUP = "llm-d.ai"

VERBS = ("create", "delete", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class ResourceType:
    """One REST resource: where it is served and how it behaves."""

    group: str
    versions: tuple[str, ...]  # served versions, the first is the storage version
    kind: str
    plural: str
    singular: str
    namespaced: bool = True
    status_subresource: bool = True
    has_generation: bool = True  # custom resources and Gateway API kinds track generation
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()

    @property
    def key(self) -> tuple[str, str]:
        return (self.group, self.plural)

    @property
    def storage_version(self) -> str:
        return self.versions[0]

    def api_version(self, version: str | None = None) -> str:
        v = version or self.storage_version
        return f"{self.group}/{v}" if self.group else v


NAMESPACES = ResourceType(
    "", ("v1",), "Namespace", "namespaces", "namespace",
    namespaced=False, has_generation=False, short_names=("ns",),
)
PODS = ResourceType(
    "", ("v1",), "Pod", "pods", "pod", has_generation=False,
    short_names=("po",), categories=("all",),
)
SERVICES = ResourceType(
    "", ("v1",), "Service", "services", "service", has_generation=False,
    short_names=("svc",), categories=("all",),
)
EVENTS = ResourceType(
    "", ("v1",), "Event", "events", "event",
    status_subresource=False, has_generation=False, short_names=("ev",),
)
GATEWAYS = ResourceType(
    GATEWAY_GROUP, ("v1", "v1beta1"), "Gateway", "gateways", "gateway",
    short_names=("gtw",), categories=("gateway-api",),
)
HTTPROUTES = ResourceType(
    GATEWAY_GROUP, ("v1", "v1beta1"), "HTTPRoute", "httproutes", "httproute",
    categories=("gateway-api",),
)
POOLS = ResourceType(
    POOL_GROUP, ("v1",), "InferencePool", "inferencepools", "inferencepool",
    short_names=("infpool",),
)
LEGACY_POOLS = ResourceType(
    LEGACY_GROUP, ("v1alpha2",), "InferencePool", "inferencepools", "inferencepool",
    short_names=("xinfpool",),
)
OBJECTIVES = ResourceType(
    LLMD_GROUP, ("v1alpha2",), "InferenceObjective", "inferenceobjectives", "inferenceobjective",
)
LEGACY_OBJECTIVES = ResourceType(
    LEGACY_GROUP, ("v1alpha2",), "InferenceObjective", "inferenceobjectives",
    "inferenceobjective",
)
REWRITES = ResourceType(
    LLMD_GROUP, ("v1alpha2",), "InferenceModelRewrite", "inferencemodelrewrites",
    "inferencemodelrewrite",
)
LEGACY_REWRITES = ResourceType(
    LEGACY_GROUP, ("v1alpha2",), "InferenceModelRewrite", "inferencemodelrewrites",
    "inferencemodelrewrite",
)

# Order matters: kubectl resolves a bare resource name to the first group that serves it.
ALL: tuple[ResourceType, ...] = (
    NAMESPACES, PODS, SERVICES, EVENTS, GATEWAYS, HTTPROUTES, POOLS, OBJECTIVES, REWRITES,
    LEGACY_POOLS, LEGACY_OBJECTIVES, LEGACY_REWRITES,
)

GROUP_ORDER: tuple[str, ...] = (GATEWAY_GROUP, POOL_GROUP, LLMD_GROUP, LEGACY_GROUP)


def lookup(group: str, version: str, plural: str) -> ResourceType | None:
    """The resource served at ``/apis/<group>/<version>/<plural>`` (or ``/api/v1``)."""
    for rt in ALL:
        if rt.group == group and rt.plural == plural and version in rt.versions:
            return rt
    return None


def for_api_version(api_version: str, kind: str) -> ResourceType | None:
    """The resource for an object's ``apiVersion`` and ``kind``."""
    group, _, version = api_version.rpartition("/")
    for rt in ALL:
        if rt.group == group and rt.kind == kind and version in rt.versions:
            return rt
    return None


def in_group_version(group: str, version: str) -> list[ResourceType]:
    return [rt for rt in ALL if rt.group == group and version in rt.versions]


def group_versions(group: str) -> list[str]:
    """Served versions of a group, preferred (storage) version first."""
    seen: list[str] = []
    for rt in ALL:
        if rt.group == group:
            for v in rt.versions:
                if v not in seen:
                    seen.append(v)
    return seen

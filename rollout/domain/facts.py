"""What the cluster adapter read, as plain data the preflight checks decide on.

The adapter translates API objects into these records once; every check is then a pure
function of them, tested without a cluster. Only the fields a check needs are kept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

POOL_GROUP = "inference.networking.k8s.io"
LEGACY_GROUP = "inference.networking.x-k8s.io"
LLMD_GROUP = "llm-d.ai"
POOL_VERSIONS = {POOL_GROUP: "v1", LEGACY_GROUP: "v1alpha2"}
# The endpoint picker reads InferenceObjectives and InferenceModelRewrites from the first of
# these groups the cluster serves, and ignores the others (llm-d-router
# pkg/epp/server/controller_config.go, populateWithDiscovery).
EPP_GROUPS = (LLMD_GROUP, LEGACY_GROUP)


@dataclass(frozen=True, kw_only=True)
class Condition:
    type: str
    status: str
    reason: str = ""
    message: str = ""
    observed_generation: int | None = None


@dataclass(frozen=True, kw_only=True)
class ParentStatus:
    """One `status.parents[]` (v1) or `status.parent[]` (legacy) entry of a pool."""

    name: str
    kind: str = "Gateway"
    conditions: tuple[Condition, ...] = ()

    def condition(self, kind: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == kind), None)


@dataclass(frozen=True, kw_only=True)
class PickerRef:
    """The pool's endpoint picker: `spec.endpointPickerRef` (v1) or `spec.extensionRef`."""

    name: str
    kind: str = "Service"
    group: str = ""
    port: int | None = None


@dataclass(frozen=True, kw_only=True)
class PoolFacts:
    name: str
    group: str
    generation: int | None = None
    deleting: bool = False
    selector: Mapping[str, str] = field(default_factory=dict)
    target_ports: tuple[int, ...] = ()
    picker: PickerRef | None = None
    parents: tuple[ParentStatus, ...] = ()


@dataclass(frozen=True, kw_only=True)
class ObjectiveFacts:
    name: str
    pool: str
    pool_group: str = POOL_GROUP
    priority: int = 0  # the endpoint picker reads an unset priority as 0
    deleting: bool = False


@dataclass(frozen=True, kw_only=True)
class PodFacts:
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    ready: bool = False
    ip: str = ""
    deleting: bool = False
    active_ports: frozenset[int] | None = None  # from the active-ports annotation, if any


@dataclass(frozen=True, kw_only=True)
class RewriteRule:
    models: tuple[str, ...] = ()  # exact model names; empty means the rule matches any model
    targets: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class ManagedField:
    """One `metadata.managedFields[]` entry: who set which fields, how and when."""

    manager: str
    operation: str = "Update"
    time: str = ""
    fields: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class ObjectFacts:
    """The route or rewrite whose weights the bot writes, as far as ownership goes."""

    kind: str
    group: str
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    managed_fields: tuple[ManagedField, ...] = ()
    #: a route's Gateways (its parentRefs to a Gateway): the ones whose status on the pool
    #: the pool gate reads; none for a rewrite, or a route that names none
    gateways: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class RewriteFacts:
    name: str
    pool: str
    pool_group: str = POOL_GROUP
    created: str = ""  # RFC 3339 in UTC, so that strings order as times do
    deleting: bool = False
    rules: tuple[RewriteRule, ...] = ()
    object: ObjectFacts | None = None


@dataclass(frozen=True, kw_only=True)
class ClusterFacts:
    """One namespace as the adapter read it, in one pass."""

    namespace: str
    served_pool_groups: frozenset[str] = frozenset()
    pools: tuple[PoolFacts, ...] = ()
    objective_group: str | None = None  # the group the endpoint picker reads, if any
    objectives: tuple[ObjectiveFacts, ...] = ()
    rewrite_group: str | None = None
    rewrites: tuple[RewriteFacts, ...] = ()
    pods: tuple[PodFacts, ...] = ()
    services: frozenset[str] = frozenset()
    route: ObjectFacts | None = None
    #: `label_index(pods)`, given by a reader that keeps it across reads (the namespace
    #: cache builds it once per change of the pods); else built here on first use
    pod_labels: PodLabels | None = field(default=None, compare=False, repr=False)

    def pool(self, name: str, group: str) -> PoolFacts | None:
        return next((p for p in self.pools if p.name == name and p.group == group), None)

    def pools_named(self, name: str) -> tuple[PoolFacts, ...]:
        return tuple(p for p in self.pools if p.name == name)

    def rewrite(self, name: str) -> RewriteFacts | None:
        return next((r for r in self.rewrites if r.name == name), None)

    def selectable(self, selector: Mapping[str, str]) -> Sequence[PodFacts]:
        """The pods carrying the selector's rarest label (none for an empty selector): all a
        selector can match, found without looking at every pod of the namespace (a step's
        gates count the endpoints of a few pools among many)."""
        if not selector:
            return ()
        index = self.pod_labels if self.pod_labels is not None else self._pods_by_label
        return min((index.get(item, ()) for item in selector.items()), key=len)

    @cached_property
    def _pods_by_label(self) -> PodLabels:
        return label_index(self.pods)


#: pods by each label they carry, (key, value)
PodLabels = Mapping[tuple[str, str], Sequence[PodFacts]]


def label_index(pods: Sequence[PodFacts]) -> PodLabels:
    """What `ClusterFacts.selectable` looks a selector's labels up in."""
    found: dict[tuple[str, str], list[PodFacts]] = {}
    for pod in pods:
        for item in pod.labels.items():
            found.setdefault(item, []).append(pod)
    return found

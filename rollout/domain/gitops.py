"""GitOps gate: who else owns the weights the bot is about to write.

Argo CD and Flux re-apply what Git says; if they own the weights, they will put the old
split back behind the bot's back. Ownership is read from `metadata.managedFields` (a
manager whose fields reach `spec.rules[*].backendRefs[*].weight` or
`spec.rules[*].targets[*].weight`; HTTPRoute rules and rewrite rules are atomic lists, so
owning `spec.rules` owns every weight), and from the tools' tracking labels and
annotations. Refuse with the exact remedy, or, with `--allow-gitops`, proceed and treat a
revert as drift naming the manager.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from rollout.domain.facts import ManagedField, ObjectFacts
from rollout.domain.findings import Check, Finding

BOT_MANAGER = "rollout-bot"
# Field managers of the GitOps controllers: Argo CD's server-side apply manager and its
# application controller; Flux's kustomize-controller and helm-controller.
KNOWN_MANAGERS: Mapping[str, str] = {
    "argocd-controller": "Argo CD",
    "argocd-application-controller": "Argo CD",
    "kustomize-controller": "Flux",
    "helm-controller": "Flux",
}
ARGO_PREFIX = "argocd.argoproj.io/"
ARGO_LABEL = "app.kubernetes.io/instance"  # Argo CD's label tracking (its default before 3.0)
FLUX_HELM_PREFIX = "helm.toolkit.fluxcd.io/"
FLUX_PREFIXES = ("kustomize.toolkit.fluxcd.io/", FLUX_HELM_PREFIX)
# Any other manager that server-side applied the weights will apply them again: it is
# declarative like the GitOps tools. An Update (kubectl edit, create, replace) is a one-off.
APPLIER = "a server-side apply"
_LIST_ITEMS = ("k:", "i:", "v:")
_WEIGHT_LISTS = ("f:backendRefs", "f:targets")


@dataclass(frozen=True, kw_only=True)
class Owner:
    manager: str
    tool: str  # "Argo CD", "Flux", APPLIER for another Apply, "" for a one-off Update
    operation: str
    time: str


def _reaches_weight(node: Mapping[str, object]) -> bool:
    """True when a fieldsV1 subtree under `spec.rules` covers a weight: an empty set below a
    list means the whole (atomic) list is owned."""
    if not node:
        return True
    if "f:weight" in node:
        return True
    return any(isinstance(child, Mapping) and _reaches_weight(child)
               for key, child in node.items()
               if key.startswith(_LIST_ITEMS) or key in _WEIGHT_LISTS)


def owns_weights(entry: ManagedField) -> bool:
    spec = entry.fields.get("f:spec")
    if not isinstance(spec, Mapping):
        return False
    rules = spec.get("f:rules")
    return isinstance(rules, Mapping) and _reaches_weight(rules)


def weight_owners(obj: ObjectFacts, *, own: Iterable[str] = (BOT_MANAGER,)) -> tuple[Owner, ...]:
    """Managers other than the bot whose fields reach the weights, newest write first."""
    mine = set(own)
    found = [Owner(manager=e.manager,
                   tool=KNOWN_MANAGERS.get(e.manager, APPLIER if e.operation == "Apply" else ""),
                   operation=e.operation, time=e.time)
             for e in obj.managed_fields if e.manager not in mine and owns_weights(e)]
    return tuple(sorted(found, key=lambda o: o.time, reverse=True))


def tracking(obj: ObjectFacts) -> dict[str, list[str]]:
    """The GitOps tools whose tracking labels or annotations the object carries."""
    marks: dict[str, list[str]] = {}
    for where, items in (("label", obj.labels), ("annotation", obj.annotations)):
        for key, value in sorted(items.items()):
            if key.startswith(ARGO_PREFIX) or (where == "label" and key == ARGO_LABEL):
                marks.setdefault("Argo CD", []).append(f"{where} {key}={value}")
            elif key.startswith(FLUX_PREFIXES):
                marks.setdefault("Flux", []).append(f"{where} {key}={value}")
    return marks


def check_gitops(obj: ObjectFacts, *, allow_gitops: bool = False,
                 own: Iterable[str] = (BOT_MANAGER,)) -> tuple[Finding, ...]:
    """Refuse when a GitOps tool owns (or tracks) the object whose weights the bot writes,
    unless the operator allowed it; the remedy names the setting that hands the weights over.
    """
    if allow_gitops:
        return ()
    owners = weight_owners(obj, own=own)
    marks = tracking(obj)
    tools = sorted({o.tool for o in owners if o.tool} | set(marks))
    if not tools:
        return ()
    evidence = [f"field manager {o.manager} ({o.operation}, {o.time or 'time unknown'}) owns "
                f"the weights" for o in owners if o.tool]
    for tool in sorted(marks):
        evidence.append(f"{tool} tracks it ({'; '.join(marks[tool])})")
    managers = sorted({o.manager for o in owners if o.tool}) or \
        sorted({o.manager for o in owners})
    return (Finding(
        check=Check.GITOPS,
        problem=f"{obj.kind} {obj.name} is kept by {' and '.join(tools)}: "
                + "; ".join(evidence)
                + ". It would put the old weights back behind the bot's back",
        remedy=" ".join(remedy(tool, obj, [o.manager for o in owners if o.tool == tool]
                               or managers) for tool in tools)
               + " Or start with --allow-gitops: a revert then pauses the rollout as drift, "
                 "naming the manager."),)


def weight_path(obj: ObjectFacts) -> tuple[str, str]:
    """The weights as a jq path (Argo CD) and as a JSON pointer pattern (Flux)."""
    if obj.kind == "HTTPRoute":
        return ".spec.rules[].backendRefs[].weight", "/spec/rules/<i>/backendRefs/<j>/weight"
    return ".spec.rules[].targets[].weight", "/spec/rules/<i>/targets/<j>/weight"


def remedy(tool: str, obj: ObjectFacts, managers: Iterable[str] = ()) -> str:
    jq, pointer = weight_path(obj)
    if tool == APPLIER:
        return (f"Whoever applies it as field manager {', '.join(managers)} puts its weights "
                f"back on the next apply: leave the weights out of that manifest (the bot then "
                f"owns them), or stop applying it during the rollout.")
    if tool == "Argo CD":
        return (f"In the Argo CD Application that syncs it, add to spec.ignoreDifferences "
                f"{{group: {obj.group}, kind: {obj.kind}, name: {obj.name}, "
                f"managedFieldsManagers: [{BOT_MANAGER}]}} (or jqPathExpressions: ['{jq}']) "
                f"and the sync option RespectIgnoreDifferences=true, so that a sync keeps the "
                f"bot's weights.")
    # a Helm release's labels say so when helm-controller no longer owns the weights (the
    # bot's earlier rollout took them over)
    helm = "helm-controller" in set(managers) or any(
        key.startswith(FLUX_HELM_PREFIX) for key in (*obj.labels, *obj.annotations))
    if helm:
        return (f"In the Flux HelmRelease, add spec.driftDetection.ignore "
                f"[{{paths: ['{pointer}'], target: {{kind: {obj.kind}, name: {obj.name}}}}}] and "
                f"set the chart's weights to the rollout's final ones before the next upgrade.")
    return (f"In Git, annotate {obj.kind} {obj.name} with kustomize.toolkit.fluxcd.io/ssa: "
            f"IfNotPresent (Flux creates it and then leaves it to the bot), or "
            f"kustomize.toolkit.fluxcd.io/reconcile: disabled.")


def reverted_by(obj: ObjectFacts, *, own: Iterable[str] = (BOT_MANAGER,)) -> Owner | None:
    """After the weights changed behind the bot's back: the manager that last wrote them, so
    that the drift pause can name it (the newest non-bot write that reaches the weights)."""
    owners = weight_owners(obj, own=own)
    return owners[0] if owners else None


def describe(owner: Owner) -> str:
    tool = f" ({owner.tool})" if owner.tool else ""
    when = f" at {owner.time}" if owner.time else ""
    return f"{owner.manager}{tool}{when}"

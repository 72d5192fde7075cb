"""The GitOps refusal in full for an object several tools keep: every tool, every piece of
evidence and every remedy, in order; and the weight paths each tool is told to ignore."""

from __future__ import annotations

from rollout.domain.gitops import Owner, check_gitops, describe, tracking, weight_path
from tests.unit.test_gitops import ATOMIC_RULES, entry, route

KEPT = route(entry("kustomize-controller", ATOMIC_RULES, time=""),
             entry("ci-pipeline", ATOMIC_RULES),
             labels={"kustomize.toolkit.fluxcd.io/name": "apps"},
             annotations={"argocd.argoproj.io/tracking-id": "x"})


def test_every_tool_evidence_and_remedy_is_said_in_order() -> None:
    (finding,) = check_gitops(KEPT)
    assert finding.problem == (
        "HTTPRoute routes-to-llm is kept by Argo CD and Flux and a server-side apply: field "
        "manager ci-pipeline (Apply, 2026-11-26T05:00:00Z) owns the weights; field manager "
        "kustomize-controller (Apply, time unknown) owns the weights; Argo CD tracks it "
        "(annotation argocd.argoproj.io/tracking-id=x); Flux tracks it (label "
        "kustomize.toolkit.fluxcd.io/name=apps). It would put the old weights back behind the "
        "bot's back")
    assert finding.remedy == (
        "In the Argo CD Application that syncs it, add to spec.ignoreDifferences {group: "
        "gateway.networking.k8s.io, kind: HTTPRoute, name: routes-to-llm, "
        "managedFieldsManagers: [rollout-bot]} (or jqPathExpressions: "
        "['.spec.rules[].backendRefs[].weight']) and the sync option "
        "RespectIgnoreDifferences=true, so that a sync keeps the bot's weights. In Git, "
        "annotate HTTPRoute routes-to-llm with kustomize.toolkit.fluxcd.io/ssa: IfNotPresent "
        "(Flux creates it and then leaves it to the bot), or "
        "kustomize.toolkit.fluxcd.io/reconcile: disabled. Whoever applies it as field manager "
        "ci-pipeline puts its weights back on the next apply: leave the weights out of that "
        "manifest (the bot then owns them), or stop applying it during the rollout. Or start "
        "with --allow-gitops: a revert then pauses the rollout as drift, naming the manager.")


def test_tracking_names_where_each_tool_s_mark_is() -> None:
    assert tracking(KEPT) == {"Flux": ["label kustomize.toolkit.fluxcd.io/name=apps"],
                              "Argo CD": ["annotation argocd.argoproj.io/tracking-id=x"]}


def test_the_weight_paths_of_each_kind() -> None:
    assert weight_path(route()) == (".spec.rules[].backendRefs[].weight",
                                    "/spec/rules/<i>/backendRefs/<j>/weight")
    assert weight_path(route(kind="InferenceModelRewrite")) == (
        ".spec.rules[].targets[].weight", "/spec/rules/<i>/targets/<j>/weight")


def test_a_writer_without_a_tool_or_a_time_is_named_alone() -> None:
    assert describe(Owner(manager="kubectl-edit", tool="", operation="Update", time="")) == \
        "kubectl-edit"

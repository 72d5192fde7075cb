"""The GitOps gate reads ownership of the weights from managedFields and the tools' labels and
annotations, and answers with the setting that hands the weights to the bot."""

from __future__ import annotations

from collections.abc import Mapping

from rollout.domain.facts import ManagedField, ObjectFacts
from rollout.domain.findings import Check, Outcome
from rollout.domain.gitops import (
    check_gitops,
    describe,
    owns_weights,
    reverted_by,
    tracking,
    weight_owners,
)

ATOMIC_RULES: Mapping[str, object] = {"f:spec": {"f:parentRefs": {}, "f:rules": {}}}
METADATA_ONLY: Mapping[str, object] = {"f:metadata": {"f:annotations": {"f:rollout-bot/fence": {}}}}


def route(*entries: ManagedField, labels: dict[str, str] | None = None,
          annotations: dict[str, str] | None = None, kind: str = "HTTPRoute") -> ObjectFacts:
    return ObjectFacts(kind=kind, group="gateway.networking.k8s.io"
                       if kind == "HTTPRoute" else "llm-d.ai", name="routes-to-llm",
                       labels=labels or {}, annotations=annotations or {},
                       managed_fields=entries)


def entry(manager: str, fields: Mapping[str, object], *, operation: str = "Apply",
          time: str = "2026-11-26T05:00:00Z") -> ManagedField:
    return ManagedField(manager=manager, operation=operation, time=time, fields=fields)


def test_owning_the_atomic_rules_list_owns_the_weights() -> None:
    assert owns_weights(entry("argocd-controller", ATOMIC_RULES))


def test_a_granular_weight_path_is_found_and_metadata_is_not() -> None:
    granular: Mapping[str, object] = {"f:spec": {"f:rules": {"k:{\"name\":\"a\"}": {
        "f:targets": {"i:0": {"f:modelRewrite": {}, "f:weight": {}}}}}}}
    existence_only: Mapping[str, object] = {
        "f:spec": {"f:rules": {"i:0": {".": {}, "f:matches": {}}}}}
    assert owns_weights(entry("x", granular))
    assert not owns_weights(entry("x", existence_only))
    assert not owns_weights(entry("x", METADATA_ONLY))
    assert not owns_weights(entry("x", {}))


def test_an_argo_cd_field_manager_is_refused_with_the_ignore_differences_remedy() -> None:
    obj = route(entry("argocd-controller", ATOMIC_RULES),
                entry("rollout-bot", METADATA_ONLY, operation="Update"))
    (finding,) = check_gitops(obj)
    assert finding.check is Check.GITOPS and finding.outcome is Outcome.REFUSE
    assert "kept by Argo CD" in finding.problem
    assert "field manager argocd-controller (Apply, 2026-11-26T05:00:00Z) owns the weights" \
        in finding.problem
    assert "ignoreDifferences" in finding.remedy
    assert "group: gateway.networking.k8s.io, kind: HTTPRoute, name: routes-to-llm" in \
        finding.remedy
    assert "managedFieldsManagers: [rollout-bot]" in finding.remedy
    assert "jqPathExpressions: ['.spec.rules[].backendRefs[].weight']" in finding.remedy
    assert "RespectIgnoreDifferences=true" in finding.remedy
    assert "--allow-gitops" in finding.remedy


def test_argo_cd_tracking_annotations_or_label_are_enough() -> None:
    for labels, notes in (({}, {"argocd.argoproj.io/tracking-id": "app:g/k:ns/n"}),
                          ({"app.kubernetes.io/instance": "inference"}, {})):
        obj = route(entry("kubectl-client-side-apply", ATOMIC_RULES, operation="Update"),
                    labels=labels, annotations=notes)
        (finding,) = check_gitops(obj)
        assert "Argo CD tracks it" in finding.problem


def test_flux_kustomize_remedy_is_the_ssa_annotation() -> None:
    obj = route(entry("kustomize-controller", ATOMIC_RULES),
                labels={"kustomize.toolkit.fluxcd.io/name": "apps"})
    (finding,) = check_gitops(obj)
    assert "kept by Flux" in finding.problem
    assert "label kustomize.toolkit.fluxcd.io/name=apps" in finding.problem
    assert "kustomize.toolkit.fluxcd.io/ssa: IfNotPresent" in finding.remedy


def test_flux_helm_remedy_is_drift_detection_ignore_on_the_weights() -> None:
    obj = route(entry("helm-controller", {"f:spec": {"f:rules": {}}}), kind="InferenceModelRewrite",
                labels={"helm.toolkit.fluxcd.io/name": "inference"})
    (finding,) = check_gitops(obj)
    assert "spec.driftDetection.ignore" in finding.remedy
    assert "/spec/rules/<i>/targets/<j>/weight" in finding.remedy


def test_helm_controller_owning_the_weights_gets_the_helm_remedy_without_labels() -> None:
    obj = route(entry("helm-controller", ATOMIC_RULES, operation="Update"))
    (finding,) = check_gitops(obj)
    assert "field manager helm-controller (Update" in finding.problem
    assert "spec.driftDetection.ignore" in finding.remedy
    assert "ssa: IfNotPresent" not in finding.remedy


def test_a_helm_release_whose_weights_the_bot_took_over_still_gets_the_helm_remedy() -> None:
    """After a finished rollout the bot owns the weights and helm-controller no longer does;
    the release's labels still say where the next upgrade comes from."""
    obj = route(entry("rollout-bot", ATOMIC_RULES, operation="Update"),
                entry("helm-controller", {"f:spec": {"f:parentRefs": {}}}, operation="Update"),
                labels={"helm.toolkit.fluxcd.io/name": "inference"})
    (finding,) = check_gitops(obj)
    assert "spec.driftDetection.ignore" in finding.remedy
    assert "ssa: IfNotPresent" not in finding.remedy


def test_allowed_gitops_or_no_gitops_passes() -> None:
    argo = route(entry("argocd-controller", ATOMIC_RULES))
    assert check_gitops(argo, allow_gitops=True) == ()
    person = route(entry("kubectl-client-side-apply", ATOMIC_RULES, operation="Update"))
    assert check_gitops(person) == ()
    assert check_gitops(route(entry("rollout-bot", ATOMIC_RULES))) == ()


def test_tracking_ignores_unrelated_keys() -> None:
    obj = route(labels={"app": "x"}, annotations={"example.com/argocd.argoproj.io": "no"})
    assert tracking(obj) == {}


def test_a_revert_names_the_newest_writer_of_the_weights() -> None:
    obj = route(entry("kubectl-edit", ATOMIC_RULES, operation="Update",
                      time="2026-11-26T04:00:00Z"),
                entry("argocd-controller", ATOMIC_RULES, time="2026-11-26T05:00:00Z"),
                entry("rollout-bot", ATOMIC_RULES, time="2026-11-26T06:00:00Z"))
    owner = reverted_by(obj)
    assert owner is not None and owner.manager == "argocd-controller"
    assert describe(owner) == "argocd-controller (Argo CD) at 2026-11-26T05:00:00Z"
    assert [o.manager for o in weight_owners(obj)] == ["argocd-controller", "kubectl-edit"]
    assert reverted_by(route(entry("rollout-bot", ATOMIC_RULES))) is None


def test_another_server_side_applier_is_refused_but_a_one_off_update_is_not() -> None:
    obj = route(entry("ci-pipeline", ATOMIC_RULES, operation="Apply"))
    (finding,) = check_gitops(obj)
    assert "kept by a server-side apply: field manager ci-pipeline (Apply," in finding.problem
    assert "field manager ci-pipeline puts its weights back" in finding.remedy
    assert check_gitops(route(entry("kubectl-edit", ATOMIC_RULES, operation="Update"))) == ()

"""The recorded set of requests that the emulator and the real kube-apiserver must answer alike.

Each case starts from the demo seed (namespace `default`), sends its requests in order and then
reads back the objects named in `read`. Paths are relative to the API root; `{rv:NAME}` in a
query or a body string is replaced by the resourceVersion an earlier request's `capture` kept.

Nothing here states an expected answer: the real kube-apiserver's answers are the expectation,
obtained by replaying the same requests against it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ROUTES = "/apis/gateway.networking.k8s.io/v1/namespaces/default/httproutes"
POOLS = "/apis/inference.networking.k8s.io/v1/namespaces/default/inferencepools"
LEGACY_POOLS = "/apis/inference.networking.x-k8s.io/v1alpha2/namespaces/default/inferencepools"
OBJECTIVES = "/apis/llm-d.ai/v1alpha2/namespaces/default/inferenceobjectives"
REWRITES = "/apis/llm-d.ai/v1alpha2/namespaces/default/inferencemodelrewrites"
GATEWAYS = "/apis/gateway.networking.k8s.io/v1/namespaces/default/gateways"
LEGACY_REWRITES = ("/apis/inference.networking.x-k8s.io/v1alpha2/namespaces/default/"
                   "inferencemodelrewrites")

JSON = "application/json"
MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"

Obj = dict[str, Any]


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: Any = None
    content_type: str = JSON
    query: str = ""
    capture: str = ""  # remember metadata.resourceVersion of the answer under this name


@dataclass(frozen=True)
class Case:
    name: str
    requests: tuple[Request, ...]
    read: tuple[str, ...] = field(default=())


def _route(name: str, spec: Obj | None = None, **extra: Any) -> Obj:
    body: Obj = {
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": name},
        "spec": spec if spec is not None else {
            "parentRefs": [{"name": "inference-gateway"}],
            "rules": [{"backendRefs": [{"group": "inference.networking.k8s.io",
                                        "kind": "InferencePool", "name": "llm-pool"}]}],
        },
    }
    body.update(extra)
    return body


def _rule(**fields: Any) -> Obj:
    """One route rule to the pool, with the given fields added."""
    return {"backendRefs": [{"group": "inference.networking.k8s.io", "kind": "InferencePool",
                             "name": "llm-pool"}], **fields}


def _bad_route(name: str, *rules: Obj, **spec: Any) -> Case:
    body = _route(name, {"parentRefs": [{"name": "inference-gateway"}], "rules": list(rules),
                         **spec})
    return Case(name, (Request("POST", ROUTES, body),), (f"{ROUTES}/{name}",))


def _path(kind: str, value: str) -> Obj:
    return {"matches": [{"path": {"type": kind, "value": value}}]}


def _pool(name: str, spec: Obj | None) -> Obj:
    body: Obj = {"apiVersion": "inference.networking.k8s.io/v1", "kind": "InferencePool",
                 "metadata": {"name": name}}
    if spec is not None:
        body["spec"] = spec
    return body


_POOL_SPEC: Obj = {"selector": {"matchLabels": {"app": "x"}}, "targetPorts": [{"number": 8000}],
                   "endpointPickerRef": {"name": "x-epp", "port": {"number": 9002}}}


def _pool_case(name: str, **changes: Any) -> Case:
    spec = {**_POOL_SPEC, **changes}
    spec = {k: v for k, v in spec.items() if v is not None}
    return Case(name, (Request("POST", POOLS, _pool(name, spec)),), (f"{POOLS}/{name}",))


def _rewrite(name: str, spec: Obj | None, base: str = REWRITES) -> Case:
    group = base.split("/")[2]
    body: Obj = {"apiVersion": f"{group}/v1alpha2", "kind": "InferenceModelRewrite",
                 "metadata": {"name": name}}
    if spec is not None:
        body["spec"] = spec
    return Case(name, (Request("POST", base, body),), (f"{base}/{name}",))


def _targets(*targets: Obj) -> Obj:
    return {"poolRef": {"name": "llm-pool"}, "rules": [{
        "matches": [{"model": {"value": "m"}}], "targets": list(targets)}]}


_SEEDED = f"{ROUTES}/routes-to-llm"
_REWRITE = f"{REWRITES}/small-segment-lora"
_FENCE = "inference-rollout.dev/fence"
_FENCE_PTR = "inference-rollout.dev~1fence"
_WEIGHT = "/spec/rules/0/backendRefs/0/weight"

CASES: tuple[Case, ...] = (
    # ---- creates, defaults, pruning, nulls -------------------------------------------------
    Case("create-route-defaults", (Request("POST", ROUTES, _route("conf-route")),),
         (f"{ROUTES}/conf-route",)),
    Case("create-route-unknown-fields", (Request("POST", ROUTES, _route("conf-unknown", {
        "parentRefs": [{"name": "inference-gateway", "colour": "red"}],
        "extra": {"a": 1},
        "rules": [{"backendRefs": [{"kind": "InferencePool", "name": "llm-pool",
                                    "group": "inference.networking.k8s.io", "zone": "b"}]}],
    }, junk=True)),), (f"{ROUTES}/conf-unknown",)),
    Case("create-route-nulls", (Request("POST", ROUTES, _route("conf-nulls", {
        "parentRefs": [{"name": "inference-gateway", "sectionName": None}],
        "hostnames": None,
        "rules": [{"backendRefs": [{"kind": "InferencePool", "name": "llm-pool",
                                    "group": "inference.networking.k8s.io", "weight": None}],
                   "matches": None}],
    })),), (f"{ROUTES}/conf-nulls",)),
    Case("create-existing", (Request("POST", ROUTES, _route("routes-to-llm")),), (_SEEDED,)),
    Case("create-pool-defaults", (Request("POST", POOLS, _pool("conf-pool", _POOL_SPEC)),),
         (f"{POOLS}/conf-pool",)),
    Case("create-objective", (Request("POST", OBJECTIVES, {
        "apiVersion": "llm-d.ai/v1alpha2", "kind": "InferenceObjective",
        "metadata": {"name": "conf-objective"},
        "spec": {"poolRef": {"name": "llm-pool"}, "priority": 3}}),),
         (f"{OBJECTIVES}/conf-objective",)),
    # ---- merge patches, stale resourceVersions ----------------------------------------------
    Case("merge-patch-weights", (Request("PATCH", _SEEDED, {"spec": {"rules": [{
        "backendRefs": [{"group": "inference.networking.k8s.io", "kind": "InferencePool",
                         "name": "llm-pool", "weight": 90},
                        {"group": "inference.networking.k8s.io", "kind": "InferencePool",
                         "name": "llm-pool-version-2", "weight": 10}]}]}}, MERGE),),
         (_SEEDED,)),
    Case("merge-patch-annotation-null", (
        Request("PATCH", _SEEDED, {"metadata": {"annotations": {"a": "1", "b": "2"}}}, MERGE),
        Request("PATCH", _SEEDED, {"metadata": {"annotations": {"a": None}}}, MERGE)),
         (_SEEDED,)),
    Case("merge-patch-stale-rv", (Request("PATCH", _SEEDED, {
        "metadata": {"resourceVersion": "1"}, "spec": {"hostnames": ["x.example.com"]}},
        MERGE),), (_SEEDED,)),
    Case("merge-patch-invalid", (Request("PATCH", _SEEDED, {"spec": {"rules": [
        {"backendRefs": [{"kind": "InferencePool", "name": "llm-pool", "weight": -1}]}]}},
        MERGE),), (_SEEDED,)),
    Case("merge-patch-missing", (Request("PATCH", f"{ROUTES}/no-such-route",
                                         {"spec": {}}, MERGE),)),
    Case("update-stale-rv", (Request("PUT", _SEEDED, {
        **_route("routes-to-llm"), "metadata": {"name": "routes-to-llm",
                                                "resourceVersion": "1"}}),), (_SEEDED,)),
    Case("update-without-rv", (Request("PUT", _SEEDED, _route("routes-to-llm")),), (_SEEDED,)),
    # ---- JSON patches and their test ops ---------------------------------------------------
    Case("json-patch-fenced", (Request("PATCH", _SEEDED, [
        {"op": "test", "path": _WEIGHT, "value": 100},
        {"op": "replace", "path": _WEIGHT, "value": 75},
        {"op": "add", "path": "/metadata/annotations", "value": {"fence": "2"}}], JSON_PATCH),),
         (_SEEDED,)),
    Case("json-patch-test-fails", (Request("PATCH", _SEEDED, [
        {"op": "test", "path": _WEIGHT, "value": 50},
        {"op": "replace", "path": _WEIGHT, "value": 75}], JSON_PATCH),), (_SEEDED,)),
    Case("json-patch-test-missing-path", (Request("PATCH", _SEEDED, [
        {"op": "test", "path": "/metadata/annotations/fence", "value": "1"},
        {"op": "replace", "path": _WEIGHT, "value": 75}], JSON_PATCH),), (_SEEDED,)),
    Case("json-patch-test-null-on-missing", (Request("PATCH", _SEEDED, [
        {"op": "test", "path": "/metadata/annotations", "value": None},
        {"op": "replace", "path": "/metadata/labels", "value": {"fence": "1"}}], JSON_PATCH),),
         (_SEEDED,)),
    Case("json-patch-replace-missing-index", (Request("PATCH", _SEEDED, [
        {"op": "replace", "path": "/spec/rules/0/backendRefs/5/weight", "value": 1}],
        JSON_PATCH),), (_SEEDED,)),
    Case("json-patch-test-type", (Request("PATCH", _SEEDED, [
        {"op": "test", "path": _WEIGHT, "value": "100"}], JSON_PATCH),), (_SEEDED,)),
    Case("json-patch-remove-missing", (Request("PATCH", _SEEDED, [
        {"op": "remove", "path": "/metadata/annotations/nope"}], JSON_PATCH),), (_SEEDED,)),
    Case("json-patch-invalid-result", (Request("PATCH", _SEEDED, [
        {"op": "replace", "path": _WEIGHT, "value": 2000000}], JSON_PATCH),), (_SEEDED,)),
    Case("json-patch-stale-rv", (Request("PATCH", _SEEDED, [
        {"op": "replace", "path": "/metadata/resourceVersion", "value": "1"},
        {"op": "replace", "path": _WEIGHT, "value": 75}], JSON_PATCH),), (_SEEDED,)),
    Case("json-patch-unknown-op", (Request("PATCH", _SEEDED, [
        {"op": "frobnicate", "path": _WEIGHT, "value": 1}], JSON_PATCH),), (_SEEDED,)),
    Case("json-patch-not-a-list", (Request("PATCH", _SEEDED, {
        "op": "replace", "path": _WEIGHT, "value": 1}, JSON_PATCH),), (_SEEDED,)),
    Case("json-patch-copy-move", (Request("PATCH", _SEEDED, [
        {"op": "copy", "from": "/spec/rules/0/backendRefs/0",
         "path": "/spec/rules/0/backendRefs/-"},
        {"op": "add", "path": "/metadata/annotations", "value": {"a": "1"}},
        {"op": "move", "from": "/metadata/annotations/a", "path": "/metadata/annotations/b"},
        {"op": "move", "from": "/spec/rules/0/matches", "path": "/spec/rules/0/elsewhere"}],
        JSON_PATCH),), (_SEEDED,)),
    Case("json-patch-bad-pointer", (Request("PATCH", _SEEDED, [
        {"op": "replace", "path": "spec/hostnames", "value": ["a.b"]}], JSON_PATCH),),
         (_SEEDED,)),
    Case("merge-patch-list-body", (Request("PATCH", _SEEDED, [{"spec": {}}], MERGE),),
         (_SEEDED,)),
    # The bot's fenced write, as it sends it: resourceVersion precondition plus a `test` op.
    Case("fenced-write-on-a-rewrite", (
        Request("GET", _REWRITE, capture="r0"),
        Request("PATCH", _REWRITE, [
            {"op": "replace", "path": "/metadata/resourceVersion", "value": "{rv:r0}"},
            {"op": "add", "path": "/metadata/annotations", "value": {_FENCE: "1"}},
            {"op": "replace", "path": "/spec/rules/0/targets", "value": [
                {"modelRewrite": "small-segment-lora-v1", "weight": 90},
                {"modelRewrite": "small-segment-lora-v2", "weight": 10}]},
            {"op": "add", "path": f"/metadata/annotations/{_FENCE_PTR}-record",
             "value": "{}"}], JSON_PATCH, capture="r1"),
        Request("PATCH", _REWRITE, [  # a writer that read before the first write
            {"op": "replace", "path": "/metadata/resourceVersion", "value": "{rv:r0}"},
            {"op": "test", "path": f"/metadata/annotations/{_FENCE_PTR}", "value": "1"},
            {"op": "add", "path": f"/metadata/annotations/{_FENCE_PTR}", "value": "2"}],
            JSON_PATCH),
        Request("PATCH", _REWRITE, [  # a writer holding an older fence
            {"op": "replace", "path": "/metadata/resourceVersion", "value": "{rv:r1}"},
            {"op": "test", "path": f"/metadata/annotations/{_FENCE_PTR}", "value": "0"},
            {"op": "add", "path": f"/metadata/annotations/{_FENCE_PTR}", "value": "2"}],
            JSON_PATCH),
        Request("PATCH", _REWRITE, [
            {"op": "replace", "path": "/metadata/resourceVersion", "value": "{rv:r1}"},
            {"op": "test", "path": f"/metadata/annotations/{_FENCE_PTR}", "value": "1"},
            {"op": "add", "path": f"/metadata/annotations/{_FENCE_PTR}", "value": "2"},
            {"op": "replace", "path": "/spec/rules/0/targets/0/weight", "value": 75},
            {"op": "replace", "path": "/spec/rules/0/targets/1/weight", "value": 25}],
            JSON_PATCH),
    ), (_REWRITE,)),
    Case("create-wrong-kind", (Request("POST", ROUTES, {
        **_route("conf-kind"), "kind": "Gateway", "extra": 1}),), (f"{ROUTES}/conf-kind",)),
    Case("create-wrong-api-version", (Request("POST", ROUTES, {
        **_route("conf-version"), "apiVersion": "gateway.networking.k8s.io/v9"}),),
         (f"{ROUTES}/conf-version",)),
    # ---- strategic merge on a custom resource ----------------------------------------------
    Case("strategic-merge-on-crd", (Request("PATCH", _SEEDED, {"spec": {"hostnames": ["a.b"]}},
                                            STRATEGIC),), (_SEEDED,)),
    # ---- dry runs ---------------------------------------------------------------------------
    Case("dry-run-create", (Request("POST", ROUTES, _route("conf-dry"), query="dryRun=All"),),
         (f"{ROUTES}/conf-dry",)),
    Case("dry-run-patch", (Request("PATCH", _SEEDED, {"spec": {"hostnames": ["a.example"]}},
                                   MERGE, query="dryRun=All"),), (_SEEDED,)),
    Case("dry-run-delete", (Request("DELETE", _SEEDED, query="dryRun=All"),), (_SEEDED,)),
    Case("dry-run-invalid-value", (Request("POST", ROUTES, _route("conf-dry2"),
                                           query="dryRun=Yes"),), (f"{ROUTES}/conf-dry2",)),
    Case("dry-run-invalid-object", (Request("POST", ROUTES, _route("conf-dry3", {
        "rules": [_rule(**_path("PathPrefix", "no-slash"))]}), query="dryRun=All"),)),
    # ---- invalid HTTPRoutes: structural schema ----------------------------------------------
    _bad_route("bad-path-type", _rule(**_path("Glob", "/x"))),
    _bad_route("bad-weight-type", {"backendRefs": [{"kind": "InferencePool", "name": "p",
                                                    "group": "inference.networking.k8s.io",
                                                    "weight": "ten"}]}),
    _bad_route("bad-weight-bool", {"backendRefs": [{"kind": "InferencePool", "name": "p",
                                                    "group": "inference.networking.k8s.io",
                                                    "weight": True}]}),
    _bad_route("bad-weight-max", {"backendRefs": [{"kind": "InferencePool", "name": "p",
                                                   "group": "inference.networking.k8s.io",
                                                   "weight": 1000001}]}),
    _bad_route("bad-hostname", _rule(), hostnames=["Not_A_Host"]),
    _bad_route("too-many-rules", *[_rule() for _ in range(17)]),
    _bad_route("bad-rule-name", _rule(name="Bad Name")),
    _bad_route("dup-rule-names", _rule(name="a"), _rule(name="a")),
    _bad_route("dup-headers", _rule(matches=[{"headers": [
        {"name": "x-model", "value": "a"}, {"name": "x-model", "value": "b"}]}])),
    _bad_route("bad-timeout-format", _rule(timeouts={"request": "10 seconds"})),
    _bad_route("long-parent-name", _rule(), parentRefs=[{"name": "x" * 254}]),
    Case("bad-missing-spec-route", (Request("POST", ROUTES, {
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "no-spec"}}),), (f"{ROUTES}/no-spec",)),
    # ---- invalid HTTPRoutes: CEL rules ------------------------------------------------------
    _bad_route("cel-path-no-slash", _rule(**_path("PathPrefix", "v1/models"))),
    _bad_route("cel-path-double-slash", _rule(**_path("Exact", "/a//b"))),
    _bad_route("cel-path-dot-segment", _rule(**_path("PathPrefix", "/a/../b"))),
    _bad_route("cel-timeouts", _rule(timeouts={"request": "1s", "backendRequest": "2s"})),
    _bad_route("cel-filter-missing-config", _rule(filters=[{"type": "RequestHeaderModifier"}])),
    _bad_route("cel-filter-wrong-config", _rule(filters=[{
        "type": "URLRewrite", "requestHeaderModifier": {"set": [{"name": "a", "value": "b"}]}}])),
    _bad_route("cel-two-header-filters", _rule(filters=[
        {"type": "RequestHeaderModifier", "requestHeaderModifier": {"add": [
            {"name": "a", "value": "1"}]}},
        {"type": "RequestHeaderModifier", "requestHeaderModifier": {"add": [
            {"name": "b", "value": "2"}]}}])),
    _bad_route("cel-redirect-with-backends", _rule(filters=[
        {"type": "RequestRedirect", "requestRedirect": {"statusCode": 301}}])),
    _bad_route("cel-service-without-port", {"backendRefs": [{"name": "svc"}]}),
    _bad_route("cel-many-errors", _rule(**_path("PathPrefix", "x//")),
               {"backendRefs": [{"name": "svc", "weight": -3}]}),
    # ---- InferencePools ---------------------------------------------------------------------
    _pool_case("pool-no-selector", selector=None),
    _pool_case("pool-port-range", targetPorts=[{"number": 70000}]),
    _pool_case("pool-dup-ports", targetPorts=[{"number": 8000}, {"number": 8000}]),
    _pool_case("pool-too-many-ports", targetPorts=[{"number": 8000 + i} for i in range(9)]),
    _pool_case("pool-bad-protocol", appProtocol="grpc"),
    _pool_case("pool-epp-without-port", endpointPickerRef={"name": "x-epp"}),
    _pool_case("pool-bad-label", selector={"matchLabels": {"bad key!": "x"}}),
    Case("pool-no-spec", (Request("POST", POOLS, _pool("pool-no-spec", None)),),
         (f"{POOLS}/pool-no-spec",)),
    Case("legacy-pool-missing-fields", (Request("POST", LEGACY_POOLS, {
        "apiVersion": "inference.networking.x-k8s.io/v1alpha2", "kind": "InferencePool",
        "metadata": {"name": "legacy"}, "spec": {"selector": {"app": "x"}}}),),
         (f"{LEGACY_POOLS}/legacy",)),
    # ---- InferenceModelRewrites (valid upstream, whatever a hand-written rule said) ---------
    _rewrite("rewrite-some-weights", _targets({"modelRewrite": "a", "weight": 90},
                                              {"modelRewrite": "b"})),
    _rewrite("rewrite-float-weight", _targets({"modelRewrite": "a", "weight": 10.0})),
    _rewrite("rewrite-no-spec", None),
    _rewrite("rewrite-bad-weight", _targets({"modelRewrite": "a", "weight": 1.5})),
    _rewrite("rewrite-legacy-some-weights", _targets({"modelRewrite": "a", "weight": 90},
                                                     {"modelRewrite": "b"}), LEGACY_REWRITES),
    _rewrite("rewrite-missing-target-name", _targets({"weight": 5})),
    # ---- objectives -------------------------------------------------------------------------
    Case("objective-bad-priority", (Request("POST", OBJECTIVES, {
        "apiVersion": "llm-d.ai/v1alpha2", "kind": "InferenceObjective",
        "metadata": {"name": "bad-objective"},
        "spec": {"poolRef": {"name": "llm-pool"}, "priority": "high"}}),)),
    Case("objective-bad-name", (Request("POST", OBJECTIVES, {
        "apiVersion": "llm-d.ai/v1alpha2", "kind": "InferenceObjective",
        "metadata": {"name": "Bad_Name"}, "spec": {"poolRef": {"name": "llm-pool"}}}),)),
    Case("objective-bad-label-and-annotation", (Request("POST", OBJECTIVES, {
        "apiVersion": "llm-d.ai/v1alpha2", "kind": "InferenceObjective",
        "metadata": {"name": "bad-meta", "labels": {"bad key!": "x", "ok": "not valid!"},
                     "annotations": {"Bad/Key/Two": "x"}},
        "spec": {"poolRef": {"name": "llm-pool"}}}),)),
    Case("objective-no-pool-ref", (Request("POST", OBJECTIVES, {
        "apiVersion": "llm-d.ai/v1alpha2", "kind": "InferenceObjective",
        "metadata": {"name": "no-ref"}, "spec": {"priority": 1}}),)),
    Case("objective-status-unknown-field", (
        Request("PATCH", f"{OBJECTIVES}/llm-pool-chat/status", {"status": {"foo": 1}}, MERGE),),
         (f"{OBJECTIVES}/llm-pool-chat",)),
    Case("namespace-mismatch", (Request("POST", ROUTES, {
        **_route("conf-ns"), "metadata": {"name": "conf-ns", "namespace": "other"}}),)),
    _rewrite("rewrite-empty-targets", _targets()),
    _rewrite("rewrite-zero-weight", _targets({"modelRewrite": "a", "weight": 0})),
    Case("legacy-pool-valid", (Request("POST", LEGACY_POOLS, {
        "apiVersion": "inference.networking.x-k8s.io/v1alpha2", "kind": "InferencePool",
        "metadata": {"name": "legacy-ok"},
        "spec": {"selector": {"app": "x"}, "targetPortNumber": 8000,
                 "extensionRef": {"name": "epp"}}}),), (f"{LEGACY_POOLS}/legacy-ok",)),
    Case("create-route-header-defaults", (Request("POST", ROUTES, _route("conf-headers", {
        "parentRefs": [{"name": "inference-gateway", "sectionName": "http"}],
        "hostnames": ["llm.example.com"],
        "rules": [_rule(name="by-model", matches=[
            {"headers": [{"name": "x-model", "value": "a"}],
             "queryParams": [{"name": "v", "value": "1"}]}],
            filters=[{"type": "RequestHeaderModifier",
                      "requestHeaderModifier": {"set": [{"name": "x-r", "value": "1"}]}}],
            timeouts={"request": "10s", "backendRequest": "5s"})]})),),
         (f"{ROUTES}/conf-headers",)),
    Case("merge-patch-null-removes", (Request("PATCH", _SEEDED, {
        "spec": {"hostnames": ["a.example"]}}, MERGE), Request("PATCH", _SEEDED, {
            "spec": {"hostnames": None, "parentRefs": [{"name": "inference-gateway",
                                                        "port": None}]}}, MERGE)),
         (_SEEDED,)),
    Case("gateway-duplicate-listeners", (Request("POST", GATEWAYS, {
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": {"name": "gw2"},
        "spec": {"gatewayClassName": "x", "listeners": [
            {"name": "http", "protocol": "HTTP", "port": 80},
            {"name": "http", "protocol": "HTTP", "port": 8080,
             "tls": {"mode": "Terminate"}}]}}),), (f"{GATEWAYS}/gw2",)),
    # ---- watch ------------------------------------------------------------------------------
    Case("watch-objectives", (
        Request("GET", OBJECTIVES, capture="start"),
        Request("PATCH", f"{OBJECTIVES}/llm-pool-chat", {"spec": {"priority": 7}}, MERGE),
        Request("DELETE", f"{OBJECTIVES}/llm-pool-batch"),
        Request("GET", OBJECTIVES, query="watch=true&resourceVersion={rv:start}"
                                         "&timeoutSeconds=1"),
    )),
)

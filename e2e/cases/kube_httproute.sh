#!/usr/bin/env bash
# HTTPRoutes end to end with real kubectl: with --manage-httproutes the
# controller creates one <model>-router per model, keeps it as it should be
# and deletes it with the model's last pod; it writes status.parents
# (Accepted, ResolvedRefs with reason, message, observedGeneration,
# lastTransitionTime) on every route attached to its Gateway, keeps other
# controllers' entries, and retries a 409 on a fresh read.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/../kube_lib.sh"

start_kubeapi api --bookmark-interval 0.5
M1=$(free_port)
start_mock m1 "$M1" --ttft-ms 2 --itl-ms 1
kc create --validate=false -f - >/dev/null <<YAML
apiVersion: v1
kind: Namespace
metadata: {name: llmgw-system}
---
apiVersion: v1
kind: Namespace
metadata: {name: models}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: llmgw, namespace: llmgw-system}
spec:
  gatewayClassName: llmgw
  listeners: [{name: http, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: All}}}]
---
apiVersion: v1
kind: Service
metadata: {name: mock-model, namespace: models}
spec: {selector: {app: mock-model}, ports: [{port: $M1}]}
YAML
start_kube_controller ctl --scrape-interval 0 --manage-httproutes --gateway-name llmgw \
    --gateway-namespace llmgw-system --httproute-request-timeout 90s
CTL=http://127.0.0.1:$CTL_HTTP
R="-n models httproute/mock-model-router"
jp() { kc get $R -o jsonpath="$1" 2>/dev/null; }
cond() { jp "{.status.parents[0].conditions[?(@.type==\"$1\")].$2}"; }

# ---- the managed route ----
model_pod p1 mock-model "$M1" models
within_ms "a model's first pod creates <model>-router" 1000 is_eq mock-model-router jp '{.metadata.name}'
expect_eq "it attaches to the Gateway from the flags" "$(jp '{.spec.parentRefs[0].name}/{.spec.parentRefs[0].namespace}/{.spec.parentRefs[0].kind}')" "llmgw/llmgw-system/Gateway"
expect_eq "one PathPrefix match per API path" "$(jp '{.spec.rules[0].matches[*].path.value}')" \
    "/v1/completions /v1/chat/completions /v1/responses /v1/messages /v1/embeddings /v1/rerank /v1/classify /generate /generatevideo /v1/audio/transcriptions /v1/audio/translations"
expect_eq "each match requires the header model (Exact)" \
    "$(jp '{.spec.rules[0].matches[3].path.type} {.spec.rules[0].matches[3].headers[0].type} {.spec.rules[0].matches[3].headers[0].name}={.spec.rules[0].matches[3].headers[0].value}')" \
    "PathPrefix Exact model=mock-model"
expect_eq "the backend is the model's Service and port" "$(jp '{.spec.rules[0].backendRefs[0].kind}/{.spec.rules[0].backendRefs[0].name}:{.spec.rules[0].backendRefs[0].port}')" "Service/mock-model:$M1"
expect_eq "the request timeout comes from the flag" "$(jp '{.spec.rules[0].timeouts.request}')" 90s
expect_eq "it is labelled as managed by llmgw" "$(jp '{.metadata.labels.app\.kubernetes\.io/managed-by}')" llmgw-controller

# ---- status ----
within_ms "the route gets status.parents from our controller" 1000 is_eq llmgw.io/gateway-controller jp '{.status.parents[0].controllerName}'
expect_eq "Accepted=True" "$(cond Accepted status)/$(cond Accepted reason)" "True/Accepted"
expect_eq "ResolvedRefs=False while the backend has no ready endpoint" "$(cond ResolvedRefs status)/$(cond ResolvedRefs reason)" "False/BackendNotFound"
expect_eq "... and the message says so" "$(cond ResolvedRefs message)" "Service models/mock-model has no ready endpoints"
expect_eq "observedGeneration is the route's generation" "$(cond Accepted observedGeneration)" "$(jp '{.metadata.generation}')"
expect_match "lastTransitionTime is set" "$(cond ResolvedRefs lastTransitionTime)" '^20[0-9][0-9]-[0-9][0-9]-[0-9][0-9]T'
ltt=$(cond Accepted lastTransitionTime)
pod_ready p1 true models
expect_eq "kubectl wait --for=jsonpath sees ResolvedRefs=True once the pod is ready" \
    "$(kc wait $R --for=jsonpath='{.status.parents[0].conditions[?(@.type=="ResolvedRefs")].status}'=True --timeout=5s 2>&1)" \
    "httproute.gateway.networking.k8s.io/mock-model-router condition met"
expect_eq "kubectl wait --for=jsonpath on Accepted" \
    "$(kc wait $R --for=jsonpath='{.status.parents[0].conditions[?(@.type=="Accepted")].status}'=True --timeout=5s 2>&1)" \
    "httproute.gateway.networking.k8s.io/mock-model-router condition met"
expect_eq "a condition whose status did not change keeps its lastTransitionTime" "$(cond Accepted lastTransitionTime)" "$ltt"
expect_eq "kubectl get httproute -o jsonpath shows the conditions" \
    "$(kc get httproute -n models -o jsonpath='{range .items[*]}{.metadata.name}:{range .status.parents[*].conditions[*]}{" "}{.type}={.status}{end}{"\n"}{end}')" \
    "mock-model-router: Accepted=True ResolvedRefs=True"
# `kubectl wait --for=condition=X` reads .status.conditions, which the
# HTTPRoute schema does not have (conditions live per parent): it cannot
# succeed on a real cluster either, and the double prunes the field as the CRD
# schema does. The jsonpath form above is the one that works.
expect_true "kubectl wait --for=condition=Accepted does not apply to HTTPRoutes (times out)" \
    bash -c "! kubectl --cache-dir '$E2E_DIR/kcache' wait $R --for=condition=Accepted --timeout=1s >/dev/null 2>&1"

# ---- drift is put back ----
gen=$(jp '{.metadata.generation}')
kc patch $R --type=merge -p '{"spec":{"rules":[{"backendRefs":[{"name":"evil","port":1}]}]}}' >/dev/null
within_ms "an edited spec is put back" 1000 is_eq "mock-model:$M1" jp '{.spec.rules[0].backendRefs[0].name}:{.spec.rules[0].backendRefs[0].port}'
expect_true "each spec change bumped the generation" test "$(jp '{.metadata.generation}')" -ge $((gen + 2))
within_ms "observedGeneration follows the new generation" 1000 is_eq "$(jp '{.metadata.generation}')" cond ResolvedRefs observedGeneration

# ---- routes written by others ----
kc apply --validate=false -f - >/dev/null <<'YAML'
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: custom, namespace: models}
spec:
  parentRefs: [{name: llmgw, namespace: llmgw-system}, {name: other-gw}]
  rules: [{backendRefs: [{name: nope, port: 8000}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: elsewhere, namespace: models}
spec:
  parentRefs: [{name: other-gw}]
  rules: [{backendRefs: [{name: mock-model, port: 8000}]}]
YAML
C="-n models httproute/custom"
cj() { kc get $C -o jsonpath="$1" 2>/dev/null; }
within_ms "an operator's route attached to our Gateway gets status" 1000 is_eq "Service models/nope not found" \
    cj '{.status.parents[?(@.controllerName=="llmgw.io/gateway-controller")].conditions[?(@.type=="ResolvedRefs")].message}'
expect_eq "only for the parentRef that is ours" "$(cj '{.status.parents[*].parentRef.name}')" llmgw
sleep 0.3
expect_eq "a route attached elsewhere gets no status from us" "$(kc get -n models httproute/elsewhere -o jsonpath='{.status.parents}')" ""
kc patch $C --subresource=status --type=json -p '[{"op":"add","path":"/status/parents/-","value":{"parentRef":{"name":"other-gw"},"controllerName":"example.com/other","conditions":[{"type":"Accepted","status":"True","reason":"Accepted","message":"theirs","observedGeneration":1,"lastTransitionTime":"2026-01-01T00:00:00Z"}]}}]' >/dev/null
# A concurrent writer wins the next status write twice: the controller must
# re-read and recompute (a genuine 409 from the double, not a canned one).
curl -s -XPOST "$KUBEAPI/_test/faults" -d '{"method":"PUT","path":"/namespaces/models/httproutes/custom/status$","action":"bump","count":2}' >/dev/null
kc create --validate=false -f - >/dev/null <<'YAML'
apiVersion: v1
kind: Service
metadata: {name: nope, namespace: models}
spec: {selector: {app: mock-model}, ports: [{port: 8000}]}
YAML
within_ms "the Service appears: ResolvedRefs turns True despite two conflicts" 2000 is_eq True \
    cj '{.status.parents[?(@.controllerName=="llmgw.io/gateway-controller")].conditions[?(@.type=="ResolvedRefs")].status}'
expect_eq "the other controller's entry is kept" "$(cj '{.status.parents[?(@.controllerName=="example.com/other")].conditions[0].message}')" theirs
# Every 409 the controller met was followed by a fresh read (a GET of the
# route) before its next write. Besides the two injected conflicts there may
# be a genuine one: a pass that starts from a watch cache that has not yet
# seen our own last write; the same rule resolves it.
ctl_seq=$(kube_requests | jq -r '[.[] | select((.path|test("/httproutes/custom(/status)?$")) and (.userAgent|test("llmgw")))] | map(.method+":"+(.code|tostring)) | join(" ")')
expect_true "each conflict was retried on a fresh read ($ctl_seq)" \
    bash -c "! grep -qE 'PUT:409 PUT' <<<'$ctl_seq' && grep -qE 'PUT:409 GET:200 PUT:409 GET:200 PUT:200' <<<'$ctl_seq'"
n409=$(kube_requests | jq '[.[] | select(.method=="PUT" and (.path|test("custom/status$")) and .code==409)] | length')
expect_true "the double answered the two injected 409s ($n409 in all)" test "$n409" -ge 2
expect_eq "conflicts are counted" "$(metric "$CTL" 'llmgw_controller_kube_writes_total{kind="httproute_status",result="conflict"}')" "$n409"
kc patch $C --type=merge -p '{"spec":{"parentRefs":[{"name":"other-gw"}]}}' >/dev/null
within_ms "a route detached from our Gateway loses our entry" 1000 is_eq "example.com/other" cj '{.status.parents[*].controllerName}'

# ---- not ours: left alone ----
kc apply --validate=false -f - >/dev/null <<'YAML'
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: second-router, namespace: models}
spec:
  parentRefs: [{name: other-gw}]
  rules: [{backendRefs: [{name: handmade, port: 1}]}]
YAML
model_pod s1 second "$M1" models
wait_log ctl 'id=CTL-ROUTE-NOT-OURS route=models/second-router' 5 || not_ok "an unmanaged route with our name is reported"
expect_eq "... and not overwritten" "$(kc get -n models httproute/second-router -o jsonpath='{.spec.rules[0].backendRefs[0].name}')" handmade

# ---- DNS-safe names ----
model_pod q1 Qwen2.5-7B "$M1" models
h=$(printf 'Qwen2.5-7B' | sha256sum | cut -c1-12)
within_ms "a model name that is not DNS-safe gets AIBrix's hashed name" 1000 is_eq "qwen2-5-7b-$h-router" \
    kc get httproute -n models "qwen2-5-7b-$h-router" -o jsonpath='{.metadata.name}'
expect_eq "... its header match keeps the real model name" \
    "$(kc get httproute -n models "qwen2-5-7b-$h-router" -o jsonpath='{.spec.rules[0].matches[0].headers[0].value}')" Qwen2.5-7B

# ---- the last pod goes ----
kc delete pod p1 -n models --grace-period=0 --force >/dev/null 2>&1
within_ms "the model's last pod deleted: its route is deleted" 1000 is_eq "" jp '{.metadata.name}'
expect_eq "routes not managed by us stay" "$(kc get httproute -n models -o jsonpath='{.items[*].metadata.name}' | tr ' ' '\n' | grep -c -E '^(custom|elsewhere|second-router)$')" 3
expect_eq "no write ended in an error" "$(metric "$CTL" 'llmgw_controller_kube_writes_total{kind="httproute",result="error"}')" absent
done_case

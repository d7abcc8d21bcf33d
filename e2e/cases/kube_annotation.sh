#!/usr/bin/env bash
# The model.aibrix.ai/config annotation (aibrix.md §5) through Kubernetes: a
# good one configures the model; a bad one is reported as a Warning Event on
# the pod (seen with kubectl get events / describe), a log line and a metric,
# and the model keeps its last good config. Each annotation text is parsed
# once per change, not per pod update.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/../kube_lib.sh"

start_kubeapi api --bookmark-interval 0.5
M1=$(free_port); M2=$(free_port); W=$(free_port)
GW=http://127.0.0.1:$W
start_mock m1 "$M1" --ttft-ms 2 --itl-ms 1
start_mock m2 "$M2" --ttft-ms 2 --itl-ms 1
start_kube_controller ctl --scrape-interval 0
CTL=http://127.0.0.1:$CTL_HTTP
start_worker w1 "$W"

GOOD_A='{"defaultProfile":"fast","profiles":{"fast":{"routingStrategy":"random","requestsPerSecond":40}}}'
GOOD_B='{"lockedRoutingStrategy":"least-request","profiles":{"default":{"routingStrategy":"random"}}}'
model_pod p1 mock-model "$M1" default "" "$GOOD_A"
model_pod p2 mock-model "$M2"
pod_ready p1 true
pod_ready p2 true
within_ms "the annotation's config reaches the snapshot" 1000 is_eq "fast/40" \
    snap_jq '.models[0].defaultProfile + "/" + (.models[0].profiles.fast.requestsPerSecond|tostring)'
strategy() { chat '{"model":"mock-model","messages":[{"role":"user","content":"hi"}],"max_tokens":2}' >/dev/null; hdr routing-strategy; }
within_ms "the worker routes with the profile's strategy" 1000 is_eq random strategy
expect_eq "config-profile: auto resolves to the annotation's defaultProfile" \
    "$(chat '{"model":"mock-model","messages":[{"role":"user","content":"hi"}]}' -H 'config-profile: auto' >/dev/null; hdr x-aibrix-config-profile)" fast

# ---- a bad annotation ----
set_config p1 '{"profiles": {"fast": {"requestsPerSecond": -3}}}'
within_ms "a bad annotation becomes a Warning Event on the pod" 1000 is_eq "Warning" \
    kc get events --field-selector involvedObject.name=p1,reason=InvalidModelConfig -o jsonpath='{.items[0].type}'
msg=$(kc get events --field-selector involvedObject.name=p1,reason=InvalidModelConfig -o jsonpath='{.items[0].message}')
expect_match "the Event names the field and says the last good config stays" "$msg" 'requestsPerSecond.*|keeps its last good config'
expect_match "kubectl describe pod shows it" "$(kc describe pod p1 2>&1)" "InvalidModelConfig"
expect_eq "the Event's involvedObject is the pod (uid included)" \
    "$(kc get events --field-selector involvedObject.name=p1 -o jsonpath='{.items[0].involvedObject.uid}')" \
    "$(kc get pod p1 -o jsonpath='{.metadata.uid}')"
expect_eq "config_errors_total{source=kubernetes-annotation} counts it" \
    "$(metric "$CTL" 'llmgw_controller_config_errors_total{source="kubernetes-annotation"}')" 1
expect_true "the controller logged it with the pod and the JSON path" \
    grep -qE 'id=CTL-KUBE-CONFIG-INVALID pod="default/p1" model="mock-model" msg=".*requestsPerSecond' "$E2E_DIR/ctl.log"
expect_true "... and that the model keeps its last good config" grep -q 'id=CTL-KUBE-CONFIG-KEPT model="mock-model"' "$E2E_DIR/ctl.log"
expect_eq "the model keeps its last good config" \
    "$(snap_jq '.models[0].defaultProfile + "/" + (.models[0].profiles.fast.requestsPerSecond|tostring)')" "fast/40"
expect_eq "the worker still routes with it" "$(strategy)" random
expect_eq "routing is unaffected (both pods serve)" "$(served_by 20 mock-model)" "p1 p2"

# ---- parsed once per change ----
kc label pod p1 touched=1 >/dev/null
pod_ready p1 true
sleep 0.3
expect_eq "pod updates that keep the annotation do not re-parse it" \
    "$(metric "$CTL" 'llmgw_controller_config_errors_total{source="kubernetes-annotation"}')" 1
expect_eq "... nor repeat the Event" "$(kc get events --field-selector involvedObject.name=p1,reason=InvalidModelConfig -o jsonpath='{.items[*].type}')" Warning
set_config p1 'not json at all'
within_ms "a second bad text is a second error" 1000 is_eq 2 metric "$CTL" 'llmgw_controller_config_errors_total{source="kubernetes-annotation"}'

# ---- fixed, then removed ----
set_config p1 "$GOOD_B"
within_ms "a good annotation replaces the kept config" 1000 is_eq "least-request" snap_jq '.models[0].lockedRoutingStrategy'
within_ms "the worker follows the new config" 1000 is_eq least-request strategy
kc annotate pod p1 model.aibrix.ai/config- >/dev/null
within_ms "without any annotation the model has no config" 1000 is_eq "0" snap_jq '.models[0].profiles | length'
within_ms "and the fleet default strategy applies again" 1000 is_eq random strategy
done_case

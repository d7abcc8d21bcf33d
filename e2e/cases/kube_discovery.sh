#!/usr/bin/env bash
# Kubernetes discovery end to end: model pods created with real kubectl
# appear, turn ready, turn not ready and are deleted, and the worker's
# routing follows each change within a second. A terminating pod gets no new
# requests while its in-flight stream finishes. The model config comes from
# the pod annotation and the gateway settings from a ConfigMap, both live.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/../kube_lib.sh"

start_kubeapi api --bookmark-interval 0.5
M1=$(free_port); M2=$(free_port); W=$(free_port)
GW=http://127.0.0.1:$W
start_mock m1 "$M1" --ttft-ms 2 --itl-ms 10
start_mock m2 "$M2" --ttft-ms 2 --itl-ms 10
start_kube_controller ctl --kube-configmap llmgw-config --scrape-interval 0
wait_log ctl 'id=CTL-KUBE-SYNCED' 10 || not_ok "controller syncs with the API server"
start_worker w1 "$W"
expect_eq "an empty cluster publishes an empty fleet" "$(ctl_snapshot | jq '.endpoints | length')" 0

# ---- pods appear and turn ready ----
model_pod p1 mock-model "$M1" default "" '{"defaultProfile":"fast","profiles":{"fast":{"routingStrategy":"random","requestsPerSecond":50}}}'
model_pod p2 mock-model "$M2"
model_config() { ctl_snapshot | jq -r '.models[] | select(.name=="mock-model") | .defaultProfile + "/" + (.profiles.fast.requestsPerSecond|tostring)'; }
eventually "a pod's model is known, with the annotation's config" 5 is_eq fast/50 model_config
expect_eq "... but a pod without an IP is not an endpoint yet" "$(ep_state p1)" absent
pod_ready p1 true
within_ms "p1 turns ready: the worker routes to it" 1000 served_only "p1" mock-model
pod_ready p2 true
within_ms "p2 turns ready: both pods get requests" 1000 served_only "p1 p2" mock-model
expect_eq "the endpoint carries the pod's labels, namespace and port" \
    "$(ctl_snapshot | jq -r '.endpoints[] | select(.pod=="p2") | .namespace + " " + (.port|tostring) + " " + .labels.app + " " + .engine')" \
    "default $M2 mock-model vllm"

# ---- not ready and back ----
pod_ready p2 false
within_ms "p2 turns not ready: it gets no requests" 1000 served_only "p1" mock-model
expect_eq "a not-ready pod stays in the snapshot as not ready" "$(ep_state p2)" not_ready
pod_ready p2 true
within_ms "p2 ready again: it gets requests again" 1000 served_only "p1 p2" mock-model

# ---- a terminating pod drains ----
pod_ready p2 false
within_ms "only p1 is routable" 1000 served_only "p1" mock-model
curl -sN -o "$E2E_DIR/long.out" -w '%{http_code}' --max-time 20 -H 'Content-Type: application/json' \
    -d '{"model":"mock-model","stream":true,"max_tokens":150,"messages":[{"role":"user","content":"long"}]}' \
    "$GW/v1/chat/completions" >"$E2E_DIR/long.code" &
long=$!
sleep 0.3
pod_ready p2 true
within_ms "p2 back" 1000 served_only "p1 p2" mock-model
kc delete pod p1 --wait=false >/dev/null
within_ms "a terminating pod gets no new requests" 1000 served_only "p2" mock-model
expect_eq "it is draining in the snapshot" "$(ep_state p1)" draining
wait $long
expect_eq "the stream in flight on the terminating pod finished" "$(cat "$E2E_DIR/long.code")/$(grep -c 'data: \[DONE\]' "$E2E_DIR/long.out")" "200/1"
eventually "after its grace period the pod is gone from the snapshot" 5 is_eq absent ep_state p1

# ---- deleted ----
kc delete pod p2 --grace-period=0 --force >/dev/null 2>&1
within_ms "the last pod deleted: the model is gone" 1000 is_eq 0 snap_jq '.models | length'
chat_code() { chat '{"model":"mock-model","messages":[{"role":"user","content":"x"}]}'; }
within_ms "the worker refuses it as an unknown model" 1000 is_eq 404 chat_code

# ---- gateway settings from a ConfigMap, live ----
cm() {
    printf 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: llmgw-config}\ndata:\n  config.yaml: |\n    gateway: {routingStrategy: %s}\n' "$1"
}
cm least-request | kc create --validate=false -f - >/dev/null
within_ms "the ConfigMap's routingStrategy reaches the snapshot" 1000 \
    is_eq least-request snap_jq .settings.routingStrategy
cm random | kc apply --validate=false -f - >/dev/null 2>&1
within_ms "a ConfigMap edit is applied live" 1000 is_eq random snap_jq .settings.routingStrategy
printf 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: llmgw-config}\ndata:\n  config.yaml: |\n    gateway: {routingStrategy: [oops\n' |
    kc apply --validate=false -f - >/dev/null
wait_log ctl 'id=CTL-KUBE-DOC-INVALID kind=configmap' 5 || not_ok "a bad ConfigMap is logged"
expect_eq "a bad ConfigMap keeps the last good settings" "$(ctl_snapshot | jq -r .settings.routingStrategy)" random
expect_eq "... counts in config_errors_total" "$(metric "http://127.0.0.1:$CTL_HTTP" 'llmgw_controller_config_errors_total{source="kubernetes-configmap"}')" 1
eventually "... and is reported as an Event on the ConfigMap" 5 is_eq Warning \
    kc get events --field-selector involvedObject.name=llmgw-config,reason=InvalidConfig -o jsonpath='{.items[0].type}'

# ---- the pod source across namespaces ----
printf 'apiVersion: v1\nkind: Namespace\nmetadata: {name: team-b}\n' | kc create --validate=false -f - >/dev/null
model_pod q1 other-model "$M2" team-b
pod_ready q1 true team-b
within_ms "a pod in another namespace is discovered (all namespaces watched)" 1000 served_only "q1" other-model
expect_eq "the controller never logged an alert or a watch error" "$(grep -c 'CTL-KUBE-RETRY' "$E2E_DIR/ctl.log")" 0
done_case

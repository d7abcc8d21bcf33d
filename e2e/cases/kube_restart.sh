#!/usr/bin/env bash
# The controller is restarted and resyncs from Kubernetes: it is killed while
# clients send requests, the cluster changes while it is down (a pod turns
# ready, one is deleted, a config annotation changes), and the new process
# LISTs everything afresh, publishes the current truth and the worker
# follows. Workers serve on their last snapshot meanwhile: no request fails.
# Managed HTTPRoutes that are already right are not rewritten.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/../kube_lib.sh"

start_kubeapi api --bookmark-interval 0.5
M1=$(free_port); M2=$(free_port); W=$(free_port)
GW=http://127.0.0.1:$W
start_mock m1 "$M1" --ttft-ms 2 --itl-ms 1
start_mock m2 "$M2" --ttft-ms 2 --itl-ms 1
printf 'apiVersion: v1\nkind: Service\nmetadata: {name: mock-model}\nspec: {selector: {app: mock-model}, ports: [{port: 80}]}\n' |
    kc create --validate=false -f - >/dev/null
model_pod p1 mock-model "$M1" default "" '{"profiles":{"default":{"routingStrategy":"random"}}}'
model_pod p2 mock-model "$M2" default ""
pod_ready p1 true
ARGS=(--scrape-interval 0 --manage-httproutes --gateway-namespace default)
start_kube_controller ctl "${ARGS[@]}"
start_worker w1 "$W"
within_ms "p1 serves" 1000 served_only "p1" mock-model
within_ms "the route has status" 2000 is_eq True \
    kc get httproute mock-model-router -o jsonpath='{.status.parents[0].conditions[?(@.type=="ResolvedRefs")].status}'
route_rv=$(kc get httproute mock-model-router -o jsonpath='{.metadata.resourceVersion}')

: >"$E2E_DIR/codes"
client() {
    while [ ! -f "$E2E_DIR/stop" ]; do
        curl -s -o /dev/null -w '%{http_code}\n' --max-time 10 -H 'Content-Type: application/json' \
            -d '{"model":"mock-model","messages":[{"role":"user","content":"hi"}],"max_tokens":2}' \
            "$GW/v1/chat/completions" >>"$E2E_DIR/codes"
    done
}
cpids=()
for i in 1 2; do client & cpids+=($!); done
sleep 0.5
stop ctl KILL
# The cluster moves on while no controller watches.
pod_ready p2 true
set_config p1 '{"profiles":{"default":{"routingStrategy":"least-request"}}}'
sleep 0.5
expect_eq "the worker keeps serving on its last snapshot" "$(served_by 8 mock-model)" "p1"
mark=$(kube_requests | jq 'last.seq')
start_kube_controller ctl2 "${ARGS[@]}"
within_ms "the new controller resyncs: the worker routes to the pod that turned ready meanwhile" 3000 \
    served_only "p1 p2" mock-model
expect_eq "... with the annotation as it is now" "$(snap_jq '.models[0].profiles.default.routingStrategy')" least-request
expect_eq "the restart made one LIST per watch, then watches" \
    "$(kube_requests "$mark" | jq -r '[.[] | select(.path=="/api/v1/pods" and (.userAgent|test("llmgw")))] | .[0:2] | map(if .query.watch then "WATCH" else "LIST" end) | join(" ")')" "LIST WATCH"
sleep 0.3
expect_eq "a route that was already right is not rewritten by the new controller" \
    "$(kube_requests "$mark" | jq '[.[] | select(.method=="PUT" and (.path|test("httproutes/mock-model-router$")))] | length')" 0
expect_eq "... nor its status (lastTransitionTime kept, no write)" \
    "$(kc get httproute mock-model-router -o jsonpath='{.metadata.resourceVersion}')" "$route_rv"
kc delete pod p1 --grace-period=0 --force >/dev/null 2>&1
within_ms "and follows changes after the restart" 1000 served_only "p2" mock-model
touch "$E2E_DIR/stop"
wait "${cpids[@]}"
expect_eq "no client request failed across the restart ($(wc -l <"$E2E_DIR/codes") sent)" "$(grep -vc '^200$' "$E2E_DIR/codes")" 0
done_case

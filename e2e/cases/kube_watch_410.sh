#!/usr/bin/env bash
# A watch that expires (410 Gone/Expired) re-lists without losing or
# duplicating state: while the controller's watch is down, a pod is deleted,
# one turns ready and one is created, and the history is compacted. The
# re-watch from the old resourceVersion gets the 410 ERROR event; the re-list
# must turn the difference into exactly those three changes. Also: the
# controller starts before the API server is reachable and backs off.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/../kube_lib.sh"

M1=$(free_port); M2=$(free_port); M3=$(free_port); W=$(free_port)
GW=http://127.0.0.1:$W
start_mock m1 "$M1" --ttft-ms 2 --itl-ms 1
start_mock m2 "$M2" --ttft-ms 2 --itl-ms 1
start_mock m3 "$M3" --ttft-ms 2 --itl-ms 1

# ---- the API server is not there yet: backoff ----
KUBEAPI_PORT=$(free_port)
cat >"$E2E_DIR/early.kubeconfig" <<YAML
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "http://127.0.0.1:$KUBEAPI_PORT"}}]
users: [{name: u, user: {}}]
contexts: [{name: x, context: {cluster: c, user: u, namespace: default}}]
current-context: x
YAML
start_controller ctl --llm-backend-discovery kubernetes --kubeconfig "$E2E_DIR/early.kubeconfig" \
    --kube-backoff-initial 100ms --kube-backoff-max 800ms --scrape-interval 0 --log-level info
CTL=http://127.0.0.1:$CTL_HTTP
sleep 2
expect_eq "without an API server the controller is not ready" "$(curl -s -o /dev/null -w '%{http_code}' "$CTL/readyz")" 503
delays=$(grep -o 'id=CTL-KUBE-RETRY resource=pods op=list .*delay_ms=[0-9]*' "$E2E_DIR/ctl.log" | sed 's/.*attempt=\([0-9]*\) delay_ms=\([0-9]*\)/\1:\2/' | head -6 | tr '\n' ' ')
# attempt k waits min(800, 100 * 2^(k-1)) ms times a jitter in [0.5, 1]
# (the log is rate-limited, so some attempts may be missing).
expect_true "the delays grow and stay under --kube-backoff-max ($delays)" awk -v d="$delays" 'BEGIN{
    n = split(d, a, " "); late = 0
    for (i = 1; i <= n; i++) { split(a[i], p, ":"); k = p[1]; v = p[2]
        c = 100 * 2 ^ (k - 1); if (c > 800) c = 800
        if (v < c / 2 || v > c) exit 1
        if (k >= 4) late = 1 }
    exit !(n >= 2 && late) }'
start_kubeapi api --bookmark-interval 0.3
within_ms "once the API server answers, the controller syncs" 3000 is_eq 200 curl -s -o /dev/null -w '%{http_code}' "$CTL/readyz"
start_worker w1 "$W"

model_pod p1 mock-model "$M1"
model_pod p2 mock-model "$M2"
pod_ready p1 true
within_ms "p1 serves" 1000 served_only "p1" mock-model
lists_before=$(metric "$CTL" 'llmgw_controller_kube_lists_total{resource="pods"}')

# ---- the watch goes down, the world moves on, history is compacted ----
# Every pods request fails until the faults are cleared, so the controller
# keeps its last resourceVersion while we change things.
curl -s -XPOST "$KUBEAPI/_test/faults" -d '{"method":"GET","path":"^/api/v1/pods$","code":503,"count":1000}' >/dev/null
curl -s -XPOST "$KUBEAPI/_test/close-watches" >/dev/null
wait_log ctl 'id=CTL-KUBE-RETRY resource=pods op=watch' 5 || not_ok "the re-watch fails while the faults last"
kc delete pod p1 --grace-period=0 --force >/dev/null 2>&1  # deleted in the gap
pod_ready p2 true                                        # changed in the gap
model_pod p3 mock-model "$M3"                            # created in the gap
pod_ready p3 true
curl -s -XPOST "$KUBEAPI/_test/compact" >/dev/null
expect_eq "while the watch is down the controller still routes on what it knew" "$(served_by 8 mock-model)" "p1"
mark=$(kube_requests | jq 'last.seq')
curl -s -XDELETE "$KUBEAPI/_test/faults" >/dev/null

within_ms "after the 410 the re-list brings every change made in the gap" 3000 served_only "p2 p3" mock-model
expect_eq "p1, deleted while the watch was down, is gone" "$(ep_state p1)" absent
expect_true "the controller saw the 410 Expired" grep -q 'id=CTL-KUBE-WATCH-EXPIRED resource=pods code=410 reason=Expired' "$E2E_DIR/ctl.log"
expect_true "... and re-listed (3 changes: one delete, one update, one add)" \
    grep -qE 'id=CTL-KUBE-RELIST resource=pods objects=2 changes=3 ' "$E2E_DIR/ctl.log"
expect_eq "watch_ends_total{reason=expired} counts it" "$(metric "$CTL" 'llmgw_controller_kube_watch_ends_total{resource="pods",reason="expired"}')" 1
expect_eq "one more LIST" "$(metric "$CTL" 'llmgw_controller_kube_lists_total{resource="pods"}')" $((lists_before + 1))
# A retry may still meet an injected 503 between the mark and the faults'
# end: only the requests the server answered count.
seq=$(kube_requests "$mark" | jq -r '[.[] | select(.path=="/api/v1/pods" and (.userAgent|test("llmgw")) and .code != 503)] | .[0:3] | map(if .query.watch then "WATCH@"+.query.resourceVersion else "LIST" end) | join(" ")')
expect_match "the request sequence is WATCH(old rv) -> LIST -> WATCH(list rv)" "$seq" '^WATCH@[0-9]+ LIST WATCH@[0-9]+$'

# ---- after the re-list everything still flows, without duplicates ----
pod_ready p3 false
within_ms "events after the re-list are applied" 1000 served_only "p2" mock-model
expect_eq "the snapshot holds each pod once" "$(snap_jq '[.endpoints[].pod] | sort | join(",")')" "p2,p3"

# ---- bookmarks keep the resourceVersion fresh ----
sleep 0.7
rv_now=$(curl -s "$KUBEAPI/_test/state" | jq -r .resourceVersion)
curl -s -XPOST "$KUBEAPI/_test/close-watches" >/dev/null
sleep 0.3
last_watch=$(kube_requests | jq -r '[.[] | select(.path=="/api/v1/pods" and .query.watch)] | last | .query.resourceVersion')
expect_eq "a re-watch resumes from the newest resourceVersion (bookmarks included), not a re-list" "$last_watch" "$rv_now"
expect_eq "no extra LIST for a clean watch end" "$(metric "$CTL" 'llmgw_controller_kube_lists_total{resource="pods"}')" $((lists_before + 1))
done_case

#!/usr/bin/env bash
# Leader election with two controllers behind a Service stand-in
# (e2e/tools/svc_proxy.py: new connections go to ready endpoints only, as
# kube-proxy does). One leads (Lease holder, ready, writes, serves workers);
# the other stands by (not ready, writes nothing). The leader is killed while
# clients send requests: the standby takes over within the lease duration
# (plus one retry period), the worker follows it through the Service, and no
# client request fails. A clean shutdown hands the Lease over at once.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/../kube_lib.sh"

start_kubeapi api --bookmark-interval 0.5
M1=$(free_port); M2=$(free_port); W=$(free_port)
GW=http://127.0.0.1:$W
start_mock m1 "$M1" --ttft-ms 2 --itl-ms 1
start_mock m2 "$M2" --ttft-ms 2 --itl-ms 1
printf 'apiVersion: v1\nkind: Service\nmetadata: {name: mock-model}\nspec: {selector: {app: mock-model}, ports: [{port: 80}]}\n' |
    kc create --validate=false -f - >/dev/null
model_pod p1 mock-model "$M1"
model_pod p2 mock-model "$M2"
pod_ready p1 true
pod_ready p2 true

LEASE_ARGS=(--leader-elect --leader-elect-lease-duration 2s --leader-elect-renew-deadline 1500ms
    --leader-elect-retry-period 200ms --manage-httproutes --gateway-namespace default --scrape-interval 0)
# Controller A, then B, each on its own ports.
A_PUB=$(free_port); A_REP=$(free_port); A_PULL=$(free_port); A_HTTP=$(free_port)
B_PUB=$(free_port); B_REP=$(free_port); B_PULL=$(free_port); B_HTTP=$(free_port)
start_a() {
    CTL_PUB=tcp://127.0.0.1:$A_PUB CTL_REP=tcp://127.0.0.1:$A_REP CTL_PULL=tcp://127.0.0.1:$A_PULL CTL_HTTP=$A_HTTP \
        start_kube_controller "$1" "${LEASE_ARGS[@]}" --leader-elect-identity ctl-a
}
start_b() {
    CTL_PUB=tcp://127.0.0.1:$B_PUB CTL_REP=tcp://127.0.0.1:$B_REP CTL_PULL=tcp://127.0.0.1:$B_PULL CTL_HTTP=$B_HTTP \
        start_kube_controller "$1" "${LEASE_ARGS[@]}" --leader-elect-identity ctl-b
}
readyz() { curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/readyz"; }
holder() { kc get lease llmgw-controller -o jsonpath='{.spec.holderIdentity}' 2>/dev/null; }

start_a ctl_a
within_ms "the first controller takes the Lease" 3000 is_eq ctl-a holder
start_b ctl_b
sleep 1
expect_eq "the leader is ready" "$(readyz "$A_HTTP")" 200
expect_eq "the standby is not ready" "$(readyz "$B_HTTP")" 503
expect_eq "... and says why" "$(curl -s "http://127.0.0.1:$B_HTTP/readyz")" "standby (not the leader)"
expect_eq "leader gauge: A leads" "$(metric "http://127.0.0.1:$A_HTTP" llmgw_controller_leader)/$(metric "http://127.0.0.1:$B_HTTP" llmgw_controller_leader)" "1/0"
expect_eq "the standby has compiled the fleet too (hot standby)" "$(ctl_snapshot "$B_HTTP" | jq '.endpoints | length')" 2
b_writes() { kube_requests | jq '[.[] | select((.userAgent|test("ctl-b")) and .method != "GET" and (.path|test("/leases")|not))] | length'; }
expect_eq "the standby wrote nothing to Kubernetes" "$(b_writes)" 0
within_ms "the leader wrote the managed route's status" 2000 is_eq True \
    kc get httproute mock-model-router -o jsonpath='{.status.parents[0].conditions[?(@.type=="ResolvedRefs")].status}'

# The Service: workers reach whichever controller is ready.
S_PUB=$(free_port); S_REP=$(free_port); S_PULL=$(free_port)
spawn svc python3 "$E2E_SRC/e2e/tools/svc_proxy.py" --ready "http://127.0.0.1:$A_HTTP/readyz" \
    --ready "http://127.0.0.1:$B_HTTP/readyz" --map "$S_PUB=$A_PUB,$B_PUB" --map "$S_REP=$A_REP,$B_REP" \
    --map "$S_PULL=$A_PULL,$B_PULL"
sleep 0.5
CTL_PUB=tcp://127.0.0.1:$S_PUB CTL_REP=tcp://127.0.0.1:$S_REP CTL_PULL=tcp://127.0.0.1:$S_PULL start_worker w1 "$W"
expect_eq "the worker routes through the leader's snapshot" "$(served_by 20 mock-model)" "p1 p2"

# ---- the leader dies under traffic ----
: >"$E2E_DIR/codes"
client() {
    while [ ! -f "$E2E_DIR/stop" ]; do
        curl -s -o /dev/null -w '%{http_code}\n' --max-time 10 -H 'Content-Type: application/json' \
            -d '{"model":"mock-model","messages":[{"role":"user","content":"hi"}],"max_tokens":2}' \
            "$GW/v1/chat/completions" >>"$E2E_DIR/codes"
    done
}
cpids=()
for i in 1 2 3; do client & cpids+=($!); done
sleep 0.5
# Timed with the Lease's own microsecond stamps, not by polling kubectl: the
# standby counts the lease duration from when it saw the last renewal, and
# acts on its retry ticks. A's last renewal is at or after the one read here
# (at most one retry period later), so the gap measured is an upper bound.
lease_ns() { date -d "$(kc get lease llmgw-controller -o jsonpath="{.spec.$1}")" +%s%N; }
a_renewed=$(lease_ns renewTime)
stop ctl_a KILL
eventually "the standby takes over" 10 is_eq ctl-b holder
gap=$((($(lease_ns acquireTime) - a_renewed) / 1000000))
expect_true "... within lease duration + 2 retry periods + a renewal after the sample + 600 ms of scheduling (2000 + 400 + 200 + 600 ms): ${gap} ms" \
    test "$gap" -le 3200
expect_true "... and not before the lease expired (${gap} ms >= 2000)" test "$gap" -ge 2000
expect_eq "the new leader is ready" "$(readyz "$B_HTTP")" 200
expect_eq "leaseTransitions counts the takeover" "$(kc get lease llmgw-controller -o jsonpath='{.spec.leaseTransitions}')" 1
# A change after the failover must reach the worker through the new leader.
pod_ready p2 false
within_ms "the worker follows the new leader's snapshots" 3000 served_only "p1" mock-model
within_ms "the new leader writes status (ResolvedRefs still True: p1 is ready)" 2000 is_eq True \
    kc get httproute mock-model-router -o jsonpath='{.status.parents[0].conditions[?(@.type=="ResolvedRefs")].status}'
sleep 0.5
touch "$E2E_DIR/stop"
wait "${cpids[@]}"
total=$(wc -l <"$E2E_DIR/codes")
expect_true "requests flowed during the failover ($total)" test "$total" -gt 30
expect_eq "no client request failed" "$(grep -vc '^200$' "$E2E_DIR/codes")" 0

# ---- the old leader comes back as a standby ----
start_a ctl_a2
sleep 1
expect_eq "a returning controller stands by" "$(readyz "$A_HTTP")/$(holder)" "503/ctl-b"

# ---- clean shutdown hands over at once ----
stop ctl_b TERM
within_ms "after an orderly shutdown the standby leads well before a lease duration" 1500 is_eq ctl-a holder
expect_true "the leader released the Lease" grep -q 'id=CTL-LEADER-RELEASED' "$E2E_DIR/ctl_b.log"
within_ms "and is ready" 1000 is_eq 200 readyz "$A_HTTP"
done_case

#!/usr/bin/env bash
# etcd discovery under store failures while traffic flows (issue 7, Llumnix's
# test_etcd_failover.sh scenarios, but with real client traffic counted):
# a 3-member etcd cluster on loopback, two mock engines each registered by an
# llmgw-register sidecar, a controller with --llm-backend-discovery=etcd and a
# worker. Background clients send requests the whole time; every answer is
# recorded under the scenario running then, and each scenario must end with
# zero failed client requests, apart from a request that was already on an
# engine the scenario SIGKILLs (it dies with the engine; counted separately):
#   single-member  - the member the controller reads from is killed, then back
#   quorum-loss    - two of three members killed: no leader, the controller
#                    keeps its last instance list; then they come back
#   data-loss      - all three killed and restarted with empty data dirs: the
#                    registrars re-register, a new engine registered after it
#                    appears and gets traffic
#   engine-death   - an engine and its registrar are killed: its lease expires
#                    and the controller drops it (clients are retried onto the
#                    live engine meanwhile)
#   re-register    - the engine and its registrar come back with the same id
# then (no traffic) the member a second controller watches loses the other
# two: the watch must be cancelled (no leader), not stay silently open.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/../discovery_lib.sh"

BIN_REG=$E2E_BUILD/register/llmgw-register
for t in etcd etcdctl; do
    command -v $t >/dev/null || { echo "discovery_etcd: $t is required (apt-get install etcd-server etcd-client)"; exit 1; }
done
[ -x "$BIN_REG" ] || { echo "discovery_etcd: missing $BIN_REG (build first)"; exit 1; }
export ETCDCTL_API=3

# Two loaded cores: generous raft timing. The smallest lease etcd grants is
# 1.5 election timeouts (3.75 s here), so the lease TTL is 6 s.
LEASE_TTL=6
declare -a EC EP
for i in 1 2 3; do EC[$i]=$(free_port); EP[$i]=$(free_port); done
CLUSTER="e1=http://127.0.0.1:${EP[1]},e2=http://127.0.0.1:${EP[2]},e3=http://127.0.0.1:${EP[3]}"
ENDPOINTS="127.0.0.1:${EC[1]},127.0.0.1:${EC[2]},127.0.0.1:${EC[3]}"
TOKEN=llmgw-e2e-$$

start_etcd() { # start_etcd I [STATE]
    local i=$1 state=${2:-new}
    E2E_EXPECT_RC[etcd$i]=143 # etcd re-raises SIGTERM
    spawn "etcd$i" etcd --name "e$i" --data-dir "$E2E_DIR/etcd$i.data" \
        --listen-client-urls "http://127.0.0.1:${EC[$i]}" \
        --advertise-client-urls "http://127.0.0.1:${EC[$i]}" \
        --listen-peer-urls "http://127.0.0.1:${EP[$i]}" \
        --initial-advertise-peer-urls "http://127.0.0.1:${EP[$i]}" \
        --initial-cluster "$CLUSTER" --initial-cluster-state "$state" \
        --initial-cluster-token "$TOKEN" --heartbeat-interval 250 --election-timeout 2500 \
        --log-level error
}
# The cluster answers a linearizable read (has a leader).
cluster_ok() { etcdctl --endpoints "$ENDPOINTS" --command-timeout=2s get x >/dev/null 2>&1; }
etcd_keys() { etcdctl --endpoints "$ENDPOINTS" --command-timeout=2s get --prefix --keys-only llumnix/discovery/ 2>/dev/null | grep -c .; }
# SIGKILL: a crash (stop does not check the exit code of a KILL).
kill_etcd() { stop "etcd$1" KILL; }

for i in 1 2 3; do start_etcd "$i"; done
eventually "the 3-member etcd cluster elects a leader" 30 cluster_ok

M1=$(free_port); M2=$(free_port); M3=$(free_port); W=$(free_port)
GW=http://127.0.0.1:$W
REG_ARGS=(--llm-backend-discovery etcd --discovery-etcd-endpoints "$ENDPOINTS"
          --discovery-etcd-lease-ttl "$LEASE_TTL" --discovery-etcd-dial-timeout 1
          --refresh-interval 1s --model mock-model --ip 127.0.0.1)
start_registered() { # start_registered N PORT
    start_mock "m$1" "$2" --ttft-ms 2 --itl-ms 1
    spawn "reg$1" "$BIN_REG" "${REG_ARGS[@]}" --port "$2" --id "engine-$1"
}
start_registered 1 "$M1"
start_registered 2 "$M2"
start_controller ctl --llm-backend-discovery etcd --discovery-etcd-endpoints "$ENDPOINTS" \
    --discovery-etcd-lease-ttl "$LEASE_TTL" --discovery-etcd-dial-timeout 1 \
    --discovery-etcd-refresh-interval-sec 5
CTL=http://127.0.0.1:$CTL_HTTP
ready_endpoints() { curl -s "$CTL/debug/snapshot" | jq '[.endpoints[] | select(.ready)] | length'; }
has_pod() { curl -s "$CTL/debug/snapshot" | jq -e --arg p "$1" 'any(.endpoints[]; .pod == $p and .ready)' >/dev/null; }
lacks_pod() { ! curl -s "$CTL/debug/snapshot" | jq -e --arg p "$1" 'any(.endpoints[]; .pod == $p)' >/dev/null; }
two_ready() { [ "$(ready_endpoints)" == 2 ]; }
eventually "the controller discovers both registered engines" 15 two_ready
start_worker w1 "$W"
wait_http "$GW/readyz" 200 10

traffic_start 3
sleep 2

# 1. Single-member failure: member 1 is the controller's current one.
phase single-member
kill_etcd 1
sleep 4
# If member 1 led, the others elect a leader first (a split vote can take
# more than one election timeout).
two_keys() { [ "$(etcd_keys)" = 2 ]; }
eventually "with one member down both engines stay registered" 10 two_keys
expect_eq "with one member down the controller still routes to both" "$(ready_endpoints)" 2
start_etcd 1
eventually "member 1 rejoins" 30 cluster_ok
sleep 2

# 2. Quorum loss: longer than the lease TTL. Without a leader no lease can
# expire; the controller must keep (not drop) its list.
phase quorum-loss
kill_etcd 1
kill_etcd 2
sleep $((LEASE_TTL + 3))
expect_eq "without quorum the controller keeps both engines" "$(ready_endpoints)" 2
expect_eq "and says the store is down" \
    "$(metric "$CTL" 'llmgw_controller_discovery_store_up{source="etcd"}')" 0
start_etcd 1
start_etcd 2
eventually "quorum returns" 30 cluster_ok
up() { [ "$(metric "$CTL" 'llmgw_controller_discovery_store_up{source="etcd"}')" == 1 ]; }
eventually "the controller reads etcd again" 20 up
sleep 2

# 3. Full cluster restart with data loss.
phase data-loss
for i in 1 2 3; do kill_etcd "$i"; done
rm -rf "$E2E_DIR"/etcd{1,2,3}.data
sleep 2
for i in 1 2 3; do start_etcd "$i"; done
eventually "the new empty cluster elects a leader" 30 cluster_ok
both_keys() { [ "$(etcd_keys)" == 2 ]; }
eventually "both registrars re-register in the new cluster" 15 both_keys
expect_eq "both engines stayed routable across the data loss" "$(ready_endpoints)" 2
start_registered 3 "$M3"
eventually "an engine registered after the restart is discovered" 15 has_pod engine-3
mock_clear "$M3"
sleep 2
expect_true "the new engine gets traffic" test "$(mock_count "$M3")" -gt 0

# 4. Engine death: engine 2 and its registrar die; its lease expires.
phase engine-death
sleep 1 # requests in flight now were sent in this scenario
stop reg2 KILL
stop m2 KILL
# Taken once it is dead: a request that started on it before then died with it.
kill_ms=$(date +%s%3N)
t0=$(date +%s)
eventually "the dead engine leaves routing when its lease expires" $((LEASE_TTL + 10)) lacks_pod engine-2
e2e_log "engine-2 removed after $(( $(date +%s) - t0 )) s (lease TTL ${LEASE_TTL} s)"
killed=$(killed_in_flight "$kill_ms" engine-2)
sleep 1

# 5. Re-registration of the same engine id.
phase re-register
start_registered 2 "$M2"
eventually "the restarted engine re-registers under its id" 15 has_pod engine-2
sleep 2

traffic_stop
report baseline single-member quorum-loss data-loss "engine-death:$killed" re-register
expect_true "the controller logged the outage once per episode" \
    grep -q 'id=CTL-DISCOVERY-STALE source=etcd' "$E2E_DIR/ctl.log"
expect_true "and its recovery" grep -q 'id=CTL-DISCOVERY-RECOVERED source=etcd' "$E2E_DIR/ctl.log"

# Isolated member: a second controller reads member 1 only, with the default
# (hourly) full refresh, so nothing but its watch talks to the store. Members
# 2 and 3 are killed: member 1 has no leader and must cancel the watch (sent
# with Grpc-Metadata-hasleader), which the controller counts as a store error,
# instead of keeping it silently open for the hour.
C2=$(free_port)
spawn ctl2 "$E2E_BIN_CTL" --pub-listen "tcp://127.0.0.1:$(free_port)" \
    --rep-listen "tcp://127.0.0.1:$(free_port)" --pull-listen "tcp://127.0.0.1:$(free_port)" \
    --http-host 127.0.0.1 --http-port "$C2" --llm-backend-discovery etcd \
    --discovery-etcd-endpoints "127.0.0.1:${EC[1]}" --discovery-etcd-lease-ttl "$LEASE_TTL" \
    --discovery-etcd-dial-timeout 1
wait_http "http://127.0.0.1:$C2/healthz" 200 10 || not_ok "controller ctl2 starts"
C2URL=http://127.0.0.1:$C2
errors2() { metric "$C2URL" 'llmgw_controller_discovery_store_errors_total{source="etcd"}'; }
up2() { [ "$(metric "$C2URL" 'llmgw_controller_discovery_store_up{source="etcd"}')" == 1 ] &&
        [ "$(curl -s "$C2URL/debug/snapshot" | jq '[.endpoints[] | select(.ready)] | length')" -ge 1 ]; }
eventually "a controller reading member 1 only is up" 15 up2
sleep 1 # its watch is open
before=$(errors2)
kill_etcd 2; kill_etcd 3
watch_cut() { [ "$(errors2)" != "$before" ]; }
eventually "member 1, cut off from the majority, ends the watch (no leader)" 20 watch_cut
stop ctl2
start_etcd 2; start_etcd 3
eventually "quorum returns after the isolation" 30 cluster_ok
eventually "the controller reads etcd again after the isolation" 20 up

# Goodbye: a registrar stopped with SIGTERM revokes its lease, and the
# controller drops the engine at once (a DELETE event), long before the TTL.
t0=$(date +%s%N)
stop reg1
eventually "a deregistered engine leaves routing at once" 3 lacks_pod engine-1
e2e_log "engine-1 removed $(( ($(date +%s%N) - t0) / 1000000 )) ms after its registrar's SIGTERM"
for i in 2 3; do stop "reg$i"; done

# A SIGTERM during a refresh that hangs on unresponsive members (all three
# SIGSTOPped): the refresh gives up at once and the goodbye starts, instead
# of waiting out every member's timeout first (Kubernetes' grace is 30 s).
# (REG_ARGS: a 1 s dial timeout, so each call takes 2 s per member.)
spawn reg4 "$BIN_REG" "${REG_ARGS[@]}" --port "$M3" --id engine-4
one_key() { [ "$(etcd_keys)" == 1 ]; }
eventually "a registrar for the term test registers" 15 one_key
for i in 1 2 3; do kill -STOP "${E2E_PIDS[etcd$i]}"; done
sleep 2 # a refresh is now blocked on the stopped members
t0=$(date +%s%N)
stop reg4 TERM 40
term_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
for i in 1 2 3; do kill -CONT "${E2E_PIDS[etcd$i]}"; done
e2e_log "registrar exited ${term_ms} ms after SIGTERM with every member stopped"
expect_true "a SIGTERM cuts a hanging refresh short (${term_ms} ms; the goodbye itself is 3 x 2 s)" \
    test "$term_ms" -lt 12000
done_case

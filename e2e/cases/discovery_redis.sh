#!/usr/bin/env bash
# Redis discovery under store failures while traffic flows (issue 7). Two
# mock engines registered by llmgw-register sidecars (SET ... PX), a
# controller with --llm-backend-discovery=redis and a worker; background
# clients send requests the whole time, each answer recorded under the
# scenario running then. Every scenario must end with zero failed requests
# (a request already on an engine the scenario SIGKILLs dies with it and is
# counted separately):
#   redis-restart - redis-server killed and restarted empty: the controller
#                   keeps its list (Llumnix exits here), registrars re-register
#   flushall      - the keys vanish at once: instances are retained until
#                   their TTL, registrars write them back within a refresh
#   ttl-expiry    - an engine and its registrar are killed: the record's TTL
#                   expires and the controller drops the engine
#   deregister    - a registrar stopped with SIGTERM marks its engine
#                   draining; it gets no new requests, then leaves
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/../discovery_lib.sh"

BIN_REG=$E2E_BUILD/register/llmgw-register
command -v redis-server >/dev/null || { echo "discovery_redis: redis-server is required"; exit 1; }
[ -x "$BIN_REG" ] || { echo "discovery_redis: missing $BIN_REG (build first)"; exit 1; }

TTL_MS=4000
R=$(free_port)
start_redis() {
    spawn redis redis-server --port "$R" --bind 127.0.0.1 --save '' --appendonly no --loglevel warning
    for ((i = 0; i < 100; i++)); do redis-cli -p "$R" ping >/dev/null 2>&1 && return 0; sleep 0.05; done
    not_ok "redis-server starts"
}
start_redis

M1=$(free_port); M2=$(free_port); M3=$(free_port); W=$(free_port)
GW=http://127.0.0.1:$W
STORE=(--discovery-redis-host 127.0.0.1 --discovery-redis-port "$R"
       --discovery-redis-status-ttl-ms "$TTL_MS" --discovery-redis-refresh-interval-ms 300
       --discovery-redis-socket-timeout 0.5)
start_registered() { # start_registered N PORT
    start_mock "m$1" "$2" --ttft-ms 2 --itl-ms 1
    spawn "reg$1" "$BIN_REG" --llm-backend-discovery redis "${STORE[@]}" --model mock-model \
        --ip 127.0.0.1 --port "$2" --id "engine-$1"
}
start_registered 1 "$M1"
start_registered 2 "$M2"
start_registered 3 "$M3"
start_controller ctl --llm-backend-discovery redis "${STORE[@]}"
CTL=http://127.0.0.1:$CTL_HTTP
ready_endpoints() { curl -s "$CTL/debug/snapshot" | jq '[.endpoints[] | select(.ready)] | length'; }
lacks_pod() { ! curl -s "$CTL/debug/snapshot" | jq -e --arg p "$1" 'any(.endpoints[]; .pod == $p)' >/dev/null; }
draining_pod() { curl -s "$CTL/debug/snapshot" | jq -e --arg p "$1" 'any(.endpoints[]; .pod == $p and .draining)' >/dev/null; }
three_ready() { [ "$(ready_endpoints)" == 3 ]; }
eventually "the controller discovers the three registered engines" 10 three_ready
expect_match "records are JSON with a PX TTL" "$(redis-cli -p "$R" get llumnix:discovery:engine-1)" \
    '^\{"id":"engine-1","model":"mock-model","ip":"127.0.0.1","port":[0-9]+,"role":"both","engine":"vllm","draining":false,"timestamp_ms":[0-9]+\}$'
pttl=$(redis-cli -p "$R" pttl llumnix:discovery:engine-1)
expect_true "the key expires within the status TTL (pttl $pttl)" test "$pttl" -gt 0 -a "$pttl" -le "$TTL_MS"
start_worker w1 "$W"
wait_http "$GW/readyz" 200 10

traffic_start 3
sleep 2

# 1. Redis dies for longer than the TTL and comes back empty.
phase redis-restart
stop redis KILL
sleep $((TTL_MS / 1000 + 2))
expect_eq "with Redis down the controller keeps all three engines" "$(ready_endpoints)" 3
expect_eq "and reports the store down" \
    "$(metric "$CTL" 'llmgw_controller_discovery_store_up{source="redis"}')" 0
expect_true "the outage is logged" grep -q 'id=CTL-DISCOVERY-STALE source=redis' "$E2E_DIR/ctl.log"
start_redis
keys3() { [ "$(redis-cli -p "$R" --scan --pattern 'llumnix:discovery:*' | wc -l)" == 3 ]; }
eventually "the registrars re-register in the empty Redis" 10 keys3
up() { [ "$(metric "$CTL" 'llmgw_controller_discovery_store_up{source="redis"}')" == 1 ]; }
eventually "the controller reads Redis again" 10 up
expect_eq "all three engines stayed routable" "$(ready_endpoints)" 3
sleep 1

# 2. FLUSHALL: every key vanishes at once.
phase flushall
redis-cli -p "$R" flushall >/dev/null
sleep 0.7
expect_eq "right after FLUSHALL the engines are retained, not dropped" "$(ready_endpoints)" 3
eventually "the registrars write their records back" 10 keys3
sleep 1

# 3. TTL expiry of a dead engine.
phase ttl-expiry
sleep 1 # requests in flight now were sent in this scenario
stop reg3 KILL
stop m3 KILL
# Taken once it is dead: a request that started on it before then died with it.
kill_ms=$(date +%s%3N)
t0=$(date +%s%N)
eventually "the dead engine leaves routing when its record expires" $((TTL_MS / 1000 + 8)) lacks_pod engine-3
e2e_log "engine-3 removed after $(( ($(date +%s%N) - t0) / 1000000 )) ms (status TTL $TTL_MS ms)"
killed=$(killed_in_flight "$kill_ms" engine-3)
sleep 1

# 4. Graceful goodbye: the registrar's SIGTERM marks the engine draining.
phase deregister
stop reg2
eventually "a stopped registrar's engine is draining" 5 draining_pod engine-2
mock_clear "$M2"
sleep 1.5
expect_eq "a draining engine gets no new requests" "$(mock_count "$M2")" 0
eventually "and leaves routing when the goodbye record expires" $((TTL_MS / 1000 + 8)) lacks_pod engine-2
sleep 1

traffic_stop
report baseline redis-restart flushall "ttl-expiry:$killed" deregister
expect_true "the controller logged the recovery" grep -q 'id=CTL-DISCOVERY-RECOVERED source=redis' "$E2E_DIR/ctl.log"
done_case

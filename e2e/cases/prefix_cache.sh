#!/usr/bin/env bash
# Prefix-cache routing across workers (issue 5): two workers, a real
# redis-server, four simulated engines (mock --kv-sim, 20x faster than real
# time). Multi-turn conversations whose turns alternate between the workers
# stay on one engine with AIBRIX_STATESYNC_ENABLED=true and measurably less
# without it; a shared-prefix workload gets a far higher engine-reported
# prefix hit rate with prefix-cache than with random; one hot prefix under
# load spreads instead of melting one engine; Redis restarted mid-run costs
# no request and sync comes back.
source "$(dirname "$0")/../lib.sh"
command -v redis-server >/dev/null || { echo "prefix_cache: redis-server is required"; exit 1; }

R=$(free_port); E1=$(free_port); E2=$(free_port); E3=$(free_port); E4=$(free_port)
W1=$(free_port); W2=$(free_port)
LOAD="python3 $E2E_SRC/e2e/tools/llm_load.py"
spawn redis redis-server --port "$R" --bind 127.0.0.1 --save '' --appendonly no --loglevel warning
wait_redis() { for _ in $(seq 1 100); do redis-cli -p "$R" ping 2>/dev/null | grep -q PONG && return 0; sleep 0.05; done; return 1; }
wait_redis || not_ok "redis starts"
spawn mocks "$E2E_BIN_MOCK" --port "$E1" --port "$E2" --port "$E3" --port "$E4" --model mock-model \
    --kv-sim --time-scale 0.05 --kv-blocks 4096 --max-model-len 16384
for p in "$E1" "$E2" "$E3" "$E4"; do wait_http "http://127.0.0.1:$p/health" 200 10; done
cat >"$E2E_DIR/gw.yaml" <<YAML
models:
  - name: mock-model
    endpoints: ["127.0.0.1:$E1", "127.0.0.1:$E2", "127.0.0.1:$E3", "127.0.0.1:$E4"]
YAML
start_controller ctl --config "$E2E_DIR/gw.yaml"
sync_on=(env AIBRIX_STATESYNC_ENABLED=true REDIS_HOST=127.0.0.1 REDIS_PORT="$R" LLMGW_PREFIX_SYNC_INTERVAL=1ms)
spawn_worker() { # NAME PORT ENV...
    local name=$1 port=$2; shift 2
    spawn "$name" "$@" "$E2E_BIN_DP" --host 127.0.0.1 --port "$port" --controller-pub "$CTL_PUB" \
        --controller-rep "$CTL_REP" --controller-pull "$CTL_PULL" --access-log off
    wait_log "$name" 'id=DP-SNAP-APPLY ' 10 || not_ok "worker $name gets a snapshot"
}
spawn_worker w1 "$W1" "${sync_on[@]}"
spawn_worker w2 "$W2" "${sync_on[@]}"
G1=http://127.0.0.1:$W1; G2=http://127.0.0.1:$W2
connected() { [ "$(metric "$1" llmgw_worker_prefix_sync_connected)" == 1 ]; }
jcheck() { jq -e "$1" <<<"$2" >/dev/null; } # FILTER JSON: the filter holds
eventually "worker 1 syncs through Redis" 5 connected "$G1"
eventually "worker 2 syncs through Redis" 5 connected "$G2"

# ---- multi-turn, turns alternating across the workers -------------------------
out=$($LOAD multiturn --urls "$G1,$G2" --conversations 25 --turns 6 --system-words 120 --seed 11)
e2e_log "sync on: $out"
expect_eq "no failed turn with sync on" "$(jq .failures <<<"$out")" 0
expect_true "with sync on, ≥ 99% of turns stay on their conversation's engine ($(jq .same_engine_fraction <<<"$out"))" \
    jcheck '.same_engine_fraction >= 0.99' "$out"
expect_match "deltas flow between the workers" \
    "$(metric "$G2" 'llmgw_worker_prefix_sync_blocks_total{direction="received"}')" '^[1-9][0-9]*$'

# The same with sync off: two fresh workers that only know their own inserts.
W3=$(free_port); W4=$(free_port)
spawn_worker w3 "$W3" env AIBRIX_STATESYNC_ENABLED=false
spawn_worker w4 "$W4" env AIBRIX_STATESYNC_ENABLED=false
off=$($LOAD multiturn --urls "http://127.0.0.1:$W3,http://127.0.0.1:$W4" --conversations 25 --turns 6 \
    --system-words 120 --seed 12)
e2e_log "sync off: $off"
expect_true "without sync, measurably fewer turns stay put ($(jq .same_engine_fraction <<<"$off") < 0.9)" \
    jcheck '.same_engine_fraction < 0.9' "$off"
stop w3; stop w4

# ---- shared prefixes: engine-reported hit rate, prefix-cache vs random -------
hit_rate_of() { # STRATEGY SEED -> hits/queries over the 4 engines for one run
    local h0=0 q0=0 h1=0 q1=0 p s
    for p in "$E1" "$E2" "$E3" "$E4"; do
        curl -s -X POST "http://127.0.0.1:$p/reset_prefix_cache" >/dev/null
        s=$(curl -s "http://127.0.0.1:$p/_mock/stats")
        h0=$((h0 + $(jq .prefix_hit_tokens <<<"$s"))); q0=$((q0 + $(jq .prefix_query_tokens <<<"$s")))
    done
    $LOAD shared-prefix --urls "$G1" --strategy "$1" --groups 24 --questions 6 --concurrency 4 \
        --system-words 400 --seed "$2" >"$E2E_DIR/sp-$1.json"
    for p in "$E1" "$E2" "$E3" "$E4"; do
        s=$(curl -s "http://127.0.0.1:$p/_mock/stats")
        h1=$((h1 + $(jq .prefix_hit_tokens <<<"$s"))); q1=$((q1 + $(jq .prefix_query_tokens <<<"$s")))
    done
    awk -v h=$((h1 - h0)) -v q=$((q1 - q0)) 'BEGIN{printf "%.3f", q ? h / q : 0}'
}
hr_random=$(hit_rate_of random 21)
hr_prefix=$(hit_rate_of prefix-cache 21)
e2e_log "hit rate: random=$hr_random prefix-cache=$hr_prefix; $(cat "$E2E_DIR/sp-random.json") $(cat "$E2E_DIR/sp-prefix-cache.json")"
expect_eq "shared-prefix runs had no failures" \
    "$(jq -s 'map(.failures) | add' "$E2E_DIR/sp-random.json" "$E2E_DIR/sp-prefix-cache.json")" 0
expect_true "prefix-cache hit rate ($hr_prefix) is far above random's ($hr_random)" \
    awk -v p="$hr_prefix" -v r="$hr_random" 'BEGIN{exit !(p >= r + 0.2 && p >= 0.6)}'

# ---- one hot prefix under load spreads ----------------------------------------
hot=$($LOAD shared-prefix --urls "$G1" --strategy prefix-cache --groups 1 --questions 160 --concurrency 40 \
    --system-words 400 --max-tokens 64 --seed 31)
e2e_log "hot prefix: $hot"
expect_eq "the hot prefix run had no failures" "$(jq .failures <<<"$hot")" 0
expect_true "a hot prefix under load uses more than one engine" jcheck '.per_engine | length >= 2' "$hot"
expect_true "no engine takes more than 90% of the hot prefix" \
    jcheck '(.per_engine | [.[]] | max) <= 0.9 * (.per_engine | [.[]] | add)' "$hot"

# ---- Redis restarted mid-run -------------------------------------------------
$LOAD multiturn --urls "$G1,$G2" --conversations 30 --turns 6 --system-words 80 --seed 41 >"$E2E_DIR/mt-redis.json" &
load_pid=$!
sleep 0.5
stop redis KILL
sleep 1
spawn redis2 redis-server --port "$R" --bind 127.0.0.1 --save '' --appendonly no --loglevel warning
wait_redis || not_ok "redis restarts"
wait "$load_pid"
expect_eq "no request failed while Redis was down" "$(jq .failures "$E2E_DIR/mt-redis.json")" 0
expect_match "the outage was counted" "$(metric "$G1" llmgw_worker_prefix_sync_errors_total)" '^[1-9][0-9]*$'
eventually "worker 1 reconnects to Redis" 10 connected "$G1"
eventually "worker 2 reconnects to Redis" 10 connected "$G2"
done_case

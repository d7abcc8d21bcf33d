#!/usr/bin/env bash
# scrape_signals: the controller's engine signals and LoRA adapter discovery
# (issue 4), end to end. Two mock engines are forced to different gauges,
# TTFT/TPOT observations and token rates; the controller scrapes their
# /metrics and the numbers must reach the load vector (/debug/snapshot)
# within about a second. A killed engine shows scrape errors in the
# controller's /metrics and its numbers turn unknown after the stale window.
# An adapter loaded at run time through vLLM's /v1/load_lora_adapter shows
# up in the snapshot and in the worker's GET /v1/models with its parent,
# requests naming it reach only that engine, and unloading removes it. An
# engine whose /v1/models is closed to the controller (--api-key) still has
# its adapters discovered from vllm:lora_requests_info.
source "$(dirname "$0")/../lib.sh"

M1=$(free_port); M2=$(free_port); W=$(free_port)
GW=http://127.0.0.1:$W
start_mock m1 "$M1" --model base --ttft-ms 2 --itl-ms 1
start_mock m2 "$M2" --model base --ttft-ms 2 --itl-ms 1 --api-key sk-engine --lora info-lora
cat >"$E2E_DIR/gw.yaml" <<YAML
models:
  - name: base
    endpoints:
      - address: 127.0.0.1
        port: $M1
        name: mock-a
        adapters: [declared-lora]
      - address: 127.0.0.1
        port: $M2
        name: mock-b
YAML
start_controller ctl --config "$E2E_DIR/gw.yaml" --scrape-interval 100ms --metrics-stale-after 1s \
    --adapter-refresh-interval 500ms --scrape-timeout 500ms
start_worker w1 "$W"
CTL=http://127.0.0.1:$CTL_HTTP

# ep POD JQ: one field of an endpoint in the controller's /debug/snapshot.
ep() { curl -s "$CTL/debug/snapshot" | jq -r --arg p "$1" ".endpoints[] | select(.pod==\$p) | $2"; }
# within DESC SECONDS COMMAND...: like eventually, and tells how long it took.
within() {
    local d=$1 t=$2 start end; shift 2
    start=$(date +%s.%N)
    for ((i = 0; i < t * 20; i++)); do
        if "$@"; then
            end=$(date +%s.%N)
            ok "$d ($(awk -v a="$start" -v b="$end" 'BEGIN{printf "%.2f", b - a}') s)"
            return 0
        fi
        sleep 0.05
    done
    not_ok "$d" "still failing after ${t}s: $*"
}
fault() { curl -s -X POST "http://127.0.0.1:$1/_mock/fault" -d "$2" >/dev/null; }
# near POD FIELD WANT TOLERANCE: the endpoint's load field is within TOLERANCE of WANT.
near() {
    local v
    v=$(ep "$1" ".load.$2")
    awk -v v="$v" -v w="$3" -v t="$4" 'BEGIN{exit !(v != "null" && v != "" && v - w <= t && w - v <= t)}'
}
is_null() { [ "$(ep "$1" ".load.$2")" == null ]; }
cmetric() { metric "$CTL" "$1"; }
positive() { awk -v v="$1" 'BEGIN{exit !(v != "absent" && v > 0)}'; }

# ---- signals -----------------------------------------------------------------
fault "$M1" '{"force_running":5,"force_waiting":2,"force_kv_cache_usage":0.8,"force_ttft_ms":120,"force_tpot_ms":15,"force_tokens_per_s":400}'
fault "$M2" '{"force_running":1,"force_waiting":0,"force_kv_cache_usage":0.1,"force_ttft_ms":30,"force_tpot_ms":4,"force_tokens_per_s":100}'
gauges_a() { [ "$(ep mock-a '"\(.load.running) \(.load.waiting) \(.load.kvUsage) \(.load.gpuUsage)"')" == "5 2 0.8 0.8" ]; }
gauges_b() { [ "$(ep mock-b '"\(.load.running) \(.load.waiting) \(.load.kvUsage) \(.load.gpuUsage)"')" == "1 0 0.1 0.1" ]; }
within "running/waiting/kv/gpu of engine A reach the load vector" 1 gauges_a
within "running/waiting/kv/gpu of engine B reach the load vector" 1 gauges_b
within "A's TTFT comes from its histogram deltas (120 ms)" 1 near mock-a ttftMs 120 0.5
within "B's TTFT (30 ms)" 1 near mock-b ttftMs 30 0.5
within "A's time per output token (15 ms)" 1 near mock-a tpotMs 15 0.5
within "B's time per output token (4 ms)" 1 near mock-b tpotMs 4 0.5
# The rate needs two pages at least a second apart.
within "A's token rate from its counters (~400/s)" 2 near mock-a tokensPerSecond 400 60
within "B's token rate from its counters (~100/s)" 2 near mock-b tokensPerSecond 100 20
expect_true "metrics age is fresh (< 500 ms)" near mock-a metricsAgeMs 250 250
expect_eq "A's KV capacity from vllm:cache_config_info (2048 blocks x 16 tokens)" \
    "$(ep mock-a .load.kvCapacity)" 32768

# The signals change when the engine's do.
fault "$M1" '{"force_running":0,"force_waiting":9,"force_kv_cache_usage":0.3,"force_ttft_ms":120,"force_tpot_ms":15,"force_tokens_per_s":400}'
within "a change of A's gauges follows" 1 eval '[ "$(ep mock-a "\"\(.load.running) \(.load.waiting) \(.load.kvUsage)\"")" == "0 9 0.3" ]'

# Controller metrics.
expect_true "scrapes_total{result=ok} counts" positive "$(cmetric 'llmgw_controller_scrapes_total{result="ok"}')"
expect_eq "no failed scrapes yet" "$(cmetric 'llmgw_controller_scrapes_total{result="connect"}')" 0
expect_true "scrape duration histogram has observations" \
    positive "$(cmetric llmgw_controller_scrape_duration_seconds_count)"
expect_true "per-endpoint metrics age gauge" \
    awk -v v="$(cmetric 'llmgw_controller_endpoint_metrics_age_seconds{endpoint="mock-a"}')" 'BEGIN{exit !(v != "absent" && v < 1)}'
expect_eq "no stale endpoints" "$(cmetric llmgw_controller_stale_endpoints)" 0

# ---- LoRA adapters -------------------------------------------------------------
adapters() { ep "$1" '.adapters | join(",")'; }
within "B's adapter is discovered from vllm:lora_requests_info (its /v1/models needs a key)" 2 \
    eval '[ "$(adapters mock-b)" == "info-lora" ]'
expect_true "B's /v1/models refreshes fail with http_error" \
    positive "$(cmetric 'llmgw_controller_adapter_refreshes_total{result="http_error"}')"
expect_eq "A has only its declared adapter" "$(adapters mock-a)" declared-lora

gen0=$(curl -s "$CTL/debug/snapshot" | jq .gen)
code=$(curl -s -o "$E2E_DIR/lora.out" -w '%{http_code}' -X POST "http://127.0.0.1:$M1/v1/load_lora_adapter" \
    -H 'Content-Type: application/json' -d '{"lora_name":"sql-lora","lora_path":"/loras/sql"}')
expect_eq "the engine loads an adapter at run time (vLLM API)" "$code" 200
within "the loaded adapter reaches the snapshot within the refresh interval" 2 \
    eval '[ "$(adapters mock-a)" == "declared-lora,sql-lora" ]'
expect_true "a new generation carries it" awk -v a="$gen0" -v b="$(curl -s "$CTL/debug/snapshot" | jq .gen)" 'BEGIN{exit !(b > a)}'
expect_eq "B does not get it" "$(adapters mock-b)" info-lora
parent_of() { curl -s "$GW/v1/models" | jq -r --arg id "$1" '.data[] | select(.id==$id) | .parent'; }
within "the worker lists the adapter with its parent" 2 eval '[ "$(parent_of sql-lora)" == base ]'
pods=""
for i in 1 2 3 4 5 6; do
    chat '{"model":"sql-lora","messages":[{"role":"user","content":"q"}],"max_tokens":1}' >/dev/null
    pods="$pods$(hdr target-pod) "
done
expect_eq "requests naming the adapter go only to the engine serving it" "$pods" \
    "mock-a mock-a mock-a mock-a mock-a mock-a "
expect_eq "the engine answered as the adapter" "$(body | jq -r .model)" sql-lora

code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$M1/v1/unload_lora_adapter" \
    -H 'Content-Type: application/json' -d '{"lora_name":"sql-lora"}')
expect_eq "the engine unloads it" "$code" 200
within "the unloaded adapter leaves the snapshot" 2 eval '[ "$(adapters mock-a)" == declared-lora ]'
within "and the worker's /v1/models" 2 eval '[ -z "$(parent_of sql-lora)" ]'

# ---- a killed engine ------------------------------------------------------------
stop m2 KILL
within "a dead engine's scrapes fail as connect errors" 2 \
    eval 'positive "$(cmetric "llmgw_controller_scrapes_total{result=\"connect\"}")"'
expect_true "its numbers are still served inside the stale window" near mock-b kvUsage 0.1 0.001
within "after the stale window (1 s) its numbers are unknown" 3 is_null mock-b running
expect_true "all of the engine's own numbers" \
    eval 'is_null mock-b waiting && is_null mock-b kvUsage && is_null mock-b gpuUsage && is_null mock-b tpotMs'
# TTFT and the token rate fall back to what the workers report (no traffic
# here: no TTFT, and 0 tokens/s once a report window closed), never the
# engine's stale 30 ms and 100/s.
expect_true "TTFT and token rate fall back to the workers' reports" \
    eval 'is_null mock-b ttftMs && awk -v v="$(ep mock-b .load.tokensPerSecond)" "BEGIN{exit !(v == \"null\" || v < 50)}"'
expect_true "its metrics age keeps growing past the window" \
    awk -v v="$(ep mock-b .load.metricsAgeMs)" 'BEGIN{exit !(v > 1000)}'
expect_eq "the stale endpoint is counted" "$(cmetric llmgw_controller_stale_endpoints)" 1
expect_true "its age gauge tells how stale" \
    awk -v v="$(cmetric 'llmgw_controller_endpoint_metrics_age_seconds{endpoint="mock-b"}')" 'BEGIN{exit !(v > 1)}'
expect_eq "the live engine is unaffected" "$(ep mock-a "\"\\(.load.running) \\(.load.waiting)\"")" "0 9"
expect_true "the failures were logged" grep -q 'id=CTL-SCRAPE-FAIL endpoint="mock-b"' "$E2E_DIR/ctl.log"

done_case

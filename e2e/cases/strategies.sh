#!/usr/bin/env bash
# Every strategy picks what its definition (docs/routing.md) says, on real
# signals: two mock engines driven to different KV usage, latency and
# throughput (the controller scrapes them), two workers sharing the fleet's
# in-flight counts through the controller. Also: weighted composition,
# session affinity across workers, external-filter, auto profiles, and the
# least-request fallback when an input is missing everywhere.
source "$(dirname "$0")/../lib.sh"

A=$(free_port); B=$(free_port); C=$(free_port); D=$(free_port); DEADM=$(free_port); W1=$(free_port); W2=$(free_port)
GW=http://127.0.0.1:$W1
start_mock a "$A" --model m --model blind --ttft-ms 1 --itl-ms 1
start_mock b "$B" --model m --model blind --ttft-ms 1 --itl-ms 1
start_mock c "$C" --model blind --ttft-ms 1 --itl-ms 1 # metrics scraped from a dead port
start_mock d "$D" --model blind --ttft-ms 1 --itl-ms 1
cat >"$E2E_DIR/gw.yaml" <<YAML
models:
  - name: m
    config: |
      {"defaultProfile": "default",
       "profiles": {"default": {"routingStrategy": "random"},
                    "long": {"routingStrategy": "least-kv-cache",
                             "routingConfig": {"promptTokensGte": 500}}}}
    endpoints:
      - {address: 127.0.0.1, port: $A, name: pod-a, labels: {name: a, zone: z1}}
      - {address: 127.0.0.1, port: $B, name: pod-b, labels: {name: b, zone: z2}}
  - name: blind
    endpoints:
      - {address: 127.0.0.1, port: $C, metricPort: $DEADM, name: blind-c}
      - {address: 127.0.0.1, port: $D, metricPort: $DEADM, name: blind-d}
YAML
start_controller ctl --config "$E2E_DIR/gw.yaml" --scrape-interval 100ms --load-interval 50ms
start_worker w1 "$W1"
start_worker w2 "$W2"
CTL=http://127.0.0.1:$CTL_HTTP

# fault PORT JSON: sets the engine's whole knob set (absent knobs reset).
fault() { curl -s -X POST "http://127.0.0.1:$1/_mock/fault" -d "$2" >/dev/null; }
# load_is POD FIELD VALUE: the controller's fleet load shows it.
load_is() {
    [ "$(curl -s "$CTL/debug/snapshot" |
        jq -r --arg p "$1" --arg f "$2" '.endpoints[] | select(.pod == $p) | .load[$f]')" == "$3" ]
}
# picks WORKER_URL N STRATEGY [CURL ARGS...]: the pods N requests landed on.
picks() {
    local url=$1 n=$2 s=$3; shift 3
    for ((i = 0; i < n; i++)); do
        curl -s -o /dev/null -D - --max-time 10 -H 'Content-Type: application/json' \
            -H "routing-strategy: $s" "$@" \
            -d '{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":2}' \
            "$url/v1/chat/completions" | tr -d '\r' | awk -F': ' 'tolower($1)=="target-pod"{print $2}'
    done | sort | uniq -c | awk '{printf "%s=%s ", $2, $1}'
}

# ---- KV cache ---------------------------------------------------------------
fault "$A" '{"force_kv_cache_usage":0.9,"itl_ms":1,"ttft_ms":1}'
fault "$B" '{"force_kv_cache_usage":0.1,"itl_ms":1,"ttft_ms":1}'
eventually "the scraped KV usage reaches the load vector" 5 load_is pod-a kvUsage 0.9
expect_eq "least-kv-cache picks the emptier cache (worker 1)" "$(picks "$GW" 6 least-kv-cache)" "pod-b=6 "
expect_eq "least-kv-cache picks the emptier cache (worker 2)" "$(picks "http://127.0.0.1:$W2" 6 least-kv-cache)" "pod-b=6 "
expect_eq "least-gpu-cache reads the GPU cache gauge" "$(picks "$GW" 4 least-gpu-cache)" "pod-b=4 "
expect_eq "a weighted list follows its heavier member" "$(picks "$GW" 4 'least-kv-cache:5,random:0,least-request:1')" "pod-b=4 "
expect_eq "the weighted plan is echoed by name" \
    "$(curl -s -o /dev/null -D - -H 'Content-Type: application/json' -H 'routing-strategy: least-kv-cache:2,least-request:1' \
        -d '{"model":"m","messages":[{"role":"user","content":"x"}]}' "$GW/v1/chat/completions" |
        tr -d '\r' | awk -F': ' 'tolower($1)=="routing-strategy"{print $2}')" "least-kv-cache:2,least-request:1"

# ---- latency and throughput --------------------------------------------------
fault "$A" '{"force_ttft_ms":400,"force_tpot_ms":40,"force_tokens_per_s":10,"itl_ms":1,"ttft_ms":1}'
fault "$B" '{"force_ttft_ms":20,"force_tpot_ms":4,"force_tokens_per_s":2000,"itl_ms":1,"ttft_ms":1}'
eventually "the scraped TTFT reaches the load vector" 5 load_is pod-a ttftMs 400
expect_eq "least-latency picks the faster engine" "$(picks "$GW" 6 least-latency)" "pod-b=6 "
ok_tps() { curl -s "$CTL/debug/snapshot" | jq -e '[.endpoints[] | select(.pod=="pod-a" or .pod=="pod-b") | .load.tokensPerSecond] | all(. != null)' >/dev/null; }
eventually "token throughput reaches the load vector" 8 ok_tps
expect_eq "throughput picks the engine that processed fewer tokens" "$(picks "$GW" 6 throughput)" "pod-a=6 "

# ---- least-request and power-of-two across workers --------------------------
# Worker 1 holds 3 slow requests on pod-a (external-filter pins them); worker
# 2 must see them through the controller's load vector and avoid pod-a.
fault "$A" '{"itl_ms":150,"ttft_ms":1}'
fault "$B" '{"itl_ms":1,"ttft_ms":1}'
slow=()
for i in 1 2 3; do
    curl -s -o /dev/null --max-time 20 -H 'Content-Type: application/json' -H 'routing-strategy: least-request' \
        -H 'external-filter: name=a' -d '{"model":"m","messages":[{"role":"user","content":"slow"}],"max_tokens":20}' \
        "$GW/v1/chat/completions" &
    slow+=($!)
done
fleet_sees() { load_is pod-a inflight 3; }
eventually "the fleet load shows worker 1's 3 requests on pod-a" 5 fleet_sees
expect_eq "least-request on worker 2 avoids pod-a" "$(picks "http://127.0.0.1:$W2" 4 least-request)" "pod-b=4 "
expect_eq "power-of-two on worker 2 avoids pod-a" "$(picks "http://127.0.0.1:$W2" 4 power-of-two)" "pod-b=4 "
wait "${slow[@]}"

# ---- external-filter --------------------------------------------------------
expect_eq "external-filter narrows to matching labels" "$(picks "$GW" 4 random -H 'external-filter: zone in (z2)')" "pod-b=4 "
code=$(chat '{"model":"m","messages":[{"role":"user","content":"x"}]}' -H 'external-filter: zone in (z2')
expect_eq "a malformed selector is 400" "$code" 400
expect_eq "a malformed selector has its header" "$(hdr x-error-invalid-external-filter)" true
code=$(chat '{"model":"m","messages":[{"role":"user","content":"x"}]}' -H 'external-filter: zone=z9')
expect_eq "a selector matching nothing is 503" "$code" 503

# ---- session affinity ---------------------------------------------------------
first=$(picks "$GW" 1 session-affinity -H 'x-aibrix-session-key: conversation-17' | cut -d= -f1)
expect_eq "a session key sticks on worker 1" "$(picks "$GW" 5 session-affinity -H 'x-aibrix-session-key: conversation-17')" "$first=5 "
expect_eq "the same session key picks the same pod on worker 2" \
    "$(picks "http://127.0.0.1:$W2" 5 session-affinity -H 'x-aibrix-session-key: conversation-17')" "$first=5 "
chat '{"model":"m","messages":[{"role":"user","content":"x"}]}' -H 'routing-strategy: session-affinity' >/dev/null
sid=$(hdr x-session-id); pod=$(hdr target-pod)
expect_match "the response carries x-session-id" "$sid" '^[A-Za-z0-9+/=]+$'
expect_eq "x-session-id routes back to its pod" "$(picks "http://127.0.0.1:$W2" 4 session-affinity -H "x-session-id: $sid")" "$pod=4 "

# ---- auto profiles -------------------------------------------------------------
long=$(python3 -c 'print("word " * 600)')
code=$(chat "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"$long\"}]}" -H 'config-profile: auto')
expect_eq "auto picks the profile whose hints match a long prompt" "$(hdr x-aibrix-config-profile)" long
expect_eq "the long profile's strategy decides" "$(hdr routing-strategy)" least-kv-cache
code=$(chat '{"model":"m","messages":[{"role":"user","content":"short"}]}' -H 'config-profile: auto')
expect_eq "auto falls back to the default profile" "$(hdr x-aibrix-config-profile)" default

# ---- fallbacks ---------------------------------------------------------------
code=$(chat '{"model":"blind","messages":[{"role":"user","content":"x"}]}' -H 'routing-strategy: least-kv-cache')
expect_eq "a strategy without inputs still serves" "$code" 200
expect_eq "…through least-request, counted" \
    "$(metric "$GW" 'llmgw_worker_routing_fallbacks_total{strategy="least-kv-cache",reason="no_metrics"}')" 1
expect_true "…and logged" grep -q 'id=DP-ROUTE-FALLBACK' "$E2E_DIR/w1.log"
code=$(chat '{"model":"m","messages":[{"role":"user","content":"x"}]}' -H 'routing-strategy: vtc-basic')
expect_eq "vtc-basic without a user falls back, counted" \
    "$(metric "$GW" 'llmgw_worker_routing_fallbacks_total{strategy="vtc-basic",reason="no_user"}')" 1
expect_true "the access log names the chosen pod" grep -qE 'req=[^ ]+ .*pod=pod-[ab] ' "$E2E_DIR/w1.log"
done_case

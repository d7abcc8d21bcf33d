#!/usr/bin/env bash
# mock_engine_selftest: checks llmgw-mock-engine against its spec
# (e2e/mock/README.md), so gateway e2e cases can trust the stand-in they
# assert against. Standalone until e2e/lib.sh exists: it starts its own mock
# processes on kernel-chosen ports (--port 0 + --port-file, no port races),
# drives them with curl + jq, stops them with SIGTERM, requires exit 0 and a
# log without alert lines or sanitizer reports.
#
#   LLMGW_BUILD_DIR=/path/to/build bash e2e/cases/mock_engine_selftest.sh
#
# Prints one line per check and "N passed, M failed"; exits 1 on any failure,
# 77 when curl or jq is missing. E2E_KEEP=1 keeps the temp dir (logs).
set -euo pipefail

BUILD=${LLMGW_BUILD_DIR:?LLMGW_BUILD_DIR must point at the build directory}
BIN=$BUILD/e2e/mock/llmgw-mock-engine
for tool in curl jq; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "SKIP: $tool not installed"
        exit 77
    fi
done
[ -x "$BIN" ] || { echo "FAIL: $BIN not built"; exit 1; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/mock-selftest.XXXXXX")
declare -A PID=()   # mock name -> pid
PASS=0
FAIL=0

cleanup() {
    local name
    for name in "${!PID[@]}"; do
        kill -KILL "${PID[$name]}" 2>/dev/null || true
    done
    if [ "${E2E_KEEP:-0}" = 1 ] || [ "$FAIL" -gt 0 ]; then
        echo "# logs kept in $TMP"
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT

ok() {
    PASS=$((PASS + 1))
    echo "ok   - $1"
}
bad() {
    FAIL=$((FAIL + 1))
    echo "FAIL - $1"
    [ $# -lt 2 ] || echo "       $2"
}
# expect NAME ACTUAL WANTED
expect() {
    if [ "$2" == "$3" ]; then ok "$1"; else bad "$1" "got '$2', want '$3'"; fi
}

# eventually NAME WANTED CMD...: like expect, but retries CMD for up to 5 s,
# for state the mock updates asynchronously (a disconnect it notices by polling).
eventually() {
    local name=$1 want=$2 got i
    shift 2
    for i in $(seq 50); do
        got=$("$@")
        [ "$got" == "$want" ] && break
        sleep 0.1
    done
    expect "$name" "$got" "$want"
}
stat_of() {
    req "$1" GET /_mock/stats >/dev/null
    jqb "$2"
}

# start_mock NAME ARGS...: starts a mock, waits for its port file, and sets
# PORTS_<NAME> (array) to its ports in --port order.
start_mock() {
    local name=$1 i
    shift
    "$BIN" --port-file "$TMP/$name.ports" "$@" 2>"$TMP/$name.log" &
    PID[$name]=$!
    for i in $(seq 200); do
        [ -s "$TMP/$name.ports" ] && break
        if ! kill -0 "${PID[$name]}" 2>/dev/null; then
            echo "FAIL: mock $name died at start:"
            cat "$TMP/$name.log"
            exit 1
        fi
        sleep 0.05
    done
    mapfile -t "PORTS_$name" <"$TMP/$name.ports"
}

# stop_mock NAME: SIGTERM, require exit 0 within 10 s and a clean log.
stop_mock() {
    local name=$1 pid=${PID[$1]} rc=0 i
    kill -TERM "$pid"
    for i in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    wait "$pid" || rc=$?
    unset "PID[$name]"
    expect "$name: SIGTERM exits 0" "$rc" 0
    if grep -qE 'lvl=alert|Sanitizer|runtime error:' "$TMP/$name.log"; then
        bad "$name: log has no alert or sanitizer report" "$(grep -E 'lvl=alert|Sanitizer|runtime error:' "$TMP/$name.log" | head -3)"
    else
        ok "$name: log has no alert or sanitizer report"
    fi
}

# req PORT METHOD PATH [BODY [CURL ARGS...]]: body to $TMP/body, headers to
# $TMP/hdr, prints the status code (000 when curl failed or timed out).
req() {
    local port=$1 method=$2 path=$3 body=${4-}
    shift 3
    [ $# -eq 0 ] || shift
    local args=(-s -o "$TMP/body" -D "$TMP/hdr" -w '%{http_code}' -X "$method" "$@")
    if [ -n "$body" ]; then
        args+=(-H 'Content-Type: application/json' --data-binary "$body")
    fi
    curl "${args[@]}" "http://127.0.0.1:$port$path" || true
}
body() { cat "$TMP/body"; }
jqb() { jq -r "$1" "$TMP/body" 2>/dev/null || echo "<not json>"; }
header() { tr -d '\r' <"$TMP/hdr" | awk -v h="$1" 'tolower($0) ~ "^" h ":" {sub(/^[^:]*: */, ""); print}'; }
# SSE helpers: the JSON of every "data:" event except [DONE].
sse_json() { sed -n 's/^data: \({.*\)$/\1/p' "$TMP/body"; }

CHAT='{"model":"m1","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hello there world"}],"max_tokens":5}'

start_mock a --port 0 --port 0 --model m1 --model m2 --ttft-ms 5 --itl-ms 1
A=${PORTS_a[0]}
B=${PORTS_a[1]}

# ---- basics ---------------------------------------------------------------
expect "GET /health is 200" "$(req "$A" GET /health)" 200
expect "GET /health has an empty body" "$(body)" ""

expect "GET /v1/models is 200" "$(req "$A" GET /v1/models)" 200
expect "/v1/models lists every model" "$(jqb '[.data[].id]|join(",")')" "m1,m2"
expect "/v1/models has vLLM's card fields" \
    "$(jqb '.object + " " + .data[0].object + " " + .data[0].owned_by + " " + .data[0].root + " " + (.data[0].max_model_len|tostring) + " " + (.data[0].parent|tostring)')" \
    "list model vllm m1 8192 null"

# ---- chat, non-streaming ----------------------------------------------------
expect "chat completion is 200" "$(req "$A" POST /v1/chat/completions "$CHAT")" 200
expect "chat completion content-type" "$(header content-type)" "application/json"
expect "chat completion shape" \
    "$(jqb '.object + " " + .model + " " + .choices[0].message.role + " " + .choices[0].finish_reason')" \
    "chat.completion m1 assistant length"
expect "chat completion text is N filler tokens" "$(jqb '.choices[0].message.content')" \
    "tok0 tok1 tok2 tok3 tok4"
# "be brief" (2+1) + "hello there world" (3+1) = 7 prompt tokens.
expect "chat usage follows the tokenizer rule" \
    "$(jqb '[.usage.prompt_tokens,.usage.completion_tokens,.usage.total_tokens]|join(",")')" "7,5,12"
expect "chat id prefix" "$(jqb '.id|startswith("chatcmpl-")')" true

req "$A" POST /v1/chat/completions '{"messages":[{"role":"user","content":"hi"}]}' >/dev/null
expect "no model means the first model" "$(jqb .model)" m1
expect "no max_tokens: --output-tokens tokens, finish stop" \
    "$(jqb '(.usage.completion_tokens|tostring) + " " + .choices[0].finish_reason')" "16 stop"

req "$A" POST /v1/chat/completions "$CHAT" -H 'X-Request-Id: abc-123' >/dev/null
expect "X-Request-Id becomes the response id" "$(jqb .id)" "chatcmpl-abc-123"

# ---- chat, streaming --------------------------------------------------------
STREAM='{"model":"m2","messages":[{"role":"user","content":"hi"}],"max_tokens":3,"stream":true,"stream_options":{"include_usage":true}}'
expect "chat stream is 200" "$(req "$A" POST /v1/chat/completions "$STREAM" -N)" 200
expect "chat stream content-type" "$(header content-type | cut -d';' -f1)" "text/event-stream"
expect "first chunk carries the role" "$(sse_json | head -1 | jq -r '.choices[0].delta.role')" assistant
expect "chunks are chat.completion.chunk" \
    "$(sse_json | jq -r .object | sort -u)" "chat.completion.chunk"
expect "stream deltas join to the filler text" \
    "$(sse_json | jq -j '.choices[0].delta.content // empty')" "tok0 tok1 tok2"
expect "last token chunk has finish_reason length" \
    "$(sse_json | jq -r 'select(.choices|length>0)|.choices[0].finish_reason' | tail -1)" length
expect "usage chunk: choices [] and usage" \
    "$(sse_json | tail -1 | jq -r '(.choices|length|tostring) + " " + (.usage.prompt_tokens|tostring) + " " + (.usage.completion_tokens|tostring) + " " + (.usage.total_tokens|tostring)')" \
    "0 2 3 5"
expect "stream ends with data: [DONE]" "$(grep -v '^$' "$TMP/body" | tail -1 | tr -d '\r')" "data: [DONE]"
# role + 3 tokens + usage + [DONE]
expect "events are data: lines separated by blank lines" \
    "$(grep -c '^data: ' "$TMP/body") $(grep -c '^$' "$TMP/body")" "6 6"

req "$A" POST /v1/chat/completions '{"messages":[{"role":"user","content":"hi"}],"max_tokens":2,"stream":true}' -N >/dev/null
expect "without include_usage there is no usage chunk" \
    "$(sse_json | jq -r 'select(.usage != null)' | wc -l | tr -d ' ')" 0

# ---- completions ------------------------------------------------------------
expect "completion is 200" "$(req "$A" POST /v1/completions '{"model":"m2","prompt":"one two three","max_tokens":4}')" 200
expect "completion shape and text" \
    "$(jqb '.object + " " + .model + " " + .choices[0].text + " " + (.usage.prompt_tokens|tostring)')" \
    "text_completion m2 tok0 tok1 tok2 tok3 4"
req "$A" POST /v1/completions '{"prompt":[1,2,3,4,5],"max_tokens":2,"stream":true}' -N >/dev/null
expect "completion stream text" "$(sse_json | jq -j '.choices[0].text // empty')" "tok0 tok1"
expect "completion stream chunks are text_completion" "$(sse_json | jq -r .object | sort -u)" text_completion

# ---- embeddings -------------------------------------------------------------
expect "embeddings is 200" "$(req "$A" POST /v1/embeddings '{"model":"m1","input":["a b","c"]}')" 200
expect "one 8-float vector per input" "$(jqb '[.data[]|.embedding|length]|join(",")')" "8,8"
expect "embeddings usage" "$(jqb '.object + " " + (.usage.prompt_tokens|tostring) + " " + .data[1].object')" \
    "list 5 embedding"
V1=$(jqb '.data[0].embedding')
req "$A" POST /v1/embeddings '{"model":"m1","input":"a b"}' >/dev/null
expect "same input, same vector" "$(jqb '.data[0].embedding')" "$V1"

# ---- errors -----------------------------------------------------------------
expect "unknown model is 404" "$(req "$A" POST /v1/chat/completions '{"model":"nope","messages":[{"role":"user","content":"hi"}]}')" 404
expect "404 has vLLM's error shape" \
    "$(jqb '[.object,.type,(.code|tostring),(.param|tostring)]|join(" ")')" "error NotFoundError 404 null"
expect "404 message" "$(jqb .message)" 'The model `nope` does not exist.'
expect "bad JSON is 400" "$(req "$A" POST /v1/chat/completions '{"model":')" 400
expect "400 type" "$(jqb .type)" BadRequestError
expect "non-object body is 400" "$(req "$A" POST /v1/completions '[1,2]')" 400
expect "chat without messages is 400" "$(req "$A" POST /v1/chat/completions '{"model":"m1"}')" 400
expect "completions without prompt is 400" "$(req "$A" POST /v1/completions '{"model":"m1"}')" 400
expect "context overflow is 400" "$(req "$A" POST /v1/completions '{"prompt":"x","max_tokens":9000}')" 400
expect "unknown path is 404" "$(req "$A" GET /nope)" 404
expect "unknown path body is FastAPI's" "$(body)" '{"detail":"Not Found"}'
expect "wrong method is 405" "$(req "$A" DELETE /v1/models)" 405

# ---- metrics ----------------------------------------------------------------
expect "GET /metrics is 200" "$(req "$A" GET /metrics)" 200
missing=""
for m in vllm:num_requests_running vllm:num_requests_waiting vllm:kv_cache_usage_perc \
    vllm:gpu_cache_usage_perc vllm:prompt_tokens_total vllm:generation_tokens_total \
    vllm:request_success_total vllm:time_to_first_token_seconds vllm:e2e_request_latency_seconds \
    vllm:prefix_cache_queries_total vllm:prefix_cache_hits_total vllm:num_preemptions_total; do
    grep -q "^# TYPE $m " "$TMP/body" || missing="$missing $m"
    grep -q "^$m[{_].*model_name=\"m1\"" "$TMP/body" || missing="$missing $m{m1}"
done
expect "every vLLM metric has TYPE and a model_name series" "$missing" ""
expect "histograms have _bucket/_sum/_count" \
    "$(grep -cE '^vllm:time_to_first_token_seconds_(bucket\{model_name="m1",le="\+Inf"\}|sum\{model_name="m1"\}|count\{model_name="m1"\})' "$TMP/body")" 3
expect "without --kv-sim, cache_config_info says prefix caching is off" \
    "$(grep -c '^vllm:cache_config_info{block_size="16",.*enable_prefix_caching="False",.*num_gpu_blocks="2048",.*} 1.0$' "$TMP/body")" 1
expect "and the prefix counters stay 0" \
    "$(awk '/^vllm:prefix_cache_(queries|hits)_total\{model_name="m1"\}/ {printf "%s ", $2}' "$TMP/body")" "0.0 0.0 "
# m2 generated 3 (chat stream) + 4 (completion) tokens so far.
expect "generation tokens are counted" \
    "$(awk '/^vllm:generation_tokens_total\{model_name="m2"\}/ {print $2}' "$TMP/body")" "7.0"

# ---- request record ---------------------------------------------------------
req "$A" DELETE /_mock/requests >/dev/null
req "$A" POST /v1/chat/completions "$CHAT" -H 'X-Custom-Test: hello' -H 'Authorization: Bearer topsecret' >/dev/null
expect "GET /_mock/requests is 200" "$(req "$A" GET /_mock/requests)" 200
expect "exactly the requests since DELETE" "$(jqb length)" 1
expect "record has method, path, parsed body" "$(jqb '.[0].method + " " + .[0].path + " " + .[0].body.model')" \
    "POST /v1/chat/completions m1"
expect "record keeps a custom header (lowercased)" "$(jqb '.[0].headers["x-custom-test"]')" hello
expect "record redacts Authorization" "$(jqb '.[0].headers.authorization')" "<redacted>"
expect "record has ts_ms" "$(jqb '.[0].ts_ms > 1600000000000')" true
req "$A" DELETE /_mock/requests >/dev/null
req "$A" GET /_mock/requests >/dev/null
expect "DELETE /_mock/requests clears" "$(jqb length)" 0

# ---- faults -----------------------------------------------------------------
expect "POST /_mock/fault is 200" "$(req "$A" POST /_mock/fault '{"error_rate":1}')" 200
expect "error_rate 1: 500" "$(req "$A" POST /v1/chat/completions "$CHAT")" 500
expect "500 has vLLM's error shape" "$(jqb '.object + " " + .type + " " + (.code|tostring)')" \
    "error InternalServerError 500"
expect "faults are per port" "$(req "$B" POST /v1/chat/completions "$CHAT")" 200
req "$A" POST /_mock/fault '{"error_rate":0.5}' >/dev/null
seq=""
for i in 1 2 3 4; do seq="$seq $(req "$A" POST /v1/completions '{"prompt":"x","max_tokens":1}')"; done
expect "error_rate 0.5 fails every second request" "$seq" " 200 500 200 500"
req "$A" POST /_mock/fault '{"fail_count":2}' >/dev/null
seq=""
for i in 1 2 3; do seq="$seq $(req "$A" POST /v1/completions '{"prompt":"x","max_tokens":1}')"; done
expect "fail_count 2: 429 twice (fail_status defaults to 429), then served" "$seq" " 429 429 200"
req "$A" POST /_mock/fault '{"fail_count":1}' >/dev/null
req "$A" POST /v1/chat/completions "$CHAT" >/dev/null
expect "429 has vLLM's error shape" "$(jqb '.type + " " + (.code|tostring)')" "RateLimitError 429"
expect "429 carries Retry-After" "$(tr -d '\r' <"$TMP/hdr" | awk 'tolower($1)=="retry-after:" {print $2}')" 1
req "$A" POST /_mock/fault '{"fail_count":1,"fail_status":503}' >/dev/null
expect "fail_status sets the status" "$(req "$A" POST /v1/chat/completions "$CHAT")" 503
expect "fail_status outside 400..599 is 400" "$(req "$A" POST /_mock/fault '{"fail_count":1,"fail_status":200}')" 400
expect "unknown fault field is 400" "$(req "$A" POST /_mock/fault '{"eror_rate":1}')" 400
req "$A" POST /_mock/fault '{}' >/dev/null
expect "{} resets the faults" "$(req "$A" POST /v1/chat/completions "$CHAT")" 200

req "$A" POST /_mock/fault '{"hang":true}' >/dev/null
before=$(req "$A" GET /_mock/stats >/dev/null; jqb .cancelled)
expect "hang: no answer before the client gives up" "$(req "$A" POST /v1/chat/completions "$CHAT" -m 0.5)" 000
eventually "hang: client leaving counts as cancelled" "$((before + 1))" stat_of "$A" .cancelled
expect "hang: nothing stays in flight" "$(stat_of "$A" .in_flight)" 0

req "$A" POST /_mock/fault '{"close_mid_stream":2}' >/dev/null
rc=0
curl -sN -o "$TMP/body" "http://127.0.0.1:$A/v1/chat/completions" -d "$STREAM" || rc=$?
expect "close_mid_stream: curl sees a cut transfer (18)" "$rc" 18
expect "close_mid_stream: exactly N events, no [DONE]" \
    "$(grep -c '^data: ' "$TMP/body") $(grep -c 'DONE' "$TMP/body" || true)" "2 0"
eventually "close_mid_stream counts as aborted" 1 stat_of "$A" .aborted

req "$A" POST /_mock/fault '{"slow_ms":300}' >/dev/null
t=$(curl -s -o /dev/null -w '%{time_starttransfer}' "http://127.0.0.1:$A/v1/completions" -d '{"prompt":"x","max_tokens":1}' || true)
expect "slow_ms delays the headers" "$(awk -v t="$t" 'BEGIN {print (t >= 0.29) ? "yes" : "no (" t ")"}')" yes

# Timing model: non-streaming answers after ttft + (N-1)*itl.
req "$A" POST /_mock/fault '{"ttft_ms":100,"itl_ms":20}' >/dev/null
t=$(curl -s -o /dev/null -w '%{time_total}' "http://127.0.0.1:$A/v1/completions" -d '{"prompt":"x","max_tokens":6}' || true)
expect "non-stream latency is ttft + (N-1)*itl" "$(awk -v t="$t" 'BEGIN {print (t >= 0.195 && t < 3.0) ? "yes" : "no (" t ")"}')" yes
req "$A" POST /_mock/fault '{"force_running":7,"force_kv_cache_usage":0.75}' >/dev/null
req "$A" GET /metrics >/dev/null
expect "forced gauges show in /metrics" \
    "$(awk '/^vllm:(num_requests_running|kv_cache_usage_perc)\{model_name="m1"\}/ {printf "%s ", $2}' "$TMP/body")" "7.0 0.75 "
req "$A" POST /_mock/fault '{}' >/dev/null

# ---- two ports, one process -------------------------------------------------
req "$B" DELETE /_mock/requests >/dev/null
req "$A" POST /v1/completions '{"prompt":"x","max_tokens":1}' -H 'X-Port: a' >/dev/null
req "$B" GET /_mock/requests >/dev/null
expect "port B did not record port A's request" "$(jqb length)" 0
req "$A" GET /_mock/stats >/dev/null
ra=$(jqb .received)
req "$B" GET /_mock/stats >/dev/null
expect "ports count separately" "$([ "$ra" != "$(jqb .received)" ] && echo yes || echo no)" yes
expect "responses name their port" "$(req "$B" GET /v1/models >/dev/null; header x-mock-port)" "$B"

stop_mock a

# ---- API key ----------------------------------------------------------------
start_mock k --port 0 --api-key sk-test --ttft-ms 0 --itl-ms 0
K=${PORTS_k[0]}
expect "api-key: no Authorization is 401" "$(req "$K" GET /v1/models)" 401
expect "api-key: vLLM's exact body" "$(body)" '{"error":"Unauthorized"}'
expect "api-key: wrong key is 401" "$(req "$K" POST /v1/chat/completions "$CHAT" -H 'Authorization: Bearer nope')" 401
expect "api-key: right key passes" \
    "$(req "$K" POST /v1/completions '{"prompt":"x"}' -H 'Authorization: Bearer sk-test')" 200
expect "api-key: /health needs no key" "$(req "$K" GET /health)" 200
expect "api-key: /metrics needs no key" "$(req "$K" GET /metrics)" 200
stop_mock k

# ---- the waiting queue ------------------------------------------------------
start_mock q --port 0 --max-running 1 --ttft-ms 1500 --itl-ms 0
Q=${PORTS_q[0]}
gauges() {
    req "$Q" GET /metrics >/dev/null
    awk '/^vllm:(num_requests_running|num_requests_waiting|kv_cache_usage_perc)\{/ {printf "%s ", $2}' "$TMP/body"
}
curl -s -o /dev/null "http://127.0.0.1:$Q/v1/completions" -d '{"prompt":"x","max_tokens":1}' &
c1=$!
curl -s -o /dev/null "http://127.0.0.1:$Q/v1/completions" -d '{"prompt":"x","max_tokens":1}' &
c2=$!
# running, waiting, kv usage (= running / max-running)
eventually "max-running 1: one running, one waiting, kv usage 1" "1.0 1.0 1.0 " gauges
wait "$c1" "$c2" || true
eventually "queued requests complete" "2,0,0" stat_of "$Q" '[.completed,.running,.waiting]|join(",")'
# SIGTERM with a request in flight must still exit 0.
curl -s -o /dev/null -m 5 "http://127.0.0.1:$Q/v1/completions" -d '{"prompt":"x","stream":true}' &
sleep 0.1
stop_mock q
wait || true

# ---- forced histogram and counter feeds --------------------------------------
start_mock f --port 0 --model fm
F=${PORTS_f[0]}
scrape_f() { req "$F" GET /metrics >/dev/null; }
val() { awk -v m="$1" '$1 == m {print $2}' "$TMP/body"; }
expect "force_* feeds are accepted" \
    "$(req "$F" POST /_mock/fault '{"force_ttft_ms":250,"force_tpot_ms":12.5,"force_tokens_per_s":1000}')" 200
expect "GET /_mock/fault shows them" "$(jqb '[.force_ttft_ms,.force_tpot_ms,.force_tokens_per_s]|join(",")')" "250,12.5,1000"
scrape_f
c0=$(val 'vllm:time_to_first_token_seconds_count{model_name="fm"}')
g0=$(val 'vllm:generation_tokens_total{model_name="fm"}')
t0=$(date +%s.%N)
sleep 0.5
scrape_f
t1=$(date +%s.%N)
c1=$(val 'vllm:time_to_first_token_seconds_count{model_name="fm"}')
s1=$(val 'vllm:time_to_first_token_seconds_sum{model_name="fm"}')
g1=$(val 'vllm:generation_tokens_total{model_name="fm"}')
expect "every /metrics render records one forced TTFT observation" "$c0 $c1" "1.0 2.0"
expect "of the forced value" "$s1" 0.5
expect "the TPOT histogram gets one per render too" \
    "$(val 'vllm:time_per_output_token_seconds_count{model_name="fm"}')" 2.0
expect "generation tokens grow at force_tokens_per_s" \
    "$(awk -v a="$g0" -v b="$g1" -v t0="$t0" -v t1="$t1" 'BEGIN{d = b - a; w = (t1 - t0) * 1000; print (d >= 0.8 * w && d <= 1.2 * w) ? "yes" : "no (" d " in " w " ms)"}')" yes
expect "force_* values are range-checked" "$(req "$F" POST /_mock/fault '{"force_tokens_per_s":-1}')" 400
expect "null clears a forced feed" "$(req "$F" POST /_mock/fault '{"force_ttft_ms":null}' >/dev/null; jqb .force_ttft_ms)" null
scrape_f
c2=$(val 'vllm:time_to_first_token_seconds_count{model_name="fm"}')
scrape_f
expect "no observation once cleared" "$(val 'vllm:time_to_first_token_seconds_count{model_name="fm"}')" "$c2"
expect "no vllm:lora_requests_info without --enable-lora or adapters" \
    "$(req "$F" GET /metrics >/dev/null; grep -c '^vllm:lora_requests_info' "$TMP/body")" 0
stop_mock f

# ---- LoRA adapters ------------------------------------------------------------
start_mock l --port 0 --port 0 --model base --model alias --lora sql --lora chat=/loras/chat --max-loras 4 --ttft-ms 0 --itl-ms 0
L=${PORTS_l[0]}
L2=${PORTS_l[1]}
expect "/v1/models lists bases then adapters" "$(req "$L" GET /v1/models >/dev/null; jqb '[.data[].id]|join(",")')" "base,alias,sql,chat"
expect "adapters have the first base model as parent" "$(jqb '[.data[] | .parent // "null"]|join(",")')" "null,null,base,base"
expect "an adapter's root is its path" "$(jqb '.data[3].root')" /loras/chat
expect "an adapter without a path gets a mock one" "$(jqb '.data[2].root')" /mock/loras/sql
expect "adapters have max_model_len null, like vLLM" "$(jqb '.data[2].max_model_len')" null
expect "an adapter is served" "$(req "$L" POST /v1/chat/completions '{"model":"sql","messages":[{"role":"user","content":"q"}],"max_tokens":2}')" 200
expect "the response names the adapter" "$(jqb .model)" sql
lora_info() { req "$1" GET /metrics >/dev/null; grep '^vllm:lora_requests_info' "$TMP/body" | sort -k2 -g | tail -1; }
expect_match() { if [[ "$2" =~ $3 ]]; then ok "$1"; else bad "$1" "got '$2', want /$3/"; fi; }
expect_match "vllm:lora_requests_info lists the loaded adapters" "$(lora_info "$L")" \
    '^vllm:lora_requests_info\{max_lora="4",running_lora_adapters="sql,chat",waiting_lora_adapters=""\} [0-9.e+]+$'
expect "the adapter requests count under the base model's label" \
    "$(awk '$1 == "vllm:prompt_tokens_total{model_name=\"base\"}" {print $2}' "$TMP/body")" 2.0
expect "load_lora_adapter answers vLLM's text" \
    "$(req "$L" POST /v1/load_lora_adapter '{"lora_name":"new","lora_path":"/p/new"}' >/dev/null; body)" \
    "Success: LoRA adapter 'new' added successfully."
expect "loading it twice is 400" "$(req "$L" POST /v1/load_lora_adapter '{"lora_name":"new","lora_path":"/p/new"}')" 400
expect "with vLLM's message" "$(jqb .message)" "The lora adapter 'new' has already been loaded."
expect "load_inplace replaces it" \
    "$(req "$L" POST /v1/load_lora_adapter '{"lora_name":"new","lora_path":"/p/v2","load_inplace":true}')" 200
expect "a path is required" "$(req "$L" POST /v1/load_lora_adapter '{"lora_name":"x"}')" 400
expect "a base model name is refused" "$(req "$L" POST /v1/load_lora_adapter '{"lora_name":"alias","lora_path":"/p"}')" 400
expect "the loaded adapter is listed" "$(req "$L" GET /v1/models >/dev/null; jqb '[.data[] | select(.parent != null) | "\(.id)=\(.root)"]|join(",")')" \
    "sql=/mock/loras/sql,chat=/loras/chat,new=/p/v2"
expect "and served" "$(req "$L" POST /v1/completions '{"model":"new","prompt":"x","max_tokens":1}')" 200
expect "on its own port only" "$(req "$L2" POST /v1/completions '{"model":"new","prompt":"x","max_tokens":1}')" 404
expect "unload_lora_adapter answers vLLM's text" \
    "$(req "$L" POST /v1/unload_lora_adapter '{"lora_name":"sql"}' >/dev/null; body)" \
    "Success: LoRA adapter 'sql' removed successfully."
expect "unloading an unknown adapter is 404" "$(req "$L" POST /v1/unload_lora_adapter '{"lora_name":"sql"}')" 404
expect "with vLLM's message" "$(jqb .message)" "The lora adapter 'sql' cannot be found."
expect "an unloaded adapter is no longer served" \
    "$(req "$L" POST /v1/chat/completions '{"model":"sql","messages":[{"role":"user","content":"q"}]}')" 404
expect_match "the newest lora_requests_info series follows" "$(lora_info "$L")" 'running_lora_adapters="chat,new"'
expect "older label sets stay, like prometheus_client keeps them" \
    "$(grep -c '^vllm:lora_requests_info' "$TMP/body")" 2
expect "GET /v1/models is not recorded (discovery traffic)" \
    "$(req "$L" DELETE /_mock/requests >/dev/null; req "$L" GET /v1/models >/dev/null; req "$L" GET /_mock/requests >/dev/null; jqb length)" 0
expect "it has its own counter" "$(req "$L" GET /_mock/stats >/dev/null; jqb '.model_listings > 0')" true
expect "reset brings the command line's adapters back" \
    "$(req "$L" POST /_mock/reset >/dev/null; req "$L" GET /v1/models >/dev/null; jqb '[.data[].id]|join(",")')" "base,alias,sql,chat"
stop_mock l
expect "--lora naming a served model is refused" \
    "$("$BIN" --port 0 --model m --lora m >/dev/null 2>&1; echo $?)" 2

# ---- KV-cache simulator (--kv-sim) --------------------------------------------
# words PREFIX N: N distinct words "PREFIX0 PREFIX1 ...", i.e. N prompt tokens
# (plus BOS for a completion prompt, plus the role token for a chat message).
words() { awk -v p="$1" -v n="$2" 'BEGIN {for (i = 0; i < n; i++) printf "%s%s%d", (i ? " " : ""), p, i}'; }
mval() { awk -v m="$1" '$1 == m {print $2}' "$TMP/body"; }
# near GOT WANT [TOL]: "yes" when |GOT - WANT| <= TOL (default 1e-6).
near() { awk -v a="$1" -v b="$2" -v t="${3:-0.000001}" 'BEGIN {d = a - b; if (d < 0) d = -d; print (a != "" && d <= t) ? "yes" : "no (" a " vs " b ")"}'; }
kvstat() { req "$1" GET /_mock/stats >/dev/null; jqb "$2"; }
ttft_sum() { req "$1" GET /metrics >/dev/null; mval "vllm:time_to_first_token_seconds_sum{model_name=\"$2\"}"; }

LONG=$(words w 2000)
LONG2=$(words v 2000)
expect "--kv-sim refuses a cache smaller than --max-model-len" \
    "$("$BIN" --port 0 --kv-sim --kv-blocks 4 >/dev/null 2>&1; echo $?)" 2

# Two engines at 10x real time, and one at real time for the time-scale check.
start_mock s --port 0 --port 0 --model sm --kv-sim --time-scale 0.1
S=${PORTS_s[0]}
S2=${PORTS_s[1]}
expect "kv-sim: stats start empty" \
    "$(kvstat "$S" '[.kv_sim,.prefix_query_tokens,.prefix_hit_tokens,.kv_blocks_used,.kv_blocks_total,.evictions]|join(",")')" \
    "true,0,0,0,2048,0"
req "$S" GET /metrics >/dev/null
expect "cache_config_info: block size, capacity, prefix caching on" \
    "$(grep -c '^vllm:cache_config_info{block_size="16",.*enable_prefix_caching="True",.*num_gpu_blocks="2048",.*} 1.0$' "$TMP/body")" 1

expect "kv-sim: a long completion is 200" \
    "$(req "$S" POST /v1/completions "{\"prompt\":\"$LONG\",\"max_tokens\":1}")" 200
expect "its usage follows the tokenizer (BOS + 2000 words)" "$(jqb .usage.prompt_tokens)" 2001
t1=$(ttft_sum "$S" sm)
expect "cold: every prompt token queried, none hit" \
    "$(kvstat "$S" '[.prefix_query_tokens,.prefix_hit_tokens]|join(",")')" "2001,0"
# 8 ms step + 0.35 ms for one sequence + 2001 tokens x 63 us, in simulated time.
expect "cold TTFT is the step model (8 + 0.35 + 2001 x 0.063 ms)" "$(near "$t1" 0.134413)" yes
req "$S" POST /v1/completions "{\"prompt\":\"$LONG\",\"max_tokens\":1}" >/dev/null
t2=$(ttft_sum "$S" sm)
expect "repeated: every full block below the last token hits (125 x 16)" \
    "$(kvstat "$S" '[.prefix_query_tokens,.prefix_hit_tokens]|join(",")')" "4002,2000"
expect "and its TTFT drops to one token's prefill" "$(near "$(awk -v a="$t2" -v b="$t1" 'BEGIN {print a - b}')" 0.008413)" yes
req "$S" GET /metrics >/dev/null
expect "vllm:prefix_cache_queries_total / hits_total count tokens" \
    "$(mval 'vllm:prefix_cache_queries_total{model_name="sm"}') $(mval 'vllm:prefix_cache_hits_total{model_name="sm"}')" \
    "4002.0 2000.0"
expect "the other port has its own cache" \
    "$(req "$S2" POST /v1/completions "{\"prompt\":\"$LONG\",\"max_tokens\":1}" >/dev/null; kvstat "$S2" .prefix_hit_tokens)" 0
expect "POST /reset_prefix_cache is 200" "$(req "$S" POST /reset_prefix_cache)" 200
req "$S" POST /v1/completions "{\"prompt\":\"$LONG\",\"max_tokens\":1}" >/dev/null
expect "after it the same prompt misses" "$(kvstat "$S" .prefix_hit_tokens)" 2000

# Multi-turn chat: the shared system prompt plus the user role token form
# 302 leading tokens, i.e. 18 full blocks.
SYS=$(words s 300)
req "$S2" POST /v1/chat/completions "{\"messages\":[{\"role\":\"system\",\"content\":\"$SYS\"},{\"role\":\"user\",\"content\":\"first question\"}],\"max_tokens\":3}" >/dev/null
expect "chat usage: role token + words per message" "$(jqb .usage.prompt_tokens)" 304
h0=$(kvstat "$S2" .prefix_hit_tokens)
req "$S2" POST /v1/chat/completions "{\"messages\":[{\"role\":\"system\",\"content\":\"$SYS\"},{\"role\":\"user\",\"content\":\"another question here\"}],\"max_tokens\":3,\"stream\":true,\"stream_options\":{\"include_usage\":true}}" -N >/dev/null
expect "kv-sim streams: the filler text, paced by steps" \
    "$(sse_json | jq -j '.choices[0].delta.content // empty')" "tok0 tok1 tok2"
expect "kv-sim stream usage" "$(sse_json | tail -1 | jq -c '[.usage.prompt_tokens,.usage.completion_tokens]')" "[305,3]"
expect "a second conversation hits the shared system prompt's blocks" \
    "$(( $(kvstat "$S2" .prefix_hit_tokens) - h0 ))" 288
expect "kv-sim embeddings are 200" "$(req "$S2" POST /v1/embeddings '{"input":["a b","c"]}')" 200
expect "and are prefill-only sequences" "$(jqb .usage.prompt_tokens)" 5
expect "no block stays referenced once everything finished" "$(kvstat "$S2" .kv_blocks_used)" 0

# Time scaling: the same cold prefill at real time and at 10x.
start_mock t --port 0 --model sm --kv-sim
T=${PORTS_t[0]}
w1=$(curl -s -o /dev/null -w '%{time_total}' "http://127.0.0.1:$T/v1/completions" -d "{\"prompt\":\"$LONG2\",\"max_tokens\":1}" || true)
w2=$(curl -s -o /dev/null -w '%{time_total}' "http://127.0.0.1:$S/v1/completions" -d "{\"prompt\":\"$LONG2\",\"max_tokens\":1}" || true)
expect "real time: a cold 2001-token prefill takes its 134 ms" "$(awk -v t="$w1" 'BEGIN {print (t >= 0.134) ? "yes" : "no (" t ")"}')" yes
expect "--time-scale 0.1 runs it 10x faster" "$(awk -v t="$w2" 'BEGIN {print (t < 0.09) ? "yes" : "no (" t ")"}')" yes
expect "while both report the same simulated TTFT" "$(near "$(ttft_sum "$T" sm)" 0.134413)" yes
stop_mock t
stop_mock s

# Capacity: 16 blocks of 16 tokens, 2 running at most.
start_mock e --port 0 --kv-sim --kv-blocks 16 --max-model-len 256 --max-running 2
E=${PORTS_e[0]}
kvgauges() {
    req "$E" GET /metrics >/dev/null
    awk '/^vllm:(num_requests_running|num_requests_waiting)\{/ {printf "%s ", $2}' "$TMP/body"
    awk '/^vllm:kv_cache_usage_perc\{/ {print ($2 >= 0.8125) ? "full" : "room"}' "$TMP/body"
}
# 200-token prompts need 13 blocks each: the second waits for the first.
curl -s -o "$TMP/x1" "http://127.0.0.1:$E/v1/completions" -d "{\"prompt\":\"$(words x 199)\",\"max_tokens\":50}" &
c1=$!
sleep 0.05
curl -s -o "$TMP/x2" "http://127.0.0.1:$E/v1/completions" -d "{\"prompt\":\"$(words y 199)\",\"max_tokens\":50}" &
c2=$!
eventually "a request that cannot get blocks waits" "1.0 1.0 full" kvgauges
wait "$c1" "$c2" || true
expect "both complete" "$(jq -c .usage.completion_tokens "$TMP/x1" "$TMP/x2" | tr '\n' ' ')" "50 50 "
eventually "then nothing runs, waits or holds blocks" "0,0,0" kvstat "$E" '[.running,.waiting,.kv_blocks_used]|join(",")'

# Eviction, exactly: A (160 tokens = 10 blocks) is cached; A again hits 9
# blocks (the last token is always computed); B needs 10 blocks: the 6
# never-used ones, then the 4 least recently freed cached ones (A's last
# four, freed last-first); A then hits its first 6 blocks and evicts 4 of
# B's, which were freed after A's.
req "$E" POST /_mock/reset >/dev/null
A_P=$(words a 159)
B_P=$(words b 159)
hits=""
for p in "$A_P" "$A_P" "$B_P" "$A_P"; do
    before=$(kvstat "$E" .prefix_hit_tokens)
    req "$E" POST /v1/completions "{\"prompt\":\"$p\",\"max_tokens\":1}" >/dev/null
    hits="$hits $(( $(kvstat "$E" .prefix_hit_tokens) - before ))"
done
expect "LRU eviction of unreferenced blocks: hits per request" "$hits" " 0 144 0 96"
expect "evictions counted" "$(kvstat "$E" .evictions)" 8

# Preemption: two 100 + 100 token sequences need 26 blocks together.
req "$E" POST /_mock/reset >/dev/null
curl -s -o "$TMP/p1" "http://127.0.0.1:$E/v1/completions" -d "{\"prompt\":\"$(words c 99)\",\"max_tokens\":100}" &
c1=$!
curl -s -o "$TMP/p2" "http://127.0.0.1:$E/v1/completions" -d "{\"prompt\":\"$(words d 99)\",\"max_tokens\":100}" &
c2=$!
wait "$c1" "$c2" || true
expect "decode growth past capacity preempts, and both still finish" \
    "$(jq -r .choices[0].text "$TMP/p1" "$TMP/p2" | awk '{print NF}' | tr '\n' ' ')$(kvstat "$E" '.preemptions > 0')" "100 100 true"
req "$E" GET /metrics >/dev/null
expect "vllm:num_preemptions_total follows" "$(mval 'vllm:num_preemptions_total{model_name="mock-model"}' | awk '{print ($1 >= 1) ? "yes" : "no"}')" yes

# A client that leaves mid-stream frees its blocks.
curl -s -N -o /dev/null -m 0.3 "http://127.0.0.1:$E/v1/completions" -d '{"prompt":"x","max_tokens":200,"stream":true}' || true
eventually "a cancelled stream releases its sequence and blocks" "0,0,0" kvstat "$E" '[.running,.waiting,.kv_blocks_used]|join(",")'
# Many at once: all answered with their own token counts.
cpids=()
for i in 1 2 3 4 5 6; do
    curl -s -o "$TMP/m$i" "http://127.0.0.1:$E/v1/completions" -d "{\"prompt\":\"$(words "m$i" 30)\",\"max_tokens\":$((i * 3))}" &
    cpids+=($!)
done
wait "${cpids[@]}" || true
expect "concurrent requests all complete" \
    "$(for i in 1 2 3 4 5 6; do jq -r .usage.completion_tokens "$TMP/m$i"; done | tr '\n' ' ')" "3 6 9 12 15 18 "
# SIGTERM with simulated requests queued and running must still exit 0.
cpids=()
for i in 1 2 3; do
    curl -s -N -o /dev/null -m 5 "http://127.0.0.1:$E/v1/completions" -d "{\"prompt\":\"$(words z$i 150)\",\"max_tokens\":100,\"stream\":true}" &
    cpids+=($!)
done
sleep 0.2
stop_mock e
wait "${cpids[@]}" || true

echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]

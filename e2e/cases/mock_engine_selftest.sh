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
    vllm:request_success_total vllm:time_to_first_token_seconds vllm:e2e_request_latency_seconds; do
    grep -q "^# TYPE $m " "$TMP/body" || missing="$missing $m"
    grep -q "^$m[{_].*model_name=\"m1\"" "$TMP/body" || missing="$missing $m{m1}"
done
expect "every vLLM metric has TYPE and a model_name series" "$missing" ""
expect "histograms have _bucket/_sum/_count" \
    "$(grep -cE '^vllm:time_to_first_token_seconds_(bucket\{model_name="m1",le="\+Inf"\}|sum\{model_name="m1"\}|count\{model_name="m1"\})' "$TMP/body")" 3
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

echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]

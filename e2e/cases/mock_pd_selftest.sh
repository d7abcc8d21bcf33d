#!/usr/bin/env bash
# mock_pd_selftest: checks the mock engine's prefill/decode roles against
# e2e/mock/README.md "Prefill/decode roles", the contract the gateway's PD
# orchestration is written against. A prefill mock and a decode mock are
# driven with curl the way the gateway must drive real engines: the three
# decode protocols (vllm-mooncake / AIBrix, vllm-kvt staged, vllm-kvt
# batched) succeed with the right shapes, every wrong shape is refused,
# abort and expiry free KV, the counters move, a decode does not recompute
# the prompt, and a decode whose prefill is down fails promptly.
source "$(dirname "$0")/../lib.sh"

P=$(free_port)   # prefill, --engine-id pf-1
D=$(free_port)   # decode: a full prefill would take 2 s, a KV pull takes 300 ms
PX=$(free_port)  # prefill with a 1 s KV TTL
B=$(free_port)   # plain engine (--pd-role both)
KP=$(free_port)  # --kv-sim prefill
KD=$(free_port)  # --kv-sim decode
DOWN=$(free_port)
start_mock p "$P" --pd-role prefill --engine-id pf-1 --ttft-ms 20 --itl-ms 2 --log-level info
start_mock d "$D" --pd-role decode --ttft-ms 2000 --itl-ms 5 --kv-transfer-ms 300 --log-level info
start_mock px "$PX" --pd-role prefill --kv-ttl-ms 1000 --ttft-ms 1 --itl-ms 1
start_mock b "$B" --ttft-ms 1 --itl-ms 1
start_mock kp "$KP" --pd-role prefill --kv-sim
start_mock kd "$KD" --pd-role decode --kv-sim --kv-transfer-ms 1

# post PORT PATH BODY [CURL ARGS...]: body to out.body, headers to out.hdr;
# prints the status. ptime: the same, prints "status seconds".
post() {
    local port=$1 path=$2 body=$3; shift 3
    curl -s -o "$E2E_DIR/out.body" -D "$E2E_DIR/out.hdr" -w '%{http_code}' --max-time 30 \
        -H 'Content-Type: application/json' "$@" --data-binary "$body" "http://127.0.0.1:$port$path"
}
ptime() {
    local port=$1 path=$2 body=$3; shift 3
    curl -s -o "$E2E_DIR/out.body" -D "$E2E_DIR/out.hdr" -w '%{http_code} %{time_total}' \
        --max-time 30 -H 'Content-Type: application/json' "$@" --data-binary "$body" \
        "http://127.0.0.1:$port$path"
}
get() { curl -s -o "$E2E_DIR/out.body" -w '%{http_code}' --max-time 10 "http://127.0.0.1:$1$2"; }
jb() { jq -r "$@" "$E2E_DIR/out.body" 2>/dev/null || echo "<not json>"; }
pstat() { curl -s "http://127.0.0.1:$1/_mock/stats" | jq -r ".$2"; }
# lt A B: A < B (decimals).
lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }

# A 20-word prompt: 21 tokens with the BOS, so 2 KV blocks of 16.
PROMPT='one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty'
NULLS='"do_remote_decode":true,"do_remote_prefill":false,"remote_engine_id":null,"remote_block_ids":null,"remote_host":null,"remote_port":null'

# ---- vllm-mooncake: non-stream prefill, then decode with the copied params --
code=$(post "$P" /v1/completions "{\"prompt\":\"$PROMPT\",\"max_tokens\":1,\"stream\":false,\"kv_transfer_params\":{$NULLS}}" \
    -H 'X-Request-Id: mc-1')
expect_eq "mooncake: prefill answers 200" "$code" 200
expect_eq "prefill generates one token" "$(jb .choices[0].text)" tok0
expect_eq "prefill response carries NixlConnector-style kv_transfer_params" \
    "$(jb -c .kv_transfer_params)" \
    "{\"do_remote_prefill\":true,\"do_remote_decode\":false,\"remote_engine_id\":\"pf-1\",\"remote_block_ids\":[0,1],\"remote_host\":\"127.0.0.1\",\"remote_port\":$P,\"remote_request_id\":\"mc-1\"}"
params=$(jb -c .kv_transfer_params)
expect_eq "the prefill holds one KV entry" "$(pstat "$P" kv_held)" 1
curl -sN --max-time 10 -o "$E2E_DIR/s.body" -w '%{http_code}' -H 'Content-Type: application/json' \
    -H 'X-Request-Id: mc-1' --data-binary \
    "{\"prompt\":\"$PROMPT\",\"max_tokens\":4,\"stream\":true,\"stream_options\":{\"include_usage\":true},\"kv_transfer_params\":$params}" \
    "http://127.0.0.1:$D/v1/completions" >"$E2E_DIR/code"
expect_eq "mooncake: streaming decode answers 200" "$(cat "$E2E_DIR/code")" 200
expect_eq "decode streams its own max_tokens" "$(grep -c '"text":"' "$E2E_DIR/s.body")" 4
expect_eq "decode stream ends with [DONE]" "$(grep '^data:' "$E2E_DIR/s.body" | tail -1)" "data: [DONE]"
expect_eq "the pull consumed the prefill's entry" "$(pstat "$P" kv_held)/$(pstat "$P" kv_pulled)" 0/1
expect_eq "the decode recorded the params it was sent" \
    "$(curl -s "http://127.0.0.1:$D/_mock/requests" | jq -r '.[-1].body.kv_transfer_params.remote_engine_id')" pf-1

# A second pull of the same id fails: KV is handed out once.
code=$(post "$D" /v1/completions "{\"prompt\":\"$PROMPT\",\"max_tokens\":4,\"kv_transfer_params\":$params}" -H 'X-Request-Id: mc-1')
expect_eq "a second decode of the same prefill gets 500" "$code" 500
expect_match "... saying the KV transfer failed" "$(jb .message)" 'KV transfer failed.*404'

# AIBrix's vLLM default: chat, max_tokens and max_completion_tokens 1, the
# response's params (remote_host = the prefill's IP) copied into the decode.
CHATMSG='"messages":[{"role":"user","content":"hello there prefill world"}]'
code=$(post "$P" /v1/chat/completions "{$CHATMSG,\"max_tokens\":1,\"max_completion_tokens\":1,\"stream\":false,\"kv_transfer_params\":{$NULLS}}" \
    -H 'X-Request-Id: aib-1')
expect_eq "aibrix: chat prefill answers 200" "$(jb .object)/$code" chat.completion/200
params=$(jb -c '.kv_transfer_params | .remote_host = "127.0.0.1"')
expect_eq "one block for a 5-token chat prompt" "$(jb -c .kv_transfer_params.remote_block_ids)" "[0]"
code=$(post "$D" /v1/chat/completions "{$CHATMSG,\"max_tokens\":3,\"kv_transfer_params\":$params}" -H 'X-Request-Id: aib-1')
expect_eq "aibrix: chat decode answers 200 with its own max_tokens" "$code/$(jb .usage.completion_tokens)" 200/3

# Request ids outside [A-Za-z0-9] survive the URL of the pull.
code=$(post "$P" /v1/completions "{\"prompt\":\"odd id\",\"max_tokens\":1,\"kv_transfer_params\":{\"do_remote_decode\":true}}" \
    -H 'X-Request-Id: odd/id+%20 x?y')
params=$(jb -c .kv_transfer_params)
expect_eq "remote_request_id is the X-Request-Id verbatim" "$(jb .kv_transfer_params.remote_request_id)" 'odd/id+%20 x?y'
code=$(post "$D" /v1/completions "{\"prompt\":\"odd id\",\"max_tokens\":2,\"kv_transfer_params\":$params}")
expect_eq "a decode pulls an id with / + % space and ? (no header needed)" "$code" 200

# ---- vllm-kvt staged: stream prefill, decode with do_remote_prefill --------
curl -sN --max-time 10 -o "$E2E_DIR/s.body" -H 'Content-Type: application/json' -H 'X-Request-Id: kvt-1' \
    --data-binary "{\"prompt\":\"$PROMPT\",\"max_tokens\":1,\"stream\":true,\"request_id\":\"kvt-1\",\"kv_transfer_params\":{\"do_remote_decode\":true}}" \
    "http://127.0.0.1:$P/v1/completions"
expect_eq "kvt staged: the prefill streams one token" "$(grep -c '"text":"tok0"' "$E2E_DIR/s.body")" 1
expect_eq "... then [DONE]" "$(grep '^data:' "$E2E_DIR/s.body" | tail -1)" "data: [DONE]"
expect_eq "... and no kv_transfer_params in the stream" "$(grep -c kv_transfer_params "$E2E_DIR/s.body")" 0
code=$(post "$D" /v1/completions "{\"prompt\":\"$PROMPT\",\"max_tokens\":5,\"stream\":false,\"request_id\":\"kvt-1\",\"kv_transfer_params\":{\"do_remote_prefill\":true,\"remote_host\":\"127.0.0.1\",\"remote_port\":$P}}" \
    -H 'X-Request-Id: kvt-1')
expect_eq "kvt staged: decode with the same X-Request-Id answers 200" "$code/$(jb .usage.completion_tokens)" 200/5
# A chat stream prefill: the KV exists once its one token was sent.
curl -sN --max-time 10 -o "$E2E_DIR/s.body" -H 'Content-Type: application/json' -H 'X-Request-Id: kvt-c' \
    --data-binary "{$CHATMSG,\"max_tokens\":1,\"stream\":true,\"kv_transfer_params\":{\"do_remote_decode\":true}}" \
    "http://127.0.0.1:$P/v1/chat/completions"
expect_eq "kvt staged: a chat prefill streams one token" "$(grep -c '"content":"tok0"' "$E2E_DIR/s.body")" 1
code=$(post "$D" /v1/chat/completions "{$CHATMSG,\"max_tokens\":2,\"kv_transfer_params\":{\"do_remote_prefill\":true,\"remote_host\":\"127.0.0.1\",\"remote_port\":$P}}" \
    -H 'X-Request-Id: kvt-c')
expect_eq "kvt staged: the chat decode answers 200" "$code/$(jb .usage.completion_tokens)" 200/2
# Without the header the decode goes by the body's request_id.
curl -sN --max-time 10 -o /dev/null -H 'Content-Type: application/json' \
    --data-binary "{\"prompt\":\"x\",\"max_tokens\":1,\"stream\":true,\"request_id\":\"kvt-2\",\"kv_transfer_params\":{\"do_remote_decode\":true}}" \
    "http://127.0.0.1:$P/v1/completions"
code=$(post "$D" /v1/completions "{\"prompt\":\"x\",\"max_tokens\":2,\"request_id\":\"kvt-2\",\"kv_transfer_params\":{\"do_remote_prefill\":true,\"remote_host\":\"127.0.0.1\",\"remote_port\":$P}}")
expect_eq "kvt staged: the body's request_id names the KV without a header" "$code" 200

# ---- vllm-kvt batched: decode only, the prefill computes on demand ----------
before=$(curl -s "http://127.0.0.1:$P/_mock/requests" | jq length)
held=$(pstat "$P" kv_held)
code=$(post "$D" /v1/completions "{\"prompt\":\"$PROMPT\",\"max_tokens\":3,\"request_id\":\"bat-1\",\"kv_transfer_params\":{\"remote_host\":\"127.0.0.1\",\"remote_port\":$P}}" \
    -H 'X-Request-Id: bat-1')
expect_eq "kvt batched: decode answers 200" "$code/$(jb .usage.completion_tokens)" 200/3
expect_eq "the prefill computed once" "$(pstat "$P" kv_computed)" 1
expect_eq "... holds nothing more" "$(pstat "$P" kv_held)" "$held"
expect_eq "... and got no gateway request" "$(curl -s "http://127.0.0.1:$P/_mock/requests" | jq length)" "$before"
code=$(post "$P" /_mock/kv/compute '{"request_id":"c-1","prompt_tokens":40}')
expect_eq "compute answers like a pull" "$code/$(jb -c .block_ids)/$(jb .prompt_tokens)/$(jb .engine_id)" "200/[0,1,2]/40/pf-1"
expect_eq "compute with a bad body is 400" "$(post "$P" /_mock/kv/compute '{"request_id":"c-1"}')" 400

# ---- refusals ---------------------------------------------------------------
rej_p=$(pstat "$P" pd_rejected)
rej_d=$(pstat "$D" pd_rejected)
code=$(post "$D" /v1/completions "{\"prompt\":\"$PROMPT\",\"max_tokens\":3}")
expect_eq "decode without kv_transfer_params is 400" "$code" 400
expect_eq "... in vLLM's error shape" "$(jb .object)/$(jb .type)/$(jb .code)" error/BadRequestError/400
expect_match "... naming the problem" "$(jb .message)" 'kv_transfer_params'
code=$(post "$D" /v1/completions "{\"prompt\":\"a\",\"kv_transfer_params\":{\"remote_host\":\"127.0.0.1\"}}")
expect_match "decode without remote_port is 400 naming it" "$code $(jb .message)" '^400 .*remote_port'
code=$(post "$D" /v1/completions "{\"prompt\":\"a\",\"kv_transfer_params\":{$NULLS}}")
expect_match "the prefill's template sent to a decode is 400" "$code $(jb .message)" '^400 .*do_remote_decode'
code=$(post "$D" /v1/completions "{\"prompt\":\"a\",\"kv_transfer_params\":{\"remote_engine_id\":\"pf-1\",\"remote_host\":\"127.0.0.1\",\"remote_port\":$P}}" -H 'X-Request-Id: z')
expect_match "remote_engine_id without remote_block_ids is 400" "$code $(jb .message)" '^400 .*remote_block_ids'
code=$(post "$D" /v1/completions "{\"prompt\":\"a\",\"kv_transfer_params\":{\"do_remote_prefill\":true,\"remote_host\":\"127.0.0.1\",\"remote_port\":$P}}")
expect_match "kvt staged decode without any request id is 400" "$code $(jb .message)" '^400 .*request id'
expect_eq "decode counts its protocol refusals" "$(( $(pstat "$D" pd_rejected) - rej_d ))" 5

fails=$(pstat "$D" kv_pull_failed)
code=$(post "$D" /v1/completions "{\"prompt\":\"a\",\"kv_transfer_params\":{\"do_remote_prefill\":true,\"remote_host\":\"127.0.0.1\",\"remote_port\":$P}}" \
    -H 'X-Request-Id: never-prefilled')
expect_eq "decode naming an id the prefill never saw gets 500" "$code/$(jb .type)" 500/InternalServerError
expect_match "... saying the KV transfer failed" "$(jb .message)" 'KV transfer failed'

code=$(post "$P" /v1/completions "{\"prompt\":\"$PROMPT\",\"max_tokens\":5,\"kv_transfer_params\":{\"do_remote_decode\":true}}")
expect_match "prefill with max_tokens 5 is 400 naming max_tokens" "$code $(jb .message)" '^400 .*max_tokens.*5'
code=$(post "$P" /v1/completions "{\"prompt\":\"$PROMPT\",\"kv_transfer_params\":{\"do_remote_decode\":true}}")
expect_match "prefill without max_tokens is 400" "$code $(jb .message)" '^400 .*max_tokens'
code=$(post "$P" /v1/completions "{\"prompt\":\"$PROMPT\",\"max_tokens\":1}")
expect_match "prefill without kv_transfer_params is 400" "$code $(jb .message)" '^400 .*do_remote_decode'
code=$(post "$P" /v1/completions "{\"prompt\":\"$PROMPT\",\"max_tokens\":1,\"kv_transfer_params\":{\"do_remote_decode\":false}}")
expect_match "prefill with do_remote_decode false is 400" "$code $(jb .message)" '^400 .*do_remote_decode'
code=$(post "$P" /v1/chat/completions "{$CHATMSG,\"max_tokens\":1,\"max_completion_tokens\":4,\"kv_transfer_params\":{\"do_remote_decode\":true}}")
expect_match "chat prefill: max_completion_tokens wins over max_tokens (vLLM)" "$code $(jb .message)" '^400 .*not 4'
code=$(post "$P" /v1/completions "{\"prompt\":\"a\",\"max_tokens\":1,\"kv_transfer_params\":{\"do_remote_prefill\":true,\"remote_host\":\"127.0.0.1\",\"remote_port\":$D}}")
expect_match "a decode request sent to a prefill is 400" "$code $(jb .message)" '^400 .*do_remote_prefill'
expect_eq "prefill counts its protocol refusals" "$(( $(pstat "$P" pd_rejected) - rej_p ))" 6
expect_eq "refused prefills registered nothing" "$(pstat "$P" kv_held)" 0

# Block ids that do not match the prefill's.
post "$P" /v1/completions "{\"prompt\":\"$PROMPT\",\"max_tokens\":1,\"kv_transfer_params\":{\"do_remote_decode\":true}}" -H 'X-Request-Id: mis-1' >/dev/null
params=$(jb -c '.kv_transfer_params | .remote_block_ids = [0, 7]')
code=$(post "$D" /v1/completions "{\"prompt\":\"$PROMPT\",\"kv_transfer_params\":$params}")
expect_match "remote_block_ids that differ from the prefill's: 500" "$code $(jb .message)" '^500 .*KV transfer failed.*block 1'

# engine_id must match (409) and a mismatch leaves the entry in place.
post "$P" /v1/completions "{\"prompt\":\"$PROMPT\",\"max_tokens\":1,\"kv_transfer_params\":{\"do_remote_decode\":true}}" -H 'X-Request-Id: eng-1' >/dev/null
params=$(jb -c .kv_transfer_params)
expect_eq "a pull naming another engine_id is 409" "$(get "$P" '/_mock/kv/eng-1?engine_id=pf-2')" 409
code=$(post "$D" /v1/completions "{\"prompt\":\"$PROMPT\",\"kv_transfer_params\":$(jq -c '.remote_engine_id = "pf-2"' <<<"$params")}")
expect_match "a decode naming the wrong remote_engine_id: 500 with the 409" "$code $(jb .message)" '^500 .*409'
expect_eq "... and the entry stays for the right one" "$(post "$D" /v1/completions "{\"prompt\":\"$PROMPT\",\"max_tokens\":1,\"kv_transfer_params\":$params}")" 200
expect_eq "decode counts its failed pulls" "$(( $(pstat "$D" kv_pull_failed) - fails ))" 3

# The pull endpoint itself.
post "$P" /v1/completions "{\"prompt\":\"$PROMPT\",\"max_tokens\":1,\"kv_transfer_params\":{\"do_remote_decode\":true}}" -H 'X-Request-Id: raw-1' >/dev/null
expect_eq "GET /_mock/kv/<id> answers the entry" "$(get "$P" /_mock/kv/raw-1)/$(jb -c .)" '200/{"engine_id":"pf-1","block_ids":[0,1],"prompt_tokens":21}'
expect_eq "... once" "$(get "$P" /_mock/kv/raw-1)" 404
expect_eq "/_mock/kv/compute answers 405 to GET" "$(get "$P" /_mock/kv/compute)" 405
expect_eq "a decode has no /_mock/kv" "$(get "$D" /_mock/kv/raw-1)/$(post "$D" /_mock/kv/compute '{"request_id":"a","prompt_tokens":1}')" 404/404
expect_eq "a decode has no /abort_request" "$(post "$D" /abort_request '{"rid":"a"}')" 404

# ---- abort frees an entry -----------------------------------------------------
post "$P" /v1/completions "{\"prompt\":\"$PROMPT\",\"max_tokens\":1,\"kv_transfer_params\":{\"do_remote_decode\":true}}" -H 'X-Request-Id: ab-1' >/dev/null
params=$(jb -c .kv_transfer_params)
expect_eq "abort_request frees the entry" "$(post "$P" /abort_request '{"rid":"ab-1"}')/$(jb -c .)" '200/{"success":true}'
expect_eq "the gateway's abort is recorded" "$(curl -s "http://127.0.0.1:$P/_mock/requests" | jq -r '.[-1] | .path + " " + .body.rid')" "/abort_request ab-1"
expect_eq "a second abort is 404" "$(post "$P" /abort_request '{"rid":"ab-1"}')/$(jb .success)" 404/false
expect_eq "abort without rid is 400" "$(post "$P" /abort_request '{}')" 400
expect_eq "a decode after the abort gets 500" "$(post "$D" /v1/completions "{\"prompt\":\"$PROMPT\",\"kv_transfer_params\":$params}")" 500

# ---- expiry -------------------------------------------------------------------
post "$PX" /v1/completions "{\"prompt\":\"$PROMPT\",\"max_tokens\":1,\"kv_transfer_params\":{\"do_remote_decode\":true}}" -H 'X-Request-Id: ttl-1' >/dev/null
params=$(jb -c .kv_transfer_params)
expect_eq "engine id defaults to mock-<port>" "$(jq -r .remote_engine_id <<<"$params")" "mock-$PX"
expect_eq "before the TTL the entry is held" "$(pstat "$PX" kv_held)" 1
sleep 1.2
expect_eq "after --kv-ttl-ms it expired" "$(pstat "$PX" kv_held)/$(pstat "$PX" kv_expired)" 0/1
expect_eq "a decode of an expired prefill gets 500" "$(post "$D" /v1/completions "{\"prompt\":\"$PROMPT\",\"kv_transfer_params\":$params}")" 500

# ---- flags ----------------------------------------------------------------------
"$E2E_BIN_MOCK" --pd-role bogus >/dev/null 2>&1
expect_eq "an unknown --pd-role exits 2" "$?" 2
expect_eq "--help lists the PD flags" "$("$E2E_BIN_MOCK" --help | grep -cE -- '--(pd-role|kv-transfer-ms|kv-ttl-ms|engine-id) ')" 4

# ---- counters -------------------------------------------------------------------
expect_eq "prefill counters: registered pulled computed aborted expired held" \
    "$(curl -s "http://127.0.0.1:$P/_mock/stats" | jq -c '[.kv_registered,.kv_pulled,.kv_computed,.kv_aborted,.kv_expired,.kv_held,.pd_role,.engine_id]')" \
    '[10,9,2,1,0,0,"prefill","pf-1"]'
expect_eq "decode counters: pulled nothing, failed pulls, refusals" \
    "$(curl -s "http://127.0.0.1:$D/_mock/stats" | jq -c '[.kv_registered,.kv_held,.kv_pull_failed,.pd_rejected,.pd_role]')" \
    '[0,0,6,5,"decode"]'
curl -s -X POST "http://127.0.0.1:$P/_mock/reset" >/dev/null
expect_eq "reset zeroes the PD counters" "$(curl -s "http://127.0.0.1:$P/_mock/stats" | jq -c '[.kv_registered,.kv_pulled,.pd_rejected]')" '[0,0,0]'

# ---- timing: a decode does not recompute the prompt ------------------------------
post "$P" /v1/completions "{\"prompt\":\"$PROMPT\",\"max_tokens\":1,\"kv_transfer_params\":{\"do_remote_decode\":true}}" -H 'X-Request-Id: t-1' >/dev/null
read -r code t < <(ptime "$D" /v1/completions "{\"prompt\":\"$PROMPT\",\"max_tokens\":1,\"kv_transfer_params\":$(jb -c .kv_transfer_params)}")
expect_eq "timed decode answers 200" "$code" 200
if ! lt "$t" 0.3 && lt "$t" 1.5; then ok "decode TTFT ~ --kv-transfer-ms 300, not --ttft-ms 2000 (${t}s)"; else not_ok "decode TTFT" "took ${t}s"; fi

# ---- a decode whose prefill is down fails promptly ---------------------------------
read -r code t < <(ptime "$D" /v1/completions "{\"prompt\":\"a\",\"kv_transfer_params\":{\"do_remote_prefill\":true,\"remote_host\":\"127.0.0.1\",\"remote_port\":$DOWN}}" -H 'X-Request-Id: down-1')
expect_match "prefill down: 500 saying the KV transfer failed" "$code $(jb .message)" '^500 .*KV transfer failed'
if lt "$t" 2; then ok "prefill down: answered promptly (${t}s)"; else not_ok "prefill down answered promptly" "took ${t}s"; fi

# A client that gives up while its decode waits on a hung prefill: the
# fetch is abandoned and the request counts as cancelled, not as a failed pull.
curl -s -X POST "http://127.0.0.1:$PX/_mock/fault" -d '{"hang":true}' >/dev/null
fails=$(pstat "$D" kv_pull_failed)
cancelled=$(pstat "$D" cancelled)
curl -s -o /dev/null --max-time 1 -H 'Content-Type: application/json' \
    --data-binary "{\"prompt\":\"a\",\"request_id\":\"hung-1\",\"kv_transfer_params\":{\"remote_host\":\"127.0.0.1\",\"remote_port\":$PX}}" \
    "http://127.0.0.1:$D/v1/completions"
cancelled_more() { [ "$(pstat "$D" cancelled)" -gt "$cancelled" ]; }
eventually "a client gone during the fetch: the decode counts it cancelled" 5 cancelled_more
expect_eq "... and not as a failed pull" "$(pstat "$D" kv_pull_failed)" "$fails"
curl -s -X POST "http://127.0.0.1:$PX/_mock/fault" -d '{}' >/dev/null

# ---- both: unchanged, kv_transfer_params ignored -------------------------------------
code=$(post "$B" /v1/completions "{\"prompt\":\"a\",\"max_tokens\":3,\"kv_transfer_params\":{\"do_remote_prefill\":true}}")
expect_eq "both: kv_transfer_params ignored" "$code/$(jb .usage.completion_tokens)/$(jb .kv_transfer_params)" 200/3/null
expect_eq "both: no /_mock/kv" "$(get "$B" /_mock/kv/x)" 404
expect_eq "both: stats show the role and zeros" "$(curl -s "http://127.0.0.1:$B/_mock/stats" | jq -c '[.pd_role,.kv_registered,.pd_rejected]')" '["both",0,0]'

# ---- --kv-sim: the prefill computes the prompt, the decode only its last token --------
LONG=$(printf 'w%d ' $(seq 1 1999))   # 2000 tokens: 134.4 ms of simulated prefill
post "$KP" /v1/completions "{\"prompt\":\"$LONG\",\"max_tokens\":1,\"kv_transfer_params\":{\"do_remote_decode\":true}}" -H 'X-Request-Id: sim-1' >/dev/null
params=$(jb -c .kv_transfer_params)
expect_eq "kv-sim prefill: 125 blocks" "$(jq '.remote_block_ids | length' <<<"$params")" 125
code=$(post "$KD" /v1/completions "{\"prompt\":\"$LONG\",\"max_tokens\":2,\"kv_transfer_params\":$params}")
expect_eq "kv-sim decode answers 200" "$code" 200
pt=$(metric "http://127.0.0.1:$KP" 'vllm:time_to_first_token_seconds_sum{model_name="mock-model"}')
dt=$(metric "http://127.0.0.1:$KD" 'vllm:time_to_first_token_seconds_sum{model_name="mock-model"}')
if lt 0.13 "$pt" && lt "$dt" 0.02; then ok "kv-sim: prefill TTFT ${pt}s, decode TTFT ${dt}s (one step)"; else not_ok "kv-sim TTFTs" "prefill ${pt}s decode ${dt}s"; fi
code=$(post "$KD" /v1/completions "{\"prompt\":\"$LONG\",\"max_tokens\":2,\"kv_transfer_params\":{\"remote_host\":\"127.0.0.1\",\"remote_port\":$KP}}")
expect_eq "kv-sim: batched decode answers 200" "$code/$(pstat "$KP" kv_computed)" 200/1
pt2=$(metric "http://127.0.0.1:$KP" 'vllm:time_to_first_token_seconds_sum{model_name="mock-model"}')
if lt 0.26 "$pt2"; then ok "kv-sim: compute spent the prefill's simulated time (${pt2}s in all)"; else not_ok "kv-sim compute time" "${pt2}s"; fi

done_case

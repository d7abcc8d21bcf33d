#!/usr/bin/env bash
# One request flows end to end: mock engines <- worker <- controller (file
# discovery). Non-streaming, streaming (chunks relayed as they arrive, usage
# read from the final event), completions, embeddings, /v1/models, routing
# headers, strategy selection, and what the engines actually received.
source "$(dirname "$0")/../lib.sh"

M1=$(free_port); M2=$(free_port); W=$(free_port)
GW=http://127.0.0.1:$W
start_mock m1 "$M1" --model mock-model --ttft-ms 5 --itl-ms 2 --record-secrets
start_mock m2 "$M2" --model mock-model --ttft-ms 5 --itl-ms 2 --record-secrets
cat >"$E2E_DIR/gw.yaml" <<YAML
models:
  - name: mock-model
    endpoints:
      - address: 127.0.0.1
        port: $M1
        name: mock-a
      - address: 127.0.0.1
        port: $M2
        name: mock-b
YAML
start_controller ctl --config "$E2E_DIR/gw.yaml"
start_worker w1 "$W"
wait_http "$GW/readyz" 200 10 && ok "worker becomes ready once it holds a snapshot" || not_ok "worker ready"

# Non-streaming chat.
code=$(chat '{"model":"mock-model","messages":[{"role":"user","content":"hello there"}],"max_tokens":4}' \
    -H 'Authorization: Bearer sk-client-key' -H 'x-custom-trace: abc123')
expect_eq "non-stream chat answers 200" "$code" 200
expect_eq "non-stream body is a chat.completion" "$(body | jq -r .object)" chat.completion
expect_eq "usage passed through" "$(body | jq -r .usage.completion_tokens)" 4
expect_match "request-id header" "$(hdr request-id)" '^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$'
expect_match "target-pod header names the pod" "$(hdr target-pod)" '^mock-(a|b)$'
expect_match "target-pod-ip header" "$(hdr target-pod-ip)" "^127\.0\.0\.1:($M1|$M2)$"
expect_eq "routing-strategy defaults to random" "$(hdr routing-strategy)" random
expect_eq "x-went-into-req-headers" "$(hdr x-went-into-req-headers)" true
rid=$(hdr request-id)
pod_port=$(hdr target-pod-ip | cut -d: -f2)
last=$(mock_requests "$pod_port" | jq -c '.[-1]')
expect_eq "engine got the client's Authorization unchanged" "$(jq -r '.headers.authorization' <<<"$last")" "Bearer sk-client-key"
expect_eq "engine got custom client headers" "$(jq -r '.headers["x-custom-trace"]' <<<"$last")" abc123
expect_eq "engine got the request id" "$(jq -r '.headers["x-request-id"]' <<<"$last")" "$rid"
expect_eq "engine got the body unchanged" "$(jq -r '.body.messages[0].content' <<<"$last")" "hello there"
expect_eq "engine got the path" "$(jq -r '.path' <<<"$last")" /v1/chat/completions

# Streaming chat: SSE relayed; the client sees every chunk and [DONE].
curl -sN --max-time 20 -D "$E2E_DIR/s.hdr" -H 'Content-Type: application/json' \
    -d '{"model":"mock-model","messages":[{"role":"user","content":"stream please"}],"max_tokens":6,"stream":true,"stream_options":{"include_usage":true}}' \
    "$GW/v1/chat/completions" >"$E2E_DIR/s.body"
expect_match "stream content type" "$(tr -d '\r' <"$E2E_DIR/s.hdr" | grep -i '^content-type:')" 'text/event-stream'
expect_eq "stream ends with [DONE]" "$(grep '^data:' "$E2E_DIR/s.body" | tail -1)" "data: [DONE]"
expect_eq "stream carries 6 content chunks" "$(grep -c '"content":"[^"]' "$E2E_DIR/s.body")" 6
expect_eq "stream usage event relayed" "$(grep '"usage":{' "$E2E_DIR/s.body" | tail -1 | sed 's/^data: //' | jq -r .usage.completion_tokens)" 6
expect_match "stream response is chunked, not buffered" "$(tr -d '\r' <"$E2E_DIR/s.hdr" | grep -i '^transfer-encoding:')" chunked

# Chunks arrive as the engine produces them, not when the stream ends: with
# 500 ms between tokens, the first of 3 content chunks reaches the client at
# least 0.5 s before the last one (1 s apart at the engine).
for p in "$M1" "$M2"; do curl -s -X POST "http://127.0.0.1:$p/_mock/fault" -d '{"itl_ms":500}' >/dev/null; done
curl -sN --max-time 20 -H 'Content-Type: application/json' \
    -d '{"model":"mock-model","messages":[{"role":"user","content":"slow"}],"max_tokens":3,"stream":true}' \
    "$GW/v1/chat/completions" | while IFS= read -r line; do
    case "$line" in *'"content":"'[!\"]*) date +%s.%N ;; esac
done >"$E2E_DIR/times"
for p in "$M1" "$M2"; do curl -s -X POST "http://127.0.0.1:$p/_mock/fault" -d '{"itl_ms":2}' >/dev/null; done
expect_true "content chunks are relayed as they arrive ($(tr '\n' ' ' <"$E2E_DIR/times"))" \
    awk 'NR==1{f=$1} {l=$1} END{exit !(NR==3 && l - f > 0.5)}' "$E2E_DIR/times"

# Completions and embeddings.
code=$(chat_path /v1/completions '{"model":"mock-model","prompt":"once upon","max_tokens":3}')
expect_eq "completions answer 200" "$code" 200
expect_eq "completions body" "$(body | jq -r .object)" text_completion
code=$(chat_path /v1/embeddings '{"model":"mock-model","input":["a","b"]}')
expect_eq "embeddings answer 200" "$code" 200
expect_eq "embeddings return two vectors" "$(body | jq '.data | length')" 2

# A client's X-Request-Id is the request id end to end; a body sent without
# Content-Type still reaches the engine as JSON.
mock_clear "$M1"; mock_clear "$M2"
code=$(curl -s -o "$E2E_DIR/out.body" -D "$E2E_DIR/out.hdr" -w '%{http_code}' -H 'Content-Type:' \
    -H 'X-Request-Id: client-trace-42' --data-binary '{"model":"mock-model","messages":[{"role":"user","content":"ct"}]}' \
    "$GW/v1/chat/completions")
expect_eq "a body without Content-Type is served" "$code" 200
expect_eq "the client's X-Request-Id is the request-id" "$(hdr request-id)" client-trace-42
pod_port=$(hdr target-pod-ip | cut -d: -f2)
last=$(mock_requests "$pod_port" | jq -c '.[-1]')
expect_eq "the engine got Content-Type application/json" "$(jq -r '.headers["content-type"]' <<<"$last")" application/json
expect_eq "the engine got the client's X-Request-Id" "$(jq -r '.headers["x-request-id"]' <<<"$last")" client-trace-42

# /v1/models comes from the snapshot.
models=$(curl -s "$GW/v1/models")
expect_eq "/v1/models lists the model" "$(jq -r '.data[].id' <<<"$models")" mock-model
expect_eq "/v1/models object" "$(jq -r .object <<<"$models")" list

# least-request spreads concurrent requests: 8 slow (2 s) concurrent requests
# land 4 and 4 on the two engines.
mock_clear "$M1"; mock_clear "$M2"
for p in "$M1" "$M2"; do curl -s -X POST "http://127.0.0.1:$p/_mock/fault" -d '{"itl_ms":100}' >/dev/null; done
pids=()
for i in $(seq 1 8); do
    curl -s -o /dev/null --max-time 20 -H 'Content-Type: application/json' -H 'routing-strategy: least-request' \
        -d '{"model":"mock-model","messages":[{"role":"user","content":"x"}],"max_tokens":20}' "$GW/v1/chat/completions" &
    pids+=($!)
done
wait "${pids[@]}"
for p in "$M1" "$M2"; do curl -s -X POST "http://127.0.0.1:$p/_mock/fault" -d '{"itl_ms":2}' >/dev/null; done
expect_eq "least-request splits 8 concurrent requests evenly (m1)" "$(mock_count "$M1")" 4
expect_eq "least-request splits 8 concurrent requests evenly (m2)" "$(mock_count "$M2")" 4

# The worker's metrics count what happened.
expect_match "worker counts 200s" "$(metric "$GW" 'llmgw_worker_requests_total{model="mock-model",code="200"}')" '^[0-9]+$'
expect_eq "controller sees the worker" "$(metric "http://127.0.0.1:$CTL_HTTP" llmgw_controller_workers)" 1

# ROUTING_ALGORITHM sets the default for a second worker.
W2=$(free_port)
ROUTING_ALGORITHM=least-request start_worker w2 "$W2"
wait_http "http://127.0.0.1:$W2/readyz" 200 10
GW=http://127.0.0.1:$W2 chat '{"model":"mock-model","messages":[{"role":"user","content":"hi"}]}' >/dev/null
expect_eq "ROUTING_ALGORITHM sets the default strategy" "$(hdr routing-strategy)" least-request

done_case

#!/usr/bin/env bash
# The error contract: every bad request gets an OpenAI-shaped error with the
# right status and x-error-* header, and nothing else is disturbed (a good
# request right after each one still succeeds).
source "$(dirname "$0")/../lib.sh"

M1=$(free_port); W=$(free_port); DOWN=$(free_port)
GW=http://127.0.0.1:$W
start_mock m1 "$M1" --model mock-model --ttft-ms 1 --itl-ms 1
cat >"$E2E_DIR/gw.yaml" <<YAML
models:
  - name: mock-model
    endpoints: ["127.0.0.1:$M1"]
  - name: no-ready
    endpoints:
      - address: 127.0.0.1
        port: $M1
        ready: false
  - name: unreachable
    endpoints: ["127.0.0.1:$DOWN"]
YAML
start_controller ctl --config "$E2E_DIR/gw.yaml"
start_worker w1 "$W" --max-body-bytes 4096 --retries 1
wait_http "$GW/readyz" 200 10

GOOD='{"model":"mock-model","messages":[{"role":"user","content":"ok"}]}'
GOOD_SENT=0

mock_clear "$M1"
check_error "malformed JSON" 400 x-error-request-body-processing true '{"model":"mock-model",'
expect_eq "malformed JSON type" "$(chat '{"model":' >/dev/null; body | jq -r .error.type)" invalid_request_error
check_error "missing messages" 400 x-error-request-body-processing true '{"model":"mock-model"}'
check_error "empty messages" 400 x-error-request-body-processing true '{"model":"mock-model","messages":[]}'
check_error "body not an object" 400 x-error-request-body-processing true '[1,2,3]'
check_error "empty body" 400 x-error-request-body-processing true ''
check_error "duplicate model keys" 400 x-error-request-body-processing true '{"model":"mock-model","model":"x","messages":[{"role":"user","content":"a"}]}'
check_error "stream not a boolean" 400 x-error-request-body-processing true '{"model":"mock-model","stream":"yes","messages":[{"role":"user","content":"a"}]}'
check_error "no model" 400 x-error-no-model-in-request true '{"messages":[{"role":"user","content":"a"}]}'
check_error "unknown model" 404 x-error-no-model-backends nope '{"model":"nope","messages":[{"role":"user","content":"a"}]}'
expect_eq "unknown model code" "$(chat '{"model":"nope","messages":[{"role":"user","content":"a"}]}' >/dev/null; body | jq -r .error.code)" model_not_found
check_error "model without ready endpoints" 503 x-error-no-model-backends true '{"model":"no-ready","messages":[{"role":"user","content":"a"}]}'
check_error "unknown strategy" 400 x-error-invalid-routing-strategy true "$GOOD" -H 'routing-strategy: fastest-please'
big=$(python3 -c 'import json; print(json.dumps({"model":"mock-model","messages":[{"role":"user","content":"x"*8000}]}))')
check_error "body over the limit" 413 x-error-request-body-processing true "$big"
# The same without Content-Length (chunked upload): still 413.
code=$(printf '%s' "$big" | curl -s -o "$E2E_DIR/out.body" -D "$E2E_DIR/out.hdr" -w '%{http_code}' \
    -H 'Transfer-Encoding: chunked' -H 'Content-Type: application/json' --data-binary @- "$GW/v1/chat/completions")
expect_eq "chunked body over the limit: 413" "$code" 413
check_error "upstream unreachable" 503 x-error-routing true '{"model":"unreachable","messages":[{"role":"user","content":"a"}]}'
# Only the good requests sent after each rejected one reached the engine.
expect_eq "the engine received none of the rejected requests" \
    "$(mock_requests "$M1" | jq '[.[] | select(.body.messages[0].content != "ok")] | length')" 0
expect_eq "the engine received every good request" "$(mock_count "$M1")" "$GOOD_SENT"
expect_eq "upstream unreachable counted as connect errors" "$(metric "$GW" 'llmgw_worker_upstream_errors_total{reason="connect"}')" 1

# An upstream error payload passes through with its status: the engine
# rejects a prompt + max_tokens over its context window.
code=$(chat '{"model":"mock-model","messages":[{"role":"user","content":"a"}],"max_tokens":100000}')
expect_eq "upstream 400 passed through" "$code" 400
expect_eq "upstream error body passed through unchanged" "$(body | jq -r .object)" error
expect_eq "upstream error flagged" "$(hdr x-error-response-unknown)" true
curl -s -X POST "http://127.0.0.1:$M1/_mock/fault" -d '{"error_rate":1}' >/dev/null
code=$(chat "$GOOD")
expect_eq "upstream 500 passed through" "$code" 500
curl -s -X POST "http://127.0.0.1:$M1/_mock/fault" -d '{}' >/dev/null

# Method and path errors.
code=$(curl -s -o /dev/null -w '%{http_code}' "$GW/v1/chat/completions")
expect_eq "GET on a POST path: 405" "$code" 405
code=$(curl -s -o /dev/null -w '%{http_code}' "$GW/v2/unknown")
expect_eq "unknown path: 404" "$code" 404

done_case

#!/usr/bin/env bash
# Upstream failure handling: connect failures retried on another endpoint
# (before any byte reached the client), first-byte and idle timeouts, an
# engine that cuts a stream (clean error event), and the in-flight slot
# released on every path.
source "$(dirname "$0")/../lib.sh"

M1=$(free_port); M2=$(free_port); DOWN=$(free_port); W=$(free_port)
GW=http://127.0.0.1:$W
start_mock m1 "$M1" --model with-dead --ttft-ms 1 --itl-ms 1
start_mock m2 "$M2" --model flaky --ttft-ms 1 --itl-ms 1
cat >"$E2E_DIR/gw.yaml" <<YAML
models:
  - name: with-dead
    endpoints: ["127.0.0.1:$DOWN", "127.0.0.1:$M1"]
  - name: flaky
    endpoints: ["127.0.0.1:$M2"]
YAML
start_controller ctl --config "$E2E_DIR/gw.yaml"
start_worker w1 "$W" --retries 2 --first-byte-timeout 500ms --idle-timeout 400ms
wait_http "$GW/readyz" 200 10

# A dead endpoint never costs a client a failure: connect errors retry.
bad=0
for i in $(seq 1 20); do
    code=$(chat '{"model":"with-dead","messages":[{"role":"user","content":"a"}]}')
    [ "$code" == 200 ] || bad=$((bad + 1))
done
expect_eq "20 requests with one dead endpoint all succeed" "$bad" 0
expect_match "retries are counted" "$(metric "$GW" llmgw_worker_upstream_retries_total)" '^[1-9][0-9]*$'

# First-byte timeout: the engine hangs.
curl -s -X POST "http://127.0.0.1:$M2/_mock/fault" -d '{"hang":true}' >/dev/null
code=$(chat '{"model":"flaky","messages":[{"role":"user","content":"a"}]}')
expect_eq "a hanging engine gives 504 after the first-byte timeout" "$code" 504
expect_eq "first-byte timeout header" "$(hdr x-error-routing)" true

# Idle timeout mid-stream: tokens stop coming.
curl -s -X POST "http://127.0.0.1:$M2/_mock/fault" -d '{"hang":false,"itl_ms":2000}' >/dev/null
curl -sN --max-time 10 -H 'Content-Type: application/json' \
    -d '{"model":"flaky","messages":[{"role":"user","content":"a"}],"max_tokens":5,"stream":true}' \
    "$GW/v1/chat/completions" >"$E2E_DIR/idle.body"
expect_match "an idle stream ends with an error event" "$(grep '^data:' "$E2E_DIR/idle.body" | tail -1)" '"error"'

# The engine closes the connection mid-stream.
curl -s -X POST "http://127.0.0.1:$M2/_mock/fault" -d '{"itl_ms":1,"close_mid_stream":3}' >/dev/null
curl -sN --max-time 10 -H 'Content-Type: application/json' \
    -d '{"model":"flaky","messages":[{"role":"user","content":"a"}],"max_tokens":10,"stream":true}' \
    "$GW/v1/chat/completions" >"$E2E_DIR/cut.body"
last=$(grep '^data:' "$E2E_DIR/cut.body" | tail -1)
expect_match "a cut stream ends with a clean error event" "$last" '"type":"api_error"'
expect_eq "the error event is valid JSON" "$(sed 's/^data: //' <<<"$last" | jq -r .error.code)" upstream_error
curl -s -X POST "http://127.0.0.1:$M2/_mock/fault" -d '{}' >/dev/null

# A client that goes away mid-stream: the upstream transfer is cancelled.
curl -s -X POST "http://127.0.0.1:$M2/_mock/fault" -d '{"itl_ms":100}' >/dev/null
cancelled_before=$(curl -s "http://127.0.0.1:$M2/_mock/stats" | jq .cancelled)
curl -sN --max-time 0.5 -H 'Content-Type: application/json' \
    -d '{"model":"flaky","messages":[{"role":"user","content":"a"}],"max_tokens":50,"stream":true}' \
    "$GW/v1/chat/completions" >/dev/null
cancelled_is() { [ "$(curl -s "http://127.0.0.1:$M2/_mock/stats" | jq ".cancelled - $cancelled_before")" == "$1" ]; }
eventually "the engine saw the abandoned stream cancelled" 5 cancelled_is 1

# A client that gives up before the first byte (the engine hangs): the
# worker notices at once, not at the first-byte timeout.
curl -s -X POST "http://127.0.0.1:$M2/_mock/fault" -d '{"hang":true}' >/dev/null
W2=$(free_port)
start_worker w2 "$W2" --first-byte-timeout 60s
curl -s -o /dev/null --max-time 0.5 -H 'Content-Type: application/json' \
    -d '{"model":"flaky","messages":[{"role":"user","content":"a"}]}' "http://127.0.0.1:$W2/v1/chat/completions"
eventually "a client leaving before the first byte cancels the upstream within 5 s (first-byte timeout 60 s)" 5 cancelled_is 2
curl -s -X POST "http://127.0.0.1:$M2/_mock/fault" -d '{"itl_ms":1}' >/dev/null

# Every path released its slot exactly once: nothing is left reserved.
no_reservations() {
    [ "$(metric "$GW" llmgw_worker_endpoint_reservations)" == 0 ] &&
        [ "$(metric "http://127.0.0.1:$W2" llmgw_worker_endpoint_reservations)" == 0 ] &&
        [ "$(metric "$GW" llmgw_worker_inflight_requests)" == 0 ]
}
eventually "no endpoint slot left reserved and no request left in flight" 5 no_reservations
code=$(chat '{"model":"flaky","messages":[{"role":"user","content":"a"}]}')
expect_eq "the engine serves again after the faults" "$code" 200
done_case

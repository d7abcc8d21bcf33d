#!/usr/bin/env bash
# The 429 retry queue (--fallback-retry-queue-*, docs/traffic.md): an
# external endpoint that answers 429 a set number of times (the mock's
# fail_count knob) is retried after a backoff until it answers; past
# --fallback-retry-max-count the next fallback takes the request; a full
# queue answers 429 at once (never waits); a client that leaves while queued
# frees its place and no retry is sent for it.
source "$(dirname "$0")/../lib.sh"

X1=$(free_port); X2=$(free_port); L1=$(free_port); W1=$(free_port); W2=$(free_port)
start_mock l1 "$L1" --model m --ttft-ms 1 --itl-ms 1
start_mock x1 "$X1" --model m --ttft-ms 1 --itl-ms 1
start_mock x2 "$X2" --model m --ttft-ms 1 --itl-ms 1
cat >"$E2E_DIR/gw.yaml" <<YAML
models:
  - name: m
    endpoints: ["127.0.0.1:$L1"]
YAML
start_controller ctl --config "$E2E_DIR/gw.yaml"
fault() { curl -s -X POST "http://127.0.0.1:$1/_mock/fault" -d "$2" >/dev/null; }
reset() { curl -s -X POST "http://127.0.0.1:$1/_mock/reset" >/dev/null; }
BODY='{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":2}'
# Every request goes to x1 first; x2 is the next fallback.
start_worker w1 "$W1" --route-policy weight --fallback-retry-queue-enabled \
    --fallback-retry-max-count 3 --fallback-retry-init-delay-ms 100 --fallback-retry-max-delay-ms 400 \
    --route-config "[{\"base_url\":\"local\",\"weight\":0},
 {\"base_url\":\"http://127.0.0.1:$X1\",\"weight\":1,\"fallback\":true},
 {\"base_url\":\"http://127.0.0.1:$X2\",\"fallback\":true}]"
GW=http://127.0.0.1:$W1

# 429 twice, then 200: two retries on the same endpoint after a backoff.
reset "$X1"; reset "$X2"; fault "$X1" '{"fail_count":2,"fail_status":429}'
t0=$(date +%s%N)
code=$(chat "$BODY")
ms=$((($(date +%s%N) - t0) / 1000000))
report_failed "429 twice, queue retries" 1 "$([ "$code" == 200 ] && echo 0 || echo 1)"
expect_eq "429 x2: the client gets 200 from the same endpoint" "$code $(hdr x-llmgw-route)" "200 external-1"
expect_eq "x1 got the request 3 times" "$(mock_received "$X1")" 3
expect_eq "x2 got nothing" "$(mock_received "$X2")" 0
# The mock's 429 says Retry-After: 1, longer than the 100/200 ms backoff:
# honoured, within the 400 ms cap, so 2 x 400 ms.
expect_true "the retries waited Retry-After capped at the max delay (2 x 400 ms; took $ms ms)" \
    [ "$ms" -ge 800 ]
expect_eq "queue success counted" "$(metric "$GW" 'llmgw_worker_retry_queue_events_total{event="success"}')" 1
expect_eq "two retries fired" "$(metric "$GW" 'llmgw_worker_retry_queue_events_total{event="fired"}')" 2

# 429 more often than --fallback-retry-max-count: the next fallback.
reset "$X1"; reset "$X2"; fault "$X1" '{"fail_count":100,"fail_status":429}'
f=0
for i in 1 2 3; do
    code=$(chat "$BODY")
    [ "$code" == 200 ] || f=$((f + 1))
done
report_failed "429 beyond max-count, next fallback" 3 "$f"
expect_eq "429 beyond the retries: no client request failed" "$f" 0
expect_eq "served by the next fallback" "$(hdr x-llmgw-route)" external-2
expect_eq "x1 got 1 + 3 retries per request" "$(mock_received "$X1")" 12
expect_eq "exhaustions counted" "$(metric "$GW" 'llmgw_worker_retry_queue_events_total{event="exhausted"}')" 3

# A second worker with a one-place queue, one retry at a time, a long
# backoff and no other fallback.
start_worker w2 "$W2" --route-policy weight --fallback-retry-queue-enabled \
    --fallback-retry-queue-size 1 --fallback-retry-worker-size 1 --fallback-retry-max-count 1 \
    --fallback-retry-init-delay-ms 3000 --fallback-retry-max-delay-ms 3000 \
    --route-config "[{\"base_url\":\"http://127.0.0.1:$X1\",\"weight\":1}]"
GW=http://127.0.0.1:$W2
reset "$X1"; fault "$X1" '{"fail_count":100,"fail_status":429}'
curl -s -o "$E2E_DIR/first.body" -w '%{http_code}' --max-time 20 -H 'Content-Type: application/json' \
    -d "$BODY" "$GW/v1/chat/completions" >"$E2E_DIR/first.code" &
first=$!
waiting_is() { [ "$(metric "$GW" llmgw_worker_retry_queue_waiting)" == "$1" ]; }
eventually "the first request waits in the queue" 5 waiting_is 1
t0=$(date +%s%N)
code=$(chat "$BODY")
ms=$((($(date +%s%N) - t0) / 1000000))
expect_eq "a full queue answers 429 at once" "$code" 429
expect_true "without waiting for the queue (took $ms ms, backoff 3000)" [ "$ms" -lt 2000 ]
expect_eq "with x-error-retry-queue-full" "$(hdr x-error-retry-queue-full)" true
expect_eq "and Retry-After" "$(hdr retry-after)" 3
expect_eq "an OpenAI-shaped error" "$(body | jq -r .error.type)" rate_limit_error
expect_eq "overflow counted" "$(metric "$GW" 'llmgw_worker_retry_queue_events_total{event="overflow"}')" 1
wait "$first"
expect_eq "the queued request, still 429 after its retry, gets the endpoint's 429" "$(cat "$E2E_DIR/first.code")" 429
f=$(( ($(cat "$E2E_DIR/first.code") == 200 ? 0 : 1) + (code == 200 ? 0 : 1) ))
report_failed "full queue (size 1), 2 concurrent requests to a rate-limited endpoint, no fallback" 2 "$f"

# A client that leaves while queued: its place is freed, no retry is sent.
reset "$X1"; fault "$X1" '{"fail_count":100,"fail_status":429}'
curl -s -o /dev/null --max-time 0.5 -H 'Content-Type: application/json' -d "$BODY" "$GW/v1/chat/completions"
sleep 0.3
expect_eq "the queue is empty once the client left" "$(metric "$GW" llmgw_worker_retry_queue_waiting)" 0
sleep 3.3
expect_eq "no retry was sent for it" "$(mock_received "$X1")" 1
fault "$X1" '{}'
code=$(chat "$BODY")
expect_eq "the worker serves on" "$code" 200
done_case

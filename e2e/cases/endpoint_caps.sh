#!/usr/bin/env bash
# Per-endpoint concurrency caps (dataplane/dp_cbreaker.h), what the chart
# maps AIBrix's circuit breakers onto: --max-parallel-requests, and
# --max-host-conns + --max-pending-requests, and --max-parallel-retries.
# An endpoint at its cap is
# passed over for another one; when every endpoint is at it the request gets
# 503 x-error-upstream-overflow at once (OpenAI-shaped), and nothing else is
# disturbed: the slow requests finish, and the slots come back.
source "$(dirname "$0")/../lib.sh"

M1=$(free_port); M2=$(free_port); W1=$(free_port); W2=$(free_port)
# Slow first tokens keep requests in flight long enough to overlap.
start_mock m1 "$M1" --model slow --model solo --ttft-ms 1500 --itl-ms 1
start_mock m2 "$M2" --model slow --model retry --ttft-ms 1500 --itl-ms 1
DEAD=$(free_port) # nothing listens there: connecting fails at once
cat >"$E2E_DIR/gw.yaml" <<YAML
models:
  - name: slow
    endpoints:
      - {address: 127.0.0.1, port: $M1, name: slow-a}
      - {address: 127.0.0.1, port: $M2, name: slow-b}
  - name: solo
    endpoints:
      - {address: 127.0.0.1, port: $M1, name: solo-a}
  - name: retry
    endpoints:
      - {address: 127.0.0.1, port: $DEAD, name: dead-a}
      - {address: 127.0.0.1, port: $M2, name: retry-b}
YAML
start_controller ctl --config "$E2E_DIR/gw.yaml"
start_worker w1 "$W1" --max-parallel-requests 1
start_worker w2 "$W2" --max-host-conns 1 --max-pending-requests 1
W3=$(free_port)
start_worker w3 "$W3" --max-parallel-retries 1 --retries 1

# bg NAME PORT MODEL: a request in the background; its status, target-pod
# and x-error-upstream-overflow go to $E2E_DIR/NAME.out.
bg() {
    curl -s -o "$E2E_DIR/$1.body" -D "$E2E_DIR/$1.hdr" -w '%{http_code}' --max-time 30 \
        -H 'Content-Type: application/json' -H 'routing-strategy: random' \
        -d "{\"model\":\"$3\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":2}" \
        "http://127.0.0.1:$2/v1/chat/completions" >"$E2E_DIR/$1.code" &
}
hdr_of() { tr -d '\r' <"$E2E_DIR/$1.hdr" | awk -v n="$2" 'tolower($1)==n":" {print $2}'; }

# ---- --max-parallel-requests 1 over two endpoints ----
bg a "$W1" slow; pa=$!
sleep 0.3
bg b "$W1" slow; pb=$!
sleep 0.3
t0=$(date +%s%N)
GW=http://127.0.0.1:$W1
code=$(chat '{"model":"slow","messages":[{"role":"user","content":"hi"}],"max_tokens":2}')
ms=$((($(date +%s%N) - t0) / 1000000))
expect_eq "a third request while both endpoints hold one is refused with 503" "$code" 503
expect_eq "... x-error-upstream-overflow: true" "$(hdr x-error-upstream-overflow)" true
expect_eq "... an OpenAI-shaped error (as every 503 of the gateway)" "$(body | jq -r '.error.type + " " + .error.code')" "overloaded_error service_unavailable"
expect_match "... naming the model and the flags" "$(body | jq -r .error.message)" 'slow.*--max-parallel-requests'
expect_true "... at once, without waiting for a slot (${ms} ms)" test "$ms" -lt 1000
code=$(chat '{"model":"solo","messages":[{"role":"user","content":"hi"}],"max_tokens":2}')
expect_eq "another model's endpoint is not affected (caps are per model endpoint)" "$code" 200
wait "$pa"; wait "$pb"
expect_eq "the two in flight were served" "$(cat "$E2E_DIR/a.code") $(cat "$E2E_DIR/b.code")" "200 200"
expect_eq "... by different endpoints, whatever random drew" \
    "$(printf '%s\n%s\n' "$(hdr_of a target-pod)" "$(hdr_of b target-pod)" | sort | tr '\n' ' ')" "slow-a slow-b "
expect_eq "the slots come back: served again" \
    "$(chat '{"model":"slow","messages":[{"role":"user","content":"hi"}],"max_tokens":2}')" 200
expect_eq "llmgw_worker_upstream_overflows_total{model}" \
    "$(metric "$GW" 'llmgw_worker_upstream_overflows_total{model="slow"}') $(metric "$GW" 'llmgw_worker_upstream_overflows_total{model="solo"}')" "1 absent"
expect_eq "... and the 503s are in aibrix_gateway_requests_total" \
    "$(metric "$GW" 'aibrix_gateway_requests_total{model="slow",code="503"}')" 1

# ---- one connection + one pending request per endpoint: cap 2 ----
bg c "$W2" solo; pc=$!
bg d "$W2" solo; pd=$!
sleep 0.5
GW=http://127.0.0.1:$W2
code=$(chat '{"model":"solo","messages":[{"role":"user","content":"hi"}],"max_tokens":2}')
expect_eq "a third request beyond one connection + one pending is refused" "$code" 503
expect_eq "... x-error-upstream-overflow" "$(hdr x-error-upstream-overflow)" true
wait "$pc"; wait "$pd"
expect_eq "the connected and the pending request were both served" \
    "$(cat "$E2E_DIR/c.code") $(cat "$E2E_DIR/d.code")" "200 200"
expect_eq "... all three solo requests that were let through reached the engine" \
    "$(mock_requests "$M1" | jq '[.[] | select(.body.model=="solo")] | length')" 3
# ---- --max-parallel-retries 1: session-affinity pins each request to the
# dead endpoint first, so each needs a retry (on the slow one) ----
sid=$(printf '127.0.0.1:%s' "$DEAD" | base64)
pinned() {
    curl -s -o "$E2E_DIR/$1.body" -D "$E2E_DIR/$1.hdr" -w '%{http_code}' --max-time 30 \
        -H 'Content-Type: application/json' -H 'routing-strategy: session-affinity' -H "x-session-id: $sid" \
        -d '{"model":"retry","messages":[{"role":"user","content":"hi"}],"max_tokens":2}' \
        "http://127.0.0.1:$W3/v1/chat/completions" >"$E2E_DIR/$1.code"
}
pinned e &
pe=$!
sleep 0.5
t0=$(date +%s%N)
pinned f
ms=$((($(date +%s%N) - t0) / 1000000))
expect_eq "a second request needing a retry while one holds the only slot fails" "$(cat "$E2E_DIR/f.code")" 503
expect_eq "... as a failed connect without retries does (x-error-routing)" "$(hdr_of f x-error-routing)" true
expect_true "... at once (${ms} ms)" test "$ms" -lt 1000
wait "$pe"
expect_eq "the retried request was served by the live endpoint" \
    "$(cat "$E2E_DIR/e.code") $(hdr_of e target-pod)" "200 retry-b"
pinned g
expect_eq "the slot came back with the end of the request" "$(cat "$E2E_DIR/g.code")" 200
expect_true "the retries are counted" \
    test "$(metric "http://127.0.0.1:$W3" llmgw_worker_upstream_retries_total)" -ge 1

expect_eq "invalid values are refused at start" \
    "$("$E2E_BIN_DP" --max-parallel-requests -1 --check-config 2>&1 | grep -c 'max-parallel-requests')" 1
done_case

#!/usr/bin/env bash
# Graceful shutdown: on SIGTERM a worker stops accepting, finishes the
# streams in flight (up to --drain-timeout) and exits 0; a worker sharing
# the port (SO_REUSEPORT) takes the new connections.
source "$(dirname "$0")/../lib.sh"

M1=$(free_port); W=$(free_port)
GW=http://127.0.0.1:$W
start_mock m1 "$M1" --ttft-ms 10 --itl-ms 100
cat >"$E2E_DIR/gw.yaml" <<YAML
models:
  - name: mock-model
    endpoints: ["127.0.0.1:$M1"]
YAML
start_controller ctl --config "$E2E_DIR/gw.yaml"
start_worker w1 "$W" --drain-timeout 10s
wait_http "$GW/readyz" 200 10

# Three 2-second streams, then SIGTERM while they run.
spids=()
for i in 1 2 3; do
    curl -sN --max-time 20 -H 'Content-Type: application/json' \
        -d '{"model":"mock-model","messages":[{"role":"user","content":"long"}],"max_tokens":20,"stream":true}' \
        "$GW/v1/chat/completions" >"$E2E_DIR/stream$i" &
    spids+=($!)
done
sleep 0.5
start_worker w2 "$W"   # the replacement shares the port
wait_http "$GW/readyz" 200 10
kill -TERM "${E2E_PIDS[w1]}"
sleep 0.3
code=$(chat '{"model":"mock-model","messages":[{"role":"user","content":"new"}],"max_tokens":1}')
expect_eq "new requests during the drain are served (by the other worker)" "$code" 200
wait "${spids[@]}"
for i in 1 2 3; do
    expect_eq "in-flight stream $i finished completely" "$(grep -c '"content":"[^"]' "$E2E_DIR/stream$i")" 20
    expect_eq "in-flight stream $i ended with [DONE]" "$(grep '^data:' "$E2E_DIR/stream$i" | tail -1)" "data: [DONE]"
done
stop w1 TERM 15
expect_true "the draining worker logged its drain" grep -q 'id=DP-DRAIN ' "$E2E_DIR/w1.log"

# Past --drain-timeout the rest is ended cleanly: a stream gets an error
# event, and the worker still exits 0.
W3=$(free_port)
start_worker w3 "$W3" --drain-timeout 300ms
curl -sN --max-time 20 -H 'Content-Type: application/json' \
    -d '{"model":"mock-model","messages":[{"role":"user","content":"long"}],"max_tokens":50,"stream":true}' \
    "http://127.0.0.1:$W3/v1/chat/completions" >"$E2E_DIR/cut" &
cut_pid=$!
sleep 0.5
stop w3 TERM 10
wait "$cut_pid"
expect_match "a stream cut by the drain deadline ends with an error event" \
    "$(grep '^data:' "$E2E_DIR/cut" | tail -1)" '"error":.*shutting down'
expect_true "the deadline abort was logged" grep -q 'id=DP-DRAIN-DEADLINE' "$E2E_DIR/w3.log"
done_case

#!/usr/bin/env bash
# Traffic splitting and the mirror configured once, on the controller
# (docs/traffic.md "Where the configuration lives"): the controller refuses a
# bad --route-config naming the field; it publishes its route config and
# mirror file in the snapshot; two workers started without those flags both
# split by weight to an external base_url (with the controller's api_key) and
# both mirror; the controller's mirror file switched off stops both within a
# reload interval; a worker with its own --route-config keeps it. The api
# key never reaches a log.
source "$(dirname "$0")/../lib.sh"

L1=$(free_port); X1=$(free_port); MT=$(free_port); W1=$(free_port); W2=$(free_port)
W3=$(free_port)
start_mock l1 "$L1" --model m --ttft-ms 1 --itl-ms 1 --record-secrets
start_mock x1 "$X1" --model m --ttft-ms 1 --itl-ms 1 --record-secrets
start_mock mt "$MT" --model m --ttft-ms 1 --itl-ms 1
cat >"$E2E_DIR/gw.yaml" <<YAML
models:
  - name: m
    endpoints: ["127.0.0.1:$L1"]
YAML
KEY=sk-ctl-secret-4711
ROUTES='[{"base_url":"local","weight":50},{"base_url":"http://127.0.0.1:'$X1'/v1","api_key":"'$KEY'","weight":50}]'
MIRROR=$E2E_DIR/mirror.json
printf '{"Enable":true,"Target":"http://127.0.0.1:%s","Ratio":100,"Timeout":5000}\n' "$MT" >"$MIRROR"

# ---- a bad route config never starts the controller ------------------------
out=$("$E2E_BIN_CTL" --config "$E2E_DIR/gw.yaml" --http-port 0 --route-policy weight \
    --route-config '[{"base_url":"local","wieght":1}]' --check-config 2>&1)
rc=$?
expect_true "controller refuses a bad --route-config (rc=$rc)" [ "$rc" -ne 0 ]
expect_match "the message names the field" "$out" "--route-config\[0\]\.wieght: unknown field"
out=$("$E2E_BIN_CTL" --config "$E2E_DIR/gw.yaml" --route-policy weight --route-config "$ROUTES" \
    --print-config 2>&1)
expect_match "--print-config shows --route-config redacted" "$out" "route-config=<redacted>"
expect_true "--print-config never shows the api key" bash -c "! grep -q '$KEY' <<<'$out'"

start_controller ctl --config "$E2E_DIR/gw.yaml" --route-policy weight --route-config "$ROUTES" \
    --mirror-config-path "$MIRROR" --mirror-reload-interval 200ms
start_worker w1 "$W1"
start_worker w2 "$W2"

BODY='{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":2}'
send() { # GW N: sends N requests to GW, prints the failures
    local f=0
    for ((i = 0; i < $2; i++)); do
        [ "$(GW=$1 chat "$BODY" -H 'Authorization: Bearer client-key')" == 200 ] || f=$((f + 1))
    done
    echo "$f"
}
metric_is() { [ "$(metric "$1" "$2")" == "$3" ]; }
mt_received_is() { [ "$(mock_received "$MT")" == "$1" ]; }

# ---- both workers split and mirror alike -----------------------------------
N=100
for w in "$W1" "$W2"; do
    G=http://127.0.0.1:$w
    eventually "worker :$w mirrors by the controller's file" 5 \
        metric_is "$G" llmgw_worker_mirror_enabled 1
    f=$(send "$G" "$N")
    report_failed "controller's weight split and mirror, worker :$w" "$N" "$f"
    expect_eq "worker :$w: no client request failed" "$f" 0
    ext=$(metric "$G" 'llmgw_worker_traffic_routes_total{entry="external-1"}')
    loc=$(metric "$G" 'llmgw_worker_traffic_routes_total{entry="local"}')
    e2e_log "worker :$w split: local=$loc external=$ext of $N"
    expect_true "worker :$w splits 50/50 from the snapshot (local=$loc external=$ext)" \
        [ "${ext%.*}" -ge 25 ] && [ "${loc%.*}" -ge 25 ] && [ "$((${ext%.*} + ${loc%.*}))" -eq "$N" ]
done
expect_eq "the external base_url got the controller's api_key, not the client's" \
    "$(mock_requests "$X1" | jq -r '[.[].headers.authorization] | unique | join(",")')" "Bearer $KEY"
expect_eq "the local pool got the client's Authorization" \
    "$(mock_requests "$L1" | jq -r '[.[].headers.authorization] | unique | join(",")')" \
    "Bearer client-key"
eventually "the mirror target got a copy of all $((2 * N)) requests" 10 mt_received_is $((2 * N))

# ---- the controller's mirror file switched off ----------------------------
rm -f "$MIRROR"
for w in "$W1" "$W2"; do
    eventually "worker :$w stops mirroring within an interval" 3 \
        metric_is "http://127.0.0.1:$w" llmgw_worker_mirror_enabled 0
done
f=$(send "http://127.0.0.1:$W1" 10)
f2=$(send "http://127.0.0.1:$W2" 10)
report_failed "mirror switched off on the controller" 20 "$((f + f2))"
sleep 0.5
expect_eq "the mirror target received nothing more" "$(mock_received "$MT")" $((2 * N))

# ---- a worker's own --route-config wins ------------------------------------
start_worker w3 "$W3" --route-policy weight --route-config '[{"base_url":"local","weight":1}]'
wait_log w3 "own --route-config wins" 5 && ok "worker with its own --route-config logs that it wins" ||
    not_ok "worker with its own --route-config logs that it wins"
f=$(send "http://127.0.0.1:$W3" 10)
report_failed "worker with its own --route-config" 10 "$f"
expect_eq "its own config routes everything locally" \
    "$(metric "http://127.0.0.1:$W3" 'llmgw_worker_traffic_routes_total{entry="local"}')" 10

expect_true "the api key is in no log" bash -c "! grep -q '$KEY' '$E2E_DIR'/*.log"
done_case

#!/usr/bin/env bash
# Traffic mirror (seed 004's JSON file, docs/traffic.md): on, hot-reloaded
# off, and on again, counting what the mirror target (a mock engine)
# received; the Ratio; the Authorization override; a bad file keeps the last
# good config; a hung mirror target never delays the client, and copies over
# --mirror-max-inflight are dropped and counted.
source "$(dirname "$0")/../lib.sh"

L1=$(free_port); MT=$(free_port); W=$(free_port)
GW=http://127.0.0.1:$W
start_mock l1 "$L1" --model m --ttft-ms 1 --itl-ms 1
start_mock mt "$MT" --model m --ttft-ms 1 --itl-ms 1 --record-secrets
cat >"$E2E_DIR/gw.yaml" <<YAML
models:
  - name: m
    endpoints: ["127.0.0.1:$L1"]
YAML
start_controller ctl --config "$E2E_DIR/gw.yaml"
MIRROR=$E2E_DIR/mirror.json
start_worker w1 "$W" --mirror-config-path "$MIRROR" --mirror-reload-interval 200ms \
    --mirror-max-inflight 4
BODY='{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":2}'
send() { # N: sends N requests, prints the failures
    local f=0
    for ((i = 0; i < $1; i++)); do
        [ "$(chat "$BODY" -H 'Authorization: Bearer client-key')" == 200 ] || f=$((f + 1))
    done
    echo "$f"
}
metric_is() { [ "$(metric "$GW" "$1")" == "$2" ]; }
enabled_is() { metric_is llmgw_worker_mirror_enabled "$1"; }
mt_received_is() { [ "$(mock_received "$MT")" == "$1" ]; }
write_cfg() { # ENABLE RATIO [TIMEOUT]
    printf '{"Enable":%s,"Target":"http://127.0.0.1:%s","Ratio":%s,"Timeout":%s,"Authorization":"Bearer mirror-key","EnableLog":true}\n' \
        "$1" "$MT" "$2" "${3:-5000}" >"$MIRROR.tmp" && mv "$MIRROR.tmp" "$MIRROR"
}

expect_eq "no file: mirror off" "$(metric "$GW" llmgw_worker_mirror_enabled)" 0

# On.
write_cfg true 100
eventually "the file is picked up without a restart" 5 enabled_is 1
f=$(send 20)
report_failed "mirror on (Ratio 100)" 20 "$f"
expect_eq "mirror on: no client request failed" "$f" 0
eventually "the mirror target received all 20" 5 mt_received_is 20
expect_eq "the copy carries the configured Authorization" \
    "$(mock_requests "$MT" | jq -r '[.[].headers.authorization] | unique | join(",")')" "Bearer mirror-key"
expect_eq "the copy carries the request id the client got" \
    "$(mock_requests "$MT" | jq -r '.[-1].headers["x-request-id"]')" "$(hdr request-id)"
expect_eq "the copy is the client's body" "$(mock_requests "$MT" | jq -c '.[-1].body')" "$(jq -c . <<<"$BODY")"

# Hot-reloaded off.
write_cfg false 100
eventually "hot-reload turns the mirror off" 5 enabled_is 0
f=$(send 20)
report_failed "mirror hot-reloaded off" 20 "$f"
expect_eq "mirror off: no client request failed" "$f" 0
sleep 0.5
expect_eq "the mirror target received nothing more" "$(mock_received "$MT")" 20

# On again, at 50%.
write_cfg true 50
eventually "hot-reload turns it on again" 5 enabled_is 1
f=$(send 200)
report_failed "mirror on again (Ratio 50)" 200 "$f"
expect_eq "mirror on again: no client request failed" "$f" 0
sleep 1
got=$(($(mock_received "$MT") - 20))
e2e_log "Ratio 50: the mirror target received $got of 200"
expect_true "about half mirrored ($got of 200)" [ "$got" -ge 65 ] && [ "$got" -le 135 ]

# A bad file keeps the last good config.
echo '{"Enable":true,"Ratio":250}' >"$MIRROR.tmp" && mv "$MIRROR.tmp" "$MIRROR" # one read sees it whole
eventually "an invalid file is counted" 5 \
    metric_is 'llmgw_worker_mirror_config_reloads_total{result="invalid"}' 1
expect_eq "and the last good config stays on" "$(metric "$GW" llmgw_worker_mirror_enabled)" 1

# A hung mirror target: the client is not delayed; copies over the cap drop.
write_cfg true 100 8000
eventually "Timeout 8000 applied" 5 \
    metric_is 'llmgw_worker_mirror_config_reloads_total{result="applied"}' 4
curl -s -X POST "http://127.0.0.1:$MT/_mock/fault" -d '{"hang":true}' >/dev/null
t0=$(date +%s%N)
f=$(send 10)
ms=$((($(date +%s%N) - t0) / 1000000))
report_failed "mirror target hung" 10 "$f"
expect_eq "hung mirror: no client request failed" "$f" 0
expect_true "10 requests took $ms ms: not delayed by the mirror's 8 s timeout" [ "$ms" -lt 6000 ]
expect_eq "4 copies in flight at most" "$(metric "$GW" llmgw_worker_mirror_inflight)" 4
expect_eq "the other 6 dropped and counted" "$(metric "$GW" 'llmgw_worker_mirror_requests_total{result="dropped"}')" 6
eventually "the hung copies time out and count as failed" 15 \
    metric_is 'llmgw_worker_mirror_requests_total{result="failed"}' 4
curl -s -X POST "http://127.0.0.1:$MT/_mock/fault" -d '{}' >/dev/null
expect_true "mirror log lines carry no prompt" bash -c "! grep -q '\"hi\"' '$E2E_DIR/w1.log'"

# The file removed: mirror off.
rm -f "$MIRROR"
eventually "a removed file turns the mirror off" 5 enabled_is 0
done_case

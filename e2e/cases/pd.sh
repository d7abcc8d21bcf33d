#!/usr/bin/env bash
# Prefill/decode disaggregation (issue 8): two rolesets of mock engines that
# check the protocol (e2e/mock/README.md "Prefill/decode roles": a decode
# without valid transfer parameters from a real prefill is refused, and it
# pulls the simulated KV from the prefill). Every protocol and mode, streaming
# and not: AIBrix's vLLM default, vllm-mooncake, vllm-kvt batched and staged;
# the pair stays in one roleset; the same request id reaches both phases; a
# failed decode releases the prefill's KV, also when an external fallback
# entry then serves the request; a prefill pod that dies between its
# prefill and the decode's KV pull (the prefill is redone on another pod); a
# roleset made incomplete during traffic; a prefill pod killed mid-run; a
# prefill timeout; two workers.
source "$(dirname "$0")/../lib.sh"

PA=$(free_port); DA=$(free_port); PB=$(free_port); DB=$(free_port)
start_mock pa "$PA" --pd-role prefill --engine-id pf-a --ttft-ms 30 --record-secrets
start_mock da "$DA" --pd-role decode --kv-transfer-ms 5 --itl-ms 2
start_mock pb "$PB" --pd-role prefill --engine-id pf-b --ttft-ms 30
start_mock db "$DB" --pd-role decode --kv-transfer-ms 5 --itl-ms 2
write_config() { # DB_READY
    cat >"$E2E_DIR/gw.yaml.tmp" <<YAML
models:
  - name: mock-model
    config: {profiles: {default: {routingStrategy: pd}}}
    endpoints:
      - {address: 127.0.0.1, port: $PA, name: pa, roleset: rs-a, role: prefill}
      - {address: 127.0.0.1, port: $DA, name: da, roleset: rs-a, role: decode}
      - {address: 127.0.0.1, port: $PB, name: pb, roleset: rs-b, role: prefill}
      - {address: 127.0.0.1, port: $DB, name: db, roleset: rs-b, role: decode, ready: $1}
YAML
    mv "$E2E_DIR/gw.yaml.tmp" "$E2E_DIR/gw.yaml"
}
write_config true
start_controller ctl --config "$E2E_DIR/gw.yaml" --file-poll-interval 50ms
declare -A GWS
for mode in aibrix mooncake-staged kvt kvt-staged; do
    port=$(free_port)
    case $mode in
    aibrix) args=() ;;
    mooncake-staged) args=(--pd-disagg-protocol vllm-mooncake --separate-pd-scheduling) ;;
    kvt) args=(--pd-disagg-protocol vllm-kvt) ;;
    kvt-staged) args=(--pd-disagg-protocol vllm-kvt --separate-pd-scheduling) ;;
    esac
    start_worker "w-$mode" "$port" --access-log off "${args[@]}"
    GWS[$mode]=http://127.0.0.1:$port
done
REQ='{"model":"mock-model","messages":[{"role":"user","content":"tell me about the sea"}],"max_tokens":6}'
SREQ='{"model":"mock-model","messages":[{"role":"user","content":"tell me about the sea"}],"max_tokens":6,"stream":true}'
mstat() { curl -s "http://127.0.0.1:$1/_mock/stats" | jq -r ".$2"; }
redone() { metric "$1" llmgw_worker_pd_redone_total | sed 's/absent/0/'; }
same_roleset() { # PREFILL_POD DECODE_POD
    [ "${1#p}" == "${2#d}" ]
}

# ---- every protocol and mode, streaming and not ------------------------------------
for mode in aibrix mooncake-staged kvt kvt-staged; do
    GW=${GWS[$mode]}
    for p in "$PA" "$DA" "$PB" "$DB"; do mock_clear "$p"; done
    expect_eq "$mode: a plain request" "$(chat "$REQ" -H 'X-Request-Id: rq-'"$mode")" 200
    expect_eq "$mode: six tokens from the decode" "$(body | jq -r '.usage.completion_tokens')" 6
    pre=$(hdr prefill-target-pod); dec=$(hdr target-pod)
    expect_true "$mode: prefill ($pre) and decode ($dec) share a roleset" same_roleset "$pre" "$dec"
    expect_match "$mode: prefill-target-pod-ip" "$(hdr prefill-target-pod-ip)" '^127\.0\.0\.1:[0-9]+$'
    dport=$([ "$dec" == da ] && echo "$DA" || echo "$DB")
    pport=$([ "$pre" == pa ] && echo "$PA" || echo "$PB")
    expect_eq "$mode: the decode got the request id" \
        "$(mock_requests "$dport" | jq -r '.[-1].headers["x-request-id"]')" "rq-$mode"
    if [ "$mode" == kvt ]; then
        expect_eq "kvt batched: the gateway sent the prefill nothing" "$(mock_count "$pport")" 0
        expect_eq "kvt batched: the decode points at the prefill" \
            "$(mock_requests "$dport" | jq -r '.[-1].body.kv_transfer_params.remote_port')" "$pport"
    else
        expect_eq "$mode: the prefill got the same request id" \
            "$(mock_requests "$pport" | jq -r '.[-1].headers["x-request-id"]')" "rq-$mode"
        expect_eq "$mode: the prefill asked for one token" \
            "$(mock_requests "$pport" | jq -r '.[-1].body.max_tokens')" 1
    fi
    expect_eq "$mode: streaming" "$(chat "$SREQ" -N)" 200
    expect_eq "$mode: the stream is whole" "$(grep -c '^data: \[DONE\]' "$E2E_DIR/out.body")" 1
    expect_true "$mode: at least six events" test "$(grep -c '^data: {' "$E2E_DIR/out.body")" -ge 6
done
expect_eq "no KV left behind" "$(( $(mstat "$PA" kv_held) + $(mstat "$PB" kv_held) ))" 0
expect_eq "no decode refused a shape" "$(( $(mstat "$DA" pd_rejected) + $(mstat "$DB" pd_rejected) ))" 0

# ---- two workers, concurrent load ---------------------------------------------------
W2=$(free_port)
start_worker w-aibrix-2 "$W2" --access-log off
export REQ
burst() { # URL: 40 requests, 8 at a time; prints status and body of each
    seq 1 40 | xargs -P 8 -I{} sh -c 'curl -s -w " %{http_code}\n" -H "Content-Type: application/json" \
        --data-binary "$REQ" "$0/v1/chat/completions"' "$1"
}
burst "${GWS[aibrix]}" >"$E2E_DIR/burst.out" &
first=$!
burst "http://127.0.0.1:$W2" >"$E2E_DIR/burst2.out"
wait "$first"
cat "$E2E_DIR/burst2.out" >>"$E2E_DIR/burst.out"
expect_eq "80 concurrent requests over two workers, all 200" "$(grep -c ' 200$' "$E2E_DIR/burst.out")" 80
grep -v ' 200$' "$E2E_DIR/burst.out" | head -3 | while read -r l; do e2e_log "not 200: $l"; done
expect_true "both rolesets served (a: $(mstat "$PA" kv_pulled), b: $(mstat "$PB" kv_pulled))" \
    test "$(mstat "$PA" kv_pulled)" -gt 0 -a "$(mstat "$PB" kv_pulled)" -gt 0

# ---- a failed decode releases the prefill's KV ---------------------------------------
GW=${GWS[aibrix]}
curl -s -X POST "http://127.0.0.1:$DA/_mock/fault" -d '{"error_rate":1}' >/dev/null
curl -s -X POST "http://127.0.0.1:$DB/_mock/fault" -d '{"error_rate":1}' >/dev/null
aborted=$(( $(mstat "$PA" kv_aborted) + $(mstat "$PB" kv_aborted) ))
r0=$(redone "$GW")
expect_eq "a decode that fails is the engine's 500" "$(chat "$REQ")" 500
expect_eq "... after the prefill was redone once on the other roleset's prefill" \
    "$(( $(redone "$GW") - r0 ))" 1
released() { [ "$(( $(mstat "$PA" kv_aborted) + $(mstat "$PB" kv_aborted) ))" -ge "$((aborted + 2))" ]; }
eventually "both prefills' KV is released (abort_request)" 3 released
# The failed decode moves to an external fallback entry (--route-config),
# which answers: the prefill's KV is released all the same.
XF=$(free_port); WF=$(free_port)
start_mock xf "$XF" --ttft-ms 1 --itl-ms 1
start_worker w-fallback "$WF" --access-log off --route-policy weight --route-config \
    "[{\"base_url\":\"local\",\"weight\":1},{\"base_url\":\"http://127.0.0.1:$XF\",\"weight\":0,\"fallback\":true}]"
GW=http://127.0.0.1:$WF
aborted=$(( $(mstat "$PA" kv_aborted) + $(mstat "$PB" kv_aborted) ))
expect_eq "a failed decode served by the fallback entry" "$(chat "$REQ") $(hdr x-llmgw-route)" "200 external-1"
eventually "the prefill's KV is released when the fallback serves (abort_request)" 3 released
expect_eq "the fallback entry got the client's body, without kv_transfer_params" \
    "$(mock_requests "$XF" | jq -c '.[-1].body | [has("kv_transfer_params"), .max_tokens]')" '[false,6]'
stop w-fallback; stop xf
GW=${GWS[aibrix]}
curl -s -X POST "http://127.0.0.1:$DA/_mock/fault" -d '{}' >/dev/null
curl -s -X POST "http://127.0.0.1:$DB/_mock/fault" -d '{}' >/dev/null

# ---- a prefill pod dies between its prefill and the decode's KV pull ------------------
# The decodes wait 3 s before pulling (slow_ms); the prefill pod that
# answered is killed in that window, so the decode's pull fails (500). The
# worker redoes the prefill on the other pod and the client gets its answer.
GW=${GWS[aibrix]}
for p in "$DA" "$DB"; do curl -s -X POST "http://127.0.0.1:$p/_mock/fault" -d '{"slow_ms":3000}' >/dev/null; done
r0=$(redone "$GW")
logged0=$(grep -c 'id=DP-PD-REDO' "$E2E_DIR/w-aibrix.log")
pulls_before=$(( $(mstat "$DA" kv_pull_failed) + $(mstat "$DB" kv_pull_failed) ))
reg_a=$(mstat "$PA" kv_registered); reg_b=$(mstat "$PB" kv_registered)
(chat "$REQ" >"$E2E_DIR/redo.code") &
client=$!
victim=""
for ((i = 0; i < 100; i++)); do
    [ "$(mstat "$PA" kv_registered)" -gt "$reg_a" ] && victim=pa
    [ "$(mstat "$PB" kv_registered)" -gt "$reg_b" ] && victim=pb
    [ -n "$victim" ] && break
    sleep 0.05
done
expect_match "a prefill answered" "$victim" '^p[ab]$'
[ -n "$victim" ] && stop "$victim" KILL
wait "$client"
expect_eq "the decode's pull from the killed prefill failed" \
    "$(( $(mstat "$DA" kv_pull_failed) + $(mstat "$DB" kv_pull_failed) - pulls_before ))" 1
expect_eq "the client still gets 200" "$(cat "$E2E_DIR/redo.code")" 200
expect_true "from the other prefill ($(hdr prefill-target-pod))" test "$(hdr prefill-target-pod)" != "$victim"
expect_eq "the worker redid the prefill once (llmgw_worker_pd_redone_total)" "$(( $(redone "$GW") - r0 ))" 1
expect_eq "and logged it" "$(( $(grep -c 'id=DP-PD-REDO' "$E2E_DIR/w-aibrix.log") - logged0 ))" 1
for p in "$DA" "$DB"; do curl -s -X POST "http://127.0.0.1:$p/_mock/fault" -d '{}' >/dev/null; done
case $victim in
pa) start_mock pa "$PA" --pd-role prefill --engine-id pf-a --ttft-ms 30 --record-secrets ;;
pb) start_mock pb "$PB" --pd-role prefill --engine-id pf-b --ttft-ms 30 ;;
esac

# ---- a roleset made incomplete during traffic -----------------------------------------
write_config false
only_a() {
    local c
    c=$(chat "$REQ")
    [ "$c" == 200 ] && [ "$(hdr prefill-target-pod)" == pa ] && [ "$(hdr target-pod)" == da ]
}
eventually "with db not ready, rs-b is skipped: pairs come from rs-a" 3 only_a
ok_all=0
for _ in $(seq 1 10); do only_a && ok_all=$((ok_all + 1)); done
expect_eq "and keep coming from rs-a" "$ok_all" 10
write_config true

# ---- a prefill pod killed mid-run -----------------------------------------------------
sleep 0.5 # db ready again (the file is polled every 50 ms)
r0=$(redone "$GW")
pulls_before=$(( $(mstat "$DA" kv_pull_failed) + $(mstat "$DB" kv_pull_failed) ))
(seq 1 40 | xargs -P 4 -I{} sh -c 'curl -s -o /dev/null -w "%{http_code}\n" --max-time 20 \
    -H "Content-Type: application/json" --data-binary "$REQ" "$0/v1/chat/completions"' "$GW" >"$E2E_DIR/kill.codes") &
load=$!
sleep 0.3
stop pa KILL
wait "$load"
# A request whose prefill had finished on pa when it died fails at the
# decode's KV pull and is redone on pb; one whose prefill was running on pa
# is retried on pb. The client sees neither.
pulls_failed=$(( $(mstat "$DA" kv_pull_failed) + $(mstat "$DB" kv_pull_failed) - pulls_before ))
expect_true "at most the 4 requests in flight lost their KV with pa ($pulls_failed)" test "$pulls_failed" -le 4
expect_eq "each of those was redone on pb" "$(( $(redone "$GW") - r0 ))" "$pulls_failed"
expect_eq "pa killed under load: all 40 requests answered 200" "$(grep -c '^200$' "$E2E_DIR/kill.codes")" 40
report_failed "pd: a prefill pod SIGKILLed under load ($pulls_failed KV pulls failed, redone)" 40 \
    $((40 - $(grep -c '^200$' "$E2E_DIR/kill.codes")))
expect_match "the failed prefills are counted" \
    "$(metric "$GW" 'llmgw_worker_pd_prefill_requests_total{result="connect"}')" '^([1-9][0-9]*|absent)$'

# ---- a prefill timeout -----------------------------------------------------------------
WT=$(free_port)
start_worker w-timeout "$WT" --access-log off --prefill-request-timeout 1
curl -s -X POST "http://127.0.0.1:$PB/_mock/fault" -d '{"hang":true}' >/dev/null
GW=http://127.0.0.1:$WT
t0=$(date +%s%N)
expect_eq "every prefill hangs: 503 once the prefill timeout passed" "$(chat "$REQ")" 503
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
expect_eq "with x-error-routing" "$(hdr x-error-routing)" true
expect_true "within the timeout and a little ($ms ms)" test "$ms" -ge 900 -a "$ms" -le 3000
expect_true "logged as pd-prefill-request-error" grep -q 'id=pd-prefill-request-error' "$E2E_DIR/w-timeout.log"
curl -s -X POST "http://127.0.0.1:$PB/_mock/fault" -d '{}' >/dev/null
expect_eq "the worker serves again" "$(chat "$REQ")" 200

done_case

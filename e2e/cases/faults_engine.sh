#!/usr/bin/env bash
# Engine faults while traffic flows (issue 11, DESIGN §7), counting every
# client request: an engine SIGKILLed mid-stream (only its in-flight
# requests fail, each cleanly; passive ejection; it returns once it serves
# again), an engine that hangs (first-byte timeouts, ejection: its share of
# traffic drops to one probe per ejection). A worker SIGKILLed is
# worker_kill.sh. Each fault prints a "TABLE |" line: fault | sent | failed |
# expected failures.
source "$(dirname "$0")/../lib.sh"

M1=$(free_port); M2=$(free_port); M3=$(free_port); W=$(free_port)
GW=http://127.0.0.1:$W
C=6 # concurrent clients
for m in m1:$M1 m2:$M2 m3:$M3; do start_mock "${m%%:*}" "${m#*:}" --ttft-ms 5 --itl-ms 20; done
cat >"$E2E_DIR/gw.yaml" <<YAML
models:
  - name: mock-model
    endpoints: ["127.0.0.1:$M1", "127.0.0.1:$M2", "127.0.0.1:$M3"]
YAML
start_controller ctl --config "$E2E_DIR/gw.yaml"
WFLAGS=(--retries 2 --first-byte-timeout 1s --idle-timeout 2s --eject-after 3 --eject-time 1s
    --eject-max-time 2s)
start_worker w1 "$W" "${WFLAGS[@]}"
wait_http "$GW/readyz" 200 10

traffic() { load_start "$1" --concurrency "$C" --max-tokens 10; }
stat() { curl -s "http://127.0.0.1:$1/_mock/stats" | jq -r ".$2"; }

# ---- engine SIGKILLed mid-stream -------------------------------------------------
# The requests on it when it died are read from w1's access log afterwards:
# those whose time at the worker overlaps the kill, from the signal to its
# process being reaped. A sample of the mock's in-flight count taken before
# the kill misses requests that reach it after the sample, and connections
# queued to it while it exits (the kernel resets them).
ej0=$(metric "$GW" llmgw_worker_endpoint_ejections_total)
traffic kill
sleep 2
kill_from=$(date +%s%3N)
stop m2 KILL
kill_to=$(date +%s%3N)
sleep 3
load_stop kill
sent=$(load_res kill sent); failed=$(load_res kill failed)
on_m2=$(on_engine_during "127.0.0.1:$M2" "$kill_from" "$kill_to")
e2e_table "engine SIGKILL mid-stream ($on_m2 on it as it died)" "$sent" "$failed" "<= $on_m2"
expect_true "traffic flowed ($sent requests)" test "$sent" -gt 50
expect_true "only the requests on the killed engine as it died fail ($failed <= $on_m2)" \
    test "$failed" -le "$on_m2"
expect_eq "each failure is a clean error (an error event or a 502/503 error body)" \
    "$(jq -r .reason "$E2E_DIR/kill.failures" 2>/dev/null | grep -cvE '^(stream_error_event|status_50[23])$')" 0
ej1=$(metric "$GW" llmgw_worker_endpoint_ejections_total)
expect_true "the dead engine was ejected after consecutive connect failures ($ej0 -> $ej1)" \
    test "$ej1" -gt "$ej0"
expect_true "the ejection is logged with the endpoint" grep -q "id=DP-EJECT .*127.0.0.1:$M2" "$E2E_DIR/w1.log"

# It returns once healthy (same address, as a restarted pod behind a file
# source): after the ejection the probe succeeds and it takes traffic again.
traffic back
start_mock m2 "$M2" --ttft-ms 5 --itl-ms 20
back() { [ "$(stat "$M2" completed)" -ge 5 ]; }
eventually "the restarted engine serves traffic again after its ejection" 15 back
load_stop back
e2e_table "engine restarted" "$(load_res back sent)" "$(load_res back failed)" 0
expect_eq "no failure while the engine comes back" "$(load_res back failed)" 0

# ---- engine hangs ------------------------------------------------------------------
ej0=$(metric "$GW" llmgw_worker_endpoint_ejections_total)
curl -s -X POST "http://127.0.0.1:$M3/_mock/fault" -d '{"hang":true}' >/dev/null
traffic hang
sleep 6
got_before=$(stat "$M3" received)
sleep 4
got_late=$(($(stat "$M3" received) - got_before))
load_stop hang
ej1=$(metric "$GW" llmgw_worker_endpoint_ejections_total)
ejections=$((ej1 - ej0))
sent=$(load_res hang sent); failed=$(load_res hang failed)
e2e_table "engine hangs 10 s (first-byte timeout 1 s, eject after 3, $ejections ejections)" "$sent" "$failed" \
    "<= $C in flight when it hung + 2 + 1 probe per re-ejection ($((C + 2 + ejections)))"
expect_true "the hung engine was ejected" test "$ejections" -ge 1
expect_true "failures are bounded by the hang, not by the traffic ($failed <= $((C + 2 + ejections)))" \
    test "$failed" -le $((C + 2 + ejections))
expect_eq "every failure is a first-byte timeout (504)" \
    "$(jq -r .reason "$E2E_DIR/hang.failures" 2>/dev/null | grep -cv '^status_504$')" 0
expect_true "its share of traffic dropped to the probes: $got_late requests in 4 s (<= 3)" \
    test "$got_late" -le 3
expect_match "first-byte timeouts are counted" \
    "$(metric "$GW" 'llmgw_worker_upstream_errors_total{reason="first_byte_timeout"}')" '^[1-9]'
curl -s -X POST "http://127.0.0.1:$M3/_mock/fault" -d '{"hang":false}' >/dev/null
m3_done=$(stat "$M3" completed)
m3_back() { [ "$(stat "$M3" completed)" -ge $((m3_done + 3)) ]; }
traffic unhang
eventually "the engine takes traffic again once it answers" 15 m3_back
load_stop unhang
expect_eq "no failure once it answers again" "$(load_res unhang failed)" 0

done_case
